"""PURE: key names and the entry format of a stream's log in Redis. No I/O.

Every key of one stream carries the hash tag `{<stream_id>}`, so that on a
Redis Cluster they all live in one slot:

    sluice:{<sid>}:log      Redis stream; entry id `0-<seq>`, fields k (kind), v (value)
    sluice:{<sid>}:meta     hash: model, created, owner, node (the owning process)
    sluice:{<sid>}:lease    string: the owning node, with a short TTL the owner refreshes
    sluice:{<sid>}:readers  sorted set: readers in other processes, scored by expiry (ms)

Strategy: the entry id *is* the event's seq (`0-<seq>`). Replay from an event
id is then `XRANGE log 0-<seq+1> +`, a reader's cursor is `0-<seq>`, and
Redis refuses any write that would not come after the last entry: when the
owner and a follower both try to write the end of a dead-looking stream,
exactly one succeeds and the other learns it from the error.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from app.providers.base import Usage
from app.streaming.events import Done, Event, Failure, StreamMeta

Fields = dict[bytes, bytes]

_KIND_CODE = {"token": b"t", "done": b"d", "error": b"e"}


@dataclass(frozen=True, slots=True)
class StreamKeys:
    log: str
    meta: str
    lease: str
    readers: str

    @classmethod
    def of(cls, stream_id: str) -> StreamKeys:
        base = f"sluice:{{{stream_id}}}:"
        return cls(base + "log", base + "meta", base + "lease", base + "readers")

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.log, self.meta, self.lease, self.readers)


def cancel_channel(node: str) -> str:
    """The pub/sub channel on which process `node` hears DELETEs made elsewhere."""
    return f"sluice:cancel:{node}"


def entry_id(seq: int) -> str:
    return f"0-{seq}"


def seq_of(entry: bytes | str) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[2])


def encode_event(event: Event) -> Fields:
    """The compact fields of one log entry (its seq is the entry id)."""
    if event.kind == "token":
        value = event.text.encode()
    elif event.done is not None:
        done = event.done
        value = orjson.dumps(
            [
                done.finish_reason,
                done.usage.input_tokens,
                done.usage.output_tokens,
                done.ttft_ms,
                done.tokens_per_second,
            ]
        )
    else:
        assert event.failure is not None
        failure = event.failure
        value = orjson.dumps([failure.type, failure.message, failure.retryable])
    return {b"k": _KIND_CODE[event.kind], b"v": value}


def decode_event(entry: bytes | str, fields: Fields) -> Event:
    seq = seq_of(entry)
    kind = fields[b"k"]
    value = fields[b"v"]
    if kind == b"t":
        return Event(seq, "token", text=value.decode())
    if kind == b"d":
        reason, input_tokens, output_tokens, ttft_ms, tps = orjson.loads(value)
        done = Done(reason, Usage(input_tokens, output_tokens), ttft_ms, tps)
        return Event(seq, "done", done=done)
    if kind == b"e":
        type_, message, retryable = orjson.loads(value)
        return Event(seq, "error", failure=Failure(type_, message, bool(retryable)))
    raise ValueError(f"unknown entry kind {kind!r} in the log")


def encode_meta(meta: StreamMeta, node: str) -> dict[str, str]:
    return {
        "model": meta.model,
        "created": str(meta.created),
        "owner": meta.owner,
        "node": node,
    }


def decode_meta(stream_id: str, fields: dict[bytes, bytes]) -> tuple[StreamMeta, str] | None:
    """The stream's identity and its owning node; None for a missing or partial hash."""
    try:
        meta = StreamMeta(
            stream_id=stream_id,
            model=fields[b"model"].decode(),
            created=int(fields[b"created"]),
            owner=fields[b"owner"].decode(),
        )
        return meta, fields[b"node"].decode()
    except (KeyError, ValueError):
        return None
