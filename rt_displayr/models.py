"""Plain data passed between the RT client, the metric derivation, the store and the Prefect tasks.

Everything here is a frozen dataclass of builtins so that it pickles (Dask workers, Prefect result
storage), hashes (Prefect cache keys) and round-trips through JSON (the incremental ticket store).
No module here imports Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RT_UTC_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class TicketSummary:
    """One ticket as RT's search lists it (`search/ticket?format=l&fields=...`).

    Dates from search are in the RT account's local time zone with no offset, so they are kept
    only as RT's text: `last_updated` is compared verbatim as the change key, never converted.
    """

    id: int
    queue: str
    owner: str
    subject: str
    requestors: str
    status: str
    last_updated: str


@dataclass(frozen=True, slots=True)
class Transaction:
    """One entry of `ticket/<id>/history?format=l`. `created` is UTC: RT prints history dates in UTC."""

    id: int
    type: str
    creator: str
    created: datetime
    description: str = ""
    field: str = ""
    old_value: str = ""
    new_value: str = ""
    attachment_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Mail:
    """A mail to or from the client: a `Create` or `Correspond` transaction (comments are not mail)."""

    type: str
    creator: str
    created: datetime


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """Everything the metrics need from one ticket, and no more.

    Small on purpose: one of these is stored per ticket for incremental runs, keyed by
    (ticket.id, ticket.last_updated), so a rerun rebuilds unchanged rows without asking RT.
    `created`/`resolved` are UTC instants from the history (the Create transaction and the last
    status change to `resolved`), never the local-time dates RT's search prints.
    """

    ticket: TicketSummary
    mails: tuple[Mail, ...]
    created: datetime | None
    resolved: datetime | None
    dispatcher: str = ""
    requests_made: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket": {
                "id": self.ticket.id,
                "queue": self.ticket.queue,
                "owner": self.ticket.owner,
                "subject": self.ticket.subject,
                "requestors": self.ticket.requestors,
                "status": self.ticket.status,
                "last_updated": self.ticket.last_updated,
            },
            "mails": [[m.type, m.creator, _dump_time(m.created)] for m in self.mails],
            "created": _dump_time(self.created),
            "resolved": _dump_time(self.resolved),
            "dispatcher": self.dispatcher,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TicketFacts:
        return cls(
            ticket=TicketSummary(**data["ticket"]),
            mails=tuple(
                Mail(type=t, creator=c, created=_load_time(at))  # type: ignore[arg-type]
                for t, c, at in data["mails"]
            ),
            created=_load_time(data["created"]),
            resolved=_load_time(data["resolved"]),
            dispatcher=data.get("dispatcher", ""),
        )


def parse_rt_utc(text: str) -> datetime:
    """Parse a history/attachment date (`2026-12-04 16:06:41`), which RT prints in UTC."""
    # fromisoformat reads exactly this layout ~10x faster than strptime: a rerun parses every
    # stored date of every ticket.
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dump_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime(RT_UTC_FORMAT)


def _load_time(text: str | None) -> datetime | None:
    return None if text is None else parse_rt_utc(text)
