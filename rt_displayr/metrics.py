"""Turn each ticket's facts into one row of the Displayr data set.

Pure functions only: no RT, no I/O. The column names and their order are fixed by the existing
Displayr data set (dashboards refer to them by name), so `COLUMNS` must never be reordered or
renamed. Every time column is a UTC string `YYYY-MM-DD HH:MM:SS`, or "" when the event never
happened, because the legacy CSV carried text and Displayr parses it as such.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from rt_displayr.models import RT_UTC_FORMAT, TicketFacts

COLUMNS = [
    "TicketID",
    "RTQueue",
    "Owner",
    "EmailReceivedTimeUTC",
    "Requestors",
    "ResolvedTimeUTC",
    "NumClientEmails",
    "NumStaffEmails",
    "StaffEmailers",
    "FirstResponseTimeUTC",
    "LastResponseTimeUTC",
    "Subject",
    "EmailSenderChain",
    "Dispatcher",
]
TIME_COLUMNS = [
    "EmailReceivedTimeUTC",
    "ResolvedTimeUTC",
    "FirstResponseTimeUTC",
    "LastResponseTimeUTC",
]
INT_COLUMNS = ["TicketID", "NumClientEmails", "NumStaffEmails"]
# Separator inside EmailSenderChain and StaffEmailers, as in the legacy data set.
CHAIN_SEPARATOR = ","

StaffRule = Callable[[str], bool]
"""Decides from a transaction's creator (an RT user name) whether the mail came from staff."""


def is_staff_by_name(creator: str) -> bool:
    """Staff unless the name is an e-mail address.

    RT auto-creates an unprivileged user for every new requestor and names it after the address,
    while staff log in with short user names; so an `@` is the cheapest reliable client marker on
    sites where staff do not log in with their addresses.
    """
    return "@" not in creator


def privileged_staff_rule(privileged_names: Collection[str]) -> StaffRule:
    """Staff = the given RT privileged users, for sites whose staff log in with e-mail addresses.

    Compared case-insensitively because RT user names are (mail from `Jane@Example.com` is the
    user `jane@example.com`).
    """
    names = frozenset(name.casefold() for name in privileged_names)

    def is_staff(creator: str) -> bool:
        return creator.casefold() in names

    return is_staff


def format_utc(value: datetime | None) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, or "" for an event that did not happen.

    A naive datetime is taken as UTC (every instant in TicketFacts comes from RT history, which is
    UTC), never as the host's local time.
    """
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(RT_UTC_FORMAT)


def ticket_row(facts: TicketFacts, is_staff: StaffRule) -> dict[str, Any]:
    """One data set row for one ticket, keys in `COLUMNS` order."""
    chain: list[str] = []
    staff_emailers: list[str] = []
    first_response: datetime | None = None
    last_response: datetime | None = None
    for mail in facts.mails:
        chain.append(mail.creator)
        if not is_staff(mail.creator):
            continue
        staff_emailers.append(mail.creator)
        # A ticket staff opened themselves starts with a staff Create: that is not a reply.
        if mail.type == "Correspond":
            if first_response is None:
                first_response = mail.created
            last_response = mail.created
    ticket = facts.ticket
    return {
        "TicketID": ticket.id,
        "RTQueue": ticket.queue,
        "Owner": ticket.owner,
        "EmailReceivedTimeUTC": format_utc(facts.created),
        "Requestors": ticket.requestors,
        "ResolvedTimeUTC": format_utc(facts.resolved),
        "NumClientEmails": len(chain) - len(staff_emailers),
        "NumStaffEmails": len(staff_emailers),
        "StaffEmailers": CHAIN_SEPARATOR.join(staff_emailers),
        "FirstResponseTimeUTC": format_utc(first_response),
        "LastResponseTimeUTC": format_utc(last_response),
        "Subject": ticket.subject,
        "EmailSenderChain": CHAIN_SEPARATOR.join(chain),
        "Dispatcher": facts.dispatcher,
    }


def metrics_frame(facts: Iterable[TicketFacts], is_staff: StaffRule) -> pd.DataFrame:
    """The whole data set, sorted by TicketID, with exactly `COLUMNS`.

    Built column-wise from plain lists and converted once: appending rows to a DataFrame is
    quadratic, and 100,000 tickets must fit comfortably in a small worker.
    """
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for one in facts:
        for name, value in ticket_row(one, is_staff).items():
            columns[name].append(value)
    frame = pd.DataFrame(
        {
            name: pd.Series(values, dtype="int64" if name in INT_COLUMNS else "str")
            for name, values in columns.items()
        },
        columns=COLUMNS,
    )
    return frame.sort_values("TicketID", kind="stable", ignore_index=True)


def staff_names(facts: Iterable[TicketFacts] | TicketFacts) -> set[str]:
    """Every distinct mail creator: the names whose privilege the caller must look up once each.

    All creators are candidates because on e-mail-login sites a staff member's name looks exactly
    like a client's address; only RT's privileged flag tells them apart.
    """
    tickets = [facts] if isinstance(facts, TicketFacts) else facts
    return {mail.creator for one in tickets for mail in one.mails if mail.creator}


def _response_minutes(df: pd.DataFrame) -> pd.Series:
    """Minutes from receipt to first staff reply, NaN where either is missing."""
    received = pd.to_datetime(df["EmailReceivedTimeUTC"], format=RT_UTC_FORMAT, errors="coerce")
    first = pd.to_datetime(df["FirstResponseTimeUTC"], format=RT_UTC_FORMAT, errors="coerce")
    return (first - received).dt.total_seconds() / 60.0


def queue_summary(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per queue: ticket count, answered count and median minutes to first response.

    For the run's summary artifact; `median_first_response_minutes` is None for a queue where no
    ticket got a staff reply. Sorted by queue name.
    """
    minutes = _response_minutes(df)
    summary: list[dict[str, Any]] = []
    for queue, index in sorted(df.groupby("RTQueue", sort=False).groups.items()):
        answered = minutes.loc[index].dropna()
        summary.append(
            {
                "queue": str(queue),
                "tickets": len(index),
                "answered": len(answered),
                "median_first_response_minutes": (
                    round(float(answered.median()), 1) if len(answered) else None
                ),
            }
        )
    return summary


def weekly_first_response(df: pd.DataFrame) -> list[tuple[str, float]]:
    """Median minutes to first response per week (Monday, ISO date) the tickets were received.

    Weeks in which no received ticket got a staff reply are left out rather than reported as 0,
    which would read as instant service. Sorted by week.
    """
    minutes = _response_minutes(df)
    by_week: dict[date, list[float]] = defaultdict(list)
    for received, value in zip(df["EmailReceivedTimeUTC"], minutes, strict=True):
        if not received or pd.isna(value):
            continue
        day = datetime.strptime(received, RT_UTC_FORMAT).date()
        by_week[day - timedelta(days=day.weekday())].append(float(value))
    return [
        (week.isoformat(), round(statistics.median(values), 1))
        for week, values in sorted(by_week.items())
    ]
