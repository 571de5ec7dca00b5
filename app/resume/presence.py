"""How many readers other processes hold on this process's streams, asked for
many streams in one round trip.

A stream whose grace expires asks this before its upstream is closed
(`CheckElsewhere` in app/core/lifecycle.py): a reader in another process
keeps it alive. A burst of clients leaving at once ends many graces in the
same moment, and one round trip per stream, queued for the pool's
connections, then stands between every one of those clients and the close of
its upstream.

Strategy: group commit. The first question starts a sender task, which runs
on the next turn of the loop with every question asked meanwhile and sends
their ZCOUNTs as one buffer (redis_packed.py); questions asked while a
buffer is out go in the next one. At most one buffer is out at a time, so a
burst costs about two round trips, whatever its size, and a lone question
costs what it did.
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
        self._asked: list[Asked] = []
        self._sender: asyncio.Task[None] | None = None

    async def count(self, stream_id: str) -> int:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()
        self._asked.append((stream_id, answer))
        if self._sender is None:
            self._sender = loop.create_task(self._send(), name="sluice-presence")
        return await answer  # a cancelled caller cancels its answer: it is skipped

    async def aclose(self) -> None:
        sender = self._sender
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send(self) -> None:
        try:
            while self._asked:
                asked, self._asked = self._asked, []
                asked = [(sid, answer) for sid, answer in asked if not answer.done()]
                if asked:
                    await self._exchange(asked)
        finally:
            self._sender = None
            for _, answer in self._asked:  # only when cancelled: nobody will send them
                answer.cancel()
            self._asked = []

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
