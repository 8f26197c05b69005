"""homarpc: gRPC-style RPC for Python on the Homa transport.

Layers, top to bottom (each imports only those below it):

* ``homarpc.cli``: the ``homarpc`` command line (serve, call, bench, doctor, protoc).
* ``homarpc.codegen``: the protoc plugin; imports no transport.
* ``homarpc`` (this package) and ``homarpc.aio``: the RPC layer (channels, servers,
  calls, status codes, metadata, deadlines, interceptors, framing).
* ``homarpc.transport``: the Homa message socket (udp, kernel, memory backends).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
