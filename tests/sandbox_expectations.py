"""Expected metric rows computed from the simulator's own ticket model, not from the code under test.

The simulator keeps every ticket as plain data (who wrote what, when, which mail had a BCC); this
module reads that model directly and applies the column definitions from the README, so a
mistake in the wire parser, the extraction or the metric derivation shows up as a mismatch.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from rt_displayr.sandbox.rt_data import SimRT, SimTicket

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


def utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def expected_row(sim: SimRT, ticket: SimTicket, *, privileged: bool = False) -> dict[str, str]:
    """`privileged`: staff are the simulator's privileged users, else senders without `@`."""
    mails = [t for t in ticket.transactions if t.type in ("Create", "Correspond")]
    chain = [t.creator for t in mails]
    staff = [t for t in mails if (sim.is_staff(t.creator) if privileged else "@" not in t.creator)]
    staff_replies = [t for t in staff if t.type == "Correspond"]
    create = next(t for t in ticket.transactions if t.type == "Create")
    resolutions = [
        t for t in ticket.transactions if t.type == "Status" and t.new_value == "resolved"
    ]
    email_records = [t for t in ticket.transactions if t.type == "EmailRecord"]
    return {
        "TicketID": str(ticket.id),
        "RTQueue": ticket.queue,
        "Owner": ticket.owner,
        "EmailReceivedTimeUTC": utc(create.created),
        "Requestors": sim.requestor_addresses(ticket),
        "ResolvedTimeUTC": utc(resolutions[-1].created if resolutions else create.created),
        "NumClientEmails": str(len(chain) - len(staff)),
        "NumStaffEmails": str(len(staff)),
        "StaffEmailers": ",".join(t.creator for t in staff),
        "FirstResponseTimeUTC": utc(staff_replies[0].created) if staff_replies else "",
        "LastResponseTimeUTC": utc(staff_replies[-1].created) if staff_replies else "",
        "Subject": ticket.subject,
        "EmailSenderChain": ",".join(chain),
        "Dispatcher": email_records[0].bcc if email_records else "",
    }


def expected_rows(
    sim: SimRT, status: str = "resolved", *, privileged: bool = False
) -> list[dict[str, str]]:
    return [
        expected_row(sim, ticket, privileged=privileged)
        for ticket in sorted(sim.tickets.values(), key=lambda t: t.id)
        if ticket.status == status and not ticket.deleted and not ticket.hidden
    ]


def read_csv(data: bytes | str) -> tuple[list[str], list[dict[str, str]]]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def without_row_numbers(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{column: row[column] for column in COLUMNS} for row in rows]
