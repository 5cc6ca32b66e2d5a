"""`rt-displayr`: run the flow, serve it on a schedule, or try it against the built-in sandbox.

Errors this tool raises on purpose are printed as one line (no traceback) with exit code 2 for
configuration mistakes and 1 for everything else, so a cron mail or a CI log says what to fix.
Prefect is imported inside the commands: `rt-displayr --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from rt_displayr.errors import ConfigError, RtDisplayrError
from rt_displayr.redact import redact
from rt_displayr.settings import check_run_options

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

# The temporary Prefect server a local run starts would otherwise try to send telemetry, and log
# an error for it on machines without internet; a scheduled metrics job has no need to phone home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Publish Request Tracker ticket responsiveness metrics to a Displayr dashboard.",
)


def _fail(exc: BaseException) -> None:
    code = 2 if isinstance(exc, ConfigError) else 1
    typer.secho(f"error: {redact(str(exc))}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(
        f"{summary['status']}: {summary['rows']} tickets "
        f"({summary['new']} new, {summary['changed']} changed, {summary['unchanged']} unchanged, "
        f"{summary['removed']} left the query, {len(summary['missing'])} skipped) "
        f"in {summary['duration_seconds']:.1f} s with {summary['rt_requests']} RT requests"
    )
    typer.echo(f"CSV: {summary['csv']}")
    if summary.get("upload_id"):
        typer.echo(f"Displayr data set {summary['data_name']}: {summary['displayr_message']}")


def run_flow(parameters: dict[str, Any], *, progress: bool) -> dict[str, Any]:
    """Run the flow in this process, with a terminal progress bar when asked for."""
    from flows.rt_to_displayr import rt_to_displayr
    from tasks.observe import add_progress_listener, remove_progress_listener

    if not progress:
        return rt_to_displayr(**parameters)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task_id = bar.add_task("fetching ticket histories", total=None)

        def listener(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        add_progress_listener(listener)
        try:
            return rt_to_displayr(**parameters)
        finally:
            remove_progress_listener(listener)


@app.command()
def run(
    query: str = typer.Option("Status='resolved'", help="TicketSQL selecting the tickets."),
    data_name: str | None = typer.Option(
        None, help="Displayr data set (default: DISPLAYR_DATA_NAME or rt-ticket-history.csv)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write the CSV, upload nothing."),
    output: Path = typer.Option(Path("out/rt-ticket-history.csv"), help="Where the CSV goes."),
    partial: bool = typer.Option(False, "--partial", help="Displayr's partial import."),
    abort: str = typer.Option("OnWarning", help="Displayr import: OnWarning or Never."),
    concurrency: int = typer.Option(8, min=1, help="Parallel requests to RT."),
    chunk_size: int = typer.Option(250, min=1, help="Tickets per Prefect task."),
    row_numbers: bool = typer.Option(
        True, "--row-numbers/--no-row-numbers", help="R write.csv's leading row-number column."
    ),
    staff: str = typer.Option("name", help="Who is staff: 'name' (no @) or 'privileged'."),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Ignore incremental state."),
    state_dir: Path | None = typer.Option(None, help="Incremental state directory."),
    allow_shrink: bool = typer.Option(
        False, "--allow-shrink", help="Publish a sharp drop in rows."
    ),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Publish an empty result."),
    max_drop: float = typer.Option(0.5, help="Largest accepted drop in rows (share)."),
    on_missing_ticket: str = typer.Option("skip", help="'skip' or 'fail' on deleted tickets."),
    search_range_size: int | None = typer.Option(None, help="Search in id ranges of this size."),
    task_runner: str = typer.Option(
        "threads", help="Fetch histories with 'threads' here or on 'dask' (rt-displayr[dask])."
    ),
    dask_address: str | None = typer.Option(
        None, help="Scheduler of a running Dask cluster (default: a local one for the run)."
    ),
    dask_workers: int = typer.Option(2, min=1, help="Worker processes of the local Dask cluster."),
    progress: bool = typer.Option(
        sys.stderr.isatty(), "--progress/--no-progress", help="Terminal progress bar."
    ),
) -> None:
    """Run the flow once, here, against the RT and Displayr named by the environment."""
    parameters = {
        "query": query,
        "data_name": data_name,
        "dry_run": dry_run,
        "output": str(output),
        "partial": partial,
        "abort": abort,
        "concurrency": concurrency,
        "chunk_size": chunk_size,
        "row_numbers": row_numbers,
        "staff": staff,
        "full_refresh": full_refresh,
        "state_dir": None if state_dir is None else str(state_dir),
        "allow_shrink": allow_shrink,
        "allow_empty": allow_empty,
        "max_drop": max_drop,
        "on_missing_ticket": on_missing_ticket,
        "search_range_size": search_range_size,
        "task_runner": task_runner,
        "dask_address": dask_address,
        "dask_workers": dask_workers,
    }
    try:
        check_run_options(
            abort=abort, staff=staff, on_missing_ticket=on_missing_ticket, max_drop=max_drop
        )
        _check_settings(dry_run)
        summary = run_flow(parameters, progress=progress)
    except RtDisplayrError as exc:
        _fail(exc)
    _print_summary(summary)


def _check_settings(dry_run: bool) -> None:
    """Fail on a missing or malformed setting before Prefect (and its server) even starts."""
    from rt_displayr.settings import (
        data_name_from_env,
        displayr_connection_from_env,
        rt_connection_from_env,
    )

    if os.environ.get("RT_DISPLAYR_NO_PREFECT_CONFIG") or not _prefect_configured():
        rt_connection_from_env()
        data_name_from_env()
        if not dry_run:
            displayr_connection_from_env()


def _prefect_configured() -> bool:
    """With a Prefect API configured, settings may come from Secret blocks and Variables."""
    return bool(os.environ.get("PREFECT_API_URL"))


@app.command()
def demo(
    tickets: int = typer.Option(300, min=1, help="Tickets in the sandbox RT."),
    output: Path = typer.Option(Path("out/demo/rt-ticket-history.csv"), help="CSV path."),
) -> None:
    """Start the sandbox RT and Displayr on 127.0.0.1, run the whole flow against them, stop them."""
    from rt_displayr.sandbox.demo import run_demo

    try:
        run_demo(tickets=tickets, output=output)
    except RtDisplayrError as exc:
        _fail(exc)


@app.command()
def serve(
    name: str = typer.Option(
        "served", help="Deployment name; the UI shows it as rt-to-displayr/NAME."
    ),
    cron: str = typer.Option(
        "0 11 * * 4", help="When scheduled runs start (minute hour day month weekday)."
    ),
    timezone: str = typer.Option(
        "America/New_York", help="IANA time zone the cron schedule is read in."
    ),
    schedule: bool = typer.Option(
        True, "--schedule/--no-schedule", help="--no-schedule: runs from the UI or CLI only."
    ),
    query: str = typer.Option("Status='resolved'", help="Default TicketSQL of each run."),
    data_name: str | None = typer.Option(
        None, help="Default Displayr data set (default: DISPLAYR_DATA_NAME or Variable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Runs default to writing the CSV only."),
    output: Path = typer.Option(Path("out/rt-ticket-history.csv"), help="Where the CSV goes."),
) -> None:
    """Serve the flow from this process: weekly scheduled runs plus runs started from the UI.

    For a machine without a work pool and worker (deployments/prefect.yaml is the other way).
    Runs execute here, one at a time, only while this command runs; settings and secrets come
    from this process's environment or from Prefect Secret blocks and Variables, as for
    `run`. Stopping it (Ctrl-C) pauses the schedule, so missed runs do not pile up.
    """
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Cron
    from prefect.settings import get_current_settings
    from pydantic import ValidationError

    try:
        # Prefect's own validation, so that a bad cron or zone fails here in one line rather
        # than as a traceback from inside `serve`.
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        _fail(ConfigError(f"invalid schedule {cron!r} in {timezone!r}: {exc.errors()[0]['msg']}"))
    if not get_current_settings().api.url:
        # Without a server Prefect would serve against a temporary one: no UI, no lasting runs.
        _fail(
            ConfigError(
                "PREFECT_API_URL is not set: start a Prefect server and point Prefect at it "
                "(docs/operations.md), e.g. prefect config set "
                "PREFECT_API_URL=http://127.0.0.1:4200/api"
            )
        )
    from prefect import serve as serve_deployments

    from flows.rt_to_displayr import rt_to_displayr

    deployment = rt_to_displayr.to_deployment(
        name=name,
        schedules=[Cron(cron, timezone=timezone)] if schedule else [],
        parameters={
            "query": query,
            "data_name": data_name,
            "dry_run": dry_run,
            "output": str(output),
        },
        tags=["rt-displayr", "served"],
        # Overlapping runs would race on the CSV, the incremental state and the data set.
        concurrency_limit=1,
    )
    # Served from its entrypoint, so each run imports the flow from the checkout as a worker
    # does, rather than running a copy cloudpickled into this process.
    serve_deployments(cast("RunnerDeployment", deployment), limit=1)


if __name__ == "__main__":
    app()
