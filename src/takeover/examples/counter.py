"""A tiny stateful workload: counts requests and keeps the count in its workspace.

``GET /`` adds one and answers only after the new count is on disk (fsync), so an answered
request is never lost by a handover. ``GET /count`` reads without counting. It also leaves
evidence for the fencing tests: ``runs.log`` gets a line when a runner starts and stops, and
``alive-<epoch>`` holds the last moment this runner was alive (rewritten every 50 ms).
``STARTUP_DELAY`` seconds pass before it listens.

On a regional volume it fences its own writes: before a count is acknowledged it reads the
volume's epoch (``TAKEOVER_EPOCH_FILE``), and once a newer runner holds the volume it refuses
(503) and exits, so a runner left behind by a hung node cannot acknowledge a count that the new
one overwrites.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import FrameType

WORKSPACE = Path(os.environ.get("TAKEOVER_WORKSPACE", "."))
EPOCH = os.environ.get("TAKEOVER_EPOCH", "0")
INSTANCE = os.environ.get("TAKEOVER_INSTANCE_ID", "local")
EPOCH_FILE = os.environ.get("TAKEOVER_EPOCH_FILE")
_lock = threading.Lock()


class Superseded(Exception):
    """A newer runner holds the volume: this one must not write."""


def _check_epoch() -> None:
    if EPOCH_FILE is None:
        return
    try:
        holder = int(Path(EPOCH_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return  # no claim readable: the agent claimed the volume before it started this runner
    if holder > int(EPOCH):
        raise Superseded(f"epoch {holder} holds the volume; this runner is epoch {EPOCH}")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _log_run(event: str) -> None:
    with open(WORKSPACE / "runs.log", "a") as f:
        f.write(f"{event} {EPOCH} {time.time():.6f}\n")
        f.flush()
        os.fsync(f.fileno())


class Counter:
    def __init__(self) -> None:
        path = WORKSPACE / "count"
        self.value = int(path.read_text()) if path.exists() else 0

    def add(self) -> int:
        with _lock:
            _check_epoch()
            self.value += 1
            _write(WORKSPACE / "count", str(self.value))
            _check_epoch()  # a newer runner may have read the count before this write landed
            return self.value


COUNTER = Counter()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/":
            try:
                count = COUNTER.add()
            except Superseded as exc:
                self.send_error(503, str(exc))
                _log_run("superseded")
                os._exit(0)
        elif self.path == "/count":
            count = COUNTER.value
        else:
            self.send_error(404, "try / or /count")
            return
        body = json.dumps({"count": count, "instance": INSTANCE, "epoch": int(EPOCH)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _alive() -> None:
    path = WORKSPACE / f"alive-{EPOCH}"
    fresh = path.with_suffix(".tmp")
    while True:  # replaced whole: a stop between truncating and writing left it empty
        fresh.write_text(f"{time.time():.6f}")
        fresh.replace(path)
        time.sleep(0.05)


def main() -> None:
    time.sleep(float(os.environ.get("STARTUP_DELAY", "0")))  # a slow starter, for the tests
    server = HTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))), Handler)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        _log_run("stop")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    _log_run("start")
    print(f"counter serving on port {server.server_port} at epoch {EPOCH}, count {COUNTER.value}", flush=True)
    threading.Thread(target=_alive, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
