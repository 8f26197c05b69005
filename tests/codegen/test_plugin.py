"""The plugin and the protoc wrapper: naming rules, refusals, and real protoc runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.compiler.plugin_pb2 import CodeGeneratorRequest
from google.protobuf.descriptor_pb2 import Edition, FileDescriptorProto

from homarpc.codegen import build_protos, compile_protos
from homarpc.codegen.model import module_alias, module_name, output_name, pythonize
from homarpc.codegen.plugin import DUMP_ENV_VAR, generate

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
GOLDEN = Path(__file__).parent / "cases" / "repo_protos" / "expected"
PLUGIN = Path(sys.executable).parent / "protoc-gen-homarpc"
HOMARPC = Path(sys.executable).parent / "homarpc"


@pytest.mark.parametrize(
    ("proto", "module", "alias", "output"),
    [
        ("rg.proto", "rg_pb2", "rg__pb2", "rg_pb2_homarpc.py"),
        (
            "my_pkg/route_guide.proto",
            "my_pkg.route_guide_pb2",
            "my__pkg_dot_route__guide__pb2",
            "my_pkg/route_guide_pb2_homarpc.py",
        ),
        ("a/my-service.proto", "a.my_service_pb2", "a_dot_my__service__pb2", None),
    ],
)
def test_names_follow_protoc_and_grpcio_tools(proto, module, alias, output):
    assert module_name(proto) == module
    assert module_alias(module) == alias
    if output is not None:
        assert output_name(proto) == output


@pytest.mark.parametrize(
    ("name", "python"),
    [("import", "import_"), ("None", "None_"), ("match", "match"), ("Get", "Get")],
)
def test_only_hard_keywords_are_renamed(name, python):
    assert pythonize(name) == python


def _request_with_services(
    *names: str, input_type: str = ".p.M"
) -> CodeGeneratorRequest:
    proto = FileDescriptorProto(name="p.proto", package="p")
    proto.message_type.add(name="M")
    for name in names:
        proto.service.add(name=name).method.add(
            name="Do", input_type=input_type, output_type=".p.M"
        )
    return CodeGeneratorRequest(file_to_generate=["p.proto"], proto_file=[proto])


def test_generated_names_that_collide_are_refused():
    response = generate(_request_with_services("Foo", "FooAsync"))
    assert "would both generate FooAsyncStub" in response.error
    assert not response.file


def test_an_undeclared_type_is_reported_not_raised():
    response = generate(_request_with_services("Foo", input_type=".p.Missing"))
    assert response.error == (
        "p.proto: type p.Missing is not declared in any file of the request"
    )


def test_options_are_refused_by_name():
    request = _request_with_services("Foo")
    request.parameter = "grpc_2_0"
    assert "takes no options (got 'grpc_2_0')" in generate(request).error


def test_the_plugin_declares_proto3_optional_support():
    response = generate(_request_with_services("Foo"))
    assert response.supported_features & response.FEATURE_PROTO3_OPTIONAL
    assert [f.name for f in response.file] == ["p_pb2_homarpc.py"]


def test_the_plugin_declares_the_editions_it_supports():
    # protoc refuses to send an Editions file to a plugin that does not declare
    # them (cases/editions runs protoc with the plugin over 2023 and 2024 files).
    response = generate(_request_with_services("Foo"))
    assert response.supported_features & response.FEATURE_SUPPORTS_EDITIONS
    assert response.minimum_edition == Edition.EDITION_PROTO2
    assert response.maximum_edition == Edition.EDITION_2024
    refused = generate(_request_with_services("Foo", "FooAsync"))
    assert refused.error
    assert refused.supported_features & refused.FEATURE_SUPPORTS_EDITIONS


def _grpc_request(*, importer: bool) -> CodeGeneratorRequest:
    health = FileDescriptorProto(name="grpc/health/v1/health.proto")
    health.message_type.add(name="M")
    if not importer:
        return CodeGeneratorRequest(file_to_generate=[health.name], proto_file=[health])
    mine = FileDescriptorProto(name="mine.proto", dependency=[health.name])
    return CodeGeneratorRequest(
        file_to_generate=["mine.proto"], proto_file=[health, mine]
    )


def test_a_module_inside_grpcios_package_is_refused_with_the_way_out():
    # grpc.health.v1.health_pb2 can never be imported: `grpc` is grpcio's package.
    error = generate(_grpc_request(importer=False)).error
    assert error.startswith(
        "grpc/health/v1/health.proto: its Python module grpc.health.v1.health_pb2 "
        "would be inside package 'grpc', which is grpcio's"
    )
    assert "Copy the .proto into a directory with another name" in error
    assert "grpc_health/v1/health.proto" in error
    error = generate(_grpc_request(importer=True)).error
    assert error.startswith(
        "mine.proto: it imports grpc/health/v1/health.proto, whose Python module "
    )


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        args, input=stdin, capture_output=True, timeout=60, env=env, cwd=REPO
    )


def test_protoc_runs_the_installed_plugin_and_it_dumps_the_request(tmp_path):
    assert PLUGIN.exists(), "pip install -e . creates the protoc-gen-homarpc script"
    dump = tmp_path / "request.bin"
    protos = sorted(str(p.relative_to(REPO)) for p in PROTOS.glob("*.proto"))
    result = _run(
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-Iprotos",
        f"--plugin=protoc-gen-homarpc={PLUGIN}",
        f"--homarpc_out={tmp_path}",
        *protos,
        env={**os.environ, DUMP_ENV_VAR: str(dump)},
    )
    assert result.returncode == 0, result.stderr.decode()
    for golden in GOLDEN.glob("*.golden"):
        assert (tmp_path / golden.stem).read_text() == golden.read_text()
    request = CodeGeneratorRequest.FromString(dump.read_bytes())
    assert sorted(request.file_to_generate) == sorted(Path(p).name for p in protos)


def test_the_plugin_explains_garbage_on_stdin_in_one_line():
    result = _run(str(PLUGIN), stdin=b"\xff\xff\xff not a request")
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().count("\n") == 1
    assert "run me through protoc" in result.stderr.decode()


def test_python_m_codegen_writes_messages_types_and_stubs(tmp_path):
    result = _run(
        sys.executable,
        "-m",
        "homarpc.codegen",
        "-I",
        "protos",
        "-o",
        str(tmp_path),
        "protos/route_guide.proto",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "route_guide_pb2.py",
        "route_guide_pb2.pyi",
        "route_guide_pb2_homarpc.py",
    ]
    stubs = (tmp_path / "route_guide_pb2_homarpc.py").read_text()
    assert stubs == (GOLDEN / "route_guide_pb2_homarpc.py.golden").read_text()


def test_a_bad_proto_gets_protocs_message_and_a_failing_status(tmp_path):
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage M { strng name = 1; }\n')
    result = _run(
        sys.executable, "-m", "homarpc.codegen", "-o", str(tmp_path), str(bad)
    )
    stderr = result.stderr.decode()
    assert result.returncode != 0
    assert '"strng" is not defined' in stderr
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob("*_pb2*"))


def test_compile_protos_resolves_well_known_types_and_imports(tmp_path):
    status = compile_protos([PROTOS / "kvstore.proto"], [PROTOS], tmp_path)
    assert status == 0
    stubs = (tmp_path / "kvstore_pb2_homarpc.py").read_text()
    assert (
        "from google.protobuf import empty_pb2 as google_dot_protobuf_dot_empty__pb2"
        in stubs
    )


def test_build_protos_rebuilds_only_when_an_input_is_newer(tmp_path):
    proto = tmp_path / "helloworld.proto"
    proto.write_text((PROTOS / "helloworld.proto").read_text())
    out = tmp_path / "out"
    build_protos([proto], out)
    made = out / "helloworld_pb2_homarpc.py"
    first = made.stat().st_mtime_ns
    os.utime(made, ns=(first + 10**9, first + 10**9))  # clearly newer than the proto
    build_protos([proto], out)
    assert made.stat().st_mtime_ns == first + 10**9  # fresh: left alone
    os.utime(proto, ns=(first + 2 * 10**9, first + 2 * 10**9))
    build_protos([proto], out)
    assert made.stat().st_mtime_ns != first + 10**9  # stale: rebuilt
    assert not [p for p in out.iterdir() if p.name.startswith(".homarpc-build-")]


def test_a_codegen_refusal_fails_the_command_with_its_reason(tmp_path, capsys):
    proto = tmp_path / "clash.proto"
    proto.write_text(
        'syntax = "proto3";\nmessage M {}\n'
        "service Foo { rpc Do(M) returns (M); }\n"
        "service FooAsync { rpc Do(M) returns (M); }\n"
    )
    assert compile_protos([proto], [tmp_path], tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "homarpc codegen: clash.proto: services Foo and FooAsync" in error
    assert not (tmp_path / "out").exists()  # not even protoc's clash_pb2.py


def test_a_failing_protoc_leaves_no_output_directory(tmp_path):
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage M { strng name = 1; }\n')
    result = _run(str(HOMARPC), "protoc", "-o", str(tmp_path / "new" / "out"), str(bad))
    assert result.returncode != 0
    assert '"strng" is not defined' in result.stderr.decode()
    assert not (tmp_path / "new").exists()


def test_grpc_packages_are_refused_and_nothing_is_written(tmp_path, capsys):
    health = tmp_path / "grpc" / "health" / "v1" / "health.proto"
    health.parent.mkdir(parents=True)
    health.write_text('syntax = "proto3";\npackage grpc.health.v1;\nmessage M {}\n')
    assert compile_protos([health], [tmp_path], tmp_path / "out") == 1
    assert "would be inside package 'grpc'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_cli_writes_utf8_under_an_ascii_locale(tmp_path):
    # LC_ALL=C with Python's UTF-8 mode off (PYTHONUTF8=0): the default encoding is
    # ASCII, and non-ASCII comments (docstrings) must still be written, as UTF-8.
    case = Path(__file__).parent / "cases" / "non_ascii"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0")
    env.pop("PYTHONIOENCODING", None)
    result = _run(
        str(HOMARPC),
        "protoc",
        "-I",
        str(case / "protos"),
        "-o",
        str(tmp_path),
        str(case / "protos" / "greetings.proto"),
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    golden = case / "expected" / "greetings_pb2_homarpc.py.golden"
    made = tmp_path / "greetings_pb2_homarpc.py"
    assert made.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8")
    assert "Grüße" in (tmp_path / "greetings_pb2.pyi").read_text(encoding="utf-8")


def test_without_mypy_protobuf_the_way_out_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "out"
    assert compile_protos([PROTOS / "helloworld.proto"], [PROTOS], out) == 1
    error = capsys.readouterr().err
    assert "pip install mypy-protobuf, or use --pyi protoc" in error
    assert not out.exists()
    assert (
        compile_protos([PROTOS / "helloworld.proto"], [PROTOS], out, pyi="protoc") == 0
    )
    assert "__slots__" in (out / "helloworld_pb2.pyi").read_text()  # protoc's
