"""A checked Messages body to the gateway's `ChatRequest`. Pure.

Two readings of one body travel together:

- the body itself, unchanged, as the request's `native` form: an Anthropic upstream is
  sent exactly what the client wrote (`cache_control`, `metadata`, `thinking`, tool
  definitions, signed thinking blocks), with only the model name replaced by the
  upstream's own;
- its translation into the provider-neutral fields for every other provider:

  system (string or text blocks)   -> a system turn (blocks joined by a blank line)
  text blocks                      -> the turn's text
  image blocks                     -> images (base64 as a `data:` URL, or the URL)
  tool_use blocks                  -> the assistant turn's tool calls (input as JSON text)
  tool_result blocks               -> `tool` turns before the rest of their user turn
  thinking / redacted_thinking     -> the assistant turn's reasoning, which only Anthropic
                                      can verify (its signature): every other provider
                                      leaves it out
  tools, tool_choice               -> tools (input_schema as parameters), tool_choice
                                      (any -> required, tool -> that function),
                                      disable_parallel_tool_use -> parallel_tool_calls
  thinking                         -> a thinking budget
  stop_sequences, top_p, top_k     -> options `stop`, `top_p`, `top_k`
  metadata.user_id                 -> option `user`
  cache_control, citations         -> not sent: they change caching and billing, not
                                      the answer

A provider that cannot honour a translated field refuses the request before it starts
with a 400 naming it (the registry's feature check), so nothing that changes the answer
is dropped silently. A model only Anthropic serves skips the translation: its body is
checked for what the gateway reads and sent on; Anthropic judges the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from app.api.anthropic_validation import check_body, check_native_body
from app.api.messages import Limits
from app.api.validation import parse_sim
from app.errors import InvalidRequest
from app.providers.base import (
    CalledTool,
    ChatRequest,
    Message,
    NativeBody,
    Reasoning,
    RedactedThinking,
    Thinking,
    Thought,
    ToolChoice,
    ToolSpec,
)

Block = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class MessagesCall:
    request: ChatRequest
    stream: bool


def _blocks(content: object) -> Sequence[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    assert isinstance(content, list)
    return content


def _text(blocks: Sequence[Block]) -> str:
    return "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def _image_url(block: Block) -> str:
    source = block["source"]
    assert isinstance(source, dict)
    if source["type"] == "url":
        return str(source["url"])
    return f"data:{source['media_type']};base64,{source['data']}"


def _images(blocks: Sequence[Block]) -> tuple[str, ...]:
    return tuple(_image_url(b) for b in blocks if b.get("type") == "image")


def _tool_result(block: Block) -> Message:
    content = block.get("content")
    blocks = _blocks(content) if content is not None else []
    text = _text(blocks)
    if block.get("is_error"):
        text = f"Error: {text}"  # what the OpenAI shape has to say it: in the text
    return Message("tool", text, tool_call_id=str(block["tool_use_id"]), images=_images(blocks))


def _user(blocks: Sequence[Block]) -> list[Message]:
    # Tool results answer the assistant turn just before: they come first.
    turns = [_tool_result(b) for b in blocks if b.get("type") == "tool_result"]
    rest = [b for b in blocks if b.get("type") != "tool_result"]
    if rest:
        turns.append(Message("user", _text(rest), images=_images(rest)))
    return turns


def _thought(block: Block) -> Thought | None:
    if block.get("type") == "thinking":
        return Thinking(str(block["thinking"]), str(block["signature"]))
    if block.get("type") == "redacted_thinking":
        return RedactedThinking(str(block["data"]))
    return None


def _assistant(blocks: Sequence[Block]) -> Message:
    calls = tuple(
        CalledTool(str(b["id"]), str(b["name"]), orjson.dumps(b["input"]).decode())
        for b in blocks
        if b.get("type") == "tool_use"
    )
    thoughts = tuple(t for t in map(_thought, blocks) if t is not None)
    return Message("assistant", _text(blocks), tool_calls=calls, reasoning=thoughts)


def _turns(data: Mapping[str, object]) -> tuple[Message, ...]:
    turns: list[Message] = []
    system = data.get("system")
    if isinstance(system, str) and system:
        turns.append(Message("system", system))
    elif isinstance(system, list) and system:
        turns.append(Message("system", "\n\n".join(_text([b]) for b in system)))
    raw = data.get("messages")
    assert isinstance(raw, list)
    for item in raw:
        blocks = _blocks(item["content"])
        if item["role"] == "user":
            turns += _user(blocks)
        else:
            turns.append(_assistant(blocks))
    return tuple(turns)


def _tools(value: object) -> tuple[ToolSpec, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(ToolSpec(str(t["name"]), t.get("description"), t["input_schema"]) for t in value)


def _tool_choice(value: object) -> tuple[ToolChoice | None, bool | None]:
    if not isinstance(value, dict):
        return None, None
    parallel = False if value.get("disable_parallel_tool_use") else None
    kind = value["type"]
    if kind == "tool":
        return ToolChoice("function", str(value["name"])), parallel
    return ToolChoice({"any": "required"}.get(kind, kind)), parallel  # type: ignore[arg-type]


def _reasoning(value: object) -> Reasoning | None:
    if isinstance(value, dict) and value.get("type") == "enabled":
        return Reasoning(budget_tokens=value["budget_tokens"])
    return None


def _options(data: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
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
    return tuple(options)


def _native_call(data: Mapping[str, object], limits: Limits, beta: str | None) -> MessagesCall:
    """For a model only Anthropic serves: the body, and its turns' text for the logs."""
    model, max_tokens, stream = check_native_body(data, limits)
    raw = data["messages"]
    assert isinstance(raw, list)
    messages = tuple(
        Message(m["role"], m["content"] if isinstance(m["content"], str) else _text(m["content"]))
        for m in raw
    )
    body = {key: value for key, value in data.items() if key != "stream"}
    request = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        native=NativeBody("anthropic", orjson.dumps(body), beta),
    )
    return MessagesCall(request, stream)


def parse_messages_call(
    data: Mapping[str, object], limits: Limits, beta: str | None = None, *, native: bool = False
) -> MessagesCall:
    """The body of POST /v1/messages; `beta`: the client's `anthropic-beta` header;
    `native`: every target of the model is Anthropic, which is sent the body as is."""
    if native:
        return _native_call(data, limits, beta)
    model, max_tokens, stream = check_body(data, limits)
    messages = _turns(data)
    if not any(m.role != "system" for m in messages):
        raise InvalidRequest("messages: at least one turn is required", param="messages")
    temperature = data.get("temperature")
    choice, parallel = _tool_choice(data.get("tool_choice"))
    body = {key: value for key, value in data.items() if key not in ("sim", "stream")}
    request = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=None if temperature is None else float(temperature),  # type: ignore[arg-type]
        sim=parse_sim(data.get("sim")),
        options=_options(data),
        tools=_tools(data.get("tools")),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        reasoning=_reasoning(data.get("thinking")),
        native=NativeBody("anthropic", orjson.dumps(body), beta),
    )
    return MessagesCall(request, stream)
