"""The benchmark's machinery works at a tiny size, and its legacy reference computes the pipeline's rows.

Asserts correctness only (rows, request counts, no process left behind), never timing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import procs, run
from benchmarks.legacy import run_legacy
from rt_displayr.sandbox.rt_server import RTSimulator
from tests.sandbox_expectations import expected_rows


def test_legacy_client_computes_the_rows_the_scenario_defines() -> None:
    with RTSimulator(tickets=20, seed=5) as rt:
        result = run_legacy(rt.url, "root", "password", "Status='resolved'", rt.sim.timezone)
        counts = dict(rt.counts)
    expected = expected_rows(rt.sim)
    assert len(expected) > 10
    assert result.rows == expected
    # the legacy cost: show + short history per ticket, then single history items
    listed = len(expected)
    assert counts["show"] == listed and counts["history"] == listed
    assert counts["history_item"] > listed and counts.get("history_l", 0) == 0
    assert result.requests == counts["total"]


def test_benchmark_scenario_runs_legacy_and_pipeline_side_by_side(tmp_path: Path) -> None:
    try:
        rows, notes = run.sim_scenario(tmp_path, 20, 0.0, {}, legacy=True, warm=True)
    finally:
        procs.stop_all()
    assert procs.processes_left() == []
    by_run = {row.run: row for row in rows}
    assert set(by_run) == {"a legacy", "b cold", "c unchanged", "c' unchanged", "d 1 % changed"}
    listed = by_run["b cold"].rows
    assert listed > 10 and by_run["a legacy"].rows == listed
    assert any(note.endswith(f"legacy rows == pipeline rows ({listed} tickets)") for note in notes)
    cold = by_run["b cold"].requests
    assert cold["search"] == 1 and cold["history_l"] == listed
    for unchanged in ("c unchanged", "c' unchanged"):
        assert by_run[unchanged].requests == {"other": 1, "search": 1}  # login POST + search
    changed = by_run["d 1 % changed"]
    assert changed.requests["history_l"] == 2 and changed.rows == listed + 1
    report = run.ratios(rows, {})
    assert len(report) == 1 and "(a)/(b)" in report[0] and "(b)/(d)" in report[0]
    json.dumps([row.__dict__ for row in rows])  # the results file can be written


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Fri Dec 04 11:06:41 2026", "2026-12-04 16:06:41"), ("Not set", "")],
)
def test_legacy_reads_show_dates_in_the_rt_zone(text: str, expected: str) -> None:
    from zoneinfo import ZoneInfo

    from benchmarks.legacy import local_to_utc

    assert local_to_utc(text, ZoneInfo("America/New_York")) == expected
