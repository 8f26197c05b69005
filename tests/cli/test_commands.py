"""The homarpc CLI through click's CliRunner: help, protoc, doctor, and mistakes
that must end in one 'Error:' line with a fix, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from homarpc.cli import main
from homarpc.cli.bench import Results, histogram, percentile, report

REPO = Path(__file__).resolve().parents[2]
HELLO_PROTO = str(REPO / "protos" / "helloworld.proto")
ROUTE_PROTO = str(REPO / "protos" / "route_guide.proto")


def run(*args: str, cwd: Path | None = None) -> Result:
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, list(args))
    with runner.isolated_filesystem(temp_dir=cwd):
        return runner.invoke(main, list(args))


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["serve", "call", "bench", "doctor", "protoc"])
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {command}")


def test_the_group_lists_every_command():
    result = run("--help")
    commands = result.output.split("Commands:")[1].split()
    assert {"serve", "call", "bench", "doctor", "protoc"} <= set(commands)


def test_protoc_writes_messages_types_and_stubs(tmp_path):
    result = run("protoc", "-I", str(REPO / "protos"), "-o", str(tmp_path), ROUTE_PROTO)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "route_guide_pb2.py",
        "route_guide_pb2.pyi",
        "route_guide_pb2_homarpc.py",
    ]


def test_protoc_names_a_missing_file():
    result = run("protoc", "nowhere.proto")
    assert result.exit_code == 2
    assert "'nowhere.proto' does not exist" in result.output


def test_doctor_reports_each_transport_with_a_status():
    result = run("doctor")
    names = {
        line.split()[1] for line in result.output.splitlines()[1:] if "fix:" not in line
    }
    assert {"udp", "kernel", "buffers", "auto"} <= names
    udp_line = next(line for line in result.output.splitlines() if " udp " in line)
    assert udp_line.split()[0] in {"ok", "--"}
    assert result.exit_code == (0 if udp_line.split()[0] == "ok" else 1)


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("greeter_server", ["is not MODULE:SERVICER"]),
        (
            "no_such_module_xyz:Greeter",
            ["no module named 'no_such_module_xyz'", "--app-dir"],
        ),
        ("json:Greeter", ["module 'json' has no 'Greeter'"]),
        ("json:JSONDecoder", ["does not inherit a generated servicer", "subclass"]),
        ("json:loads", ["json:loads() failed", "factory that takes no arguments"]),
    ],
)
def test_serve_explains_a_bad_target(target, fragments):
    assert_one_line_error(run("serve", target, "--port", "0"), *fragments)


def test_serve_reports_an_import_that_raises(tmp_path):
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('half-written')\n")
    result = run("serve", "broken_app:X", "--app-dir", str(tmp_path))
    assert_one_line_error(result, "importing 'broken_app' failed", "half-written")


@pytest.mark.parametrize(
    ("method", "data", "fragments"),
    [
        (
            "helloworld.Nope/SayHello",
            "{}",
            ["has no service helloworld.Nope", "helloworld.Greeter"],
        ),
        ("helloworld.Greeter/Shout", "{}", ["has no method Shout", "SayHello"]),
        ("SayHello", "{}", ["needs its service"]),
        (
            "helloworld.Greeter/SayHello",
            "{name: x}",
            ["request is not JSON", "quote it"],
        ),
        (
            "helloworld.Greeter/SayHello",
            '{"nmae": "x"}',
            ["not a helloworld.HelloRequest", "nmae"],
        ),
        (
            "helloworld.Greeter/SayHello",
            '{"name": "a"} {"name": "b"}',
            ["takes one", "2 JSON values"],
        ),
    ],
)
def test_call_explains_a_bad_method_or_request(method, data, fragments):
    result = run("call", "127.0.0.1:1", method, "--proto", HELLO_PROTO, "-d", data)
    assert_one_line_error(result, *fragments)


def test_call_explains_a_bad_header():
    result = run(
        "call",
        "127.0.0.1:1",
        "helloworld.Greeter/SayHello",
        "--proto",
        HELLO_PROTO,
        "-H",
        "no-colon",
    )
    assert_one_line_error(result, "'no-colon' is not 'key: value'")


def test_bench_refuses_streaming_methods():
    result = run(
        "bench",
        "127.0.0.1:1",
        "routeguide.RouteGuide/ListFeatures",
        "--proto",
        ROUTE_PROTO,
    )
    assert_one_line_error(result, "bench drives unary methods", "unary_stream")


def test_bench_with_a_target_needs_the_method_and_proto():
    assert_one_line_error(run("bench", "127.0.0.1:1"), "give METHOD and --proto")


def test_percentiles_use_the_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile([7], 50) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_histogram_counts_every_value_once():
    values = sorted([1, 2, 2, 3, 10, 10, 10])
    buckets = histogram(values, buckets=3)
    assert sum(n for _, n in buckets) == len(values)
    assert buckets[0][1] == 4 and buckets[-1] == (10, 3)


def test_report_shows_errors_and_percentiles():
    results = Results(latencies_ns=[1_000, 2_000, 3_000, 4_000], elapsed_s=2.0)
    results.errors["UNAVAILABLE"] += 2
    text = report(results)
    assert "calls       6 (UNAVAILABLE 2)" in text
    assert "throughput  3 calls/s" in text
    header, row = next(
        (line, text.splitlines()[i + 1])
        for i, line in enumerate(text.splitlines())
        if line.split()[:2] == ["min", "p50"]
    )
    assert dict(zip(header.split(), map(float, row.split()), strict=True)) == {
        "min": 1.0,
        "p50": 2.0,
        "p90": 4.0,
        "p99": 4.0,
        "p99.9": 4.0,
        "max": 4.0,
        "mean": 2.5,
    }


def test_report_without_a_single_success_says_so():
    results = Results(elapsed_s=1.0)
    results.errors["UNAVAILABLE"] += 3
    assert report(results).endswith("no call succeeded: nothing to measure")


def test_bench_measures_an_in_process_echo_server():
    result = run(
        "bench", "-n", "200", "-c", "4", "--payload", "100", "--transport", "udp"
    )
    assert result.exit_code == 0, result.output
    assert "echo 100 B at 127.0.0.1:" in result.output
    assert "calls       200 (no errors)" in result.output
    assert "latency (µs)" in result.output


def test_bench_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    result = run("bench", "-n", "10", "--plot", "latency.png")
    assert_one_line_error(result, "--plot needs matplotlib", "pip install matplotlib")


def test_call_without_a_server_says_what_to_check():
    result = run(
        "call",
        "127.0.0.1:9",
        "helloworld.Greeter/SayHello",
        "--proto",
        HELLO_PROTO,
        "--transport",
        "udp",
        "--timeout",
        "2",
    )
    assert_one_line_error(result, "is a server listening on 127.0.0.1:9?")


@pytest.mark.parametrize("command", ["call", "bench"])
def test_a_target_without_a_port_is_explained(command):
    result = run(
        command, "localhost", "helloworld.Greeter/SayHello", "--proto", HELLO_PROTO
    )
    assert_one_line_error(result, "bad target 'localhost'", "host:port")


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_call_reads_the_request_from_a_file_or_stdin(tmp_path, source):
    request = '{"surname": "x"}'  # read, parsed, and refused by field name
    if source == "file":
        (tmp_path / "request.json").write_text(request)
        data, stdin = f"@{tmp_path / 'request.json'}", None
    else:
        data, stdin = "@-", request
    result = CliRunner().invoke(
        main,
        ["call", "127.0.0.1:1", "helloworld.Greeter/SayHello", "--proto", HELLO_PROTO,
         "-d", data],
        input=stdin,
    )  # fmt: skip
    assert_one_line_error(result, "not a helloworld.HelloRequest", "surname")


def test_call_names_an_unreadable_request_file(tmp_path):
    missing = tmp_path / "missing.json"
    result = run("call", "127.0.0.1:1", "helloworld.Greeter/SayHello", "--proto",
                 HELLO_PROTO, "-d", f"@{missing}")  # fmt: skip
    assert_one_line_error(result, f"cannot read {missing}")


def test_serve_names_a_bad_transport_variable(monkeypatch):
    monkeypatch.setenv("HOMARPC_TRANSPORT", "carrier-pigeon")
    result = run("serve", "json:JSONDecoder", "--port", "0")
    assert_one_line_error(result, "unknown HOMARPC_TRANSPORT 'carrier-pigeon'", "unset")
