"""Opening the key records a server uses, for the CLI and the admin API, and the fields both take.

The records live in Redis when a Redis URL is set, else in ``keys.json`` under the data
directory (``FASTGATE_DATA_DIR``, default ``~/.local/share/fastgate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fastgate.errors import bad_request
from fastgate.keys.models import Limits
from fastgate.keys.registry import KeyRegistry
from fastgate.providers.registry import get_provider
from fastgate.ssrf import HostPolicy
from fastgate.store.records import FileRecords, Records

if TYPE_CHECKING:
    from fastgate.store.client import RedisClient


def default_data_dir() -> str:
    return os.environ.get("FASTGATE_DATA_DIR") or str(Path.home() / ".local" / "share" / "fastgate")


def open_records(data_dir: str | None, redis_url: str | None) -> tuple[Records, RedisClient | None]:
    if redis_url:
        from fastgate.store.client import RedisClient  # only with Redis, as gateway/shared.py
        from fastgate.store.redis_records import RedisRecords

        redis = RedisClient.from_url(redis_url)
        return RedisRecords(redis), redis
    return FileRecords(data_dir or default_data_dir()), None


class NewKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A gateway key to create (admin API body, CLI flags)."""

    name: str = ""
    allowed_providers: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()
    allowed_configs: tuple[str, ...] = ()
    limits: Limits = msgspec.field(default_factory=Limits)


class NewVirtualKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A virtual key to create: the provider, its secret and its options."""

    provider: str
    secret: str = ""
    name: str = ""
    options: dict[str, Any] = {}
    custom_host: str | None = None
    limits: Limits = msgspec.field(default_factory=Limits)


async def create_key(registry: KeyRegistry, spec: NewKey) -> tuple[str, dict[str, Any]]:
    token, key = await registry.add_key(
        spec.name,
        allowed_providers=spec.allowed_providers,
        allowed_models=spec.allowed_models,
        allowed_configs=spec.allowed_configs,
        limits=spec.limits,
    )
    return token, key.public()


def check_virtual_key(spec: NewVirtualKey, policy: HostPolicy) -> NewVirtualKey:
    """A 400 for an unknown provider, an option it does not read (``organization`` for
    ``openai_organization`` would be stored and silently ignored), or a custom host the SSRF
    policy refuses."""
    provider = get_provider(spec.provider)
    unknown = sorted(set(spec.options) - provider.option_names)
    if unknown:
        valid = ", ".join(sorted(provider.option_names))
        takes = f"its options are {valid}" if valid else "it takes none"
        raise bad_request(
            f"unknown option {', '.join(unknown)} for provider {provider.name}: {takes}", param="options"
        )
    if spec.custom_host:
        return msgspec.structs.replace(spec, custom_host=policy.check_url(spec.custom_host))
    return spec


async def create_virtual_key(registry: KeyRegistry, spec: NewVirtualKey) -> dict[str, Any]:
    vk = await registry.add_virtual_key(
        spec.provider,
        spec.secret,
        spec.name,
        options=spec.options,
        custom_host=spec.custom_host,
        limits=spec.limits,
    )
    return vk.public()
