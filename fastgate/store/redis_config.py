"""Where the shared Redis is and how to reach it: a URL or the server config's ``[redis]`` block.

URLs (``--redis-url``, ``FASTGATE_REDIS_URL``):

- ``redis://[user:password@]host:port[/db]``, ``rediss://`` for TLS;
- ``redis://host1:port,host2:port/?cluster=yes``: a Cluster, from any of its nodes (``cluster``
  is ``auto`` by default: ``INFO cluster`` on the first connection tells);
- ``redis+sentinel://[user:password@]sentinel1:26379,sentinel2:26379/<service>[/db]``
  (``rediss+sentinel://`` for TLS to the primary): the primary Sentinel names, followed across a
  failover.

Query parameters: ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (redis-py's names: a CA
for the server's certificate, a client certificate and its key), ``ssl_check_hostname``,
``sentinel_username`` / ``sentinel_password``, ``timeout`` (seconds per command, default 1),
``cluster``. The ``[redis]`` block has the same fields under the names of :class:`RedisSettings`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

Mode = Literal["node", "cluster", "sentinel", "auto"]

_SCHEMES = {
    "redis": (False, False),
    "rediss": (True, False),
    "redis+sentinel": (False, True),
    "rediss+sentinel": (True, True),
}
_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
_QUERY_NAMES = {
    "ssl_ca_certs": "tls_ca_file",
    "ssl_certfile": "tls_cert_file",
    "ssl_keyfile": "tls_key_file",
    "ssl_check_hostname": "tls_check_hostname",
    "sentinel_username": "sentinel_username",
    "sentinel_password": "sentinel_password",
    "timeout": "timeout",
    "cluster": "cluster",
}


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: ``host:port`` of the node, of a Cluster's seed nodes, or of the Sentinels.
    hosts: tuple[str, ...] = ("127.0.0.1:6379",)
    #: The primary's name in Sentinel (``sentinel monitor <service> ...``); set: Sentinel mode.
    service: str | None = None
    #: True: a Cluster; false: one node; unset: asked of the server (``INFO cluster``).
    cluster: bool | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_check_hostname: bool = True
    #: Seconds for a connection, and for a command's answer, before Redis counts as unreachable.
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.service and self.cluster:
            raise ValueError("a Sentinel-managed primary is not a Cluster")
        if not self.hosts:
            raise ValueError("no Redis host")
        self.addresses()  # a bad port fails here, at start-up
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    @property
    def mode(self) -> Mode:
        if self.service:
            return "sentinel"
        if self.cluster is None:
            return "auto"
        return "cluster" if self.cluster else "node"

    def addresses(self) -> list[tuple[str, int]]:
        return [_address(h, 26379 if self.service else 6379) for h in self.hosts]

    def connection_kwargs(self) -> dict[str, Any]:
        """redis-py ``Connection`` arguments (the address is added per node)."""
        kwargs: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "db": self.db,
            "socket_connect_timeout": self.timeout,
            # Replies are awaited under the caller's own deadline, not a per-read timer.
            "socket_timeout": None,
            # RESP2 everywhere: the replies' shapes do not depend on the server's version.
            "protocol": 2,
        }
        if self.tls:
            kwargs.update(
                ssl_ca_certs=self.tls_ca_file,
                ssl_certfile=self.tls_cert_file,
                ssl_keyfile=self.tls_key_file,
                ssl_check_hostname=self.tls_check_hostname,
            )
        return kwargs

    def describe(self) -> str:
        """For logs and errors: where Redis is, never its password."""
        scheme = ("rediss" if self.tls else "redis") + ("+sentinel" if self.service else "")
        user = f"{self.username}@" if self.username else ""
        path = f"/{self.service}" if self.service else ""
        return f"{scheme}://{user}{','.join(self.hosts)}{path}/{self.db}"


def _address(host: str, default_port: int) -> tuple[str, int]:
    name, sep, port = host.rpartition(":")
    if not sep or "]" in port:
        return host.strip("[]"), default_port
    return name.strip("[]"), int(port)


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"Redis URL: {name}={value!r} is not yes or no")


def settings_from_url(url: str) -> RedisSettings:
    """Parse a Redis URL; a ``ValueError`` says what is wrong (never echoing the password)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"unsupported Redis URL scheme {parts.scheme!r} "
            "(use redis://, rediss://, redis+sentinel:// or rediss+sentinel://)"
        )
    tls, sentinel = _SCHEMES[parts.scheme]
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    values: dict[str, Any] = {"tls": tls}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            values["username"] = unquote(user)
        if password:
            values["password"] = unquote(password)
    hosts = [h for h in hostlist.split(",") if h]
    if hosts:
        values["hosts"] = hosts
    path = [unquote(p) for p in parts.path.split("/") if p]
    if sentinel:
        if not path:
            raise ValueError("Redis URL: redis+sentinel:// needs the primary's name: .../<service>[/db]")
        values["service"] = path.pop(0)
    if path:
        if len(path) > 1 or not path[0].isdigit():
            raise ValueError(f"Redis URL: the path must be a database number, not {parts.path!r}")
        values["db"] = int(path[0])
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        field = _QUERY_NAMES.get(name)
        if field is None:
            raise ValueError(f"Redis URL: unknown parameter {name!r}")
        if field == "cluster":
            values[field] = None if value.lower() == "auto" else _flag(name, value)
        elif field == "tls_check_hostname":
            values[field] = _flag(name, value)
        elif field == "timeout":
            values[field] = float(value)
        else:
            values[field] = value
    try:
        return msgspec.convert(values, RedisSettings)
    except msgspec.ValidationError as exc:
        raise ValueError(f"Redis URL: {exc}") from None


def settings_from_block(data: Any) -> RedisSettings:
    """The server config's ``[redis]`` block: ``url = "..."`` and/or the fields themselves."""
    if not isinstance(data, dict):
        raise ValueError("redis: expected a table")
    fields = dict(data)
    url = fields.pop("url", None)
    base = settings_from_url(url) if url else RedisSettings()
    try:
        return msgspec.convert({**msgspec.structs.asdict(base), **fields}, RedisSettings)
    except msgspec.ValidationError as exc:
        raise ValueError(f"redis: {exc}") from None
