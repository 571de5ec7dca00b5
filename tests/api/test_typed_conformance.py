"""The conformance matrix of typed streams: every recorded upstream body, replayed
by a fake upstream cut at random byte boundaries (each request a new cut),
through Sluice to the official `openai` SDK. What `chat.completions.stream()`
then `get_final_completion()` accumulates is the same for every cut, equals the
non-streamed answer, and matches the upstream's own content."""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass

import httpx
import openai
import pytest

from app.providers.registry import ProviderRegistry
from tests.providers.kinds import KINDS
from tests.providers.test_end_to_end import wiring
from tests.support.client import read_sse
from tests.support.fake_upstreams import FIXTURES, FakeUpstream, fixture
from tests.support.server import run_sluice

CUTS = 21  # streamed requests per fixture, each cut at other random boundaries
_KIND = {kind.name: kind for kind in KINDS}


class RandomCuts:
    """A new set of 20+ random cuts for every response (the upstream's TCP writes)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def __call__(self, body: bytes) -> list[bytes]:
        cuts = sorted(self._rng.sample(range(1, len(body)), min(24, len(body) - 1)))
        return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


@dataclass(frozen=True)
class Case:
    kind: str
    fixture: str
    expected: dict[str, object]  # the upstream's own content, read off the fixture


OPENAI_CALLS = [
    ("GetWeatherArgs", '{"city": "Edinburgh", "country": "GB", "units": "c"}'),
    ("get_stock_price", '{"ticker": "AAPL", "exchange": "NASDAQ"}'),
]
CASES = [
    Case(
        "openai",
        "openai-chat-stream-tool-calls.sse",
        {
            "content": None,
            "refusal": None,
            "calls": [
                ("call_JMW1whyEaYG438VE1OIflxA2", *OPENAI_CALLS[0]),
                ("call_DNYTawLBoN8fj3KN6qU9N1Ou", *OPENAI_CALLS[1]),
            ],
            "finish": "tool_calls",
            "usage": (149, 60, 209),
        },
    ),
    Case(
        "openai",
        "openai-chat-stream-refusal.sse",
        {
            "content": None,
            "refusal": "I'm sorry, I can't assist with that request.",
            "calls": [],
            "finish": "stop",
            "usage": (79, 11, 90),
        },
    ),
    Case(
        "compat",
        "openai-compat-stream-reasoning-content.sse",
        {
            "content": "Hello there! \U0001f60a How can I help you today?",
            "refusal": None,
            "calls": [],
            "finish": "stop",
            "usage": (6, 212, 218),
            "reasoning_chars": 882,
        },
    ),
    Case(
        "compat",
        "openai-compat-stream-reasoning-openrouter.sse",
        {
            "content": "2 + 2 = 4",
            "refusal": None,
            "calls": [],
            "finish": "stop",
            "usage": (43, 36, 79),
            "reasoning": "This is a simple arithmetic question. 2+2 equals 4.",
        },
    ),
    Case(
        "anthropic",
        "anthropic-messages-stream-parallel-tools.sse",
        {
            "calls": [
                (
                    "toolu_01YUs66wivdF51ENZFX8gX9S",
                    "get_weather",
                    '{"location": "New York, NY", "unit": "fahrenheit"}',
                ),
                ("toolu_01NRtod2L7M7TBDj9GCzsZCx", "get_time", '{"timezone": "America/New_York"}'),
            ],
            "refusal": None,
            "finish": "tool_calls",
            "usage": (514, 165, 679),
        },
    ),
    Case(
        "anthropic",
        "anthropic-messages-stream-redacted-thinking.sse",
        {"calls": [], "refusal": None, "finish": "stop", "usage": (92, 189, 281)},
    ),
    Case(
        "ollama",
        "ollama-chat-stream-tool-calls.ndjson",
        {
            "content": None,
            "refusal": None,
            "calls": [("call_0", "get_weather", '{"city":"Tokyo"}')],
            "finish": "tool_calls",
        },
    ),
]


def summary(completion: openai.types.chat.ChatCompletion) -> dict[str, object]:
    choice = completion.choices[0]
    message = choice.message
    extra = message.model_extra or {}
    usage = completion.usage
    return {
        "content": message.content,
        "refusal": message.refusal,
        "calls": [
            (c.id, c.function.name, c.function.arguments)  # type: ignore[union-attr]
            for c in message.tool_calls or []
        ],
        "finish": choice.finish_reason,
        "usage": None
        if usage is None
        else (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        "reasoning": extra.get("reasoning_content"),
    }


async def _matrix(case: Case) -> tuple[list[dict[str, object]], dict[str, object]]:
    kind = _KIND[case.kind]
    reply = fixture(case.fixture, split=RandomCuts(zlib.crc32(case.fixture.encode())))
    async with FakeUpstream(reply) as upstream:
        settings, env, model = wiring(kind, upstream.base_url)
        async with (
            run_sluice(settings, lambda: ProviderRegistry.from_settings(settings, env)) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            streamed = []
            for _ in range(CUTS):
                async with sdk.chat.completions.stream(
                    model=model,
                    messages=[{"role": "user", "content": "hi"}],
                    stream_options={"include_usage": True},
                ) as stream:
                    streamed.append(summary(await stream.get_final_completion()))
            whole = await sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
    return streamed, summary(whole)


@pytest.mark.parametrize("case", CASES, ids=[c.fixture.rsplit(".", 1)[0] for c in CASES])
async def test_the_sdk_accumulates_the_same_answer_at_every_cut(case: Case) -> None:
    streamed, whole = await _matrix(case)
    assert all(s == streamed[0] for s in streamed), "identical for every cut"
    assert streamed[0] == whole, "equals the non-streamed answer"
    answer = streamed[0]
    for key, value in case.expected.items():
        if key == "reasoning_chars":
            assert isinstance(answer["reasoning"], str)
            assert len(answer["reasoning"]) == value
        else:
            assert answer[key] == value, key


def _twin_calls(name: str) -> list[tuple[str, object]]:
    body = json.loads((FIXTURES / name).read_text())
    if "choices" in body:
        calls = body["choices"][0]["message"]["tool_calls"]
        return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    return [(b["name"], b["input"]) for b in body["content"] if b["type"] == "tool_use"]


def test_streamed_calls_match_the_upstreams_own_non_streamed_twin() -> None:
    """The recorded non-streamed answers to the same requests: same names and arguments."""
    assert _twin_calls("openai-chat-tool-calls.json") == OPENAI_CALLS
    anthropic_case = next(c for c in CASES if c.fixture.startswith("anthropic-messages-stream-p"))
    calls = anthropic_case.expected["calls"]
    assert isinstance(calls, list)
    assert _twin_calls("anthropic-messages-tool-use.json") == [
        (name, json.loads(arguments)) for _, name, arguments in calls
    ]


@pytest.mark.parametrize(
    ("name", "kind", "field"),
    [
        ("anthropic-messages-stream-thinking.sse", "reasoning_signature", "signature"),
        ("anthropic-messages-stream-redacted-thinking.sse", "reasoning_redacted", "data"),
    ],
)
async def test_anthropic_signatures_come_through_byte_identical_on_the_native_api(
    name: str, kind: str, field: str
) -> None:
    upstream_body = (FIXTURES / name).read_bytes()
    async with FakeUpstream(fixture(name, split=RandomCuts(7))) as upstream:
        settings, env, model = wiring(_KIND["anthropic"], upstream.base_url)
        async with (
            run_sluice(settings, lambda: ProviderRegistry.from_settings(settings, env)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            response = await read_sse(client, f"/v1/stream?model={model}&prompt=hi")
    values = [json.loads(e.data)[field] for e in response.events if e.event == kind]
    assert values, f"no {kind} event"
    for value in values:
        raw = json.dumps(value)[1:-1].encode()  # as it stands between the quotes upstream
        assert raw in upstream_body
    assert [e.event for e in response.events][-1] == "done"
