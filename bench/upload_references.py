"""Where a 200 MB upload's throughput through any relay tops out on this machine, beside the gateway.

    python -m bench.upload_references      (writes bench/results/uploads.txt)

Issue 24 asked uploads through the gateway to move 80% of the direct upload's throughput. Straight
to the upstream is two processes copying through loopback TCP once; any relay makes that two
connections and a third process on the same cores. These references show what that costs
whatever the relay does: the uvloop relay ``bench/upload_relay.py`` (the budget's reference), a
zero-copy one that moves the bytes socket to pipe to socket with ``splice(2)`` and never into user
space (:func:`splice_relay`, run as ``python -m bench.upload_references relay PORT UPSTREAM``),
and Debian's nginx streaming the body (``proxy_request_buffering off``). Best of five uploads
each, all in turn.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.conftest import free_port, wait_for_port
from bench.test_uploads import ROOT, SIZE, measure, servers, upload

RESULTS = ROOT / "bench" / "results" / "uploads.txt"
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031


def _spliced(src: socket.socket, dst: socket.socket) -> None:
    """Client to upstream without a user-space copy, until the client's half closes."""
    read_end, write_end = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_BYTES)
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_MORE
        while moved := os.splice(src.fileno(), write_end, _PIPE_BYTES, flags=flags):
            while moved:
                moved -= os.splice(read_end, dst.fileno(), moved, flags=flags)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)


def _copied(src: socket.socket, dst: socket.socket) -> None:
    """The upstream's (small) answer back to the client."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass


def splice_relay(port: int, upstream_port: int) -> None:
    """One connection to the upstream per client, a thread each way."""
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        threading.Thread(target=_spliced, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_copied, args=(upstream, client), daemon=True).start()


def _nginx(port: int, upstream_port: int, folder: str) -> subprocess.Popen[bytes]:
    conf = Path(folder, "nginx.conf")
    conf.write_text(
        f"worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder};\n"
        f"  upstream sink {{ server 127.0.0.1:{upstream_port}; keepalive 8; }}\n"
        f"  server {{ listen 127.0.0.1:{port}; client_max_body_size 0;\n"
        "    location / { proxy_pass http://sink; proxy_http_version 1.1; proxy_set_header Connection '';\n"
        "      proxy_request_buffering off; proxy_buffering off; } } }\n"
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", folder])


def _best(port: int, rounds: int) -> float:
    return SIZE / min(upload(port, b"") for _ in range(rounds)) / 1e6


def main() -> None:
    fixture = servers.__wrapped__()  # type: ignore[attr-defined]
    sink_port, relay_port, gw_port, gw_pid = next(fixture)
    splice_port, nginx_port = free_port(), free_port()
    folder = tempfile.mkdtemp()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bench.upload_references", "relay", str(splice_port), str(sink_port)]
    procs = [subprocess.Popen(argv, env=env, cwd=ROOT)]
    if shutil.which("nginx"):
        procs.append(_nginx(nginx_port, sink_port, folder))
    try:
        wait_for_port(splice_port)
        if len(procs) > 1:
            wait_for_port(nginx_port)
        figures = measure(sink_port, relay_port, gw_port, gw_pid)
        spliced = _best(splice_port, 5)
        nginx = _best(nginx_port, 5) if len(procs) > 1 else float("nan")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        fixture.close()
        shutil.rmtree(folder, ignore_errors=True)
    direct = figures["direct_mb_s"]
    lines = [
        "200 MB POST /v1/files on loopback, best of 5 each (MB/s, and the share of direct):",
        f"  direct to the upstream      {direct:6.0f}  1.00",
        *(
            f"  {name:27s} {value:6.0f}  {value / direct:.2f}"
            for name, value in (
                ("uvloop relay (no HTTP)", figures["relay_mb_s"]),
                ("splice(2) relay (zero-copy)", spliced),
                ("nginx, request unbuffered", nginx),
                ("fastgate", figures["gateway_mb_s"]),
            )
        ),
        f"fastgate's RSS: {figures['rest_mb']:.1f} MB at rest, +{figures['added_mb']:.1f} MB at its peak",
    ]
    report = "\n".join(lines)
    print(report)
    RESULTS.write_text(report + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["relay"]:
        splice_relay(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
