"""The whole flow under a real Prefect server (prefect_test_harness) against the two simulators."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rt_displayr.errors import DisplayrRejected
from rt_displayr.sandbox.displayr_server import DisplayrSimulator
from rt_displayr.sandbox.rt_server import RTSimulator
from tests.sandbox_expectations import COLUMNS, expected_rows

DATA_NAME = "rt-ticket-history.csv"


@dataclass
class Sandbox:
    rt: RTSimulator
    displayr: DisplayrSimulator
    secret: str
    tmp: Path

    def run(self, **parameters: object) -> dict:
        from flows.rt_to_displayr import rt_to_displayr

        parameters.setdefault("output", str(self.tmp / "out" / DATA_NAME))
        parameters.setdefault("state_dir", str(self.tmp / "state"))
        return rt_to_displayr(**parameters)

    def published(self) -> bytes:
        return self.displayr.data_set(self.secret, DATA_NAME)


@pytest.fixture
def sandbox(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    secret = str(uuid.uuid4())
    with RTSimulator(tickets=60, seed=3) as rt, DisplayrSimulator([secret]) as displayr:
        displayr.create_data_set(secret, DATA_NAME)
        monkeypatch.setenv("RT_URL", rt.url)
        monkeypatch.setenv("RT_USER", "root")
        monkeypatch.setenv("RT_PASSWORD", "password")
        monkeypatch.setenv("DISPLAYR_URL", displayr.url)
        monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", secret)
        yield Sandbox(rt, displayr, secret, tmp_path)


def read_csv(data: bytes | str) -> tuple[list[str], list[dict[str, str]]]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def without_row_numbers(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{column: row[column] for column in COLUMNS} for row in rows]


def test_dry_run_writes_every_column_as_the_scenario_says_and_uploads_nothing(
    sandbox: Sandbox,
) -> None:
    expected = expected_rows(sandbox.rt.sim)
    assert (
        len(expected) > 30
    )  # the generated scenario has enough resolved tickets to mean something

    summary = sandbox.run(dry_run=True)

    header, rows = read_csv(Path(summary["csv"]).read_bytes())
    assert header == ["", *COLUMNS]
    assert [row[""] for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
    assert without_row_numbers(rows) == expected
    assert summary["rows"] == len(expected)
    assert sandbox.displayr.uploads == {} and sandbox.displayr.imports == []
    # the scenario covers what the columns are about
    assert any(row["Dispatcher"] for row in expected)
    assert any(not row["FirstResponseTimeUTC"] for row in expected)
    assert any(row["NumClientEmails"] == "0" for row in expected)


def test_a_cold_run_asks_rt_once_for_the_list_and_at_most_twice_per_ticket(
    sandbox: Sandbox,
) -> None:
    sandbox.run(dry_run=True)
    counts = sandbox.rt.counts
    tickets = len(expected_rows(sandbox.rt.sim))
    assert counts["search"] == 1
    assert counts["history_l"] == tickets
    assert counts["history_item"] == 0 and counts["show"] == 0
    assert counts["attachment"] <= tickets


def test_publish_imports_exactly_the_written_csv(sandbox: Sandbox) -> None:
    summary = sandbox.run(row_numbers=False)

    written = Path(summary["csv"]).read_bytes()
    assert sandbox.published() == written
    header, rows = read_csv(written)
    assert header == COLUMNS
    assert rows == expected_rows(sandbox.rt.sim)
    [upload] = sandbox.displayr.uploads.values()
    assert upload.filename == DATA_NAME and upload.field_name == "file"
    [entry] = sandbox.displayr.imports
    assert entry["accepted"] and entry["data_name"] == DATA_NAME and entry["abort"] == "OnWarning"


def test_rerun_fetches_only_new_and_changed_tickets_and_drops_those_that_left(
    sandbox: Sandbox,
) -> None:
    sim = sandbox.rt
    sandbox.run(dry_run=True)
    resolved = [t.id for t in sim.sim.tickets.values() if t.status == "resolved"]
    changed, reopened = resolved[3], resolved[7]
    sim.add_correspondence(changed, "alice.customer@example.com")
    sim.set_status(changed, "resolved")
    sim.set_status(reopened, "open")
    new = sim.add_ticket("Brand new", ["new.client@example.com"])
    sim.set_status(new, "resolved")
    sim.reset_counts()

    summary = sandbox.run(dry_run=True)

    assert sim.counts["search"] == 1
    assert sim.counts["history_l"] == 2  # the changed ticket and the new one, nothing else
    assert (summary["new"], summary["changed"], summary["removed"]) == (1, 1, 1)
    _, rows = read_csv(Path(summary["csv"]).read_bytes())
    assert without_row_numbers(rows) == expected_rows(sim.sim)
    ids = {int(row["TicketID"]) for row in rows}
    assert new in ids and changed in ids and reopened not in ids

    sim.reset_counts()
    unchanged = sandbox.run(dry_run=True)
    assert sim.counts["search"] == 1 and sim.counts["history_l"] == 0
    assert unchanged["unchanged"] == len(rows)


def test_a_rejected_import_keeps_the_last_good_csv_and_does_not_advance_state(
    sandbox: Sandbox,
) -> None:
    first = sandbox.run()
    good = Path(first["csv"]).read_bytes()
    sandbox.rt.add_correspondence(
        next(t.id for t in sandbox.rt.sim.tickets.values() if t.status == "resolved"), "jdoe"
    )
    sandbox.displayr.inject("import", "http400")
    sandbox.rt.reset_counts()

    with pytest.raises(DisplayrRejected):
        sandbox.run()

    assert sandbox.published() == good
    assert Path(first["csv"]).read_bytes() == good  # the last good CSV stays
    pending = Path(first["csv"]).with_name("rt-ticket-history.pending.csv")
    assert pending.read_bytes() != good  # the rejected one waits beside it, for inspection
    assert sandbox.rt.counts["history_l"] == 1
    sandbox.rt.reset_counts()
    retry = sandbox.run(dry_run=True)
    # The store did not advance: the ticket still counts as changed. Its history comes from the
    # failed run's cached chunk, so RT is not asked again.
    assert retry["changed"] == 1
    assert sandbox.rt.counts["history_l"] == 0
