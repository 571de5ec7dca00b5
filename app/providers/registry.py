"""Resolves public model names (`<provider>/<model>` or an alias) to providers.

One provider object per upstream for the whole process, created at start-up
and closed at shutdown, so connection pools are shared by every stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import NotFound
from app.providers.base import Provider
from app.providers.simulated import MODELS as SIM_MODELS
from app.providers.simulated import SimulatedProvider
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str  # the upstream's own model name

    @property
    def public_name(self) -> str:
        return f"{self.provider.name}/{self.model}"


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider], aliases: dict[str, tuple[str, ...]]) -> None:
        self._providers = providers
        self._aliases = aliases

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        providers: dict[str, Provider] = {
            "sim": SimulatedProvider(settings.sim_tps, settings.sim_ttft_ms),
        }
        return cls(providers, dict(settings.aliases))

    def resolve(self, public_model: str) -> tuple[Target, ...]:
        """The ordered targets for a public model name; NotFound if none."""
        names = self._aliases.get(public_model, (public_model,))
        return tuple(self._target(name) for name in names)

    def _target(self, name: str) -> Target:
        provider_name, sep, model = name.partition("/")
        provider = self._providers.get(provider_name)
        if not sep or not model or provider is None:
            raise NotFound(
                f"unknown model {name!r}: use '<provider>/<model>' with a provider of "
                f"{sorted(self._providers)} or an alias of {sorted(self._aliases)}",
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
        """Public names listed by GET /v1/models."""
        return [f"sim/{m}" for m in SIM_MODELS] + list(self._aliases)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
