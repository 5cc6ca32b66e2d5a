"""What a run shows in the Prefect UI: progress while fetching, then a summary, a chart and a link.

Artifact keys are fixed so the Artifacts page keeps each one's history across runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from rt_displayr.metrics import queue_summary, weekly_first_response
from rt_displayr.redact import redact

PROGRESS_KEY = "rt-displayr-fetch-progress"
SUMMARY_KEY = "rt-displayr-summary"
LINK_KEY = "rt-displayr-published-data"

# Terminal front ends (the `rt-displayr run` progress bar) subscribe here; the flow reports to it.
ProgressListener = Callable[[int, int], None]
_listeners: list[ProgressListener] = []


def add_progress_listener(listener: ProgressListener) -> None:
    _listeners.append(listener)


def remove_progress_listener(listener: ProgressListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


class FetchProgress:
    """A progress artifact updated as chunks finish, plus any terminal listeners."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._artifact: UUID | None = None
        try:
            # called from the (sync) flow, so Prefect's sync-or-async helper returns the id itself
            self._artifact = cast(
                UUID,
                create_progress_artifact(
                    progress=100.0 if total == 0 else 0.0,
                    key=PROGRESS_KEY,
                    description=f"Ticket histories fetched from RT (0 of {total})",
                ),
            )
        except Exception as exc:  # progress is a courtesy: never fail a run over it
            get_run_logger().debug("no progress artifact: %s", exc)
        self._notify()

    def advance(self, tickets: int) -> None:
        self.done += tickets
        if self._artifact is not None:
            try:
                update_progress_artifact(
                    artifact_id=self._artifact,
                    progress=100.0 * self.done / max(self.total, 1),
                    description=f"Ticket histories fetched from RT ({self.done} of {self.total})",
                )
            except Exception as exc:
                get_run_logger().debug("progress artifact not updated: %s", exc)
        self._notify()

    def _notify(self) -> None:
        for listener in list(_listeners):
            listener(self.done, self.total)


def _bar(value: float, top: float, width: int = 24) -> str:
    filled = 0 if top <= 0 else round(width * value / top)
    return "█" * filled + "·" * (width - filled)


def weekly_chart_markdown(frame: pd.DataFrame) -> str:
    """A bar chart in plain markdown: the Prefect UI renders it with no image hosting.

    One unit (hours) for every week, so that the numbers read as easily as the bars.
    """
    weeks = weekly_first_response(frame)
    if not weeks:
        return "_No staff responses yet: nothing to chart._"
    top = max(minutes for _, minutes in weeks)
    lines = ["| week of | median first response (h) | |", "|---|---:|---|"]
    for week, minutes in weeks:
        lines.append(f"| {week} | {minutes / 60:.1f} | `{_bar(minutes, top)}` |")
    return "\n".join(lines)


def _duration(minutes: float | None) -> str:
    if minutes is None or pd.isna(minutes):
        return "–"
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def failure_line(exc: BaseException) -> str:
    """The error as one redacted line: what the summary of a failed run says went wrong."""
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    return redact(f"{name}: {lines[0]}" if lines else name)


def _count(summary: dict[str, Any], key: str) -> str:
    """A count the run got to before it stopped, or – for one it never reached."""
    value = summary.get(key)
    if value is None:
        return "–"
    return str(len(value)) if isinstance(value, list) else str(value)


def summary_markdown(summary: dict[str, Any], frame: pd.DataFrame | None) -> str:
    """The run at a glance; a failed run shows its error line and whatever it counted so far."""
    duration = summary.get("duration_seconds")
    lines = [
        f"# RT → Displayr: {summary['status']}",
        "",
        f"Query `{summary['query']}` → data set **{summary.get('data_name') or 'default'}**",
    ]
    if summary.get("error"):
        lines += ["", f"**Error:** `{summary['error']}`"]
    lines += [
        "",
        "| tickets exported | new | changed | unchanged | left the query | skipped (missing in RT) "
        "| RT requests | duration |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(
            _count(summary, key)
            for key in ("rows", "new", "changed", "unchanged", "removed", "missing", "rt_requests")
        )
        + f" | {'–' if duration is None else f'{duration:.1f} s'} |",
    ]
    if summary.get("task_runner"):
        lines += ["", f"Histories fetched with: {summary['task_runner']}"]
    if frame is not None:
        lines += ["", "## Per queue", "", *queue_table_markdown(frame)]
        lines += ["", "## Median first response by week (UTC)", "", weekly_chart_markdown(frame)]
    if summary.get("csv"):
        lines += ["", f"CSV: `{summary['csv']}`"]
    return "\n".join(lines)


def queue_table_markdown(frame: pd.DataFrame) -> list[str]:
    lines = [
        "| queue | tickets | median time to first staff response |",
        "|---|---:|---:|",
    ]
    for row in queue_summary(frame):
        lines.append(
            f"| {row['queue']} | {row['tickets']} "
            f"| {_duration(row.get('median_first_response_minutes'))} |"
        )
    return lines


def publish_summary(summary: dict[str, Any], frame: pd.DataFrame | None) -> None:
    """Every run ends with one, failed runs too; a failure to write it never masks the run's."""
    try:
        create_markdown_artifact(
            markdown=summary_markdown(summary, frame),
            key=SUMMARY_KEY,
            description=f"RT → Displayr {summary['status']}: tickets, incremental counts, "
            "per-queue response times",
        )
    except Exception as exc:
        if summary.get("status") != "failed":
            raise
        get_run_logger().warning("no summary artifact for the failed run: %s", redact(str(exc)))


def publish_link(displayr_url: str, data_name: str) -> None:
    """Link to Displayr (no secret: the project secret only ever rides in the API's query string)."""
    create_link_artifact(
        link=displayr_url,
        link_text=f"Displayr data set {data_name}",
        key=LINK_KEY,
        description=f"Data set {data_name} was updated in Displayr",
    )
