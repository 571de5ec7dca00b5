"""The body of POST /v1/responses to a `ResponsesCreate`. Pure.

Rule, as for chat completions: a field that would change the answer is
honoured (translated into the `ChatRequest` every provider takes) or refused
with a 400 that names it, never dropped silently. Fields that do not change
the answer (`metadata`, `user`, `service_tier`, `prompt_cache_key`,
`safety_identifier`, `parallel_tool_calls`) are accepted and echoed.

The input items and the tool fields are translated in
app/api/responses_items.py; whether the model's provider honours a feature
(tools, images, JSON output, reasoning effort) is the registry's check, as for
every door.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from app.api.messages import Limits
from app.api.responses_items import (
    parse_input,
    parse_response_tool_choice,
    parse_response_tools,
    parse_text_format,
)
from app.api.tools import parse_parallel_tool_calls, parse_reasoning
from app.api.validation import parse_max_tokens, parse_model, parse_sim, parse_temperature
from app.errors import InvalidRequest
from app.providers.base import ChatRequest, Message

_ACCEPTED_STRINGS = ("user", "service_tier", "prompt_cache_key", "safety_identifier")
KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "metadata",
        "store",
        "stream",
        "stream_options",
        "background",
        "previous_response_id",
        "include",
        "truncation",
        "max_tool_calls",
        "top_logprobs",
        "sim",
        *_ACCEPTED_STRINGS,
    }
)


@dataclass(frozen=True, slots=True)
class ResponsesCreate:
    """A validated create request. `request.messages` holds only this turn's
    input: the instructions and a previous response's history are added by
    `ResponsesCreate.with_history` once that history is known."""

    request: ChatRequest
    instructions: str | None
    stream: bool
    background: bool
    store: bool
    previous_response_id: str | None
    echo: tuple[tuple[str, object], ...]

    def upstream(self, history: tuple[Message, ...]) -> ChatRequest:
        """The request sent upstream: instructions, the earlier turns, this input."""
        system = () if self.instructions is None else (Message("system", self.instructions),)
        messages = system + history + self.request.messages
        return dataclasses.replace(self.request, messages=messages)


def _unsupported(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{name}' is not supported by this gateway: {why}", param=name)


def _bool(data: Mapping[str, object], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean", param=name)
    return value


def _optional_string(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", param=name)
    return value


def _check_tool_knobs(data: Mapping[str, object]) -> None:
    if data.get("max_tool_calls") is not None:
        raise _unsupported(
            "max_tool_calls", "a cap on tool calls cannot be passed to every provider"
        )


def _check_output_knobs(data: Mapping[str, object]) -> None:
    reasoning = data.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise InvalidRequest("'reasoning' must be an object", param="reasoning")
    if data.get("include") not in (None, []):
        raise _unsupported("include", "no optional output is produced")
    if data.get("truncation") not in (None, "disabled"):
        raise _unsupported("truncation", "the input is never truncated")
    if data.get("top_logprobs") not in (None, 0):
        raise _unsupported("top_logprobs", "token log probabilities are not reported")
    options = data.get("stream_options")
    if options is not None and (
        not isinstance(options, dict) or set(options) - {"include_obfuscation"}
    ):
        raise _unsupported("stream_options", "only 'include_obfuscation' (Sluice never pads)")


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not (
        isinstance(value, dict)
        and len(value) <= 16
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise InvalidRequest(
            "'metadata' must be an object of at most 16 string values", param="metadata"
        )
    return value


def _check_known(data: Mapping[str, object]) -> None:
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown or unsupported fields {unknown[:10]}; this endpoint knows "
            f"{sorted(KNOWN_FIELDS)}",
            param=unknown[0],
        )
    for name in _ACCEPTED_STRINGS:
        _optional_string(data, name)


def _top_p(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidRequest("'top_p' must be a number from 0 to 1", param="top_p")
    return value


def _effort(data: Mapping[str, object]) -> object:
    reasoning = data.get("reasoning")
    return reasoning.get("effort") if isinstance(reasoning, dict) else None


def parse_responses_create(data: Mapping[str, object], limits: Limits) -> ResponsesCreate:
    """The body of POST /v1/responses, checked field by field."""
    _check_known(data)
    _check_tool_knobs(data)
    _check_output_knobs(data)
    store = _bool(data, "store", True)
    background = _bool(data, "background", False)
    if background and not store:
        raise InvalidRequest("a background response must be stored ('store': true)", param="store")
    max_tokens = parse_max_tokens(data.get("max_output_tokens"), limits, name="max_output_tokens")
    temperature = parse_temperature(data.get("temperature"))
    top_p = _top_p(data.get("top_p"))
    tools = parse_response_tools(data.get("tools"))
    try:
        reasoning = parse_reasoning({"reasoning_effort": _effort(data)})
    except InvalidRequest as exc:
        message = exc.message.replace("reasoning_effort", "reasoning.effort")
        raise InvalidRequest(message, param="reasoning.effort") from None
    request = ChatRequest(
        model=parse_model(data.get("model")),
        messages=parse_input(data.get("input"), limits),
        max_tokens=max_tokens,
        temperature=temperature,
        sim=parse_sim(data.get("sim")),
        options=() if top_p is None else (("top_p", top_p),),
        tools=tools,
        tool_choice=parse_response_tool_choice(data.get("tool_choice"), tools),
        parallel_tool_calls=parse_parallel_tool_calls(data.get("parallel_tool_calls")),
        response_format=parse_text_format(data.get("text")),
        reasoning=reasoning,
    )
    return ResponsesCreate(
        request,
        _optional_string(data, "instructions"),
        _bool(data, "stream", False),
        background,
        store,
        _optional_string(data, "previous_response_id"),
        _echo(data, request, store),
    )


def _echo(
    data: Mapping[str, object], request: ChatRequest, store: bool
) -> tuple[tuple[str, object], ...]:
    """The request fields the response repeats, as the client sent them (defaults filled)."""
    reasoning = data.get("reasoning")
    summary = reasoning.get("summary") if isinstance(reasoning, dict) else None
    text = data.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    return (
        ("instructions", data.get("instructions")),
        ("max_output_tokens", request.max_tokens),
        ("parallel_tool_calls", data.get("parallel_tool_calls") is not False),
        ("previous_response_id", data.get("previous_response_id")),
        ("reasoning", {"effort": _effort(data), "summary": summary}),
        ("store", store),
        ("temperature", request.temperature),
        ("text", {"format": text_format or {"type": "text"}}),
        ("tool_choice", data.get("tool_choice") or "auto"),
        ("tools", data.get("tools") or []),
        ("top_p", request.option("top_p")),
        ("metadata", _metadata(data.get("metadata"))),
    )
