"""From one ticket's history to the few facts the metrics need (`TicketFacts`).

The cost per ticket is fixed: one history request (format l carries every transaction) and at
most one attachment request for the dispatcher, never one request per history item, so a run's
request count grows with the number of tickets and not with the length of their histories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from rt_displayr.errors import RTProtocolError
from rt_displayr.models import Mail, TicketFacts, TicketSummary, Transaction
from rt_displayr.rt.client import RTClient
from rt_displayr.rt.wire import RTObjectNotFound

MAIL_TYPES = ("Create", "Correspond")  # comments never reach the requestor, so they are not mail
RESOLVED = "resolved"


def _is_resolve(transaction: Transaction) -> bool:
    """A status change to resolved (RT 5 writes Type Status; older RTs Type Set, Field Status)."""
    return (
        transaction.type == "Status"
        or (transaction.type == "Set" and transaction.field == "Status")
    ) and transaction.new_value == RESOLVED


def facts_from_history(
    summary: TicketSummary, transactions: Sequence[Transaction], dispatcher: str
) -> TicketFacts:
    """Derive the mail chain, creation and resolution instants (UTC) from a history. Pure.

    A ticket with no status change to resolved was created resolved (RT records no Status
    transaction for the initial status), so it resolved when it was created; unless the search
    says it is in another status, in which case it has not resolved at all.
    """
    mails = tuple(
        Mail(type=t.type, creator=t.creator, created=t.created)
        for t in transactions
        if t.type in MAIL_TYPES
    )
    created = next((t.created for t in transactions if t.type == "Create"), None)
    resolved = next((t.created for t in reversed(transactions) if _is_resolve(t)), None)
    if resolved is None and summary.status in ("", RESOLVED):
        resolved = created
    return TicketFacts(
        ticket=summary, mails=mails, created=created, resolved=resolved, dispatcher=dispatcher
    )


def first_email_record_attachment(transactions: Sequence[Transaction]) -> int | None:
    """The lowest attachment of the first outgoing mail (`EmailRecord`).

    That is the multipart root RT stores first (usually 0 bytes): the one carrying the mail's
    headers, including the `BCC:` that names the dispatcher.
    """
    for transaction in transactions:
        if transaction.type == "EmailRecord":
            return min(transaction.attachment_ids, default=None)
    return None


def dispatcher_from_headers(headers: Mapping[str, str]) -> str:
    """The `Bcc` header's value (any case), stripped; "" when the mail had none."""
    for name, value in headers.items():
        if name.strip().lower() == "bcc":
            return value.strip()
    return ""


def fetch_ticket_facts(client: RTClient, summary: TicketSummary) -> TicketFacts:
    """One history request plus at most one attachment request, then `facts_from_history`.

    An attachment RT no longer shows only costs the dispatcher (""), not the ticket.
    """
    with client.counting() as tally:
        try:
            transactions = client.history(summary.id)
        except RTProtocolError:
            client.ensure_visible(summary.id)  # a hidden ticket: raises RTTicketUnavailable
            raise
        dispatcher = ""
        attachment_id = first_email_record_attachment(transactions)
        if attachment_id is not None:
            try:
                headers = client.attachment_headers(summary.id, attachment_id)
            except RTObjectNotFound:
                headers = {}
            dispatcher = dispatcher_from_headers(headers)
    facts = facts_from_history(summary, transactions, dispatcher)
    return replace(facts, requests_made=tally.count)
