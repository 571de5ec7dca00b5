"""The registry built from settings, and what each adapter sends upstream."""

from __future__ import annotations

import pytest

from app.errors import NotFound, UpstreamError
from app.providers.anthropic_request import DEFAULT_MAX_TOKENS
from app.providers.base import ChatRequest, Message
from app.providers.openai import env_proxy
from app.providers.registry import ProviderRegistry
from app.settings import CompatServer, Settings
from tests.providers.kinds import chat_request, sent
from tests.support.fake_upstreams import FakeUpstream, fixture

SETTINGS = Settings(
    compat_servers=(
        CompatServer("vllm", "http://127.0.0.1:9/v1", "VLLM_KEY", ("Qwen2.5-7B",)),
        CompatServer("local", "http://127.0.0.1:9/v1"),
    ),
    aliases=(("fast", ("vllm/Qwen2.5-7B", "openai/gpt-4o-mini")),),
    declared_models=("anthropic/claude-sonnet-4-5",),
)


async def test_registry_lists_configured_models_and_aliases_only() -> None:
    registry = ProviderRegistry.from_settings(SETTINGS, env={})
    try:
        assert registry.model_names() == [
            "sim/echo",
            "sim/lorem",
            "vllm/Qwen2.5-7B",
            "anthropic/claude-sonnet-4-5",
            "fast",
        ]
        targets = registry.resolve("fast")
        assert [t.public_name for t in targets] == ["vllm/Qwen2.5-7B", "openai/gpt-4o-mini"]
        assert registry.resolve("ollama/llama3.2")[0].provider.name == "ollama"
        assert registry.resolve("local/any-model")[0].model == "any-model"
        with pytest.raises(NotFound):
            registry.resolve("nowhere/x")
    finally:
        await registry.aclose()


async def test_missing_api_key_fails_fast_without_network() -> None:
    registry = ProviderRegistry.from_settings(Settings(), env={})
    try:
        for name in ("openai/gpt-4o-mini", "anthropic/claude-x"):
            target = registry.resolve(name)[0]
            with pytest.raises(UpstreamError, match="no API key") as raised:
                await anext(aiter(target.provider.stream(chat_request(), target.model)))
            assert raised.value.retryable is False
    finally:
        await registry.aclose()


async def test_compat_server_gets_its_key_from_the_named_env_var() -> None:
    async with FakeUpstream(fixture("ollama-openai-compat-stream.sse")) as upstream:
        settings = Settings(compat_servers=(CompatServer("vllm", f"{upstream.base_url}/v1", "K"),))
        registry = ProviderRegistry.from_settings(settings, env={"K": "secret-1"})
        try:
            target = registry.resolve("vllm/Qwen")[0]
            chunks = [c async for c in target.provider.stream(chat_request(), target.model)]
        finally:
            await registry.aclose()
    assert chunks[-1].finish_reason == "stop"
    assert upstream.requests[0].headers["authorization"] == "Bearer secret-1"
    assert upstream.requests[0].path == "/v1/chat/completions"


async def test_openai_request_asks_for_usage_and_passes_options_through() -> None:
    request = await sent("openai", chat_request(seed=7, top_p=0.9, stop=["x"], logit_bias={}))
    body = request.json()
    assert request.path == "/v1/chat/completions"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body
    assert (body["temperature"], body["seed"], body["top_p"], body["stop"]) == (0.5, 7, 0.9, ["x"])
    assert "logit_bias" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ]


async def test_compat_request_uses_max_tokens() -> None:
    body = (await sent("compat", chat_request())).json()
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body


async def test_anthropic_request_moves_system_messages_to_the_system_param() -> None:
    request = await sent("anthropic", chat_request(stop="END", top_k=5))
    body = request.json()
    assert request.path == "/v1/messages"
    # The SDK decides how the key travels (x-api-key or a bearer token).
    auth = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    assert auth.endswith("sk-ant-test")
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Hello?"}]
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (64, 0.5, 5)
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True


async def test_anthropic_request_without_max_tokens_gets_the_default() -> None:
    request = ChatRequest(model="a/b", messages=(Message("user", "hi"),))
    body = (await sent("anthropic", request)).json()
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "system" not in body


async def test_ollama_request_posts_to_api_chat() -> None:
    request = await sent("ollama", chat_request())
    body = request.json()
    assert request.path == "/api/chat"
    assert body["model"] == "gemma4"
    assert body["options"] == {"num_predict": 64, "temperature": 0.5}


def test_openai_upstreams_use_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert env_proxy("https://api.openai.com/v1/chat/completions") == "http://proxy.example:3128"
    assert env_proxy("https://127.0.0.1:8443/v1/chat/completions") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert env_proxy("https://api.openai.com/v1/chat/completions") is None


async def test_a_provider_is_built_once_on_its_first_request_and_shared_after() -> None:
    registry = ProviderRegistry.from_settings(SETTINGS, env={})
    try:
        first = registry.resolve("vllm/a")[0].provider
        assert registry.resolve("vllm/b")[0].provider is first
        assert registry.resolve("fast")[0].provider is first
        with pytest.raises(NotFound, match="'anthropic', 'local', 'ollama', 'openai', 'sim'"):
            registry.resolve("nowhere/x")
    finally:
        await registry.aclose()
