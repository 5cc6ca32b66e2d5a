"""The pipeline against a real Request Tracker 5.0.3, compared with rows the scenario predicts.

The first group checks the scenario itself against RT (so a failure in the second group points at
the pipeline, not at the seeding); the second runs the `rt_to_displayr` flow.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests

from rt_displayr.errors import RTAuthError, RTQueryError, RTTicketUnavailable
from tests.integration.rt5 import RT_TIMEZONE, RTRest, RTServer
from tests.integration.scenario import (
    AUDITOR,
    RTView,
    Scenario,
    expected_rows,
    first_outgoing_bcc,
)
from tests.sandbox_expectations import COLUMNS

pytestmark = pytest.mark.integration

RESOLVED = "Status='resolved'"


# the scenario, checked against RT itself


def test_rest1_status_line_carries_the_real_status(rt_server: RTServer) -> None:
    """HTTP says 200 either way; only the body's first line tells a refused login apart."""
    anonymous = requests.get(f"{rt_server.url}/REST/1.0/", timeout=30)
    assert anonymous.status_code == 200
    assert re.match(r"RT/5\.0\.3\S* 401 Credentials required\n", anonymous.text)
    wrong = requests.post(
        f"{rt_server.url}/REST/1.0/",
        data={"user": "root", "pass": rt_server.password + "x"},
        timeout=30,
    )
    assert wrong.status_code == 200
    assert wrong.text.split("\n")[0].endswith(" 401 Credentials required")


def test_rt_shows_local_time_and_rest2_utc(scenario: Scenario, root_rest: RTRest) -> None:
    """RT runs in America/New_York: REST 1.0 `show` is local, REST 2 is UTC with `Z`."""
    ticket = scenario.tickets["mail-thread"]
    show = root_rest.rest1(f"ticket/{ticket.id}/show", {"fields": "Created"})
    local_text = re.search(r"^Created: (.+)$", show, re.MULTILINE).group(1)  # type: ignore[union-attr]
    local = datetime.strptime(local_text, "%a %b %d %H:%M:%S %Y").replace(
        tzinfo=ZoneInfo(RT_TIMEZONE)
    )
    utc_text = root_rest.rest2(f"ticket/{ticket.id}")["Created"]
    assert utc_text.endswith("Z")
    utc = datetime.fromisoformat(utc_text.replace("Z", "+00:00"))
    assert local == utc
    assert local.utcoffset() != utc.utcoffset()


def test_every_seeded_instant_falls_in_its_window(
    scenario: Scenario, rt_views: dict[int, RTView]
) -> None:
    rows = expected_rows(scenario, rt_views)  # raises when RT disagrees with the seed
    assert [row["TicketID"] for row in rows] == [str(t.id) for t in scenario.listed()]
    assert all(row["EmailReceivedTimeUTC"] and row["ResolvedTimeUTC"] for row in rows)


def test_rt_records_owner_queue_and_comments_as_seeded(
    scenario: Scenario, rt_views: dict[int, RTView]
) -> None:
    for ticket in scenario.tickets.values():
        view = rt_views[ticket.id]
        assert (view.queue, view.owner) == (ticket.queue, ticket.owner), ticket.key
        seeded_comments = sum(event.kind == "comment" for event in ticket.events)
        assert view.comments == seeded_comments, ticket.key


def test_resolved_search_lists_exactly_the_resolved_tickets(
    scenario: Scenario, root_rest: RTRest
) -> None:
    body = root_rest.rest1("search/ticket", {"query": RESOLVED, "format": "i"})
    listed = sorted(int(n) for n in re.findall(r"^ticket/(\d+)$", body, re.MULTILINE))
    assert listed == [ticket.id for ticket in scenario.listed()]
    assert scenario.tickets["still-open"].id not in listed


def test_reopened_ticket_was_resolved_twice(
    scenario: Scenario, rt_views: dict[int, RTView]
) -> None:
    assert len(rt_views[scenario.tickets["reopened"].id].resolved_times) == 2


def test_outgoing_mail_and_dispatcher_as_the_scenario_claims(
    scenario: Scenario, rt_views: dict[int, RTView], root_rest: RTRest
) -> None:
    for ticket in scenario.tickets.values():
        view = rt_views[ticket.id]
        assert bool(view.email_records) == ticket.sends_mail, ticket.key
        assert first_outgoing_bcc(root_rest, view) == ticket.dispatcher, ticket.key


def test_many_requestors_wrap_in_rest1(scenario: Scenario, root_rest: RTRest) -> None:
    """RT folds a long `Requestors:` value onto indented lines; a parser must unfold it."""
    ticket = scenario.tickets["many-requestors"]
    body = root_rest.rest1(f"ticket/{ticket.id}/show", {"fields": "Requestors"})
    value = body.split("Requestors:", 1)[1]
    assert "\n " in value.rstrip()
    assert len(ticket.requestors) == 4


def test_account_without_show_outgoing_email_sees_no_email_record(
    scenario: Scenario, rt_server: RTServer, root_rest: RTRest
) -> None:
    ticket = scenario.tickets["admincc-bcc"]
    with RTRest(rt_server.url, AUDITOR, rt_server.password) as auditor:
        hidden = auditor.rest1(f"ticket/{ticket.id}/history")
    shown = root_rest.rest1(f"ticket/{ticket.id}/history")
    assert "Outgoing email recorded" in shown
    assert "Outgoing email recorded" not in hidden
    assert "Ticket created by root" in hidden


# the flow


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = [
        {str(key): str(value) for key, value in row.items()} for row in frame.to_dict("records")
    ]
    return [str(column) for column in frame.columns], rows


def _run_flow(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    url: str,
    user: str,
    password: str,
    **parameters: Any,
) -> dict[str, Any]:
    monkeypatch.setenv("RT_URL", url)
    monkeypatch.setenv("RT_USER", user)
    monkeypatch.setenv("RT_PASSWORD", password)
    from flows.rt_to_displayr import rt_to_displayr

    arguments: dict[str, Any] = {
        "query": RESOLVED,
        "dry_run": True,
        "output": str(tmp_path / "out.csv"),
        "row_numbers": False,
        "state_dir": str(tmp_path / "state"),
    }
    arguments.update(parameters)
    return rt_to_displayr(**arguments)


def _error_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


@pytest.mark.usefixtures("prefect_harness")
def test_flow_csv_matches_the_scenario(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    scenario: Scenario,
    rt_views: dict[int, RTView],
) -> None:
    summary = _run_flow(monkeypatch, tmp_path, rt_server.url, "root", rt_server.password)
    columns, rows = _read_csv(tmp_path / "out.csv")
    assert columns == list(COLUMNS)
    assert rows == expected_rows(scenario, rt_views)
    assert summary["rows"] == len(scenario.listed())
    assert summary["missing"] == []
    # R write.csv style: every field quoted
    first_data_line = (tmp_path / "out.csv").read_bytes().splitlines()[1]
    assert first_data_line.startswith(b'"') and first_data_line.endswith(b'"')


@pytest.mark.usefixtures("prefect_harness")
def test_flow_uploads_the_csv_to_displayr(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    scenario: Scenario,
    rt_views: dict[int, RTView],
) -> None:
    from rt_displayr.sandbox.displayr_server import DisplayrSimulator

    secret, data_name = str(uuid.uuid4()), "rt-integration.csv"
    with DisplayrSimulator([secret]) as displayr:
        displayr.create_data_set(secret, data_name)
        monkeypatch.setenv("DISPLAYR_URL", displayr.url)
        monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", secret)
        summary = _run_flow(
            monkeypatch,
            tmp_path,
            rt_server.url,
            "root",
            rt_server.password,
            dry_run=False,
            data_name=data_name,
        )
        received = displayr.data_set(secret, data_name)
    assert summary["status"] == "published"
    assert received == (tmp_path / "out.csv").read_bytes()
    _, rows = _read_csv(tmp_path / "out.csv")
    assert rows == expected_rows(scenario, rt_views)


@pytest.mark.usefixtures("prefect_harness")
def test_flow_as_account_without_show_outgoing_email_has_no_dispatcher(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    scenario: Scenario,
    rt_views: dict[int, RTView],
) -> None:
    """Documented limitation: without ShowOutgoingEmail RT hides EmailRecord, so no Dispatcher."""
    # No full_refresh: root's run of the same tickets is in Prefect's chunk cache, and the cache
    # key names the RT account, so the auditor's run must not reuse root's histories.
    _run_flow(monkeypatch, tmp_path, rt_server.url, AUDITOR, rt_server.password)
    _, rows = _read_csv(tmp_path / "out.csv")
    assert rows == expected_rows(scenario, rt_views, sees_outgoing_mail=False)
    assert any(row["Dispatcher"] for row in expected_rows(scenario, rt_views))


@pytest.mark.usefixtures("prefect_harness")
def test_flow_with_privileged_staff_rule_looks_senders_up_in_rt(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    scenario: Scenario,
    rt_views: dict[int, RTView],
) -> None:
    """`staff=privileged` asks RT (`user/<name>`, addresses percent-encoded) who is staff.

    In this scenario every staff login is privileged and every client an unprivileged
    auto-created address, so the rows equal the scenario's; a lookup that answered wrongly
    either way would move mails between the client and staff columns.
    """
    _run_flow(monkeypatch, tmp_path, rt_server.url, "root", rt_server.password, staff="privileged")
    _, rows = _read_csv(tmp_path / "out.csv")
    assert rows == expected_rows(scenario, rt_views)
    assert any(row["NumStaffEmails"] != "0" for row in rows)
    assert any(row["NumClientEmails"] != "0" for row in rows)


@pytest.mark.usefixtures("prefect_harness")
def test_flow_wrong_password_fails_with_auth_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt_server: RTServer, scenario: Scenario
) -> None:
    with pytest.raises(Exception) as failure:
        _run_flow(monkeypatch, tmp_path, rt_server.url, "root", rt_server.password + "-wrong")
    assert any(isinstance(e, RTAuthError) for e in _error_chain(failure.value)), failure.value
    assert rt_server.password not in str(failure.value)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_flow_invalid_ticketsql_fails_with_query_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt_server: RTServer, scenario: Scenario
) -> None:
    with pytest.raises(Exception) as failure:
        _run_flow(
            monkeypatch,
            tmp_path,
            rt_server.url,
            "root",
            rt_server.password,
            query="Status = 'resolved' AND (",
        )
    assert any(isinstance(e, RTQueryError) for e in _error_chain(failure.value)), failure.value
    assert not (tmp_path / "out.csv").exists()


# a ticket hidden between the search and the fetch of its history


class _HidingProxy:
    """Forwards to RT; the first request about the victim ticket first moves it to Vault as root.

    That is a real race, not a fake answer: the reading account (jdoe, rights on General and
    Support only) listed the ticket in its search, and RT itself now refuses it.
    """

    def __init__(self, rt_url: str, hide: Any, victim: int) -> None:
        self.rt_url = rt_url
        self._hide = hide
        self._pattern = re.compile(rf"^/REST/1\.0/ticket/{victim}(/|\?|$)")
        self._lock = threading.Lock()
        self.hidden = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self, "GET")

            def do_POST(self) -> None:
                proxy._forward(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        if self._pattern.match(handler.path):
            with self._lock:
                if not self.hidden:
                    self._hide()
                    self.hidden = True
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("content-type", "cookie", "authorization", "accept")
        }
        answer = requests.request(
            method, self.rt_url + handler.path, data=body, headers=headers, timeout=120
        )
        handler.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() in ("content-type", "set-cookie"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)

    def __enter__(self) -> _HidingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def hidden_victim(scenario: Scenario, root_rest: RTRest) -> Iterator[dict[str, Any]]:
    """Arms the hide; always moves the victim back to its queue afterwards."""
    victim = scenario.tickets["victim"]

    def hide() -> None:
        root_rest.write(
            f"ticket/{victim.id}/edit", {"Queue": "Vault"}, rf"# Ticket {victim.id} updated\."
        )

    try:
        yield {"id": victim.id, "hide": hide}
    finally:
        root_rest.write(
            f"ticket/{victim.id}/edit",
            {"Queue": victim.queue},
            rf"# Ticket {victim.id} updated\.",
        )


@pytest.mark.usefixtures("prefect_harness")
def test_flow_skips_a_ticket_hidden_after_the_search(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    scenario: Scenario,
    rt_views: dict[int, RTView],
    hidden_victim: dict[str, Any],
) -> None:
    victim = hidden_victim["id"]
    with _HidingProxy(rt_server.url, hidden_victim["hide"], victim) as proxy:
        summary = _run_flow(
            monkeypatch, tmp_path, proxy.url, "jdoe", rt_server.password, full_refresh=True
        )
    assert proxy.hidden
    assert summary["missing"] == [victim]
    _, rows = _read_csv(tmp_path / "out.csv")
    expected = [r for r in expected_rows(scenario, rt_views) if r["TicketID"] != str(victim)]
    assert rows == expected


@pytest.mark.usefixtures("prefect_harness")
def test_flow_fails_on_a_hidden_ticket_when_asked_to(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rt_server: RTServer,
    hidden_victim: dict[str, Any],
) -> None:
    victim = hidden_victim["id"]
    with (
        _HidingProxy(rt_server.url, hidden_victim["hide"], victim) as proxy,
        pytest.raises(Exception) as failure,
    ):
        _run_flow(
            monkeypatch,
            tmp_path,
            proxy.url,
            "jdoe",
            rt_server.password,
            full_refresh=True,
            on_missing_ticket="fail",
        )
    assert proxy.hidden
    unavailable = [e for e in _error_chain(failure.value) if isinstance(e, RTTicketUnavailable)]
    assert unavailable, failure.value
    assert str(victim) in str(unavailable[0])
    assert not (tmp_path / "out.csv").exists()


# credentials and queries RT refuses: one line at once, nothing retried, nothing published


@pytest.mark.usefixtures("prefect_harness")
def test_flow_wrong_password_is_one_line_with_no_retry_and_no_upload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt_server: RTServer, scenario: Scenario
) -> None:
    from rt_displayr.sandbox.displayr_server import DisplayrSimulator

    secret = str(uuid.uuid4())
    with DisplayrSimulator([secret]) as displayr:
        monkeypatch.setenv("DISPLAYR_URL", displayr.url)
        monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", secret)
        with pytest.raises(RTAuthError) as failure:
            _run_flow(
                monkeypatch,
                tmp_path,
                rt_server.url,
                "root",
                rt_server.password + "-wrong",
                dry_run=False,
            )
        assert displayr.requests == []
    assert str(failure.value) == (
        "RT rejected the password of user 'root': Your username or password is incorrect"
    )


@pytest.mark.usefixtures("prefect_harness")
def test_flow_bad_token_fails_at_once_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt_server: RTServer, scenario: Scenario
) -> None:
    monkeypatch.setenv("RT_URL", rt_server.url)
    monkeypatch.setenv("RT_TOKEN", "1-99-" + uuid.uuid4().hex)
    monkeypatch.delenv("RT_USER", raising=False)
    monkeypatch.delenv("RT_PASSWORD", raising=False)
    from flows.rt_to_displayr import rt_to_displayr

    with pytest.raises(RTAuthError) as failure:
        rt_to_displayr(
            query=RESOLVED,
            dry_run=True,
            output=str(tmp_path / "out.csv"),
            state_dir=str(tmp_path / "state"),
        )
    assert str(failure.value).startswith("RT rejected the auth token in RT_TOKEN")
    assert "\n" not in str(failure.value)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_flow_invalid_ticketsql_quotes_rts_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt_server: RTServer, scenario: Scenario
) -> None:
    with pytest.raises(RTQueryError) as failure:
        _run_flow(
            monkeypatch, tmp_path, rt_server.url, "root", rt_server.password, query="Stauts = 'x'"
        )
    message = str(failure.value)
    assert message.startswith("RT rejected the TicketSQL: Invalid query: ")
    assert "Stauts" in message and "\n" not in message
