"""The RT → Displayr flow: list, fetch, derive, validate, write, upload, import.

Run it locally (`rt-displayr run`), from a deployment on a schedule, or from the Prefect UI.
Nothing is published, and the incremental state does not advance, unless every step before
succeeded: a failed run leaves the last good CSV, the dashboard data and the state as they were.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from rt_displayr.errors import ConfigError
from rt_displayr.guard import check_publishable
from rt_displayr.metrics import staff_names
from rt_displayr.models import TicketFacts, TicketSummary
from rt_displayr.redact import install_log_redaction
from rt_displayr.settings import RTConnection
from rt_displayr.state import default_state_dir
from tasks.config import resolve_data_name, resolve_displayr_connection, resolve_rt_connection
from tasks.metrics import build_metrics, validate_metrics_frame
from tasks.observe import FetchProgress, publish_link, publish_summary
from tasks.publish import import_data, pending_path, promote_csv, upload_csv, write_metrics_csv
from tasks.rt import ChunkResult, fetch_histories, list_tickets, lookup_privileged_staff
from tasks.state import commit_state, plan_fetch

DEFAULT_QUERY = "Status='resolved'"
DEFAULT_OUTPUT = "out/rt-ticket-history.csv"
# Two chunk tasks in flight overlap one chunk's slow tail with the next chunk's start.
CHUNKS_IN_FLIGHT = 2


def _run_name() -> str:
    parameters = flow_run.parameters or {}
    mode = "dry run" if parameters.get("dry_run") else "publish"
    target = parameters.get("data_name") or "default data set"
    return f"{mode}: {parameters.get('query', DEFAULT_QUERY)} → {target}"


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
    if abort not in ("OnWarning", "Never"):
        raise ConfigError(f"abort must be OnWarning or Never, got {abort!r}")
    if staff not in ("name", "privileged"):
        raise ConfigError(f"staff must be 'name' or 'privileged', got {staff!r}")
    if on_missing_ticket not in ("skip", "fail"):
        raise ConfigError(f"on_missing_ticket must be 'skip' or 'fail', got {on_missing_ticket!r}")
    if not 0 <= max_drop <= 1:
        raise ConfigError(f"max_drop must be a share between 0 and 1, got {max_drop}")


def _chunks(tickets: list[TicketSummary], size: int) -> list[list[TicketSummary]]:
    return [tickets[start : start + size] for start in range(0, len(tickets), size)]


def fetch_all_histories(
    connection: RTConnection,
    tickets: list[TicketSummary],
    *,
    concurrency: int,
    chunk_size: int,
    on_missing_ticket: str,
    refresh: bool,
) -> list[ChunkResult]:
    """Step 2: chunks of tickets mapped over the task runner, a thread pool inside each chunk."""
    progress = FetchProgress(len(tickets))
    threads = max(1, concurrency // CHUNKS_IN_FLIGHT) if concurrency >= CHUNKS_IN_FLIGHT else 1
    task = fetch_histories.with_options(refresh_cache=refresh)
    futures = {}
    for chunk in _chunks(tickets, chunk_size):
        label = f"tickets {chunk[0].id}–{chunk[-1].id} ({len(chunk)})"
        future = task.submit(
            connection,
            f"{connection.url} {connection.account}",
            chunk,
            label,
            concurrency=threads,
            on_missing_ticket=on_missing_ticket,
        )
        futures[future] = len(chunk)
    results = []
    for future in as_completed(list(futures)):
        results.append(future.result())
        progress.advance(futures[future])
    return results


@flow(
    name="rt-to-displayr",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNKS_IN_FLIGHT),
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
    """
    started = time.monotonic()
    install_log_redaction()
    logger = get_run_logger()
    _check_parameters(concurrency, chunk_size, abort, staff, on_missing_ticket, max_drop)
    rt = resolve_rt_connection()
    displayr = None if dry_run else resolve_displayr_connection()
    data_name = resolve_data_name(data_name)
    state_dir = state_dir or str(default_state_dir())
    scope = {"state_dir": state_dir, "rt_url": rt.url, "query": query, "data_name": data_name}

    tickets = list_tickets(rt, query, search_range_size)
    fetch_plan, last_published = plan_fetch(**scope, tickets=tickets, full_refresh=full_refresh)
    chunks = fetch_all_histories(
        rt,
        list(fetch_plan.fetch),
        concurrency=concurrency,
        chunk_size=chunk_size,
        on_missing_ticket=on_missing_ticket,
        refresh=full_refresh,
    )
    missing = sorted(ticket_id for chunk in chunks for ticket_id in chunk.missing)
    facts: list[TicketFacts] = list(fetch_plan.reuse)
    facts += [item for chunk in chunks for item in chunk.facts]
    facts.sort(key=lambda item: item.ticket.id)

    privileged = None
    if staff == "privileged":
        privileged = lookup_privileged_staff(rt, sorted(staff_names(facts)))
    frame = validate_metrics_frame(build_metrics(facts, privileged))

    summary: dict[str, Any] = {
        "status": "dry run" if dry_run else "published",
        "query": query,
        "data_name": data_name,
        "rows": len(frame),
        "new": fetch_plan.new,
        "changed": fetch_plan.changed,
        "unchanged": fetch_plan.unchanged,
        "removed": fetch_plan.removed,
        "missing": missing,
        "rt_requests": 1 + sum(chunk.requests for chunk in chunks),
        "dry_run": dry_run,
        "csv": None,
        "upload_id": None,
        "displayr_message": None,
    }
    if not dry_run:
        check_publishable(
            len(frame),
            last_published,
            max_drop=max_drop,
            allow_shrink=allow_shrink,
            allow_empty=allow_empty,
        )
    if displayr is None:
        summary["csv"] = write_metrics_csv(frame, output, row_numbers)
    else:
        pending = write_metrics_csv(frame, pending_path(output), row_numbers)
        upload_id = upload_csv(displayr, pending, data_name)
        summary["upload_id"] = upload_id
        summary["displayr_message"] = import_data(displayr, data_name, upload_id, partial, abort)
        summary["csv"] = promote_csv(pending, str(Path(output).resolve()))
        publish_link(displayr.url, data_name)
    commit_state(**scope, facts=facts, published_rows=None if dry_run else len(frame))
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
