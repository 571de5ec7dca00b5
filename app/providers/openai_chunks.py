"""Chat Completions stream chunks (`chat.completion.chunk` JSON) -> `Chunk`s.

PURE: no I/O. Shared by api.openai.com and every OpenAI-compatible server, so
it reads by key and tolerates what varies between them: `usage` absent, null,
on every chunk or only on a final `choices: []` chunk; `finish_reason` alone
or together with the last content; `[DONE]` present or not; unknown keys.
Never builds an SDK model object: one orjson parse per event is the whole cost.
"""

from __future__ import annotations

import orjson

from app.core.events import FinishReason, ToolCall, Usage
from app.errors import UpstreamError, UpstreamRateLimited
from app.providers.base import Chunk

DONE = b"[DONE]"

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Error types that say the request itself is wrong: sending it again elsewhere
# will not help. Anything else mid-stream is presumed to be the server's fault.
_CLIENT_ERROR_HINTS = ("invalid_request", "badrequest", "not_found", "authentication", "permission")


def parse_json(data: bytes, provider: str) -> dict[str, object]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{provider}: malformed JSON in stream", retryable=True) from exc
    if not isinstance(obj, dict):
        raise UpstreamError(f"{provider}: unexpected JSON in stream", retryable=True)
    return obj


def stream_error(error: object, provider: str) -> UpstreamError:
    """The error object of a mid-stream `{"error": {...}}` event, translated."""
    if not isinstance(error, dict):
        return UpstreamError(f"{provider}: {error}", retryable=True)
    message = f"{provider}: {error.get('message') or 'error in stream'}"
    code = error.get("code")
    if isinstance(code, int):  # vLLM and llama.cpp put the HTTP status here
        if code == 429:
            return UpstreamRateLimited(message)
        return UpstreamError(message, retryable=code >= 500, code=str(code))
    kind = str(error.get("type") or "").lower()
    retryable = not any(hint in kind for hint in _CLIENT_ERROR_HINTS)
    return UpstreamError(message, retryable=retryable, code=code if isinstance(code, str) else None)


def _count(value: object, details: str, key: str) -> int | None:
    inner = value.get(details) if isinstance(value, dict) else None
    count = inner.get(key) if isinstance(inner, dict) else None
    return count if isinstance(count, int) else None


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=_count(value, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_count(value, "completion_tokens_details", "reasoning_tokens"),
    )


_NONE: tuple[Chunk, ...] = ()


class ChatChunkParser:
    """Turns each event's data into the deltas it holds (text, reasoning,
    refusal, tool call starts and argument fragments), and the end of the
    stream into the one final `Chunk` (or a truncation error).

    Strategy: the finish reason arrives before the usage chunk, so the final
    `Chunk` is only built at `[DONE]` or at the end of the body, by `finish()`.
    Tool calls are numbered in the order they start, whatever index the
    upstream gives them; an id repeated on later fragments (some servers do)
    starts nothing new.
    """

    __slots__ = ("_calls", "_finish", "_provider", "_usage", "done")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._calls: dict[int, int] | None = None  # the upstream's index -> ours (made lazily)
        self.done = False

    def feed(self, data: bytes) -> tuple[Chunk, ...]:
        if data == DONE:
            self.done = True
            return _NONE
        obj = parse_json(data, self._provider)
        # Strategy: a content delta is nearly every event; read it with the
        # fewest lookups, and let anything else take the general path.
        choices = obj.get("choices")
        if type(choices) is list and choices:
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None:
                delta = choice.get("delta")
                if type(delta) is dict and len(delta) == 1 and obj.get("usage") is None:
                    text = delta.get("content")
                    if type(text) is str and "error" not in obj:
                        return (Chunk(text),) if text else _NONE
        return self._general(obj)

    def _general(self, obj: dict[str, object]) -> tuple[Chunk, ...]:
        if "error" in obj and obj["error"] is not None:
            raise stream_error(obj["error"], self._provider)
        usage = _usage(obj.get("usage"))
        if usage is not None:
            self._usage = usage
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return _NONE
        return self._choice(choices[0])

    def _choice(self, choice: dict[str, object]) -> tuple[Chunk, ...]:
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self._finish = _FINISH.get(reason, "stop")
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return _NONE
        chunks: list[Chunk] = []
        # vLLM, DeepSeek and llama.cpp say reasoning_content; OpenRouter and Ollama reasoning.
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            chunks.append(Chunk(reasoning, kind="reasoning"))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            chunks.append(Chunk(refusal, kind="refusal"))
        text = delta.get("content")
        if isinstance(text, str) and text:
            chunks.append(Chunk(text))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._tool_call(call, position, chunks)
        return tuple(chunks)

    def _tool_call(self, call: dict[str, object], position: int, into: list[Chunk]) -> None:
        upstream = call.get("index")
        key = upstream if isinstance(upstream, int) else position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        calls = self._calls
        if calls is None:
            calls = self._calls = {}
        ours = calls.get(key)
        if ours is None:
            ours = calls[key] = len(calls)
            call_id, name = call.get("id"), function.get("name")
            into.append(
                Chunk(
                    kind="tool_call",
                    call=ToolCall(
                        ours,
                        call_id if isinstance(call_id, str) and call_id else f"call_{ours}",
                        name if isinstance(name, str) else "",
                    ),
                )
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            into.append(Chunk(arguments, kind="tool_call_delta", call_index=ours))

    def finish(self) -> Chunk:
        """The final chunk; UpstreamError if the stream never said it finished."""
        if self._finish is None:
            raise UpstreamError(
                f"{self._provider}: stream ended before a finish_reason", retryable=True
            )
        return Chunk(finish_reason=self._finish, usage=self._usage)
