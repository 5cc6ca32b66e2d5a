from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from rt_displayr.errors import ValidationFailed
from rt_displayr.metrics import COLUMNS, is_staff_by_name, metrics_frame
from rt_displayr.models import Mail, TicketFacts, TicketSummary, parse_rt_utc
from rt_displayr.schema import MetricsValidationFailed, validate_metrics


def ticket(ticket_id: int) -> TicketFacts:
    return TicketFacts(
        ticket=TicketSummary(
            id=ticket_id,
            queue="General",
            owner="jdoe",
            subject='Printer "on fire", again',
            requestors="alice@example.com, bob@example.org",
            status="resolved",
            last_updated="Fri Dec 04 11:06:42 2026",
        ),
        mails=(
            Mail("Create", "alice@example.com", parse_rt_utc("2026-12-04 16:00:00")),
            Mail("Correspond", "root", parse_rt_utc("2026-12-04 16:10:00")),
            Mail("Correspond", "jdoe", parse_rt_utc("2026-12-04 17:00:00")),
        ),
        created=parse_rt_utc("2026-12-04 16:00:00"),
        resolved=parse_rt_utc("2026-12-05 09:00:00"),
        dispatcher="root",
    )


@pytest.fixture
def good() -> pd.DataFrame:
    return metrics_frame([ticket(n) for n in (12, 40, 41)], is_staff_by_name)


def failure_of(frame: pd.DataFrame) -> MetricsValidationFailed:
    with pytest.raises(MetricsValidationFailed) as caught:
        validate_metrics(frame)
    return caught.value


def test_good_frame_passes_unchanged(good: pd.DataFrame) -> None:
    validated = validate_metrics(good)
    pd.testing.assert_frame_equal(validated, good)


def test_empty_frame_from_metrics_passes() -> None:
    assert len(validate_metrics(metrics_frame([], is_staff_by_name))) == 0


def test_object_dtype_text_columns_are_accepted(good: pd.DataFrame) -> None:
    as_object = good.astype({name: object for name in COLUMNS if name != "TicketID"}).astype(
        {"NumClientEmails": "int64", "NumStaffEmails": "int64"}
    )
    validate_metrics(as_object)


def test_no_response_and_no_resolution_are_valid(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[0, ["FirstResponseTimeUTC", "LastResponseTimeUTC", "ResolvedTimeUTC"]] = ""
    validate_metrics(frame)


def _set(column: str, value: object, row: int = 1) -> Callable[[pd.DataFrame], None]:
    def change(frame: pd.DataFrame) -> None:
        frame.loc[row, column] = value

    return change


@pytest.mark.parametrize(
    ("change", "check", "column"),
    [
        (_set("TicketID", 12), "field_uniqueness", "TicketID"),
        (_set("TicketID", 0), "greater_than(0)", "TicketID"),
        (_set("NumClientEmails", 2), "counts_match_sender_chain", "*"),
        (_set("EmailSenderChain", "alice@example.com,root"), "counts_match_sender_chain", "*"),
        (_set("StaffEmailers", "root"), "staff_emailers_match_count", "*"),
        (_set("ResolvedTimeUTC", "2026-12-01 00:00:00"), "resolved_not_before_received", "*"),
        (_set("FirstResponseTimeUTC", "2026-12-04 18:00:00"), "first_response_not_after_last", "*"),
        (_set("LastResponseTimeUTC", ""), "first_response_not_after_last", "*"),
        (_set("EmailReceivedTimeUTC", "04/12/2026 16:00"), "utc_time_text", "EmailReceivedTimeUTC"),
        (_set("LastResponseTimeUTC", "2026-12-4 17:00:00"), "utc_time_text", "LastResponseTimeUTC"),
        (_set("Subject", None), "not_nullable", "Subject"),
    ],
)
def test_each_broken_row_invariant_is_reported_with_its_ticket(
    good: pd.DataFrame, change: Callable[[pd.DataFrame], None], check: str, column: str
) -> None:
    frame = good.copy()
    change(frame)
    error = failure_of(frame)
    assert isinstance(error, ValidationFailed)
    hits = [f for f in error.failures if f["check"] == check and f["column"] == column]
    assert hits, error.failures
    assert any(f["row"] == 1 for f in hits)
    assert "\n" not in str(error)
    assert str(error).startswith("metrics failed validation: ")
    assert "TicketID" in str(error)
    assert f"| {check} | {column} | 1 |" in error.report_markdown


def test_negative_count_is_rejected(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[0, "NumClientEmails"] = -1
    frame.loc[0, "NumStaffEmails"] = 4  # keeps the chain total at 3
    frame.loc[0, "StaffEmailers"] = "root,jdoe,root,jdoe"
    error = failure_of(frame)
    assert [(f["check"], f["column"], f["ticket_id"]) for f in error.failures] == [
        ("greater_than_or_equal_to(0)", "NumClientEmails", 12)
    ]


def test_message_counts_checks_and_rows_and_names_ticket_ids(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[0, "NumStaffEmails"] = 9  # two frame checks fail on row 0
    frame.loc[1, "ResolvedTimeUTC"] = "2020-01-01 00:00:00"
    assert str(failure_of(frame)) == (
        "metrics failed validation: 3 checks failed on 2 rows (TicketID 12, 40)"
    )


def test_message_elides_beyond_five_ticket_ids() -> None:
    frame = metrics_frame([ticket(n) for n in range(1, 9)], is_staff_by_name)
    frame["NumStaffEmails"] = 0
    message = str(failure_of(frame))
    assert message.endswith("on 8 rows (TicketID 1, 2, 3, 4, 5, …)")


@pytest.mark.parametrize(
    ("reshape", "check", "column"),
    [
        (lambda f: f.drop(columns="Dispatcher"), "column_in_dataframe", "Dispatcher"),
        # Frame-wide checks that need the missing column crash; still one ValidationFailed.
        (lambda f: f.drop(columns="EmailSenderChain"), "column_in_dataframe", "EmailSenderChain"),
        (lambda f: f.assign(Extra="x"), "column_in_schema", "Extra"),
        (lambda f: f[["RTQueue", "TicketID", *COLUMNS[2:]]], "column_ordered", "TicketID"),
        (lambda f: f.astype({"NumStaffEmails": "float64"}), "dtype('int64')", "NumStaffEmails"),
    ],
)
def test_structural_failures_name_the_column(
    good: pd.DataFrame, reshape: Callable[[pd.DataFrame], pd.DataFrame], check: str, column: str
) -> None:
    error = failure_of(reshape(good))
    assert any(f["check"] == check and f["column"] == column for f in error.failures), (
        error.failures
    )
    assert column in str(error)
    assert "\n" not in str(error)


def test_report_markdown_is_a_table_with_meanings(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[2, "StaffEmailers"] = "a|b"
    report = failure_of(frame).report_markdown
    lines = report.splitlines()
    assert lines[0] == "| check | column | row | TicketID | value |"
    assert lines[1] == "| --- | --- | --- | --- | --- |"
    assert lines[2] == "| staff_emailers_match_count | * | 2 | 41 |  |"
    assert "- `staff_emailers_match_count`: entries in StaffEmailers == NumStaffEmails" in lines


def test_failures_are_plain_python_for_json(good: pd.DataFrame) -> None:
    import json

    frame = good.copy()
    frame.loc[0, "TicketID"] = -5
    failures = failure_of(frame).failures
    assert json.loads(json.dumps(failures))[0]["ticket_id"] == -5
