"""RT REST 1.0 bodies, rendered byte for byte the way RT 5.0.3 prints them.

`form_compose` is a port of RT::Interface::REST::form_compose: the blank lines around multi-line
values, the 9-space continuation indent and the wrapping of list values past 70 columns all come
from it, so a client tested against these bodies meets the same quirks as against a real RT.
Envelopes follow RT's Mason components: the dhandler (show/history/attachments/user) prints
`RT/<version> <status>\\n\\n<output>\\n` and nothing at all for an empty 200 answer; the search
component prints its output followed by two newlines (observed in the samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from rt_displayr.sandbox.rt_data import NOBODY, RT_VERSION, SimRT, SimTicket, SimTransaction

Form = tuple[str, list[str] | None, dict[str, object]]

TICKET_FIELDS = (
    "id",
    "Queue",
    "Owner",
    "Creator",
    "Subject",
    "Status",
    "Priority",
    "InitialPriority",
    "FinalPriority",
    "Requestors",
    "Cc",
    "AdminCc",
    "Created",
    "Starts",
    "Started",
    "Due",
    "Resolved",
    "Told",
    "LastUpdated",
    "TimeEstimated",
    "TimeWorked",
    "TimeLeft",
)
UNAUTHENTICATED = f"RT/{RT_VERSION} 401 Credentials required\n"
BAD_PASSWORD = (
    f"RT/{RT_VERSION} 401 Credentials required\n\nYour username or password is incorrect\n"
)


def status_line(status: str = "200 Ok") -> str:
    return f"RT/{RT_VERSION} {status}\n"


def _indent(value: str, sp: str) -> str:
    """Perl's `s/^/$sp/gm` then `s/^$sp//`: indent every line but the first, none after a final \\n."""
    lines = value.split("\n")
    return "\n".join(
        [lines[0]]
        + [sp + line for line in lines[1:-1]]
        + ([sp + lines[-1] if lines[-1] else ""] if len(lines) > 1 else [])
    )


def form_compose(forms: Iterable[Form]) -> str:
    texts = []
    for comment, order, values in forms:
        text = ""
        if comment:
            text = comment.rstrip("\n") + "\n\n"
        if order is not None:
            lines: list[str] = []
            for key in order:
                raw = values.get(key)
                items = list(raw) if isinstance(raw, list | tuple) else [raw]
                sp = " " * len(f"{key}: ")
                if len(sp) > 16:
                    sp = " " * 4
                line = ""
                for item in items:
                    text_value = "" if item is None else str(item)
                    if "\n" in text_value:
                        text_value = _indent(text_value, sp)
                        if line:
                            lines.append(line + "\n\n")
                            line = ""
                        elif lines and not lines[-1].endswith("\n\n"):
                            lines[-1] += "\n"
                        lines.append(f"{key}: {text_value}\n\n")
                    elif line and len(line) + len(text_value) - line.rfind("\n") >= 70:
                        line += f",\n{sp}{text_value}"
                    else:
                        line = f"{line}, {text_value}" if line else f"{key}: {text_value}"
                if not items:
                    line = f"{key}:"
                if line:
                    if "\n" in line:
                        if lines and not lines[-1].endswith("\n\n"):
                            lines[-1] += "\n"
                        line += "\n"
                    lines.append(line + "\n")
            text += "".join(lines)
        elif text.endswith("\n"):
            text = text[:-1]
        texts.append(text)
    return "\n--\n\n".join(texts)


def dhandler_body(forms: Sequence[Form], status: str = "200 Ok") -> str:
    """What RT's REST/1.0/dhandler prints for a list of forms (nothing for an empty 200)."""
    output = form_compose(forms)
    if output or not status.startswith("200"):
        return f"{status_line(status)}\n{output}\n"
    return ""


def error_body(status: str, message: str) -> str:
    """A dhandler-level failure such as `400 Bad Request` + `Invalid object ID specified`."""
    return f"{status_line(status)}\n{message}\n"


# --- dates -----------------------------------------------------------------------------------


def local_date(sim: SimRT, epoch: int | None) -> str:
    """Show/search dates: the RT account's zone, no offset, `Fri Dec 04 11:06:41 2026`."""
    if epoch is None:
        return "Not set"
    return datetime.fromtimestamp(epoch, sim.tz).strftime("%a %b %d %H:%M:%S %Y")


def utc_date(epoch: int) -> str:
    """History and attachment dates: UTC, `2026-12-04 16:06:41`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def size_label(text: str) -> str:
    """RT's `(54b)` / `(1.5k)`: character length, Perl's int(size/102.4)/10 above 1024."""
    size = len(text)
    if size > 1024:
        tenths = int(size / 102.4)
        return f"{tenths // 10}k" if tenths % 10 == 0 else f"{tenths / 10}k"
    return f"{size}b"


# --- tickets ---------------------------------------------------------------------------------


def ticket_problem(ticket: SimTicket | None, ticket_id: int) -> str:
    """RT's comment for a ticket that cannot be shown, or "" when it can."""
    if ticket is None or ticket.deleted:
        return f"# Ticket {ticket_id} does not exist."
    if ticket.hidden:
        return f"# You are not allowed to display ticket {ticket_id}."
    return ""


def ticket_values(sim: SimRT, ticket: SimTicket) -> dict[str, object]:
    return {
        "id": f"ticket/{ticket.id}",
        "Queue": ticket.queue,
        "Owner": ticket.owner or NOBODY,
        "Creator": ticket.creator,
        "Subject": ticket.subject,
        "Status": ticket.status,
        "Priority": 0,
        "InitialPriority": 0,
        "FinalPriority": 0,
        "Requestors": list(ticket.requestors),
        "Cc": list(ticket.cc),
        "AdminCc": list(ticket.admin_cc),
        "Created": local_date(sim, ticket.created),
        "Starts": "Not set",
        "Started": local_date(sim, ticket.started),
        "Due": "Not set",
        "Resolved": local_date(sim, ticket.resolved),
        "Told": local_date(sim, ticket.told),
        "LastUpdated": local_date(sim, ticket.last_updated),
        "TimeEstimated": 0,
        "TimeWorked": 0,
        "TimeLeft": 0,
    }


def ticket_form(
    sim: SimRT, ticket: SimTicket, fields: Sequence[str] | None = None, *, reorder: bool = False
) -> Form:
    """Forms/ticket/default. With `fields`, only those (plus id); `reorder` puts them in the
    requested order as the show dhandler does, search keeps RT's default order."""
    values = ticket_values(sim, ticket)
    if not fields:
        return ("", list(TICKET_FIELDS), values)
    wanted = ["id"] + [f.lower() for f in fields if f.lower() != "id"]
    by_lower = {key.lower(): key for key in TICKET_FIELDS}
    if reorder:
        order = [by_lower[f] for f in wanted if f in by_lower]
    else:
        order = [key for key in TICKET_FIELDS if key.lower() in wanted]
    return ("", order, {key: values[key] for key in order})


def search_body(
    sim: SimRT,
    tickets: Sequence[SimTicket],
    fmt: str,
    fields: Sequence[str] | None = None,
) -> str:
    """REST/1.0/search/ticket for already-matched tickets, in format i, s or l."""
    if fmt == "i":
        output = "".join(f"ticket/{t.id}\n" for t in tickets)
    elif fmt == "s" and fields:
        rows = []
        for n, ticket in enumerate(tickets):
            _c, order, values = ticket_form(sim, ticket, fields)
            assert order is not None
            values = dict(values, id=ticket.id)
            if n == 0:
                rows.append("\t".join(order) + "\n")
            rows.append(
                "\t".join(
                    ", ".join(v) if isinstance(v, list) else str(v) for v in map(values.get, order)
                )
                + "\n"
            )
        output = "".join(rows)
    elif fmt == "s":
        output = "".join(f"{t.id}: {t.subject}\n" for t in tickets)
    else:
        output = form_compose([ticket_form(sim, t, fields) for t in tickets]) if tickets else ""
    if not tickets and fmt != "i":
        output = "No matching results.\n"
    return f"{status_line()}\n{output}\n\n"


def search_error_body(status: str, message: str) -> str:
    return f"{status_line(status)}\n{message}\n\n"


# --- history ---------------------------------------------------------------------------------


def history_short_form(ticket: SimTicket, type_filter: str = "") -> Form:
    """`ticket/N/history`: `# 17/17 (/total)` then `id: Description` per transaction."""
    txns = [t for t in ticket.transactions if not type_filter or t.type == type_filter]
    order = [str(t.id) for t in txns]
    values: dict[str, object] = {str(t.id): t.description for t in txns}
    args = f"type/{type_filter}" if type_filter else ""
    return (f"# {len(txns)}/{len(ticket.transactions)} ({args}/total)", order, values)


def history_item_form(sim: SimRT, ticket: SimTicket, txn: SimTransaction) -> Form:
    """`ticket/N/history/id/T`: one transaction with its Content and attachment list."""
    from rt_displayr.sandbox.rt_data import transaction_data

    attachments = sim.transaction_attachments(ticket, txn)
    listing = "".join(
        f"\n{a.id}: {a.filename or 'untitled'} ({size_label(a.content)})" for a in attachments
    )
    values: dict[str, object] = {
        "id": txn.id,
        "Ticket": ticket.id,
        "TimeTaken": 0,
        "Type": txn.type,
        "Field": txn.field,
        "OldValue": txn.old_value,
        "NewValue": txn.new_value,
        "Data": transaction_data(sim, ticket, txn),
        "Description": txn.description,
        "Content": sim.transaction_content(ticket, txn),
        "Creator": txn.creator,
        "Created": utc_date(txn.created),
        "Attachments": listing,
    }
    comment = f"# 1/{len(ticket.transactions)} (id/{txn.id}/total)"
    return (comment, list(values), values)


# --- attachments and users -------------------------------------------------------------------


def attachments_list_form(sim: SimRT, ticket: SimTicket) -> Form | None:
    """`ticket/N/attachments`; None (an empty body) when the ticket has no attachments."""
    items = [
        f"{a.id}: {a.filename or '(Unnamed)'} ({a.content_type} / {size_label(a.content)})"
        for txn in ticket.transactions
        for a in sim.transaction_attachments(ticket, txn)
    ]
    if not items:
        return None
    return (
        "",
        ["id", "Attachments"],
        {"id": f"ticket/{ticket.id}/attachments", "Attachments": items},
    )


def content_encoding(content_type: str, content: str) -> str:
    """How RT stored the part: nothing for a multipart, quoted-printable once it is not ASCII."""
    if content_type.startswith("multipart/"):
        return ""
    return "none" if content.isascii() else "quoted-printable"


def attachment_form(sim: SimRT, ticket: SimTicket, attachment_id: int) -> Form:
    attachment = sim.find_attachment(ticket, attachment_id)
    if attachment is None:
        return (f"# Invalid attachment id: {attachment_id}", [], {})
    values: dict[str, object] = {
        "id": attachment.id,
        "Subject": attachment.subject,
        "Creator": attachment.creator_id,
        "Created": utc_date(attachment.created),
        "Transaction": attachment.transaction_id,
        "Parent": attachment.parent,
        "MessageId": attachment.message_id,
        "Filename": attachment.filename,
        "ContentType": attachment.content_type,
        "ContentEncoding": content_encoding(attachment.content_type, attachment.content),
        "Headers": "\n".join(attachment.headers),
        "Content": attachment.content,
    }
    return ("", list(values), values)


def user_form(sim: SimRT, name: str) -> Form:
    user = sim.user(name)
    if user is None:
        return (f"# No user named {name} exists.", ["id"], {"id": f"user/{name}"})
    values: dict[str, object] = {"id": f"user/{user.id}", "Password": "********", "Name": user.name}
    if user.email:
        values["EmailAddress"] = user.email
    if user.real_name:
        values["RealName"] = user.real_name
    if user.comments:
        values["Comments"] = user.comments
    if user.privileged:
        values["Privileged"] = 1
    values["Disabled"] = 0
    return ("", list(values), values)
