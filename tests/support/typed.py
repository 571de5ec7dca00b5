"""Typed event sequences for tests: every kind of delta, in the orders providers send them."""

from __future__ import annotations

from hypothesis import strategies as st

from app.core.events import DeltaKind, Event, ToolCall

_TEXT_KINDS: tuple[DeltaKind, ...] = (
    "token",
    "reasoning",
    "reasoning_signature",
    "reasoning_redacted",
    "refusal",
)


def delta(seq: int, kind: DeltaKind, text: str = "", index: int = 0) -> Event:
    return Event(seq, kind, text, index=index)


def call(seq: int, index: int, id_: str, name: str) -> Event:
    return Event(seq, "tool_call", index=index, call=ToolCall(index, id_, name))


def agent_turn() -> list[Event]:
    """Reasoning with its signature, a sentence, then two calls whose arguments
    come in fragments: what an Anthropic or OpenAI agent turn holds."""
    events = [
        delta(1, "reasoning", "The user wants "),
        delta(2, "reasoning", "the weather."),
        delta(3, "reasoning_signature", "EqQBCgIYAhIM1gbcDa9GJwZA2b3h=="),
        delta(4, "token", "Let me check."),
        call(5, 0, "call_a", "get_weather"),
        delta(6, "tool_call_delta", '{"city": ', 0),
        delta(7, "tool_call_delta", '"Paris"}', 0),
        call(8, 1, "call_b", "get_time"),
        delta(9, "tool_call_delta", '{"tz": "Europe/Paris"}', 1),
    ]
    return events


@st.composite
def typed_events(draw: st.DrawFn, first: int = 1) -> list[Event]:
    """Any sequence of deltas, with seqs from `first`; tool calls numbered in order."""
    events: list[Event] = []
    calls = 0
    for seq in range(first, first + draw(st.integers(1, 40))):
        choice = draw(st.integers(0, len(_TEXT_KINDS) + 1))
        if choice < len(_TEXT_KINDS):
            events.append(delta(seq, _TEXT_KINDS[choice], draw(st.text(min_size=1))))
        elif choice == len(_TEXT_KINDS) or calls == 0:
            events.append(call(seq, calls, f"call_{calls}", draw(st.text(min_size=1))))
            calls += 1
        else:
            index = draw(st.integers(0, calls - 1))
            events.append(delta(seq, "tool_call_delta", draw(st.text(min_size=1)), index))
    return events


def shape(events: list[Event]) -> list[tuple[object, ...]]:
    return [(e.seq, e.kind, e.text, e.index, e.call, e.done, e.failure) for e in events]
