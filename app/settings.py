"""Frozen settings from `SLUICE_*` environment variables and an optional TOML file.

The TOML file (named by `SLUICE_CONFIG`) declares what does not fit in
environment variables: OpenAI-compatible servers, aliases, API keys, caps.
Pure apart from reading the environment mapping and the file it is given.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


class SettingsError(ValueError):
    """A setting that cannot be used; raised at start-up, never later."""


@dataclass(frozen=True, slots=True)
class CompatServer:
    """An OpenAI-compatible server declared in the config file."""

    name: str
    base_url: str
    api_key_env: str | None = None
    models: tuple[str, ...] = ()
    # "max_tokens" or "max_completion_tokens"; None: by the base URL (see
    # app.providers.openai.max_tokens_field_for).
    max_tokens_field: str | None = None
    vision: bool = True  # False: a request with an image part is refused with a 400


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    heartbeat_s: float = 15.0
    first_token_timeout_s: float = 60.0
    idle_timeout_s: float = 30.0
    detach_grace_s: float = 30.0
    attach_timeout_s: float = 30.0  # a created stream that nobody opens is abandoned after this
    resume_ttl_s: float = 600.0
    retry_ms: int = 2000
    redis_url: str | None = None
    resume_required: bool = True
    sim_tps: float = 20.0
    sim_ttft_ms: float = 0.0
    api_keys: tuple[str, ...] = ()
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    secret_is_random: bool = True
    token_ttl_s: float = 3600.0
    max_body_bytes: int = 1_048_576
    max_streams_per_key: int = 64
    # With auth off, whether the limit binds the anonymous identity: only when
    # SLUICE_MAX_STREAMS_PER_KEY is set explicitly (see load_settings).
    limit_anonymous: bool = True
    max_tokens_cap: int = 32_768
    max_messages: int = 1024
    max_total_chars: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    log_content: bool = False
    graceful_timeout_s: float = 30.0
    lease_ttl_s: float = 5.0  # Redis mode: a dead owner is noticed by readers elsewhere after this
    compat_servers: tuple[CompatServer, ...] = ()
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    declared_models: tuple[str, ...] = ()

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"not a boolean: {value!r}")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


_ENV: dict[str, tuple[str, object]] = {
    # env suffix -> (field, parser)
    "HOST": ("host", str),
    "PORT": ("port", int),
    "HEARTBEAT_S": ("heartbeat_s", float),
    "FIRST_TOKEN_TIMEOUT_S": ("first_token_timeout_s", float),
    "IDLE_TIMEOUT_S": ("idle_timeout_s", float),
    "DETACH_GRACE_S": ("detach_grace_s", float),
    "ATTACH_TIMEOUT_S": ("attach_timeout_s", float),
    "RESUME_TTL_S": ("resume_ttl_s", float),
    "RETRY_MS": ("retry_ms", int),
    "REDIS_URL": ("redis_url", str),
    "RESUME_REQUIRED": ("resume_required", _bool),
    "SIM_TPS": ("sim_tps", float),
    "SIM_TTFT_MS": ("sim_ttft_ms", float),
    "API_KEYS": ("api_keys", _csv),
    "TOKEN_TTL_S": ("token_ttl_s", float),
    "MAX_BODY_BYTES": ("max_body_bytes", int),
    "MAX_STREAMS_PER_KEY": ("max_streams_per_key", int),
    "MAX_TOKENS_CAP": ("max_tokens_cap", int),
    "MAX_MESSAGES": ("max_messages", int),
    "MAX_TOTAL_CHARS": ("max_total_chars", int),
    "CORS_ORIGINS": ("cors_origins", _csv),
    "LOG_CONTENT": ("log_content", _bool),
    "GRACEFUL_TIMEOUT_S": ("graceful_timeout_s", float),
    "LEASE_TTL_S": ("lease_ttl_s", float),
}

_NON_NEGATIVE = (
    "heartbeat_s",
    "first_token_timeout_s",
    "idle_timeout_s",
    "detach_grace_s",
    "resume_ttl_s",
    "sim_tps",
    "sim_ttft_ms",
    "graceful_timeout_s",
)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    config_path = env.get("SLUICE_CONFIG")
    if config_path:
        values.update(_from_toml(Path(config_path)))
    for suffix, (name, parse) in _ENV.items():
        raw = env.get("SLUICE_" + suffix)
        if raw is None or (raw == "" and name == "redis_url"):
            continue
        try:
            parsed = parse(raw)  # type: ignore[operator]
        except ValueError as exc:
            raise SettingsError(f"SLUICE_{suffix}: {exc}") from exc
        if name == "api_keys":  # keys from the file and from the environment both count
            parsed = tuple(dict.fromkeys((*values.get("api_keys", ()), *parsed)))  # type: ignore[misc]
        values[name] = parsed
    values["limit_anonymous"] = "SLUICE_MAX_STREAMS_PER_KEY" in env
    secret = env.get("SLUICE_SECRET")
    if secret:
        values["secret"] = secret.encode()
        values["secret_is_random"] = False
    settings = Settings(**values)  # type: ignore[arg-type]
    for name in _NON_NEGATIVE:
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name} must not be negative")
    if settings.heartbeat_s == 0:
        raise SettingsError("heartbeat_s must be positive")
    if settings.lease_ttl_s <= 0:
        raise SettingsError("lease_ttl_s must be positive")
    return settings


def _toml_keys(path: Path) -> tuple[str, ...]:
    data = tomllib.loads(path.read_text())
    keys = data.get("keys", {})
    listed = tuple(str(k) for k in keys.get("keys", ()))
    if "file" in keys:
        key_file = Path(str(keys["file"]))
        if not key_file.is_absolute():
            key_file = path.parent / key_file
        listed += tuple(
            line.strip()
            for line in key_file.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    return listed


def _from_toml(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"SLUICE_CONFIG {path}: {exc}") from exc
    values: dict[str, object] = {}
    servers = []
    for name, spec in data.get("providers", {}).items():
        if "base_url" not in spec:
            raise SettingsError(f"provider {name!r} needs a base_url")
        field_name = spec.get("max_tokens_field")
        if field_name not in (None, *MAX_TOKENS_FIELDS):
            raise SettingsError(
                f"provider {name!r}: max_tokens_field must be one of {MAX_TOKENS_FIELDS}"
            )
        servers.append(
            CompatServer(
                name=name,
                base_url=str(spec["base_url"]),
                api_key_env=spec.get("api_key_env"),
                models=tuple(str(m) for m in spec.get("models", ())),
                max_tokens_field=field_name,
                vision=bool(spec.get("vision", True)),
            )
        )
    values["compat_servers"] = tuple(servers)
    aliases = data.get("aliases", {})
    values["aliases"] = tuple(
        (name, tuple(str(t) for t in ([targets] if isinstance(targets, str) else targets)))
        for name, targets in aliases.items()
    )
    values["declared_models"] = tuple(str(m) for m in data.get("models", ()))
    keys = _toml_keys(path)
    if keys:
        values["api_keys"] = keys
    limits = data.get("limits", {})
    for key in ("max_tokens_cap", "max_messages", "max_total_chars"):
        if key in limits:
            values[key] = int(limits[key])
    return values
