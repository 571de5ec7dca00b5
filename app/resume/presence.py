"""How many readers other processes hold on this process's streams, asked for
many streams in one round trip.

A stream whose grace expires asks this before its upstream is closed
(`CheckElsewhere` in app/core/lifecycle.py): a reader in another process
keeps it alive. A burst of clients leaving at once ends many graces in the
same moment, and one round trip per stream, queued for the pool's
connections, then stands between every one of those clients and the close of
its upstream.

Strategy: one buffer per turn of the loop. The first question of a turn
starts a sender task, which runs on the next turn with every question asked
meanwhile and sends their ZCOUNTs as one buffer (redis_packed.py). Buffers
do not wait for each other: a burst spread over a few turns is a few buffers
on as many pooled connections, and each question waits one round trip, as a
lone question always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis

from app.resume.redis_codec import StreamKeys
from app.resume.redis_packed import execute, execute_grouped
from app.resume.resp import Commands

Asked = tuple[str, asyncio.Future[int]]


class ReaderCounts:
    """`count(stream_id)`: readers whose presence has not expired, over every
    process but the owner, for each stream asked, batched."""

    def __init__(self, redis: Redis, *, cluster: bool = False) -> None:
        self._redis = redis
        self._cluster = cluster
        self._asked: list[Asked] = []  # this turn's questions
        self._senders: set[asyncio.Task[None]] = set()

    async def count(self, stream_id: str) -> int:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()
        self._asked.append((stream_id, answer))
        if len(self._asked) == 1:  # the turn's first: its sender runs on the next turn
            sender = loop.create_task(self._send(), name="sluice-presence")
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await answer  # a cancelled caller cancels its answer: it is skipped

    async def aclose(self) -> None:
        senders = list(self._senders)
        for sender in senders:
            sender.cancel()
        for sender in senders:
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        for _, answer in self._asked:  # a sender cancelled before it ran took none
            answer.cancel()
        self._asked = []

    async def _send(self) -> None:
        asked, self._asked = self._asked, []
        asked = [(sid, answer) for sid, answer in asked if not answer.done()]
        if asked:
            await self._exchange(asked)

    async def _exchange(self, asked: list[Asked]) -> None:
        commands = Commands(0, keep_args=self._cluster)
        now_ms = int(time.time() * 1000)
        for stream_id, _ in asked:
            commands.add("ZCOUNT", StreamKeys.of(stream_id).readers, now_ms, "+inf")
        write = execute_grouped if self._cluster else execute
        try:
            replies = await write(self._redis, commands)
        except Exception as exc:  # every question of the buffer gets the failure
            for _, answer in asked:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, answer in asked:
                answer.cancel()
            raise
        for (_, answer), reply in zip(asked, replies, strict=True):
            if answer.done():
                continue
            if isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(int(reply))  # type: ignore[call-overload]
