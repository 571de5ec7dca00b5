"""The providers the conformance suite runs against, each with what its
fixtures must produce. Expected texts and counts are read off the fixture
files by eye (and stated here), never derived with the code under test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.events import FinishReason, Usage
from app.providers.anthropic import AnthropicProvider
from app.providers.base import ChatRequest, Message, Provider
from app.providers.ollama import OllamaProvider
from app.providers.openai import NO_KEY, OpenAIProvider
from tests.support.fake_upstreams import FakeUpstream, Request, fixture


@dataclass(frozen=True, slots=True)
class Case:
    fixture: str
    text: str
    finish: FinishReason
    usage: Usage | None


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    make: Callable[[str], Provider]  # base URL of the fake upstream -> provider
    model: str
    cases: tuple[Case, ...]
    stream_error: str  # fixture: some text, then an error, then the body ends
    text_before_error: str
    framing: bytes  # what ends one event/line: the truncation tests cut there


OPENAI_TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
OPENAI_2025_TEXT = (
    "Hi there! How can I help today? I can answer questions, explain concepts, help with "
    "writing or brainstorming, code, plan something, and more. Tell me what you\u2019d like "
    "to work on or a topic you\u2019re curious about."
)
OLLAMA_TEXT = "That's a fantastic question!"
# The recorded stream's text blocks joined (its thinking blocks are not text).
ANTHROPIC_RECORDED_TEXT = (
    Path(__file__).resolve().parents[1]
    / "fixtures/upstream/anthropic-messages-stream-recorded.text"
).read_text(encoding="utf-8")
ANTHROPIC_TOOL_TEXT = "Okay, let's check the weather for San Francisco, CA:"


def _openai(base_url: str) -> Provider:
    return OpenAIProvider(
        "openai",
        api_key="sk-test",
        base_url=f"{base_url}/v1",
        max_tokens_field="max_completion_tokens",
    )


def _compat(base_url: str) -> Provider:
    return OpenAIProvider("vllm", api_key=NO_KEY, base_url=f"{base_url}/v1")


def _anthropic(base_url: str) -> Provider:
    return AnthropicProvider(api_key="sk-ant-test", base_url=base_url)


def _ollama(base_url: str) -> Provider:
    return OllamaProvider(host=base_url)


KINDS = (
    Kind(
        "openai",
        _openai,
        "gpt-4o",
        (
            Case("openai-chat-stream.sse", OPENAI_TEXT, "stop", Usage(14, 30, None, 0)),
            Case("openai-chat-stream-include-usage-2025.sse", "", "length", Usage(12, 100, 0, 100)),
            Case("openai-chat-stream-no-usage-2025.sse", OPENAI_2025_TEXT, "stop", None),
        ),
        "openai-chat-stream-error.sse",
        "I'm unable",
        b"\n\n",
    ),
    Kind(
        "anthropic",
        _anthropic,
        "claude-test-model",
        (
            Case("anthropic-messages-stream.sse", "Hello!", "stop", Usage(25, 15)),
            Case(
                "anthropic-messages-stream-tool-use.sse",
                ANTHROPIC_TOOL_TEXT,
                "tool_calls",
                Usage(472, 89),
            ),
            Case(
                "anthropic-messages-stream-recorded.sse",
                ANTHROPIC_RECORDED_TEXT,
                "stop",
                Usage(43, 282, cached_tokens=0),
            ),
        ),
        "anthropic-stream-error.sse",
        "Hello",
        b"\n\n",
    ),
    Kind(
        "ollama",
        _ollama,
        "gemma4",
        (Case("ollama-chat-stream.ndjson", OLLAMA_TEXT, "stop", Usage(26, 282)),),
        "ollama-chat-stream-error.ndjson",
        " Yes.Ican",
        b"\n",
    ),
    Kind(
        "compat",
        _compat,
        "gemma4",
        (Case("ollama-openai-compat-stream.sse", OLLAMA_TEXT, "stop", Usage(26, 282)),),
        "openai-chat-stream-error.sse",
        "I'm unable",
        b"\n\n",
    ),
)
KIND_IDS = [k.name for k in KINDS]


def chat_request(**options: object) -> ChatRequest:
    return ChatRequest(
        model="test/model",
        messages=(Message("system", "Be brief."), Message("user", "Hello?")),
        max_tokens=64,
        temperature=0.5,
        options=tuple(options.items()),
    )


async def sent(kind_name: str, request: ChatRequest) -> Request:
    """What a provider sends upstream for `request` (its first fixture answers)."""
    kind = next(k for k in KINDS if k.name == kind_name)
    async with FakeUpstream(fixture(kind.cases[0].fixture)) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            _ = [c async for c in provider.stream(request, kind.model)]
        finally:
            await provider.aclose()
    return upstream.requests[0]
