"""Start, steer and read the fake Twilio server from a test or a benchmark.

The server runs in a process of its own: it keeps what it accepted when the dispatcher
under test is killed, and its CPU is not the dispatcher's.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.fake_twilio.server import FakeConfig

REPO = Path(__file__).resolve().parents[3]


class FakeTwilioProcess:
    """``with FakeTwilioProcess(FakeConfig(latency_ms=100)) as twilio: ... twilio.url``."""

    def __init__(self, config: FakeConfig | None = None, *, log: Path | None = None) -> None:
        self.config = config or FakeConfig()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._client = httpx.Client(timeout=30)

    # --- Life cycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> FakeTwilioProcess:
        command = [
            sys.executable,
            "-m",
            "tests.support.fake_twilio",
            "--port",
            "0",
            "--config",
            json.dumps(asdict(self.config)),
        ]
        stderr = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, env=dict(os.environ)
        )
        if self.log:
            stderr.close()  # type: ignore[union-attr]
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise RuntimeError(f"the fake Twilio server did not start within {timeout} s")
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the fake Twilio server did not start: {line!r}")
        self.url = "http://" + line.removeprefix("listening on ")
        return self

    def stop(self) -> None:
        """SIGTERM to our own process (by its handle), SIGKILL if it does not go."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> FakeTwilioProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._client.close()

    # --- Steering -----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = self._client.post(f"{self.url}/_fake/config", json=changes)
        response.raise_for_status()
        for name, value in changes.items():
            setattr(self.config, name, value)
        return response.json()

    def reset(self) -> None:
        self._client.post(f"{self.url}/_fake/reset").raise_for_status()

    def settings_env(self) -> dict[str, str]:
        """The ``MIMAMORI_*`` settings that point the service at this server."""
        return {
            "MIMAMORI_TWILIO_API_URL": self.url,
            "MIMAMORI_TWILIO_ACCOUNT_SID": self.config.account_sid,
            "MIMAMORI_TWILIO_AUTH_TOKEN": self.config.auth_token,
            "MIMAMORI_TELEPHONY_PROVIDER": "twilio",
        }

    # --- Reading ------------------------------------------------------------------------------

    def _get(self, what: str) -> Any:
        response = self._client.get(f"{self.url}/_fake/{what}")
        response.raise_for_status()
        return response.json()

    def messages(self) -> list[dict[str, Any]]:
        """Every message created, in order: sid, to, from, body, created (epoch seconds)."""
        return self._get("messages")

    def calls(self) -> list[dict[str, Any]]:
        return self._get("calls")

    def requests(self) -> list[dict[str, Any]]:
        """Every create request: t (arrival, epoch seconds), kind, to, body, outcome."""
        return self._get("requests")

    def stats(self) -> dict[str, Any]:
        return self._get("stats")

    def messages_per_recipient(self) -> Counter[str]:
        return Counter(message["to"] for message in self.messages())

    def requests_by_recipient(self, kind: str = "message") -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.requests():
            if entry["kind"] == kind:
                out[entry["to"]].append(entry)
        return out

    def cpu_seconds(self) -> float:
        """CPU used by the server process so far, read from /proc (Linux)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate: Any, *, timeout: float, every: float = 0.1) -> bool:
    """Poll until ``predicate()`` is true or the time is up; say which."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
