"""The in-process event log of one stream, and how readers wait on it.

Strategy (memory): a token event is stored as its text only, packed: the
texts of every `SEGMENT` events are joined into one `str`, and an `array`
holds where each ends, so a logged token costs its characters plus 4 bytes
instead of an `Event` object with its own `str` and cached wire bytes
(~400 bytes). A reader far behind the producer (the kernel's socket buffers
let a producer run a whole long stream ahead of a slow client) therefore
holds the log small. The newest events not yet sent to the fastest reader
are also kept as `Event` objects (at most `2 * RECENT`), so that readers
keeping up share one object per event and its write-once wire caches; older
events are rebuilt for whoever replays them. A paced stream whose reader
keeps up thus holds almost no event objects (~400 bytes each with the
OpenAI chunk cached: ~10 KB per open stream otherwise).

Strategy (typed events): every delta's text is packed alike (a tool call's
start has none); what else a typed event holds is kept per *run*, a stretch
of consecutive events of one kind and tool call (reasoning, then a call's
argument fragments, then text...): a run costs its first seq and one tuple,
whatever its length. A text-only stream has no run at all, so it costs
exactly what it did before events were typed.

Strategy (waiting): readers that are caught up park on a future of their
own, listed here and resolved by the next append (one wake-up per reader per
append, no task per token). A reader never awaits a shared future directly:
cancelling a disconnected reader would cancel that future for everyone. The
idle timeout of every waiter is checked by one timer handle per log, re-armed
only when it fires early (as a generation's driver does), instead of a timer per wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from array import array
from bisect import bisect_right

from app.core.events import DeltaKind, Event, ToolCall

# What a run's events share beyond their text; None for a run of tokens.
RunInfo = tuple[DeltaKind, int, ToolCall | None] | None

SEGMENT = 64  # token texts joined per segment
RECENT = 16  # newest undelivered events kept as objects (at most twice this many)


def _wake(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class EventLog:
    """Events in order, seq 1, 2, 3…; ends with one terminal event."""

    __slots__ = (
        "_ends",
        "_loop",
        "_open",
        "_recent",
        "_run_info",
        "_run_starts",
        "_segments",
        "_terminal",
        "_timer",
        "_waiters",
        "last_seq",
    )

    def __init__(self) -> None:
        self.last_seq = 0
        self._segments: list[str] = []  # joined texts of full segments
        self._open: list[str] = []  # texts of the segment being filled
        self._ends = array("I")  # per token event: end offset of its text in its segment
        self._recent: list[Event] = []  # the newest events, seq ascending, ending at last_seq
        # Made by the first typed event: a text-only stream holds neither.
        self._run_starts: array[int] | None = None  # first seq of each run
        self._run_info: list[RunInfo] | None = None
        self._terminal: Event | None = None
        self._waiters: list[tuple[asyncio.Future[bool], float]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def ended(self) -> bool:
        return self._terminal is not None

    @property
    def events(self) -> list[Event]:
        """Every event so far (rebuilt: for reports and tests, not the hot path)."""
        return self.after(0)

    def token(self, text: str) -> Event:
        """Append a token event with `text`; the event is returned for a mirror."""
        assert self._terminal is None, "nothing follows the terminal event"
        seq = self.last_seq + 1
        event = Event(seq, "token", text)
        if self._run_info and self._run_info[-1] is not None:
            self._run(seq, None)
        self._pack(text)
        self._keep(event)
        return event

    def delta(self, kind: DeltaKind, text: str, index: int, call: ToolCall | None) -> Event:
        """Append a delta of any kind; the event is returned for a mirror."""
        if kind == "token":
            return self.token(text)
        event = Event(self.last_seq + 1, kind, text, index=index, call=call)
        self._typed(event)
        return event

    def append(self, event: Event) -> None:
        """Append an event made elsewhere: the terminal one (or any, in tests)."""
        assert event.seq == self.last_seq + 1, "events are appended in seq order"
        assert self._terminal is None, "nothing follows the terminal event"
        if event.terminal:
            self._terminal = event
            self._keep(event)
        elif event.kind == "token":
            if self._run_info and self._run_info[-1] is not None:
                self._run(event.seq, None)
            self._pack(event.text)
            self._keep(event)
        else:
            self._typed(event)

    def _typed(self, event: Event) -> None:
        """Pack a delta that is not a token; a new run starts where its kind or call changes."""
        assert self._terminal is None, "nothing follows the terminal event"
        info: RunInfo = (event.kind, event.index, event.call)  # type: ignore[assignment]
        if not self._run_info or self._run_info[-1] != info or event.call is not None:
            self._run(event.seq, info)
        self._pack(event.text)
        self._keep(event)

    def _run(self, seq: int, info: RunInfo) -> None:
        if self._run_starts is None or self._run_info is None:
            self._run_starts, self._run_info = array("I"), []
        self._run_starts.append(seq)
        self._run_info.append(info)

    def _pack(self, text: str) -> None:
        open_ = self._open
        open_.append(text)
        ends = self._ends
        start = 0 if len(open_) == 1 else ends[-1]
        ends.append(start + len(text))
        if len(open_) == SEGMENT:
            self._segments.append("".join(open_))
            open_.clear()

    def _keep(self, event: Event) -> None:
        self.last_seq = event.seq
        recent = self._recent
        recent.append(event)
        if len(recent) > 2 * RECENT:
            del recent[:RECENT]
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut, _ in waiters:
                _wake(fut, True)

    def delivered(self, seq: int) -> None:
        """The fastest reader has sent every event up to `seq`: those events
        stay packed only. A reader that keeps up then leaves no objects behind
        it; one further back gets its events rebuilt, as a replay would."""
        recent = self._recent
        drop = len(recent) - (self.last_seq - seq)
        if drop > 0:
            del recent[:drop]

    def after(self, seq: int) -> list[Event]:
        """The events after `seq`, in order (shared objects for the newest)."""
        recent = self._recent
        first = self.last_seq - len(recent) + 1  # seq of recent[0]
        if seq >= first - 1:
            return recent[seq - first + 1 :]
        return self._rebuilt(seq, first - 1) + recent

    def _rebuilt(self, seq: int, last: int) -> list[Event]:
        """Delta events seq+1..last from the packed texts (all precede the terminal)."""
        if self._run_info:
            return self._rebuilt_typed(seq, last)
        return self._texts(seq, last)

    def _texts(self, seq: int, last: int) -> list[Event]:
        """Events seq+1..last as tokens with their packed texts."""
        ends = self._ends
        events: list[Event] = []
        index = seq  # 0-based index of event seq+1
        while index < last:
            segment, within = divmod(index, SEGMENT)
            full = segment < len(self._segments)
            text = self._segments[segment] if full else "".join(self._open)
            stop = min(last, (segment + 1) * SEGMENT)
            start = 0 if within == 0 else ends[index - 1]
            for i in range(index, stop):
                end = ends[i]
                events.append(Event(i + 1, "token", text[start:end]))
                start = end
            index = stop
        return events

    def _rebuilt_typed(self, seq: int, last: int) -> list[Event]:
        """As `_rebuilt`, each event given the kind of its run."""
        starts, infos = self._run_starts, self._run_info
        assert starts is not None
        assert infos is not None
        run = bisect_right(starts, seq + 1) - 1  # the run of event seq+1 (-1: before any)
        following = starts[run + 1] if run + 1 < len(starts) else last + 1
        events: list[Event] = []
        for event in self._texts(seq, last):
            while event.seq >= following:
                run += 1
                following = starts[run + 1] if run + 1 < len(starts) else last + 1
            info = infos[run] if run >= 0 else None
            if info is not None:
                event.kind, event.index, event.call = info
            events.append(event)
        return events

    async def wait(self, idle_s: float) -> bool:
        """Wait for the next append; False if `idle_s` seconds pass first."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        deadline = loop.time() + idle_s
        entry = (fut, deadline)
        self._waiters.append(entry)
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._idle_check)
        try:
            return await fut
        finally:
            if fut.cancelled() or fut.result() is False:  # still listed: not woken by append
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)

    def _idle_check(self) -> None:
        """Wake the waiters whose idle time is over; re-arm for the earliest other."""
        self._timer = None
        if not self._waiters:
            return
        assert self._loop is not None
        now = self._loop.time()
        later = [(fut, deadline) for fut, deadline in self._waiters if deadline > now]
        for fut, deadline in self._waiters:
            if deadline <= now:
                _wake(fut, False)
        self._waiters = later
        if later:
            self._timer = self._loop.call_at(min(d for _, d in later), self._idle_check)
