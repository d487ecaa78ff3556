"""Loopback servers for the tests: a free port, waiting for an answer, localstripe."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Until `url` answers at all (any HTTP status); fails with the log if the process dies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer: {log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def localstripe(directory: Path) -> Iterator[str]:
    """localstripe on a free port as a subprocess, its state kept in `directory`; yields its URL."""
    port = free_port()
    log = directory / "localstripe.log"
    runner = Path(__file__).with_name("localstripe_server.py")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(runner), str(directory), "--port", str(port), "--from-scratch"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/js.stripe.com/v3/", process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
