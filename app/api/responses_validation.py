"""The body of POST /v1/responses to a `ResponsesCreate`. Pure.

Rule, as for chat completions: a field that would change the answer is
honoured (translated into the `ChatRequest` every provider takes) or refused
with a 400 that names it, never dropped silently. Fields that do not change
the answer (`metadata`, `user`, `service_tier`, `prompt_cache_key`,
`safety_identifier`, `parallel_tool_calls`) are accepted and echoed.

What the request model carries today is text: messages with text parts.
Images, function tools and function-call items are refused by name until it
carries them. Reasoning items a client passes back are left out: no
provider behind this door takes reasoning back through its request type yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.api.chat_validation import parse_chat_messages
from app.api.validation import Limits, parse_max_tokens, parse_model, parse_sim, parse_temperature
from app.errors import InvalidRequest
from app.providers.base import ChatRequest, Message

_TEXT_PARTS = ("input_text", "output_text", "text")
_BUILT_IN_TOOLS = (
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
)
_ACCEPTED_STRINGS = ("user", "service_tier", "prompt_cache_key", "safety_identifier")
KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "metadata",
        "store",
        "stream",
        "stream_options",
        "background",
        "previous_response_id",
        "include",
        "truncation",
        "max_tool_calls",
        "top_logprobs",
        "sim",
        *_ACCEPTED_STRINGS,
    }
)


@dataclass(frozen=True, slots=True)
class ResponsesCreate:
    """A validated create request. `request.messages` holds only this turn's
    input: the instructions and a previous response's history are added by
    `ResponsesCreate.with_history` once that history is known."""

    request: ChatRequest
    instructions: str | None
    stream: bool
    background: bool
    store: bool
    previous_response_id: str | None
    echo: tuple[tuple[str, object], ...]

    def upstream(self, history: tuple[Message, ...]) -> ChatRequest:
        """The request sent upstream: instructions, the earlier turns, this input."""
        system = () if self.instructions is None else (Message("system", self.instructions),)
        messages = system + history + self.request.messages
        r = self.request
        return ChatRequest(r.model, messages, r.max_tokens, r.temperature, r.sim, r.options)


def _unsupported(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{name}' is not supported by this gateway: {why}", param=name)


def _bool(data: Mapping[str, object], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean", param=name)
    return value


def _optional_string(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", param=name)
    return value


def _part_text(part: object, where: str) -> str:
    if not isinstance(part, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    kind = part.get("type")
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return str(part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return str(part["refusal"])
    if kind in ("input_image", "input_file", "input_audio"):
        raise _unsupported(where, f"'{kind}' parts are not carried to providers yet; send text")
    raise InvalidRequest(f"'{where}' has unknown part type {kind!r}", param=where)


def _message_content(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or a list of parts", param=where)
    return "".join(_part_text(part, f"{where}[{j}]") for j, part in enumerate(content))


def _item(item: object, where: str) -> dict[str, object] | None:
    """One input item as a chat message dict; None for an item that is left out."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    kind = item.get("type", "message")
    if kind == "message":
        return {"role": item.get("role"), "content": _message_content(item.get("content"), where)}
    if kind == "reasoning":
        return None  # left out: see the module docstring
    if kind in ("function_call", "function_call_output"):
        raise _unsupported(where, f"'{kind}' items need function tools, not available yet")
    raise InvalidRequest(f"'{where}' has unsupported item type {kind!r}", param=where)


def parse_input(value: object, limits: Limits) -> tuple[Message, ...]:
    if isinstance(value, str):
        return parse_chat_messages([{"role": "user", "content": value}], limits)
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' is required: a string or a list of items", param="input")
    items = [_item(item, f"input[{i}]") for i, item in enumerate(value)]
    messages = [item for item in items if item is not None]
    if not messages:
        raise InvalidRequest("'input' holds no message", param="input")
    return parse_chat_messages(messages, limits)


def _check_tools(data: Mapping[str, object]) -> None:
    tools = data.get("tools")
    if tools not in (None, []):
        if not isinstance(tools, list):
            raise InvalidRequest("'tools' must be a list", param="tools")
        kinds = [t.get("type") if isinstance(t, dict) else None for t in tools]
        built_in = sorted({str(k) for k in kinds if k in _BUILT_IN_TOOLS})
        if built_in:
            raise _unsupported("tools", f"built-in OpenAI tools {built_in} run only at OpenAI")
        raise _unsupported("tools", "function tools are not available yet")
    if data.get("tool_choice") not in (None, "auto", "none"):
        raise _unsupported("tool_choice", "no tool can be called")
    if data.get("max_tool_calls") is not None:
        raise _unsupported("max_tool_calls", "no tool can be called")


def _check_output_knobs(data: Mapping[str, object]) -> None:
    reasoning = data.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequest("'reasoning' must be an object", param="reasoning")
        if reasoning.get("effort") is not None:
            raise _unsupported("reasoning.effort", "reasoning controls are not passed on yet")
    text = data.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise InvalidRequest("'text' must be an object", param="text")
        if text.get("format") not in (None, {"type": "text"}):
            raise _unsupported("text.format", "only plain text ({'type': 'text'}) is produced")
        if text.get("verbosity") not in (None, "medium"):
            raise _unsupported("text.verbosity", "verbosity cannot be passed to every provider")
    if data.get("include") not in (None, []):
        raise _unsupported("include", "no optional output is produced")
    if data.get("truncation") not in (None, "disabled"):
        raise _unsupported("truncation", "the input is never truncated")
    if data.get("top_logprobs") not in (None, 0):
        raise _unsupported("top_logprobs", "token log probabilities are not reported")
    options = data.get("stream_options")
    if options is not None and (
        not isinstance(options, dict) or set(options) - {"include_obfuscation"}
    ):
        raise _unsupported("stream_options", "only 'include_obfuscation' (Sluice never pads)")


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not (
        isinstance(value, dict)
        and len(value) <= 16
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise InvalidRequest(
            "'metadata' must be an object of at most 16 string values", param="metadata"
        )
    return value


def _check_known(data: Mapping[str, object]) -> None:
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown or unsupported fields {unknown[:10]}; this endpoint knows "
            f"{sorted(KNOWN_FIELDS)}",
            param=unknown[0],
        )
    for name in _ACCEPTED_STRINGS:
        _optional_string(data, name)


def _top_p(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidRequest("'top_p' must be a number from 0 to 1", param="top_p")
    return value


def parse_responses_create(data: Mapping[str, object], limits: Limits) -> ResponsesCreate:
    """The body of POST /v1/responses, checked field by field."""
    _check_known(data)
    _check_tools(data)
    _check_output_knobs(data)
    store = _bool(data, "store", True)
    background = _bool(data, "background", False)
    if background and not store:
        raise InvalidRequest("a background response must be stored ('store': true)", param="store")
    max_tokens = parse_max_tokens(data.get("max_output_tokens"), limits, name="max_output_tokens")
    temperature = parse_temperature(data.get("temperature"))
    top_p = _top_p(data.get("top_p"))
    request = ChatRequest(
        model=parse_model(data.get("model")),
        messages=parse_input(data.get("input"), limits),
        max_tokens=max_tokens,
        temperature=temperature,
        sim=parse_sim(data.get("sim")),
        options=() if top_p is None else (("top_p", top_p),),
    )
    reasoning = data.get("reasoning")
    summary = reasoning.get("summary") if isinstance(reasoning, dict) else None
    previous = _optional_string(data, "previous_response_id")
    instructions = _optional_string(data, "instructions")
    echo: tuple[tuple[str, object], ...] = (
        ("instructions", instructions),
        ("max_output_tokens", max_tokens),
        ("parallel_tool_calls", _bool(data, "parallel_tool_calls", True)),
        ("previous_response_id", previous),
        ("reasoning", {"effort": None, "summary": summary}),
        ("store", store),
        ("temperature", temperature),
        ("text", {"format": {"type": "text"}}),
        ("tool_choice", data.get("tool_choice") or "auto"),
        ("tools", []),
        ("top_p", top_p),
        ("metadata", _metadata(data.get("metadata"))),
    )
    stream = _bool(data, "stream", False)
    return ResponsesCreate(request, instructions, stream, background, store, previous, echo)
