"""The RT simulator answers like the real RT 5.0.3 whose bodies are in tests/data/rt-samples.

The replica tests rebuild tickets 1-5 from the samples (transaction fields, attachment headers
and contents) and require the simulator to print every sample body byte for byte: that pins the
form layout (blank lines, indents, wrapping), date zones, envelopes and error wording.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from rt_displayr.sandbox import rt_render
from rt_displayr.sandbox.rt_data import (
    NO_CONTENT,
    SimAttachment,
    SimRT,
    SimTicket,
    SimTransaction,
    SimUser,
    generate_tickets,
)
from rt_displayr.sandbox.rt_server import (
    RTSimulator,
    TicketSQLError,
    control,
    parse_ticket_sql,
)

SAMPLES = Path(__file__).parents[1] / "data" / "rt-samples"
STATUS_PREFIX = len(b"RT/5.0.3+dfsg-3~deb12u7 200 Ok\n\n")
TZ = ZoneInfo("America/New_York")
MAIL_TYPES = ("EmailRecord", "CommentEmailRecord")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def single_fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):(?: (.*))?$", line)
        if m and m.group(1) not in found:
            found[m.group(1)] = m.group(2) or ""
    return found


def local_epoch(text: str) -> int | None:
    if text == "Not set":
        return None
    return int(datetime.strptime(text, "%a %b %d %H:%M:%S %Y").replace(tzinfo=TZ).timestamp())


def utc_epoch(text: str) -> int:
    return int(datetime.strptime(text + "+0000", "%Y-%m-%d %H:%M:%S%z").timestamp())


def sample_attachment(ticket_id: int, aid: int, content_type: str) -> SimAttachment:
    meta = sample(f"ticket-{ticket_id}-attachment-{aid}.txt").decode()
    values = single_fields(meta)
    headers = re.search(r"\nHeaders: (.*?)\n\n", meta, re.S)
    assert headers is not None
    header_lines = tuple(
        line[9:] if i else line for i, line in enumerate(headers.group(1).split("\n"))
    )
    content = sample(f"ticket-{ticket_id}-attachment-{aid}-content.txt")[STATUS_PREFIX:]
    return SimAttachment(
        id=aid,
        transaction_id=int(values["Transaction"]),
        content_type=content_type,
        content=content.decode(),
        headers=header_lines,
        subject=values["Subject"],
        parent=int(values["Parent"]),
        message_id=values["MessageId"],
        creator_id=int(values["Creator"]),
        created=utc_epoch(values["Created"]),
    )


def replica_ticket(ticket_id: int) -> SimTicket:
    """Rebuild a sample ticket from its bodies; content and Data are derived as RT derives them."""
    show = single_fields(sample(f"ticket-{ticket_id}-show.txt").decode())
    listing = sample(f"ticket-{ticket_id}-attachments.txt").decode()
    attachments = [
        sample_attachment(ticket_id, int(aid), ctype)
        for aid, ctype in re.findall(r"(\d+): \(Unnamed\) \(([^ ]+) / ", listing)
    ]
    ticket = SimTicket(
        id=ticket_id,
        queue=show["Queue"],
        subject=show["Subject"],
        creator=show["Creator"],
        owner=show["Owner"],
        requestors=tuple(show["Requestors"].split(", ")),
        status=show["Status"],
        created=local_epoch(show["Created"]) or 0,
        cc=tuple(filter(None, show["Cc"].split(", "))),
        admin_cc=tuple(filter(None, show["AdminCc"].split(", "))),
        started=local_epoch(show["Started"]),
        resolved=local_epoch(show["Resolved"]),
        told=local_epoch(show["Told"]),
        last_updated=local_epoch(show["LastUpdated"]) or 0,
    )
    short = sample(f"ticket-{ticket_id}-history.txt").decode()
    for tid in re.findall(r"^(\d+): ", short, re.M):
        item = single_fields(sample(f"ticket-{ticket_id}-history-id-{tid}.txt").decode())
        parts = tuple(a for a in attachments if a.transaction_id == int(tid))
        text = next((a.content for a in parts if a.content_type == "text/plain"), NO_CONTENT)
        if item["Type"] in MAIL_TYPES:
            data = f"<{parts[0].message_id}>"
        elif item["Type"] in ("Correspond", "Comment"):
            data = f"{parts[0].subject}\n" if parts[0].subject else "No Subject"
        else:
            data = ""
        ticket.transactions.append(
            SimTransaction(
                id=int(tid),
                type=item["Type"],
                creator=item["Creator"],
                created=utc_epoch(item["Created"]),
                field=item["Field"],
                old_value=item["OldValue"],
                new_value=item["NewValue"],
                description=item["Description"],
                data=data,
                content=text,
                attachments=parts,
            )
        )
    return ticket


def replica_sim() -> SimRT:
    sim = SimRT(rtname="rtbed", staff_domain="rtbed.example")
    for ticket_id in range(1, 6):
        sim.tickets[ticket_id] = replica_ticket(ticket_id)
    sim._add_user(
        SimUser(
            37,
            "alice.customer@example.com",
            "alice.customer@example.com",
            comments="Autocreated when added as a watcher",
        )
    )
    return sim


@pytest.fixture(scope="module")
def replica() -> Iterator[RTSimulator]:
    with RTSimulator(replica_sim(), token="tok-123456789") as server:
        yield server


@pytest.fixture
def generated() -> Iterator[RTSimulator]:
    with RTSimulator(tickets=40, seed=7, token="tok-123456789", prefix="/rt") as server:
        yield server


def login(server: RTSimulator) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{server.rest_url}/", data={"user": "root", "pass": "password"})
    assert answer.status_code == 200
    return session


def sample_urls() -> list[tuple[str, str]]:
    routes = [
        (r"ticket-(\d+)-show\.txt", "ticket/{0}/show"),
        (r"ticket-(\d+)-history\.txt", "ticket/{0}/history"),
        (r"ticket-(\d+)-history-format-l\.txt", "ticket/{0}/history?format=l"),
        (r"ticket-(\d+)-history-id-(\d+)\.txt", "ticket/{0}/history/id/{1}"),
        (r"ticket-(\d+)-attachments\.txt", "ticket/{0}/attachments"),
        (r"ticket-(\d+)-attachment-(\d+)\.txt", "ticket/{0}/attachments/{1}"),
        (r"ticket-(\d+)-attachment-(\d+)-content\.txt", "ticket/{0}/attachments/{1}/content"),
        (r"ticket-999999-show-nonexistent\.txt", "ticket/999999/show"),
        (r"user-alice-show\.txt", "user/alice.customer@example.com"),
        (r"user-jdoe-show\.txt", "user/jdoe"),
        (r"user-nonexistent-show\.txt", "user/nosuchuser"),
    ]
    found = []
    for path in sorted(SAMPLES.glob("*.txt")):
        for pattern, url in routes:
            m = re.fullmatch(pattern, path.name)
            if m:
                found.append((path.name, url.format(*m.groups())))
    return found


@pytest.mark.parametrize(("name", "url"), sample_urls())
def test_simulator_replica_body_equals_real_rt_sample(
    replica: RTSimulator, name: str, url: str
) -> None:
    session = login(replica)
    answer = session.get(f"{replica.rest_url}/{url}")
    assert answer.status_code == 200
    assert answer.content == sample(name)


def test_simulator_covers_every_ticket_sample() -> None:
    names = {name for name, _url in sample_urls()}
    assert len(names) > 250
    assert "ticket-1-history-format-l.txt" in names and "ticket-3-show.txt" in names


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("search-resolved-format-i.txt", {"format": "i"}),
        ("search-resolved-format-s.txt", {"format": "s"}),
        ("search-resolved-format-l-all.txt", {"format": "l"}),
        (
            "search-resolved-format-l-fields.txt",
            {
                "format": "l",
                "fields": "id,Queue,Owner,Subject,Requestors,Created,Resolved,LastUpdated",
            },
        ),
    ],
)
def test_simulator_search_equals_real_rt_sample(
    replica: RTSimulator, name: str, params: dict[str, str]
) -> None:
    session = login(replica)
    answer = session.get(
        f"{replica.rest_url}/search/ticket", params={"query": "Status='resolved'", **params}
    )
    assert answer.content == sample(name)


def test_simulator_search_without_hits(replica: RTSimulator) -> None:
    session = login(replica)
    url = f"{replica.rest_url}/search/ticket"
    none_i = session.get(url, params={"query": "id > 1000", "format": "i"})
    assert none_i.content == sample("search-no-results.txt")
    none_l = session.get(url, params={"query": "id > 1000", "format": "l"})
    assert none_l.text.endswith("200 Ok\n\nNo matching results.\n\n\n")


def test_simulator_show_list_of_transactions_matches_history_items(replica: RTSimulator) -> None:
    session = login(replica)
    answer = session.get(f"{replica.rest_url}/show", params={"id": "ticket/1/history/id/41,42"})
    first = sample("ticket-1-history-id-41.txt").decode()[:-1]  # the dhandler's final newline
    second = sample("ticket-1-history-id-42.txt").decode()[STATUS_PREFIX:]
    assert answer.text == first + "\n--\n\n" + second


# --- authentication --------------------------------------------------------------------------


def test_simulator_auth_answers_like_rt(replica: RTSimulator) -> None:
    url = f"{replica.rest_url}/ticket/1/show"
    assert requests.get(url).content == sample("unauthenticated-ticket-show.txt")
    bad = requests.post(url, data={"user": "root", "pass": "wrong"})
    assert bad.content == sample("bad-password-ticket-show.txt")
    good = requests.post(url, data={"user": "root", "pass": "password"})
    assert good.content == sample("ticket-1-show.txt")
    cookie = good.cookies.get(f"RT_SID_rtbed.{replica.port}")
    assert cookie and len(cookie) == 32
    again = requests.get(url, cookies={f"RT_SID_rtbed.{replica.port}": cookie})
    assert again.content == sample("ticket-1-show.txt")
    token = requests.get(url, headers={"Authorization": "token tok-123456789"})
    assert token.content == sample("ticket-1-show.txt")
    wrong_token = requests.get(url, headers={"Authorization": "token nope-nope-nope"})
    assert wrong_token.content == sample("unauthenticated-ticket-show.txt")


def test_simulator_multipart_login_and_browser_cookie_csrf(replica: RTSimulator) -> None:
    url = f"{replica.rest_url}/ticket/2/show"
    multipart = requests.post(url, files={"user": (None, "root"), "pass": (None, "password")})
    assert multipart.content == sample("ticket-2-show.txt")
    name, value = replica.browser_session().split("=", 1)
    interstitial = requests.get(url, cookies={name: value})
    assert interstitial.headers["Content-Type"].startswith("text/html")
    assert "Possible cross-site request forgery" in interstitial.text
    with_referer = requests.get(url, cookies={name: value}, headers={"Referer": replica.url + "/"})
    assert with_referer.content == sample("ticket-2-show.txt")


# --- TicketSQL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Status='resolved'", {1, 2, 3, 4}),
        ("Status = 'open'", {5}),
        ("Status != 'resolved'", {5}),
        ("Queue = 'General'", {1, 3, 5}),
        ("id > 3", {4, 5}),
        ("id >= 3", {3, 4, 5}),
        ("id <= 2", {1, 2}),
        ("id < 2", {1}),
        ("Queue = 'General' AND (Status = 'open' OR id = 1)", {1, 5}),
        ('( id = 2 OR id = 4 ) AND Status = "resolved"', {2, 4}),
        ("LastUpdated > '2026-12-04 11:06:42'", {3, 4, 5}),
        ("LastUpdated >= '2026-12-04 11:06:42' AND Queue = 'Support'", {2, 4}),
        ("", {1, 2, 3, 4, 5}),
    ],
)
def test_simulator_ticket_sql_subset(replica: RTSimulator, query: str, expected: set[int]) -> None:
    session = login(replica)
    answer = session.get(
        f"{replica.rest_url}/search/ticket", params={"query": query, "format": "i"}
    )
    assert set(map(int, re.findall(r"^ticket/(\d+)$", answer.text, re.M))) == expected


def test_simulator_invalid_query_wording(replica: RTSimulator) -> None:
    session = login(replica)
    answer = session.get(
        f"{replica.rest_url}/search/ticket", params={"query": "Status = ", "format": "l"}
    )
    assert answer.status_code == 200
    assert answer.text.startswith(
        "RT/5.0.3+dfsg-3~deb12u7 400 Bad request\n\nInvalid query: 'Incomplete query, last "
        "element (OPERATOR) is not close paren or value in 'Status = ' at "
    )
    assert answer.text.endswith(" line 3308.\n'.\n\n\n")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("Status = = 'open'", "Wrong query, expecting a VALUE in 'Status = >=<--here 'open''"),
        ("(id = 1", "Incomplete query, 1 unclosed paren in '(id = 1'"),
        ("Bogus = 1", "Unknown field: Bogus"),
        ("id = 1 AND", "Incomplete query, last element (AGGREGATOR) is not close paren or value"),
    ],
)
def test_simulator_ticket_sql_errors(query: str, message: str) -> None:
    with pytest.raises(TicketSQLError) as caught:
        parse_ticket_sql(query)
    assert str(caught.value).startswith(message)


def test_simulator_ordering_and_format_errors(replica: RTSimulator) -> None:
    session = login(replica)
    url = f"{replica.rest_url}/search/ticket"
    desc = session.get(url, params={"query": "id > 0", "format": "i", "orderby": "-id"})
    assert re.findall(r"ticket/(\d+)", desc.text) == ["5", "4", "3", "2", "1"]
    bad = session.get(url, params={"query": "id > 0", "format": "x"})
    assert bad.text == (
        "RT/5.0.3+dfsg-3~deb12u7 400 Bad request\n\nUnknown listing format: x. "
        "(Use i, s, or l.)\n\n\n"
    )


# --- the generator ---------------------------------------------------------------------------


def test_simulator_generator_is_deterministic() -> None:
    first, second, other = (generate_tickets(30, seed=s) for s in (5, 5, 6))
    for ticket_id in (1, 17, 30):
        bodies = [
            rt_render.dhandler_body(
                [
                    rt_render.history_item_form(sim, sim.tickets[ticket_id], t)
                    for t in sim.tickets[ticket_id].transactions
                ]
            )
            for sim in (first, second)
        ]
        assert bodies[0] == bodies[1]
    assert [t.subject for t in first.tickets.values()] != [
        t.subject for t in other.tickets.values()
    ]


def test_simulator_generator_covers_the_cases() -> None:
    sim = generate_tickets(600, seed=2, start_id=1000)
    tickets = list(sim.tickets.values())
    assert min(sim.tickets) == 1000 and len(tickets) == 600

    def first_mail(ticket: SimTicket) -> SimTransaction | None:
        return next((t for t in ticket.transactions if t.type == "EmailRecord"), None)

    by_mail = [t for t in tickets if "@" in t.creator]
    by_staff = [
        t for t in tickets if t.creator in ("root", "jdoe", "msmith", "akhan", "bnguyen", "cmuller")
    ]
    assert by_mail and by_staff
    autoreplies = [m for t in tickets if (m := first_mail(t)) and m.kind == "autoreply"]
    assert autoreplies and all(not m.bcc for m in autoreplies)
    assert any(m is not None and m.bcc for m in map(first_mail, tickets))  # dispatcher
    assert any(not any(x.type == "EmailRecord" for x in t.transactions) for t in tickets)
    assert any(
        not any(x.type == "Correspond" and sim.is_staff(x.creator) for x in t.transactions)
        for t in tickets
    )
    wrapped = [t for t in tickets if len(t.requestors) > 1]
    body = rt_render.form_compose([rt_render.ticket_form(sim, wrapped[0])])
    assert re.search(r"Requestors: [^\n]+,\n {12}\S", body)
    assert any(not t.subject.isascii() for t in tickets)
    statuses = {t.status for t in tickets}
    assert {"resolved", "open"} <= statuses
    assert any(
        any(x.type == "Status" and x.old_value == "resolved" for x in t.transactions)
        and t.status == "resolved"
        for t in tickets
    )
    gives = [
        t for t in tickets if any(x.type == "Set" and x.field == "Owner" for x in t.transactions)
    ]
    assert gives and all(any(x.type == "SetWatcher" for x in t.transactions) for t in gives)
    assert any(x.type == "CommentEmailRecord" for t in tickets for x in t.transactions)
    ids = [x.id for x in tickets[0].transactions]
    assert ids == sorted(ids)
    assert any(
        b - a > 1
        for t in tickets
        for a, b in zip(
            [x.id for x in t.transactions], [x.id for x in t.transactions][1:], strict=False
        )
    )
    for ticket in tickets:
        assert ticket.last_updated == max(x.created for x in ticket.transactions)


def test_simulator_staff_users_are_privileged_and_clients_not(generated: RTSimulator) -> None:
    session = login(generated)
    staff = session.get(f"{generated.rest_url}/user/jdoe").text
    assert "Privileged: 1\n" in staff and "RealName: John Doe\n" in staff
    client = generated.sim.tickets[1].requestors[0]
    answer = session.get(f"{generated.rest_url}/user/{client}").text
    assert f"Name: {client}\n" in answer and "Privileged" not in answer


def test_simulator_staff_can_log_in_with_email_names() -> None:
    sim = generate_tickets(50, seed=4, staff_login_emails=True)
    creators = {
        x.creator
        for t in sim.tickets.values()
        for x in t.transactions
        if x.type == "Correspond" and sim.is_staff(x.creator)
    }
    assert creators and all("@" in c for c in creators)
    user = sim.user(next(iter(creators)))
    assert user is not None and user.privileged


def test_simulator_generated_endpoints_round_trip(generated: RTSimulator) -> None:
    assert generated.url.endswith("/rt")
    session = login(generated)
    rest = generated.rest_url
    ticket = generated.sim.tickets[3]
    show = session.get(f"{rest}/ticket/3").text
    assert show.startswith("RT/5.0.3+dfsg-3~deb12u7 200 Ok\n\nid: ticket/3\n")
    short = session.get(f"{rest}/ticket/3/history").text
    total = len(ticket.transactions)
    assert f"# {total}/{total} (/total)" in short
    long = session.get(f"{rest}/ticket/3/history", params={"format": "l"}).text
    assert long.count("\n--\n\n") == total - 1
    item = session.get(f"{rest}/ticket/3/history/id/{ticket.transactions[0].id}").text
    assert f"# 1/{total} (id/{ticket.transactions[0].id}/total)" in item
    assert re.search(r"^Created: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", item, re.M)
    listing = session.get(f"{rest}/ticket/3/attachments").text
    aid = int(re.findall(r"(\d+): \(Unnamed\)", listing)[0])
    meta = session.get(f"{rest}/ticket/3/attachments/{aid}").text
    assert f"id: {aid}\n" in meta and "\nHeaders: " in meta
    other = session.get(f"{rest}/ticket/4/attachments/{aid}").text
    assert f"# Invalid attachment id: {aid}" in other
    foreign = session.get(f"{rest}/ticket/4/history/id/{ticket.transactions[0].id}").text
    assert "is not related to Ticket 4" in foreign
    found = session.get(
        f"{rest}/search/ticket",
        params={"query": "id > 0", "format": "l", "fields": "id,Status,LastUpdated"},
    )
    assert found.text.count("id: ticket/") == 40
    assert generated.counts["search"] == 1 and generated.counts["history_l"] == 1
    assert generated.counts["total"] >= 9
    generated.reset_counts()
    assert generated.counts["total"] == 0


# --- mutation, control endpoint, faults ------------------------------------------------------


def test_simulator_mutations_change_what_rt_shows(generated: RTSimulator) -> None:
    session = login(generated)
    rest = generated.rest_url
    before = single_fields(session.get(f"{rest}/ticket/5/show").text)["LastUpdated"]
    generated.add_correspondence(5, "jdoe", text="Done now.")
    after = single_fields(session.get(f"{rest}/ticket/5/show").text)["LastUpdated"]
    assert after != before
    assert local_epoch(after) > local_epoch(before)  # type: ignore[operator]
    generated.delete_ticket(6)
    assert "# Ticket 6 does not exist.\n" in session.get(f"{rest}/ticket/6/history").text
    generated.hide_ticket(7)
    assert "# You are not allowed to display ticket 7." in session.get(f"{rest}/ticket/7").text
    listed = session.get(f"{rest}/search/ticket", params={"query": "id > 0", "format": "i"}).text
    assert "ticket/6\n" not in listed and "ticket/7\n" not in listed
    new_id = generated.add_ticket("Brand new", ["zoe@example.com"], queue="Support")
    generated.set_status(new_id, "resolved", by="jdoe")
    shown = single_fields(session.get(f"{rest}/ticket/{new_id}").text)
    assert shown["Status"] == "resolved" and shown["Requestors"] == "zoe@example.com"


def test_simulator_control_endpoint_drives_another_process(generated: RTSimulator) -> None:
    session = login(generated)
    show = f"{generated.rest_url}/ticket/2/show"
    before = single_fields(session.get(show).text)["LastUpdated"]
    control(generated.url, "add_correspondence", ticket_id=2, creator="msmith", text="Hi")
    assert single_fields(session.get(show).text)["LastUpdated"] != before
    control(generated.url, "inject", match="show", fault="http502", times=1)
    assert session.get(show).status_code == 502
    assert session.get(show).status_code == 200
    assert control(generated.url, "counts")["show"] >= 4
    bad = requests.post(f"{generated.url}/_sandbox/nope", json={})
    assert bad.status_code == 400 and bad.json()["ok"] is False


def test_simulator_faults(generated: RTSimulator) -> None:
    session = login(generated)
    url = f"{generated.rest_url}/ticket/1/history"
    generated.inject("history", "http500")
    assert session.get(url).status_code == 500
    generated.inject(r"/ticket/1/history$", "http429", retry_after=7)
    limited = session.get(url)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    generated.inject("history", "reset")
    with pytest.raises(requests.ConnectionError):
        session.get(url)
    generated.inject("history", "html", status=200)
    page = session.get(url)
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    generated.inject("history", "html", status=502)
    assert "502 Bad Gateway" in session.get(url).text
    full = session.get(url, params={"format": "l"}).content
    generated.inject("history_l", "truncated")
    cut = session.get(url, params={"format": "l"}).content
    assert full.startswith(cut) and len(cut) < len(full)
    generated.inject("history_l", "bad_utf8")
    broken = session.get(url, params={"format": "l"}).content
    with pytest.raises(UnicodeDecodeError):
        broken.decode("utf-8")
    generated.inject("history", "hang", seconds=5)
    with pytest.raises(requests.Timeout):
        session.get(url, timeout=0.3)
    generated.inject("history", "session_expired")
    expired = session.get(url)
    assert expired.content == sample("unauthenticated-ticket-show.txt")
    assert session.get(url).content == sample("unauthenticated-ticket-show.txt")
    generated.inject("show", "http500", times=-1)
    assert session.get(f"{generated.rest_url}/ticket/1").status_code == 500
    assert session.get(f"{generated.rest_url}/ticket/1").status_code == 500
    generated.clear_faults()
    with pytest.raises(ValueError, match="unknown fault"):
        generated.inject("show", "meteor")


def test_simulator_service_time_and_log_are_recorded() -> None:
    with RTSimulator(
        tickets=3, service_times={"show": 1}, latency_ms=1, workers=1, log_requests=True
    ) as server:
        session = login(server)
        assert session.get(f"{server.rest_url}/ticket/1/show").status_code == 200
        assert server.requests_log is not None
        assert [kind for _m, _p, kind in server.requests_log] == ["other", "show"]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.rest_url}/ticket/1/show", timeout=2)


def test_simulator_cli_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rt_displayr.sandbox.rt_server",
            "--tickets",
            "5",
            "--port",
            "0",
            "--token",
            "tok-123456789",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        answer = requests.get(
            f"{url}/REST/1.0/ticket/1/show",
            headers={"Authorization": "token tok-123456789"},
            timeout=10,
        )
        assert answer.text.startswith("RT/5.0.3+dfsg-3~deb12u7 200 Ok\n\nid: ticket/1\n")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
