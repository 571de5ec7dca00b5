"""The body of POST /v1/chat/completions to a `ChatCompletion` request. Pure.

Rule: a field that would change the answer is either honoured (passed to
the provider, translated for it) or refused with a 400 that names it; it is
never dropped silently. Fields that do not change the answer (`user`,
`metadata`, `store`, `service_tier`, `stream_options.include_obfuscation`)
are accepted: the official SDKs and many clients send them by default.
Anything else is an unknown field, and a 400 names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.api.messages import Limits, parse_messages
from app.api.tools import (
    parse_parallel_tool_calls,
    parse_reasoning,
    parse_response_format,
    parse_tool_choice,
    parse_tools,
)
from app.api.validation import parse_max_tokens, parse_model, parse_sim, parse_temperature
from app.errors import InvalidRequest
from app.providers.base import ChatRequest

OptionValue = str | int | float | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    request: ChatRequest
    stream: bool
    include_usage: bool


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(name: str, low: float, high: float) -> Callable[[object], OptionValue]:
    def parse(value: object) -> OptionValue:
        if not _is_number(value) or not low <= value <= high:  # type: ignore[operator]
            raise InvalidRequest(f"'{name}' must be a number from {low:g} to {high:g}", param=name)
        return value  # type: ignore[return-value]

    return parse


def _seed(value: object) -> OptionValue:
    if not _is_int(value):
        raise InvalidRequest("'seed' must be an integer", param="seed")
    return value  # type: ignore[return-value]


def _user(value: object) -> OptionValue:
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidRequest("'user' must be a string of at most 256 characters", param="user")
    return value


MAX_STOP = 4  # OpenAI's own limit


def _stop(value: object) -> OptionValue:
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and 0 < len(value) <= MAX_STOP
        and all(isinstance(s, str) and s for s in value)
    ):
        return tuple(value)
    raise InvalidRequest(
        f"'stop' must be a string or a list of 1 to {MAX_STOP} non-empty strings", param="stop"
    )


# Passed to the provider in this order, when set (null means unset).
_OPTIONS: dict[str, Callable[[object], OptionValue]] = {
    "top_p": _number("top_p", 0, 1),
    "stop": _stop,
    "seed": _seed,
    "presence_penalty": _number("presence_penalty", -2, 2),
    "frequency_penalty": _number("frequency_penalty", -2, 2),
    "user": _user,
}


def _unsupported(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{name}' is not supported by this gateway: {why}", param=name)


def _check_n(value: object) -> None:
    if value is not None and not (_is_int(value) and value == 1):
        raise _unsupported("n", "only one choice per request (n=1)")


def _check_legacy_functions(data: Mapping[str, object]) -> None:
    """The deprecated `functions` / `function_call`: 'tools' says the same."""
    if data.get("functions") not in (None, []):
        raise _unsupported("functions", "send the functions as 'tools'")
    if data.get("function_call") not in (None, "none", "auto"):
        raise _unsupported("function_call", "send the choice as 'tool_choice'")


def _check_output_knobs(data: Mapping[str, object]) -> None:
    if data.get("logprobs") not in (None, False):
        raise _unsupported("logprobs", "token log probabilities are not reported")
    if data.get("top_logprobs") is not None:
        raise _unsupported("top_logprobs", "token log probabilities are not reported")
    if data.get("logit_bias") not in (None, {}):
        raise _unsupported("logit_bias", "token biases cannot be passed to every provider")


def _check_ignored(data: Mapping[str, object]) -> None:
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object", param="metadata")
    if data.get("store") not in (None, True, False):
        raise InvalidRequest("'store' must be a boolean", param="store")
    service_tier = data.get("service_tier")
    if service_tier is not None and not isinstance(service_tier, str):
        raise InvalidRequest("'service_tier' must be a string", param="service_tier")


def _bool(data: Mapping[str, object], name: str, prefix: str = "") -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{prefix}{name}' must be a boolean", param=prefix + name)
    return value


_STREAM_OPTIONS = {"include_usage", "include_obfuscation"}


def parse_include_usage(data: Mapping[str, object], stream: bool) -> bool:
    options = data.get("stream_options")
    if options is None:
        return False
    if not stream:  # as OpenAI does: the option would silently mean nothing
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    unknown = set(options) - _STREAM_OPTIONS
    if unknown:
        raise InvalidRequest(
            f"'stream_options' has unknown fields {sorted(unknown)}; "
            f"known: {sorted(_STREAM_OPTIONS)}",
            param="stream_options",
        )
    _bool(options, "include_obfuscation", "stream_options.")  # accepted: Sluice never pads
    return _bool(options, "include_usage", "stream_options.")


def parse_max_completion_tokens(data: Mapping[str, object], limits: Limits) -> int | None:
    legacy = parse_max_tokens(data.get("max_tokens"), limits)
    current = parse_max_tokens(
        data.get("max_completion_tokens"), limits, name="max_completion_tokens"
    )
    if legacy is not None and current is not None and legacy != current:
        raise InvalidRequest(
            "'max_tokens' and 'max_completion_tokens' disagree; send only one",
            param="max_completion_tokens",
        )
    return current if current is not None else legacy


def parse_options(data: Mapping[str, object]) -> tuple[tuple[str, OptionValue], ...]:
    return tuple(
        (name, parse(data[name])) for name, parse in _OPTIONS.items() if data.get(name) is not None
    )


_PARSED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "n",
    "sim",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "thinking",
    "think",
    *_OPTIONS,
}
_CHECKED = {
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "metadata",
    "store",
    "service_tier",
}
KNOWN_FIELDS = frozenset(_PARSED | _CHECKED)


def _check_known(data: Mapping[str, object]) -> None:
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown or unsupported fields {unknown[:10]}; this gateway knows "
            f"{sorted(KNOWN_FIELDS)}",
            param=unknown[0],
        )


def parse_chat_completion(data: Mapping[str, object], limits: Limits) -> ChatCompletion:
    """The body of POST /v1/chat/completions, checked field by field."""
    _check_known(data)
    _check_n(data.get("n"))
    _check_legacy_functions(data)
    _check_output_knobs(data)
    _check_ignored(data)
    stream = _bool(data, "stream")
    tools = parse_tools(data.get("tools"))
    request = ChatRequest(
        model=parse_model(data.get("model")),
        messages=parse_messages(data.get("messages"), limits),
        max_tokens=parse_max_completion_tokens(data, limits),
        temperature=parse_temperature(data.get("temperature")),
        sim=parse_sim(data.get("sim")),
        options=parse_options(data),
        tools=tools,
        tool_choice=parse_tool_choice(data.get("tool_choice"), tools),
        parallel_tool_calls=parse_parallel_tool_calls(data.get("parallel_tool_calls")),
        response_format=parse_response_format(data.get("response_format")),
        reasoning=parse_reasoning(data),
    )
    return ChatCompletion(request, stream, parse_include_usage(data, stream))
