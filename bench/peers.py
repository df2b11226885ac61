"""Other gateways measured beside fastgate by bench/load.py: Portkey's gateway and LiteLLM's proxy.

Each is installed on demand into bench/.peers (gitignored), never into the project's venv:
Portkey's with npm (run with node), LiteLLM's with pip into a venv of its own. Versions are
pinned so that numbers from different days compare. An install that fails (registry down, no
node) returns None with a note, and the benchmark goes on without that peer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PEERS_DIR = BENCH / ".peers"
PEERS = ("portkey", "litellm")
PORTKEY_PACKAGE = "@portkey-ai/gateway@1.15.2"
#: Portkey's gateway allows any @hono/node-server ^1.3.3, but from 1.19 on a Response built from
#: an upstream fetch Response keeps that one's immutable headers, and the gateway's own
#: ``headers.append`` then fails every streamed completion with a 500 ("TypeError: immutable").
#: 1.12.0 is inside its range and streams.
PORTKEY_OVERRIDES = {"@hono/node-server": "1.12.0"}
LITELLM_REQUIREMENT = "litellm[proxy]==1.106.2"
#: Portkey's gateway binds every interface; this wrapper makes it listen on 127.0.0.1 only.
PORTKEY_LOOPBACK = BENCH / "portkey_loopback.mjs"
INSTALL_TIMEOUT_S = 900
#: LiteLLM's model names for the two upstream answers; the client picks one by URL
#: (``/engines/<model>/chat/completions``), since a static upstream tells them apart by path.
LITELLM_MODELS = {False: "bench-plain", True: "bench-stream"}
#: LiteLLM fetches a price list and header tables from the internet at start-up unless told to use
#: its bundled copies; the URLs point at a closed loopback port in case a version ignores the flags.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_MODEL_COST_MAP_URL": "http://127.0.0.1:9/offline",
    "LITELLM_ANTHROPIC_BETA_HEADERS_URL": "http://127.0.0.1:9/offline",
    "LITELLM_BLOG_POSTS_URL": "http://127.0.0.1:9/offline",
    "LITELLM_AUTOROUTER_PRESETS_URL": "http://127.0.0.1:9/offline",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "NO_PROXY": "127.0.0.1,localhost",
}
#: uvicorn's logging for LiteLLM: warnings only, no access-log line per request (fastgate,
#: the relay and nginx log no access either).
UVICORN_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def _installed(marker: Path, requirement: str, entry: Path) -> bool:
    return entry.exists() and marker.exists() and marker.read_text() == requirement


def _run_install(argv: list[str], cwd: Path, log: Path) -> bool:
    with open(log, "w") as out:
        try:
            done = subprocess.run(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            out.write(f"\n{exc!r}\n")
            return False
    return done.returncode == 0


def install_portkey(root: Path = PEERS_DIR) -> Path | None:
    """Portkey's gateway under root/portkey; the path of its node entry point, or None."""
    home = root / "portkey"
    entry = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    marker = home / ".installed"
    pinned = json.dumps({"package": PORTKEY_PACKAGE, "overrides": PORTKEY_OVERRIDES}, sort_keys=True)
    if _installed(marker, pinned, entry):
        return entry
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        note("node/npm not found: skipping portkey (apt-get install -y nodejs npm)")
        return None
    shutil.rmtree(home / "node_modules", ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "fastgate-bench-portkey", "private": True, "overrides": PORTKEY_OVERRIDES}
    (home / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (home / "package-lock.json").unlink(missing_ok=True)
    print(f"installing {PORTKEY_PACKAGE} into {home} ...", file=sys.stderr, flush=True)
    # --ignore-scripts: its postinstall (patch-package) patches nothing in the published package.
    argv = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--save-exact",
        "--prefix",
        str(home),
    ]
    log = root / "portkey-install.log"
    if not _run_install([*argv, PORTKEY_PACKAGE], home, log) or not entry.exists():
        note(f"installing {PORTKEY_PACKAGE} failed (registry unreachable?): skipping portkey; see {log}")
        return None
    marker.write_text(pinned)
    return entry


def install_litellm(root: Path = PEERS_DIR) -> Path | None:
    """LiteLLM's proxy in its own venv under root/litellm-venv; the path of its CLI, or None."""
    home = root / "litellm-venv"
    entry = home / "bin" / "litellm"
    marker = home / ".installed"
    if _installed(marker, LITELLM_REQUIREMENT, entry):
        return entry
    root.mkdir(parents=True, exist_ok=True)
    print(f"installing {LITELLM_REQUIREMENT} into {home} (a few minutes) ...", file=sys.stderr, flush=True)
    log = root / "litellm-install.log"
    try:
        venv.create(home, with_pip=True, clear=True, symlinks=True)  # clear: a partial install
    except (OSError, subprocess.CalledProcessError) as exc:
        note(f"could not create {home} ({exc}): skipping litellm")
        return None
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not _run_install([*pip, LITELLM_REQUIREMENT], root, log) or not entry.exists():
        note(f"installing {LITELLM_REQUIREMENT} failed (registry unreachable?): skipping litellm; see {log}")
        return None
    marker.write_text(LITELLM_REQUIREMENT)
    return entry


def portkey_argv(entry: Path, port: int) -> list[str]:
    node = shutil.which("node") or "node"
    return [node, str(PORTKEY_LOOPBACK), str(entry), f"--port={port}", "--headless"]


def portkey_env() -> dict[str, str]:
    # Production mode: no log-viewer UI routes; loopback custom hosts are trusted by default.
    return {"NODE_ENV": "production"}


def litellm_config(bases: dict[bool, str], api_key: str) -> str:
    """LiteLLM's proxy config: one OpenAI-compatible model per upstream answer (non-streaming,
    streaming), each with its ``api_base``; requests need ``api_key`` as the master key.

    JSON is YAML, so the config is written with json and read by LiteLLM's YAML loader.
    """
    models = [
        {
            "model_name": LITELLM_MODELS[stream],
            "litellm_params": {
                "model": "openai/mock-small",
                "api_base": bases[stream].rstrip("/") + "/v1",
                "api_key": api_key,
            },
        }
        for stream in (False, True)
    ]
    config = {
        "model_list": models,
        "litellm_settings": {"telemetry": False, "num_retries": 0},
        "general_settings": {"master_key": api_key},
    }
    return json.dumps(config, indent=2) + "\n"


def litellm_argv(entry: Path, config: Path, log_config: Path, port: int) -> list[str]:
    return [
        str(entry),
        "--config",
        str(config),
        "--log_config",
        str(log_config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def litellm_path(stream: bool) -> str:
    return f"/engines/{LITELLM_MODELS[stream]}/chat/completions"
