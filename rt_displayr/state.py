"""The incremental per-ticket store: what the last successful run learned from RT.

Fetching every ticket's history is the slow part of a run (one request or more per ticket), while
most tickets in a long-running query never change again. A run therefore fetches history only
for tickets that are new or whose LastUpdated differs from the stored one, and rebuilds every
other row from the stored `TicketFacts`.

One SQLite file per scope (RT URL, query, data set name), so a test query or another RT never
mixes with production state. Nothing is written until `commit`, which swaps the whole scope in
one transaction: a failed or killed run leaves the previous state exactly as it was, and the
next run simply redoes its work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from rt_displayr.errors import ConfigError
from rt_displayr.models import TicketFacts, TicketSummary

logger = logging.getLogger(__name__)

STATE_DIR_VARIABLE = "RT_DISPLAYR_STATE_DIR"
DEFAULT_STATE_DIR = "~/.rt-displayr/state"
# Bump when the stored JSON changes incompatibly: an old file is then ignored (full refetch).
FORMAT_VERSION = 1
# How long a writer waits for another process's transaction on the same scope to finish.
_BUSY_TIMEOUT_SECONDS = 60.0


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$RT_DISPLAYR_STATE_DIR`, else `~/.rt-displayr/state`."""
    env = os.environ if env is None else env
    configured = (env.get(STATE_DIR_VARIABLE) or "").strip()
    return Path(configured or DEFAULT_STATE_DIR).expanduser()


def scope_key(rt_url: str, query: str, data_name: str) -> str:
    """Stable file-name-safe id of a scope. A trailing slash on the URL is not a new scope."""
    text = json.dumps([rt_url.strip().rstrip("/"), query.strip(), data_name.strip()])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What this run must ask RT for, and what it can rebuild from the store."""

    fetch: tuple[TicketSummary, ...]
    reuse: tuple[TicketFacts, ...]
    new: int
    changed: int
    unchanged: int
    removed: int

    def describe(self) -> str:
        return (
            f"{len(self.fetch)} tickets to fetch ({self.new} new, {self.changed} changed), "
            f"{self.unchanged} unchanged from the store, {self.removed} left the query"
        )


def plan(summaries: Iterable[TicketSummary], stored: Mapping[int, TicketFacts]) -> FetchPlan:
    """Split the fresh search result into tickets to fetch and facts to reuse.

    A ticket is unchanged when its LastUpdated text equals the stored one (compared verbatim:
    search dates are local time without a zone, so only equality is meaningful). Reused facts get
    the fresh search summary: a renamed queue or user alters the row without touching the
    ticket's LastUpdated, and the summary is free. Stored tickets absent from the search have
    left the query and are dropped. A ticket id listed twice counts once (the first listing).
    """
    fetch: list[TicketSummary] = []
    reuse: list[TicketFacts] = []
    new = changed = 0
    seen: set[int] = set()
    for summary in summaries:
        if summary.id in seen:
            continue
        seen.add(summary.id)
        known = stored.get(summary.id)
        if known is None:
            new += 1
            fetch.append(summary)
        elif known.ticket.last_updated != summary.last_updated:
            changed += 1
            fetch.append(summary)
        else:
            reuse.append(known if known.ticket == summary else replace(known, ticket=summary))
    removed = sum(1 for ticket_id in stored if ticket_id not in seen)
    return FetchPlan(
        fetch=tuple(fetch),
        reuse=tuple(reuse),
        new=new,
        changed=changed,
        unchanged=len(reuse),
        removed=removed,
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    last_updated TEXT NOT NULL,
    facts TEXT NOT NULL
);
"""
_UPSERT = """
INSERT INTO tickets (id, last_updated, facts) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET last_updated = excluded.last_updated, facts = excluded.facts
WHERE tickets.facts IS NOT excluded.facts
"""
_SET_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class TicketStore:
    """The stored facts of one scope. Use `TicketStore.open`; close it (or use `with`)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(
        cls, state_dir: str | os.PathLike[str], *, rt_url: str, query: str, data_name: str
    ) -> TicketStore:
        """Open (creating if needed) the store for this scope under `state_dir`."""
        directory = Path(state_dir).expanduser()
        # Subjects and requestor addresses are personal data: keep the directory private.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{scope_key(rt_url, query, data_name)}.sqlite3"
        # Autocommit mode: every transaction below is explicit, so none is left open by accident.
        connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            store = cls(connection, path)
            store._initialise(
                {
                    "rt_url": rt_url.strip().rstrip("/"),
                    "query": query.strip(),
                    "data_name": data_name.strip(),
                }
            )
        except BaseException:
            connection.close()
            raise
        return store

    def _initialise(self, scope: dict[str, str]) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, FORMAT_VERSION):
                logger.warning(
                    "ticket store %s has format %s, expected %s: starting afresh",
                    self.path,
                    version,
                    FORMAT_VERSION,
                )
                self._db.execute("DELETE FROM tickets")
                self._db.execute("DELETE FROM meta")
            self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            stored = self._meta()
            for key, value in scope.items():
                if key not in stored:
                    self._db.execute(_SET_META, (key, value))
                elif stored[key] != value:
                    raise ConfigError(
                        f"ticket store {self.path} belongs to another scope ({key} differs); "
                        "move it aside or point RT_DISPLAYR_STATE_DIR elsewhere"
                    )

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @property
    def scope(self) -> dict[str, str]:
        """The human-readable scope (rt_url, query, data_name) this file belongs to."""
        meta = self._meta()
        return {key: meta[key] for key in ("rt_url", "query", "data_name") if key in meta}

    def load(self) -> dict[int, TicketFacts]:
        """Every stored ticket's facts, by id, as of the last commit.

        A record that no longer decodes is skipped with a warning: that ticket is then simply
        fetched again, which is cheaper than failing the run.
        """
        facts: dict[int, TicketFacts] = {}
        for ticket_id, text in self._db.execute("SELECT id, facts FROM tickets"):
            try:
                facts[ticket_id] = TicketFacts.from_json(json.loads(text))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning(
                    "ticket %s: stored facts unreadable (%s), refetching", ticket_id, exc
                )
        return facts

    def commit(self, facts: Iterable[TicketFacts], *, published_rows: int | None = None) -> int:
        """Make `facts` the scope's whole content, in one transaction; return how many are stored.

        Tickets not in `facts` are deleted (they left the query); the rest are upserted. Records
        the commit time and, when given, the row count just published (for the shrink guard).
        If anything fails, including the iteration of `facts`, nothing changes.
        """
        kept: set[int] = set()

        def rows() -> Iterator[tuple[int, str, str]]:
            for one in facts:
                kept.add(one.ticket.id)
                text = json.dumps(one.to_json(), ensure_ascii=False, separators=(",", ":"))
                yield one.ticket.id, one.ticket.last_updated, text

        with self._transaction():
            existing = [row[0] for row in self._db.execute("SELECT id FROM tickets")]
            self._db.executemany(_UPSERT, rows())
            self._db.executemany(
                "DELETE FROM tickets WHERE id = ?",
                ((ticket_id,) for ticket_id in existing if ticket_id not in kept),
            )
            self._db.execute(_SET_META, ("committed_at", datetime.now(UTC).isoformat()))
            self._db.execute(_SET_META, ("committed_tickets", str(len(kept))))
            if published_rows is not None:
                self._db.execute(_SET_META, ("published_rows", str(int(published_rows))))
        return len(kept)

    def last_published_rows(self) -> int | None:
        """Row count of the last published data set in this scope, if any was recorded."""
        value = self._meta().get("published_rows")
        return None if value is None else int(value)

    def last_committed_at(self) -> datetime | None:
        value = self._meta().get("committed_at")
        return None if value is None else datetime.fromisoformat(value)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TicketStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (a KeyboardInterrupt included).

    IMMEDIATE takes the write lock up front, so two runs on one scope queue up instead of one
    failing half-way with "database is locked"; readers keep seeing the last committed state.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
