"""One generation: a producer task that fills the stream's log, and its readers.

Strategy: readers never touch the upstream. Only the generation's own
lifecycle (done, upstream error, timeout, DELETE, grace expiry, shutdown)
cancels the producer, so a reader's disconnect can never land inside an
upstream read. While readers are attached the producer runs at most
`CREDIT_WINDOW` events ahead of the fastest reader's completed `send`: a
stalled client stalls the upstream read, and nothing grows. With no reader
attached it runs free for the detach grace (the log is bounded by
max_tokens), then it is cancelled, which closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from app.core.events import Done, Event, Failure, StreamMeta, Usage
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
from app.streaming.watchdog import Watchdog

CREDIT_WINDOW = 32
ABANDONED = "every reader left and the detach grace expired"
log = structlog.get_logger("sluice.stream")


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # a stop was requested; the producer is unwinding
    ENDED = "ended"  # the terminal event is in the log


class IllegalTransition(RuntimeError):
    pass


_ALLOWED = {
    (State.RUNNING, State.STOPPING),
    (State.RUNNING, State.ENDED),
    (State.STOPPING, State.ENDED),
}


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_token_s: float
    idle_s: float
    detach_grace_s: float
    attach_s: float  # how long a stream nobody has opened yet waits for its first reader


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
        self.state = State.RUNNING
        self._chunks = chunks
        self._timeouts = timeouts
        self._on_end = on_end
        self._sink = sink
        self._wanted_elsewhere = wanted_elsewhere
        self._readers = 0
        self._delivered = 0  # highest seq whose send completed, over all readers
        self._credit: asyncio.Future[None] | None = None
        self._stop_error: SluiceError | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._held = False  # shutdown: runs to its end whether or not readers stay
        self._checking: asyncio.Task[None] | None = None
        self._watchdog = Watchdog(self._timed_out)
        # Strategy: a future made by the first `wait_ended()`, not an
        # `asyncio.Event` (its deque is ~0.7 KB per open stream, rarely awaited).
        self._finished = False
        self._ended: asyncio.Future[None] | None = None
        self._task = asyncio.get_running_loop().create_task(
            self._produce(), name=f"sluice-generation-{meta.stream_id}"
        )
        self._start_grace(timeouts.attach_s)

    # ---- lifecycle -------------------------------------------------------

    def _transition(self, to: State) -> None:
        if (self.state, to) not in _ALLOWED:
            raise IllegalTransition(f"{self.state.value} -> {to.value}")
        self.state = to

    def stop(self, error: StreamEnded | UpstreamTimeout) -> bool:
        """End the generation with `error` unless it has ended already."""
        if self.state is not State.RUNNING:
            return False
        self._transition(State.STOPPING)
        self._stop_error = error
        self._task.cancel()
        return True

    def cancel(self) -> bool:
        return self.stop(Cancelled("the stream was cancelled"))

    def hold(self) -> None:
        """Shutdown with a shared store: readers are released to resume on another
        process, so their leaving must not abandon the generation; it runs free
        (no credit) until it ends or the graceful timeout stops it."""
        self._held = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._release_credit()

    async def wait_ended(self) -> None:
        if self._finished:
            return
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._ended)  # one waiter cancelled must not end it for all

    @property
    def readers(self) -> int:
        return self._readers

    def _timed_out(self) -> None:
        if self.stats.first_token is None:
            error = UpstreamTimeout(f"no first token within {self._timeouts.first_token_s:g} s")
        else:
            error = UpstreamTimeout(f"no token for {self._timeouts.idle_s:g} s")
        self.stop(error)

    # ---- producer --------------------------------------------------------

    async def _produce(self) -> None:
        terminal: Event
        try:
            terminal = await self._pull()
        except asyncio.CancelledError:
            if self._stop_error is None:
                raise  # the loop itself is going away
            self._task.uncancel()
            terminal = self._failure(self._stop_error)
        except SluiceError as exc:
            terminal = self._failure(exc)
        except Exception:
            log.exception("stream.producer_crashed", stream_id=self.meta.stream_id)
            terminal = self._failure(UpstreamError("internal error in the gateway"))
        finally:
            self._watchdog.disarm()
            if self._grace is not None:
                self._grace.cancel()
        await self._finish(terminal)

    async def _pull(self) -> Event:
        """Pull chunks into the log; return the terminal event (not yet appended)."""
        log_ = self.log
        stats = self.stats
        watchdog = self._watchdog
        idle_s = self._timeouts.idle_s
        sink = self._sink
        watchdog.arm(self._timeouts.first_token_s)
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
                    watchdog.arm(idle_s)
                    if self._readers and log_.last_seq - self._delivered >= CREDIT_WINDOW:
                        await self._wait_for_credit()
                if chunk.finish_reason is not None:
                    return self._done(chunk)
        finally:
            await _aclose(chunks)
        raise UpstreamError("the upstream ended the stream without a finish reason")

    async def _wait_for_credit(self) -> None:
        self._watchdog.pause()  # a slow reader is not the upstream's fault
        self._credit = asyncio.get_running_loop().create_future()
        try:
            await self._credit
        finally:
            self._credit = None
        self._watchdog.arm(self._timeouts.idle_s)

    def _release_credit(self) -> None:
        if self._credit is not None and not self._credit.done():
            self._credit.set_result(None)

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
        failure = Failure(error.type, error.message, error.retryable)
        return Event(self.log.last_seq + 1, "error", failure=failure)

    async def _finish(self, terminal: Event) -> None:
        self.stats.ended = time.monotonic()
        self.stats.outcome = terminal.kind if terminal.failure is None else terminal.failure.type
        self.log.append(terminal)
        self._transition(State.ENDED)
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

    # ---- readers ---------------------------------------------------------

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
        self._readers += 1
        self.stats.attaches += 1
        metrics.ATTACHED_READERS.inc()
        if self.stats.attaches > 1:
            metrics.RECONNECTIONS.inc()
        if after > self._delivered:
            self._delivered = after
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _delivered_up_to(self, seq: int) -> None:
        if seq > self._delivered:
            self._delivered = seq
            self.log.delivered(seq)
            if self.log.last_seq - seq < CREDIT_WINDOW:
                self._release_credit()

    def _detach(self) -> None:
        self._readers -= 1
        metrics.ATTACHED_READERS.dec()
        if self._readers == 0 and self.state is State.RUNNING:
            self._start_grace(self._timeouts.detach_grace_s)

    def _start_grace(self, seconds: float) -> None:
        if self._grace is not None:
            self._grace.cancel()
        self._grace = None
        if self._held:
            self._release_credit()
        elif seconds <= 0:
            self._grace_expired()  # the credit stays held: nothing more is pulled
        else:
            self._release_credit()  # detached, the producer runs free for the grace
            self._grace = asyncio.get_running_loop().call_later(seconds, self._grace_expired)

    def _grace_expired(self) -> None:
        self._grace = None
        if self._readers == 0 and self.state is State.RUNNING:
            if self._wanted_elsewhere is None:  # at once: the upstream closes sooner
                self.stop(Abandoned(ABANDONED))
                return
            self._checking = asyncio.get_running_loop().create_task(self._abandon_unless_wanted())

    async def _abandon_unless_wanted(self) -> None:
        """Readers in other processes count too: while there are any, wait another grace."""
        assert self._wanted_elsewhere is not None
        try:
            wanted = await self._wanted_elsewhere()
        except Exception:
            log.exception("stream.presence_check_failed", stream_id=self.meta.stream_id)
            wanted = False
        if self._readers or self.state is not State.RUNNING or self._held:
            return
        if wanted:
            self._start_grace(max(self._timeouts.detach_grace_s, 1.0))
        else:
            self.stop(Abandoned(ABANDONED))


async def _aclose(chunks: AsyncIterator[Chunk]) -> None:
    """Close the provider's iterator: this is what releases the upstream connection."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
