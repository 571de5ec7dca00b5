"""POST /v1/messages (Anthropic Messages), as a raw ASGI endpoint.

A third front door to the same generations and logs as the native and OpenAI doors
(same Generations, same log, same responder), so it gets backpressure, detach
grace, limits, ownership, metrics and resume; only the request shape, the errors
and the wire differ. Every refusal before the first byte is Anthropic's error
envelope with the status Anthropic uses.

A POST that carries `Last-Event-ID` (header or `last_event_id` query) resumes the
stream its id names instead of generating again; an id `<stream_id>:<seq>.<part>`
(this wire writes one log event as up to three blocks) resumes inside event `seq`.
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
from app.errors import BadLastEventId, InvalidRequest, SluiceError, Unavailable
from app.services import Services
from app.sse import is_stream_id, parse_event_id
from app.streaming.responder import respond
from app.wire.anthropic_errors import STATUS_OF_TYPE, envelope, error_body, error_status
from app.wire.anthropic_errors import failure_type as anthropic_failure_type
from app.wire.anthropic_message import MessageBuilder
from app.wire.anthropic_messages import MAX_PART, AnthropicWire

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


def check_version(scope: Scope) -> None:
    """Anthropic refuses a request without `anthropic-version`; so does this door, so a
    client that works here works there. Any version is accepted: the wire is the same."""
    version = header(scope, b"anthropic-version")
    if version is None or not version.strip():
        raise InvalidRequest("anthropic-version: header is required", param="anthropic-version")


def parse_resume_id(value: str) -> tuple[str, int, int]:
    """`<stream_id>:<seq>` or `<stream_id>:<seq>.<part>` -> (stream_id, seq, part);
    `<stream_id>:0` (the id of `message_start`) resumes before the first event."""
    text = value.strip()
    head, dot, part_text = text.rpartition(".")  # a stream id has no dot
    part = 0
    if dot and part_text.isascii() and part_text.isdigit() and len(part_text) < 3:
        text, part = head, int(part_text)
        if not 1 <= part <= MAX_PART:
            raise BadLastEventId(
                f"Last-Event-ID {value[:80]!r}: no such block of an event", param="Last-Event-ID"
            )
    stream_id, sep, seq_text = text.rpartition(":")
    if sep and seq_text == "0" and not part and is_stream_id(stream_id):
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
    call = parse_messages_call(parse_json_object(body), services.limits, beta)
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
    after = seq - 1 if part else seq
    last, _ = await source.tail()
    if seq > last:
        raise BadLastEventId(
            f"Last-Event-ID names event {seq}, but the stream has {last} so far",
            param="Last-Event-ID",
        )
    wire = AnthropicWire(source.meta, fresh=False, skip_seq=seq, skip_parts=part)
    await _stream(scope, receive, send, services, Replayed(source, wire, after), after, wire)


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


class Replayed:
    """A stream followed from its start for a resumed response: the events up to the
    resume point only advance the wire's block state (which block is open, which
    index each tool call has), and the rest is written as usual."""

    def __init__(self, source: StreamSource, wire: AnthropicWire, through: int) -> None:
        self._source = source
        self._wire = wire
        self._through = through

    @property
    def meta(self) -> StreamMeta:
        return self._source.meta

    async def tail(self) -> tuple[int, bool]:
        return await self._source.tail()

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        through = self._through
        async with contextlib.aclosing(self._source.follow(0, idle_s)) as batches:
            async for batch in batches:
                if batch and batch[0].seq <= through:
                    for event in batch:
                        if event.seq <= through:
                            self._wire.skip(event)
                    batch = [e for e in batch if e.seq > through]
                    if not batch:
                        continue
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
    kind = anthropic_failure_type(terminal.failure.type)
    body = envelope(kind, terminal.failure.message)
    await send_json(send, STATUS_OF_TYPE[kind], body, headers)
