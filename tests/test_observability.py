"""What a run leaves in the Prefect UI, read back from the Prefect API after runs against the
simulators: the artifacts under their fixed keys, the flow and task run names, the progress.

Expected numbers come from the simulator's model (tests/sandbox_expectations.py), not from the
flow's own return value, except where the point is that the artifact repeats what the run did.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import Artifact
from prefect.states import State
from typer.testing import CliRunner

from rt_displayr.errors import DisplayrRejected
from tasks.metrics import VALIDATION_ARTIFACT_KEY
from tasks.observe import (
    LINK_KEY,
    PROGRESS_KEY,
    SUMMARY_KEY,
    _duration,
    add_progress_listener,
    remove_progress_listener,
)
from tests.conftest import Sandbox
from tests.sandbox_expectations import expected_rows

# The flow tests' fixture: both simulators, environment pointing the flow at them.
UTC_TEXT = "%Y-%m-%d %H:%M:%S"


def flow_run_id(state: State) -> UUID:
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return run_id


def artifacts_of(run_id: UUID) -> dict[str, list[Artifact]]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key: dict[str, list[Artifact]] = {}
    for artifact in found:
        by_key.setdefault(artifact.key or "", []).append(artifact)
    return by_key


def only(artifacts: dict[str, list[Artifact]], key: str) -> Artifact:
    [artifact] = artifacts[key]
    return artifact


def task_run_names(run_id: UUID, wanted: set[str]) -> set[str]:
    """Task runs reach the API as events, a moment after the flow returns: wait for them."""
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
        names = {run.name for run in runs}
        if wanted <= names or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def first_response_minutes(row: dict[str, str]) -> float | None:
    if not row["FirstResponseTimeUTC"]:
        return None
    received = datetime.strptime(row["EmailReceivedTimeUTC"], UTC_TEXT)
    first = datetime.strptime(row["FirstResponseTimeUTC"], UTC_TEXT)
    return (first - received).total_seconds() / 60


def summary_table_row(markdown: str) -> list[str]:
    """The cells of the counts row under the summary's first table header."""
    lines = markdown.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| tickets exported"))
    return [cell.strip() for cell in lines[header + 2].strip("|").split("|")]


def test_a_published_run_shows_progress_summary_link_and_what_each_task_did(
    sandbox: Sandbox,
) -> None:
    rows = expected_rows(sandbox.rt.sim)
    ids = [int(row["TicketID"]) for row in rows]

    state = sandbox.run(chunk_size=10, return_state=True)

    summary = state.result()
    run_id = flow_run_id(state)
    artifacts = artifacts_of(run_id)
    assert set(artifacts) == {PROGRESS_KEY, SUMMARY_KEY, LINK_KEY}  # no validation report

    progress = only(artifacts, PROGRESS_KEY)
    assert progress.type == "progress" and progress.data == 100
    assert f"({len(rows)} of {len(rows)})" in (progress.description or "")

    markdown = str(only(artifacts, SUMMARY_KEY).data)
    assert markdown.startswith("# RT → Displayr: published")
    exported, new, changed, unchanged, left, skipped, requests, duration = summary_table_row(
        markdown
    )
    assert (exported, new, changed, unchanged, left, skipped) == (
        str(len(rows)),
        str(len(rows)),
        "0",
        "0",
        "0",
        "0",
    )
    # every request RT served is counted: logins, the search, histories, attachments
    assert int(requests) == sandbox.rt.counts["total"]
    assert int(requests) == summary["rt_requests"]
    assert duration.endswith(" s")
    queues = Counter(row["RTQueue"] for row in rows)
    assert len(queues) > 1
    for queue, tickets in queues.items():
        minutes = [
            value
            for row in rows
            if row["RTQueue"] == queue and (value := first_response_minutes(row)) is not None
        ]
        median = _duration(round(statistics.median(minutes), 1))
        assert f"| {queue} | {tickets} | {median} |" in markdown
    received = [
        datetime.strptime(row["EmailReceivedTimeUTC"], UTC_TEXT).date()
        for row in rows
        if first_response_minutes(row) is not None
    ]
    weeks = sorted({(day - timedelta(days=day.weekday())).isoformat() for day in received})
    chart = markdown.split("## Median first response by week (UTC)")[1].split("CSV:")[0]
    bars = [line for line in chart.splitlines() if line.endswith("` |")]
    assert [bar.split(" | ")[0].strip("| ") for bar in bars] == weeks  # one bar per week
    assert f"CSV: `{summary['csv']}`" in markdown

    link = only(artifacts, LINK_KEY)
    assert link.data == f"[Displayr data set rt-ticket-history.csv]({sandbox.displayr.url})"
    for artifact in (item for found in artifacts.values() for item in found):
        assert sandbox.secret not in f"{artifact.data} {artifact.description}"

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    assert flow_run.name == "publish: Status='resolved' → default data set"
    chunks = [ids[start : start + 10] for start in range(0, len(ids), 10)]
    wanted = {f"fetch-histories [tickets {c[0]}–{c[-1]} ({len(c)})]" for c in chunks}
    wanted |= {"list-tickets [Status='resolved']", "import-data [rt-ticket-history.csv]"}
    assert wanted <= task_run_names(run_id, wanted)


def test_two_runs_leave_two_versions_under_each_key(sandbox: Sandbox) -> None:
    first = sandbox.run(dry_run=True, return_state=True)
    second = sandbox.run(dry_run=True, return_state=True)

    runs = [flow_run_id(first), flow_run_id(second)]
    with get_client(sync_client=True) as client:
        for key in (SUMMARY_KEY, PROGRESS_KEY):
            versions = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[key]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=runs),
                )
            )
            assert sorted(str(a.flow_run_id) for a in versions) == sorted(map(str, runs))
    rows = len(expected_rows(sandbox.rt.sim))
    again = str(only(artifacts_of(runs[1]), SUMMARY_KEY).data)
    assert again.startswith("# RT → Displayr: dry run")
    assert summary_table_row(again)[:4] == [str(rows), "0", "0", str(rows)]
    # nothing to fetch: the progress is complete at once rather than stuck at 0
    assert only(artifacts_of(runs[1]), PROGRESS_KEY).data == 100
    # a dry run publishes nothing, so it links to nothing
    assert LINK_KEY not in artifacts_of(runs[0])


def test_a_failed_run_still_leaves_a_summary_with_its_redacted_error(sandbox: Sandbox) -> None:
    sandbox.displayr.inject("import", "http400")

    state = sandbox.run(return_state=True)

    assert state.is_failed()
    with pytest.raises(DisplayrRejected):
        state.result()
    artifacts = artifacts_of(flow_run_id(state))
    assert LINK_KEY not in artifacts  # nothing was published
    markdown = str(only(artifacts, SUMMARY_KEY).data)
    assert markdown.startswith("# RT → Displayr: failed")
    [error] = [line for line in markdown.splitlines() if line.startswith("**Error:**")]
    assert "DisplayrRejected" in error
    rows = len(expected_rows(sandbox.rt.sim))
    assert summary_table_row(markdown)[:2] == [str(rows), str(rows)]  # what it got to
    for artifact in (item for found in artifacts.values() for item in found):
        assert sandbox.secret not in f"{artifact.data} {artifact.description}"


def test_a_frame_that_fails_validation_is_reported_check_by_check(sandbox: Sandbox) -> None:
    sim = sandbox.rt.sim
    ticket = next(t for t in sim.tickets.values() if t.status != "resolved" and not t.deleted)
    created = ticket.transactions[0].created
    # resolved an hour before it was received: a row the data set contract refuses
    sandbox.rt.set_status(ticket.id, "resolved", at=created - 3600)

    state = sandbox.run(dry_run=True, return_state=True)

    assert state.is_failed()
    artifacts = artifacts_of(flow_run_id(state))
    report = str(only(artifacts, VALIDATION_ARTIFACT_KEY).data)
    assert str(ticket.id) in report
    summary = str(only(artifacts, SUMMARY_KEY).data)
    assert summary.startswith("# RT → Displayr: failed")
    assert "ValidationFailed" in summary
    assert summary_table_row(summary)[0] == "–"  # no rows were exported


def test_the_terminal_progress_follows_every_fetched_ticket(sandbox: Sandbox) -> None:
    seen: list[tuple[int, int]] = []

    def listener(done: int, total: int) -> None:
        seen.append((done, total))

    add_progress_listener(listener)
    try:
        sandbox.run(dry_run=True, chunk_size=7)
    finally:
        remove_progress_listener(listener)
    total = len(expected_rows(sandbox.rt.sim))
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) == 1 + -(-total // 7)  # once at the start, once per chunk


def test_rt_displayr_run_with_a_progress_bar_prints_the_summary(sandbox: Sandbox) -> None:
    from rt_displayr.cli import app

    result = CliRunner().invoke(
        app,
        [
            "run",
            "--dry-run",
            "--progress",
            "--output",
            str(sandbox.tmp / "cli" / "out.csv"),
            "--state-dir",
            str(sandbox.tmp / "cli-state"),
        ],
    )

    assert result.exit_code == 0, result.output
    rows = len(expected_rows(sandbox.rt.sim))
    assert f"dry run: {rows} tickets ({rows} new" in result.output
