"""What the flow does when RT, Displayr or the data misbehave: one test per row of docs/failures.md.

Every test runs the real flow under the Prefect test harness against the two simulators; the
faults are injected into the simulators, not mocked into the clients.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rt_displayr.displayr import DisplayrProtocolError
from rt_displayr.errors import (
    ConfigError,
    DisplayrRejected,
    PublishRefused,
    RTAuthError,
    RTProtocolError,
    RTQueryError,
    RTSessionExpired,
    RTTicketUnavailable,
    RTTransientError,
    ValidationFailed,
)
from rt_displayr.state import TicketStore
from tests import faults_support
from tests.faults_support import (
    DATA_NAME,
    RT_PASSWORD,
    RT_TOKEN,
    FaultSandbox,
    read_rows,
)
from tests.sandbox_expectations import COLUMNS

RT_LOGGER = "rt_displayr.rt.client"
fault_sandbox = faults_support.fault_sandbox


def resolved_ids(sandbox: FaultSandbox) -> list[int]:
    return sorted(t.id for t in sandbox.rt.sim.tickets.values() if t.status == "resolved")


def history_path(ticket_id: int) -> str:
    """A fault `match` for one ticket's history request only."""
    return rf"/ticket/{ticket_id}/history$"


def assert_nothing_published(sandbox: FaultSandbox) -> None:
    assert sandbox.displayr.uploads == {} and sandbox.displayr.imports == []
    assert not sandbox.output.exists()


# --- RT: transient faults are retried, and the result is the fault-free one -------------------


def test_rt_5xx_or_reset_on_a_few_requests_is_retried_and_the_csv_is_the_fault_free_one(
    fault_sandbox: FaultSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fault_sandbox
    sandbox.rt.inject("search", "http500", times=1)
    sandbox.rt.inject("history_l", "http502", times=2)
    sandbox.rt.inject("history_l", "reset", times=2)
    sandbox.rt.inject("attachment", "http500", times=1)

    summary = sandbox.run()

    header, rows = read_rows(sandbox.output.read_bytes())
    assert header == ["", *COLUMNS]
    assert rows == sandbox.expected()
    assert sandbox.published() == sandbox.output.read_bytes()
    assert summary["missing"] == []
    retries = [r for r in caplog.records if r.name == RT_LOGGER and "retry" in r.getMessage()]
    assert len(retries) == 6


def test_rt_429_waits_as_retry_after_says_then_succeeds(
    fault_sandbox: FaultSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fault_sandbox
    sandbox.rt.inject("search", "http429", times=1, retry_after=1)

    summary = sandbox.run(dry_run=True)

    [wait] = [r.getMessage() for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert "retry 1/2 in 1.0 s" in wait
    assert summary["rows"] == len(sandbox.expected())
    assert sandbox.rt.counts["search"] == 2


def test_rt_hang_times_out_is_retried_then_fails_naming_the_ticket(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    victim = resolved_ids(sandbox)[2]
    sandbox.rt.inject(history_path(victim), "hang", times=-1, seconds=5)
    sandbox.monkeypatch.setenv("RT_MAX_RETRIES", "1")
    import tasks.rt

    # one Prefect retry of the chunk instead of three keeps this test at four timeouts
    sandbox.monkeypatch.setattr(tasks.rt.fetch_histories, "retries", 1)

    with pytest.raises(RTTransientError) as failure:
        sandbox.run()

    message = str(failure.value)
    assert f"history of ticket {victim}" in message and "within 1 s" in message
    assert "gave up after 2 attempts" in message and "\n" not in message
    # RT_MAX_RETRIES per request, and a Prefect retry of the chunk on top
    victim_requests = [p for _, p, _ in sandbox.rt.requests_log or [] if f"/{victim}/hist" in p]
    assert len(victim_requests) == 2 * 2
    assert_nothing_published(sandbox)


# --- RT: sessions and credentials -------------------------------------------------------------


def test_expired_password_session_logs_in_again_once_and_continues(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.rt.inject("history_l", "session_expired", times=1)

    sandbox.run(concurrency=4)

    _, rows = read_rows(sandbox.output.read_bytes())
    assert rows == sandbox.expected()
    # one login for the search, one for the chunk, one renewal after the expiry
    assert sandbox.logins() == 3


def test_expired_cookie_session_fails_at_once(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    sandbox.use_cookie()
    sandbox.rt.inject("history_l", "session_expired", times=1)

    with pytest.raises(RTSessionExpired, match="session cookie is no longer valid") as failure:
        sandbox.run()

    assert "\n" not in str(failure.value)
    assert sandbox.logins() == 0
    assert sandbox.rt.counts["history_l"] <= 8  # the threads already in flight, no retries
    assert_nothing_published(sandbox)


def test_token_no_longer_accepted_fails_at_once(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    sandbox.use_token()
    sandbox.rt.inject("history_l", "session_expired", times=1)

    with pytest.raises(RTAuthError, match="RT rejected the auth token in RT_TOKEN"):
        sandbox.run()

    assert sandbox.logins() == 0
    assert_nothing_published(sandbox)


def test_wrong_password_fails_at_once_with_one_line_and_no_retries(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.monkeypatch.setenv("RT_PASSWORD", "not-" + RT_PASSWORD)

    with pytest.raises(RTAuthError) as failure:
        sandbox.run()

    message = str(failure.value)
    assert message == (
        "RT rejected the password of user 'root': Your username or password is incorrect"
    )
    assert sandbox.rt.counts["total"] == 1  # the one login, never repeated
    assert_nothing_published(sandbox)


def test_bad_token_fails_at_once_with_one_line_and_no_retries(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.use_token()
    sandbox.monkeypatch.setenv("RT_TOKEN", RT_TOKEN[::-1])

    with pytest.raises(RTAuthError) as failure:
        sandbox.run()

    assert "\n" not in str(failure.value) and RT_TOKEN[::-1] not in str(failure.value)
    assert sandbox.rt.counts["total"] == 1
    assert_nothing_published(sandbox)


def test_invalid_ticketsql_fails_at_once_quoting_rt(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox

    with pytest.raises(RTQueryError) as failure:
        sandbox.run(query="Status = 'resolved' AND (")

    message = str(failure.value)
    assert message.startswith("RT rejected the TicketSQL: Invalid query: ")
    assert "Incomplete query, last element (OPEN_PAREN)" in message
    assert sandbox.rt.counts["search"] == 1
    assert_nothing_published(sandbox)


# --- RT: a ticket gone between search and fetch ------------------------------------------------


def remove_after_search(sandbox: FaultSandbox, victims: dict[int, str]) -> None:
    """Delete or hide tickets right after RT answered the search: the race a real RT allows."""
    search = sandbox.rt._search

    def search_then_remove(args):  # type: ignore[no-untyped-def]
        answer = search(args)
        for victim, how in victims.items():
            getattr(sandbox.rt, f"{how}_ticket")(victim)
        return answer

    sandbox.monkeypatch.setattr(sandbox.rt, "_search", search_then_remove)


def test_tickets_deleted_or_hidden_after_the_search_are_skipped_warned_and_counted(
    fault_sandbox: FaultSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fault_sandbox
    deleted, hidden = resolved_ids(sandbox)[4:6]
    gone = (str(deleted), str(hidden))
    expected = [row for row in sandbox.expected() if row["TicketID"] not in gone]
    remove_after_search(sandbox, {deleted: "delete", hidden: "hide"})

    summary = sandbox.run()

    assert summary["missing"] == [deleted, hidden]
    _, rows = read_rows(sandbox.output.read_bytes())
    assert rows == expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"skipping ticket {deleted}: Ticket {deleted} does not exist" in w for w in warnings)
    assert any(f"skipping ticket {hidden}: You are not allowed" in w for w in warnings)


def test_ticket_gone_after_the_search_fails_the_run_when_asked(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    victim = resolved_ids(sandbox)[4]
    remove_after_search(sandbox, {victim: "delete"})

    with pytest.raises(RTTicketUnavailable) as failure:
        sandbox.run(on_missing_ticket="fail")

    assert failure.value.ticket_id == victim
    assert str(failure.value) == f"Ticket {victim} does not exist. (history of ticket {victim})"
    assert_nothing_published(sandbox)


# --- RT: bodies that are not REST 1.0 ----------------------------------------------------------


def test_cut_short_body_or_proxy_error_page_is_retried(
    fault_sandbox: FaultSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fault_sandbox
    first, second, third = resolved_ids(sandbox)[:3]
    sandbox.rt.inject(history_path(first), "truncated", times=1)
    sandbox.rt.inject(history_path(second), "truncated", times=1, abort=True)
    sandbox.rt.inject(history_path(third), "html", times=1, status=502)

    sandbox.run()

    _, rows = read_rows(sandbox.output.read_bytes())
    assert rows == sandbox.expected()
    retried = " ".join(r.getMessage() for r in caplog.records if r.name == RT_LOGGER)
    assert f"history of ticket {first} was cut short (no final newline)" in retried
    assert f"history of ticket {second} was cut short mid-transfer" in retried
    assert f"HTTP 502 for history of ticket {third}" in retried


def test_html_page_in_a_200_fails_naming_ticket_and_endpoint(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    victim = resolved_ids(sandbox)[1]
    sandbox.rt.inject(history_path(victim), "html", times=-1, status=200)

    with pytest.raises(RTProtocolError) as failure:
        sandbox.run()

    message = str(failure.value)
    assert f"for history of ticket {victim}" in message and "HTML page" in message
    assert "\n" not in message
    assert_nothing_published(sandbox)


def test_invalid_utf8_in_a_mail_body_is_replaced_and_the_run_succeeds(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.rt.inject("history_l", "bad_utf8", times=-1)

    summary = sandbox.run()

    _, rows = read_rows(sandbox.output.read_bytes())
    assert rows == sandbox.expected()
    assert summary["status"] == "published"


# --- Displayr ----------------------------------------------------------------------------------


def test_displayr_5xx_or_reset_is_retried_and_published(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    sandbox.displayr.inject("upload", "http500")
    sandbox.displayr.inject("upload", "reset")
    sandbox.displayr.inject("import", "reset")
    sandbox.displayr.inject("import", "http500")

    summary = sandbox.run()

    assert summary["status"] == "published"
    assert sandbox.published() == sandbox.output.read_bytes()
    assert not sandbox.pending.exists()
    assert len(sandbox.displayr.requests) == 6


def committed_at(sandbox: FaultSandbox) -> object:
    with TicketStore.open(
        sandbox.state_dir, rt_url=sandbox.rt.url, query="Status='resolved'", data_name=DATA_NAME
    ) as store:
        return store.last_committed_at()


def test_displayr_final_failure_keeps_the_last_good_csv_and_the_new_one_pending(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.run()
    good = sandbox.output.read_bytes()
    committed = committed_at(sandbox)
    sandbox.reply_to(resolved_ids(sandbox)[0])

    for endpoint, fault, error, words in [
        ("upload", "no_upload_id", DisplayrProtocolError, "no UploadID header"),
        ("upload", "http400", DisplayrRejected, r"refused the upload .*Bad request \(injected\)"),
        ("import", "http400", DisplayrRejected, r"refused the import .*Bad request \(injected\)"),
    ]:
        sandbox.displayr.inject(endpoint, fault, times=1)
        requests_before = len(sandbox.displayr.requests)

        with pytest.raises(error, match=words):
            sandbox.run()

        assert sandbox.output.read_bytes() == good
        assert sandbox.published() == good
        assert sandbox.pending.exists() and sandbox.pending.read_bytes() != good
        # final: the refused call is not repeated
        sent = len(sandbox.displayr.requests) - requests_before
        assert sent == (1 if endpoint == "upload" else 2), fault
        assert committed_at(sandbox) == committed


def test_displayr_5xx_that_outlasts_the_retries_fails_and_keeps_the_csv(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.run()
    good = sandbox.output.read_bytes()
    sandbox.reply_to(resolved_ids(sandbox)[0])
    sandbox.displayr.inject("import", "http500", times=100)

    with pytest.raises(Exception, match="Displayr import failed after 5 attempt") as failure:
        sandbox.run()

    assert sandbox.secret not in str(failure.value)
    assert sandbox.output.read_bytes() == good and sandbox.published() == good
    assert sandbox.pending.exists()


# --- the publish guard -------------------------------------------------------------------------


def test_sharp_shrink_is_refused_before_upload_unless_allowed(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    first = sandbox.run()
    good = sandbox.output.read_bytes()
    ids = resolved_ids(sandbox)
    for ticket_id in ids[: len(ids) // 2 + 1]:
        sandbox.rt.set_status(ticket_id, "open")
    uploads = len(sandbox.displayr.uploads)

    with pytest.raises(PublishRefused, match="--allow-shrink") as failure:
        sandbox.run()

    assert f"{first['rows']} last published" in str(failure.value)
    assert len(sandbox.displayr.uploads) == uploads
    assert sandbox.output.read_bytes() == good and sandbox.published() == good

    allowed = sandbox.run(allow_shrink=True, abort="Never")
    assert allowed["rows"] == len(ids) - (len(ids) // 2 + 1)
    assert sandbox.published() == sandbox.output.read_bytes() != good


def test_a_drop_within_max_drop_is_published(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    sandbox.run()
    ids = resolved_ids(sandbox)
    sandbox.rt.set_status(ids[0], "open")

    summary = sandbox.run(max_drop=0.1, abort="Never")

    assert summary["rows"] == len(ids) - 1


def test_empty_result_is_never_published_unless_allowed(fault_sandbox: FaultSandbox) -> None:
    sandbox = fault_sandbox
    nothing = "Status = 'rejected'"

    with pytest.raises(PublishRefused, match="empty data set"):
        sandbox.run(query=nothing)
    assert_nothing_published(sandbox)

    summary = sandbox.run(query=nothing, allow_empty=True)
    assert summary["rows"] == 0
    header, rows = read_rows(sandbox.published())
    assert header == ["", *COLUMNS] and rows == []


# --- Displayr refuses the import ---------------------------------------------------------------


def test_import_with_an_unknown_project_secret_fails_with_displayrs_words_redacted(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    unknown = str(uuid.uuid4())
    sandbox.monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", unknown)

    with pytest.raises(DisplayrRejected) as failure:
        sandbox.run()

    message = str(failure.value)
    assert "No document matches the project secret" in message
    assert unknown not in message and "\n" not in message
    assert not sandbox.output.exists() and sandbox.pending.exists()


def test_import_into_an_unknown_data_set_fails_with_displayrs_words(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox

    with pytest.raises(DisplayrRejected, match=r"has no data set named 'no-such-data\.csv'"):
        sandbox.run(data_name="no-such-data.csv")


def test_import_warning_with_abort_on_warning_fails_with_displayrs_words(
    fault_sandbox: FaultSandbox,
) -> None:
    sandbox = fault_sandbox
    sandbox.run()
    good = sandbox.output.read_bytes()
    sandbox.rt.set_status(resolved_ids(sandbox)[0], "open")  # one case fewer: Displayr warns

    with pytest.raises(DisplayrRejected, match="Import aborted because of warnings") as failure:
        sandbox.run(abort="OnWarning")

    assert "fewer cases" in str(failure.value)
    assert sandbox.published() == good and sandbox.output.read_bytes() == good


# --- validation --------------------------------------------------------------------------------


def test_validation_failure_publishes_nothing_keeps_the_csv_and_reports_an_artifact(
    fault_sandbox: FaultSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    import tasks.metrics

    sandbox = fault_sandbox
    sandbox.run()
    good = sandbox.output.read_bytes()
    uploads = len(sandbox.displayr.uploads)
    victim = resolved_ids(sandbox)[3]
    derive = tasks.metrics.metrics_frame

    def broken_metrics(*args, **kwargs):  # type: ignore[no-untyped-def]
        frame = derive(*args, **kwargs)
        frame.loc[frame["TicketID"] == victim, "NumClientEmails"] = -1
        return frame

    monkeypatch.setattr(tasks.metrics, "metrics_frame", broken_metrics)

    state = sandbox.run_state()

    assert state.is_failed()
    with pytest.raises(ValidationFailed, match=str(victim)):
        state.result()
    assert len(sandbox.displayr.uploads) == uploads
    assert sandbox.output.read_bytes() == good and sandbox.published() == good
    assert not sandbox.pending.exists()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    [report] = [a for a in artifacts if a.key == "rt-displayr-validation"]
    assert str(victim) in str(report.data)


# --- retry settings ----------------------------------------------------------------------------


def test_task_retry_delay_scale_is_read_at_import() -> None:
    code = "from tasks.rt import fetch_histories; print(fetch_histories.retry_delay_seconds)"
    scaled = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "RT_DISPLAYR_TASK_RETRY_DELAY_SCALE": "0.5"},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert scaled.stdout.strip() == "[5.0, 10.0, 20.0]"


def test_task_retry_delay_scale_rejects_nonsense() -> None:
    from tasks.retry import retry_delay_scale, task_retry_delays

    assert task_retry_delays(1.0) == [10.0, 20.0, 40.0]
    assert retry_delay_scale({}) == 1.0
    with pytest.raises(ConfigError, match="RT_DISPLAYR_TASK_RETRY_DELAY_SCALE must be a number"):
        retry_delay_scale({"RT_DISPLAYR_TASK_RETRY_DELAY_SCALE": "fast"})


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
