from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from rt_displayr import csv_output
from rt_displayr.csv_output import csv_bytes, write_csv
from rt_displayr.metrics import is_staff_by_name, metrics_frame


@pytest.fixture
def tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "TicketID": pd.Series([7, 12, 30], dtype="int64"),
            "Subject": ['Say "hi", please', "line1\nline2 café ✓", ""],
        }
    )


EXPECTED_WITH_NUMBERS = (
    '"","TicketID","Subject"\n'
    '"1","7","Say ""hi"", please"\n'
    '"2","12","line1\nline2 café ✓"\n'
    '"3","30",""\n'
).encode()

EXPECTED_WITHOUT_NUMBERS = (
    '"TicketID","Subject"\n"7","Say ""hi"", please"\n"12","line1\nline2 café ✓"\n"30",""\n'
).encode()


def test_csv_bytes_match_r_write_csv_layout(tiny: pd.DataFrame) -> None:
    assert csv_bytes(tiny) == EXPECTED_WITH_NUMBERS


def test_csv_bytes_without_row_numbers(tiny: pd.DataFrame) -> None:
    assert csv_bytes(tiny, row_numbers=False) == EXPECTED_WITHOUT_NUMBERS


def test_write_csv_writes_exact_bytes_and_creates_parents(
    tmp_path: Path, tiny: pd.DataFrame
) -> None:
    target = tmp_path / "out" / "deeper" / "rt.csv"
    written = write_csv(tiny, target)
    assert written == target.resolve()
    assert target.read_bytes() == EXPECTED_WITH_NUMBERS
    assert not target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert sorted(p.name for p in target.parent.iterdir()) == ["rt.csv"]


def test_write_csv_row_numbers_off(tmp_path: Path, tiny: pd.DataFrame) -> None:
    target = write_csv(tiny, tmp_path / "rt.csv", row_numbers=False)
    assert target.read_bytes() == EXPECTED_WITHOUT_NUMBERS


def test_write_csv_replaces_an_existing_file(tmp_path: Path, tiny: pd.DataFrame) -> None:
    target = tmp_path / "rt.csv"
    target.write_bytes(b"old contents that are longer than the new ones " * 100)
    write_csv(tiny, target)
    assert target.read_bytes() == EXPECTED_WITH_NUMBERS


def test_metrics_frame_header_has_empty_row_number_name() -> None:
    frame = metrics_frame([], is_staff_by_name)
    assert csv_bytes(frame) == (
        b'"","TicketID","RTQueue","Owner","EmailReceivedTimeUTC","Requestors","ResolvedTimeUTC",'
        b'"NumClientEmails","NumStaffEmails","StaffEmailers","FirstResponseTimeUTC",'
        b'"LastResponseTimeUTC","Subject","EmailSenderChain","Dispatcher"\n'
    )


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot render this cell")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "rt.csv"
    target.write_bytes(b"last good\n")
    rows = [f"row {n}" for n in range(5000)] + [Unprintable()]
    broken = pd.DataFrame({"Subject": pd.Series(rows, dtype=object)})
    with pytest.raises(RuntimeError, match="cannot render"):
        write_csv(broken, target)
    assert target.read_bytes() == b"last good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rt.csv"]


def test_failed_rename_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, tiny: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "rt.csv"
    target.write_bytes(b"last good\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(csv_output.os, "replace", refuse)
    with pytest.raises(OSError, match="simulated crash"):
        write_csv(tiny, target)
    assert target.read_bytes() == b"last good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rt.csv"]


def test_data_is_synced_before_the_rename(
    tmp_path: Path, tiny: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append("fsync")
        real_fsync(descriptor)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(csv_output.os, "fsync", fsync)
    monkeypatch.setattr(csv_output.os, "replace", replace)
    write_csv(tiny, tmp_path / "rt.csv")
    assert events.index("fsync") < events.index("replace")
