"""The command line as a user runs it: a real `rt-displayr` process, its own temporary Prefect."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from rt_displayr.sandbox.rt_server import RTSimulator
from tests.sandbox_expectations import COLUMNS, expected_rows


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    return subprocess.run(
        [str(bin_dir / "rt-displayr"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RT_", "DISPLAYR_", "PREFECT_"))
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        RT_DISPLAYR_STATE_DIR=str(tmp_path / "state"),
        **extra,
    )
    return env


def test_run_dry_run_writes_the_csv_and_uploads_nothing(tmp_path: Path) -> None:
    with RTSimulator(tickets=25, seed=5, user="metrics", password="s3cret-pass") as rt:
        env = clean_env(tmp_path, RT_URL=rt.url, RT_USER="metrics", RT_PASSWORD="s3cret-pass")
        result = cli(["run", "--dry-run", "--output", "out.csv", "--no-progress"], env, tmp_path)
        expected = expected_rows(rt.sim)

    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [{c: row[c] for c in COLUMNS} for row in rows] == expected
    assert f"dry run: {len(expected)} tickets" in result.stdout
    assert "s3cret-pass" not in result.stdout + result.stderr


def test_a_missing_setting_is_one_line_before_any_request(tmp_path: Path) -> None:
    result = cli(["run", "--dry-run"], clean_env(tmp_path, RT_USER="x", RT_PASSWORD="y"), tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: RT_URL is not set: give the RT base URL, e.g. https://rt.example.com/rt"
    ]


def test_demo_publishes_to_the_sandbox_with_nothing_configured(tmp_path: Path) -> None:
    output = tmp_path / "demo" / "rt-ticket-history.csv"
    result = cli(
        ["demo", "--tickets", "40", "--output", str(output)], clean_env(tmp_path), tmp_path
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "cold run:" in result.stdout and "rerun after 3 replies and 2 new tickets" in result.stdout
    )
    assert "(2 new, 3 changed," in result.stdout
    assert f"CSV: {output}" in result.stdout
    with output.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["", *COLUMNS]
