"""Per-ticket facts from the real format-l histories of tickets 1-5."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from rt_displayr.errors import RTTicketUnavailable
from rt_displayr.extract import (
    dispatcher_from_headers,
    facts_from_history,
    fetch_ticket_facts,
    first_email_record_attachment,
)
from rt_displayr.models import TicketSummary, Transaction
from rt_displayr.rt import RTClient, wire
from rt_displayr.settings import RTConnection
from tests.unit.rt_stub import Reply, Request, RTStub, rt_body, sample


def at(second: int) -> datetime:
    return datetime(2026, 12, 4, 16, 6, second, tzinfo=UTC)


def history(ticket_id: int) -> list[Transaction]:
    response = wire.parse_response(
        sample(f"ticket-{ticket_id}-history-format-l.txt"), endpoint="history", ticket_id=ticket_id
    )
    return wire.parse_history(response.text, ticket_id)


def summary(ticket_id: int, status: str = "resolved") -> TicketSummary:
    tickets = wire.parse_search(sample("search-resolved-format-l-all.txt").decode())
    found = {t.id: t for t in tickets}.get(ticket_id)
    if found is None:  # ticket 5 is open, so the resolved search does not list it
        found = TicketSummary(ticket_id, "General", "jdoe", "s", "r@example.com", "open", "x")
    return replace(found, status=status)


EXPECTED = {
    1: (
        [
            ("Create", "root", at(41)),
            ("Correspond", "root", at(41)),
            ("Correspond", "alice.customer@example.com", at(41)),
            ("Correspond", "jdoe", at(42)),
        ],
        at(41),
        at(42),
        2,
    ),
    2: (
        [
            ("Create", "jdoe", at(42)),
            ("Correspond", "jdoe", at(42)),
            ("Correspond", "bob@example.org", at(42)),
        ],
        at(42),
        at(42),
        37,
    ),
    3: ([("Create", "msmith", at(42)), ("Correspond", "msmith", at(42))], at(42), at(43), 58),
    4: (
        [("Create", "frank@example.com", at(43)), ("Correspond", "jdoe", at(43))],
        at(43),
        at(43),
        69,
    ),
}


@pytest.mark.parametrize("ticket_id", sorted(EXPECTED))
def test_facts_of_resolved_tickets(ticket_id: int) -> None:
    mails, created, resolved, _ = EXPECTED[ticket_id]
    facts = facts_from_history(summary(ticket_id), history(ticket_id), "dispatch@example.com")
    assert [(m.type, m.creator, m.created) for m in facts.mails] == mails
    assert (facts.created, facts.resolved) == (created, resolved)
    assert facts.dispatcher == "dispatch@example.com"
    assert facts.ticket == summary(ticket_id)


def test_comments_and_outgoing_mail_are_not_mail() -> None:
    facts = facts_from_history(summary(1), history(1), "")
    assert "msmith" not in [m.creator for m in facts.mails]  # msmith only commented
    assert "RT_System" not in [m.creator for m in facts.mails]


def test_open_ticket_has_no_resolution() -> None:
    facts = facts_from_history(summary(5, status="open"), history(5), "")
    assert [(m.type, m.creator) for m in facts.mails] == [
        ("Create", "root"),
        ("Correspond", "jdoe"),
    ]
    assert (facts.created, facts.resolved) == (at(43), None)


def test_ticket_created_resolved_resolves_at_creation() -> None:
    create = history(3)[0]
    facts = facts_from_history(summary(3), [create], "")
    assert facts.resolved == facts.created == at(42)


def test_last_resolution_wins_after_a_reopen() -> None:
    def status(tid: int, old: str, new: str, second: int) -> Transaction:
        return Transaction(
            tid, "Status", "jdoe", at(second), field="Status", old_value=old, new_value=new
        )

    transactions = [
        history(2)[0],
        status(90, "open", "resolved", 50),
        status(91, "resolved", "open", 55),
        status(92, "open", "resolved", 59),
        status(93, "resolved", "rejected", 58),  # a later change to another status does not count
    ]
    assert facts_from_history(summary(2), transactions, "").resolved == at(59)


def test_history_without_create_has_no_creation() -> None:
    facts = facts_from_history(summary(1), history(1)[1:], "")
    assert facts.created is None
    assert facts.resolved == at(42)


@pytest.mark.parametrize("ticket_id", [*sorted(EXPECTED), 5])
def test_first_email_record_attachment(ticket_id: int) -> None:
    expected = {**{t: e[3] for t, e in EXPECTED.items()}, 5: 83}
    assert first_email_record_attachment(history(ticket_id)) == expected[ticket_id]


def test_first_email_record_attachment_is_the_lowest_id() -> None:
    mail = Transaction(7, "EmailRecord", "RT_System", at(1), attachment_ids=(31, 30, 32))
    assert first_email_record_attachment([history(1)[0], mail]) == 30


def test_no_email_record_means_no_attachment() -> None:
    create = history(1)[0]
    assert first_email_record_attachment([create]) is None
    bare = Transaction(8, "EmailRecord", "RT_System", at(1))
    assert first_email_record_attachment([create, bare]) is None


def test_dispatcher_from_headers() -> None:
    headers = wire.parse_attachment_headers(
        wire.parse_response(sample("ticket-1-attachment-23.txt"), endpoint="attachment").text
    )
    assert dispatcher_from_headers(headers) == "audit@example.com"
    assert dispatcher_from_headers({"BCC": "  boss@example.com \n"}) == "boss@example.com"
    assert dispatcher_from_headers({"to": "alice.customer@example.com"}) == ""
    assert dispatcher_from_headers({}) == ""


# -- fetching through the client ---------------------------------------------------------------


def without_transactions(body: bytes, drop: set[int]) -> bytes:
    """Ticket 1's history without some transactions, so the first outgoing mail is another."""
    records = body.decode().split("\n--\n")
    kept = [r for r in records if not any(f"\nid: {tid}\n" in r for tid in drop)]
    return "\n--\n".join(kept).encode()


class HistoryRT:
    def __init__(self) -> None:
        self.routes = {
            # transaction 52 (attachments 20-22, Bcc boss@) becomes the first outgoing mail
            "ticket/1/history": without_transactions(
                sample("ticket-1-history-format-l.txt"), {42, 43, 45, 46, 49}
            ),
            "ticket/1/attachments/20": sample("ticket-1-attachment-20.txt"),
            "ticket/999/history": sample("ticket-999999-show-nonexistent.txt").replace(
                b"999999", b"999"
            ),
        }
        for n, first in ((2, 37), (3, 58), (4, 69), (5, 83)):
            self.routes[f"ticket/{n}/history"] = sample(f"ticket-{n}-history-format-l.txt")
            self.routes[f"ticket/{n}/attachments/{first}"] = sample(
                f"ticket-{n}-attachment-{first}.txt"
            )

    def __call__(self, request: Request) -> Reply:
        key = request.path.split("/REST/1.0/", 1)[1]
        return Reply(self.routes.get(key, rt_body("# Invalid attachment id: 0\n\n")))


def client_for(url: str) -> RTClient:
    return RTClient(RTConnection(url=url, token=SecretStr("1-14-0123456789abcdef")), pool_size=4)


def test_fetch_ticket_facts_makes_two_requests() -> None:
    with RTStub(HistoryRT()) as stub, client_for(stub.url) as client:
        facts = fetch_ticket_facts(client, summary(1))
        paths = stub.paths()
    assert paths == ["/REST/1.0/ticket/1/history", "/REST/1.0/ticket/1/attachments/20"]
    assert facts.dispatcher == "boss@example.com"
    assert facts.requests_made == 2
    assert [m.creator for m in facts.mails] == [
        "root",
        "root",
        "alice.customer@example.com",
        "jdoe",
    ]
    assert facts.resolved == at(42)


def test_fetch_without_outgoing_mail_makes_one_request() -> None:
    rt = HistoryRT()
    rt.routes["ticket/1/history"] = without_transactions(
        sample("ticket-1-history-format-l.txt"), {42, 43, 45, 46, 49, 52, 53, 54, 58}
    )
    with RTStub(rt) as stub, client_for(stub.url) as client:
        facts = fetch_ticket_facts(client, summary(1))
        assert stub.paths() == ["/REST/1.0/ticket/1/history"]
    assert (facts.dispatcher, facts.requests_made) == ("", 1)


def test_fetch_with_vanished_attachment_keeps_the_ticket() -> None:
    rt = HistoryRT()
    del rt.routes["ticket/1/attachments/20"]
    with RTStub(rt) as stub, client_for(stub.url) as client:
        facts = fetch_ticket_facts(client, summary(1))
    assert (facts.dispatcher, facts.requests_made, len(facts.mails)) == ("", 2, 4)


def test_fetch_missing_ticket_raises_with_its_id() -> None:
    with (
        RTStub(HistoryRT()) as stub,
        client_for(stub.url) as client,
        pytest.raises(RTTicketUnavailable) as caught,
    ):
        fetch_ticket_facts(client, TicketSummary(999, "", "", "", "", "resolved", ""))
    assert caught.value.ticket_id == 999


def test_fetch_in_a_thread_pool_counts_each_ticket_alone() -> None:
    with RTStub(HistoryRT()) as stub, client_for(stub.url) as client:
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda n: fetch_ticket_facts(client, summary(n)), [1, 2, 3, 4, 5] * 3)
            )
        assert client.requests_made == 30
    assert [f.requests_made for f in results] == [2] * 15
    assert [f.ticket.id for f in results] == [1, 2, 3, 4, 5] * 3
    assert [f.created for f in results[:5]] == [at(41), at(42), at(42), at(43), at(43)]
