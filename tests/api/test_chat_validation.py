"""app/api/chat_validation.py: what a Chat Completions body may carry. Pure."""

from __future__ import annotations

import pytest

from app.api.chat_validation import parse_chat_completion
from app.api.messages import Limits
from app.errors import InvalidRequest
from app.providers.base import Message, SimOptions

LIMITS = Limits()


def body(**extra: object) -> dict[str, object]:
    return {"model": "sim/echo", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_minimal_body_is_a_non_streaming_request() -> None:
    chat = parse_chat_completion(body(), LIMITS)
    assert chat.stream is False
    assert chat.include_usage is False
    assert chat.request.model == "sim/echo"
    assert chat.request.messages == (Message("user", "hi"),)
    assert chat.request.options == ()


def test_answer_changing_options_are_passed_through_in_order() -> None:
    chat = parse_chat_completion(
        body(
            user="u-1",
            seed=7,
            stop=["\n", "END"],
            top_p=0.5,
            presence_penalty=-1,
            frequency_penalty=1.5,
            temperature=0.2,
            max_completion_tokens=12,
        ),
        LIMITS,
    )
    assert chat.request.options == (
        ("top_p", 0.5),
        ("stop", ("\n", "END")),
        ("seed", 7),
        ("presence_penalty", -1),
        ("frequency_penalty", 1.5),
        ("user", "u-1"),
    )
    assert chat.request.temperature == 0.2
    assert chat.request.max_tokens == 12


def test_streaming_with_usage_and_sim_knobs() -> None:
    chat = parse_chat_completion(
        body(stream=True, stream_options={"include_usage": True}, sim={"tps": 0}), LIMITS
    )
    assert chat.stream is True
    assert chat.include_usage is True
    assert chat.request.sim == SimOptions(tps=0.0)


def test_max_tokens_is_the_legacy_name_of_max_completion_tokens() -> None:
    assert parse_chat_completion(body(max_tokens=5), LIMITS).request.max_tokens == 5
    same = body(max_tokens=5, max_completion_tokens=5)
    assert parse_chat_completion(same, LIMITS).request.max_tokens == 5


def test_developer_role_is_the_system_role() -> None:
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]
    chat = parse_chat_completion(body(messages=messages), LIMITS)
    assert chat.request.messages[0] == Message("system", "be brief")


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_harmless_sdk_fields_are_accepted_and_change_nothing() -> None:
    chat = parse_chat_completion(
        body(
            stream=True,
            stream_options={"include_usage": False, "include_obfuscation": False},
            n=1,
            metadata={"team": "a"},
            store=False,
            service_tier="auto",
            tools=[],
            tool_choice="none",
            parallel_tool_calls=True,
            response_format={"type": "text"},
            logprobs=False,
            logit_bias={},
        ),
        LIMITS,
    )
    assert chat.request == parse_chat_completion(body(), LIMITS).request


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"n": True}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f g"}}]}, "tools[0].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            },
            "tools[0].function.parameters.type",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [TOOL, TOOL]}, "tools"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice",
        ),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens"),
        ({"think": "very"}, "think"),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "hi", "tool_call_id": "x"}]},
            "messages[0].tool_call_id",
        ),
        ({"messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "system", "content": [IMAGE]}]}, "messages[0].content[0]"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url",
        ),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"stream": True, "stream_options": {"chunk": 1}}, "stream_options"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_completion_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"seed": 1.5}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 3}, "stop"),
        ({"user": 3}, "user"),
        ({"metadata": "x"}, "metadata"),
        ({"temperature": 3}, "temperature"),
        ({"sim": {"speed": 1}}, "sim"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
    ],
)
def test_a_field_that_cannot_be_honoured_is_refused_by_name(
    extra: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat_completion(body(**extra), LIMITS)
    assert raised.value.param == param
    assert param in raised.value.message
