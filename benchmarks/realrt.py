"""The real RT 5 part: seed it, time its endpoints, and see where a run's time goes.

RT comes from tests/integration/rt5.py (Debian packages, SQLite, `rt-server --max-workers 4`,
own process group). Seeding goes through RT's own front doors, as in production: each ticket
arrives by the mail gateway from a client, gets a staff reply (every fifth with a one-time Bcc,
which becomes the dispatcher when it is the first outgoing mail), every second a client reply by
mail, every third a second staff reply, then is resolved. Four threads, as RT has four workers.
"""

from __future__ import annotations

import email.utils
import os
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import requests

from rt_displayr.rt import wire
from tests.integration.rt5 import RT_NAME, RTRest, RTServer

SEED_THREADS = 4
TIMED_SAMPLE = 30
LATENCY_S = 0.05
MAIL_TYPES = ("Create", "Correspond")


def _mail(sender: str, subject: str, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = email.utils.formataddr(("Client", sender))
    message["To"] = "general@rt-displayr.test"
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain="client.example")
    message.set_content(text)
    return message.as_bytes()


def _client(index: int) -> str:
    return f"client{index % 40}@client.example"


def seed(server: RTServer, tickets: int) -> tuple[list[int], float]:
    """Create `tickets` resolved tickets with realistic histories; return ids and seconds."""
    started = time.perf_counter()
    root = RTRest(server.url, "root", server.password)
    staff = {name: RTRest(server.url, name, server.password) for name in ("jdoe", "msmith")}
    try:

        def create(index: int) -> None:
            subject = f"Benchmark request {index}"
            root.mail_gateway("General", _mail(_client(index), subject, f"Please help ({index})."))

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(create, range(tickets)))
        body = root.rest1("search/ticket", {"query": "Queue='General'", "format": "i"})
        ids = sorted(int(m) for m in re.findall(r"^ticket/(\d+)$", body, re.MULTILINE))

        def converse(position: int) -> None:
            ticket_id = ids[position]
            fields = {"id": str(ticket_id), "Action": "correspond"}
            if position % 5 == 0:
                fields["Bcc"] = "dispatch@client.example"
            fields["Text"] = "We are on it."
            staff["jdoe"].write(f"ticket/{ticket_id}/comment", fields, "# Correspondence added")
            if position % 2 == 0:
                subject = f"Re: [{RT_NAME} #{ticket_id}] Benchmark request {position}"
                root.mail_gateway("General", _mail(_client(position), subject, "Thanks!"))
            if position % 3 == 0:
                fields = {"id": str(ticket_id), "Action": "correspond", "Text": "Done."}
                staff["msmith"].write(
                    f"ticket/{ticket_id}/comment", fields, "# Correspondence added"
                )
            staff["jdoe"].write(
                f"ticket/{ticket_id}/edit", {"Status": "resolved"}, rf"# Ticket {ticket_id} updated"
            )

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(converse, range(len(ids))))
    finally:
        root.close()
        for rest in staff.values():
            rest.close()
    return ids, time.perf_counter() - started


def change(server: RTServer, ids: list[int], start: int) -> tuple[list[int], int]:
    """1 % of the tickets get a staff reply, and 1 % new resolved tickets arrive (at least one)."""
    count = max(1, len(ids) // 100)
    changed = ids[:: max(1, len(ids) // count)][:count]
    with RTRest(server.url, "jdoe", server.password) as jdoe:
        for ticket_id in changed:
            fields = {"id": str(ticket_id), "Action": "correspond", "Text": "One more thing."}
            jdoe.write(f"ticket/{ticket_id}/comment", fields, "# Correspondence added")
            jdoe.write(
                f"ticket/{ticket_id}/edit", {"Status": "resolved"}, rf"# Ticket {ticket_id} updated"
            )
        for index in range(start, start + count):
            jdoe.write(
                "ticket/new",
                {
                    "id": "ticket/new",
                    "Queue": "General",
                    "Requestor": _client(index),
                    "Subject": f"Benchmark request {index}",
                    "Text": "New one.",
                    "Status": "resolved",
                },
                r"# Ticket (\d+) created",
            )
    return changed, count


class Timer:
    """A logged-in session that times single requests (one at a time: no queueing in RT)."""

    def __init__(self, server: RTServer) -> None:
        self.rest = f"{server.url}/REST/1.0"
        self.session = requests.Session()
        self.session.post(f"{self.rest}/", data={"user": "root", "pass": server.password})

    def get(self, path: str) -> tuple[float, str]:
        started = time.perf_counter()
        text = self.session.get(f"{self.rest}/{path}", timeout=120).text
        return (time.perf_counter() - started) * 1000, text

    def close(self) -> None:
        self.session.close()


def _needed(transactions: list[wire.Transaction]) -> list[int]:
    """The transactions whose details the metrics need: mails, resolutions, first EmailRecord."""
    needed = [t.id for t in transactions if t.type in MAIL_TYPES or t.type == "Status"]
    record = next((t.id for t in transactions if t.type == "EmailRecord"), None)
    return sorted(needed + ([record] if record else []))


def endpoint_times(server: RTServer, ids: list[int]) -> dict[str, object]:
    """Median server time per endpoint kind, single requests on an idle loopback RT."""
    timer = Timer(server)
    samples: dict[str, list[float]] = {}
    checks: dict[str, object] = {}
    try:
        for ticket_id in ids[:: max(1, len(ids) // TIMED_SAMPLE)][:TIMED_SAMPLE]:
            ms, text = timer.get(f"ticket/{ticket_id}/history?format=l")
            samples.setdefault("history_l", []).append(ms)
            transactions = wire.parse_history(text, ticket_id)
            record = next(t for t in transactions if t.type == "EmailRecord")
            probes = {
                "show": f"ticket/{ticket_id}/show",
                "history": f"ticket/{ticket_id}/history",
                "history_item": f"ticket/{ticket_id}/history/id/{transactions[0].id}",
                "attachment": f"ticket/{ticket_id}/attachments/{min(record.attachment_ids)}",
                "show_list": (
                    f"show?id=ticket/{ticket_id}/history/id/"
                    + ",".join(map(str, _needed(transactions)))
                ),
                "history_fields": f"ticket/{ticket_id}/history?format=l&fields=Type,Creator,Created",
            }
            for kind, path in probes.items():
                ms, body = timer.get(path)
                samples.setdefault(kind, []).append(ms)
                if kind == "show_list":
                    checks["show_list_items"] = body.count("\nType: ")
                    checks["show_list_needed"] = len(_needed(transactions))
                if kind == "history_fields":
                    checks["fields_without_content_has_creator"] = "\nCreator:" in body
            _, body = timer.get(
                f"ticket/{ticket_id}/history?format=l&fields=Type,Creator,Created,Content"
            )
            checks["fields_with_content_has_creator"] = "\nCreator:" in body
        query = "Status='resolved'"
        fields = "Queue,Owner,Subject,Requestors,Status,LastUpdated"
        for _ in range(3):
            ms, _ = timer.get(f"search/ticket?query={query}&format=l&fields={fields}")
            samples.setdefault("search", []).append(ms)
            ms, _ = timer.get(f"search/ticket?query={query}&format=i")
            samples.setdefault("search_ids", []).append(ms)
        # One POST that logs in and searches: RT authenticates user/pass on any REST request.
        started = time.perf_counter()
        body = requests.post(
            f"{server.url}/REST/1.0/search/ticket",
            data={
                "user": "root",
                "pass": server.password,
                "query": query,
                "format": "l",
                "fields": fields,
            },
            timeout=120,
        ).text
        checks["login_folded_into_search_ms"] = (time.perf_counter() - started) * 1000
        checks["login_folded_into_search_ok"] = body.startswith("RT/") and "\nid: ticket/" in body
    finally:
        timer.close()
    medians = {kind: round(statistics.median(values), 1) for kind, values in samples.items()}
    return {"medians_ms": medians, "samples": len(samples["history_l"]), "checks": checks}


def _path_a(session: requests.Session, rest: str, ticket_id: int) -> int:
    """The pipeline's path: history?format=l, then the dispatcher's attachment."""
    text = _timed_get(session, f"{rest}/ticket/{ticket_id}/history?format=l")
    transactions = wire.parse_history(text, ticket_id)
    record = next((t for t in transactions if t.type == "EmailRecord"), None)
    if record and record.attachment_ids:
        _timed_get(session, f"{rest}/ticket/{ticket_id}/attachments/{min(record.attachment_ids)}")
        return 2
    return 1


def _path_b(session: requests.Session, rest: str, ticket_id: int) -> int:
    """The alternative: short history, one `show` of only the needed items, the attachment."""
    text = _timed_get(session, f"{rest}/ticket/{ticket_id}/history")
    items = re.findall(r"^(\d+): (.*)$", text, re.MULTILINE)
    needed = [
        int(i)
        for i, description in items
        if description.startswith(("Ticket created", "Correspondence added", "Status changed"))
    ]
    record = next((int(i) for i, d in items if d.startswith("Outgoing email recorded")), None)
    wanted = sorted(needed + ([record] if record else []))
    body = _timed_get(
        session, f"{rest}/show?id=ticket/{ticket_id}/history/id/" + ",".join(map(str, wanted))
    )
    if record is None:
        return 2
    form = body.split(f"id: {record}\n", 1)[-1].split("\n--\n", 1)[0]
    attachments = re.search(r"\nAttachments:\s*(\d+):", form)
    if attachments:
        _timed_get(session, f"{rest}/ticket/{ticket_id}/attachments/{attachments.group(1)}")
        return 3
    return 2


_latency = 0.0


def _timed_get(session: requests.Session, url: str) -> str:
    if _latency:
        time.sleep(_latency)  # network time: the RT worker is not held meanwhile
    return session.get(url, timeout=120).text


def compare_paths(server: RTServer, ids: list[int], concurrency: int = 8) -> dict[str, object]:
    """Wall time of both paths over every ticket, `concurrency` threads, 0 and 50 ms latency."""
    global _latency
    rest = f"{server.url}/REST/1.0"
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency)
    session.mount("http://", adapter)
    session.post(f"{rest}/", data={"user": "root", "pass": server.password})
    results: dict[str, object] = {}
    paths: dict[str, Callable[[requests.Session, str, int], int]] = {
        "A history?format=l": _path_a,
        "B history + show list": _path_b,
    }
    try:
        for latency in (0.0, LATENCY_S):
            _latency = latency
            for name, path in paths.items():
                started = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    requests_made = sum(
                        pool.map(path, [session] * len(ids), [rest] * len(ids), ids)
                    )
                seconds = time.perf_counter() - started
                results[f"{name} @ {int(latency * 1000)} ms"] = {
                    "seconds": round(seconds, 2),
                    "requests_per_ticket": round(requests_made / len(ids), 2),
                    "ms_per_ticket": round(seconds * 1000 / len(ids), 1),
                }
    finally:
        _latency = 0.0
        session.close()
    return results


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime of every live process in the group (RT's leader and workers), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the ")": state ppid pgrp session ... utime(12) stime(13) cutime cstime
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / ticks
