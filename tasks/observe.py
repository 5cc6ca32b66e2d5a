"""What a run shows in the Prefect UI: progress while fetching, then a summary, a chart and a link.

Artifact keys are fixed so the Artifacts page keeps each one's history across runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
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
            self._artifact = create_progress_artifact(
                progress=100.0 if total == 0 else 0.0,
                key=PROGRESS_KEY,
                description=f"Ticket histories fetched from RT (0 of {total})",
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
    """A bar chart in plain markdown: the Prefect UI renders it with no image hosting."""
    weeks = weekly_first_response(frame)
    if not weeks:
        return "_No staff responses yet: nothing to chart._"
    top = max(minutes for _, minutes in weeks)
    lines = ["| week of | median first response | |", "|---|---:|---|"]
    for week, minutes in weeks:
        lines.append(f"| {week} | {_duration(minutes)} | `{_bar(minutes, top)}` |")
    return "\n".join(lines)


def _duration(minutes: float | None) -> str:
    if minutes is None or pd.isna(minutes):
        return "–"
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def summary_markdown(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    queues = queue_summary(frame)
    lines = [
        f"# RT → Displayr: {summary['status']}",
        "",
        f"Query `{summary['query']}` → data set **{summary['data_name']}**",
        "",
        "| tickets exported | new | changed | unchanged | left the query | skipped (missing in RT) "
        "| RT requests | duration |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['rows']} | {summary['new']} | {summary['changed']} | {summary['unchanged']} "
        f"| {summary['removed']} | {len(summary['missing'])} | {summary['rt_requests']} "
        f"| {summary['duration_seconds']:.1f} s |",
        "",
        "## Per queue",
        "",
        "| queue | tickets | median time to first staff response |",
        "|---|---:|---:|",
    ]
    for row in queues:
        lines.append(
            f"| {row['queue']} | {row['tickets']} | {_duration(row.get('median_first_response_minutes'))} |"
        )
    lines += ["", "## Median first response by week (UTC)", "", weekly_chart_markdown(frame)]
    if summary.get("csv"):
        lines += ["", f"CSV: `{summary['csv']}`"]
    return "\n".join(lines)


def publish_summary(summary: dict[str, Any], frame: pd.DataFrame) -> None:
    create_markdown_artifact(
        markdown=summary_markdown(summary, frame),
        key=SUMMARY_KEY,
        description="Tickets exported, incremental counts, per-queue response times",
    )


def publish_link(displayr_url: str, data_name: str) -> None:
    """Link to Displayr (no secret: the project secret only ever rides in the API's query string)."""
    create_link_artifact(
        link=displayr_url,
        link_text=f"Displayr data set {data_name}",
        key=LINK_KEY,
        description=f"Data set {data_name} was updated in Displayr",
    )
