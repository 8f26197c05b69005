"""Servers in their own processes, as an outsider meets them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import homarpc

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "robust.Target"


class ServerProcess:
    """``serve_target.py`` running in a child process."""

    def __init__(self, tmp: Path, workers: int = 16, port: int = 0) -> None:
        self.record = tmp / f"record-{os.getpid()}-{id(self)}.txt"
        self.record.write_text("")
        self._proc = subprocess.Popen(
            [
                sys.executable, "-m", "tests.robustness.serve_target",
                "--workers", str(workers), "--port", str(port),
                "--record", str(self.record),
            ],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self._proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def records(self) -> list[str]:
        return self.record.read_text().splitlines()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def restart(self) -> Path:
        """Crash the server and start another on its port; its record file."""
        record = self.record.with_suffix(".restarted.txt")
        record.write_text("")
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"restart {record}\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        assert line == f"PORT {self.port}\n", line
        return record

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(5)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._close_pipes()


@pytest.fixture
def spawn_server(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def spawn(**kwargs: Any) -> ServerProcess:
        server = ServerProcess(tmp_path, **kwargs)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.kill()


@pytest.fixture
def open_channel() -> Iterator[Any]:
    channels: list[homarpc.Channel] = []

    def open_(target: str) -> homarpc.Channel:
        channel = homarpc.insecure_channel(target, transport="udp")
        channels.append(channel)
        return channel

    yield open_
    for channel in channels:
        channel.close()


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"
