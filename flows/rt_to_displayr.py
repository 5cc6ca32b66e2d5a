"""The RT → Displayr flow: list, fetch, derive, validate, write, upload, import.

Run it locally (`rt-displayr run`), from a deployment on a schedule, or from the Prefect UI.
Nothing is published, and the incremental state does not advance, unless every step before
succeeded: a failed run leaves the last good CSV, the dashboard data and the state as they were.

No `from __future__ import annotations` here: a worker loads the flow from its entrypoint and
Prefect builds the parameter model from the signature, where string annotations such as
`Literal[...]` then fail to resolve.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from prefect import Task, flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from rt_displayr.errors import ConfigError
from rt_displayr.guard import check_publishable
from rt_displayr.metrics import staff_names
from rt_displayr.models import TicketFacts, TicketSummary
from rt_displayr.process_env import exported_environment
from rt_displayr.redact import install_log_redaction, register_secret
from rt_displayr.settings import RTConnection, check_run_options
from rt_displayr.state import default_state_dir
from tasks.config import resolve_data_name, resolve_displayr_connection, resolve_rt_connection
from tasks.metrics import build_metrics, validate_metrics_frame
from tasks.observe import FetchProgress, failure_line, publish_link, publish_summary
from tasks.publish import import_data, pending_path, promote_csv, upload_csv, write_metrics_csv
from tasks.rt import ChunkResult, fetch_histories, list_tickets, lookup_privileged_staff
from tasks.state import commit_state, plan_fetch

DEFAULT_QUERY = "Status='resolved'"
DEFAULT_OUTPUT = "out/rt-ticket-history.csv"
# Two chunk tasks in flight overlap one chunk's slow tail with the next chunk's start.
CHUNKS_IN_FLIGHT = 2


T = TypeVar("T")


def opaque(value: T) -> T:
    """Hand a large argument (every ticket, every row) to a task without Prefect walking it.

    Prefect visits each element of a task's arguments looking for futures and states, which
    was ~80 % of an unchanged rerun's time; `quote` tells it not to, and it unwraps the value
    before the task function sees it.
    """
    return cast(T, quote(value))


def _run_name() -> str:
    parameters = flow_run.parameters or {}
    mode = "dry run" if parameters.get("dry_run") else "publish"
    target = parameters.get("data_name") or "default data set"
    name = f"{mode}: {parameters.get('query', DEFAULT_QUERY)} → {target}"
    if parameters.get("task_runner") == "dask":
        name += " (fetched on Dask)"
    return name


def _runner_label(task_runner: str, dask_address: str | None, dask_workers: int) -> str:
    if task_runner != "dask":
        return "threads"
    return f"Dask at {dask_address}" if dask_address else f"local Dask, {dask_workers} workers"


def _check_parameters(
    concurrency: int,
    chunk_size: int,
    abort: str,
    staff: str,
    on_missing_ticket: str,
    max_drop: float,
) -> None:
    """Parameter mistakes from the UI are caught before any request, each with one line."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    check_run_options(
        abort=abort, staff=staff, on_missing_ticket=on_missing_ticket, max_drop=max_drop
    )


def _check_runner(task_runner: str, dask_address: str | None, dask_workers: int) -> None:
    if task_runner not in ("threads", "dask"):
        raise ConfigError(f"task_runner must be 'threads' or 'dask', got {task_runner!r}")
    if dask_address and task_runner != "dask":
        raise ConfigError("dask_address is only used with task_runner 'dask'")
    if dask_workers < 1:
        raise ConfigError(f"dask_workers must be at least 1, got {dask_workers}")


def _chunks(tickets: list[TicketSummary], size: int) -> list[list[TicketSummary]]:
    return [tickets[start : start + size] for start in range(0, len(tickets), size)]


# Hands one chunk task with its parameters to a task runner and returns the future.
Submit = Callable[[Task[..., ChunkResult], dict[str, Any]], PrefectFuture[ChunkResult]]


def _submit_here(
    task: Task[..., ChunkResult], parameters: dict[str, Any]
) -> PrefectFuture[ChunkResult]:
    return task.submit(**parameters)


def _fetch_chunks(
    submit: Submit,
    connection: RTConnection,
    tickets: list[TicketSummary],
    progress: FetchProgress,
    *,
    chunks_in_flight: int,
    concurrency: int,
    chunk_size: int,
    on_missing_ticket: str,
    refresh: bool,
) -> list[ChunkResult]:
    # `concurrency` bounds the requests RT sees at once, however many chunks run side by side;
    # a run of one chunk gives it all of them.
    chunks = _chunks(tickets, chunk_size)
    threads = max(1, concurrency // max(1, min(chunks_in_flight, len(chunks))))
    task = fetch_histories.with_options(refresh_cache=refresh)
    futures = {}
    for chunk in chunks:
        parameters = {
            "connection": connection,
            "rt_account": f"{connection.url} {connection.account}",
            "tickets": chunk,
            "label": f"tickets {chunk[0].id}–{chunk[-1].id} ({len(chunk)})",
            "concurrency": threads,
            "on_missing_ticket": on_missing_ticket,
        }
        futures[submit(task, parameters)] = len(chunk)
    results = []
    for future in as_completed(list(futures)):
        results.append(future.result())
        progress.advance(futures[future])
    return results


def _secrets(connection: RTConnection) -> list[str]:
    values = (connection.password, connection.token, connection.cookie)
    return [value.get_secret_value() for value in values if value is not None]


def _guard_worker_logs(secrets: list[str]) -> None:
    """Runs in each Dask worker: its log lines go to the Prefect API too, so they are redacted."""
    for secret in secrets:
        register_secret(secret)
    install_log_redaction()


@contextmanager
def dask_task_runner(address: str | None, workers: int) -> Iterator[Any]:
    """A started DaskTaskRunner whose workers report to this run's Prefect server.

    Without an address, a local cluster of `workers` processes (one chunk at a time each) is
    started here and stopped on exit. When this run talks to a temporary server of its own (no
    PREFECT_API_URL), neither the settings that travel with each task nor the workers' own
    environment name a server, and each worker process would start a temporary one of its own:
    its task runs never reach this run's UI, and a worker that dies leaves it running. So the URL
    this run uses goes into both.

    A cluster at `address` must have PREFECT_API_URL set to this run's server, rt-displayr
    installed, and result storage shared with this machine (PREFECT_LOCAL_STORAGE_PATH on a
    shared file system, or a default result storage block): a chunk's cached result is written
    where its worker ran, and a re-run on another machine would otherwise fetch it again.
    """
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(
            "task_runner 'dask' needs prefect-dask: install rt-displayr[dask]"
        ) from exc

    context = FlowRunContext.get()
    client = context.client if context else None
    api_url = str(client.api_url) if client else PREFECT_API_URL.value()
    if address:
        runner = DaskTaskRunner(address=address)
    else:
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "host": "127.0.0.1",
                # the dashboard needs bokeh, which rt-displayr does not bring
                "dashboard_address": None,
            }
        )
    with ExitStack() as stack:
        if api_url:
            stack.enter_context(temporary_settings({PREFECT_API_URL: api_url}))
            stack.enter_context(exported_environment({"PREFECT_API_URL": api_url}))
        yield stack.enter_context(runner)


def fetch_all_histories(
    connection: RTConnection,
    tickets: list[TicketSummary],
    *,
    concurrency: int,
    chunk_size: int,
    on_missing_ticket: str,
    refresh: bool,
    task_runner: str = "threads",
    dask_address: str | None = None,
    dask_workers: int = 2,
) -> list[ChunkResult]:
    """Step 2: chunks of tickets mapped over a task runner, a thread pool inside each chunk.

    With `dask`, the chunk tasks go to a Dask cluster and stay task runs of this flow run (a
    subflow would store the ticket list and the connection as its parameters in the API); the
    rest of the flow runs here either way.
    """
    progress = FetchProgress(len(tickets))
    fetch = partial(
        _fetch_chunks,
        connection=connection,
        tickets=tickets,
        progress=progress,
        concurrency=concurrency,
        chunk_size=chunk_size,
        on_missing_ticket=on_missing_ticket,
        refresh=refresh,
    )
    if task_runner != "dask" or not tickets:
        return fetch(_submit_here, chunks_in_flight=CHUNKS_IN_FLIGHT)
    with dask_task_runner(dask_address, dask_workers) as runner:
        client = runner.client
        client.run(_guard_worker_logs, _secrets(connection))
        slots = sum(client.nthreads().values())
        get_run_logger().info(
            "fetching %d tickets on Dask (%d worker threads)", len(tickets), slots
        )
        return fetch(runner.submit, chunks_in_flight=slots)


@flow(
    name="rt-to-displayr",
    flow_run_name=_run_name,
    # Prefect 3.9's hints type an unparametrized ThreadPoolTaskRunner as TaskRunner[Never].
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNKS_IN_FLIGHT),  # type: ignore[arg-type]
    validate_parameters=True,
)
def rt_to_displayr(
    query: str = DEFAULT_QUERY,
    data_name: str | None = None,
    dry_run: bool = False,
    partial: bool = False,
    abort: Literal["OnWarning", "Never"] = "OnWarning",
    output: str = DEFAULT_OUTPUT,
    concurrency: int = 8,
    chunk_size: int = 250,
    row_numbers: bool = True,
    staff: Literal["name", "privileged"] = "name",
    full_refresh: bool = False,
    state_dir: str | None = None,
    allow_shrink: bool = False,
    allow_empty: bool = False,
    max_drop: float = 0.5,
    on_missing_ticket: Literal["skip", "fail"] = "skip",
    search_range_size: int | None = None,
    task_runner: Literal["threads", "dask"] = "threads",
    dask_address: str | None = None,
    dask_workers: int = 2,
) -> dict[str, Any]:
    """Publish one row of responsiveness metrics per RT ticket matching `query` to Displayr.

    Args:
        query: TicketSQL selecting the tickets (default: all resolved).
        data_name: Displayr data set to update (default `DISPLAYR_DATA_NAME` or
            `rt-ticket-history.csv`). Point a test query at its own data set, or use `dry_run`.
        dry_run: stop after writing the CSV; nothing is uploaded.
        partial: Displayr's `partial` import flag.
        abort: `OnWarning` (Displayr refuses an import that raises warnings) or `Never`.
        output: where the CSV is written (atomically; the last good file survives a failure).
        concurrency: parallel requests to RT.
        chunk_size: tickets per Prefect task (the unit of retry and caching).
        row_numbers: keep R `write.csv`'s leading row-number column (the legacy layout).
        staff: `name` (a sender without `@` is staff) or `privileged` (RT's privileged users).
        full_refresh: ignore the incremental state and fetch every history again.
        state_dir: where the incremental state lives (default `RT_DISPLAYR_STATE_DIR` or
            `~/.rt-displayr/state`).
        allow_shrink: publish even if the row count fell by more than `max_drop`.
        allow_empty: publish even an empty result.
        max_drop: largest accepted fall in rows from the last published run (0.5 = 50 %).
        on_missing_ticket: `skip` (warn, count in the summary) or `fail` when a listed ticket
            was deleted or hidden before its history was fetched.
        search_range_size: split the search into id ranges of this many tickets (very large RTs).
        task_runner: where the history chunks are fetched: `threads` in this process, or `dask`
            (needs the `dask` extra) on a Dask cluster; everything else runs here.
        dask_address: scheduler of a running Dask cluster (`tcp://host:8786`); its workers need
            rt-displayr installed, PREFECT_API_URL set to this server and result storage
            shared with this machine. Default: a local cluster started for the run.
        dask_workers: worker processes of that local cluster.
    """
    started = time.monotonic()
    install_log_redaction()
    logger = get_run_logger()
    summary: dict[str, Any] = {
        "status": "dry run" if dry_run else "published",
        "query": query,
        "data_name": data_name,
        "dry_run": dry_run,
        "task_runner": _runner_label(task_runner, dask_address, dask_workers),
        "csv": None,
        "upload_id": None,
        "displayr_message": None,
    }
    frame = None
    try:
        _check_parameters(concurrency, chunk_size, abort, staff, on_missing_ticket, max_drop)
        _check_runner(task_runner, dask_address, dask_workers)
        rt = resolve_rt_connection()
        displayr = None if dry_run else resolve_displayr_connection()
        data_name = summary["data_name"] = resolve_data_name(data_name)
        state_dir = state_dir or str(default_state_dir())
        scope = {"state_dir": state_dir, "rt_url": rt.url, "query": query, "data_name": data_name}

        listing = list_tickets(rt, query, search_range_size)
        tickets = listing.tickets
        fetch_plan, last_published = plan_fetch(
            **scope, tickets=opaque(tickets), full_refresh=full_refresh
        )
        summary.update(
            new=fetch_plan.new,
            changed=fetch_plan.changed,
            unchanged=fetch_plan.unchanged,
            removed=fetch_plan.removed,
        )
        chunks = fetch_all_histories(
            rt,
            list(fetch_plan.fetch),
            concurrency=concurrency,
            chunk_size=chunk_size,
            on_missing_ticket=on_missing_ticket,
            refresh=full_refresh,
            task_runner=task_runner,
            dask_address=dask_address,
            dask_workers=dask_workers,
        )
        missing = sorted(ticket_id for chunk in chunks for ticket_id in chunk.missing)
        summary["missing"] = missing
        summary["rt_requests"] = listing.requests + sum(chunk.requests for chunk in chunks)
        facts: list[TicketFacts] = list(fetch_plan.reuse)
        facts += [item for chunk in chunks for item in chunk.facts]
        facts.sort(key=lambda item: item.ticket.id)

        privileged = None
        if staff == "privileged":
            privileged = lookup_privileged_staff(rt, sorted(staff_names(facts)))
        frame = validate_metrics_frame(opaque(build_metrics(opaque(facts), privileged)))
        summary["rows"] = len(frame)

        if not dry_run:
            check_publishable(
                len(frame),
                last_published,
                max_drop=max_drop,
                allow_shrink=allow_shrink,
                allow_empty=allow_empty,
            )
        if displayr is None:
            summary["csv"] = write_metrics_csv(opaque(frame), output, row_numbers)
        else:
            pending = write_metrics_csv(opaque(frame), pending_path(output), row_numbers)
            upload_id = upload_csv(displayr, pending, data_name)
            summary["upload_id"] = upload_id
            summary["displayr_message"] = import_data(
                displayr, data_name, upload_id, partial, abort
            )
            summary["csv"] = promote_csv(pending, str(Path(output).resolve()))
            publish_link(displayr.url, data_name)
        commit_state(**scope, facts=opaque(facts), published_rows=None if dry_run else len(frame))
    except Exception as exc:
        summary["status"] = "failed"
        summary["error"] = failure_line(exc)
        summary["duration_seconds"] = time.monotonic() - started
        publish_summary(summary, frame)
        raise
    summary["duration_seconds"] = time.monotonic() - started
    publish_summary(summary, frame)
    logger.info(
        "%s %d rows (%d new, %d changed, %d unchanged, %d skipped) in %.1f s",
        "wrote" if dry_run else "published",
        summary["rows"],
        summary["new"],
        summary["changed"],
        summary["unchanged"],
        len(missing),
        summary["duration_seconds"],
    )
    return summary
