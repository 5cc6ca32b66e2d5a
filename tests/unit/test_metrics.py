from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from rt_displayr.metrics import (
    COLUMNS,
    format_utc,
    is_staff_by_name,
    metrics_frame,
    privileged_staff_rule,
    queue_summary,
    staff_names,
    ticket_row,
    weekly_first_response,
)
from rt_displayr.models import Mail, TicketFacts, TicketSummary, parse_rt_utc


def at(text: str) -> datetime:
    return parse_rt_utc(text)


def facts(
    ticket_id: int = 1,
    mails: tuple[tuple[str, str, str], ...] = (),
    *,
    created: str | None = "2026-12-04 16:06:41",
    resolved: str | None = None,
    queue: str = "General",
    requestors: str = "alice.customer@example.com",
    dispatcher: str = "",
) -> TicketFacts:
    return TicketFacts(
        ticket=TicketSummary(
            id=ticket_id,
            queue=queue,
            owner="jdoe",
            subject=f"Ticket {ticket_id}",
            requestors=requestors,
            status="resolved",
            last_updated="Fri Dec 04 11:06:42 2026",
        ),
        mails=tuple(Mail(type=t, creator=c, created=at(when)) for t, c, when in mails),
        created=None if created is None else at(created),
        resolved=None if resolved is None else at(resolved),
        dispatcher=dispatcher,
    )


CLIENT_THEN_STAFF = (
    ("Create", "alice.customer@example.com", "2026-12-04 16:06:41"),
    ("Correspond", "root", "2026-12-04 16:10:00"),
    ("Correspond", "alice.customer@example.com", "2026-12-04 17:00:00"),
    ("Correspond", "jdoe", "2026-12-05 09:30:00"),
)


def test_columns_are_the_legacy_data_set_in_order() -> None:
    assert COLUMNS == [
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


def test_is_staff_by_name_treats_addresses_as_clients() -> None:
    assert is_staff_by_name("root")
    assert is_staff_by_name("jdoe")
    assert not is_staff_by_name("alice.customer@example.com")


def test_client_and_staff_mails_are_split_and_chained_in_history_order() -> None:
    row = ticket_row(
        facts(mails=CLIENT_THEN_STAFF, resolved="2026-12-05 10:00:00", dispatcher="root"),
        is_staff_by_name,
    )
    assert list(row) == COLUMNS
    assert (
        row["EmailSenderChain"] == "alice.customer@example.com,root,alice.customer@example.com,jdoe"
    )
    assert row["NumClientEmails"] == 2
    assert row["NumStaffEmails"] == 2
    assert row["StaffEmailers"] == "root,jdoe"
    assert row["FirstResponseTimeUTC"] == "2026-12-04 16:10:00"
    assert row["LastResponseTimeUTC"] == "2026-12-05 09:30:00"
    assert row["EmailReceivedTimeUTC"] == "2026-12-04 16:06:41"
    assert row["ResolvedTimeUTC"] == "2026-12-05 10:00:00"
    assert row["Dispatcher"] == "root"
    assert (row["TicketID"], row["RTQueue"], row["Owner"], row["Subject"]) == (
        1,
        "General",
        "jdoe",
        "Ticket 1",
    )


def test_duplicate_staff_emailers_are_kept_in_order() -> None:
    row = ticket_row(
        facts(
            mails=(
                ("Create", "bob@example.org", "2026-12-04 16:00:00"),
                ("Correspond", "root", "2026-12-04 16:01:00"),
                ("Correspond", "root", "2026-12-04 16:02:00"),
                ("Correspond", "jdoe", "2026-12-04 16:03:00"),
            )
        ),
        is_staff_by_name,
    )
    assert row["StaffEmailers"] == "root,root,jdoe"
    assert row["NumStaffEmails"] == 3
    assert row["LastResponseTimeUTC"] == "2026-12-04 16:03:00"


def test_comments_never_count_because_they_are_not_mail() -> None:
    # extract.py leaves Comment transactions out of facts.mails; a row built from the mails of a
    # ticket whose only staff activity was a comment has no response at all.
    row = ticket_row(
        facts(mails=(("Create", "bob@example.org", "2026-12-04 16:00:00"),)), is_staff_by_name
    )
    assert row["NumStaffEmails"] == 0
    assert row["StaffEmailers"] == ""
    assert row["EmailSenderChain"] == "bob@example.org"


def test_only_correspondence_is_a_response_even_if_a_comment_slips_in() -> None:
    row = ticket_row(
        facts(
            mails=(
                ("Create", "bob@example.org", "2026-12-04 16:00:00"),
                ("Comment", "msmith", "2026-12-04 16:05:00"),
                ("Correspond", "jdoe", "2026-12-04 16:30:00"),
            )
        ),
        is_staff_by_name,
    )
    assert row["FirstResponseTimeUTC"] == "2026-12-04 16:30:00"


def test_no_staff_reply_leaves_response_times_empty() -> None:
    row = ticket_row(
        facts(
            mails=(
                ("Create", "bob@example.org", "2026-12-04 16:00:00"),
                ("Correspond", "bob@example.org", "2026-12-04 18:00:00"),
            )
        ),
        is_staff_by_name,
    )
    assert row["FirstResponseTimeUTC"] == ""
    assert row["LastResponseTimeUTC"] == ""
    assert row["NumClientEmails"] == 2
    assert row["ResolvedTimeUTC"] == ""


def test_staff_created_ticket_create_is_not_a_response() -> None:
    staff_only = ticket_row(
        facts(mails=(("Create", "root", "2026-12-04 16:00:00"),)), is_staff_by_name
    )
    assert staff_only["NumStaffEmails"] == 1
    assert staff_only["StaffEmailers"] == "root"
    assert staff_only["FirstResponseTimeUTC"] == ""

    answered = ticket_row(
        facts(
            mails=(
                ("Create", "root", "2026-12-04 16:00:00"),
                ("Correspond", "frank@example.com", "2026-12-04 17:00:00"),
                ("Correspond", "jdoe", "2026-12-04 18:00:00"),
            )
        ),
        is_staff_by_name,
    )
    assert answered["FirstResponseTimeUTC"] == "2026-12-04 18:00:00"
    assert answered["StaffEmailers"] == "root,jdoe"


def test_wrapped_requestors_are_kept_whole() -> None:
    many = ", ".join(f"person{n}@example.com" for n in range(12))
    row = ticket_row(facts(requestors=many), is_staff_by_name)
    assert row["Requestors"] == many


def test_format_utc_converts_offsets_and_treats_naive_as_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert format_utc(datetime(2026, 12, 4, 11, 6, 41, tzinfo=eastern)) == "2026-12-04 16:06:41"
    assert format_utc(datetime(2026, 12, 4, 16, 6, 41, 999999)) == "2026-12-04 16:06:41"
    assert format_utc(None) == ""


def test_privileged_rule_for_sites_where_staff_log_in_with_addresses() -> None:
    rule = privileged_staff_rule({"Jane.Staff@Example.com", "root"})
    ticket = facts(
        mails=(
            ("Create", "carol@client.example", "2026-12-04 16:00:00"),
            ("Correspond", "jane.staff@example.com", "2026-12-04 16:20:00"),
        )
    )
    row = ticket_row(ticket, rule)
    assert row["StaffEmailers"] == "jane.staff@example.com"
    assert row["NumClientEmails"] == 1
    assert row["FirstResponseTimeUTC"] == "2026-12-04 16:20:00"
    # The name rule would have taken the staff address for a client.
    assert ticket_row(ticket, is_staff_by_name)["FirstResponseTimeUTC"] == ""


def test_staff_names_lists_each_creator_once() -> None:
    tickets = [facts(1, CLIENT_THEN_STAFF), facts(2, (("Create", "root", "2026-12-04 16:00:00"),))]
    assert staff_names(tickets) == {"alice.customer@example.com", "root", "jdoe"}
    assert staff_names(tickets[1]) == {"root"}


def test_metrics_frame_is_sorted_typed_and_exact() -> None:
    frame = metrics_frame([facts(30, CLIENT_THEN_STAFF), facts(4), facts(12)], is_staff_by_name)
    assert list(frame.columns) == COLUMNS
    assert frame["TicketID"].tolist() == [4, 12, 30]
    assert list(frame.index) == [0, 1, 2]
    assert str(frame["TicketID"].dtype) == "int64"
    assert str(frame["NumStaffEmails"].dtype) == "int64"
    assert frame["Subject"].tolist() == ["Ticket 4", "Ticket 12", "Ticket 30"]
    assert frame.loc[2, "StaffEmailers"] == "root,jdoe"


def test_metrics_frame_of_no_tickets_still_has_the_columns() -> None:
    frame = metrics_frame([], is_staff_by_name)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 0


def test_metrics_frame_handles_a_generator_of_many_tickets() -> None:
    count = 20_000
    frame = metrics_frame(
        (facts(n, CLIENT_THEN_STAFF) for n in range(count, 0, -1)), is_staff_by_name
    )
    assert len(frame) == count
    assert frame["TicketID"].is_monotonic_increasing
    assert int(frame["NumStaffEmails"].sum()) == 2 * count


def test_queue_summary_medians_minutes_to_first_response() -> None:
    def replied(ticket_id: int, queue: str, minutes: int) -> TicketFacts:
        start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        reply = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")
        return facts(
            ticket_id,
            (("Create", "c@example.com", "2026-12-07 09:00:00"), ("Correspond", "root", reply)),
            created="2026-12-07 09:00:00",
            queue=queue,
        )

    frame = metrics_frame(
        [
            replied(1, "Support", 10),
            replied(2, "Support", 30),
            replied(3, "Support", 60),
            replied(4, "General", 5),
            facts(5, queue="General"),
        ],
        is_staff_by_name,
    )
    assert queue_summary(frame) == [
        {"queue": "General", "tickets": 2, "answered": 1, "median_first_response_minutes": 5.0},
        {"queue": "Support", "tickets": 3, "answered": 3, "median_first_response_minutes": 30.0},
    ]


def test_queue_summary_of_unanswered_queue_has_no_median() -> None:
    frame = metrics_frame([facts(1, queue="Quiet")], is_staff_by_name)
    assert queue_summary(frame) == [
        {"queue": "Quiet", "tickets": 1, "answered": 0, "median_first_response_minutes": None}
    ]


def test_weekly_first_response_groups_by_monday_of_receipt() -> None:
    frame = metrics_frame(
        [
            # Sunday 2026-12-06 belongs to the week of Monday 2026-11-30.
            facts(
                1,
                (
                    ("Create", "c@x.example", "2026-12-06 23:00:00"),
                    ("Correspond", "root", "2026-12-07 01:00:00"),
                ),
                created="2026-12-06 23:00:00",
            ),
            facts(
                2,
                (
                    ("Create", "c@x.example", "2026-12-07 08:00:00"),
                    ("Correspond", "root", "2026-12-07 08:20:00"),
                ),
                created="2026-12-07 08:00:00",
            ),
            facts(
                3,
                (
                    ("Create", "c@x.example", "2026-12-09 08:00:00"),
                    ("Correspond", "root", "2026-12-09 08:40:00"),
                ),
                created="2026-12-09 08:00:00",
            ),
            facts(4, created="2026-12-21 08:00:00"),  # unanswered: its week is left out
        ],
        is_staff_by_name,
    )
    assert weekly_first_response(frame) == [("2026-11-30", 120.0), ("2026-12-07", 30.0)]
