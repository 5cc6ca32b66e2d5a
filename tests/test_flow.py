"""The whole flow under a real Prefect server (prefect_test_harness) against the two simulators."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt_displayr.errors import DisplayrRejected
from rt_displayr.sandbox.rt_server import RTSimulator
from tests.conftest import DATA_NAME, Sandbox
from tests.sandbox_expectations import COLUMNS, expected_rows, read_csv, without_row_numbers


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


def test_staff_who_log_in_with_addresses_are_found_by_rts_privileged_flag(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RTSimulator(tickets=40, seed=3, staff_login_emails=True) as rt:
        monkeypatch.setenv("RT_URL", rt.url)
        monkeypatch.setenv("RT_USER", "root")
        monkeypatch.setenv("RT_PASSWORD", "password")
        from flows.rt_to_displayr import rt_to_displayr

        summary = rt_to_displayr(
            dry_run=True,
            staff="privileged",
            output=str(tmp_path / "out.csv"),
            state_dir=str(tmp_path / "state"),
        )
        distinct_senders = {
            t.creator
            for ticket in rt.sim.tickets.values()
            if ticket.status == "resolved"
            for t in ticket.transactions
            if t.type in ("Create", "Correspond")
        }
        expected = expected_rows(rt.sim, privileged=True)
        user_lookups = rt.counts["user"]

    _, rows = read_csv(Path(summary["csv"]).read_bytes())
    assert without_row_numbers(rows) == expected
    by_name = expected_rows(rt.sim)
    assert expected != by_name  # the two rules really differ on this scenario
    assert user_lookups == len(distinct_senders)  # each distinct sender looked up once
