"""app/wire/native.py: one SSE block per event, each with its own id, except a
reader's own ending, which has none."""

from __future__ import annotations

from app.core.events import Event, Failure, token
from app.wire.native import NativeWire
from tests.support.sse_parser import SSEParser

SID = "NativeWireTestNativeWi0"


def test_a_readers_own_ending_has_no_id_so_the_client_keeps_the_last_one() -> None:
    ending = Event(2, "error", failure=Failure("unavailable", "gone", True), unlogged=True)
    parser = SSEParser()
    parser.feed(NativeWire(SID, 1000).encode([token(1, "a"), token(2, "b"), ending]))
    assert [(e.event, e.id) for e in parser.events] == [
        ("token", f"{SID}:1"),
        ("token", f"{SID}:2"),
        ("error", f"{SID}:2"),
    ]
    assert NativeWire(SID, 1000).encode([ending]).startswith(b"event: error\n")
