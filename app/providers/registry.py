"""Resolves public model names (`<provider>/<model>` or an alias) to providers.

One provider object per upstream for the whole process, created when a model
first resolves to it and closed at shutdown, so connection pools are shared
by every stream. Strategy: the SDKs behind the providers (and pydantic under
them) are most of what importing the app would cost: ~90 MB and ~2 s of
start-up. A provider's module is imported by its builder, so a process loads
only the SDKs of the upstreams its requests use, once, on the first of them,
and imports it in a worker thread (`prepare`): on the loop, an import of
0.3-1.5 s would stall every open stream.
`openai`, `anthropic` and `ollama` always exist (their keys and hosts come
from the environment the SDKs document); each `[providers.<name>]` table of
the config file adds an OpenAI-compatible server, and may shadow a built-in
name (e.g. to send `openai/...` through a proxy). Model names after the
provider are passed through: the upstream, not Sluice, knows its models.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.errors import NotFound
from app.providers.base import Provider
from app.providers.simulated import MODELS as SIM_MODELS
from app.providers.simulated import SimulatedProvider
from app.settings import CompatServer, Settings


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str  # the upstream's own model name

    @property
    def public_name(self) -> str:
        return f"{self.provider.name}/{self.model}"


class ProviderRegistry:
    def __init__(
        self,
        providers: dict[str, Provider],
        aliases: dict[str, tuple[str, ...]],
        listed: tuple[str, ...] = (),
        builders: Mapping[str, Callable[[], Provider]] | None = None,
    ) -> None:
        """`builders`: providers made on the first request that names them."""
        self._providers = dict(providers)
        self._builders = {k: v for k, v in (builders or {}).items() if k not in providers}
        self._aliases = aliases
        self._listed = listed

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> ProviderRegistry:
        """The registry of the settings: `sim` at once, every other provider (and
        its HTTP client) when first resolved, in the serving loop; `aclose()` at
        shutdown. The environment is read now, as at start-up."""
        env = dict(os.environ if env is None else env)
        builders: dict[str, Callable[[], Provider]] = {
            "openai": lambda: _openai(env),
            "anthropic": lambda: _anthropic(env),
            "ollama": lambda: _ollama(env),
        }
        for server in settings.compat_servers:
            builders[server.name] = _compat_builder(server, env)
        listed = [f"{s.name}/{m}" for s in settings.compat_servers for m in s.models]
        sim = SimulatedProvider(settings.sim_tps, settings.sim_ttft_ms)
        declared = (*listed, *settings.declared_models)
        return cls({"sim": sim}, dict(settings.aliases), declared, builders)

    async def prepare(self, public_model: str) -> None:
        """Import, off the loop, the modules of the providers `public_model`
        needs that are not built yet; `resolve` then builds them at once."""
        for name in self._aliases.get(public_model, (public_model,)):
            provider_name = name.partition("/")[0]
            if provider_name in self._builders:
                module = _MODULES.get(provider_name, "app.providers.openai")
                if module not in sys.modules:
                    await asyncio.to_thread(importlib.import_module, module)

    def resolve(self, public_model: str) -> tuple[Target, ...]:
        """The ordered targets for a public model name; NotFound if none."""
        names = self._aliases.get(public_model, (public_model,))
        return tuple(self._target(name) for name in names)

    def _target(self, name: str) -> Target:
        provider_name, sep, model = name.partition("/")
        provider = self._providers.get(provider_name)
        if provider is None and sep and model and provider_name in self._builders:
            # Kept only once built: a builder that fails is tried again next request.
            provider = self._providers[provider_name] = self._builders[provider_name]()
            del self._builders[provider_name]
            _freeze_imported()
        if not sep or not model or provider is None:
            raise NotFound(
                f"unknown model {name!r}: use '<provider>/<model>' with a provider of "
                f"{sorted([*self._providers, *self._builders])} or an alias of "
                f"{sorted(self._aliases)}",
                param="model",
                code="model_not_found",
            )
        if provider_name == "sim" and model not in SIM_MODELS:
            raise NotFound(
                f"unknown model {name!r}; sim has {list(SIM_MODELS)}",
                param="model",
                code="model_not_found",
            )
        return Target(provider, model)

    def model_names(self) -> list[str]:
        """Public names listed by GET /v1/models: the simulated models, the
        models declared for compatible servers and at the top level of the
        config (`models = [...]`), and the aliases. OpenAI, Anthropic and Ollama
        are not asked for their catalogues: that would be a network call at
        start-up and would list hundreds of models nobody configured."""
        names = [*(f"sim/{m}" for m in SIM_MODELS), *self._listed, *self._aliases]
        return list(dict.fromkeys(names))

    async def aclose(self) -> None:
        # Every client is closed even if one fails to: a leaked pool outlives
        # the loop and warns at exit.
        errors: list[BaseException] = []
        for provider in self._providers.values():
            try:
                await provider.aclose()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _freeze_imported() -> None:
    """As at start-up (asgi.py): the objects an SDK's import made (~70,000 for
    openai, ~130,000 for anthropic) live as long as the process, and unfrozen
    they are walked by every full collection (~20 and ~70 ms, a late token for
    every open stream). Collected first, so that no garbage is frozen; once per
    provider, on the request that built it, which paid for the import anyway."""
    gc.collect()
    gc.freeze()


# The builders import their provider's module (and so its SDK) when called;
# every other provider is an OpenAI-compatible server.
_MODULES = {"anthropic": "app.providers.anthropic", "ollama": "app.providers.ollama"}


def _openai(env: Mapping[str, str]) -> Provider:
    from app.providers.openai import OpenAIProvider

    return OpenAIProvider(
        "openai",
        api_key=env.get("OPENAI_API_KEY") or None,
        base_url=env.get("OPENAI_BASE_URL") or None,
    )


def _anthropic(env: Mapping[str, str]) -> Provider:
    from app.providers.anthropic import AnthropicProvider

    return AnthropicProvider(
        api_key=env.get("ANTHROPIC_API_KEY") or None,
        base_url=env.get("ANTHROPIC_BASE_URL") or None,
    )


def _ollama(env: Mapping[str, str]) -> Provider:
    from app.providers.ollama import OllamaProvider

    return OllamaProvider(host=env.get("OLLAMA_HOST"))


def _compat_builder(server: CompatServer, env: Mapping[str, str]) -> Callable[[], Provider]:
    def build() -> Provider:
        from app.providers.openai import NO_KEY, OpenAIProvider

        # A local server usually needs no key; the SDK still wants a string.
        key = env.get(server.api_key_env) if server.api_key_env else None
        return OpenAIProvider(
            server.name,
            api_key=key or NO_KEY,
            base_url=server.base_url,
            max_tokens_field=server.max_tokens_field,
            vision=server.vision,
        )

    return build
