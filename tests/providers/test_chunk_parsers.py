"""The pure per-event parsers: what varies between upstreams is tolerated."""

from __future__ import annotations

import pytest

from app.core.events import Usage
from app.errors import UpstreamError, UpstreamRateLimited
from app.providers.anthropic_events import MessageEventParser
from app.providers.base import Chunk
from app.providers.ollama import ChatLineParser, host_url, request_body
from app.providers.openai_chunks import ChatChunkParser
from app.providers.sse_decode import SSEEvent
from tests.providers.kinds import chat_request


def openai_run(*events: bytes) -> list[Chunk]:
    parser = ChatChunkParser("vllm")
    chunks = [c for e in events for c in parser.feed(e)]
    return [*chunks, parser.finish()]


def test_openai_finish_reason_in_the_same_chunk_as_the_last_text() -> None:
    chunks = openai_run(
        b'{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}',
        b'{"choices":[{"delta":{"content":"!"},"finish_reason":"length"}],"usage":null}',
    )
    assert chunks == [Chunk("Hi"), Chunk("!"), Chunk(finish_reason="length")]


def test_openai_usage_on_every_chunk_keeps_the_last() -> None:
    chunks = openai_run(
        b'{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}',
        b'{"choices":[{"delta":{},"finish_reason":"tool_calls"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        b"[DONE]",
    )
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(3, 2))


def test_openai_missing_keys_and_unknown_finish_reason() -> None:
    chunks = openai_run(b"{}", b'{"choices":[]}', b'{"choices":[{"finish_reason":"eos"}]}')
    assert chunks == [Chunk(finish_reason="stop")]


def test_openai_stream_without_finish_reason_is_truncated() -> None:
    parser = ChatChunkParser("openai")
    parser.feed(b'{"choices":[{"delta":{"content":"a"},"finish_reason":null}]}')
    with pytest.raises(UpstreamError, match="before a finish_reason"):
        parser.finish()


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (b'{"message":"x","type":"BadRequestError","code":400}', UpstreamError, False),
        (b'{"message":"x","type":"InternalServerError","code":500}', UpstreamError, True),
        (b'{"message":"x","type":"RateLimitError","code":429}', UpstreamRateLimited, True),
        (b'{"message":"x","type":"invalid_request_error","code":null}', UpstreamError, False),
        (b'{"message":"x","type":"server_error"}', UpstreamError, True),
        (b'"plain text"', UpstreamError, True),
    ],
)
def test_openai_mid_stream_error_objects(
    error: bytes, kind: type[UpstreamError], retryable: bool
) -> None:
    with pytest.raises(UpstreamError) as raised:
        ChatChunkParser("vllm").feed(b'{"error":' + error + b"}")
    assert type(raised.value) is kind
    assert raised.value.retryable is retryable


def test_openai_malformed_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="malformed"):
        ChatChunkParser("openai").feed(b'{"choices":')


def anthropic(event: str, data: bytes) -> SSEEvent:
    return SSEEvent(event, data)


def test_anthropic_usage_is_cumulative_and_unknown_events_are_ignored() -> None:
    parser = MessageEventParser("anthropic")
    events = [
        anthropic("message_start", b'{"message":{"usage":{"input_tokens":9,"output_tokens":1}}}'),
        anthropic("citations_galore", b'{"type":"citations_galore"}'),
        anthropic("content_block_delta", b'{"delta":{"type":"shiny_delta","text":"no"}}'),
        anthropic("content_block_delta", b'{"delta":{"type":"text_delta","text":"yes"}}'),
        anthropic(
            "message_delta", b'{"delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":5}}'
        ),
        anthropic("message_delta", b'{"delta":{},"usage":{"output_tokens":7}}'),
        anthropic("message_stop", b"{}"),
    ]  # fmt: skip
    chunks = [c for e in events if (c := parser.feed(e)) is not None]
    assert chunks == [Chunk("yes"), Chunk(finish_reason="length", usage=Usage(9, 7))]
    parser.check_complete()


def test_anthropic_unnamed_events_dispatch_on_their_json_type() -> None:
    parser = MessageEventParser("anthropic")
    chunk = parser.feed(SSEEvent("message", b'{"type":"message_stop"}'))
    assert chunk == Chunk(finish_reason="stop", usage=Usage(0, 0))


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("overloaded_error", UpstreamError, True),
        ("api_error", UpstreamError, True),
        ("rate_limit_error", UpstreamRateLimited, True),
        ("invalid_request_error", UpstreamError, False),
    ],
)
def test_anthropic_error_events(kind: str, error: type[UpstreamError], retryable: bool) -> None:
    data = b'{"type":"error","error":{"type":"%s","message":"m"}}' % kind.encode()
    with pytest.raises(UpstreamError) as raised:
        MessageEventParser("anthropic").feed(SSEEvent("error", data))
    assert type(raised.value) is error
    assert raised.value.retryable is retryable
    assert raised.value.message == "anthropic: m"


def test_anthropic_without_message_stop_is_truncated() -> None:
    parser = MessageEventParser("anthropic")
    parser.feed(SSEEvent("message_delta", b'{"delta":{"stop_reason":"end_turn"}}'))
    with pytest.raises(UpstreamError, match="before message_stop"):
        parser.check_complete()


def test_ollama_final_line_with_old_key_order_and_omitted_counts() -> None:
    parser = ChatLineParser("ollama")
    chunks = parser.feed(b'{"message":{"content":"x"},"done_reason":"length","done":true}')
    assert chunks == [Chunk("x"), Chunk(finish_reason="length", usage=Usage(0, 0))]
    parser.check_complete()


def test_ollama_request_carries_the_options_that_change_the_answer() -> None:
    body = request_body(chat_request(seed=7, stop="END", top_p=0.9), "llama3.2")
    assert body["options"] == {
        "num_predict": 64,
        "temperature": 0.5,
        "seed": 7,
        "stop": ["END"],
        "top_p": 0.9,
    }
    assert body["stream"] is True


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        ("https://ollama.internal", "https://ollama.internal"),
    ],
)
def test_ollama_host_like_ollama_reads_it(host: str | None, url: str) -> None:
    assert host_url(host) == url
