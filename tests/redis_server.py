"""Real ``redis-server`` processes on free loopback ports, for the tests that share state through
Redis: one node, a three-primary Cluster, a TLS node with a CA made at test time, and a primary
with a replica watched by a Sentinel.

Imported by the ``conftest.py`` of the test folders that use them. The servers keep nothing on
disk beyond their temporary folder; ``stop()`` and ``start()`` let a test take one away and bring
it back on the same port.
"""

from __future__ import annotations

import datetime
import os
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Cluster node")


def require_redis() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: .ci/run must install it")
        pytest.skip("redis-server is not installed (.ci/run installs it)")


def _answers(port: int, tls: ssl.SSLContext | None) -> bool:
    """A PING answered with PONG (over TLS when the server speaks only TLS)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as raw:
            if tls is None:
                raw.sendall(b"PING\r\n")
                return raw.recv(64).startswith(b"+PONG")
            with tls.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
    except (OSError, ssl.SSLError):
        return False


class RedisProcess:
    def __init__(
        self, port: int, *args: str, workdir: Path | None = None, sentinel_conf: Path | None = None
    ) -> None:
        self.port = port
        #: Set: a Sentinel run from this config file (which it rewrites as it learns).
        self.sentinel_conf = sentinel_conf
        self.url = f"redis://127.0.0.1:{port}"
        self.args = args
        #: Where the server runs (a replica writes the primary's snapshot there): a temporary
        #: folder unless given, never the checkout.
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="redis-"))
        #: How the readiness check reaches a TLS-only server.
        self.client_tls: ssl.SSLContext | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        require_redis()
        assert REDIS_SERVER is not None
        listen = ("--port", str(self.port)) if "--tls-port" not in self.args else ()
        if self.sentinel_conf is not None:
            command = [REDIS_SERVER, str(self.sentinel_conf), "--sentinel"]
        else:
            command = [
                REDIS_SERVER,
                *listen,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
                *self.args,
            ]
        self.proc = subprocess.Popen(
            command,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _answers(self.port, self.client_tls):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"redis-server {' '.join(self.args)} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cli(self, *command: str) -> str:
        """One command through ``redis-cli`` (plain servers), its reply as text."""
        assert REDIS_CLI is not None
        out = subprocess.run(
            [REDIS_CLI, "-p", str(self.port), *command], capture_output=True, timeout=10, check=True
        )
        return out.stdout.decode()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess(free_port())
    server.start()
    yield server
    server.stop()


class RedisCluster:
    """Three primaries, no replicas, made with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = []
        for _ in range(3):
            port = cluster_port()
            folder = workdir / str(port)
            folder.mkdir()
            args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
            self.nodes.append(RedisProcess(port, *args, workdir=folder))
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        assert REDIS_CLI is not None
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become ready")

    def flush(self) -> None:
        for node in self.nodes:
            node.cli("FLUSHALL")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Shared by the session (making one takes a few seconds); each test gets it flushed."""
    require_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    redis_cluster.flush()
    return redis_cluster


class LocalCA:
    """A CA made at test time, and certificates it signed for the server and a client."""

    def __init__(self, folder: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        def save(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
            key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.crt"
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            return str(cert_path), str(key_path)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(name("fastgate test CA"))
            .issuer_name(name("fastgate test CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file, _ = save("ca", ca_key, ca)

        def issue(stem: str, usage: x509.ObjectIdentifier) -> tuple[str, str]:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                x509.CertificateBuilder()
                .subject_name(name(stem))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            return save(stem, key, cert)

        self.server_cert, self.server_key = issue("server", ExtendedKeyUsageOID.SERVER_AUTH)
        self.client_cert, self.client_key = issue("client", ExtendedKeyUsageOID.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.client_cert, self.client_key)
        return context


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisProcess, LocalCA]]:
    """A TLS-only server that wants a client certificate signed by the test CA."""
    ca = LocalCA(tmp_path)
    port = free_port()
    server = RedisProcess(
        port,
        "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", ca.server_cert, "--tls-key-file", ca.server_key,
        "--tls-ca-cert-file", ca.ca_file, "--tls-auth-clients", "yes",
    )  # fmt: skip
    server.client_tls = ca.client_context()
    server.start()
    yield server, ca
    server.stop()


class SentinelSetup:
    """A primary, its replica, and one Sentinel (quorum 1) that fails over within a second."""

    SERVICE = "fastgate-primary"

    def __init__(self, workdir: Path) -> None:
        self.primary = RedisProcess(free_port())
        self.replica = RedisProcess(free_port(), "--replicaof", "127.0.0.1", str(self.primary.port))
        self.sentinel_port = free_port()
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 400\n"
            f"sentinel failover-timeout {self.SERVICE} 2000\nloglevel warning\n"
        )
        self.sentinel = RedisProcess(self.sentinel_port, sentinel_conf=self.conf)
        self.url = f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.SERVICE}"

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        deadline = time.monotonic() + 10
        while "master_link_status:up" not in self.replica.cli("INFO", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync")
            time.sleep(0.05)
        self.sentinel.start()

    def primary_port(self) -> int:
        """The port Sentinel names as the primary now."""
        reply = self.sentinel.cli("SENTINEL", "get-master-addr-by-name", self.SERVICE)
        return int(reply.split()[1])

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            server.stop()


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path)
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()
