"""A run killed mid-fetch (SIGKILL: no cleanup code runs) leaves nothing half-done behind.

`rt-displayr run` runs in its own process against the RT simulator running here, slowed so the
kill lands while histories are being fetched; it reports to this session's Prefect server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rt_displayr.state import TicketStore
from tests import faults_support
from tests.faults_support import DATA_NAME, FaultSandbox, read_rows

fault_sandbox = faults_support.fault_sandbox
QUERY = "Status='resolved'"
STARTUP_LIMIT = 120.0


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("rt-displayr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rt_displayr.cli"]


def _store_snapshot(sandbox: FaultSandbox) -> tuple[object, dict[int, str]]:
    with TicketStore.open(
        sandbox.state_dir, rt_url=sandbox.rt.url, query=QUERY, data_name=DATA_NAME
    ) as store:
        facts = store.load()
        return store.last_committed_at(), {i: f.ticket.last_updated for i, f in facts.items()}


def test_a_run_killed_mid_fetch_leaves_the_csv_and_state_and_the_next_run_starts_clean(
    fault_sandbox: FaultSandbox,
) -> None:
    from prefect.settings import PREFECT_API_URL

    sandbox = fault_sandbox
    sandbox.run()
    good = sandbox.output.read_bytes()
    before = _store_snapshot(sandbox)
    changed = min(t.id for t in sandbox.rt.sim.tickets.values() if t.status == "resolved")
    sandbox.reply_to(changed)
    sandbox.rt.reset_counts()
    sandbox.rt.latency_ms = 300  # about 40 histories two at a time: several seconds of fetching

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "RT_DISPLAYR_TASK_RETRY_DELAY_SCALE": "0.001",
    }
    command = [
        *_cli(),
        "run",
        "--full-refresh",
        "--concurrency",
        "2",
        "--output",
        str(sandbox.output),
        "--state-dir",
        str(sandbox.state_dir),
        "--no-progress",
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while sandbox.rt.counts["history_l"] < 4:
            assert process.poll() is None, f"the run ended early with {process.returncode}"
            assert time.monotonic() < deadline, "the run never started fetching"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    fetched = sandbox.rt.counts["history_l"]
    assert fetched < len(sandbox.expected())  # killed mid-fetch, not after
    # no half-written CSV: the last good one as it was, no pending or temporary file beside it
    assert sandbox.output.read_bytes() == good
    assert sorted(p.name for p in sandbox.output.parent.iterdir()) == [DATA_NAME]
    assert sandbox.published() == good
    # the incremental state did not advance
    assert _store_snapshot(sandbox) == before

    sandbox.rt.latency_ms = 0
    sandbox.rt.reset_counts()
    summary = sandbox.run()

    assert summary["changed"] == 1 and summary["new"] == 0
    assert sandbox.rt.counts["history_l"] == 1  # only the changed ticket, as if nothing happened
    _, rows = read_rows(sandbox.output.read_bytes())
    assert rows == sandbox.expected()
    assert sandbox.published() == sandbox.output.read_bytes()
    assert _store_snapshot(sandbox) != before
