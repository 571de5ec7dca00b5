"""Tool call arguments for providers that take them as a JSON object. Pure.

OpenAI carries a call's arguments as the model wrote them (a string); Anthropic
(`tool_use.input`) and Ollama (`function.arguments`) want the object. A history
whose arguments are not a JSON object cannot be sent to those: a 400 names
the call, before anything starts.
"""

from __future__ import annotations

import orjson

from app.errors import InvalidRequest
from app.providers.base import ChatRequest


def arguments_object(text: str, param: str) -> dict[str, object]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be a JSON object for this provider", param=param)
    return value


def check_arguments(request: ChatRequest) -> None:
    for i, message in enumerate(request.messages):
        for j, call in enumerate(message.tool_calls):
            arguments_object(call.arguments, f"messages[{i}].tool_calls[{j}].function.arguments")
