from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rt_displayr.errors import ConfigError
from rt_displayr.models import Mail, TicketFacts, TicketSummary, parse_rt_utc
from rt_displayr.state import TicketStore, default_state_dir, plan, scope_key

RT = "https://rt.example.com/rt"
QUERY = "Queue = 'General' AND Created > '2026-01-01'"
DATA = "rt-ticket-history.csv"


def summary(ticket_id: int, last_updated: str = "Fri Dec 04 11:06:42 2026", **changes: str):
    base = TicketSummary(
        id=ticket_id,
        queue="General",
        owner="jdoe",
        subject=f"Ticket {ticket_id} — café",
        requestors="alice@example.com, bob@example.org",
        status="resolved",
        last_updated=last_updated,
    )
    return replace(base, **changes)


CREATED = parse_rt_utc("2026-12-04 16:00:00")
RESOLVED = parse_rt_utc("2026-12-05 09:00:00")
MAILS = (
    Mail("Create", "alice@example.com", CREATED),
    Mail("Correspond", "root", parse_rt_utc("2026-12-04 16:10:00")),
)


def facts_for(ticket: TicketSummary) -> TicketFacts:
    return TicketFacts(
        ticket=ticket,
        mails=MAILS,
        created=CREATED,
        resolved=None if ticket.id % 2 else RESOLVED,
        dispatcher="root",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TicketStore]:
    with TicketStore.open(tmp_path, rt_url=RT, query=QUERY, data_name=DATA) as opened:
        yield opened


def reopen(tmp_path: Path, **scope: str) -> TicketStore:
    return TicketStore.open(
        tmp_path,
        rt_url=scope.get("rt_url", RT),
        query=scope.get("query", QUERY),
        data_name=scope.get("data_name", DATA),
    )


def test_default_state_dir_honours_the_environment(tmp_path: Path) -> None:
    assert default_state_dir({"RT_DISPLAYR_STATE_DIR": str(tmp_path)}) == tmp_path
    assert default_state_dir({}) == Path("~/.rt-displayr/state").expanduser()


def test_new_store_is_empty_and_has_no_publication(store: TicketStore) -> None:
    assert store.load() == {}
    assert store.last_published_rows() is None
    assert store.last_committed_at() is None
    assert store.scope == {"rt_url": RT, "query": QUERY, "data_name": DATA}


def test_round_trip_survives_reopen(tmp_path: Path, store: TicketStore) -> None:
    saved = [facts_for(summary(n)) for n in (3, 1, 2)]
    assert store.commit(saved, published_rows=3) == 3
    store.close()
    with reopen(tmp_path) as again:
        assert again.load() == {f.ticket.id: f for f in saved}
        assert again.last_published_rows() == 3
        assert again.last_committed_at() is not None


def test_published_rows_is_kept_when_not_given(store: TicketStore) -> None:
    store.commit([facts_for(summary(1))], published_rows=1)
    store.commit([facts_for(summary(1)), facts_for(summary(2))])
    assert store.last_published_rows() == 1
    assert set(store.load()) == {1, 2}


def test_plan_counts_new_changed_unchanged_removed() -> None:
    stored = {n: facts_for(summary(n)) for n in (1, 2, 3, 4)}
    fresh = [
        summary(1),  # unchanged
        summary(2, last_updated="Sat Dec 05 08:00:00 2026"),  # changed
        summary(3),  # unchanged
        summary(5),  # new
        summary(5),  # listed twice: counted once
    ]  # 4 left the query
    result = plan(fresh, stored)
    assert [s.id for s in result.fetch] == [2, 5]
    assert [f.ticket.id for f in result.reuse] == [1, 3]
    assert result.reuse[0] is stored[1]
    assert (result.new, result.changed, result.unchanged, result.removed) == (1, 1, 2, 1)
    assert result.describe() == (
        "2 tickets to fetch (1 new, 1 changed), 2 unchanged from the store, 1 left the query"
    )


def test_plan_reuse_takes_the_fresh_summary() -> None:
    # A queue rename does not touch the ticket's LastUpdated.
    stored = {1: facts_for(summary(1))}
    result = plan([summary(1, queue="Helpdesk")], stored)
    assert result.fetch == ()
    assert result.reuse[0].ticket.queue == "Helpdesk"
    assert result.reuse[0].mails == stored[1].mails


def test_plan_on_empty_store_fetches_everything() -> None:
    result = plan([summary(1), summary(2)], {})
    assert [s.id for s in result.fetch] == [1, 2]
    assert (result.new, result.changed, result.unchanged, result.removed) == (2, 0, 0, 0)


def test_commit_removes_tickets_that_left_the_query(tmp_path: Path, store: TicketStore) -> None:
    store.commit([facts_for(summary(n)) for n in (1, 2, 3)])
    stored = store.load()
    fetch_plan = plan([summary(1), summary(3, last_updated="later")], stored)
    refreshed = [facts_for(s) for s in fetch_plan.fetch]
    store.commit([*fetch_plan.reuse, *refreshed], published_rows=2)
    store.close()
    with reopen(tmp_path) as again:
        loaded = again.load()
        assert set(loaded) == {1, 3}
        assert loaded[3].ticket.last_updated == "later"


def test_scopes_never_mix(tmp_path: Path, store: TicketStore) -> None:
    store.commit([facts_for(summary(1))], published_rows=1)
    with reopen(tmp_path, query="Queue = 'Test'") as test_scope:
        assert test_scope.load() == {}
        assert test_scope.last_published_rows() is None
        test_scope.commit([facts_for(summary(99))])
    with reopen(tmp_path, data_name="other.csv") as other_data:
        assert other_data.load() == {}
    with reopen(tmp_path, rt_url="https://rt.other.example") as other_rt:
        assert other_rt.load() == {}
    assert set(store.load()) == {1}
    assert len(list(tmp_path.glob("*.sqlite3"))) == 4


def test_trailing_slash_is_the_same_scope() -> None:
    assert scope_key(RT + "/", QUERY, DATA) == scope_key(RT, QUERY, DATA)
    assert scope_key(RT, QUERY, DATA) != scope_key(RT, QUERY + " ", DATA + "x")


def test_a_file_of_another_scope_is_refused(tmp_path: Path, store: TicketStore) -> None:
    path = store.path
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'something else' WHERE key = 'query'")
    db.close()
    with pytest.raises(ConfigError, match="belongs to another scope"):
        reopen(tmp_path)


def test_nothing_is_visible_without_commit(tmp_path: Path, store: TicketStore) -> None:
    store.commit([facts_for(summary(1))], published_rows=1)
    stored = store.load()
    plan([summary(1, last_updated="later"), summary(2)], stored)  # a run that dies here
    store.close()
    with reopen(tmp_path) as again:
        assert again.load() == stored
        assert again.last_published_rows() == 1


def test_a_commit_that_fails_half_way_changes_nothing(tmp_path: Path, store: TicketStore) -> None:
    before = [facts_for(summary(n)) for n in (1, 2, 3)]
    store.commit(before, published_rows=3)

    def dying_run() -> Iterator[TicketFacts]:
        yield facts_for(summary(1, last_updated="later"))
        yield facts_for(summary(4))
        raise KeyboardInterrupt  # killed mid-commit

    with pytest.raises(KeyboardInterrupt):
        store.commit(dying_run(), published_rows=2)
    store.close()
    with reopen(tmp_path) as again:
        assert again.load() == {f.ticket.id: f for f in before}
        assert again.last_published_rows() == 3


def test_readers_see_the_last_committed_state(tmp_path: Path, store: TicketStore) -> None:
    store.commit([facts_for(summary(1))])
    with reopen(tmp_path) as reader:
        assert set(reader.load()) == {1}
        store.commit([facts_for(summary(2))])
        assert set(reader.load()) == {2}


def test_an_unreadable_record_is_refetched_not_fatal(store: TicketStore) -> None:
    store.commit([facts_for(summary(1)), facts_for(summary(2))])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE tickets SET facts = '{\"broken\": true}' WHERE id = 2")
    db.close()
    loaded = store.load()
    assert set(loaded) == {1}
    assert [s.id for s in plan([summary(1), summary(2)], loaded).fetch] == [2]


def test_hundred_thousand_tickets_commit_and_load(tmp_path: Path, store: TicketStore) -> None:
    count = 100_000
    assert store.commit((facts_for(summary(n)) for n in range(1, count + 1)), published_rows=count)
    # The next run: most unchanged, a few changed, a few gone.
    stored = store.load()
    assert len(stored) == count
    fresh = [summary(n) for n in range(1, count - 9)]
    fresh[0] = summary(1, last_updated="later")
    fetch_plan = plan(fresh, stored)
    assert (fetch_plan.changed, fetch_plan.unchanged, fetch_plan.removed) == (1, count - 11, 10)
    kept = store.commit([*fetch_plan.reuse, *(facts_for(s) for s in fetch_plan.fetch)])
    assert kept == count - 10
    store.close()
    with reopen(tmp_path) as again:
        loaded = again.load()
        assert len(loaded) == count - 10
        assert loaded[1].ticket.last_updated == "later"
        assert count not in loaded
