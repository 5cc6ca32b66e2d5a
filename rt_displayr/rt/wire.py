"""Parse RT's REST 1.0 text format: the status line, `Field: value` records and their errors.

REST 1.0 answers HTTP 200 for almost everything; the real status is the first body line
(`RT/5.0.3+dfsg-3~deb12u7 401 Credentials required`) and some failures are only a comment line
(`# Ticket 99 does not exist.`). Everything here turns those into typed errors, so the HTTP
client never has to look inside a body and the parsers never see an error body.

The record format is RT's own `form_compose` (lib/RT/Interface/REST.pm): `Key: value` lines,
values continued on lines indented by `len("Key: ")` spaces (4 when that would exceed 16),
records separated by `--` lines, optional `#` comment lines at the start of a record.
Multi-valued fields (Requestors, a ticket's attachment list) are joined with `, ` and wrapped
onto continuation lines once a line reaches 70 characters, leaving a trailing `,` on the line.

Truncated bodies: a proxy or a dying RT worker can cut a 200 answer short. Where the cut is
visible it raises `RTTransientError` (retried): a body that does not end with a newline (RT ends
every REST 1.0 form answer with one), a history whose last transaction lacks `Attachments:`
(always RT's last field of a transaction), a search whose last ticket lacks a requested field,
an attachment record without its final `Content:`. The history's `# 1/N` comment is NOT used as
a completeness check: in format l RT prints `1/N` on every transaction, and N is the SQL count
of all of the ticket's transactions while the listing skips those the account may not see
(RT::Transactions::AddRecord, e.g. outgoing mail without ShowOutgoingEmail). A record count
below N is therefore normal for a restricted account, and retrying it would only fail later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rt_displayr.errors import (
    RTAuthError,
    RTError,
    RTProtocolError,
    RTQueryError,
    RTSessionExpired,
    RTTicketUnavailable,
    RTTransientError,
)
from rt_displayr.models import TicketSummary, Transaction, parse_rt_utc
from rt_displayr.redact import redact

SEARCH_FIELDS = (
    "id",
    "Queue",
    "Owner",
    "Subject",
    "Requestors",
    "Created",
    "Resolved",
    "LastUpdated",
    "Status",
)

_STATUS_LINE = re.compile(r"^RT/(?P<version>\S+)\s+(?P<code>\d{3})\b\s*(?P<text>.*)$")
# RT's field_spec: a plain name, or a custom field written CF.{name} or CF-name.
_FIELD_LINE = re.compile(
    r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*|CF\.\{[^}]*\}|C(?:ustom)?F(?:ield)?-[^:]+):[ \t]*(?P<value>.*)$"
)
_TICKET_MISSING = re.compile(r"^# Ticket (\d+) does not exist\.?", re.IGNORECASE)
_TICKET_FORBIDDEN = re.compile(r"^# You are not allowed to display ticket (\d+)\.?", re.IGNORECASE)
_USER_MISSING = re.compile(
    r"^# (?:No user named (?P<name>.+?) exists|User (?P<id>\S+?) does not exist)\.?$",
    re.IGNORECASE,
)
_ATTACHMENT_MISSING = re.compile(r"^# Invalid attachment id: (\S+)", re.IGNORECASE)
_BAD_PASSWORD = re.compile(r"username or password is incorrect", re.IGNORECASE)
_INVALID_QUERY = re.compile(r"^Invalid query:", re.IGNORECASE)
_ATTACHMENT_ENTRY = re.compile(r"^\s*(\d+):")
_SNIPPET = 80


class RTObjectNotFound(RTError):
    """A user or attachment RT does not have (`# No user named X exists.`, `# Invalid attachment id`).

    Not in errors.py because only this package raises and handles it: a missing user simply is not
    privileged staff, and a missing attachment only means an unknown dispatcher.
    """

    def __init__(self, message: str, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


@dataclass(frozen=True, slots=True)
class RTResponse:
    """A REST 1.0 answer whose status line said 200 and that carries no error comment."""

    version: str
    code: int
    status: str
    text: str
    endpoint: str


def decode_body(body: bytes | str) -> str:
    """UTF-8 with replacement: one bad byte in a mail body must never stop a run."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _where(endpoint: str, ticket_id: int | None) -> str:
    return endpoint if ticket_id is None else f"{endpoint} of ticket {ticket_id}"


def _snippet(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return redact(line[:_SNIPPET] + ("..." if len(line) > _SNIPPET else ""))


def parse_response(body: bytes | str, *, endpoint: str, ticket_id: int | None = None) -> RTResponse:
    """Check RT's in-body status and error comments; return the text after the status line.

    `endpoint` names the request kind for the one-line error (`history`, `search`, ...); an
    endpoint ending in `/content` is raw attachment content, exempt from the newline check.
    """
    text = decode_body(body)
    where = _where(endpoint, ticket_id)
    if not text.strip():
        raise RTProtocolError(f"RT sent an empty body for {where} (no REST 1.0 status line)")
    first, _, rest = text.partition("\n")
    match = _STATUS_LINE.match(first.strip())
    if match is None:
        kind = "an HTML page" if text.lstrip().startswith("<") else "a body"
        raise RTProtocolError(
            f"RT sent {kind} without a REST 1.0 status line for {where} (a login or SSO page, "
            f"a proxy error page or RT's CSRF warning?); it starts {_snippet(text)!r}"
        )
    code, status = int(match["code"]), match["text"].strip()
    rest = rest.removeprefix("\n")
    lines = rest.split("\n")
    if code == 401:
        if any(_BAD_PASSWORD.search(line) for line in lines):
            raise RTAuthError(
                f"RT rejected the user name or password ({code} {status}) for {where}"
            )
        raise RTSessionExpired(
            f"RT answered {code} {status} for {where}: not logged in or the session expired"
        )
    if code == 400 and (query_line := next((ln for ln in lines if _INVALID_QUERY.match(ln)), None)):
        raise RTQueryError(f"RT rejected the TicketSQL: {query_line.strip()}")
    if code == 429 or code >= 500:
        raise RTTransientError(f"RT answered {code} {status} for {where}")
    if code != 200:
        detail = next((ln.strip() for ln in lines if ln.strip()), "")
        raise RTError(f"RT answered {code} {status} for {where}: {redact(detail)}".rstrip(": "))
    _raise_error_comment(lines, where)
    if not text.endswith("\n") and not endpoint.endswith("/content"):
        raise RTTransientError(f"RT's answer for {where} was cut short (no final newline)")
    return RTResponse(match["version"], code, status, rest, endpoint)


def _raise_error_comment(lines: Iterable[str], where: str) -> None:
    """RT reports a missing or hidden object as a `#` comment under a 200 status."""
    for line in lines:
        if not line.startswith("#"):
            continue
        line = line.strip()
        if m := (_TICKET_MISSING.match(line) or _TICKET_FORBIDDEN.match(line)):
            raise RTTicketUnavailable(f"{line.lstrip('# ')} ({where})", ticket_id=int(m[1]))
        if m := _USER_MISSING.match(line):
            name = m["name"] or m["id"]
            raise RTObjectNotFound(f"{line.lstrip('# ')} ({where})", kind="user", name=name)
        if m := _ATTACHMENT_MISSING.match(line):
            raise RTObjectNotFound(f"{line.lstrip('# ')} ({where})", kind="attachment", name=m[1])


def _strip_status(text: str) -> str:
    first, sep, rest = text.partition("\n")
    return rest if sep and _STATUS_LINE.match(first.strip()) else text


def _indent_for(key: str) -> int:
    """The continuation indent form_compose writes for `key` (4 when `Key: ` exceeds 16)."""
    width = len(key) + 2
    return 4 if width > 16 else width


def _dedent(line: str, width: int) -> str:
    """Strip exactly RT's indentation, and no more: Content's own leading spaces stay."""
    leading = len(line) - len(line.lstrip(" \t"))
    return line[min(leading, width) :]


def parse_records(text: str) -> list[dict[str, str]]:
    """Split REST 1.0 text (with or without its status line) into `Field: value` records.

    Continuation lines (starting with whitespace) join their field's value with `\\n` after the
    field's indentation is stripped; blank lines inside a value survive only when an indented
    line follows them, as in RT's own form_parse. Comment and other unkeyed lines are skipped.
    """
    records: list[dict[str, str]] = []
    record: dict[str, str] = {}
    key: str | None = None
    parts: list[str] = []
    blanks = 0

    def close_field() -> None:
        nonlocal key, parts, blanks
        if key is not None:
            while parts and parts[0] == "":
                parts.pop(0)
            value = "\n".join(parts).rstrip("\n")
            record[key] = f"{record[key]}\n{value}" if key in record else value
        key, parts, blanks = None, [], 0

    def close_record() -> None:
        nonlocal record
        close_field()
        if record:
            records.append(record)
        record = {}

    for line in decode_body(_strip_status(text)).split("\n"):
        if key is not None and line[:1] in (" ", "\t"):
            parts.extend([""] * blanks)
            blanks = 0
            parts.append(_dedent(line, _indent_for(key)))
            continue
        if line == "" or (not line.strip() and key is None):
            blanks += 1
            continue
        if line.rstrip() == "--":
            close_record()
            continue
        close_field()
        if line.startswith("#"):
            continue
        if match := _FIELD_LINE.match(line):
            key = match["key"]
            parts = [match["value"] or ""]
    close_record()
    return records


def join_list(value: str) -> str:
    """A multi-valued field (wrapped by RT with `,` at the line end) as `a@x, b@y, c@z`."""
    return ", ".join(item.strip() for item in value.replace("\n", " ").split(",") if item.strip())


def _ticket_id(value: str) -> int:
    return int(value.strip().removeprefix("ticket/"))


def _require_last(records: list[dict[str, str]], fields: Iterable[str], where: str) -> None:
    missing = [name for name in fields if name not in records[-1]]
    if missing:
        raise RTTransientError(
            f"RT's answer for {where} was cut short (last record lacks {', '.join(missing)})"
        )


def parse_search(text: str, *, require: Iterable[str] = ()) -> list[TicketSummary]:
    """Tickets from `search/ticket?format=l`; a field RT did not send becomes "".

    `require` names fields the client asked for: RT writes every requested field of every
    ticket, so their absence from the LAST record means the body was cut (RTTransientError).
    """
    records = [r for r in parse_records(text) if "id" in r]
    if records and require:
        _require_last(records, require, "search")
    tickets = []
    for record in records:
        try:
            ticket_id = _ticket_id(record["id"])
        except ValueError:
            raise RTProtocolError(f"RT listed a ticket with id {record['id']!r}") from None
        tickets.append(
            TicketSummary(
                id=ticket_id,
                queue=record.get("Queue", "").strip(),
                owner=record.get("Owner", "").strip(),
                subject=record.get("Subject", "").strip(),
                requestors=join_list(record.get("Requestors", "")),
                status=record.get("Status", "").strip(),
                last_updated=record.get("LastUpdated", "").strip(),
            )
        )
    return tickets


def parse_search_ids(text: str) -> list[int]:
    """Ticket ids from `search/ticket?format=i` (`ticket/N` lines; no hits is an empty body)."""
    ids = []
    for line in _strip_status(decode_body(text)).split("\n"):
        line = line.strip()
        if line.startswith("ticket/"):
            try:
                ids.append(_ticket_id(line))
            except ValueError:
                raise RTProtocolError(f"RT listed a ticket id {line!r}") from None
    return ids


def _attachment_ids(value: str) -> tuple[int, ...]:
    """`Attachments:` lines look like `12: untitled (0b)`; the number is the attachment id."""
    return tuple(int(m[1]) for line in value.split("\n") if (m := _ATTACHMENT_ENTRY.match(line)))


def parse_history(text: str, ticket_id: int) -> list[Transaction]:
    """Transactions from `ticket/<id>/history?format=l`, in RT's order (oldest first)."""
    records = [r for r in parse_records(text) if "id" in r]
    if not records:
        return []
    where = _where("history", ticket_id)
    _require_last(records, ("Type", "Creator", "Created", "Attachments"), where)
    transactions = []
    for index, record in enumerate(records):
        last = index == len(records) - 1
        try:
            transactions.append(
                Transaction(
                    id=int(record["id"].strip()),
                    type=record["Type"].strip(),
                    creator=record["Creator"].strip(),
                    created=parse_rt_utc(record["Created"]),
                    description=record.get("Description", "").strip(),
                    field=record.get("Field", "").strip(),
                    old_value=record.get("OldValue", "").strip(),
                    new_value=record.get("NewValue", "").strip(),
                    attachment_ids=_attachment_ids(record.get("Attachments", "")),
                )
            )
        except (KeyError, ValueError) as exc:
            if last:  # a cut inside the last record's date, say
                raise RTTransientError(f"RT's answer for {where} was cut short") from None
            raise RTProtocolError(
                f"RT sent an unreadable transaction {record.get('id', '?').strip()} for {where}: "
                f"{type(exc).__name__} {exc}"
            ) from None
    return transactions


def parse_attachment_headers(text: str) -> dict[str, str]:
    """The mail headers of `ticket/<id>/attachments/<aid>`, names lower-cased (RT writes `BCC:`).

    Folded header lines are unfolded; a header that occurs twice keeps both values, `, `-joined
    (two Bcc headers mean both addresses).
    """
    records = parse_records(text)
    if not records:
        return {}
    record = records[0]
    if "Content" not in record:
        raise RTTransientError("RT's answer for attachment was cut short (no Content field)")
    headers: dict[str, str] = {}
    name: str | None = None
    for line in record.get("Headers", "").split("\n"):
        if line[:1] in (" ", "\t") and name is not None:
            headers[name] = f"{headers[name]} {line.strip()}".strip()
            continue
        header, sep, value = line.partition(":")
        if not sep or not header.strip():
            continue
        name = header.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if headers.get(name) else value
    return headers


def parse_user_privileged(text: str) -> bool:
    """`Privileged: 1` in `user/<name>`; RT omits the line for unprivileged users."""
    records = parse_records(text)
    return bool(records) and records[0].get("Privileged", "").strip() == "1"
