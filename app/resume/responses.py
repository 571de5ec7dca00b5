"""Response records: what the Responses door keeps beside a stream's log.

A record names the response's stream and owner, the head it echoes, and the
conversation sent upstream (without the instructions, which OpenAI does not
carry over), so that `previous_response_id` can prepend it to the next turn
and any process can serve GET /v1/responses/{id}. The output is not stored:
it is the stream's log, folded.

Memory (one process) or Redis (`sluice:{<sid>}:response`, in the stream's
hash slot). Strategy (expiry): a record is written when its run starts with
a long safety TTL (a process that dies mid-run does not leak it forever) and
is given the resume TTL when the run ends, like the stream's log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import Unavailable
from app.providers.base import CalledTool, Message, RedactedThinking, Thinking, Thought
from app.redis_client import client_for
from app.wire.responses_object import ResponseHead

RUNNING_TTL_S = 6 * 3600.0  # a record whose run never reported its end goes after this


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    head: ResponseHead
    owner: str
    store: bool  # false: not usable as a previous_response_id
    history: tuple[Message, ...]  # everything sent upstream but the instructions

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "head": orjson.loads(self.head.to_json()),
                "owner": self.owner,
                "store": self.store,
                "history": [_message_json(m) for m in self.history],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ResponseRecord:
        data = orjson.loads(raw)
        history = tuple(_message_of(m) for m in data["history"])
        head = ResponseHead.from_json(orjson.dumps(data["head"]))
        return cls(head, data["owner"], data["store"], history)


def _message_json(message: Message) -> dict[str, object]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [[c.id, c.name, c.arguments] for c in message.tool_calls],
        "tool_call_id": message.tool_call_id,
        "images": list(message.images),
        "name": message.name,
        "reasoning": [_thought_json(t) for t in message.reasoning],
    }


def _thought_json(thought: Thought) -> list[str]:
    if isinstance(thought, Thinking):
        return ["thinking", thought.text, thought.signature]
    return ["redacted", thought.data]


def _thought_of(data: list[str]) -> Thought:
    if data[0] == "thinking":
        return Thinking(data[1], data[2])
    return RedactedThinking(data[1])


def _message_of(data: dict[str, Any]) -> Message:
    return Message(
        role=data["role"],
        content=data["content"],
        tool_calls=tuple(CalledTool(*call) for call in data["tool_calls"]),
        tool_call_id=data["tool_call_id"],
        images=tuple(data["images"]),
        name=data["name"],
        # A record written before turns carried reasoning has none.
        reasoning=tuple(_thought_of(t) for t in data.get("reasoning", ())),
    )


class ResponseRecords(Protocol):
    async def put(self, record: ResponseRecord) -> None: ...

    async def get(self, stream_id: str) -> ResponseRecord | None: ...

    async def ended(self, stream_id: str) -> None:
        """The run ended: keep the record for the resume TTL from now."""
        ...

    async def delete(self, stream_id: str) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryRecords:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._records: dict[str, ResponseRecord] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    async def put(self, record: ResponseRecord) -> None:
        self._records[record.head.stream_id] = record
        self._expire(record.head.stream_id, RUNNING_TTL_S)

    async def get(self, stream_id: str) -> ResponseRecord | None:
        return self._records.get(stream_id)

    async def ended(self, stream_id: str) -> None:
        if stream_id in self._records:
            self._expire(stream_id, self._ttl_s)

    async def delete(self, stream_id: str) -> bool:
        handle = self._expiry.pop(stream_id, None)
        if handle is not None:
            handle.cancel()
        return self._records.pop(stream_id, None) is not None

    async def aclose(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()

    def _expire(self, stream_id: str, after_s: float) -> None:
        old = self._expiry.pop(stream_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[stream_id] = loop.call_later(after_s, self._forget, stream_id)

    def _forget(self, stream_id: str) -> None:
        self._records.pop(stream_id, None)
        self._expiry.pop(stream_id, None)


def _key(stream_id: str) -> str:
    return f"sluice:{{{stream_id}}}:response"


class RedisRecords:
    """Records in Redis; a Redis failure is `Unavailable` (503), never a silent miss."""

    def __init__(self, url: str, ttl_s: float) -> None:
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._redis: Redis = client_for(url, size=16, wait_s=2.0, socket_timeout_s=2.0)

    async def put(self, record: ResponseRecord) -> None:
        key = _key(record.head.stream_id)
        with _translated():
            await self._redis.set(key, record.to_json(), px=int(RUNNING_TTL_S * 1000))

    async def get(self, stream_id: str) -> ResponseRecord | None:
        with _translated():
            raw = await self._redis.get(_key(stream_id))
        return (
            None
            if raw is None
            else ResponseRecord.from_json(raw if isinstance(raw, bytes) else raw.encode())
        )

    async def ended(self, stream_id: str) -> None:
        with _translated():
            await self._redis.pexpire(_key(stream_id), self._ttl_ms)

    async def delete(self, stream_id: str) -> bool:
        with _translated():
            deleted: int = await self._redis.delete(_key(stream_id))
        return deleted > 0

    async def aclose(self) -> None:
        await self._redis.aclose()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable(f"the response store is unreachable: {type(exc).__name__}") from exc
