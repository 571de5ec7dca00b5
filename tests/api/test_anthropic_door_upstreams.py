"""POST /v1/messages in front of real provider adapters: the official `anthropic` SDK
against Sluice, Sluice against fake upstreams on loopback replaying recorded bodies cut
at random byte boundaries. What the SDK accumulates from the stream equals the
non-streamed answer, a failure mid-stream is the SDK's stream error, and a request in
Anthropic's own shape reaches an Anthropic upstream unchanged."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from app.providers.registry import ProviderRegistry
from app.settings import Settings
from tests.providers.kinds import KINDS, Case, Kind
from tests.support.fake_upstreams import FakeUpstream, Reply, Splitter, fixture
from tests.support.server import run_sluice

SEEDS = range(4)
CASES = [(kind, case) for kind in KINDS for case in kind.cases]
CASE_IDS = [case.fixture.rsplit(".", 1)[0] for _, case in CASES]
STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
HISTORY: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello?"}]
REQUESTS = Path(__file__).resolve().parent / "requests"


def random_cuts(seed: int) -> Splitter:
    """The body cut at a handful of byte offsets drawn from `seed`."""

    def split(body: bytes) -> list[bytes]:
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, 12)))
        edges = [0, *cuts, len(body)]
        return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]

    return split


@contextlib.asynccontextmanager
async def gateway(
    kind: Kind, reply: Reply
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, FakeUpstream, str]]:
    """Sluice with one provider in front of a fake upstream; the SDK pointed at Sluice."""
    async with FakeUpstream(reply) as upstream:
        provider = kind.make(upstream.base_url)
        registry = ProviderRegistry({provider.name: provider}, {})
        async with (
            run_sluice(Settings(sim_tps=0), lambda: registry) as server,
            anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0) as sdk,
        ):
            yield sdk, upstream, f"{provider.name}/{kind.model}"


def blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    return [
        block.model_dump(mode="json", exclude_none=True, exclude={"parsed_output"})
        for block in message.content
    ]


async def streamed_and_created(
    sdk: anthropic.AsyncAnthropic, model: str
) -> tuple[anthropic.types.Message, anthropic.types.Message]:
    async with sdk.messages.stream(model=model, max_tokens=64, messages=HISTORY) as stream:
        streamed = await stream.get_final_message()
    created = await sdk.messages.create(model=model, max_tokens=64, messages=HISTORY)
    return streamed, created


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("kind", "case"), CASES, ids=CASE_IDS)
async def test_final_message_equals_the_non_streamed_answer_for_every_cut(
    kind: Kind, case: Case, seed: int
) -> None:
    async with gateway(kind, fixture(case.fixture, split=random_cuts(seed))) as (sdk, _, model):
        streamed, created = await streamed_and_created(sdk, model)
    assert blocks(streamed) == blocks(created)
    text = "".join(b["text"] for b in blocks(created) if b["type"] == "text")
    assert text == case.text
    assert streamed.stop_reason == created.stop_reason == STOP_REASON[case.finish]
    if case.usage is not None:
        assert streamed.usage.input_tokens == created.usage.input_tokens == case.usage.input_tokens
        assert (
            streamed.usage.output_tokens == created.usage.output_tokens == case.usage.output_tokens
        )


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_a_mid_stream_upstream_failure_is_the_sdks_stream_error(kind: Kind) -> None:
    texts: list[str] = []

    async def consume(sdk: anthropic.AsyncAnthropic, model: str) -> anthropic.types.Message:
        async with sdk.messages.stream(model=model, max_tokens=64, messages=HISTORY) as stream:
            async for text in stream.text_stream:
                texts.append(text)
            return await stream.get_final_message()

    async with gateway(kind, fixture(kind.stream_error)) as (sdk, _, model):
        with pytest.raises(anthropic.APIStatusError) as raised:
            await consume(sdk, model)
    assert "".join(texts) == kind.text_before_error
    assert raised.value.status_code == 200  # the SDK's status for an `event: error`
    body: dict[str, Any] = raised.value.body  # type: ignore[assignment]
    assert body["type"] == "error"
    # An Anthropic upstream names its error (here `overloaded_error`): it is kept.
    expected = "overloaded_error" if kind.name == "anthropic" else "api_error"
    assert body["error"]["type"] == expected


ANTHROPIC = next(kind for kind in KINDS if kind.name == "anthropic")


async def test_a_claude_code_shaped_request_reaches_anthropic_unchanged() -> None:
    """System blocks with cache_control, nine tools, thinking enabled, a signed thinking
    block and a tool round trip in the history: replayed as raw bytes, as a client
    sends them."""
    sent = json.loads((REQUESTS / "claude-code-messages.json").read_text())
    beta = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    reply = fixture("anthropic-messages-stream.sse")
    async with gateway(ANTHROPIC, reply) as (sdk, upstream, model):
        sent["model"] = model
        headers = {"anthropic-version": "2023-06-01", "anthropic-beta": beta, "x-api-key": "x"}
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream(
                "POST", f"{str(sdk.base_url).rstrip('/')}/v1/messages", json=sent, headers=headers
            ) as r,
        ):
            body = b"".join([piece async for piece in r.aiter_raw()])
    assert r.status_code == 200
    assert b"event: message_stop" in body
    [request] = upstream.requests
    received = request.json()
    assert received.pop("model") == ANTHROPIC.model
    sent.pop("model")
    assert received == sent
    assert request.headers["anthropic-beta"] == beta


async def test_count_tokens_is_asked_of_anthropic_with_the_body_unchanged() -> None:
    reply = Reply(200, "application/json", b'{"input_tokens": 2095}')
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    async with gateway(ANTHROPIC, reply) as (sdk, upstream, model):
        counted = await sdk.messages.count_tokens(
            model=model,
            system=system,  # type: ignore[arg-type]
            messages=HISTORY,
            extra_headers={"anthropic-beta": "token-counting-2024-11-01"},
        )
    assert counted.input_tokens == 2095
    [request] = upstream.requests
    assert request.path == "/v1/messages/count_tokens"
    assert request.json() == {"model": ANTHROPIC.model, "messages": HISTORY, "system": system}
    assert request.headers["anthropic-beta"] == "token-counting-2024-11-01"


NEWER = {
    "max_tokens": 256,
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Sky: blue."},
                    "citations": {"enabled": True},
                },
                {"type": "text", "text": "What colour is the sky?"},
            ],
        }
    ],
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "service_tier": "auto",
}


async def post_raw(base_url: object, body: dict[str, object]) -> httpx.Response:
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "x"}
    url = f"{str(base_url).rstrip('/')}/v1/messages"
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers=headers)


async def test_what_only_anthropic_knows_is_anthropics_to_judge() -> None:
    """Fields, blocks and server tools this gateway does not know reach a model only
    Anthropic serves unchanged; any other provider refuses them by name."""
    async with gateway(ANTHROPIC, fixture("anthropic-messages-stream.sse")) as (sdk, up, model):
        answered = await post_raw(sdk.base_url, {"model": model, **NEWER})
    assert answered.status_code == 200
    assert answered.json()["content"] == [{"type": "text", "text": "Hello!"}]
    received = up.requests[0].json()
    assert received.pop("model") == ANTHROPIC.model
    assert received.pop("stream") is True
    assert received == NEWER
    openai = next(kind for kind in KINDS if kind.name == "openai")
    async with gateway(openai, fixture("openai-chat-stream.sse")) as (sdk, up, model):
        refused = await post_raw(sdk.base_url, {"model": model, **NEWER})
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "context_management" in refused.json()["error"]["message"]
    assert up.requests == []


@pytest.mark.parametrize(("reason", "sequence"), [("stop_sequence", "###"), ("pause_turn", None)])
async def test_an_anthropic_stop_the_finish_reason_cannot_tell_reaches_the_client_as_sent(
    reason: str, sequence: str | None
) -> None:
    said = json.dumps({"stop_reason": reason, "stop_sequence": sequence})[1:-1]
    body = fixture("anthropic-messages-stream.sse").body.replace(
        b'"stop_reason": "end_turn", "stop_sequence":null', said.encode()
    )
    assert said.encode() in body
    async with gateway(ANTHROPIC, fixture("anthropic-messages-stream.sse", body=body)) as (
        sdk,
        _,
        model,
    ):
        streamed, created = await streamed_and_created(sdk, model)
    for message in (streamed, created):
        assert (message.stop_reason, message.stop_sequence) == (reason, sequence)
