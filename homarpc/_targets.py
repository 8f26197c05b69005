"""Parsing of channel targets and server bind addresses.

Layer: rpc. Imports: stdlib only.

Targets: ``host:port``, ``[v6addr]:port``, ``homa://host:port`` (kernel transport),
``homa+udp://host:port`` (udp), ``homa+memory://host:port`` (tests),
``dns:///host:port``, ``ipv4:a:p,b:p`` / ``ipv6:[a]:p,[b]:p`` and any comma-separated
list of those (several servers: round-robin with failover). A host name resolves to
every address it has.

Channels parse leniently and late, as grpcio does (``split_target``, ``resolve``): a
host without a port means port 443, a port may be a service name ("http"), and text
that does not parse or a name that does not resolve is no error until a call needs
an address (it then fails ``UNAVAILABLE``; the channel resolves again later).
``parse_target`` is the strict form, for tools that want to refuse a typo at once.
"""

from __future__ import annotations

import socket

__all__ = ["TargetError", "parse_bind", "parse_target", "resolve", "split_target"]

Address = tuple[str, int]

_SCHEMES = {"homa://": "kernel", "homa+udp://": "udp", "homa+memory://": "memory"}
_PREFIXES = ("dns:///", "dns:", "ipv4:", "ipv6:")
#: Hosts a server binds to when asked for "any address".
_ANY = {"", "[::]", "::", "0.0.0.0", "*"}
#: The port of a target that names none (grpcio's default: https).
DEFAULT_PORT = 443


class TargetError(ValueError):
    """A target or address that cannot be understood; the message says how to fix it."""


def _split_scheme(text: str) -> tuple[str | None, str]:
    for scheme, kind in _SCHEMES.items():
        if text.startswith(scheme):
            return kind, text[len(scheme) :]
    return None, text


def _host_port(
    text: str, default_port: int | None, *, named_ports: bool = False
) -> tuple[str, int]:
    text = text.strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:  # a bare IPv6 address without a port
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise TargetError(f"{text!r} has no port: write it as host:port")
        return host, default_port
    try:
        return host, int(port_text)
    except ValueError:
        if named_ports:
            return host, _service_port(text, port_text)
        raise TargetError(f"{text!r}: the port must be a number (host:port)") from None


def _service_port(text: str, name: str) -> int:
    try:
        return socket.getservbyname(name, "tcp")  # grpcio resolves "http" to 80
    except OSError:
        raise TargetError(f"failed to parse port in name: {text}") from None


def parse_target(target: str) -> tuple[str | None, list[Address]]:
    """Resolve a channel target to (transport kind or None, server addresses).

    Raises:
        TargetError: unparsable text or an unresolvable host.
    """
    kind, rest = _split_scheme(target.strip())
    addresses: list[Address] = []
    for part in rest.split(","):
        if not part.strip():
            continue
        host, port = _host_port(part, None)
        addresses.extend(_resolve(host or "127.0.0.1", port))
    if not addresses:
        raise TargetError(f"target {target!r} names no server: write host:port")
    return kind, list(dict.fromkeys(addresses))


def _resolve(host: str, port: int) -> list[Address]:
    if host == "localhost":
        return [("127.0.0.1", port)]
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return [(host, port)]
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return [(str(info[4][0]), port) for info in infos]


def split_target(target: str) -> tuple[str | None, list[str]]:
    """A channel target's transport kind (None: no scheme) and its server parts
    (``host:port`` texts, not parsed yet). Never raises: see ``resolve``."""
    kind, rest = _split_scheme(target.strip())
    return kind, [part.strip() for part in rest.split(",") if part.strip()]


def needs_dns(parts: list[str]) -> bool:
    """True when some part names a host only DNS can turn into addresses (those
    are looked up again when the channel reconnects; literals never change)."""
    for part in parts:
        try:
            host, _ = _host_port(part, DEFAULT_PORT)
        except TargetError:
            continue
        if host and host != "localhost" and not _is_literal(host):
            return True
    return False


def resolve(target: str, parts: list[str]) -> list[Address]:
    """The addresses of a channel's server parts, leniently (see module docstring).

    Raises:
        TargetError: no part resolves; the message says why, as grpcio's does
            ("errors resolving TARGET: ...").
    """
    addresses: list[Address] = []
    errors: list[str] = []
    for part in parts:
        try:
            host, port = _host_port(part, DEFAULT_PORT, named_ports=True)
            addresses.extend(_resolve(host or "127.0.0.1", port))
        except TargetError as exc:
            errors.append(str(exc))
    if not addresses:
        why = "; ".join(errors) or "the target names no server"
        raise TargetError(f"errors resolving {target}: {why}")
    return list(dict.fromkeys(addresses))


def _is_literal(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def parse_bind(address: str) -> tuple[str | None, Address]:
    """Resolve a server's ``add_insecure_port`` address to (kind or None, address).

    "Any address" forms (``[::]``, ``0.0.0.0``, empty) bind 0.0.0.0; ``localhost``
    binds 127.0.0.1. A missing port means 0 (pick one).
    """
    kind, rest = _split_scheme(address.strip())
    host, port = _host_port(rest, 0)
    if host in _ANY or host == "[::]":
        host = "0.0.0.0"
    elif host == "localhost":
        host = "127.0.0.1"
    return kind, (host, port)
