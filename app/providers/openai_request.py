"""A `ChatRequest` as the body of an OpenAI Chat Completions request. Pure.

Every field Sluice accepted is written back in OpenAI's own shape: the
history's tool calls (arguments exactly as the client sent them) and tool
results, image parts, tools, tool_choice, parallel_tool_calls,
response_format and reasoning_effort.
"""

from __future__ import annotations

from app.providers.base import ChatRequest, Message, ToolChoice, ToolSpec

# Request options passed through when the client set them: they change the answer.
PASSTHROUGH = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "user")


def message_body(message: Message) -> dict[str, object]:
    body: dict[str, object] = {"role": message.role}
    if message.images:
        parts: list[dict[str, object]] = (
            [{"type": "text", "text": message.content}] if message.content else []
        )
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in message.images]
        body["content"] = parts
    else:
        # An assistant turn that only calls tools has null content, as OpenAI writes it.
        body["content"] = None if message.tool_calls and not message.content else message.content
    if message.name is not None:
        body["name"] = message.name
    if message.tool_calls:
        body["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    return body


def tool_body(tool: ToolSpec) -> dict[str, object]:
    function: dict[str, object] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice_body(choice: ToolChoice) -> object:
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def request_body(request: ChatRequest, model: str, max_tokens_field: str) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [message_body(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    for key in PASSTHROUGH:
        value = request.option(key)
        if value is not None:
            body[key] = value
    if request.tools:
        body["tools"] = [tool_body(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_body(request.tool_choice)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.response_format is not None:
        fmt = request.response_format
        body["response_format"] = (
            {"type": fmt.type, "json_schema": dict(fmt.json_schema)}
            if fmt.json_schema is not None
            else {"type": fmt.type}
        )
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    return body
