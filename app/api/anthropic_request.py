"""A checked Messages body to the gateway's `ChatRequest`. Pure.

Two readings of one body travel together:

- the body itself, unchanged, as the request's `native` form: an Anthropic upstream is
  sent exactly what the client wrote (`cache_control`, `metadata`, `thinking`, tool
  definitions, signed thinking blocks), with only the model name replaced by the
  upstream's own;
- its translation into the provider-neutral fields (system and turns as text, sampling
  options) for every other provider.

What the neutral fields cannot carry is named in `options` by feature (`tools`,
`thinking`, `image`, ...): a provider that does not accept a feature refuses the
request before it starts with a 400 naming it, so nothing is dropped silently. The
Anthropic provider accepts them all, through the native body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from app.api.anthropic_validation import check_body
from app.api.validation import Limits, parse_sim
from app.errors import InvalidRequest
from app.providers.base import ChatRequest, Message, NativeBody

# Blocks of a turn that the neutral fields carry as text.
_TEXT_KINDS = frozenset(("text",))


@dataclass(frozen=True, slots=True)
class MessagesCall:
    request: ChatRequest
    stream: bool


def _texts(blocks: Sequence[object]) -> str:
    return "".join(
        str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"
    )


def _features_of(content: object) -> set[str]:
    if not isinstance(content, list):
        return set()
    found: set[str] = set()
    for block in content:
        assert isinstance(block, dict)
        kind = str(block.get("type"))
        if kind in ("thinking", "redacted_thinking"):
            found.add("thinking_blocks")
        elif kind not in _TEXT_KINDS:
            found.add(kind)
        elif block.get("citations"):
            found.add("citations")
        if kind == "tool_result":
            found |= _features_of(block.get("content"))
    return found


def _turns(data: Mapping[str, object]) -> tuple[tuple[Message, ...], set[str]]:
    messages: list[Message] = []
    features: set[str] = set()
    system = data.get("system")
    if isinstance(system, str) and system:
        messages.append(Message("system", system))
    elif isinstance(system, list) and system:
        messages.append(Message("system", "\n\n".join(_texts([b]) for b in system)))
    raw = data.get("messages")
    assert isinstance(raw, list)
    for item in raw:
        assert isinstance(item, dict)
        content = item["content"]
        text = content if isinstance(content, str) else _texts(content)
        messages.append(Message(item["role"], text))
        features |= _features_of(content)
    return tuple(messages), features


def _options(data: Mapping[str, object], features: set[str]) -> tuple[tuple[str, object], ...]:
    options: list[tuple[str, object]] = []
    for name in ("top_p", "top_k"):
        if data.get(name) is not None:
            options.append((name, data[name]))
    stops = data.get("stop_sequences")
    if stops:
        assert isinstance(stops, list)
        options.append(("stop", tuple(stops)))
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        options.append(("user", metadata["user_id"]))
    if data.get("tools"):
        features.add("tools")
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("auto", "none"):
        features.add("tool_choice")
    thinking = data.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        features.add("thinking")
    options += [(name, True) for name in sorted(features)]
    return tuple(options)


def parse_messages_call(
    data: Mapping[str, object], limits: Limits, beta: str | None = None
) -> MessagesCall:
    """The body of POST /v1/messages; `beta`: the client's `anthropic-beta` header."""
    model, max_tokens, stream = check_body(data, limits)
    messages, features = _turns(data)
    temperature = data.get("temperature")
    body = {key: value for key, value in data.items() if key not in ("sim", "stream")}
    request = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=None if temperature is None else float(temperature),  # type: ignore[arg-type]
        sim=parse_sim(data.get("sim")),
        options=_options(data, features),
        native=NativeBody("anthropic", orjson.dumps(body), beta),
    )
    if not any(m.role != "system" for m in messages):
        raise InvalidRequest("messages: at least one turn is required", param="messages")
    return MessagesCall(request, stream)
