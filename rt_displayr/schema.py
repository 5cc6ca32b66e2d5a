"""The contract of the published data set, checked before anything is written or uploaded.

A frame that breaks it means a bug or a surprise in RT's data, and publishing it would silently
corrupt the dashboard; so every check runs (lazily) and the operator gets one line naming the
failing tickets plus a markdown table for the run's artifact, instead of the first error only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import pandera.pandas as pa

from rt_displayr.errors import ValidationFailed
from rt_displayr.metrics import CHAIN_SEPARATOR
from rt_displayr.models import RT_UTC_FORMAT

# How many ticket ids the one-line message names before it says "…".
_MESSAGE_IDS = 5
# Rows of the markdown report; the rest is counted, not listed, so an artifact stays readable.
_REPORT_ROWS = 50


class MetricsValidationFailed(ValidationFailed):
    """ValidationFailed with the details a Prefect artifact needs."""

    def __init__(self, message: str, *, failures: list[dict[str, Any]], report_markdown: str):
        super().__init__(message)
        self.failures = failures
        self.report_markdown = report_markdown


def _is_utc_text(value: str) -> bool:
    if value == "":
        return True
    try:
        datetime.strptime(value, RT_UTC_FORMAT)
    except (TypeError, ValueError):
        return False
    # strptime accepts unpadded fields ("2026-1-4 ..."), which would break text ordering.
    return len(value) == 19


def _entries(series: pd.Series) -> pd.Series:
    """Number of names in a comma-joined list; "" is an empty list, not one empty name."""
    text = series.astype(str)
    return (text.str.count(CHAIN_SEPARATOR) + 1).where(text != "", 0)


def _counts_match_chain(df: pd.DataFrame) -> pd.Series:
    return df["NumClientEmails"] + df["NumStaffEmails"] == _entries(df["EmailSenderChain"])


def _staff_emailers_match_count(df: pd.DataFrame) -> pd.Series:
    return _entries(df["StaffEmailers"]) == df["NumStaffEmails"]


def _resolved_after_received(df: pd.DataFrame) -> pd.Series:
    # Fixed-width UTC text orders like the instants it names.
    received, resolved = df["EmailReceivedTimeUTC"], df["ResolvedTimeUTC"]
    return (received == "") | (resolved == "") | (resolved >= received)


def _first_before_last_response(df: pd.DataFrame) -> pd.Series:
    first, last = df["FirstResponseTimeUTC"], df["LastResponseTimeUTC"]
    both_missing = (first == "") & (last == "")
    return both_missing | ((first != "") & (last != "") & (first <= last))


def _text(*checks: pa.Check) -> pa.Column:
    return pa.Column(str, checks=list(checks), nullable=False)


def _time() -> pa.Column:
    return _text(
        pa.Check(
            _is_utc_text,
            element_wise=True,
            name="utc_time_text",
        )
    )


def _count() -> pa.Column:
    return pa.Column("int64", pa.Check.ge(0), nullable=False)


METRICS_SCHEMA = pa.DataFrameSchema(
    {
        "TicketID": pa.Column("int64", pa.Check.gt(0), nullable=False, unique=True),
        "RTQueue": _text(),
        "Owner": _text(),
        "EmailReceivedTimeUTC": _time(),
        "Requestors": _text(),
        "ResolvedTimeUTC": _time(),
        "NumClientEmails": _count(),
        "NumStaffEmails": _count(),
        "StaffEmailers": _text(),
        "FirstResponseTimeUTC": _time(),
        "LastResponseTimeUTC": _time(),
        "Subject": _text(),
        "EmailSenderChain": _text(),
        "Dispatcher": _text(),
    },
    checks=[
        pa.Check(
            _counts_match_chain,
            name="counts_match_sender_chain",
        ),
        pa.Check(
            _staff_emailers_match_count,
            name="staff_emailers_match_count",
        ),
        pa.Check(
            _resolved_after_received,
            name="resolved_not_before_received",
        ),
        pa.Check(
            _first_before_last_response,
            name="first_response_not_after_last",
        ),
    ],
    strict=True,
    ordered=True,
    coerce=False,
    name="metrics",
)
# What each named check means, for the report's readers (pandera only knows the name).
CHECK_MEANINGS = {
    "utc_time_text": f'"" or UTC text {RT_UTC_FORMAT}',
    "counts_match_sender_chain": "NumClientEmails + NumStaffEmails == entries in EmailSenderChain",
    "staff_emailers_match_count": "entries in StaffEmailers == NumStaffEmails",
    "resolved_not_before_received": "ResolvedTimeUTC >= EmailReceivedTimeUTC",
    "first_response_not_after_last": (
        "FirstResponseTimeUTC <= LastResponseTimeUTC, both set or both empty"
    ),
}


def validate_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Return `df` if it meets the contract, else raise `MetricsValidationFailed` with every failure."""
    try:
        return METRICS_SCHEMA.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = _failures(df, exc.failure_cases)
        raise MetricsValidationFailed(
            _one_line(failures), failures=failures, report_markdown=_markdown(failures)
        ) from None


def _failures(df: pd.DataFrame, cases: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per (check, column, row), with the ticket id when the row is known.

    A frame-wide check reports the failing row once per column; those repeats collapse into one
    failure whose column is "*". Structural failures (missing, extra, misplaced column) carry
    that column's name and no row.
    """
    ids = df["TicketID"] if "TicketID" in df.columns else None
    known_columns = {str(name) for name in df.columns} | set(METRICS_SCHEMA.columns)
    failures: list[dict[str, Any]] = []
    seen: set[tuple[str, str, Any]] = set()
    for case in cases.to_dict("records"):
        index = case.get("index")
        index = None if index is None or pd.isna(index) else index
        check = str(case.get("check"))
        value = _clean(case.get("failure_case"))
        if case.get("schema_context") != "DataFrameSchema":
            column = _clean(case.get("column"))
        elif index is None and value in known_columns:
            # A missing, extra or misplaced column: pandera names it as the failure case.
            column, value = value, ""
        else:
            # A frame-wide check: no single cell is to blame (or the check itself crashed,
            # and the value is its exception).
            column = "*"
            if index is not None:
                value = ""
        key = (check, column, index)
        if key in seen:
            continue
        seen.add(key)
        ticket_id = None
        if index is not None and ids is not None and index in ids.index:
            found = ids.loc[index]
            ticket_id = found if not isinstance(found, pd.Series) else found.iloc[0]
            ticket_id = None if pd.isna(ticket_id) else _plain(ticket_id)
        failures.append(
            {
                "check": check,
                "column": column,
                "row": _plain(index),
                "ticket_id": ticket_id,
                "value": value,
            }
        )
    failures.sort(key=lambda f: (f["row"] is not None, _sort_key(f["row"]), f["check"]))
    return failures


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so failures serialise to JSON for artifacts and logs."""
    return value.item() if hasattr(value, "item") else value


def _clean(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return "<missing>"
    except (TypeError, ValueError):
        pass
    return str(value)


def _one_line(failures: list[dict[str, Any]]) -> str:
    checks = sorted({(f["check"], f["column"]) for f in failures})
    rows = sorted({f["row"] for f in failures if f["row"] is not None}, key=str)
    ids = sorted({f["ticket_id"] for f in failures if f["ticket_id"] is not None}, key=_sort_key)
    message = f"metrics failed validation: {_plural(len(checks), 'check')} failed"
    if rows:
        shown = ", ".join(str(i) for i in ids[:_MESSAGE_IDS])
        more = ", …" if len(ids) > _MESSAGE_IDS else ""
        message += f" on {_plural(len(rows), 'row')}"
        if ids:
            message += f" (TicketID {shown}{more})"
    else:
        # Structural failures (missing column, wrong dtype, order) have no row to name.
        named = "; ".join(
            f"{column}: {check}" if column not in ("", "*") else check
            for check, column in checks[:_MESSAGE_IDS]
        )
        message += f" ({named}{', …' if len(checks) > _MESSAGE_IDS else ''})"
    return " ".join(message.split())


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _markdown(failures: list[dict[str, Any]]) -> str:
    lines = [
        "| check | column | row | TicketID | value |",
        "| --- | --- | --- | --- | --- |",
    ]
    for failure in failures[:_REPORT_ROWS]:
        cells = [
            failure["check"],
            failure["column"],
            "" if failure["row"] is None else failure["row"],
            "" if failure["ticket_id"] is None else failure["ticket_id"],
            failure["value"],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(failures) > _REPORT_ROWS:
        lines.append(f"\n{len(failures) - _REPORT_ROWS} more failures not shown.")
    meanings = sorted({f["check"] for f in failures} & CHECK_MEANINGS.keys())
    if meanings:
        lines.append("")
        lines.extend(f"- `{name}`: {_cell(CHECK_MEANINGS[name])}" for name in meanings)
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """Markdown-safe cell: pipes escaped, newlines flattened, long text cut."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"
