"""The body of POST /v1/messages, checked against Anthropic's Messages shape. Pure.

Every field and block Anthropic documents for a plain Messages call is known here;
anything else is refused with a 400 that names it (never dropped silently), as is a
value of the wrong shape. What a provider can honour of a well-formed request is
decided later, when the request is translated for its provider.

Except for a model that only Anthropic serves: its body goes to Anthropic as written,
so Anthropic, not this gateway, judges what the gateway does not know (a newer field,
a `document` block, a server tool): `check_native_body` checks only what the gateway
itself reads.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.api.messages import Limits
from app.api.validation import parse_max_tokens, parse_model
from app.errors import InvalidRequest

KNOWN_FIELDS = frozenset(
    (
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "stream",
        "sim",  # Sluice's simulated model's knobs
    )
)
# The keys each content block may carry, by type (`type` itself aside).
_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset(("text", "cache_control", "citations")),
    "image": frozenset(("source", "cache_control")),
    "tool_use": frozenset(("id", "name", "input", "cache_control")),
    "tool_result": frozenset(("tool_use_id", "content", "is_error", "cache_control")),
    "thinking": frozenset(("thinking", "signature")),
    "redacted_thinking": frozenset(("data",)),
}
# Where each block type may appear.
_USER_BLOCKS = frozenset(("text", "image", "tool_result"))
_ASSISTANT_BLOCKS = frozenset(("text", "tool_use", "thinking", "redacted_thinking"))
_TOOL_RESULT_BLOCKS = frozenset(("text", "image"))
_IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
_TOOL_KEYS = frozenset(("name", "description", "input_schema", "cache_control", "type"))
_TOOL_CHOICES = frozenset(("auto", "any", "tool", "none"))
MAX_STOP_SEQUENCES = 8192


def invalid(path: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {problem}", param=path)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _object(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise invalid(path, "must be an object")
    return value


def _string(value: object, path: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise invalid(path, "must be a non-empty string" if not empty else "must be a string")
    return value


def _only(block: Mapping[str, object], allowed: frozenset[str], path: str) -> None:
    extra = sorted(set(block) - allowed - {"type"})
    if extra:
        raise invalid(f"{path}.{extra[0]}", f"unknown field; allowed here: {sorted(allowed)}")


def check_cache_control(value: object, path: str) -> None:
    if value is None:
        return
    control = _object(value, path)
    if control.get("type") != "ephemeral":
        raise invalid(f"{path}.type", "must be 'ephemeral'")
    _only(control, frozenset(("ttl",)), path)
    if "ttl" in control and control["ttl"] not in ("5m", "1h"):
        raise invalid(f"{path}.ttl", "must be '5m' or '1h'")


def check_block(value: object, path: str, allowed: frozenset[str]) -> str:
    """One content block; returns its type."""
    block = _object(value, path)
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in _BLOCK_KEYS:
        raise invalid(
            f"{path}.type",
            f"unknown or unsupported content block type {str(kind)[:60]!r}; "
            f"this gateway knows {sorted(_BLOCK_KEYS)}",
        )
    if kind not in allowed:
        raise invalid(f"{path}.type", f"a {kind!r} block is not allowed here")
    _only(block, _BLOCK_KEYS[kind], path)
    check_cache_control(block.get("cache_control"), f"{path}.cache_control")
    _CHECKS[kind](block, path)
    return kind


def _text(block: Mapping[str, object], path: str) -> None:
    _string(block.get("text"), f"{path}.text")
    citations = block.get("citations")
    if citations is not None and not isinstance(citations, list):
        raise invalid(f"{path}.citations", "must be a list")


def _image(block: Mapping[str, object], path: str) -> None:
    source = _object(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        _only(source, frozenset(("media_type", "data")), f"{path}.source")
        if source.get("media_type") not in _IMAGE_TYPES:
            raise invalid(f"{path}.source.media_type", f"must be one of {sorted(_IMAGE_TYPES)}")
        _string(source.get("data"), f"{path}.source.data", empty=False)
    elif kind == "url":
        _only(source, frozenset(("url",)), f"{path}.source")
        _string(source.get("url"), f"{path}.source.url", empty=False)
    else:
        raise invalid(f"{path}.source.type", "must be 'base64' or 'url'")


def _tool_use(block: Mapping[str, object], path: str) -> None:
    _string(block.get("id"), f"{path}.id", empty=False)
    _string(block.get("name"), f"{path}.name", empty=False)
    _object(block.get("input"), f"{path}.input")


def _tool_result(block: Mapping[str, object], path: str) -> None:
    _string(block.get("tool_use_id"), f"{path}.tool_use_id", empty=False)
    content = block.get("content")
    if isinstance(content, list):
        for i, item in enumerate(content):
            check_block(item, f"{path}.content[{i}]", _TOOL_RESULT_BLOCKS)
    elif content is not None and not isinstance(content, str):
        raise invalid(f"{path}.content", "must be a string or a list of text and image blocks")
    if block.get("is_error") not in (None, True, False):
        raise invalid(f"{path}.is_error", "must be a boolean")


def _thinking(block: Mapping[str, object], path: str) -> None:
    _string(block.get("thinking"), f"{path}.thinking")
    _string(block.get("signature"), f"{path}.signature")


def _redacted(block: Mapping[str, object], path: str) -> None:
    _string(block.get("data"), f"{path}.data", empty=False)


_CHECKS = {
    "text": _text,
    "image": _image,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted,
}


def check_messages(value: object, limits: Limits) -> None:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "is required: a non-empty list of {role, content}")
    if len(value) > limits.max_messages:
        raise invalid("messages", f"has {len(value)} entries; the cap is {limits.max_messages}")
    for i, item in enumerate(value):
        path = f"messages.{i}"
        message = _object(item, path)
        _only(message, frozenset(("role", "content")), path)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{path}.role", f"must be 'user' or 'assistant'; got {str(role)[:40]!r}")
        allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                check_block(block, f"{path}.content.{j}", allowed)
        elif not isinstance(content, str):
            raise invalid(f"{path}.content", "must be a string or a list of content blocks")


def check_system(value: object) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise invalid("system", "must be a string or a list of text blocks")
    for i, block in enumerate(value):
        check_block(block, f"system.{i}", frozenset(("text",)))


def check_tools(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid("tools", "must be a list of tool definitions")
    names: set[str] = set()
    for i, item in enumerate(value):
        path = f"tools.{i}"
        tool = _object(item, path)
        _only(tool, _TOOL_KEYS, path)
        if tool.get("type") not in (None, "custom"):
            raise invalid(
                f"{path}.type",
                f"server tool {str(tool.get('type'))[:60]!r} is not supported by this gateway; "
                "only client tools (name, description, input_schema)",
            )
        name = _string(tool.get("name"), f"{path}.name", empty=False)
        if name in names:
            raise invalid(f"{path}.name", f"tool {name[:64]!r} is defined twice")
        names.add(name)
        if tool.get("description") is not None:
            _string(tool.get("description"), f"{path}.description")
        schema = _object(tool.get("input_schema"), f"{path}.input_schema")
        if schema.get("type") != "object":
            raise invalid(f"{path}.input_schema.type", "must be 'object'")
        check_cache_control(tool.get("cache_control"), f"{path}.cache_control")


def check_tool_choice(value: object, tools: object) -> None:
    if value is None:
        return
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        raise invalid("tool_choice.type", f"must be one of {sorted(_TOOL_CHOICES)}")
    allowed = {"name", "disable_parallel_tool_use"} if kind == "tool" else set()
    if kind in ("auto", "any", "tool"):
        allowed.add("disable_parallel_tool_use")
    _only(choice, frozenset(allowed), "tool_choice")
    if choice.get("disable_parallel_tool_use") not in (None, True, False):
        raise invalid("tool_choice.disable_parallel_tool_use", "must be a boolean")
    if kind == "tool":
        name = _string(choice.get("name"), "tool_choice.name", empty=False)
        listed = tools if isinstance(tools, list) else []
        defined = [t.get("name") for t in listed if isinstance(t, dict)]
        if name not in defined:
            raise invalid("tool_choice.name", f"names no tool in 'tools': {name[:64]!r}")


def check_thinking(value: object, max_tokens: int) -> None:
    if value is None:
        return
    thinking = _object(value, "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        _only(thinking, frozenset(), "thinking")
        return
    if kind != "enabled":
        raise invalid("thinking.type", "must be 'enabled' or 'disabled'")
    _only(thinking, frozenset(("budget_tokens",)), "thinking")
    budget = thinking.get("budget_tokens")
    if not _is_int(budget) or not 1024 <= budget < max_tokens:  # type: ignore[operator]
        raise invalid(
            "thinking.budget_tokens", "must be an integer of at least 1024 and below max_tokens"
        )


def check_sampling(data: Mapping[str, object]) -> None:
    for name in ("temperature", "top_p"):
        value = data.get(name)
        if value is not None and (not _is_number(value) or not 0 <= value <= 1):  # type: ignore[operator]
            raise invalid(name, "must be a number from 0 to 1")
    top_k = data.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):  # type: ignore[operator]
        raise invalid("top_k", "must be a non-negative integer")
    stops = data.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise invalid("stop_sequences", "must be a list of non-empty strings")


def check_metadata(value: object) -> None:
    if value is None:
        return
    metadata = _object(value, "metadata")
    _only(metadata, frozenset(("user_id",)), "metadata")
    user = metadata.get("user_id")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise invalid("metadata.user_id", "must be a string of at most 256 characters")


def check_known(data: Mapping[str, object]) -> None:
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise invalid(
            unknown[0],
            f"unknown or unsupported field (all unknown: {unknown[:10]}); "
            f"this gateway knows {sorted(KNOWN_FIELDS)}",
        )


def check_stream(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid("stream", "must be a boolean")
    return value


def check_turns(value: object, limits: Limits) -> None:
    """`messages` as a list of turns, each a role and a string or a list of objects."""
    if not isinstance(value, list) or not value:
        raise invalid("messages", "is required: a non-empty list of {role, content}")
    if len(value) > limits.max_messages:
        raise invalid("messages", f"has {len(value)} entries; the cap is {limits.max_messages}")
    for i, item in enumerate(value):
        message = _object(item, f"messages.{i}")
        if message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role", "must be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                _object(block, f"messages.{i}.content.{j}")
        elif not isinstance(content, str):
            raise invalid(f"messages.{i}.content", "must be a string or a list of content blocks")


def check_count_body(data: Mapping[str, object], limits: Limits) -> str:
    """The body of POST /v1/messages/count_tokens, which only Anthropic answers: what
    the gateway reads (the model, the turns); Anthropic judges the rest."""
    model = parse_model(data.get("model"))
    check_turns(data.get("messages"), limits)
    return model


def check_native_body(data: Mapping[str, object], limits: Limits) -> tuple[str, int, bool]:
    """A body for a model only Anthropic serves: what the gateway itself reads."""
    model = parse_model(data.get("model"))
    if data.get("max_tokens") is None:
        raise invalid("max_tokens", "is required")
    max_tokens = parse_max_tokens(data.get("max_tokens"), limits)
    assert max_tokens is not None
    check_turns(data.get("messages"), limits)
    return model, max_tokens, check_stream(data.get("stream"))


def check_body(data: Mapping[str, object], limits: Limits) -> tuple[str, int, bool]:
    """Check the whole body; (model, max_tokens, stream) when it is well formed."""
    check_known(data)
    model = parse_model(data.get("model"))
    if data.get("max_tokens") is None:
        raise invalid("max_tokens", "is required")
    max_tokens = parse_max_tokens(data.get("max_tokens"), limits)
    assert max_tokens is not None
    check_messages(data.get("messages"), limits)
    check_system(data.get("system"))
    check_sampling(data)
    check_tools(data.get("tools"))
    check_tool_choice(data.get("tool_choice"), data.get("tools"))
    check_thinking(data.get("thinking"), max_tokens)
    check_metadata(data.get("metadata"))
    return model, max_tokens, check_stream(data.get("stream"))
