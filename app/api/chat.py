"""POST /v1/chat/completions (docs/api.md, OpenAI-compatible), as a raw ASGI endpoint.

One pipeline, two encodings: a chat completion is a generation like any
native stream (same Generations, same log, same responder); only the wire
differs. A POST that carries `Last-Event-ID` (header or `last_event_id`
query) resumes the stream its id names instead of generating again; it is
validated exactly as the native GET is (owner check, 204 after the end).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Receive, Scope, Send

from app.api.chat_validation import ChatCompletion, parse_chat_completion
from app.api.collect import follow_to_end
from app.api.http import read_body
from app.api.streams import (
    endpoint,
    find_resumed,
    last_event_id,
    send_stream,
    services_of,
)
from app.api.validation import parse_json_object
from app.core.events import Event, Failure
from app.core.source import StreamSource
from app.errors import (
    Abandoned,
    Cancelled,
    InvalidRequest,
    ShuttingDown,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from app.http_io import send_json
from app.services import Services
from app.sse import EventId
from app.wire.completion import Answer, completion_body
from app.wire.openai import OpenAIWire, error_body

# A failed generation's HTTP status for a non-streaming request, by wire type.
_STATUS_OF: dict[str, int] = {
    cls.type: cls.status
    for cls in (
        UpstreamError,
        UpstreamTimeout,
        UpstreamRateLimited,
        Cancelled,
        Abandoned,
        ShuttingDown,
        InvalidRequest,
    )
}


def failure_status(failure: Failure) -> int:
    return _STATUS_OF.get(failure.type, UpstreamError.status)


@endpoint
async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    identity = services.auth.identify(scope)
    body = await read_body(scope, receive, services.settings.max_body_bytes)
    chat = parse_chat_completion(parse_json_object(body), services.limits)
    resume = last_event_id(scope)
    if resume is not None:
        await _resume(scope, receive, send, services, chat, resume, identity)
        return
    if services.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance")
    generation = await services.generations.start(chat.request, identity)
    if chat.stream:
        await _stream(scope, receive, send, services, generation, None, chat)
    else:
        await _complete(receive, send, generation)


async def _resume(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    chat: ChatCompletion,
    resume: str,
    identity: str,
) -> None:
    source, start = await find_resumed(
        services, resume, identity, stream=chat.stream, model=chat.request.model
    )
    await _stream(scope, receive, send, services, source, start, chat)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    start: EventId | None,
    chat: ChatCompletion,
) -> None:
    wire = OpenAIWire(source.meta, include_usage=chat.include_usage)
    await send_stream(scope, receive, send, services, source, wire, start)


async def _complete(receive: Receive, send: Send, source: StreamSource) -> None:
    """stream: false — follow the log to its end, then answer in one piece."""
    answer = Answer()

    def feed(batch: Sequence[Event]) -> None:
        for event in batch:
            answer.add(event)

    terminal = await follow_to_end(receive, source, feed)
    if terminal is None:
        return  # the client left; the generation's detach grace takes over
    headers = [(b"x-stream-id", source.meta.stream_id.encode())]
    if terminal.done is not None:
        await send_json(send, 200, completion_body(source.meta, answer, terminal.done), headers)
    else:
        assert terminal.failure is not None
        failure = terminal.failure
        await send_json(send, failure_status(failure), error_body(failure), headers)
