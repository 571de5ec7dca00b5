"""The lifecycle decisions of one generation. PURE: no I/O, no asyncio, no clock.

Like h11's connection object: the driver (`app/streaming/generation.py`) feeds
in what happened (an event appended, a reader attached, delivered or gone, a
presence answer, time passing) with the time it read from its own clock, and
acts on the decisions that come out. The rules, in one place:

- **Credit.** While readers are attached, the producer runs at most
  `CREDIT_WINDOW` events ahead of the fastest reader's completed send; a
  stalled client stalls the upstream read and nothing grows.
- **Readers and grace.** With no reader attached the producer runs free for
  the detach grace (the log is bounded by max_tokens); a stream nobody has
  opened yet waits `attach_s` for its first reader. When the grace expires the
  stream is abandoned, unless readers in other processes still want it (a
  shared store: `CheckElsewhere`, then `elsewhere()`), in which case it waits
  another grace. With a grace of 0 the credit stays held: nothing more is
  pulled before the stop.
- **Held.** At shutdown with a shared store, readers are released to resume
  elsewhere: their leaving must not abandon the stream, which runs free.
- **Timeouts.** The first event is due within `first_token_s`, each later one
  within `idle_s`; time spent waiting for credit is the reader's, not the
  upstream's, so the timeout is paused meanwhile.
- **Stop reasons.** The first stop wins; once stopping or ended, later ones
  are refused, so a stream has exactly one ending.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

CREDIT_WINDOW = 32
PRESENCE_RECHECK_S = 1.0  # the shortest wait before asking other processes again


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_token_s: float
    idle_s: float
    detach_grace_s: float
    attach_s: float  # how long a stream nobody has opened yet waits for its first reader


class Phase(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # a stop was decided; the producer is being unwound
    ENDED = "ended"  # the terminal event is in the log


class StopReason(enum.Enum):
    ABANDONED = "abandoned"  # every reader left and the grace expired
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    REQUESTED = "requested"  # from outside: DELETE, cancel, shutdown (the driver keeps which)


class IllegalTransition(RuntimeError):
    pass


# ---- decisions -----------------------------------------------------------


class Resume(enum.Enum):
    """Release the producer waiting for credit."""

    CREDIT = "credit"


class CheckElsewhere(enum.Enum):
    """Ask the shared store whether readers in other processes want the
    stream, and report the answer with `elsewhere()`."""

    CHECK = "check"


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel the producer; the stream ends with this reason's error."""

    reason: StopReason


Decision = Resume | CheckElsewhere | Stop | None


class Lifecycle:
    __slots__ = (
        "_checking",
        "_grace_at",
        "_held",
        "_shared",
        "_timeouts",
        "_waiting",
        "delivered",
        "first_event",
        "last_seq",
        "phase",
        "readers",
        "stop_reason",
        "watch_at",
    )

    def __init__(self, timeouts: Timeouts, shared: bool = False) -> None:
        """`shared`: other processes can read the stream, so they are asked
        before it is abandoned. Nothing is timed before `start`."""
        self._timeouts = timeouts
        self._shared = shared
        self.phase = Phase.RUNNING
        self.stop_reason: StopReason | None = None
        self.readers = 0
        self.last_seq = 0  # the last event appended
        self.delivered = 0  # the highest seq whose send completed, over all readers
        self.first_event = False
        self.watch_at = math.inf
        self._grace_at = math.inf
        self._held = False
        self._waiting = False  # the producer waits for credit
        self._checking = False  # a CheckElsewhere is out, not yet answered

    # ---- what the driver asks ---------------------------------------------

    @property
    def running(self) -> bool:
        return self.phase is Phase.RUNNING

    def next_deadline(self) -> float:
        """When `tick` next has something to decide (`math.inf`: never by itself)."""
        if self.phase is not Phase.RUNNING:
            return math.inf
        return min(self.watch_at, self._grace_at)

    # ---- the producer ------------------------------------------------------

    def start(self, now: float) -> Decision:
        """The upstream is being opened: the first event is due, and a stream
        no reader has attached to yet waits `attach_s` for one."""
        if self.phase is not Phase.RUNNING:
            return None
        self.watch_at = now + self._timeouts.first_token_s
        if self.readers:
            return None
        return self._start_grace(self._timeouts.attach_s, now)

    def appended(self, seq: int, now: float) -> bool:
        """Event `seq` is in the log. True: the producer must wait for credit
        (`Resume.CREDIT`) before it pulls the next one."""
        self.last_seq = seq
        self.first_event = True
        if self.readers and seq - self.delivered >= CREDIT_WINDOW and not self._held:
            self._waiting = True
            self.watch_at = math.inf  # a slow reader is not the upstream's fault
            return True
        self.watch_at = now + self._timeouts.idle_s
        return False

    def resumed(self, now: float) -> None:
        """The producer got its credit and pulls again."""
        self.watch_at = now + self._timeouts.idle_s

    # ---- readers -----------------------------------------------------------

    def attach(self, after: int) -> None:
        self.readers += 1
        if after > self.delivered:
            self.delivered = after
        self._grace_at = math.inf

    def delivered_up_to(self, seq: int) -> Decision:
        if seq <= self.delivered:
            return None
        self.delivered = seq
        if self._waiting and self.last_seq - seq < CREDIT_WINDOW:
            return self._resume()
        return None

    def detach(self, now: float) -> Decision:
        self.readers -= 1
        if self.readers or self.phase is not Phase.RUNNING:
            return None
        return self._start_grace(self._timeouts.detach_grace_s, now)

    def elsewhere(self, wanted: bool, now: float) -> Decision:
        """The answer to `CheckElsewhere`."""
        self._checking = False
        if self.readers or self.phase is not Phase.RUNNING or self._held:
            return None
        if wanted:
            self._grace_at = now + max(self._timeouts.detach_grace_s, PRESENCE_RECHECK_S)
            return None
        return self._stop(StopReason.ABANDONED)

    # ---- the rest ----------------------------------------------------------

    def tick(self, now: float) -> Decision:
        """Time has passed: a timeout or a grace may have expired."""
        if self.phase is not Phase.RUNNING:
            return None
        if now >= self.watch_at:
            timeout = (
                StopReason.IDLE_TIMEOUT if self.first_event else StopReason.FIRST_TOKEN_TIMEOUT
            )
            return self._stop(timeout)
        if now >= self._grace_at:
            self._grace_at = math.inf
            return self._grace_expired()
        return None

    def hold(self) -> Decision:
        """Shutdown with a shared store: run to the end whether or not readers stay."""
        self._held = True
        self._grace_at = math.inf
        return self._resume()

    def stop(self) -> bool:
        """A stop from outside; False when the stream is already ending."""
        return self._stop(StopReason.REQUESTED) is not None

    def ended(self) -> None:
        if self.phase is Phase.ENDED:
            raise IllegalTransition("ended -> ended")
        self.phase = Phase.ENDED
        self.watch_at = math.inf
        self._grace_at = math.inf

    # ---- internals ---------------------------------------------------------

    def _start_grace(self, seconds: float, now: float) -> Decision:
        if self._held:
            return self._resume()
        if seconds <= 0:
            return self._grace_expired()  # the credit stays held: nothing more is pulled
        self._grace_at = now + seconds
        return self._resume()  # detached, the producer runs free for the grace

    def _grace_expired(self) -> Decision:
        if self.readers or self.phase is not Phase.RUNNING:
            return None
        if not self._shared:
            return self._stop(StopReason.ABANDONED)
        if self._checking:
            return None
        self._checking = True
        return CheckElsewhere.CHECK

    def _resume(self) -> Decision:
        if not self._waiting:
            return None
        self._waiting = False
        return Resume.CREDIT

    def _stop(self, reason: StopReason) -> Stop | None:
        if self.phase is not Phase.RUNNING:
            return None
        self.phase = Phase.STOPPING
        self.stop_reason = reason
        self.watch_at = math.inf
        self._grace_at = math.inf
        return Stop(reason)
