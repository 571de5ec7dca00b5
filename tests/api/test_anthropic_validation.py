"""The Messages body checks: Anthropic's shape accepted, anything else named."""

from __future__ import annotations

import pytest

from app.api.anthropic_validation import check_body
from app.api.messages import Limits
from app.errors import InvalidRequest

LIMITS = Limits()


def body(**extra: object) -> dict[str, object]:
    return {
        "model": "sim/echo",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


def refusal(data: dict[str, object]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        check_body(data, LIMITS)
    return raised.value


def test_a_minimal_body_gives_model_max_tokens_and_stream() -> None:
    assert check_body(body(), LIMITS) == ("sim/echo", 64, False)
    assert check_body(body(stream=True), LIMITS) == ("sim/echo", 64, True)


def test_max_tokens_is_required_as_anthropic_requires_it() -> None:
    data = body()
    del data["max_tokens"]
    error = refusal(data)
    assert error.param == "max_tokens"
    assert "required" in error.message


def test_an_unknown_field_is_named() -> None:
    error = refusal(body(frequency_penalty=1))
    assert error.param == "frequency_penalty"
    assert "frequency_penalty" in error.message


def test_every_documented_block_and_field_is_accepted() -> None:
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    data = body(
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": image}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "b3BhcXVl"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "42"}],
                        "is_error": False,
                    }
                ],
            },
        ],
        max_tokens=4096,
        stop_sequences=["END"],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        tools=[{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "f"},
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "u-1"},
        stream=True,
    )
    assert check_body(data, LIMITS) == ("sim/echo", 4096, True)


@pytest.mark.parametrize(
    ("content", "param"),
    [
        ([{"type": "document", "source": {}}], "messages.0.content.0.type"),
        ([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "messages.0.content.0.type"),
        ([{"type": "text", "text": "x", "colour": "red"}], "messages.0.content.0.colour"),
        (
            [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
            "messages.0.content.0.source.type",
        ),
    ],
    ids=["unknown-block", "tool-use-in-a-user-turn", "unknown-key", "unknown-image-source"],
)
def test_a_block_nobody_can_honour_is_named_by_its_path(content: object, param: str) -> None:
    error = refusal(body(messages=[{"role": "user", "content": content}]))
    assert error.param == param
    assert param in error.message


def test_a_server_tool_is_refused_by_name() -> None:
    error = refusal(body(tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert error.param == "tools.0.type"
    assert "web_search_20250305" in error.message


def test_tool_choice_must_name_a_defined_tool() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    error = refusal(body(tools=tools, tool_choice={"type": "tool", "name": "g"}))
    assert error.param == "tool_choice.name"


def test_thinking_budget_must_be_below_max_tokens() -> None:
    error = refusal(body(thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=1024))
    assert error.param == "thinking.budget_tokens"


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 1.5), ("top_p", -0.1), ("top_k", -1), ("stop_sequences", [""])],
)
def test_sampling_values_out_of_range_are_named(field: str, value: object) -> None:
    assert refusal(body(**{field: value})).param == field


def test_a_turn_with_an_unknown_role_is_named() -> None:
    error = refusal(body(messages=[{"role": "system", "content": "x"}]))
    assert error.param == "messages.0.role"
