"""Processes the benchmark starts, and the guarantee that none outlives it.

Every child runs in its own session (process group): stopping it signals that group only, so a
simulator's threads, the pipeline's Prefect server or RT's workers go with it, and nothing else
on the machine is touched. `stop_all` runs from `finally` and from SIGTERM/SIGINT handlers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.integration.rt5 import group_alive

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE = 10.0
_started: list[subprocess.Popen[bytes]] = []


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's group, SIGKILL what is left after a grace period, reap the leader."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    deadline = time.monotonic() + STOP_GRACE
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
        process.wait(timeout=STOP_GRACE)
    if process in _started:
        _started.remove(process)


def stop_all() -> None:
    for process in list(reversed(_started)):
        stop(process)


def _on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP become SystemExit (Ctrl-C is KeyboardInterrupt): `finally` blocks run."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)


def popen(args: list[str], env: Mapping[str, str], **kw: object) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # type: ignore[call-overload]
        args, env=dict(env), cwd=ROOT, start_new_session=True, stdin=subprocess.DEVNULL, **kw
    )
    _started.append(process)
    return process


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]

    def control(self, action: str, **payload: object) -> object:
        from rt_displayr.sandbox.rt_server import control

        return control(self.url, action, timeout=120, **payload)


@contextlib.contextmanager
def simulator(
    tickets: int, latency_ms: float, service_times: Mapping[str, float], workers: int
) -> Iterator[Simulator]:
    """A simulator in its own process (its own GIL), stopped when the block ends."""
    process = popen(
        [
            sys.executable,
            "-m",
            "rt_displayr.sandbox.rt_server",
            "--tickets",
            str(tickets),
            "--latency-ms",
            str(latency_ms),
            "--service-times",
            json.dumps(dict(service_times)),
            "--workers",
            str(workers),
        ],
        os.environ,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"simulator did not start (exit {process.poll()})")
        yield Simulator(url, process)
    finally:
        stop(process)


@dataclass
class ChildResult:
    wall_seconds: float
    result: dict[str, object]
    group_maxrss_kb: int


def run_child(args: list[str], env: Mapping[str, str], log: Path) -> ChildResult:
    """Run a measured child to completion; wall time is the whole process, start-up included."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = popen(args, env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            stop(process)
    lines = log.read_text(errors="replace").splitlines()
    results = [line for line in lines if line.startswith("BENCH_RESULT ")]
    if process.returncode != 0 or not results:
        tail = "\n".join(lines[-30:])
        raise RuntimeError(f"{' '.join(args[:4])} failed ({process.returncode}):\n{tail}")
    return ChildResult(wall, json.loads(results[-1].split(" ", 1)[1]), usage.ru_maxrss)


def processes_left() -> list[str]:
    """Benchmark children still alive (for the final check); empty when all were stopped."""
    return [f"{p.pid} {p.args!r}" for p in _started if p.poll() is None]
