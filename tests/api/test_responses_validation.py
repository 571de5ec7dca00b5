"""POST /v1/responses bodies to typed requests: every field honoured, translated,
left out as documented, or refused with a 400 that names it. Pure."""

from __future__ import annotations

import pytest

from app.api.messages import Limits
from app.api.responses_validation import parse_responses_create
from app.errors import InvalidRequest
from app.providers.base import (
    CalledTool,
    Message,
    RedactedThinking,
    ResponseFormat,
    Thinking,
    ToolChoice,
    ToolSpec,
)

LIMITS = Limits()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def parse(**body: object) -> object:
    return parse_responses_create({"model": "sim/echo", "input": "hi", **body}, LIMITS)


def refused(**body: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        parse(**body)
    return raised.value


def test_a_string_input_is_one_user_message() -> None:
    create = parse_responses_create({"model": "sim/echo", "input": "hi"}, LIMITS)
    assert create.request.messages == (Message("user", "hi"),)
    assert (create.stream, create.background, create.store) == (False, False, True)


def test_items_become_the_chat_turns_they_stand_for() -> None:
    items = [
        {"role": "developer", "content": "Be brief."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is "},
                {"type": "input_text", "text": "this?"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "zoom", "arguments": '{"x":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "c2", "output": "a big cat"},
    ]
    create = parse_responses_create({"model": "sim/echo", "input": items}, LIMITS)
    assert create.request.messages == (
        Message("system", "Be brief."),
        Message("user", "What is this?", images=("https://example.com/a.png",)),
        Message(
            "assistant",
            "Let me look.",
            tool_calls=(CalledTool("c1", "look", "{}"), CalledTool("c2", "zoom", '{"x":1}')),
            reasoning=(RedactedThinking("x"),),
        ),
        Message("tool", "a cat", tool_call_id="c1"),
        Message("tool", "a big cat", tool_call_id="c2"),
    )


def reasoning(text: str | None, encrypted: str | None) -> dict[str, object]:
    summary = [] if text is None else [{"type": "summary_text", "text": text}]
    return {"type": "reasoning", "id": "rs", "summary": summary, "encrypted_content": encrypted}


def call(call_id: str) -> dict[str, object]:
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}


def test_reasoning_items_go_first_in_the_assistant_turn_they_precede_in_order() -> None:
    items = [
        {"role": "user", "content": "hi"},
        reasoning("Think.", "sig/+=="),
        reasoning(None, "opaque=="),
        call("c1"),
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        reasoning("Again.", "sig2"),
        {"role": "assistant", "content": "Done."},
        reasoning("", "sig3"),  # signed thinking with no text: an empty summary part
        call("c2"),  # joins the turn of "Done."
    ]
    messages = parse_responses_create({"model": "sim/echo", "input": items}, LIMITS)
    turns = messages.request.messages
    assert [m.reasoning for m in turns] == [
        (),
        (Thinking("Think.", "sig/+=="), RedactedThinking("opaque==")),
        (),
        (Thinking("Again.", "sig2"), Thinking("", "sig3")),
    ]
    assert turns[3].content == "Done."
    assert [c.id for c in turns[3].tool_calls] == ["c2"]


def test_unsigned_reasoning_and_reasoning_without_an_answer_are_left_out() -> None:
    items = [
        reasoning("OpenAI-compatible reasoning has no signature.", None),
        {"role": "assistant", "content": "One."},
        reasoning("Nothing of the assistant follows in this turn.", "sig"),
        {"role": "user", "content": "two"},
        reasoning("Last.", "sig"),
    ]
    turns = parse_responses_create({"model": "sim/echo", "input": items}, LIMITS).request.messages
    assert turns == (Message("assistant", "One."), Message("user", "two"))


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "reasoning", "summary": "text"}, "input[0].summary"),
        ({"type": "reasoning", "summary": [{"type": "summary_text"}]}, "input[0].summary"),
        (
            {"type": "reasoning", "summary": [], "encrypted_content": 7},
            "input[0].encrypted_content",
        ),
    ],
)
def test_a_malformed_reasoning_item_is_refused_by_name(item: object, param: str) -> None:
    error = refused(input=[item, {"role": "user", "content": "hi"}])
    assert error.param == param


def test_instructions_and_history_come_before_the_input() -> None:
    create = parse_responses_create(
        {"model": "sim/echo", "input": "three", "instructions": "Brief."}, LIMITS
    )
    history = (Message("user", "one"), Message("assistant", "two"))
    assert create.upstream(history).messages == (
        Message("system", "Brief."),
        *history,
        Message("user", "three"),
    )


def test_function_tools_tool_choice_format_and_effort_are_typed() -> None:
    create = parse_responses_create(
        {
            "model": "sim/echo",
            "input": "hi",
            "tools": [{"type": "function", "name": "look", "parameters": SCHEMA, "strict": True}],
            "tool_choice": {"type": "function", "name": "look"},
            "parallel_tool_calls": False,
            "text": {"format": {"type": "json_schema", "name": "out", "schema": SCHEMA}},
            "reasoning": {"effort": "low", "summary": "auto"},
        },
        LIMITS,
    )
    request = create.request
    assert request.tools == (ToolSpec("look", None, SCHEMA, True),)
    assert request.tool_choice == ToolChoice("function", "look")
    assert request.parallel_tool_calls is False
    assert request.response_format == ResponseFormat(
        "json_schema", {"name": "out", "schema": SCHEMA}
    )
    assert request.reasoning is not None
    assert request.reasoning.effort == "low"
    echo = dict(create.echo)
    assert echo["reasoning"] == {"effort": "low", "summary": "auto"}
    assert echo["tool_choice"] == {"type": "function", "name": "look"}


@pytest.mark.parametrize(
    ("body", "param", "named"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools", "web_search"),
        ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools", "file_search"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice", "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]", "item_reference"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
            "input_file",
        ),
        ({"text": {"format": {"type": "xml"}}}, "text.format", "text.format"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "reasoning.effort"),
        ({"include": ["file_search_call.results"]}, "include", "include"),
        ({"truncation": "auto"}, "truncation", "truncation"),
        ({"background": True, "store": False}, "store", "store"),
        ({"max_output_tokens": -1}, "max_output_tokens", "max_output_tokens"),
        ({"conversation": "conv_1"}, "conversation", "conversation"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    body: dict[str, object], param: str, named: str
) -> None:
    error = refused(**body)
    assert error.param == param
    assert named in error.message


def test_a_bad_turn_is_named_after_the_input() -> None:
    error = refused(input=[{"type": "function_call_output", "call_id": 3, "output": "x"}])
    assert error.param == "input[0].call_id"
