"""A tool round trip with the official SDK: the model calls tools, the client runs
them and sends the results, the model answers; the upstream receives the
history exactly as the client sent it."""

from __future__ import annotations

import json

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from app.providers.registry import ProviderRegistry
from tests.providers.kinds import KINDS
from tests.providers.test_end_to_end import wiring
from tests.support.fake_upstreams import FakeUpstream, fixture
from tests.support.server import run_sluice

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for name in ("GetWeatherArgs", "get_stock_price")
]
# The SDK also sends back output-only fields of the answer it appended (null
# refusal, annotations...; on each streamed call its `index` and a null
# `parsed_arguments`): not history, and not forwarded.
_OUTPUT_ONLY = {"refusal", "annotations", "audio", "function_call", "parsed"}


def _call(call: dict[str, object]) -> dict[str, object]:
    function = call["function"]
    assert isinstance(function, dict)
    assert function.pop("parsed_arguments", None) is None
    return {k: v for k, v in call.items() if k != "index"}


def client_history(sent: httpx2.Request) -> list[dict[str, object]]:
    messages = json.loads(sent.content)["messages"]
    history = [{k: v for k, v in m.items() if k not in _OUTPUT_ONLY} for m in messages]
    for message in history:
        if "tool_calls" in message:
            message["tool_calls"] = [_call(c) for c in message["tool_calls"]]
    return history


async def test_the_openai_sdk_round_trip_reaches_the_upstream_as_sent() -> None:
    replies = (fixture("openai-chat-stream-tool-calls.sse"), fixture("openai-chat-stream.sse"))
    requests: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        requests.append(request)

    async with FakeUpstream(*replies) as upstream:
        settings, env, model = wiring(KINDS[0], upstream.base_url)
        async with (
            run_sluice(settings, lambda: ProviderRegistry.from_settings(settings, env)) as server,
            httpx2.AsyncClient(event_hooks={"request": [record]}) as http,
            openai.AsyncOpenAI(
                base_url=f"{server.url}/v1", api_key="x", max_retries=0, http_client=http
            ) as sdk,
        ):
            messages: list[ChatCompletionMessageParam] = [
                {"role": "user", "content": "Weather in Edinburgh, and AAPL?"}
            ]
            async with sdk.chat.completions.stream(
                model=model, messages=messages, tools=TOOLS
            ) as s:
                first = await s.get_final_completion()
            calls = first.choices[0].message.tool_calls or []
            assert [c.function.name for c in calls] == ["GetWeatherArgs", "get_stock_price"]
            messages.append(first.choices[0].message)  # type: ignore[arg-type]
            for call in calls:
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": f"ok {call.id}"}
                )
            second = await sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content is not None
    assert second.choices[0].message.content.startswith("I'm unable to provide real-time weather")
    upstream_history = upstream.requests[1].json()["messages"]
    assert upstream_history == client_history(requests[1])
    assert upstream_history[1]["tool_calls"][0]["function"]["arguments"] == (
        '{"city": "Edinburgh", "country": "GB", "units": "c"}'
    )
    assert upstream.requests[1].json()["tools"] == json.loads(requests[1].content)["tools"]


async def test_the_simulated_model_calls_tools_and_answers_the_result() -> None:
    async with (
        run_sluice() as server,
        openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
    ):
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "find pi"}]
        async with sdk.chat.completions.stream(
            model="sim/echo",
            messages=messages,
            tools=TOOLS,
            extra_body={"sim": {"tps": 0, "tool_calls": 2, "reasoning": 3, "fragment": 3}},
        ) as s:
            first = await s.get_final_completion()
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        assert [
            (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []
        ] == [
            ("call_sim_0", "GetWeatherArgs", '{"input":"find pi","call":0}'),
            ("call_sim_1", "get_stock_price", '{"input":"find pi","call":1}'),
        ]
        assert (message.model_extra or {})["reasoning_content"] == "Lorem ipsum dolor"
        messages.append(message)  # type: ignore[arg-type]
        messages.append({"role": "tool", "tool_call_id": "call_sim_0", "content": "3.14159"})
        second = await sdk.chat.completions.create(
            model="sim/echo", messages=messages, extra_body={"sim": {"tps": 0, "tool_calls": 2}}
        )
    assert second.choices[0].message.content == "3.14159"
    assert second.choices[0].finish_reason == "stop"


async def test_a_langchain_bind_tools_round_trip_reaches_the_upstream_as_sent() -> None:
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    replies = (fixture("openai-chat-stream-tool-calls.sse"), fixture("openai-chat-stream.sse"))
    async with FakeUpstream(*replies) as upstream:
        settings, env, model = wiring(KINDS[0], upstream.base_url)
        async with (
            run_sluice(settings, lambda: ProviderRegistry.from_settings(settings, env)) as server,
            httpx2.AsyncClient() as http,  # closed here: ChatOpenAI never closes its own
        ):
            llm = ChatOpenAI(
                model=model,
                base_url=f"{server.url}/v1",
                api_key=SecretStr("x"),
                max_retries=0,
                http_async_client=http,
            ).bind_tools([dict(tool) for tool in TOOLS])
            history: list[BaseMessage] = [HumanMessage("Weather in Edinburgh, and AAPL?")]
            first = await llm.ainvoke(history)
            assert isinstance(first, AIMessage)
            assert [(c["name"], c["args"]) for c in first.tool_calls] == [
                ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
                ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
            ]
            history.append(first)
            for call in first.tool_calls:
                history.append(ToolMessage(f"ok {call['id']}", tool_call_id=call["id"]))
            second = await llm.ainvoke(history)
    assert str(second.content).startswith("I'm unable to provide real-time weather")
    sent = upstream.requests[1].json()["messages"]
    assert isinstance(sent, list)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["function"]["name"] for c in sent[1]["tool_calls"]] == [
        "GetWeatherArgs",
        "get_stock_price",
    ]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Edinburgh",
        "country": "GB",
        "units": "c",
    }
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [
        (c["id"], f"ok {c['id']}") for c in sent[1]["tool_calls"]
    ]
