"""Layers import only downwards (README, "Layout"; each module says its layer).

Parses every module of the package and checks its imports against the rules, so a
forbidden import fails CI even if nothing executes it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "homarpc"

ENGINE_FORBIDDEN_STDLIB = {"socket", "asyncio", "time", "threading", "os", "selectors"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            found.add(root)
            found.update(f"{root}.{alias.name}" for alias in node.names)
    return found


def _modules(under: str) -> list[Path]:
    return sorted((PACKAGE.parent / under.replace(".", "/")).rglob("*.py"))


def _violations(paths: list[Path], is_forbidden) -> list[str]:
    return [
        f"{_module_name(path)} imports {name}"
        for path in paths
        for name in sorted(_imports(path))
        if is_forbidden(name)
    ]


def _is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_engine_imports_only_the_stdlib_minus_io_and_clocks():
    def forbidden(name: str) -> bool:
        top = name.split(".")[0]
        if top == "homarpc":
            return not _is_within(name, "homarpc.transport.engine")
        if top in ENGINE_FORBIDDEN_STDLIB:
            return True
        return top not in sys.stdlib_module_names and top != "__future__"

    assert _violations(_modules("homarpc.transport.engine"), forbidden) == []


def test_kernel_backend_uses_neither_asyncio_nor_the_engine():
    def forbidden(name: str) -> bool:
        return name.split(".")[0] == "asyncio" or _is_within(
            name, "homarpc.transport.engine"
        )

    assert _violations(_modules("homarpc.transport.kernel"), forbidden) == []


def _rpc_layer_modules() -> list[Path]:
    top = [p for p in PACKAGE.glob("*.py") if p.name != "cli.py"]
    return sorted(top + _modules("homarpc.aio"))


def test_rpc_layer_sees_only_the_public_transport_interface():
    def forbidden(name: str) -> bool:
        return any(
            _is_within(name, f"homarpc.transport.{private}")
            for private in ("engine", "kernel", "udp", "_base")
        ) or _is_within(name, "homarpc.cli")

    assert _violations(_rpc_layer_modules(), forbidden) == []


def test_codegen_imports_no_transport_no_asyncio_no_rpc_runtime():
    def forbidden(name: str) -> bool:
        return name.split(".")[0] == "asyncio" or (
            _is_within(name, "homarpc")
            and not _is_within(name, "homarpc.codegen")
            and name != "homarpc"
        )

    assert _violations(_modules("homarpc.codegen"), forbidden) == []


ADDONS = ("homarpc.health", "homarpc.reflection")


def test_health_and_reflection_are_add_ons_the_rpc_layer_does_not_import():
    # They sit above the RPC layer (only the cli and users import them), so
    # ``import homarpc`` does not pull in grpcio-health-checking or -reflection.
    addon_paths = {PACKAGE / "health.py", PACKAGE / "reflection.py"}
    below = [p for p in _rpc_layer_modules() if p not in addon_paths]
    below += _modules("homarpc.transport") + _modules("homarpc.codegen")

    def forbidden(name: str) -> bool:
        top = name.split(".")[0]
        return top in ("grpc_health", "grpc_reflection") or any(
            _is_within(name, addon) for addon in ADDONS
        )

    assert _violations(below, forbidden) == []


def test_nothing_imports_the_cli():
    paths = [p for p in PACKAGE.rglob("*.py") if p.name != "cli.py"]
    paths = [p for p in paths if "cli" not in p.relative_to(PACKAGE).parts[:1]]
    assert _violations(paths, lambda n: _is_within(n, "homarpc.cli")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import socket", "socket"),
        ("from . import wire", "homarpc.transport.engine.wire"),
        ("from ..kernel import x", "homarpc.transport.kernel.x"),
    ],
)
def test_import_resolution_sees_what_it_must(tmp_path, source, expected):
    # The checker itself must be able to fail: plant a module and look at what it finds.
    planted = PACKAGE / "transport" / "engine" / "_layering_probe.py"
    planted.write_text(source + "\n")
    try:
        assert expected in _imports(planted)
    finally:
        planted.unlink()
