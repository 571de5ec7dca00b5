"""The built-in simulated model: `sim/echo` and `sim/lorem`.

Deterministic for the same request, no network, paced by `tps` and `ttft_ms`,
and able to fail (`fail_after`) or stall (`stall_after`) on demand so every
terminal path of a stream can be exercised without a real upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from app.core.events import FinishReason, Usage
from app.errors import NotFound, UpstreamError
from app.providers.base import OPTION_NAMES, ChatRequest, Chunk, SimOptions

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
    # options are accepted so clients can be tested unchanged.
    accepts = OPTION_NAMES

    def __init__(self, default_tps: float, default_ttft_ms: float) -> None:
        self._tps = default_tps
        self._ttft_ms = default_ttft_ms

    def tokens(self, request: ChatRequest, model: str) -> tuple[list[str], FinishReason]:
        """The whole deterministic answer, before pacing."""
        if model == "lorem":
            limit = request.max_tokens if request.max_tokens is not None else LOREM_DEFAULT_TOKENS
            return list(lorem_tokens(limit)), "length" if request.max_tokens else "stop"
        if model == "echo":
            last_user = next(
                (m.content for m in reversed(request.messages) if m.role == "user"), ""
            )
            words = words_of(last_user)
            if request.max_tokens is not None and len(words) > request.max_tokens:
                return words[: request.max_tokens], "length"
            return words, "stop"
        raise NotFound(
            f"unknown model 'sim/{model}'; available: sim/echo, sim/lorem", code="model_not_found"
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        tokens, finish = self.tokens(request, model)
        opts = request.sim or SimOptions()
        tps = self._tps if opts.tps is None else opts.tps
        ttft_ms = self._ttft_ms if opts.ttft_ms is None else opts.ttft_ms
        interval = 1.0 / tps if tps > 0 else 0.0
        if ttft_ms > 0:
            await asyncio.sleep(ttft_ms / 1000)
        for i, token in enumerate(tokens):
            if opts.fail_after is not None and i >= opts.fail_after:
                raise UpstreamError(f"simulated upstream failure after {i} tokens", retryable=True)
            if opts.stall_after is not None and i >= opts.stall_after:
                await asyncio.Event().wait()  # never set: the idle timeout ends it
            if interval and i:
                await asyncio.sleep(interval)
            elif i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            yield Chunk(text=token)
        if opts.fail_after is not None and len(tokens) >= opts.fail_after:
            raise UpstreamError(
                f"simulated upstream failure after {len(tokens)} tokens", retryable=True
            )
        if opts.stall_after is not None and len(tokens) >= opts.stall_after:
            await asyncio.Event().wait()
        input_tokens = sum(len(m.content.split()) for m in request.messages)
        yield Chunk(finish_reason=finish, usage=Usage(input_tokens, len(tokens)))

    async def aclose(self) -> None:
        return None
