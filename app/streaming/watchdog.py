"""A resettable deadline that costs one attribute write per reset.

Strategy: the producer pushes the deadline forward on every chunk; a single
timer handle, re-armed only when it fires early, checks it. Resetting an
`asyncio.Timeout` instead would cancel and allocate a timer per token.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class Watchdog:
    __slots__ = ("_handle", "_loop", "_on_expire", "deadline")

    def __init__(self, on_expire: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_expire = on_expire
        self._handle: asyncio.TimerHandle | None = None
        self.deadline = math.inf

    def arm(self, seconds: float) -> None:
        """Expire `seconds` from now unless pushed forward again."""
        self.deadline = self._loop.time() + seconds
        if self._handle is not None and self._handle.when() > self.deadline:
            self._handle.cancel()  # only when the timeout shrinks (first token -> idle)
            self._handle = None
        if self._handle is None:
            self._handle = self._loop.call_at(self.deadline, self._check)

    def pause(self) -> None:
        self.deadline = math.inf

    def disarm(self) -> None:
        self.deadline = math.inf
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if self.deadline == math.inf:
            return
        if self._loop.time() >= self.deadline:
            self._on_expire()
        else:
            self._handle = self._loop.call_at(self.deadline, self._check)
