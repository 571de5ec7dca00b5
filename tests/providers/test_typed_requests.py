"""Tools, tool history, images, JSON formats and reasoning controls, as each
provider receives them; and the 400 for what a provider cannot honour."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.errors import InvalidRequest
from app.providers.base import (
    CalledTool,
    ChatRequest,
    Message,
    Reasoning,
    RedactedThinking,
    ResponseFormat,
    Thinking,
    ToolChoice,
    ToolSpec,
)
from app.providers.openai import max_tokens_field_for
from app.providers.registry import ProviderRegistry
from app.settings import CompatServer, Settings
from app.streaming.registry import check_request
from tests.providers.kinds import sent

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = "data:image/png;base64,iVBORw0KGgo="
HISTORY = (
    Message("system", "Be brief."),
    Message("user", "Weather in Paris?", images=(PNG,)),
    Message(
        "assistant", "", tool_calls=(CalledTool("call_1", "get_weather", '{"city": "Paris"}'),)
    ),
    Message("tool", "18 C, sunny", tool_call_id="call_1"),
)


def agent_request(**fields: object) -> ChatRequest:
    values: dict[str, object] = {
        "model": "x/y",
        "messages": HISTORY,
        "max_tokens": 64,
        "tools": (WEATHER,),
        "tool_choice": ToolChoice("function", "get_weather"),
        "parallel_tool_calls": False,
    }
    values.update(fields)
    return ChatRequest(**values)  # type: ignore[arg-type]


async def test_openai_gets_the_history_tools_and_choices_in_its_own_shape() -> None:
    request = agent_request(
        response_format=ResponseFormat("json_object"), reasoning=Reasoning(effort="low")
    )
    body = (await sent("openai", request)).json()
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert body["reasoning_effort"] == "low"


async def test_anthropic_gets_tool_use_and_tool_result_blocks() -> None:
    body = (await sent("anthropic", agent_request(reasoning=Reasoning(budget_tokens=2048)))).json()
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "text", "text": "Weather in Paris?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"}],
        },
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


THOUGHTS = (Thinking("Look it up.", "EqQBCgIY/+=="), RedactedThinking("EmwKAhgB=="))
THOUGHTFUL = (
    Message("user", "Weather in Paris?"),
    Message(
        "assistant",
        "Checking.",
        tool_calls=(CalledTool("call_1", "get_weather", '{"city": "Paris"}'),),
        reasoning=THOUGHTS,
    ),
    Message("tool", "18 C, sunny", tool_call_id="call_1"),
)


async def test_earlier_reasoning_goes_back_to_anthropic_first_in_its_turn() -> None:
    messages = (await sent("anthropic", agent_request(messages=THOUGHTFUL))).json()["messages"]
    assert isinstance(messages, list)
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": "EqQBCgIY/+=="},
            {"type": "redacted_thinking", "data": "EmwKAhgB=="},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }


@pytest.mark.parametrize("kind", ["openai", "compat", "ollama"])
async def test_earlier_reasoning_is_left_out_for_every_other_provider(kind: str) -> None:
    without = tuple(replace(m, reasoning=()) for m in THOUGHTFUL)
    with_reasoning = (await sent(kind, agent_request(messages=THOUGHTFUL))).json()
    assert with_reasoning == (await sent(kind, agent_request(messages=without))).json()


async def test_ollama_gets_argument_objects_base64_images_and_think() -> None:
    request = agent_request(
        tool_choice=None,
        parallel_tool_calls=None,
        response_format=ResponseFormat("json_schema", {"name": "w", "schema": {"type": "object"}}),
        reasoning=Reasoning(effort="medium"),
    )
    body = (await sent("ollama", request)).json()
    messages = body["messages"]
    assert isinstance(messages, list)
    assert messages[1]["images"] == ["iVBORw0KGgo="]
    assert messages[2]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert messages[3] == {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"}
    assert body["format"] == {"type": "object"}
    assert body["think"] == "medium"


def test_max_completion_tokens_goes_to_openai_only() -> None:
    assert max_tokens_field_for(None) == "max_completion_tokens"
    assert max_tokens_field_for("https://api.openai.com/v1") == "max_completion_tokens"
    assert max_tokens_field_for("http://127.0.0.1:8080/v1") == "max_tokens"
    assert max_tokens_field_for("https://openrouter.ai/api/v1") == "max_tokens"


async def test_openai_with_another_base_url_gets_max_tokens_and_toml_overrides() -> None:
    body = (await sent("compat", agent_request(tool_choice=None))).json()
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    settings = Settings(
        compat_servers=(
            CompatServer(
                "proxy", "http://127.0.0.1:9/v1", max_tokens_field="max_completion_tokens"
            ),
        )
    )
    registry = ProviderRegistry.from_settings(
        settings, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    try:
        fields = {
            name: registry.resolve(f"{name}/m")[0].provider._max_tokens_field  # type: ignore[attr-defined]
            for name in ("openai", "proxy")
        }
    finally:
        await registry.aclose()
    assert fields == {"openai": "max_tokens", "proxy": "max_completion_tokens"}


@pytest.mark.parametrize(
    ("model", "request_", "param"),
    [
        ("sim/echo", agent_request(), "messages[1].content"),
        (
            "sim/echo",
            agent_request(messages=HISTORY[2:], response_format=ResponseFormat("json_object")),
            "response_format",
        ),
        (
            "anthropic/c",
            agent_request(response_format=ResponseFormat("json_object")),
            "response_format",
        ),
        ("ollama/m", agent_request(), "tool_choice"),
        (
            "ollama/m",
            agent_request(
                parallel_tool_calls=None,
                tool_choice=None,
                messages=(Message("user", "x", images=("https://x.test/a.png",)),),
            ),
            "messages[0].content",
        ),
        ("openai/m", agent_request(reasoning=Reasoning(think=True)), "think"),
        ("novision/m", agent_request(), "messages[1].content"),
        ("both", agent_request(tool_choice=None, parallel_tool_calls=None), "messages[1].content"),
        (
            "anthropic/c",
            agent_request(
                messages=(Message("assistant", "", tool_calls=(CalledTool("c", "f", "[1]"),)),)
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            "anthropic/c",
            agent_request(max_tokens=1000, reasoning=Reasoning(budget_tokens=2048)),
            "max_tokens",
        ),
    ],
)
async def test_a_feature_some_target_cannot_honour_is_a_400_naming_the_field(
    model: str, request_: ChatRequest, param: str
) -> None:
    settings = Settings(
        compat_servers=(CompatServer("novision", "http://127.0.0.1:9/v1", vision=False),),
        aliases=(("both", ("openai/gpt-4o", "sim/echo")),),
    )
    registry = ProviderRegistry.from_settings(settings, env={})
    try:
        with pytest.raises(InvalidRequest) as raised:
            check_request(request_, registry.resolve(model))
    finally:
        await registry.aclose()
    assert raised.value.param == param
    assert param in raised.value.message
