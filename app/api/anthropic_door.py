"""POST /v1/messages (Anthropic Messages), as a raw ASGI endpoint.

A third front door to the same generations and logs as the native and OpenAI doors
(same Generations, same log, same responder), so it gets backpressure, detach
grace, limits, ownership, metrics and resume; only the request shape, the errors
and the wire differ. Every refusal before the first byte is Anthropic's error
envelope with the status Anthropic uses.

A POST that carries `Last-Event-ID` (header or `last_event_id` query) resumes the
stream its id names instead of generating again; an id `<stream_id>:<seq>.<part>`
(this wire writes one log event as up to three blocks) resumes inside event `seq`.
Where a response starts is `app.streaming.opening.open_response`'s, as on every wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from app.api.anthropic_request import MessagesCall, parse_messages_call
from app.api.collect import follow_to_end
from app.api.http import read_body
from app.api.streams import find_resumed, last_event_id, send_stream, services_of
from app.api.validation import parse_json_object
from app.core.source import StreamSource
from app.errors import InvalidRequest, SluiceError, Unavailable
from app.http_io import error_headers, header, send_json
from app.providers.anthropic import AnthropicProvider
from app.services import Services
from app.sse import EventId
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
        await _stream(scope, receive, send, services, generation, None)
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
    source, start = await find_resumed(
        services, resume, identity, stream=call.stream, model=call.request.model
    )
    await _stream(scope, receive, send, services, source, start)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    start: EventId | None,
) -> None:
    wire = AnthropicWire(source.meta)
    await send_stream(scope, receive, send, services, source, wire, start)


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
