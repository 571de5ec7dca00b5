"""The OpenAI Responses front door, as raw ASGI endpoints.

POST /v1/responses, GET /v1/responses/{id} (`?stream=true&starting_after=N`),
POST /v1/responses/{id}/cancel, DELETE /v1/responses/{id}.

A response is a generation like any other (same Generations, same log, same
responder, limits and ownership); only the encoding differs, and a record
(app/resume/responses.py) keeps what the response echoes and the
conversation for `previous_response_id`. Its id is `resp_<stream id>`.

A background response is held: it runs to its end whether or not anyone
reads it (no detach grace), and still takes one of its key's stream slots.
"""

from __future__ import annotations

import contextlib

from starlette.types import Receive, Scope, Send

from app.api.chat import failure_status
from app.api.collect import follow_to_end
from app.api.http import read_body
from app.api.responses_validation import ResponsesCreate, parse_responses_create
from app.api.streams import (
    endpoint,
    find_resumed,
    last_event_id,
    send_stream,
    services_of,
)
from app.api.validation import parse_json_object
from app.core.source import StreamSource
from app.errors import InvalidRequest, NotFound, SluiceError, Unavailable
from app.http_io import query_params, send_json
from app.providers.base import CalledTool, Message, RedactedThinking, Thinking, Thought
from app.resume.responses import ResponseRecord
from app.services import Services
from app.sse import EventId, is_stream_id
from app.streaming.generation import Generation
from app.wire.openai import error_body
from app.wire.openai_responses import ResponsesWire
from app.wire.responses_fold import Item, ResponseFold
from app.wire.responses_object import ResponseHead, stream_id_of, to_object

_IDLE_S = 3600.0  # no heartbeat while collecting: idle wake-ups would only be ignored


def _not_found(response_id: str, param: str | None = None) -> NotFound:
    return NotFound(
        f"no response {response_id[:80]!r} (unknown, expired, deleted or not yours)",
        param=param,
        code="response_not_found",
    )


async def _record(services: Services, response_id: str, identity: str) -> ResponseRecord:
    stream_id = stream_id_of(response_id)
    record = None
    if stream_id is not None and is_stream_id(stream_id):
        record = await services.responses.get(stream_id)
    if record is None or record.owner != identity:
        raise _not_found(response_id)
    return record


async def _source(services: Services, record: ResponseRecord) -> StreamSource:
    source = await services.generations.find(record.head.stream_id)
    if source is None:  # the log went before its record (it expired, or its store lost it)
        raise _not_found(record.head.response_id)
    return source


async def snapshot(source: StreamSource) -> ResponseFold:
    """The log as it stands now, folded; waits for nothing that is not written yet."""
    fold = ResponseFold(source.meta.stream_id)
    last, _ = await source.tail()
    if last == 0:
        return fold
    async with contextlib.aclosing(source.follow(0, _IDLE_S)) as batches:
        async for batch in batches:
            fold.add_all(batch)
            if batch and batch[-1].seq >= last:
                break
    return fold


# ---- POST /v1/responses --------------------------------------------------


@endpoint
async def create_response(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    identity = services.auth.identify(scope)
    body = await read_body(scope, receive, services.settings.max_body_bytes)
    create = parse_responses_create(parse_json_object(body), services.limits)
    resume = last_event_id(scope)
    if resume is not None:
        await _resume(scope, receive, send, services, create, resume, identity)
        return
    if services.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance")
    history = await _history(services, create.previous_response_id, identity)
    generation = await services.generations.start(create.upstream(history), identity)
    meta = generation.meta
    head = ResponseHead(meta.stream_id, meta.created, meta.model, create.background, create.echo)
    record = ResponseRecord(head, identity, create.store, history + create.request.messages)
    try:
        await services.responses.put(record)
    except SluiceError:
        generation.cancel()  # a response nobody could find again must not run
        raise
    services.keep(_expire_after_end(services, generation))
    if create.background:
        generation.hold()
    if create.stream:
        await _stream(scope, receive, send, services, generation, head, None)
    elif create.background:
        fold = await snapshot(generation)
        await send_json(send, 200, to_object(head, fold), _headers(head))
    else:
        await _complete(receive, send, generation, head)


async def _expire_after_end(services: Services, generation: Generation) -> None:
    await generation.wait_ended()
    with contextlib.suppress(SluiceError):  # the record keeps its running TTL instead
        await services.responses.ended(generation.meta.stream_id)


async def _history(
    services: Services, previous_id: str | None, identity: str
) -> tuple[Message, ...]:
    """The earlier turns a `previous_response_id` names: its conversation and its answer."""
    if previous_id is None:
        return ()
    param = "previous_response_id"
    try:
        record = await _record(services, previous_id, identity)
    except NotFound:
        raise _not_found(previous_id, param) from None
    if not record.store:
        raise InvalidRequest(
            f"response {previous_id!r} was created with 'store': false and was not kept",
            param=param,
        )
    source = await _source(services, record)
    _, ended = await source.tail()
    if not ended:
        raise InvalidRequest(f"response {previous_id!r} is still in progress", param=param)
    fold = await snapshot(source)
    return record.history + answer_of(fold)


def answer_of(fold: ResponseFold) -> tuple[Message, ...]:
    """A response's output as the assistant turn of the history: its text (or, with
    none, its refusal), its function calls, and its signed reasoning, read as the
    same items would be in `input` (app/api/responses_items.py)."""
    calls = tuple(
        CalledTool(item.call_id, item.name, "".join(item.arguments))
        for item in fold.items
        if item.kind == "function_call"
    )
    text = fold.text or fold.refusal
    if not text and not calls:
        return ()  # reasoning alone answers nothing: left out, as in the input
    # Reasoning after the last answer item belongs to no answer: left out, as in the input.
    last = max(i for i, item in enumerate(fold.items) if item.kind != "reasoning")
    thoughts = (_thought_of(item) for item in fold.items[:last] if item.kind == "reasoning")
    reasoning = tuple(t for t in thoughts if t is not None)
    return (Message("assistant", text, tool_calls=calls, reasoning=reasoning),)


def _thought_of(item: Item) -> Thought | None:
    if not item.encrypted:
        return None  # unsigned: nothing a provider could verify
    if not item.summary:
        return RedactedThinking("".join(item.encrypted))
    return Thinking("".join(item.summary), "".join(item.encrypted))


async def _resume(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    create: ResponsesCreate,
    resume: str,
    identity: str,
) -> None:
    """A retried POST with Last-Event-ID: the rest of the same response, never a new one."""
    source, start = await find_resumed(services, resume, identity, stream=create.stream)
    record = await _record(services, f"resp_{start.stream_id}", identity)
    await _stream(scope, receive, send, services, source, record.head, start)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Services,
    source: StreamSource,
    head: ResponseHead,
    start: EventId | None,
    starting_after: int = -1,
) -> None:
    wire = ResponsesWire(head, starting_after)
    await send_stream(scope, receive, send, services, source, wire, start, _headers(head))


def _headers(head: ResponseHead) -> list[tuple[bytes, bytes]]:
    return [(b"x-response-id", head.response_id.encode())]


async def _complete(receive: Receive, send: Send, source: StreamSource, head: ResponseHead) -> None:
    """stream: false: follow the log to its end, then answer in one piece."""
    fold = ResponseFold(head.stream_id)

    terminal = await follow_to_end(receive, source, fold.add_all)
    if terminal is None:
        return  # the client left; the generation's detach grace takes over
    fold.add_all([terminal])
    failure = fold.terminal.failure if fold.terminal is not None else None
    if failure is not None and failure.type != "cancelled":
        await send_json(send, failure_status(failure), error_body(failure), _headers(head))
        return
    await send_json(send, 200, to_object(head, fold), _headers(head))


# ---- GET, cancel, DELETE -------------------------------------------------


def _starting_after(params: dict[str, str]) -> int:
    raw = params.get("starting_after")
    if raw is None or raw == "":
        return -1
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise InvalidRequest(
            "'starting_after' must be a non-negative integer", param="starting_after"
        )
    return int(raw)


@endpoint
async def retrieve_response(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    identity = services.auth.identify(scope)
    record = await _record(services, scope["path_params"]["response_id"], identity)
    source = await _source(services, record)
    params = query_params(scope)
    if params.get("stream") in ("true", "1"):
        after = _starting_after(params)
        await _stream(scope, receive, send, services, source, record.head, None, after)
        return
    fold = await snapshot(source)
    await send_json(send, 200, to_object(record.head, fold), _headers(record.head))


@endpoint
async def cancel_response(scope: Scope, receive: Receive, send: Send) -> None:
    """Stop the run (its upstream call is closed); answering again after the end is the same."""
    services = services_of(scope)
    identity = services.auth.identify(scope)
    record = await _record(services, scope["path_params"]["response_id"], identity)
    source = await _source(services, record)
    _, ended = await source.tail()
    if not ended:
        await services.generations.cancel(record.head.stream_id)
    fold = await snapshot(source)
    await send_json(send, 200, to_object(record.head, fold), _headers(record.head))


@endpoint
async def delete_response(scope: Scope, receive: Receive, send: Send) -> None:
    """Forget the response: a running one is cancelled first."""
    services = services_of(scope)
    identity = services.auth.identify(scope)
    record = await _record(services, scope["path_params"]["response_id"], identity)
    source = await services.generations.find(record.head.stream_id)
    if source is not None and not (await source.tail())[1]:
        await services.generations.cancel(record.head.stream_id)
    await services.responses.delete(record.head.stream_id)
    body = {"id": record.head.response_id, "object": "response", "deleted": True}
    await send_json(send, 200, body)
