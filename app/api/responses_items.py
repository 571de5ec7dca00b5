"""The `input` of POST /v1/responses and its tool fields, in Chat Completions terms. Pure.

A Responses request says in items what a chat request says in messages:
each item is translated into the chat message shape and then read by the
same parser as every other door (app/api/messages.py), so a field is honoured
or refused the same way whichever door it came through.

- `message` items: text parts (`input_text`, `output_text`), `input_image`
  parts (by URL), a `refusal` part (an earlier answer's text);
- `function_call` items: tool calls of an assistant turn (consecutive calls,
  and the assistant message before them, make one turn);
- `function_call_output` items: `tool` turns answering a call;
- `reasoning` items: the reasoning of the assistant turn that the next
  `message` or `function_call` item lands in, kept on that turn in the order
  given. One with `encrypted_content` is thinking Sluice (or Anthropic
  behind another gateway) signed: with summary text, the text and its
  signature; with none, redacted thinking's data. The Anthropic provider
  sends them back as thinking blocks; every other provider leaves them out,
  as their APIs expect. One without `encrypted_content` carries nothing a
  provider could verify, and one with no assistant item after it in its
  turn belongs to no answer: both are left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from app.api.messages import Limits, parse_messages
from app.api.tools import parse_response_format, parse_tool_choice, parse_tools
from app.errors import InvalidRequest
from app.providers.base import (
    Message,
    RedactedThinking,
    ResponseFormat,
    Thinking,
    Thought,
    ToolChoice,
    ToolSpec,
)

_TEXT_PARTS = ("input_text", "output_text", "text")
BUILT_IN_TOOLS = (
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer_use",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
)

ChatDict = dict[str, object]


def _bad(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {problem}", param=param)


def _unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is not supported by this gateway: {why}", param=param)


def _parts(content: object, where: str) -> tuple[object, str | None]:
    """(the chat content, a refusal's text) of a Responses message's content."""
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        raise _bad(f"{where}.content", "must be a string or a list of parts")
    parts: list[ChatDict] = []
    refusal: str | None = None
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _bad(at, "must be an object")
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": part.get("text")})
        elif kind == "refusal":
            refusal = part.get("refusal") if isinstance(part.get("refusal"), str) else ""
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str):
                raise _unsupported(
                    at, "images are taken by 'image_url' (https or data:), not file_id"
                )
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind in ("input_file", "input_audio"):
            raise _unsupported(at, f"'{kind}' parts are not carried to providers")
        else:
            raise _bad(at, f"has unknown part type {str(kind)[:40]!r}")
    return parts, refusal


def _message(item: Mapping[str, object], where: str) -> ChatDict:
    content, refusal = _parts(item.get("content"), where)
    message: ChatDict = {"role": item.get("role"), "content": content}
    if refusal is not None:
        message["refusal"] = refusal
        if content == []:
            message["content"] = None
    return message


def _call(item: Mapping[str, object], where: str) -> ChatDict:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
        raise _bad(where, "needs string 'call_id', 'name' and 'arguments'")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _output(item: Mapping[str, object], where: str) -> ChatDict:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str):
        raise _bad(f"{where}.call_id", "must be a string")
    if isinstance(output, list):  # text parts, as for a message
        output, _ = _parts(output, where)
    if not isinstance(output, str | list):
        raise _bad(f"{where}.output", "must be a string or a list of text parts")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _thought(item: Mapping[str, object], where: str) -> Thought | None:
    """A reasoning item as the thinking it stands for; None: nothing to send back."""
    summary, encrypted = item.get("summary", []), item.get("encrypted_content")
    if not isinstance(summary, list) or not all(
        isinstance(part, dict) and isinstance(part.get("text"), str) for part in summary
    ):
        raise _bad(f"{where}.summary", "must be a list of summary_text parts")
    if encrypted is None:
        return None
    if not isinstance(encrypted, str):
        raise _bad(f"{where}.encrypted_content", "must be a string")
    if not summary:
        return RedactedThinking(encrypted)
    return Thinking("".join(str(part["text"]) for part in summary), encrypted)


class _Turns:
    """The chat messages the items become, and the reasoning of each assistant one."""

    def __init__(self) -> None:
        self.messages: list[ChatDict] = []
        self.thoughts: dict[int, list[Thought]] = {}  # by index in `messages`
        self._pending: list[Thought] = []  # reasoning items waiting for their turn

    def add(self, item: object, where: str) -> None:
        if not isinstance(item, dict):
            raise _bad(where, "must be an object")
        kind = item.get("type", "message")
        if kind == "reasoning":
            thought = _thought(item, where)
            if thought is not None:
                self._pending.append(thought)
            return
        if kind == "message":
            self.messages.append(_message(item, where))
        elif kind == "function_call":
            last = self.messages[-1] if self.messages else None
            if last is None or last.get("role") != "assistant":
                self.messages.append({"role": "assistant", "content": None})
            calls = self.messages[-1].setdefault("tool_calls", [])
            assert isinstance(calls, list)
            calls.append(_call(item, where))
        elif kind == "function_call_output":
            self.messages.append(_output(item, where))
        else:
            raise _bad(where, f"has unsupported item type {str(kind)[:40]!r}")
        if self.messages[-1].get("role") == "assistant":
            self.thoughts.setdefault(len(self.messages) - 1, []).extend(self._pending)
        self._pending = []  # reasoning with no answer after it in its turn: left out


def parse_input(value: object, limits: Limits) -> tuple[Message, ...]:
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad("input", "is required: a string or a list of items")
    turns = _Turns()
    for i, item in enumerate(value):
        turns.add(item, f"input[{i}]")
    if not turns.messages:
        raise _bad("input", "holds no message")
    try:
        messages = parse_messages(turns.messages, limits)
    except InvalidRequest as exc:  # named after the chat message the items became
        raise InvalidRequest(
            f"'input', read as chat messages: {exc.message}", param="input"
        ) from None
    return tuple(
        dataclasses.replace(message, reasoning=tuple(turns.thoughts[i]))
        if turns.thoughts.get(i)
        else message
        for i, message in enumerate(messages)
    )


def parse_response_tools(value: object) -> tuple[ToolSpec, ...]:
    """Responses function tools (`{type, name, description, parameters, strict}`)."""
    if value is None or value == []:
        return ()
    if not isinstance(value, list):
        raise _bad("tools", "must be a list")
    kinds = [t.get("type") if isinstance(t, dict) else None for t in value]
    built_in = sorted({str(k) for k in kinds if k in BUILT_IN_TOOLS})
    if built_in:
        raise _unsupported("tools", f"built-in OpenAI tools {built_in} run only at OpenAI")
    chat = [
        {"type": t.get("type"), "function": {k: v for k, v in t.items() if k != "type"}}
        if isinstance(t, dict)
        else t
        for t in value
    ]
    return parse_tools(chat)


def parse_response_tool_choice(value: object, tools: tuple[ToolSpec, ...]) -> ToolChoice | None:
    if isinstance(value, dict):
        if value.get("type") != "function":
            raise _unsupported("tool_choice", "only 'auto', 'none', 'required' or a function")
        value = {"type": "function", "function": {"name": value.get("name")}}
    return parse_tool_choice(value, tools)


def parse_text_format(text: object) -> ResponseFormat | None:
    """`text.format`: `text`, `json_object`, or `json_schema` with its name and schema."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _bad("text", "must be an object")
    if text.get("verbosity") not in (None, "medium"):
        raise _unsupported("text.verbosity", "verbosity cannot be passed to every provider")
    spec = text.get("format")
    if spec is None:
        return None
    if isinstance(spec, dict) and spec.get("type") == "json_schema":
        schema = {k: v for k, v in spec.items() if k != "type"}
        spec = {"type": "json_schema", "json_schema": schema}
    try:
        return parse_response_format(spec)
    except InvalidRequest as exc:
        message = exc.message.replace("response_format.json_schema", "text.format")
        message = message.replace("response_format", "text.format")
        raise InvalidRequest(message, param="text.format") from None
