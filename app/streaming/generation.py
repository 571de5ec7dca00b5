"""One generation: a driver task per stream that runs its producer, its timers
and its readers' comings and goings, acting on the pure lifecycle
(`app/core/lifecycle.py`).

Strategy: readers never touch the upstream. They report to the lifecycle
(attached, delivered, gone) and the driver alone cancels the producer, so a
reader's disconnect never lands inside an upstream read. The producer and the
presence check run in the driver's `TaskGroup`: a stop is the driver
cancelling its child, never a task cancelling itself, and a driver that is
itself cancelled (the loop going away) takes its children with it. The timers
(first token, idle, grace) are one timer handle for the lifecycle's next
deadline: a token moves the deadline with an attribute write, and the handle is
re-armed only when it fires early.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from app.core.events import Done, Event, Failure, StreamMeta, Usage
from app.core.lifecycle import (
    CheckElsewhere,
    Decision,
    Lifecycle,
    Phase,
    Resume,
    Stop,
    StopReason,
    Timeouts,
)
from app.errors import (
    Abandoned,
    Cancelled,
    SluiceError,
    StreamEnded,
    UpstreamError,
    UpstreamTimeout,
)
from app.observability import metrics
from app.providers.base import ChatRequest, Chunk
from app.resume.base import LogSink
from app.streaming.log import EventLog

ABANDONED = "every reader left and the detach grace expired"
log = structlog.get_logger("sluice.stream")


@dataclass(slots=True)
class Stats:
    """Counted in locals on the hot path, read once at the end."""

    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    ended: float | None = None
    tokens: int = 0
    attaches: int = 0
    send_blocked_s: float = 0.0
    bytes_sent: int = 0
    outcome: str = "running"
    provider: str = ""  # of the target that answered (a fallback moves it)
    upstream_opened: float | None = None  # that target's stream was opened
    reported_output_tokens: int | None = None  # the provider's usage, when it gave one

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.started) * 1000

    @property
    def upstream_ttft_ms(self) -> float | None:
        if self.first_token is None or self.upstream_opened is None:
            return None
        return (self.first_token - self.upstream_opened) * 1000

    @property
    def output_tokens(self) -> int:
        reported = self.reported_output_tokens
        return self.tokens if reported is None else reported

    @property
    def reconnections(self) -> int:
        return max(0, self.attaches - 1)

    def tokens_per_second(self, now: float) -> float | None:
        if self.first_token is None or self.tokens < 2 or now <= self.first_token:
            return None
        return (self.tokens - 1) / (now - self.first_token)


ChunkSource = Callable[[ChatRequest], AsyncIterator[Chunk]]
WantedElsewhere = Callable[[], Awaitable[bool]]


class Generation:
    def __init__(
        self,
        meta: StreamMeta,
        request: ChatRequest,
        chunks: ChunkSource,
        timeouts: Timeouts,
        on_end: Callable[[Generation], None] = lambda g: None,
        sink: LogSink | None = None,
        wanted_elsewhere: WantedElsewhere | None = None,  # None: no other process
        stats: Stats | None = None,
    ) -> None:
        self.meta = meta
        self.request = request
        self.log = EventLog()
        self.stats = Stats() if stats is None else stats  # given: timed from request arrival
        self._chunks = chunks
        self._timeouts = timeouts
        self._on_end = on_end
        self._sink = sink
        self._wanted_elsewhere = wanted_elsewhere
        self._loop = loop = asyncio.get_running_loop()
        self._life = Lifecycle(timeouts, shared=wanted_elsewhere is not None)
        self._credit: asyncio.Future[None] | None = None
        self._stop_error: SluiceError | None = None
        self._wake: asyncio.Future[None] | None = None  # set while the driver sleeps
        self._check_due = False
        # Strategy: a future made by the first `wait_ended()`, not an
        # `asyncio.Event` (its deque is ~0.7 KB per open stream, rarely awaited).
        self._finished = False
        self._ended: asyncio.Future[None] | None = None
        self._task = loop.create_task(self._drive(), name=f"sluice-generation-{meta.stream_id}")

    # ---- what others ask of it ---------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._life.phase

    @property
    def readers(self) -> int:
        return self._life.readers

    def stop(self, error: StreamEnded | UpstreamTimeout) -> bool:
        """End the generation with `error` unless it is ending already."""
        if not self._life.stop():
            return False
        self._stop_error = error
        self._poke()
        return True

    def cancel(self) -> bool:
        return self.stop(Cancelled("the stream was cancelled"))

    def hold(self) -> None:
        """Shutdown with a shared store: readers are released to resume on another
        process, so their leaving must not abandon the generation; it runs free
        (no credit) until it ends or the graceful timeout stops it."""
        self._act(self._life.hold())

    async def wait_ended(self) -> None:
        if self._finished:
            return
        if self._ended is None:
            self._ended = self._loop.create_future()
        await asyncio.shield(self._ended)  # one waiter cancelled must not end it for all

    # ---- the driver --------------------------------------------------------

    async def _drive(self) -> None:
        life = self._life
        loop = self._loop
        checks: list[asyncio.Task[None]] = []
        stopped = False
        self._act(life.start(loop.time()))
        async with asyncio.TaskGroup() as group:
            producer = group.create_task(
                self._produce(), name=f"sluice-producer-{self.meta.stream_id}"
            )
            producer.add_done_callback(self._poke)
            while not producer.done():
                if life.phase is Phase.STOPPING:
                    stopped = producer.cancel()
                    break
                if self._check_due:
                    self._check_due = False
                    checks.append(group.create_task(self._check_elsewhere()))
                await self._sleep_until(life.next_deadline())
                self._act(life.tick(loop.time()))
            for check in checks:  # an answer now has nothing left to decide
                check.cancel()
        if stopped:
            assert self._stop_error is not None
            terminal = self._failure(self._stop_error)
        else:
            terminal = producer.result()
        await self._finish(terminal)

    async def _sleep_until(self, deadline: float) -> None:
        """Until `deadline` (loop time) or a `_poke`, whichever comes first."""
        loop = self._loop
        wake = self._wake = loop.create_future()
        timer = None if deadline == math.inf else loop.call_at(deadline, _wake, wake)
        try:
            await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _poke(self, _: object = None) -> None:
        """Wake the driver: something it decides on has changed."""
        if self._wake is not None:
            _wake(self._wake)

    def _act(self, decision: Decision) -> None:
        if decision is None:
            return
        if isinstance(decision, Resume):
            if self._credit is not None and not self._credit.done():
                self._credit.set_result(None)
        elif isinstance(decision, CheckElsewhere):
            self._check_due = True
            self._poke()
        else:
            if self._stop_error is None:
                self._stop_error = self._error_for(decision)
            self._poke()

    def _error_for(self, stop: Stop) -> SluiceError:
        if stop.reason is StopReason.FIRST_TOKEN_TIMEOUT:
            return UpstreamTimeout(f"no first token within {self._timeouts.first_token_s:g} s")
        if stop.reason is StopReason.IDLE_TIMEOUT:
            return UpstreamTimeout(f"no token for {self._timeouts.idle_s:g} s")
        return Abandoned(ABANDONED)

    async def _check_elsewhere(self) -> None:
        """Readers in other processes count too: while there are any, the
        lifecycle waits another grace."""
        assert self._wanted_elsewhere is not None
        try:
            wanted = await self._wanted_elsewhere()
        except Exception:
            log.exception("stream.presence_check_failed", stream_id=self.meta.stream_id)
            wanted = False
        self._act(self._life.elsewhere(wanted, self._loop.time()))
        self._poke()  # a new grace is a new deadline

    # ---- the producer ------------------------------------------------------

    async def _produce(self) -> Event:
        """The terminal event (not yet appended); cancelled only by the driver."""
        try:
            return await self._pull()
        except SluiceError as exc:
            return self._failure(exc)
        except Exception:
            log.exception("stream.producer_crashed", stream_id=self.meta.stream_id)
            return self._failure(UpstreamError("internal error in the gateway"))

    async def _pull(self) -> Event:
        """Pull chunks into the log; return the terminal event (not yet appended)."""
        log_ = self.log
        stats = self.stats
        life = self._life
        clock = self._loop.time
        sink = self._sink
        stats.upstream_opened = time.monotonic()  # a fallback chain re-stamps it per target
        chunks = self._chunks(self.request)
        try:
            async for chunk in chunks:
                if chunk.text or chunk.call is not None:
                    if stats.first_token is None:
                        stats.first_token = time.monotonic()
                    stats.tokens += 1
                    if chunk.kind == "token":
                        event = log_.token(chunk.text)
                    else:
                        event = log_.delta(chunk.kind, chunk.text, chunk.call_index, chunk.call)
                    if sink is not None:
                        sink.append(event)
                    if life.appended(event.seq, clock()):
                        await self._wait_for_credit()
                if chunk.finish_reason is not None:
                    return self._done(chunk)
        finally:
            await _aclose(chunks)
        raise UpstreamError("the upstream ended the stream without a finish reason")

    async def _wait_for_credit(self) -> None:
        self._credit = self._loop.create_future()
        try:
            await self._credit
        finally:
            self._credit = None
        self._life.resumed(self._loop.time())
        self._poke()  # the idle timeout runs again

    def _done(self, chunk: Chunk) -> Event:
        assert chunk.finish_reason is not None
        stats = self.stats
        usage = chunk.usage or Usage(0, stats.tokens)
        if chunk.usage is not None:
            stats.reported_output_tokens = chunk.usage.output_tokens
        done = Done(
            finish_reason=chunk.finish_reason,
            usage=usage,
            ttft_ms=None if stats.ttft_ms is None else round(stats.ttft_ms, 1),
            tokens_per_second=_round(stats.tokens_per_second(time.monotonic())),
        )
        return Event(self.log.last_seq + 1, "done", done=done)

    def _failure(self, error: SluiceError) -> Event:
        failure = Failure(error.type, error.message, error.retryable, error.code)
        return Event(self.log.last_seq + 1, "error", failure=failure)

    async def _finish(self, terminal: Event) -> None:
        self.stats.ended = time.monotonic()
        self.stats.outcome = terminal.kind if terminal.failure is None else terminal.failure.type
        self.log.append(terminal)
        self._life.ended()
        if self._sink is not None:
            self._sink.append(terminal)
            try:
                await self._sink.close()
            except Exception:  # readers here have the log; elsewhere the lease expires
                log.exception("stream.mirror_failed", stream_id=self.meta.stream_id)
        self._finished = True
        if self._ended is not None:
            self._ended.set_result(None)
        self._on_end(self)

    # ---- readers -----------------------------------------------------------

    async def tail(self) -> tuple[int, bool]:
        return self.log.last_seq, self.log.ended

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """Batches of events after `after`, until the terminal one; `()` when idle.

        Attached for as long as the iterator is open; the consumer asking for
        the next batch means the previous one was sent, which is the credit.
        """
        self._attach(after)
        try:
            log_ = self.log
            while True:
                batch = log_.after(after)
                if batch:
                    yield batch
                    after = batch[-1].seq
                    if batch[-1].terminal:
                        return
                    self._delivered_up_to(after)
                elif log_.ended:
                    return
                elif not await log_.wait(idle_s):
                    yield ()
        finally:
            self._detach()

    def _attach(self, after: int) -> None:
        self._life.attach(after)
        self.stats.attaches += 1
        metrics.ATTACHED_READERS.inc()
        if self.stats.attaches > 1:
            metrics.RECONNECTIONS.inc()

    def _delivered_up_to(self, seq: int) -> None:
        life = self._life
        if seq > life.delivered:
            self.log.delivered(seq)
            self._act(life.delivered_up_to(seq))

    def _detach(self) -> None:
        metrics.ATTACHED_READERS.dec()
        self._act(self._life.detach(self._loop.time()))
        self._poke()  # a grace is a new deadline


def _wake(future: asyncio.Future[None], _: object = None) -> None:
    if not future.done():
        future.set_result(None)


async def _aclose(chunks: AsyncIterator[Chunk]) -> None:
    """Close the provider's iterator: this is what releases the upstream connection."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
