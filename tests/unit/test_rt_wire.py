"""The REST 1.0 parser against real RT 5.0.3 bodies (tests/data/rt-samples)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rt_displayr.errors import (
    RTAuthError,
    RTError,
    RTProtocolError,
    RTQueryError,
    RTSessionExpired,
    RTTicketUnavailable,
    RTTransientError,
)
from rt_displayr.rt import wire
from tests.unit.rt_stub import rt_body, sample


def body_text(name: str, endpoint: str = "test", ticket_id: int | None = None) -> str:
    return wire.parse_response(sample(name), endpoint=endpoint, ticket_id=ticket_id).text


# -- status line and errors ------------------------------------------------------------------


def test_status_line_with_debian_version_is_parsed() -> None:
    response = wire.parse_response(sample("ticket-1-show.txt"), endpoint="show")
    assert (response.version, response.code, response.status) == ("5.0.3+dfsg-3~deb12u7", 200, "Ok")
    assert response.text.startswith("id: ticket/1\n")


def test_status_text_case_does_not_matter() -> None:
    body = b"RT/4.4.3 200 OK\n\nid: ticket/7\n\n"
    assert wire.parse_response(body, endpoint="show").code == 200
    with pytest.raises(RTQueryError):
        wire.parse_response(b"RT/4.4.3 400 BAD REQUEST\n\nInvalid query: 'x'.\n", endpoint="search")


def test_bad_password_is_an_auth_error() -> None:
    with pytest.raises(RTAuthError, match="user name or password"):
        wire.parse_response(sample("bad-password-ticket-show.txt"), endpoint="show")


def test_bare_401_is_an_expired_session_not_a_bad_password() -> None:
    with pytest.raises(RTSessionExpired) as caught:
        wire.parse_response(sample("unauthenticated-ticket-show.txt"), endpoint="history")
    assert not isinstance(caught.value, RTAuthError)
    assert "history" in str(caught.value)


def test_nonexistent_ticket_names_the_ticket() -> None:
    with pytest.raises(RTTicketUnavailable) as caught:
        wire.parse_response(sample("ticket-999999-show-nonexistent.txt"), endpoint="history")
    assert caught.value.ticket_id == 999999


def test_ticket_not_allowed_is_unavailable() -> None:
    body = rt_body("# You are not allowed to display ticket 42.\n\n")
    with pytest.raises(RTTicketUnavailable) as caught:
        wire.parse_response(body, endpoint="history", ticket_id=42)
    assert caught.value.ticket_id == 42


def test_nonexistent_user_is_object_not_found() -> None:
    with pytest.raises(wire.RTObjectNotFound) as caught:
        wire.parse_response(sample("user-nonexistent-show.txt"), endpoint="user")
    assert (caught.value.kind, caught.value.name) == ("user", "nosuchuser")


def test_invalid_query_quotes_rt() -> None:
    body = rt_body(
        "Invalid query: 'Wrong query, expecting a VALUE in 'Status = '.\n", 400, "Bad request"
    )
    with pytest.raises(RTQueryError, match="Invalid query: 'Wrong query, expecting a VALUE"):
        wire.parse_response(body, endpoint="search")


def test_other_rt_status_is_a_final_rt_error() -> None:
    body = rt_body("Unknown listing format: x. (Use i, s, or l.)\n", 400, "Bad request")
    with pytest.raises(RTError, match="Unknown listing format") as caught:
        wire.parse_response(body, endpoint="search")
    assert not isinstance(caught.value, RTTransientError | RTQueryError)


def test_html_page_is_a_protocol_error_naming_endpoint_and_ticket() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>...</body></html>\n"
    with pytest.raises(RTProtocolError, match=r"HTML page .* history of ticket 7"):
        wire.parse_response(page, endpoint="history", ticket_id=7)


def test_empty_body_is_a_protocol_error() -> None:
    with pytest.raises(RTProtocolError, match="empty body for search"):
        wire.parse_response(b"", endpoint="search")


def test_body_cut_without_final_newline_is_transient() -> None:
    whole = sample("ticket-2-history-format-l.txt")
    with pytest.raises(RTTransientError, match="cut short"):
        wire.parse_response(whole[: len(whole) // 2], endpoint="history", ticket_id=2)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    body = rt_body().rstrip(b"\n") + b"\n\nid: ticket/9\nSubject: caf\xe9 \xff menu\n\n"
    response = wire.parse_response(body, endpoint="show")
    record = wire.parse_records(response.text)[0]
    assert record["Subject"] == "caf\ufffd \ufffd menu"


# -- records --------------------------------------------------------------------------------


def test_records_split_on_separator_and_keep_multiline_content() -> None:
    records = wire.parse_records(body_text("ticket-1-history-format-l.txt"))
    assert len(records) == 17
    create = records[0]
    assert create["Content"] == "Hello, my printer is on fire.\nSecond line of the body."
    assert create["Description"] == "Ticket created by root"
    # Content after `Description:` with no blank line between them (transaction 44)
    assert records[3]["Description"] == "Correspondence added by root"
    assert records[3]["Content"] == "Please step away from the printer. We are on it."


def test_only_rt_indentation_is_stripped_from_content() -> None:
    records = wire.parse_records(body_text("ticket-1-history-format-l.txt"))
    lines = records[2]["Content"].split("\n")
    assert lines[0].startswith("Fri Dec 04 11:06:41 2026: Request 1")
    assert lines[2] == ""  # an indented empty line inside Content
    assert lines[3].startswith(" Transaction:  Ticket created by root")  # its own space kept


def test_blank_lines_between_fields_do_not_leak_into_values() -> None:
    records = wire.parse_records(body_text("ticket-1-history-format-l.txt"))
    alice = records[7]
    assert alice["Data"] == "Re: [rtbed #1] reply"
    assert alice["Description"] == "Correspondence added by alice.customer@example.com"


def test_wrapped_list_value_is_kept_whole() -> None:
    record = wire.parse_records(body_text("ticket-1-attachments.txt"))[0]
    entries = record["Attachments"].split("\n")
    assert len(entries) == 35
    assert entries[0] == "1: (Unnamed) (text/plain / 54b),"
    assert entries[-1] == "35: (Unnamed) (text/html / 145b)"


def test_long_key_continuation_uses_four_spaces() -> None:
    text = "id: ticket/1\nCF.{Customer reference}: first\n    second\n"
    assert wire.parse_records(text)[0]["CF.{Customer reference}"] == "first\nsecond"


# -- search ---------------------------------------------------------------------------------


def test_search_format_l_fields() -> None:
    tickets = wire.parse_search(body_text("search-resolved-format-l-fields.txt"))
    assert [t.id for t in tickets] == [1, 2, 3, 4]
    first = tickets[0]
    assert (first.queue, first.owner, first.subject) == ("General", "root", "Printer on fire")
    assert first.requestors == "alice.customer@example.com"
    assert first.last_updated == "Fri Dec 04 11:06:42 2026"
    assert first.status == ""  # not requested in this sample: missing fields are ""


def test_search_format_l_all_fields_has_status() -> None:
    tickets = wire.parse_search(body_text("search-resolved-format-l-all.txt"))
    assert [t.status for t in tickets] == ["resolved"] * 4


def test_search_utf8_subject_and_two_requestors() -> None:
    ticket3 = wire.parse_search(body_text("search-resolved-format-l-fields.txt"))[2]
    assert ticket3.subject == "Café menu — naïve question ✓"
    assert ticket3.requestors == "dave@example.com, erin@example.com"


def test_search_wrapped_requestors_are_joined() -> None:
    # form_compose wraps a multi-valued field once the line reaches 70 characters.
    text = (
        "id: ticket/12\n"
        "Requestors: alice.customer@example.com, bob.builder@example.org,\n"
        "            carol.singer@example.net, dave@example.com\n"
        "LastUpdated: Fri Dec 04 11:06:42 2026\n"
    )
    ticket = wire.parse_search(text)[0]
    assert ticket.requestors == (
        "alice.customer@example.com, bob.builder@example.org, "
        "carol.singer@example.net, dave@example.com"
    )
    assert ticket.last_updated == "Fri Dec 04 11:06:42 2026"


def test_search_no_results_in_each_format() -> None:
    assert wire.parse_search_ids(body_text("search-no-results.txt")) == []
    assert wire.parse_search(rt_body("No matching results.\n").decode()) == []


def test_search_ids_format_i() -> None:
    assert wire.parse_search_ids(body_text("search-resolved-format-i.txt")) == [1, 2, 3, 4]


def test_search_cut_in_last_record_is_transient() -> None:
    text = body_text("search-resolved-format-l-fields.txt")
    cut = text[: text.rindex("Resolved:")]
    with pytest.raises(RTTransientError, match="LastUpdated"):
        wire.parse_search(cut, require=("id", "LastUpdated"))


# -- history --------------------------------------------------------------------------------

EXPECTED_TYPES = {
    1: ["Create", "EmailRecord", "EmailRecord", "Correspond", "EmailRecord", "EmailRecord",
        "Status", "Correspond", "EmailRecord", "Correspond", "EmailRecord", "EmailRecord",
        "EmailRecord", "Comment", "CommentEmailRecord", "Status", "EmailRecord"],
    2: ["Create", "EmailRecord", "EmailRecord", "Correspond", "EmailRecord", "Status",
        "Correspond", "EmailRecord", "EmailRecord", "Status", "EmailRecord"],
    3: ["Create", "EmailRecord", "Correspond", "EmailRecord", "Status", "Status", "EmailRecord"],
    4: ["Create", "EmailRecord", "Set", "EmailRecord", "SetWatcher", "Correspond", "EmailRecord",
        "Status", "Status", "EmailRecord"],
    5: ["Create", "EmailRecord", "EmailRecord", "Correspond", "EmailRecord", "Status"],
}  # fmt: skip


@pytest.mark.parametrize("ticket_id", sorted(EXPECTED_TYPES))
def test_history_types_in_order(ticket_id: int) -> None:
    text = body_text(f"ticket-{ticket_id}-history-format-l.txt", "history", ticket_id)
    history = wire.parse_history(text, ticket_id)
    assert [t.type for t in history] == EXPECTED_TYPES[ticket_id]
    assert [t.id for t in history] == sorted(t.id for t in history)


def test_history_of_ticket_1_in_detail() -> None:
    history = wire.parse_history(body_text("ticket-1-history-format-l.txt"), 1)
    ids = [t.id for t in history]
    assert ids[:9] == [41, 42, 43, 44, 45, 46, 47, 48, 49]
    assert 50 not in ids  # ids are not contiguous
    mails = [(t.type, t.creator) for t in history if t.type in ("Create", "Correspond")]
    assert mails == [
        ("Create", "root"),
        ("Correspond", "root"),
        ("Correspond", "alice.customer@example.com"),
        ("Correspond", "jdoe"),
    ]
    assert history[0].created == datetime(2026, 12, 4, 16, 6, 41, tzinfo=UTC)
    assert history[1].attachment_ids == (2, 3, 4)
    assert history[0].attachment_ids == (1,)
    resolve = history[15]
    assert (resolve.field, resolve.old_value, resolve.new_value) == ("Status", "open", "resolved")
    assert resolve.creator == "root"
    assert resolve.created == datetime(2026, 12, 4, 16, 6, 42, tzinfo=UTC)
    assert resolve.attachment_ids == ()
    assert history[13].description == "Comments added by msmith"


def test_history_owner_change_of_ticket_4() -> None:
    history = wire.parse_history(body_text("ticket-4-history-format-l.txt"), 4)
    given = history[2]
    assert (given.type, given.field, given.old_value, given.new_value) == (
        "Set",
        "Owner",
        "6",
        "31",
    )
    assert history[0].creator == "frank@example.com"


def test_history_single_transaction_body() -> None:
    history = wire.parse_history(body_text("ticket-1-history-id-42.txt"), 1)
    assert [(t.id, t.type, t.attachment_ids) for t in history] == [(42, "EmailRecord", (2, 3, 4))]


def test_history_cut_inside_last_record_is_transient() -> None:
    text = body_text("ticket-3-history-format-l.txt")
    cut = text[: text.rindex("Attachments:")] + "\n"
    with pytest.raises(RTTransientError, match="history of ticket 3 was cut short"):
        wire.parse_history(cut, 3)


def test_history_cut_inside_last_date_is_transient() -> None:
    text = body_text("ticket-5-history-format-l.txt")
    cut = text[: text.rindex("Created: ") + len("Created: 2026-12-04 16:")]
    cut += "\n\nAttachments: \n\n"
    with pytest.raises(RTTransientError):
        wire.parse_history(cut, 5)


def test_history_with_fewer_records_than_rt_counts_is_accepted() -> None:
    # `# 1/17` counts transactions the account may not see; a restricted listing is normal.
    text = body_text("ticket-1-history-format-l.txt")
    first_two = "--".join(text.split("\n--\n")[:2]) + "\n"
    assert [t.id for t in wire.parse_history(first_two, 1)] == [41, 42]


# -- attachments and users ------------------------------------------------------------------


def test_attachment_headers_lowercased_with_bcc() -> None:
    headers = wire.parse_attachment_headers(body_text("ticket-1-attachment-23.txt"))
    assert headers["bcc"] == "audit@example.com"
    assert headers["from"] == '"John Doe via RT" <rt@rtbed.example>'
    assert (
        headers["content-type"]
        == 'multipart/alternative; boundary="----------=_1796400402-15796-2"'
    )
    assert headers["in-reply-to"] == ""
    assert all(name == name.lower() for name in headers)


@pytest.mark.parametrize("attachment", [5, 9, 16, 20, 30])
def test_attachment_headers_bcc_of_admincc_notifications(attachment: int) -> None:
    headers = wire.parse_attachment_headers(body_text(f"ticket-1-attachment-{attachment}.txt"))
    assert headers["bcc"] == "boss@example.com"


def test_attachment_headers_without_bcc() -> None:
    headers = wire.parse_attachment_headers(body_text("ticket-1-attachment-2.txt"))
    assert "bcc" not in headers
    assert headers["to"] == "alice.customer@example.com"


def test_attachment_headers_folded_and_repeated() -> None:
    text = (
        "id: 3\nHeaders: Content-Type: multipart/mixed;\n"
        '          boundary="b1"\n'
        "         Bcc: one@example.com\n"
        "         Bcc: two@example.com\n\nContent: \n\n"
    )
    headers = wire.parse_attachment_headers(text)
    assert headers["content-type"] == 'multipart/mixed; boundary="b1"'
    assert headers["bcc"] == "one@example.com, two@example.com"


def test_attachment_record_cut_before_content_is_transient() -> None:
    text = body_text("ticket-1-attachment-20.txt")
    with pytest.raises(RTTransientError):
        wire.parse_attachment_headers(text[: text.index("BCC:")] + "\n")


def test_user_privileged() -> None:
    assert wire.parse_user_privileged(body_text("user-jdoe-show.txt")) is True
    assert wire.parse_user_privileged(body_text("user-alice-show.txt")) is False
