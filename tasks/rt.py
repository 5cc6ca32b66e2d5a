"""Steps 1 and 2 of the pipeline: list the tickets, then fetch their histories in chunks.

One Prefect task per ticket would cost ~4 ms of client CPU each and flood the Prefect server
with events at a few thousand tickets, so a task fetches a whole chunk with a thread pool inside
it; the chunk is also the unit of retry and of Prefect's result cache.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE

from rt_displayr.errors import RTTicketUnavailable
from rt_displayr.extract import fetch_ticket_facts
from rt_displayr.models import TicketFacts, TicketSummary
from rt_displayr.rt.client import RTClient
from rt_displayr.settings import RTConnection
from tasks.retry import TASK_RETRIES, TASK_RETRY_DELAYS, TASK_RETRY_JITTER, retry_on_transient


class ChunkAborted(Exception):
    """A ticket left unfetched because another ticket of its chunk already failed it."""


@dataclass
class ChunkResult:
    """What one chunk brought back: the facts, the tickets RT no longer shows, the request count."""

    facts: list[TicketFacts]
    missing: list[int] = field(default_factory=list)
    requests: int = 0


@dataclass
class TicketListing:
    """Step 1's answer, with the requests it took (a login and any id-range searches count)."""

    tickets: list[TicketSummary]
    requests: int


@task(
    name="list-tickets",
    task_run_name="list-tickets [{query}]",
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS,
    retry_jitter_factor=TASK_RETRY_JITTER,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def list_tickets(
    connection: RTConnection, query: str, range_size: int | None = None
) -> TicketListing:
    """Step 1: one search request for every matching ticket (or id ranges on a very large RT)."""
    logger = get_run_logger()
    with RTClient(connection) as client:
        listing = TicketListing(client.search(query, range_size=range_size), client.requests_made)
    logger.info(
        "RT lists %d tickets for %s (%d requests)", len(listing.tickets), query, listing.requests
    )
    return listing


@task(
    name="fetch-histories",
    task_run_name="fetch-histories [{label}]",
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS,
    retry_jitter_factor=TASK_RETRY_JITTER,
    retry_condition_fn=retry_on_transient,
    # The chunk's tickets with their LastUpdated, and the RT URL and account, are the cache key:
    # a retried run does not ask RT again for chunks it already has. The connection object (and
    # its secrets) stays out of the key; `rt_account` names the account without its secret.
    cache_policy=INPUTS - "connection" - "concurrency",
    cache_expiration=timedelta(days=1),
    persist_result=True,
)
def fetch_histories(
    connection: RTConnection,
    rt_account: str,
    tickets: list[TicketSummary],
    label: str,
    concurrency: int = 8,
    on_missing_ticket: str = "skip",
) -> ChunkResult:
    """Step 2 for one chunk: each ticket's history (and one attachment for the dispatcher)."""
    logger = get_run_logger()
    result = ChunkResult(facts=[])
    failed = threading.Event()

    def fetch(client: RTClient, ticket: TicketSummary) -> TicketFacts:
        # Once one ticket has failed the chunk, a worker thread takes no new ticket: each would
        # only repeat a rejected credential or a dead RT before the pool is shut down.
        if failed.is_set():
            raise ChunkAborted(f"ticket {ticket.id} not fetched: the chunk already failed")
        try:
            return fetch_ticket_facts(client, ticket)
        except RTTicketUnavailable:
            if on_missing_ticket != "skip":
                failed.set()
            raise
        except BaseException:
            failed.set()
            raise

    with (
        RTClient(connection, pool_size=concurrency) as client,
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rt-fetch") as pool,
    ):
        futures = {pool.submit(fetch, client, ticket): ticket for ticket in tickets}
        for future in as_completed(futures):
            ticket = futures[future]
            try:
                result.facts.append(future.result())
            except RTTicketUnavailable as exc:
                if on_missing_ticket != "skip":
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                logger.warning("skipping ticket %d: %s", ticket.id, exc)
                result.missing.append(ticket.id)
            except ChunkAborted:
                continue  # the ticket that failed the chunk raises in its own turn
            except BaseException:
                # The chunk has failed (and a retry refetches all of it).
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        result.requests = client.requests_made
    result.facts.sort(key=lambda facts: facts.ticket.id)
    logger.info(
        "fetched %d histories in %d requests (%d skipped)",
        len(result.facts),
        result.requests,
        len(result.missing),
    )
    return result


@task(
    name="lookup-privileged-staff",
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def lookup_privileged_staff(connection: RTConnection, names: list[str]) -> list[str]:
    """For sites whose staff log in with e-mail addresses: one `user/<name>` per distinct sender."""
    with RTClient(connection) as client:
        return sorted(name for name in names if client.is_privileged(name))
