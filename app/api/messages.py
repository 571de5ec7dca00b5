"""The `messages` of a request: turns, content parts, tool calls and results. Pure.

Every key of a turn is read or refused: a turn may not carry a field that
would be dropped on the way upstream. Output-only fields the official SDKs
send back when a client appends a previous answer to its history (`refusal`,
`annotations`, `audio`, `function_call`, `parsed` when null or empty, and
`reasoning_content`, which is the model's own earlier reasoning) are
accepted; a non-null one that would change the answer is refused. The
earlier reasoning is not sent upstream again: the servers that stream it
(DeepSeek) refuse it in a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import InvalidRequest
from app.providers.base import ROLES, CalledTool, Message, Role

_COMMON = {"role", "content", "name"}
_KEYS: dict[str, set[str]] = {
    "system": _COMMON,
    "user": _COMMON,
    "assistant": _COMMON
    | {"tool_calls", "refusal", "annotations", "audio", "function_call", "parsed"}
    | {"reasoning_content"},
    "tool": _COMMON | {"tool_call_id"},
}
_CALL_KEYS = {"id", "type", "function", "index"}
_EMPTY_OK = ("annotations", "audio", "function_call", "parsed")
_IMAGE_SCHEMES = ("https://", "http://", "data:image/")
MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens_cap: int = 32_768
    max_messages: int = 1024
    max_total_chars: int = 1_000_000


def _bad(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{param} {problem}", param=param)


def _string(value: object, param: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _bad(param, "must be a non-empty string" if not empty else "must be a string")
    return value


def _image(part: Mapping[str, object], at: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.startswith(_IMAGE_SCHEMES):
        raise _bad(f"{at}.image_url", "needs a 'url': https://… or data:image/…;base64,…")
    if url.startswith("data:") and ";base64," not in url[:100]:
        raise _bad(f"{at}.image_url", "a data: URL must be base64 (data:image/png;base64,…)")
    return url


def _content(value: object, role: str, at: str) -> tuple[str, tuple[str, ...]]:
    """(the text, the image URLs) of a turn's content."""
    if value is None:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise _bad(f"{at}.content", "must be a string or a list of content parts")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part, dict):
            texts.append(_string(part.get("text"), f"{at}.content[{j}].text"))
        elif kind == "image_url" and role == "user" and isinstance(part, dict):
            images.append(_image(part, f"{at}.content[{j}]"))
        else:
            raise _bad(
                f"{at}.content[{j}]",
                "must be a text part" + (" or an image_url part" if role == "user" else ""),
            )
    return "".join(texts), tuple(images)


def _tool_calls(value: object, at: str) -> tuple[CalledTool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad(f"{at}.tool_calls", "must be a list")
    calls = []
    for j, item in enumerate(value):
        here = f"{at}.tool_calls[{j}]"
        if not isinstance(item, dict) or item.get("type", "function") != "function":
            raise _bad(here, "must be a function call {id, type: 'function', function}")
        function = item.get("function")
        if not isinstance(function, dict):
            raise _bad(f"{here}.function", "must be an object {name, arguments}")
        # `index` and `parsed_arguments` are what the SDK's helpers leave on a call
        # they accumulated or parsed: the index of the stream, and the SDK's own
        # parse of `arguments`. Neither says anything the call does not.
        for key in set(item) - _CALL_KEYS:
            raise _bad(f"{here}.{key}", "is not a field of a tool call")
        for key in set(function) - {"name", "arguments", "parsed_arguments"}:
            raise _bad(f"{here}.function.{key}", "is not a field of a function call")
        calls.append(
            CalledTool(
                id=_string(item.get("id"), f"{here}.id", empty=False),
                name=_string(function.get("name"), f"{here}.function.name", empty=False),
                arguments=_string(function.get("arguments"), f"{here}.function.arguments"),
            )
        )
    return tuple(calls)


def _check_keys(item: Mapping[str, object], role: str, at: str) -> None:
    for key in item:
        if key not in _KEYS[role]:
            raise _bad(f"{at}.{key}", f"is not a field of a {role} message")
    for key in _EMPTY_OK:
        if item.get(key) not in (None, [], {}):
            raise _bad(f"{at}.{key}", "is an output field; only null is accepted in a request")


def parse_message(item: object, i: int) -> Message:
    at = f"messages[{i}]"
    if not isinstance(item, dict):
        raise _bad(at, "must be an object")
    role = item.get("role")
    if role == "developer":  # OpenAI's newer name for `system`
        role = "system"
    if role not in ROLES:
        raise _bad(f"{at}.role", f"must be one of {', '.join(ROLES)}; got {str(role)[:40]!r}")
    assert isinstance(role, str)
    _check_keys(item, role, at)
    text, images = _content(item.get("content"), role, at)
    refusal = item.get("refusal")
    if refusal is not None:
        text = text or _string(refusal, f"{at}.refusal")  # a refusal is the turn's text
    calls = _tool_calls(item.get("tool_calls"), at) if role == "assistant" else ()
    if item.get("content") is None and not calls and refusal is None:
        raise _bad(f"{at}.content", "is required (null only beside tool_calls)")
    name = item.get("name")
    return Message(
        role=_role(role),
        content=text,
        tool_calls=calls,
        tool_call_id=(
            _string(item.get("tool_call_id"), f"{at}.tool_call_id", empty=False)
            if role == "tool"
            else None
        ),
        images=images,
        name=None if name is None else _name(name, f"{at}.name"),
    )


def _role(value: str) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise AssertionError(value)


def _name(value: object, param: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise _bad(param, f"must be a string of 1 to {MAX_NAME} characters")
    return value


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
    messages = tuple(parse_message(item, i) for i, item in enumerate(value))
    total = sum(len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in messages)
    if total > limits.max_total_chars:
        raise InvalidRequest(
            f"the messages hold {total} characters; the cap is {limits.max_total_chars}",
            param="messages",
        )
    return messages
