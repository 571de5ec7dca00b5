"""Request validation: JSON bodies and query strings to `ChatRequest`. Pure.

Every rejection is an InvalidRequest whose message names the field and the
problem, and whose `param` is the field's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from app.errors import InvalidRequest
from app.providers.base import ROLES, ChatRequest, Message, SimOptions


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens_cap: int = 32_768
    max_messages: int = 1024
    max_total_chars: int = 1_000_000


def parse_json_object(body: bytes) -> dict[str, object]:
    if not body.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_model(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("'model' is required: a string like 'sim/echo'", param="model")
    if len(value) > 256:
        raise InvalidRequest("'model' is longer than 256 characters", param="model")
    return value


def _content(value: object, index: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: only text parts are accepted
        texts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise InvalidRequest(
                    f"messages[{index}].content: only text parts are supported",
                    param=f"messages[{index}].content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"messages[{index}].content: a text part needs a string 'text'",
                    param=f"messages[{index}].content",
                )
            texts.append(text)
        return "".join(texts)
    raise InvalidRequest(
        f"messages[{index}].content must be a string", param=f"messages[{index}].content"
    )


def parse_messages(value: object, limits: Limits) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'messages' is required: a non-empty list of {role, content}", param="messages"
        )
    if len(value) > limits.max_messages:
        raise InvalidRequest(
            f"'messages' has {len(value)} entries; the cap is {limits.max_messages}",
            param="messages",
        )
    messages = []
    total = 0
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = item.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"messages[{i}].role must be one of {', '.join(ROLES)}; got {str(role)[:40]!r}",
                param=f"messages[{i}].role",
            )
        content = _content(item.get("content"), i)
        total += len(content)
        messages.append(Message(role, content))
    if total > limits.max_total_chars:
        raise InvalidRequest(
            f"the messages hold {total} characters; the cap is {limits.max_total_chars}",
            param="messages",
        )
    return tuple(messages)


def parse_max_tokens(value: object, limits: Limits, name: str = "max_tokens") -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
    assert isinstance(value, int)
    if value > limits.max_tokens_cap:
        raise InvalidRequest(f"'{name}' is {value}; the cap is {limits.max_tokens_cap}", param=name)
    return value


def parse_temperature(value: object) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 2:  # type: ignore[operator]
        raise InvalidRequest("'temperature' must be a number from 0 to 2", param="temperature")
    return float(value)  # type: ignore[arg-type]


_SIM_FIELDS = {"tps": float, "ttft_ms": float, "fail_after": int, "stall_after": int}


def parse_sim(value: object) -> SimOptions | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("'sim' must be an object", param="sim")
    unknown = set(value) - set(_SIM_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"'sim' has unknown fields {sorted(unknown)}; known: {sorted(_SIM_FIELDS)}",
            param="sim",
        )
    return SimOptions(**{k: _sim_value(k, v) for k, v in value.items()})  # type: ignore[arg-type]


def _sim_value(name: str, value: object) -> float | int | None:
    if value is None:
        return None
    kind = _SIM_FIELDS[name]
    ok = _is_int(value) if kind is int else _is_number(value)
    if not ok or value < 0 or value > 1e9:  # type: ignore[operator]
        noun = "integer" if kind is int else "number"
        raise InvalidRequest(f"'sim.{name}' must be a non-negative {noun}", param=f"sim.{name}")
    return kind(value)  # type: ignore[no-any-return]


_STREAM_FIELDS = {"model", "messages", "max_tokens", "temperature", "sim"}


def parse_stream_request(data: Mapping[str, object], limits: Limits) -> ChatRequest:
    """The body of POST /v1/streams."""
    unknown = set(data) - _STREAM_FIELDS
    if unknown:
        raise InvalidRequest(
            f"unknown fields {sorted(unknown)[:10]}; known: {sorted(_STREAM_FIELDS)}",
            param=sorted(unknown)[0],
        )
    return ChatRequest(
        model=parse_model(data.get("model")),
        messages=parse_messages(data.get("messages"), limits),
        max_tokens=parse_max_tokens(data.get("max_tokens"), limits),
        temperature=parse_temperature(data.get("temperature")),
        sim=parse_sim(data.get("sim")),
    )


def _query_number(params: Mapping[str, str], name: str) -> object:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:
        raise InvalidRequest(f"query parameter '{name}' must be a number", param=name) from None


def parse_oneshot_query(params: Mapping[str, str], limits: Limits) -> ChatRequest:
    """The query of GET /v1/stream?model=…&prompt=…[&max_tokens=…][&sim_tps=…]."""
    prompt = params.get("prompt")
    if prompt is None:
        raise InvalidRequest("query parameter 'prompt' is required", param="prompt")
    if len(prompt) > limits.max_total_chars:
        raise InvalidRequest(
            f"'prompt' holds {len(prompt)} characters; the cap is {limits.max_total_chars}",
            param="prompt",
        )
    sim = {
        name: _query_number(params, f"sim_{name}")
        for name in _SIM_FIELDS
        if params.get(f"sim_{name}") not in (None, "")
    }
    return ChatRequest(
        model=parse_model(params.get("model")),
        messages=(Message("user", prompt),),
        max_tokens=parse_max_tokens(_query_number(params, "max_tokens"), limits),
        temperature=parse_temperature(_query_number(params, "temperature")),
        sim=parse_sim(sim) if sim else None,
    )
