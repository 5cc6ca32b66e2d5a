"""The fetch step on a local Dask cluster of processes: the same CSV as threads, no process left.

Every process the run starts is found by a marker in its environment (children inherit it, and
it stays with a process even if its parent dies and it is re-parented), so a worker or a stray
Prefect server that outlived the run is caught however it was started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path

import psutil
import pytest

from tasks.observe import add_progress_listener, remove_progress_listener
from tests.conftest import Sandbox
from tests.sandbox_expectations import expected_rows, read_csv, without_row_numbers

# The flow tests' fixture: both simulators, environment pointing the flow at them.
MARKER = "RT_DISPLAYR_TEST_PROCESS_MARKER"


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture
def process_marker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Marks the processes started from here on; any still alive at the end are killed."""
    # Python's resource tracker, once started, lives as long as this process by design: start
    # it before marking so that it is not mistaken for a leftover of the run.
    resource_tracker.ensure_running()
    marker = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, marker)
    try:
        yield marker
    finally:
        leftovers = marked_processes(marker)
        for process in leftovers:
            process.kill()
        psutil.wait_procs(leftovers, timeout=10)


def csv_bytes(summary: dict) -> bytes:
    return Path(summary["csv"]).read_bytes()


@pytest.mark.dask
def test_a_local_dask_cluster_fetches_the_same_csv_and_leaves_no_process_behind(
    sandbox: Sandbox, process_marker: str
) -> None:
    rows = len(expected_rows(sandbox.rt.sim))
    # other chunks than the Dask run's, so that no cached chunk of this run serves that one
    threads = sandbox.run(dry_run=True, chunk_size=7)
    sandbox.rt.reset_counts()
    during_fetch: list[list[psutil.Process]] = []

    def listener(done: int, total: int) -> None:
        if done:  # a chunk has come back from a worker: the cluster is up
            during_fetch.append(marked_processes(process_marker))

    add_progress_listener(listener)
    try:
        on_dask = sandbox.run(
            dry_run=True,
            chunk_size=10,
            task_runner="dask",
            dask_workers=2,
            output=str(sandbox.tmp / "dask" / "rt-ticket-history.csv"),
            state_dir=str(sandbox.tmp / "dask-state"),
        )
    finally:
        remove_progress_listener(listener)
    leftovers = marked_processes(process_marker)
    psutil.wait_procs(leftovers, timeout=10)  # a worker may still be on its way out

    assert csv_bytes(on_dask) == csv_bytes(threads)
    assert on_dask["rows"] == rows and on_dask["task_runner"] == "local Dask, 2 workers"
    assert sandbox.rt.counts["history_l"] == rows  # the workers did ask RT
    assert len(during_fetch) == -(-rows // 10)
    started = {process.pid: process for seen in during_fetch for process in seen}
    assert len(started) == 2  # the two workers: no Prefect server of their own beside them
    assert [process for process in leftovers if process.is_running()] == []

    # The workers kept each chunk's result where this process finds it: a threads run of the
    # same chunks, with a fresh incremental state, reuses them all without asking RT again.
    sandbox.rt.reset_counts()
    cached = sandbox.run(dry_run=True, chunk_size=10, state_dir=str(sandbox.tmp / "fresh"))
    assert csv_bytes(cached) == csv_bytes(threads)
    assert sandbox.rt.counts["history_l"] == 0


def command_lines(processes: list[psutil.Process]) -> dict[int, str]:
    lines = {}
    for process in processes:
        try:
            lines[process.pid] = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return lines


@pytest.mark.dask
def test_rt_displayr_run_on_dask_without_a_prefect_server_starts_only_its_own(
    sandbox: Sandbox, process_marker: str, tmp_path: Path
) -> None:
    """No PREFECT_API_URL: the run's temporary server is the only one, its workers report to it."""
    rows = len(expected_rows(sandbox.rt.sim))
    output = tmp_path / "cli" / "rt-ticket-history.csv"
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    command = [
        sys.executable,
        "-m",
        "rt_displayr.cli",
        "run",
        "--dry-run",
        "--no-progress",
        "--task-runner",
        "dask",
        "--dask-workers",
        "2",
        "--chunk-size",
        "10",
        "--output",
        str(output),
        "--state-dir",
        str(tmp_path / "cli-state"),
    ]
    seen: dict[int, str] = {}  # pid: command line, taken while it runs
    with (tmp_path / "cli.log").open("w+") as log:
        run = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while run.poll() is None and time.monotonic() < deadline:
                seen.update(command_lines(marked_processes(process_marker)))
                time.sleep(0.2)
        finally:
            if run.poll() is None:
                run.kill()
            run.wait()
        log.seek(0)
        output_text = log.read()
    leftovers = marked_processes(process_marker)
    psutil.wait_procs(leftovers, timeout=10)

    assert run.returncode == 0, output_text[-3000:]
    assert f"dry run: {rows} tickets ({rows} new" in output_text
    _, written = read_csv(output.read_bytes())
    assert without_row_numbers(written) == expected_rows(sandbox.rt.sim)
    assert sandbox.rt.counts["history_l"] == rows
    servers = [line for line in seen.values() if "prefect.server.api.server" in line]
    workers = [line for line in seen.values() if "multiprocessing.spawn" in line]
    assert len(servers) == 1, servers  # the run's own: none started by the workers
    assert len(workers) >= 2, seen
    assert [process for process in leftovers if process.is_running()] == []
