"""PURE: key names and the entry format of a stream's log in Redis. No I/O.

Every key of one stream carries the hash tag `{<stream_id>}`, so that on a
Redis Cluster they all live in one slot:

    sluice:{<sid>}:log      Redis stream of batches: entry id `0-<first seq>`, field v
    sluice:{<sid>}:meta     hash: model, created, owner, node (the owning process)
    sluice:{<sid>}:lease    string: the owning node, with a short TTL the owner refreshes
    sluice:{<sid>}:readers  sorted set: readers in other processes, scored by expiry (ms)
    sluice:{<sid>}:log:wake sharded pub/sub channel (a Cluster only): "the log grew"

One entry holds the events of one flush, consecutive seqs from the one in
its id: `v` is a JSON array with an item per event. A token is its text, a
bare string: text stays the cheap path. Any other delta is a short list
tagged by its first item: `["r", text]` reasoning, `["s", signature]`,
`["x", redacted data]`, `["c", index, id, name]` a tool call's start,
`["a", index, fragment]` its arguments, `["f", text]` a refusal. If the batch
ends the stream, its last item is `["d", reason, input, output, ttft_ms,
tokens/s, cached, reasoning]` or `["e", type, message, retryable]` (a
reader takes the counts that are there: `cached` and `reasoning` came later,
and are null when not reported). A reader decodes an entry with one
`orjson.loads`; the owner writes one entry per stream per flush.

Strategy: the entry id is the seq of the entry's *first* event, so Redis
refuses any write that would not come after the last entry. A follower that
finds the owner dead after the event `c` writes the terminal event alone at
`0-<c+1>`; the owner's next entry, if it wrote one, starts at seq c+1 too.
Whichever comes second has an id that is not above the last one and is
refused, so exactly one of them ends the stream, and nothing is ever written
after a terminal event. (An id of the *last* seq would let an owner that
stalled past its lease append `0-<c+5>` after a follower's `0-<c+1>`.)
Reading after seq k therefore starts at the entry holding k+1, the last one
whose id is at most `0-<k+1>` (XREVRANGE ... COUNT 1), and drops the events
up to k from it; XREAD's cursor is the id of the last entry read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.events import (
    DeltaKind,
    Done,
    Event,
    Failure,
    StreamMeta,
    ToolCall,
    UpstreamStop,
    Usage,
)

Fields = dict[bytes, bytes]


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

    @property
    def wake(self) -> str:
        return wake_channel(self.log)


def wake_channel(log_key: str) -> str:
    """The sharded channel on which a log's writer says "new entries" (on a Redis
    Cluster): named after the log key, so its hash tag puts it in the log's slot,
    on the shard that holds the log."""
    return f"{log_key}:wake"


def log_of_wake(channel: bytes | str) -> str:
    """The log key a wake channel is named after."""
    text = channel.decode() if isinstance(channel, bytes) else channel
    return text.removesuffix(":wake")


def cancel_channel(node: str) -> str:
    """The pub/sub channel on which process `node` hears DELETEs made elsewhere, and
    (on a cluster) readers elsewhere that start following one of its streams."""
    return f"sluice:cancel:{node}"


FOLLOW = "follow:"  # on the owner's channel: a reader elsewhere follows this stream


def owner_message(data: bytes | str) -> tuple[str, str]:
    """A message on an owner's channel → ("cancel" | "follow", stream id)."""
    text = data.decode() if isinstance(data, bytes) else data
    if text.startswith(FOLLOW):
        return "follow", text.removeprefix(FOLLOW)
    return "cancel", text


def entry_id(seq: int) -> str:
    return f"0-{seq}"


def seq_of(entry: bytes | str) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[2])


def encode_batch(events: Sequence[Event]) -> tuple[str, Fields]:
    """The entry id and fields of one entry holding `events` (consecutive seqs,
    a terminal event only last)."""
    first = events[0].seq
    if events[-1].seq - first != len(events) - 1:
        raise ValueError(f"an entry holds consecutive seqs only, not {first}..{events[-1].seq}")
    items: list[object] = [
        event.text if event.kind == "token" else _item(event) for event in events
    ]
    return entry_id(first), {b"v": orjson.dumps(items)}


# The deltas that are their text alone, by tag.
_KINDS: dict[str, DeltaKind] = {
    "r": "reasoning",
    "s": "reasoning_signature",
    "x": "reasoning_redacted",
    "f": "refusal",
}
_TAGS: dict[str, str] = {kind: tag for tag, kind in _KINDS.items()}


def _item(event: Event) -> list[object]:
    if event.terminal:
        return _terminal(event)
    if event.call is not None:
        return ["c", event.call.index, event.call.id, event.call.name]
    if event.kind == "tool_call_delta":
        return ["a", event.index, event.text]
    return [_TAGS[event.kind], event.text]


def _terminal(event: Event) -> list[object]:
    if event.done is not None:
        done = event.done
        usage = done.usage
        item: list[object] = [
            "d",
            done.finish_reason,
            usage.input_tokens,
            usage.output_tokens,
            done.ttft_ms,
            done.tokens_per_second,
            usage.cached_tokens,
            usage.reasoning_tokens,
        ]
        return item if done.stop is None else [*item, done.stop.reason, done.stop.sequence]
    assert event.failure is not None
    failure = event.failure
    item = ["e", failure.type, failure.message, failure.retryable]
    return item if failure.code is None else [*item, failure.code]


def decode_entry(entry: bytes | str, fields: Fields, after: int = 0) -> list[Event]:
    """The events of one entry whose seq is above `after`, in order."""
    first = seq_of(entry)
    items: list[Any] = orjson.loads(fields[b"v"])  # strings are tokens; a list ends the stream
    skip = max(0, after + 1 - first)
    return [
        Event(seq, "token", text=item) if isinstance(item, str) else _typed(seq, item)
        for seq, item in enumerate(items[skip:], first + skip)
    ]


def _typed(seq: int, item: list[Any]) -> Event:
    tag = item[0]
    kind = _KINDS.get(tag)
    if kind is not None:
        return Event(seq, kind, text=item[1])
    if tag == "a":
        return Event(seq, "tool_call_delta", text=item[2], index=item[1])
    if tag == "c":
        return Event(seq, "tool_call", index=item[1], call=ToolCall(item[1], item[2], item[3]))
    return _end(seq, item)


def _end(seq: int, item: list[Any]) -> Event:
    if item[0] == "d":
        reason, input_tokens, output_tokens, ttft_ms, tps = item[1:6]
        cached, reasoning = [*item[6:8], None, None][:2]
        usage = Usage(input_tokens, output_tokens, cached, reasoning)
        stop = UpstreamStop(item[8], item[9]) if len(item) > 9 else None
        done = Done(reason, usage, ttft_ms, tps, stop)
        return Event(seq, "done", done=done)
    if item[0] == "e":
        _, type_, message, retryable = item[:4]
        code = item[4] if len(item) > 4 else None
        return Event(seq, "error", failure=Failure(type_, message, bool(retryable), code))
    raise ValueError(f"unknown terminal event {item!r} in the log")


def last_of(entry: bytes | str, fields: Fields) -> tuple[int, bool]:
    """(seq of the entry's last event, whether that event ends the stream)."""
    items: list[Any] = orjson.loads(fields[b"v"])
    ends = bool(items) and isinstance(items[-1], list) and items[-1][0] in ("d", "e")
    return seq_of(entry) + len(items) - 1, ends


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
