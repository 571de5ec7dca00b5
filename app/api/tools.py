"""Request fields beyond plain chat: tools, tool_choice, parallel_tool_calls,
response_format and the reasoning controls. Pure.

Each is checked for shape here (a 400 naming the field); whether the model's
provider can honour it is the registry's check, against what each provider
accepts (`ChatRequest.features`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.errors import InvalidRequest
from app.providers.base import Reasoning, ResponseFormat, ToolChoice, ToolSpec

MAX_TOOLS = 128  # OpenAI's own limit
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
THINK_LEVELS = ("low", "medium", "high")
MIN_THINKING_BUDGET = 1024  # Anthropic's minimum


def _bad(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {problem}", param=param)


def _schema(value: object, at: str) -> Mapping[str, object]:
    """A function's parameters: a JSON Schema for an object (checked for shape)."""
    if not isinstance(value, dict):
        raise _bad(at, "must be a JSON Schema object")
    if value.get("type", "object") != "object":
        raise _bad(f"{at}.type", "must be 'object': a function takes named arguments")
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(p, dict) for p in properties.values()
    ):
        raise _bad(f"{at}.properties", "must map each argument name to a schema object")
    required = value.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _bad(f"{at}.required", "must be a list of argument names")
    return value


def _tool(item: object, i: int) -> ToolSpec:
    at = f"tools[{i}]"
    if not isinstance(item, dict) or item.get("type") != "function":
        raise _bad(f"{at}.type", "must be 'function'")
    function = item.get("function")
    if not isinstance(function, dict):
        raise _bad(f"{at}.function", "must be an object {name, description, parameters}")
    name = function.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise _bad(f"{at}.function.name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad(f"{at}.function.description", "must be a string")
    parameters = function.get("parameters")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _bad(f"{at}.function.strict", "must be a boolean")
    return ToolSpec(
        name=name,
        description=description,
        parameters=None if parameters is None else _schema(parameters, f"{at}.function.parameters"),
        strict=strict,
    )


def parse_tools(value: object) -> tuple[ToolSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise _bad("tools", f"must be a list of at most {MAX_TOOLS} function tools")
    tools = tuple(_tool(item, i) for i, item in enumerate(value))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise _bad("tools", "names each function once")
    return tools


def parse_tool_choice(value: object, tools: tuple[ToolSpec, ...]) -> ToolChoice | None:
    if value is None or (value in ("auto", "none") and not tools):
        return None  # what a request without tools means anyway
    if value in ("auto", "none", "required"):
        choice = ToolChoice(value)
    elif isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or name not in {t.name for t in tools}:
            raise _bad("tool_choice", "must name a function listed in 'tools'")
        choice = ToolChoice("function", name)
    else:
        raise _bad(
            "tool_choice",
            "must be 'auto', 'none', 'required' or {type: 'function', function: {name}}",
        )
    if choice.mode in ("required", "function") and not tools:
        raise _bad("tool_choice", "asks for a tool call, but 'tools' lists none")
    return choice


def parse_parallel_tool_calls(value: object) -> bool | None:
    """False, or None: parallel calls are every provider's default."""
    if value is not None and not isinstance(value, bool):
        raise _bad("parallel_tool_calls", "must be a boolean")
    return False if value is False else None


def parse_response_format(value: object) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None  # what every provider produces anyway
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema" and isinstance(value, dict):
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _bad("response_format.json_schema", "must be an object with a 'name'")
        if not isinstance(spec.get("schema"), dict):
            raise _bad("response_format.json_schema.schema", "must be a JSON Schema object")
        return ResponseFormat("json_schema", spec)
    raise _bad("response_format", "must be {type: 'text' | 'json_object' | 'json_schema'}")


def parse_reasoning(data: Mapping[str, object]) -> Reasoning | None:
    """`reasoning_effort` (OpenAI), `thinking` (Anthropic), `think` (Ollama)."""
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise _bad("reasoning_effort", f"must be one of {', '.join(EFFORTS)}")
    think = data.get("think")
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        raise _bad("think", f"must be true, false or one of {', '.join(THINK_LEVELS)}")
    budget = _thinking_budget(data.get("thinking"))
    if effort is None and think is None and budget is None:
        return None
    return Reasoning(effort=effort, budget_tokens=budget, think=think)


def _thinking_budget(value: object) -> int | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "disabled":
        return None  # every provider's default
    budget = value.get("budget_tokens") if isinstance(value, dict) else None
    if kind != "enabled" or not isinstance(budget, int) or isinstance(budget, bool):
        raise _bad("thinking", "must be {type: 'enabled', budget_tokens} or {type: 'disabled'}")
    if budget < MIN_THINKING_BUDGET:
        raise _bad("thinking.budget_tokens", f"must be at least {MIN_THINKING_BUDGET}")
    return budget
