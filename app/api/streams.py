"""The native stream API (docs/api.md, native streams), as raw ASGI endpoints.

POST /v1/streams, GET /v1/streams/{id}, DELETE /v1/streams/{id}, and the
one-shot GET /v1/stream. Everything that can fail is checked before the
response starts, so errors are plain HTTP statuses with a JSON body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.types import Receive, Scope, Send

from app.api.http import read_body
from app.api.validation import parse_json_object, parse_oneshot_query, parse_stream_request
from app.core.source import StreamSource
from app.errors import BadLastEventId, NotFound, SluiceError, Unavailable
from app.http_io import header, query_params, send_empty, send_error, send_json
from app.services import Services
from app.sse import EventId, is_stream_id, parse_event_id
from app.streaming.opening import open_response
from app.streaming.responder import respond
from app.wire.framing import FramedWire
from app.wire.native import NativeWire

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


def services_of(scope: Scope) -> Services:
    services: Services = scope["state"]["services"]
    return services


class endpoint:
    """A raw ASGI endpoint (Starlette routes a non-function endpoint as ASGI);
    a SluiceError raised before the response started becomes its JSON error."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.__name__ = handler.__name__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._handler(scope, receive, send)
        except SluiceError as exc:
            await send_error(send, exc)


def last_event_id(scope: Scope) -> str | None:
    """The resume point a client sent: the header (what EventSource sends) or the query."""
    value = header(scope, b"last-event-id")
    if value is None or not value.strip():
        value = query_params(scope).get("last_event_id")
    return value if value and value.strip() else None


def _not_found(stream_id: str) -> NotFound:
    return NotFound(
        f"no stream {stream_id[:64]!r} (unknown, expired or not yours)", code="stream_not_found"
    )


async def find_stream(services: Services, stream_id: str, identity: str) -> StreamSource:
    """The stream if it exists and belongs to `identity`; otherwise 404, never 403."""
    source = await services.generations.find(stream_id) if is_stream_id(stream_id) else None
    if source is None or source.meta.owner != identity:
        raise _not_found(stream_id)
    return source


async def find_resumed(
    services: Services, resume: str, identity: str, *, stream: bool, model: str | None = None
) -> tuple[StreamSource, EventId]:
    """The stream a retried POST with `Last-Event-ID` resumes, and where; the body must
    ask for a stream, and (`model` given) for the stream's own model."""
    start = parse_event_id(resume)
    if not stream:
        raise BadLastEventId(
            "Last-Event-ID resumes a stream; it needs 'stream': true", param="Last-Event-ID"
        )
    source = await find_stream(services, start.stream_id, identity)
    if model is not None and source.meta.model != model:
        # A retry carries the original body: another model means another request.
        raise BadLastEventId(
            f"Last-Event-ID names a stream of model {source.meta.model!r}, "
            f"but the body asks for {model!r}",
            param="Last-Event-ID",
        )
    return source, start


async def send_stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    wire: FramedWire,
    start: EventId | None,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """One SSE response of any door: from the beginning (`start` None) or after
    the block `start` names, on `wire`; 204 when nothing is left to send."""
    opening = await open_response(source, wire, start, services.settings.heartbeat_s)
    if opening is None:
        await send_empty(send, 204)
        return
    stream_id = source.meta.stream_id
    delivery = await respond(scope, receive, send, stream_id, opening, wire, extra_headers)
    services.generations.record(source, delivery)


async def stream_events(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    start: EventId | None,
) -> None:
    wire = NativeWire(source.meta.stream_id, services.settings.retry_ms)
    await send_stream(scope, receive, send, services, source, wire, start)


@endpoint
async def create_stream(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    owner = services.auth.identify(scope)
    body = await read_body(scope, receive, services.settings.max_body_bytes)
    request = parse_stream_request(parse_json_object(body), services.limits)
    if services.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance")
    generation = await services.generations.start(request, owner)
    meta = generation.meta
    url = services.auth.stream_url(meta.stream_id, owner)
    await send_json(
        send,
        201,
        {"id": meta.stream_id, "url": url, "model": meta.model, "created": meta.created},
        [(b"location", url.encode())],
    )


@endpoint
async def get_stream(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    stream_id: str = scope["path_params"]["stream_id"]
    identity = services.auth.identify(scope, stream_id)
    source = await find_stream(services, stream_id, identity)
    start = None
    resume = last_event_id(scope)
    if resume is not None:
        start = parse_event_id(resume)
        if start.stream_id != stream_id:
            raise BadLastEventId(
                "Last-Event-ID names another stream than the URL", param="Last-Event-ID"
            )
    await stream_events(scope, receive, send, services, source, start)


@endpoint
async def delete_stream(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    stream_id: str = scope["path_params"]["stream_id"]
    identity = services.auth.identify(scope)
    await find_stream(services, stream_id, identity)
    await services.generations.cancel(stream_id)
    await send_empty(send, 204)


@endpoint
async def oneshot_stream(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    resume = last_event_id(scope)
    if resume is not None:
        start = parse_event_id(resume)
        identity = services.auth.identify(scope, start.stream_id)
        source = await find_stream(services, start.stream_id, identity)
        await stream_events(scope, receive, send, services, source, start)
        return
    identity = services.auth.identify(scope)
    request = parse_oneshot_query(query_params(scope), services.limits)
    if services.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance")
    generation = await services.generations.start(request, identity)
    await stream_events(scope, receive, send, services, generation, None)
