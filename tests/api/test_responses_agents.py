"""One end-to-end run of the OpenAI Agents SDK (which speaks the Responses API
by default) against Sluice: the simulated model calls the agent's tool, the
agent runs it and sends its output back, and the model's answer echoes it."""

from __future__ import annotations

import openai
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool

from app.settings import Settings
from tests.support.server import run_sluice


@function_tool
def weather(input: str, call: int) -> str:  # the simulated model's argument names
    """The weather in a city."""
    return f"sunny in {input}"


async def test_an_agent_calls_its_tool_and_answers_with_the_result() -> None:
    async with (
        run_sluice(Settings(sim_tps=0)) as server,
        openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client,
    ):
        agent = Agent(
            name="forecaster",
            instructions="Use the tool.",
            tools=[weather],
            model=OpenAIResponsesModel(model="sim/echo", openai_client=client),
            model_settings=ModelSettings(extra_body={"sim": {"tool_calls": 1}}),
        )
        result = await Runner.run(agent, "Paris", run_config=RunConfig(tracing_disabled=True))
    calls = [item for item in result.new_items if item.type == "tool_call_item"]
    outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert len(calls) == 1
    assert len(outputs) == 1
    assert outputs[0].output == "sunny in Paris"  # the sim's arguments carry the user's text
    assert result.final_output == "sunny in Paris"
