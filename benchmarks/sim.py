"""The RT simulator as its own process, with service times given as JSON.

`python -m rt_displayr.sandbox.rt_server` offers only `--service-times default|zero`; the
benchmark models the RT it measured, so this launcher takes the table as JSON and otherwise
does what that CLI does (prints the URL, serves until SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from rt_displayr.sandbox import rt_server
from rt_displayr.sandbox.rt_data import generate_tickets
from rt_displayr.sandbox.rt_server import RTSimulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--service-times", default="{}", help="JSON: ms per endpoint kind")
    parser.add_argument("--workers", type=int, default=4)
    opts = parser.parse_args()
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    # The handler writes headers and body in two sends on an unbuffered socket: with Nagle on,
    # the body waits for the client's delayed ACK, ~40 ms per keep-alive request, a latency no
    # real web server adds. TCP_NODELAY (what Apache and nginx set) removes it.
    rt_server._Handler.disable_nagle_algorithm = True
    sim = generate_tickets(opts.tickets, seed=opts.seed)
    server = RTSimulator(
        sim,
        latency_ms=opts.latency_ms,
        service_times=json.loads(opts.service_times),
        workers=opts.workers,
    )
    try:
        print(server.url, flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
