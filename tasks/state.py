"""Incremental state: which tickets need their history fetched, and advancing the store.

The store is read at the start and written only by `commit_state`, which the flow calls after a
successful publish (or a successful dry run), so a failed or killed run is simply run again.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rt_displayr.models import TicketFacts, TicketSummary
from rt_displayr.state import FetchPlan, TicketStore, plan


@task(name="plan-fetch", cache_policy=NO_CACHE)
def plan_fetch(
    state_dir: str,
    rt_url: str,
    query: str,
    data_name: str,
    tickets: list[TicketSummary],
    full_refresh: bool,
) -> tuple[FetchPlan, int | None]:
    """Compare the search with the stored records; returns the plan and the last published count."""
    store = TicketStore.open(state_dir, rt_url=rt_url, query=query, data_name=data_name)
    try:
        stored = {} if full_refresh else store.load()
        last_published = store.last_published_rows()
    finally:
        store.close()
    fetch_plan = plan(tickets, stored)
    get_run_logger().info(
        "%d tickets: %d new, %d changed, %d unchanged; %d left the query%s",
        len(tickets),
        fetch_plan.new,
        fetch_plan.changed,
        fetch_plan.unchanged,
        fetch_plan.removed,
        " (full refresh)" if full_refresh else "",
    )
    return fetch_plan, last_published


@task(name="commit-state", cache_policy=NO_CACHE)
def commit_state(
    state_dir: str,
    rt_url: str,
    query: str,
    data_name: str,
    facts: list[TicketFacts],
    published_rows: int | None,
) -> None:
    store = TicketStore.open(state_dir, rt_url=rt_url, query=query, data_name=data_name)
    try:
        store.commit(facts, published_rows=published_rows)
    finally:
        store.close()
