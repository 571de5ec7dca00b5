"""Request validation: JSON bodies and query strings to `ChatRequest`. Pure.

Every rejection is an InvalidRequest whose message names the field and the
problem, and whose `param` is the field's name.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from app.api.messages import Limits, parse_messages
from app.api.tools import (
    parse_parallel_tool_calls,
    parse_reasoning,
    parse_response_format,
    parse_tool_choice,
    parse_tools,
)
from app.errors import InvalidRequest
from app.providers.base import ChatRequest, Message, SimOptions


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


_SIM_FIELDS = {
    "tps": float,
    "ttft_ms": float,
    "fail_after": int,
    "stall_after": int,
    "reasoning": int,
    "tool_calls": int,
    "fragment": int,
}


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


_STREAM_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "sim",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "thinking",
    "think",
}


def parse_stream_request(data: Mapping[str, object], limits: Limits) -> ChatRequest:
    """The body of POST /v1/streams."""
    unknown = set(data) - _STREAM_FIELDS
    if unknown:
        raise InvalidRequest(
            f"unknown fields {sorted(unknown)[:10]}; known: {sorted(_STREAM_FIELDS)}",
            param=sorted(unknown)[0],
        )
    tools = parse_tools(data.get("tools"))
    return ChatRequest(
        model=parse_model(data.get("model")),
        messages=parse_messages(data.get("messages"), limits),
        max_tokens=parse_max_tokens(data.get("max_tokens"), limits),
        temperature=parse_temperature(data.get("temperature")),
        sim=parse_sim(data.get("sim")),
        tools=tools,
        tool_choice=parse_tool_choice(data.get("tool_choice"), tools),
        parallel_tool_calls=parse_parallel_tool_calls(data.get("parallel_tool_calls")),
        response_format=parse_response_format(data.get("response_format")),
        reasoning=parse_reasoning(data),
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
