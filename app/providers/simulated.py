"""The built-in simulated model: `sim/echo` and `sim/lorem`.

Deterministic for the same request, no network, paced by `tps` and `ttft_ms`,
and able to fail (`fail_after`) or stall (`stall_after`) on demand so every
terminal path of a stream can be exercised without a real upstream.

Typed modes, from the `sim` knobs: `reasoning: N` streams N reasoning tokens
first; `tool_calls: K` answers with K calls (one if `parallel_tool_calls` is
false) to the request's tools in turn (`tool_choice` naming one: that one;
no tools: `sim_tool`), whose arguments `{"input": <last user text>, "call": i}`
stream in fragments of `fragment` characters (default 8), and finishes with
`tool_calls`. `tool_choice: "required"` alone makes one call. After a tool
result (the last turn is a `tool` turn) the answer is text again: `sim/echo`
echoes the result.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import orjson

from app.core.events import FinishReason, ToolCall, Usage
from app.errors import NotFound, UpstreamError
from app.providers.base import OPTION_NAMES, TOOL_FEATURES, ChatRequest, Chunk, SimOptions

_LOREM_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat duis aute irure "
    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur"
)
_LOREM = _LOREM_TEXT.split()

LOREM_DEFAULT_TOKENS = 64
MODELS = ("echo", "lorem")
# Strategy: unpaced generation yields to the event loop every few tokens so one
# fast stream cannot starve the others; per-token sleeps only when paced.
_YIELD_EVERY = 16
DEFAULT_FRAGMENT = 8


def words_of(text: str) -> list[str]:
    """Split text into word tokens that join back to the text's words ("a", " b")."""
    words = text.split()
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def lorem_tokens(n: int) -> Iterator[str]:
    for i in range(n):
        word = _LOREM[i % len(_LOREM)]
        yield word.capitalize() if i == 0 else " " + word


class SimulatedProvider:
    name = "sim"
    # The simulated answer is defined by the request's text alone; sampling
    # options are accepted so clients can be tested unchanged. It sees no
    # image, writes no JSON mode and takes no reasoning control (its
    # `sim.reasoning` knob is the way): those are refused.
    accepts = OPTION_NAMES | TOOL_FEATURES

    def __init__(self, default_tps: float, default_ttft_ms: float) -> None:
        self._tps = default_tps
        self._ttft_ms = default_ttft_ms

    def tokens(self, request: ChatRequest, model: str) -> tuple[list[str], FinishReason]:
        """The whole deterministic answer, before pacing."""
        if model == "lorem":
            limit = request.max_tokens if request.max_tokens is not None else LOREM_DEFAULT_TOKENS
            return list(lorem_tokens(limit)), "length" if request.max_tokens else "stop"
        if model == "echo":
            last = request.messages[-1] if request.messages else None
            last_user = next(
                (m.content for m in reversed(request.messages) if m.role == "user"), ""
            )
            if last is not None and last.role == "tool":
                last_user = last.content
            words = words_of(last_user)
            if request.max_tokens is not None and len(words) > request.max_tokens:
                return words[: request.max_tokens], "length"
            return words, "stop"
        raise NotFound(
            f"unknown model 'sim/{model}'; available: sim/echo, sim/lorem", code="model_not_found"
        )

    def chunks(self, request: ChatRequest, model: str) -> tuple[Iterator[Chunk], FinishReason]:
        """The whole deterministic answer as chunks: reasoning, then calls or text
        (made as they are pulled: a long answer is not held twice)."""
        opts = request.sim or SimOptions()
        reasoning = (Chunk(t, kind="reasoning") for t in lorem_tokens(opts.reasoning or 0))
        calls = _call_count(request, opts)
        if calls:
            return itertools.chain(reasoning, _calls(request, opts, calls)), "tool_calls"
        tokens, finish = self.tokens(request, model)
        return itertools.chain(reasoning, (Chunk(t) for t in tokens)), finish

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        chunks, finish = self.chunks(request, model)
        opts = request.sim or SimOptions()
        count = 0
        tps = self._tps if opts.tps is None else opts.tps
        ttft_ms = self._ttft_ms if opts.ttft_ms is None else opts.ttft_ms
        interval = 1.0 / tps if tps > 0 else 0.0
        if ttft_ms > 0:
            await asyncio.sleep(ttft_ms / 1000)
        for i, chunk in enumerate(chunks):
            if opts.fail_after is not None and i >= opts.fail_after:
                raise UpstreamError(f"simulated upstream failure after {i} tokens", retryable=True)
            if opts.stall_after is not None and i >= opts.stall_after:
                await asyncio.Event().wait()  # never set: the idle timeout ends it
            if interval and i:
                await asyncio.sleep(interval)
            elif i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            count = i + 1
            yield chunk
        if opts.fail_after is not None and count >= opts.fail_after:
            raise UpstreamError(f"simulated upstream failure after {count} tokens", retryable=True)
        if opts.stall_after is not None and count >= opts.stall_after:
            await asyncio.Event().wait()
        input_tokens = sum(len(m.content.split()) for m in request.messages)
        usage = Usage(input_tokens, count, reasoning_tokens=opts.reasoning or None)
        yield Chunk(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        return None


def _call_count(request: ChatRequest, opts: SimOptions) -> int:
    choice = request.tool_choice
    answered = bool(request.messages) and request.messages[-1].role == "tool"
    if answered or (choice is not None and choice.mode == "none"):
        return 0
    count = opts.tool_calls or 0
    if not count and choice is not None and choice.mode in ("required", "function"):
        count = 1
    return min(count, 1) if request.parallel_tool_calls is False else count


def _calls(request: ChatRequest, opts: SimOptions, count: int) -> list[Chunk]:
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    names = [t.name for t in request.tools] or ["sim_tool"]
    choice = request.tool_choice
    size = opts.fragment or DEFAULT_FRAGMENT
    chunks: list[Chunk] = []
    for i in range(count):
        name = choice.name if choice is not None and choice.name else names[i % len(names)]
        chunks.append(Chunk(kind="tool_call", call=ToolCall(i, f"call_sim_{i}", name)))
        arguments = orjson.dumps({"input": last_user, "call": i}).decode()
        chunks += [
            Chunk(arguments[at : at + size], kind="tool_call_delta", call_index=i)
            for at in range(0, len(arguments), size)
        ]
    return chunks
