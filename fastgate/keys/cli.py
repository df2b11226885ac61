"""``fastgate keys add|list|revoke`` and ``fastgate virtual-keys add|list|revoke``.

They write the same records a server reads (``--data-dir`` or ``--redis-url``, defaults from
``FASTGATE_DATA_DIR`` / ``FASTGATE_REDIS_URL``); a running server picks changes up within a second.
A virtual key's secret is read from an environment variable (``--secret-env``), a prompt that
does not echo (on a terminal) or stdin, never from the command line, so it stays out of shell
history and process lists; with ``FASTGATE_SECRET_KEY`` set it is stored encrypted
(``fastgate/keys/sealing.py``), and only adding a virtual key needs that key.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from fastgate.errors import GatewayError
from fastgate.keys.manage import (
    NewKey,
    NewVirtualKey,
    check_virtual_key,
    create_key,
    create_virtual_key,
    open_records,
)
from fastgate.keys.models import Limits
from fastgate.keys.registry import KeyRegistry
from fastgate.keys.sealing import ENV, SealError, new_secret_key, sealer_from_env
from fastgate.store.base import StoreUnavailable

_encode = msgspec.json.Encoder().encode


def _print(data: object) -> None:
    print(_encode(data).decode())


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(rpm=args.rpm, tpm=args.tpm, budget_tokens=args.budget_tokens, budget_cost=args.budget_cost)


def _option(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip().replace("-", "_"), value


async def _keys_add(registry: KeyRegistry, args: argparse.Namespace) -> int:
    spec = NewKey(
        name=args.name,
        allowed_providers=tuple(args.provider),
        allowed_models=tuple(args.model),
        allowed_configs=tuple(args.config),
        limits=_limits(args),
    )
    token, public = await create_key(registry, spec)
    _print({**public, "key": token})
    print("Store the key now: it is not shown again.", file=sys.stderr)
    return 0


async def _keys_list(registry: KeyRegistry, args: argparse.Namespace) -> int:
    for key in await registry.list_keys():
        _print(key.public())
    return 0


async def _keys_revoke(registry: KeyRegistry, args: argparse.Namespace) -> int:
    if await registry.revoke_key(args.ident):
        print(f"revoked {args.ident}")
        return 0
    print(f"fastgate: no gateway key {args.ident!r}", file=sys.stderr)
    return 1


async def _vkeys_add(registry: KeyRegistry, args: argparse.Namespace) -> int:
    from fastgate.settings import settings_from_env
    from fastgate.ssrf import HostPolicy

    if args.no_secret:
        secret = ""
    elif args.secret_env:
        secret = os.environ.get(args.secret_env, "")
        if not secret:
            print(f"fastgate: ${args.secret_env} is not set or empty", file=sys.stderr)
            return 2
    else:
        secret = _read_secret(args.provider)
        if not secret:
            print(
                "fastgate: the secret is empty (--no-secret when the options carry the credentials)",
                file=sys.stderr,
            )
            return 2
    spec = NewVirtualKey(
        provider=args.provider,
        secret=secret,
        name=args.name,
        options=dict(args.option),
        custom_host=args.custom_host,
        limits=_limits(args),
    )
    settings = settings_from_env()
    spec = check_virtual_key(spec, HostPolicy(settings.trusted_hosts, settings.allow_loopback))
    if registry.sealer is None and (spec.secret or spec.options):
        print(
            f"fastgate: warning: {ENV} is not set, so the secret is stored unencrypted "
            "(fastgate keys new-secret-key prints a key)",
            file=sys.stderr,
        )
    _print(await create_virtual_key(registry, spec))
    return 0


def _read_secret(provider: str) -> str:
    """From a prompt that does not echo on a terminal; else the first line of stdin (a pipe)."""
    if sys.stdin.isatty():
        return getpass.getpass(f"{provider} secret (not shown): ").strip()
    return sys.stdin.readline().strip()


async def _vkeys_list(registry: KeyRegistry, args: argparse.Namespace) -> int:
    for vk in await registry.list_virtual_keys():
        _print(vk.public())
    return 0


async def _vkeys_revoke(registry: KeyRegistry, args: argparse.Namespace) -> int:
    if await registry.revoke_virtual_key(args.slug):
        print(f"revoked {args.slug}")
        return 0
    print(f"fastgate: no virtual key {args.slug!r}", file=sys.stderr)
    return 1


def _print_secret_key(args: argparse.Namespace) -> int:
    print(new_secret_key())
    return 0


Action = Callable[[KeyRegistry, argparse.Namespace], Awaitable[int]]


def _run(action: Action, *, seals: bool = False) -> Callable[[argparse.Namespace], int]:
    """``seals``: the command stores virtual-key secrets, so it reads ``FASTGATE_SECRET_KEY``;
    the others never need it (a sealed record is listed and revoked as it is)."""

    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            try:
                records, redis = open_records(args.data_dir, args.redis_url)
            except ValueError as exc:  # a Redis URL that is not one
                print(f"fastgate: --redis-url: {exc}", file=sys.stderr)
                return 2
            try:
                return await action(KeyRegistry(records, sealer=sealer_from_env() if seals else None), args)
            except GatewayError as exc:
                print(f"fastgate: {exc.message}", file=sys.stderr)
                return 2
            except (SealError, StoreUnavailable) as exc:
                print(f"fastgate: {exc}", file=sys.stderr)
                return 2
            finally:
                if redis is not None:
                    await redis.close()

        return asyncio.run(main())

    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where keys.json lives (default $FASTGATE_DATA_DIR, else ~/.local/share/fastgate)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FASTGATE_REDIS_URL"),
        help="keep the records in Redis instead (default $FASTGATE_REDIS_URL; none: the data dir)",
    )


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=int, default=0, help="requests per minute (default 0: no limit)")
    parser.add_argument("--tpm", type=int, default=0, help="tokens per minute (default 0: no limit)")
    parser.add_argument(
        "--budget-tokens", type=int, default=0, help="tokens it may spend in all (default 0: no limit)"
    )
    parser.add_argument(
        "--budget-cost",
        type=float,
        default=0.0,
        help="cost it may spend in all, from the server config's prices (default 0: no limit)",
    )


def add_key_commands(sub: argparse._SubParsersAction[Any]) -> None:
    keys = sub.add_parser("keys", help="gateway API keys").add_subparsers(dest="keys_command", required=True)
    add = keys.add_parser("add", help="create a key (printed once)")
    _common(add)
    add.add_argument("--name", default="", help="a name to list and revoke it by (default none)")
    add.add_argument(
        "--provider", action="append", default=[], help="allowed provider (repeat; default none: any)"
    )
    add.add_argument("--model", action="append", default=[], help="allowed model (repeat; default none: any)")
    add.add_argument(
        "--config", action="append", default=[], help="allowed saved config (repeat; default none: any)"
    )
    _limit_flags(add)
    add.set_defaults(func=_run(_keys_add))
    secret = keys.add_parser("new-secret-key", help="print a new FASTGATE_SECRET_KEY (seals virtual keys)")
    secret.set_defaults(func=_print_secret_key)
    lst = keys.add_parser("list", help="list keys (never the keys themselves)")
    _common(lst)
    lst.set_defaults(func=_run(_keys_list))
    revoke = keys.add_parser("revoke", help="revoke a key by id or name")
    _common(revoke)
    revoke.add_argument("ident")
    revoke.set_defaults(func=_run(_keys_revoke))

    vkeys = sub.add_parser("virtual-keys", help="virtual keys: provider secrets kept on the server")
    vsub = vkeys.add_subparsers(dest="vkeys_command", required=True)
    vadd = vsub.add_parser(
        "add", help="store a provider secret under a new slug (asked for on a terminal, else read from stdin)"
    )
    _common(vadd)
    vadd.add_argument("--provider", required=True, help="the provider's slug: openai, anthropic, bedrock ...")
    vadd.add_argument("--name", default="", help="the slug's prefix (default: the provider)")
    vadd.add_argument(
        "--secret-env",
        default=None,
        help="read the secret from this environment variable (default: ask on a terminal, else read stdin)",
    )
    vadd.add_argument("--no-secret", action="store_true", help="no secret (options carry the credentials)")
    vadd.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        help="provider option NAME=VALUE (repeat; e.g. openai_organization=org-..., aws_region=us-east-1; "
        "default none)",
    )
    vadd.add_argument(
        "--custom-host", default=None, help="base URL to reach the provider at (default: the provider's own)"
    )
    _limit_flags(vadd)
    vadd.set_defaults(func=_run(_vkeys_add, seals=True))
    vlist = vsub.add_parser("list", help="list virtual keys (never their secrets)")
    _common(vlist)
    vlist.set_defaults(func=_run(_vkeys_list))
    vrevoke = vsub.add_parser("revoke", help="revoke a virtual key by slug")
    _common(vrevoke)
    vrevoke.add_argument("slug")
    vrevoke.set_defaults(func=_run(_vkeys_revoke))
