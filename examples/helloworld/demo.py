"""Start a helloworld server, call it once, stop: the README's first command.

Everything runs in this process over homarpc's embedded user-space Homa (UDP on
127.0.0.1, a port the system picks), so it works without the Homa kernel module.
"""

from __future__ import annotations

import sys
import time

from greeter_client import greet
from greeter_server import start


def main() -> int:
    began = time.perf_counter()
    server, port = start("127.0.0.1:0", transport="udp")
    try:
        print(f"server: listening on 127.0.0.1:{port} (embedded Homa over UDP)")
        reply = greet(f"127.0.0.1:{port}", "homarpc", transport="udp")
        print(f"client: received {reply!r}")
    finally:
        server.stop(grace=1.0).wait(timeout=5)
    print(f"done in {time.perf_counter() - began:.2f} s")
    return 0 if reply == "Hello, homarpc!" else 1


if __name__ == "__main__":
    sys.exit(main())
