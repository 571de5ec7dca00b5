"""POST /v1/messages (Anthropic Messages), as a raw ASGI endpoint.

A third front door to the same generations and logs as the native and OpenAI doors
(same Generations, same log, same responder), so it gets backpressure, detach
grace, limits, ownership, metrics and resume; only the request shape, the errors
and the wire differ. Every refusal before the first byte is Anthropic's error
envelope with the status Anthropic uses.

A POST that carries `Last-Event-ID` (header or `last_event_id` query) resumes the
stream its id names instead of generating again; an id `<stream_id>:<seq>.<part>`
(this wire writes one log event as up to three blocks) resumes inside event `seq`.
As this wire's blocks depend on the events before them (which block is open, which
index each tool call has), a resumed response reads the log from its start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from starlette.types import Receive, Scope, Send

from app.api.anthropic_request import MessagesCall, parse_messages_call
from app.api.collect import follow_to_end
from app.api.http import error_headers, header, read_body, send_empty, send_json
from app.api.streams import find_stream, last_event_id, services_of
from app.api.validation import parse_json_object
from app.core.events import Event, StreamMeta
from app.core.source import StreamSource, resume_point
from app.errors import BadLastEventId, InvalidRequest, NotFound, SluiceError, Unavailable
from app.providers.anthropic import AnthropicProvider
from app.services import Services
from app.sse import is_stream_id, parse_event_id
from app.streaming.responder import respond
from app.wire.anthropic_errors import STATUS_OF_TYPE, envelope, error_body, error_status
from app.wire.anthropic_errors import failure_type as anthropic_failure_type
from app.wire.anthropic_message import MessageBuilder
from app.wire.anthropic_messages import AnthropicWire

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class anthropic_endpoint:
    """A raw ASGI endpoint whose errors before the response started are Anthropic's."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.__name__ = handler.__name__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._handler(scope, receive, send)
        except SluiceError as exc:
            await send_json(send, error_status(exc), error_body(exc), error_headers(exc))


def anthropic_only(services: Services, model: object) -> bool:
    """Whether every target of `model` is an Anthropic provider (then the body goes
    to Anthropic as written)."""
    if not isinstance(model, str):
        return False
    try:
        targets = services.providers.resolve(model)
    except SluiceError:
        return False  # refused with its own error when the generation starts
    return all(isinstance(t.provider, AnthropicProvider) for t in targets)


def check_version(scope: Scope) -> None:
    """Anthropic refuses a request without `anthropic-version`; so does this door, so a
    client that works here works there. Any version is accepted: the wire is the same."""
    version = header(scope, b"anthropic-version")
    if version is None or not version.strip():
        raise InvalidRequest("anthropic-version: header is required", param="anthropic-version")


def parse_resume_id(value: str) -> tuple[str, int, int]:
    """`<stream_id>:<seq>` (part 0) or `<stream_id>:<seq>.<part>` -> (stream_id, seq,
    part); `<stream_id>:0` is the opening (`message_start`), before the first event."""
    text = value.strip()
    head, dot, part_text = text.rpartition(".")  # a stream id has no dot
    part = 0
    if dot:
        if not (part_text.isascii() and part_text.isdigit() and len(part_text) < 3):
            raise BadLastEventId(
                f"Last-Event-ID {value[:80]!r} has no valid part number", param="Last-Event-ID"
            )
        text, part = head, int(part_text)
        if part == 0:
            raise BadLastEventId(
                f"Last-Event-ID {value[:80]!r} is not an id Sluice wrote", param="Last-Event-ID"
            )
    stream_id, sep, seq_text = text.rpartition(":")
    if sep and seq_text == "0" and is_stream_id(stream_id):
        if part:
            raise BadLastEventId(
                f"Last-Event-ID {value[:80]!r}: the opening has no parts", param="Last-Event-ID"
            )
        return stream_id, 0, 0
    stream_id, seq = parse_event_id(text)
    return stream_id, seq, part


@anthropic_endpoint
async def create_message(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    check_version(scope)
    identity = services.auth.identify(scope)
    body = await read_body(scope, receive, services.settings.max_body_bytes)
    beta = header(scope, b"anthropic-beta")
    data = parse_json_object(body)
    native = anthropic_only(services, data.get("model"))
    call = parse_messages_call(data, services.limits, beta, native=native)
    resume = last_event_id(scope)
    if resume is not None:
        await _resume(scope, receive, send, services, call, resume, identity)
        return
    if services.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance")
    generation = await services.generations.start(call.request, identity)
    if call.stream:
        wire = AnthropicWire(generation.meta, fresh=True)
        await _stream(scope, receive, send, services, generation, 0, wire)
    else:
        await _complete(receive, send, generation)


async def _resume(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    call: MessagesCall,
    resume: str,
    identity: str,
) -> None:
    stream_id, seq, part = parse_resume_id(resume)
    if not call.stream:
        raise BadLastEventId(
            "Last-Event-ID resumes a stream; it needs 'stream': true", param="Last-Event-ID"
        )
    source = await find_stream(services, stream_id, identity)
    if source.meta.model != call.request.model:
        # A retry carries the original body: another model means another request.
        raise BadLastEventId(
            f"Last-Event-ID names a stream of model {source.meta.model!r}, "
            f"but the body asks for {call.request.model!r}",
            param="Last-Event-ID",
        )
    wire = AnthropicWire(source.meta, fresh=False)
    opened = await open_resumed(source, wire, seq, part, services.settings.heartbeat_s)
    if opened is None:
        await send_empty(send, 204)
        return
    resumed, after = opened
    delivery = await respond(
        scope, receive, send, resumed, after, wire, services.settings.heartbeat_s
    )
    services.generations.record(source, delivery)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    after: int,
    wire: AnthropicWire,
) -> None:
    point = await resume_point(source, after)
    if point is None:
        await send_empty(send, 204)
        return
    delivery = await respond(
        scope, receive, send, source, point, wire, services.settings.heartbeat_s
    )
    services.generations.record(source, delivery)


async def open_resumed(
    source: StreamSource, wire: AnthropicWire, seq: int, part: int, idle_s: float
) -> tuple[Resumed, int] | None:
    """Read the stream from its start up to the resume point's event `seq` (the
    wire's block state depends on every event before it), give the wire the rest of
    that event and whatever is already written after it as the response's opening;
    None when nothing is left (204). Raises before any byte is sent."""
    last, ended = await source.tail()
    if seq > last:
        raise BadLastEventId(
            f"Last-Event-ID names event {seq}, but the stream has {last} so far",
            param="Last-Event-ID",
        )
    batches = source.follow(0, idle_s)
    if seq == 0:  # the client holds message_start only: everything follows
        return Resumed(source.meta, batches, False), 0
    head: list[bytes] = []
    read = 0
    try:
        while read < seq:
            batch = await anext(batches, None)
            if batch is None:
                raise NotFound(f"event {seq} of the stream is no longer available")
            for event in batch:
                if event.seq < seq:
                    wire.skip(event)
                elif event.seq == seq:
                    head.append(wire.rest_of(event, part))
                else:
                    head.append(wire.encode([event]))
                read = event.seq
    except BaseException:
        await batches.aclose()
        raise
    complete = read == last and ended
    if complete and not any(head):
        await batches.aclose()
        return None
    wire.resume_head(b"".join(head))
    return Resumed(source.meta, batches, complete), read


class Resumed:
    """A resumed response's source: the batches after its opening, from the iterator
    that read up to it (one reader attachment, no second read of the log)."""

    def __init__(
        self, meta: StreamMeta, batches: AsyncGenerator[Sequence[Event], None], complete: bool
    ) -> None:
        self._meta = meta
        self._batches = batches
        self._complete = complete

    @property
    def meta(self) -> StreamMeta:
        return self._meta

    async def tail(self) -> tuple[int, bool]:  # pragma: no cover - the responder never asks
        raise NotImplementedError

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        async with contextlib.aclosing(self._batches) as batches:
            if self._complete:
                return
            async for batch in batches:
                yield batch


async def _complete(receive: Receive, send: Send, source: StreamSource) -> None:
    """stream: false — follow the log to its end, then answer with one `message`."""
    builder = MessageBuilder()
    terminal = await follow_to_end(receive, source, builder.feed)
    if terminal is None:
        return  # the client left; the generation's detach grace takes over
    headers = [(b"x-stream-id", source.meta.stream_id.encode())]
    if terminal.done is not None:
        await send_json(send, 200, builder.message(source.meta, terminal.done), headers)
        return
    assert terminal.failure is not None
    kind = anthropic_failure_type(terminal.failure.type, terminal.failure.code)
    body = envelope(kind, terminal.failure.message)
    await send_json(send, STATUS_OF_TYPE[kind], body, headers)
