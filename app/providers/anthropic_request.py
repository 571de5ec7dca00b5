"""A `ChatRequest` in Anthropic Messages terms. Pure.

- System turns join into `system`; a `tool` turn becomes a `tool_result`
  block in a user turn (consecutive results share one, as Anthropic wants
  them); an assistant turn's tool calls become `tool_use` blocks whose
  `input` is the call's arguments parsed (they must be a JSON object).
- An assistant turn's earlier reasoning goes first in its turn, in its order:
  signed thinking as a `thinking` block (text and `signature` as they came),
  redacted thinking as a `redacted_thinking` block; Anthropic checks the
  signatures and wants a tool_use's thinking first in the same message.
- Images: an https URL as a `url` source, a `data:` URL as a `base64` one.
- tool_choice: auto → auto, required → any, none → none, a function → tool;
  `parallel_tool_calls: false` → `disable_parallel_tool_use`.
- Reasoning: a thinking budget as is; OpenAI's `reasoning_effort` as a budget
  (`EFFORT_BUDGET`), `none` as no thinking. Anthropic wants max_tokens above
  the budget: without a max_tokens, the default is added to the budget.
"""

from __future__ import annotations

from typing import cast

from app.errors import InvalidRequest
from app.providers.arguments import arguments_object, check_arguments
from app.providers.base import ChatRequest, Message, Thinking, Thought, ToolChoice

DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used when the client gave none
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
_PASSTHROUGH = ("top_p", "top_k")


def thinking_budget(request: ChatRequest) -> int | None:
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if reasoning.budget_tokens is not None:
        return reasoning.budget_tokens
    return EFFORT_BUDGET.get(reasoning.effort or "none")


def max_tokens(request: ChatRequest) -> int:
    budget = thinking_budget(request)
    if request.max_tokens is not None:
        return request.max_tokens
    return DEFAULT_MAX_TOKENS + (budget or 0)


def check(request: ChatRequest) -> None:
    """What only Anthropic refuses, as a 400 before anything starts."""
    budget = thinking_budget(request)
    if budget is not None and request.max_tokens is not None and request.max_tokens <= budget:
        raise InvalidRequest(
            f"'max_tokens' ({request.max_tokens}) must be above the thinking budget ({budget})",
            param="max_tokens",
        )
    check_arguments(request)


def image_block(url: str) -> dict[str, object]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[len("data:") :].split(";", 1)[0]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def thought_block(thought: Thought) -> dict[str, object]:
    if isinstance(thought, Thinking):
        return {"type": "thinking", "thinking": thought.text, "signature": thought.signature}
    return {"type": "redacted_thinking", "data": thought.data}


def _content(message: Message) -> object:
    blocks: list[dict[str, object]] = [thought_block(t) for t in message.reasoning]
    blocks += [image_block(url) for url in message.images]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        tool_input = arguments_object(call.arguments, "tool_calls")
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
    if not message.images and not message.tool_calls and not message.reasoning:
        return message.content
    return blocks


def messages(request: ChatRequest) -> list[dict[str, object]]:
    turns: list[dict[str, object]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            last = turns[-1] if turns else None
            if last is not None and last.get("tool_results"):
                cast("list[object]", last["content"]).append(result)
            else:
                turns.append({"role": "user", "content": [result], "tool_results": True})
            continue
        role = "assistant" if message.role == "assistant" else "user"
        turns.append({"role": role, "content": _content(message)})
    for turn in turns:
        turn.pop("tool_results", None)
    return turns


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, object] | None:
    if choice is None and parallel is not False:
        return None
    mode = "auto" if choice is None else choice.mode
    body: dict[str, object] = {"type": {"required": "any", "function": "tool"}.get(mode, mode)}
    if choice is not None and choice.name is not None:
        body["name"] = choice.name
    if parallel is False and mode != "none":
        body["disable_parallel_tool_use"] = True
    return body


def extra_body(request: ChatRequest) -> dict[str, object]:
    """Everything but model, max_tokens and messages."""
    extra: dict[str, object] = {}
    if request.temperature is not None:
        extra["temperature"] = request.temperature
    for key in _PASSTHROUGH:
        value = request.option(key)
        if value is not None:
            extra[key] = value
    stop = request.option("stop")
    if stop is not None:
        extra["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        extra["system"] = system
    if request.tools:
        extra["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "input_schema": dict(tool.parameters or {"type": "object", "properties": {}}),
            }
            for tool in request.tools
        ]
    choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
    if choice is not None:
        extra["tool_choice"] = choice
    budget = thinking_budget(request)
    if budget is not None:
        extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return extra
