"""``homarpc serve`` and ``homarpc call`` as a user runs them: a .proto the user
wrote, generated code, real processes on 127.0.0.1 over the embedded UDP transport."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from homarpc.codegen import compile_protos

PROTO = """\
syntax = "proto3";
package notes.v1;

service Notebook {
  rpc Add(Note) returns (Receipt);
  rpc Search(Query) returns (stream Note);
  rpc AddMany(stream Note) returns (Receipt);
}
message Note { string title = 1; repeated string tags = 2; }
message Query { string tag = 1; }
message Receipt { int32 count = 1; }
"""

APP = """\
import homarpc
import notes_pb2
import notes_pb2_homarpc


class Notebook(notes_pb2_homarpc.NotebookServicer):
    def __init__(self):
        self.notes = []

    def Add(self, request, context):
        if not request.title:
            context.abort(homarpc.StatusCode.INVALID_ARGUMENT, "a note needs a title")
        self.notes.append(request)
        return notes_pb2.Receipt(count=len(self.notes))

    def Search(self, request, context):
        yield from (n for n in self.notes if request.tag in n.tags)

    def AddMany(self, request_iterator, context):
        self.notes.extend(request_iterator)
        return notes_pb2.Receipt(count=len(self.notes))


def make():
    return [Notebook()]


class AsyncNotebook(notes_pb2_homarpc.NotebookServicer):
    async def Add(self, request, context):
        return notes_pb2.Receipt(count=len(request.tags))
"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("notes-app")
    (directory / "notes.proto").write_text(PROTO)
    (directory / "notes_app.py").write_text(APP)
    assert compile_protos([directory / "notes.proto"], [directory], directory) == 0
    return directory


def _homarpc(*args: str, cwd: Path, **kwargs) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from homarpc.cli import main; main()", *args]
    return subprocess.Popen(command, cwd=cwd, text=True, **kwargs)


def _start(
    app_dir: Path, target: str, runner: str
) -> tuple[int, subprocess.Popen[str]]:
    """``homarpc serve target`` on a free port; the port from its banner."""
    process = _homarpc(
        "serve",
        target,
        "--port",
        "0",
        "--transport",
        "udp",
        "--grace",
        "1",
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        banner = lines.get(timeout=30)
    except queue.Empty:
        banner = ""
    pattern = rf"serving Notebook on 127\.0\.0\.1:(\d+) \(transport udp, {runner}\)"
    match = re.search(pattern, banner)
    if match is None:
        process.kill()
        pytest.fail(f"no serving banner: {banner!r} {process.communicate()[1]}")
    return int(match.group(1)), process


def _stop(process: subprocess.Popen[str], signum: int) -> str:
    """Signal ``homarpc serve`` and return its stdout once it has exited cleanly."""
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return stdout


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port, process = _start(app_dir, "notes_app:make", "threads")
    yield port, process
    if process.poll() is None:
        process.kill()
        process.communicate()


def _call(
    app_dir: Path, port: int, method: str, data: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from homarpc.cli import main; main()",
            "call",
            f"127.0.0.1:{port}",
            method,
            "--proto",
            "notes.proto",
            "--transport",
            "udp",
            "-d",
            data,
        ],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_call_sends_json_and_prints_json(server, app_dir):
    port, _ = server
    result = _call(
        app_dir,
        port,
        "notes.v1.Notebook/Add",
        '{"title": "homa", "tags": ["net", "rpc"]}',
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"count": 1}


def test_call_streams_json_lines_both_ways(server, app_dir):
    port, _ = server
    many = '{"title": "grants", "tags": ["net"]}\n{"title": "srpt", "tags": ["sched"]}'
    added = _call(app_dir, port, "notes.v1.Notebook/AddMany", many)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["count"] >= 2
    found = _call(app_dir, port, "/notes.v1.Notebook/Search", '{"tag": "net"}')
    assert found.returncode == 0, found.stderr
    titles = [json.loads(line)["title"] for line in found.stdout.splitlines()]
    assert "grants" in titles and "srpt" not in titles


def test_call_prints_the_servers_status_in_one_line(server, app_dir):
    port, _ = server
    result = _call(app_dir, port, "notes.v1.Notebook/Add", '{"tags": ["x"]}')
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: INVALID_ARGUMENT: a note needs a title"


def test_serve_refuses_a_port_in_use_with_a_fix(server, app_dir):
    port, _ = server
    second = _homarpc(
        "serve",
        "notes_app:make",
        "--port",
        str(port),
        "--transport",
        "udp",
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = second.communicate(timeout=30)
    assert second.returncode == 1
    assert "Traceback" not in stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr and "--port" in stderr


def test_serve_stops_cleanly_on_sigterm(server):
    _, process = server
    assert "homarpc: stopped" in _stop(process, signal.SIGTERM)


def test_serve_runs_async_servicers_on_an_asyncio_server(app_dir):
    port, process = _start(app_dir, "notes_app:AsyncNotebook", "asyncio")
    try:
        result = _call(app_dir, port, "notes.v1.Notebook/Add", '{"tags": ["a", "b"]}')
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"count": 2}
    finally:
        assert "homarpc: stopped" in _stop(process, signal.SIGINT)
