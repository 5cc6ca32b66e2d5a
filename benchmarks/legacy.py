"""The legacy extraction, re-implemented as the benchmark's reference client.

It does what the old R script did, one ticket after the other over one keep-alive session:
`ticket/<id>/show`, the short `ticket/<id>/history`, then `ticket/<id>/history/id/<n>` for the
first outgoing mail (EmailRecord) and for the first and last staff correspondence, and finally
the attachment that carries the first outgoing mail's headers (its BCC names the dispatcher).
That is up to six requests per ticket, every one waiting for the previous.

Written with plain `requests` and its own small form parser, independent of the pipeline's
client and wire parser, so that equal rows from both are evidence, not an echo. Dates: `show`
prints Created/Resolved in the RT account's zone without an offset, history items in UTC.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests

COLUMNS = (
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
)
UTC_FORMAT = "%Y-%m-%d %H:%M:%S"
SHOW_FORMAT = "%a %b %d %H:%M:%S %Y"
_KEY_LINE = re.compile(r"^([\w.{}-]+):(?: (.*))?$")
# Short-history descriptions are `<BriefDescription> by <user Name>`.
_CREATE = "Ticket created by "
_CORRESPOND = "Correspondence added by "
_EMAIL_RECORD = "Outgoing email recorded by "


class LegacyError(RuntimeError):
    """RT answered something the legacy algorithm cannot read."""


def parse_form(text: str) -> dict[str, list[str]]:
    """A REST 1.0 form as key -> its lines (continuation lines unindented); comments dropped."""
    values: dict[str, list[str]] = {}
    key = None
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        match = None if line[:1].isspace() else _KEY_LINE.match(line)
        if match:
            key = match.group(1)
            values[key] = [match.group(2) or ""]
        elif key is not None and line.strip():
            values[key].append(line.strip())
    return values


def body_of(response: requests.Response) -> str:
    """The text after RT's status line; a non-200 status inside the body is an error."""
    text = response.text
    status, _, rest = text.partition("\n")
    if not status.startswith("RT/") or " 200 " not in status:
        raise LegacyError(f"RT answered {status[:80]!r} for {response.url}")
    return rest


def local_to_utc(text: str, zone: ZoneInfo) -> str:
    """`Fri Dec 04 11:06:41 2026` in the RT account's zone as a UTC `YYYY-MM-DD HH:MM:SS`."""
    if not text or text == "Not set":
        return ""
    moment = datetime.strptime(text.strip(), SHOW_FORMAT).replace(tzinfo=zone)
    return moment.astimezone(UTC).strftime(UTC_FORMAT)


@dataclass
class LegacyRun:
    """The rows and what they cost."""

    rows: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    login_requests: int = 0
    seconds: float = 0.0


class LegacyClient:
    """The reference client: sequential, one session, cookie login with user and password."""

    def __init__(self, url: str, user: str, password: str, timezone: str) -> None:
        self.rest = f"{url.rstrip('/')}/REST/1.0"
        self.zone = ZoneInfo(timezone)
        self._user = user
        self._password = password
        self.session = requests.Session()
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> LegacyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> None:
        self.requests += 1
        response = self.session.post(
            f"{self.rest}/", data={"user": self._user, "pass": self._password}, timeout=60
        )
        body_of(response)

    def get(self, path: str) -> str:
        self.requests += 1
        return body_of(self.session.get(f"{self.rest}/{path}", timeout=120))

    def search_ids(self, query: str) -> list[int]:
        body = self.get(f"search/ticket?query={quote(query, safe='')}&format=i")
        return [int(m) for m in re.findall(r"^ticket/(\d+)\s*$", body, re.MULTILINE)]

    def ticket_row(self, ticket_id: int) -> dict[str, str]:
        show = parse_form(self.get(f"ticket/{ticket_id}/show"))
        history = parse_form(self.get(f"ticket/{ticket_id}/history"))
        chain: list[str] = []
        staff_replies: list[int] = []
        staff: list[str] = []
        email_record: int | None = None
        for key, lines in history.items():
            if not key.isdigit():
                continue
            description = " ".join(lines)
            for prefix in (_CREATE, _CORRESPOND):
                if description.startswith(prefix):
                    creator = description[len(prefix) :]
                    chain.append(creator)
                    if "@" not in creator:
                        staff.append(creator)
                        if prefix == _CORRESPOND:
                            staff_replies.append(int(key))
            if email_record is None and description.startswith(_EMAIL_RECORD):
                email_record = int(key)
        first = last = ""
        if staff_replies:
            first = self._created(ticket_id, staff_replies[0])
            last = first
            if staff_replies[-1] != staff_replies[0]:
                last = self._created(ticket_id, staff_replies[-1])
        dispatcher = ""
        if email_record is not None:
            item = parse_form(self.get(f"ticket/{ticket_id}/history/id/{email_record}"))
            ids = [
                int(m.group(1))
                for line in item.get("Attachments", [])
                if (m := re.match(r"(\d+):", line))
            ]
            if ids:
                dispatcher = self._bcc(ticket_id, min(ids))
        status = _one(show, "Status")
        created = local_to_utc(_one(show, "Created"), self.zone)
        resolved = local_to_utc(_one(show, "Resolved"), self.zone)
        if not resolved and status in ("", "resolved"):
            resolved = created
        return {
            "TicketID": str(ticket_id),
            "RTQueue": _one(show, "Queue"),
            "Owner": _one(show, "Owner"),
            "EmailReceivedTimeUTC": created,
            "Requestors": " ".join(show.get("Requestors", [""])).strip(),
            "ResolvedTimeUTC": resolved,
            "NumClientEmails": str(len(chain) - len(staff)),
            "NumStaffEmails": str(len(staff)),
            "StaffEmailers": ",".join(staff),
            "FirstResponseTimeUTC": first,
            "LastResponseTimeUTC": last,
            "Subject": _one(show, "Subject"),
            "EmailSenderChain": ",".join(chain),
            "Dispatcher": dispatcher,
        }

    def _created(self, ticket_id: int, transaction_id: int) -> str:
        item = parse_form(self.get(f"ticket/{ticket_id}/history/id/{transaction_id}"))
        return _one(item, "Created")

    def _bcc(self, ticket_id: int, attachment_id: int) -> str:
        form = parse_form(self.get(f"ticket/{ticket_id}/attachments/{attachment_id}"))
        for line in form.get("Headers", []):
            name, _, value = line.partition(":")
            if name.strip().lower() == "bcc":
                return value.strip()
        return ""

    def rows(self, query: str) -> Iterator[dict[str, str]]:
        for ticket_id in sorted(self.search_ids(query)):
            yield self.ticket_row(ticket_id)


def _one(form: dict[str, list[str]], key: str) -> str:
    return " ".join(form.get(key, [""])).strip()


def run_legacy(url: str, user: str, password: str, query: str, timezone: str) -> LegacyRun:
    """Log in, list, and derive every row sequentially; time the whole of it."""
    run = LegacyRun()
    started = time.perf_counter()
    with LegacyClient(url, user, password, timezone) as client:
        client.login()
        run.login_requests = 1
        run.rows = list(client.rows(query))
        run.requests = client.requests
    run.seconds = time.perf_counter() - started
    return run


def main() -> None:
    """`python -m benchmarks.legacy URL QUERY` (user/password from RT_USER/RT_PASSWORD): rows as
    JSON lines, then the cost; the benchmark runs this as its own process."""
    import argparse
    import json
    import os
    import resource

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("query")
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--rows", help="write the rows here as JSON")
    opts = parser.parse_args()
    run = run_legacy(
        opts.url, os.environ["RT_USER"], os.environ["RT_PASSWORD"], opts.query, opts.timezone
    )
    if opts.rows:
        with open(opts.rows, "w", encoding="utf-8") as handle:
            json.dump(run.rows, handle)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "rows": len(run.rows),
        "requests": run.requests,
        "login_requests": run.login_requests,
        "seconds": run.seconds,
        "maxrss_kb": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
