"""Settings mistakes stop a run before any request, with one line that names the setting.

Also: HTTPS verification is on unless switched off, plain http:// only to loopback or by
opt-in, and `rt-displayr run` turns a mistake into exactly one `error: ...` line and exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from typer.testing import CliRunner

from rt_displayr.cli import app
from rt_displayr.displayr import DisplayrClient
from rt_displayr.errors import ConfigError, DisplayrTransientError, RTTransientError
from rt_displayr.rt.client import RTClient
from rt_displayr.sandbox.rt_server import RTSimulator
from rt_displayr.settings import (
    DisplayrConnection,
    RTConnection,
    check_project_secret,
    check_run_options,
    displayr_connection_from_env,
    rt_connection_from_env,
)

GUID = "0b6e1a52-3c4d-4e5f-8a9b-1c2d3e4f5a6b"
RT = {"RT_URL": "https://rt.example.com/rt", "RT_USER": "metrics", "RT_PASSWORD": "pw-1234"}


def one_line_error(env: dict[str, str], build=rt_connection_from_env) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as failure:
        build(env)
    message = str(failure.value)
    assert "\n" not in message and message.strip() == message
    return message


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["rt.example.com", "rt.example.com/rt", "ftp://rt.example.com"])
def test_rt_url_without_http_scheme_is_refused(url: str) -> None:
    message = one_line_error({**RT, "RT_URL": url})
    assert message.startswith("RT_URL must be an http(s) URL") and repr(url) in message


def test_displayr_url_without_scheme_is_refused() -> None:
    message = one_line_error(
        {"DISPLAYR_PROJECT_SECRET": GUID, "DISPLAYR_URL": "app.displayr.com"},
        displayr_connection_from_env,
    )
    assert message.startswith("DISPLAYR_URL must be an http(s) URL")


def test_rt_url_with_a_query_string_is_refused() -> None:
    assert "query string" in one_line_error({**RT, "RT_URL": "https://rt.example.com/?a=1"})


def test_missing_rt_url_is_named() -> None:
    assert one_line_error({"RT_USER": "a", "RT_PASSWORD": "b"}).startswith("RT_URL is not set")


@pytest.mark.parametrize("variable", ["RT_URL", "DISPLAYR_URL"])
def test_plain_http_to_another_host_is_refused_without_opt_in(variable: str) -> None:
    env = {**RT, "DISPLAYR_PROJECT_SECRET": GUID, variable: "http://rt.example.com"}
    build = rt_connection_from_env if variable == "RT_URL" else displayr_connection_from_env
    message = one_line_error(env, build)
    assert message.startswith(f"{variable} uses plain http:// to a non-loopback host")
    assert "RT_DISPLAYR_ALLOW_HTTP=1" in message

    allowed = build({**env, "RT_DISPLAYR_ALLOW_HTTP": "1"})
    assert allowed.url == "http://rt.example.com"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/rt", "http://localhost:8080", "http://[::1]:8080"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert rt_connection_from_env({**RT, "RT_URL": url + "/"}).url == url


def test_allow_http_takes_only_a_yes_or_no() -> None:
    message = one_line_error({**RT, "RT_DISPLAYR_ALLOW_HTTP": "sure"})
    assert message == "RT_DISPLAYR_ALLOW_HTTP must be 1/0, true/false or yes/no, got 'sure'"


# --- TLS verification --------------------------------------------------------------------------


def test_https_verification_is_on_by_default_and_off_only_when_asked() -> None:
    assert rt_connection_from_env(RT).verify is True
    assert rt_connection_from_env({**RT, "RT_INSECURE_SKIP_VERIFY": "1"}).verify is False
    displayr = {"DISPLAYR_PROJECT_SECRET": GUID}
    assert displayr_connection_from_env(displayr).verify is True
    skip = {**displayr, "DISPLAYR_INSECURE_SKIP_VERIFY": "true"}
    assert displayr_connection_from_env(skip).verify is False


@pytest.fixture
def sent_verify(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The `verify` each request reaches the transport with; the request itself then fails."""
    seen: list[object] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[no-untyped-def]
        seen.append(verify)
        raise requests.ConnectionError("no network in this test")

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return seen


def test_both_clients_send_with_certificate_verification(
    sent_verify: list[object], tmp_path: Path
) -> None:
    rt = RTConnection(url="https://rt.example.com", token=SecretStr("abcdefgh12"), max_retries=0)
    with RTClient(rt) as client, pytest.raises(RTTransientError):
        client.search("id > 0")
    csv = tmp_path / "data.csv"
    csv.write_text("a\n1\n")
    displayr = DisplayrConnection(project_secret=SecretStr(GUID), max_retries=0)
    with DisplayrClient(displayr) as client, pytest.raises(DisplayrTransientError):
        client.upload(csv, "data.csv")
    # True, or the CA bundle that requests takes from REQUESTS_CA_BUNDLE in its place: never False
    assert len(sent_verify) == 2
    assert all(verify is True or Path(str(verify)).is_file() for verify in sent_verify)


def test_skipping_verification_reaches_the_transport(sent_verify: list[object]) -> None:
    rt = RTConnection(
        url="https://rt.example.com", token=SecretStr("abcdefgh12"), max_retries=0, verify=False
    )
    with RTClient(rt) as client, pytest.raises(RTTransientError):
        client.search("id > 0")
    assert sent_verify == [False]


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["not-a-guid", GUID[:-1], GUID + "0", "{" + GUID + "}"])
def test_project_secret_that_is_not_a_guid_is_refused_without_echoing_it(secret: str) -> None:
    message = one_line_error({"DISPLAYR_PROJECT_SECRET": secret}, displayr_connection_from_env)
    assert message.startswith("DISPLAYR_PROJECT_SECRET is not a GUID")
    assert secret not in message


def test_project_secret_is_trimmed_and_accepted() -> None:
    assert check_project_secret(f"  {GUID}\n") == GUID


def test_missing_project_secret_says_where_to_find_it() -> None:
    message = one_line_error({}, displayr_connection_from_env)
    assert message.startswith("DISPLAYR_PROJECT_SECRET is not set") and "--dry-run" in message


# --- RT authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({}, "no RT credentials: set RT_USER and RT_PASSWORD, or RT_TOKEN, or RT_COOKIE"),
        (
            {"RT_USER": "u", "RT_PASSWORD": "p", "RT_TOKEN": "abcdefgh12"},
            "set only one RT auth method, got RT_USER/RT_PASSWORD and RT_TOKEN",
        ),
        (
            {"RT_TOKEN": "abcdefgh12", "RT_COOKIE": "RT_SID_x.443=abc"},
            "set only one RT auth method, got RT_TOKEN and RT_COOKIE",
        ),
        (
            {"RT_USER": "u", "RT_COOKIE": "RT_SID_x.443=abc"},
            "set only one RT auth method, got RT_USER/RT_PASSWORD and RT_COOKIE",
        ),
        ({"RT_USER": "u"}, "RT_PASSWORD is not set: RT_USER and RT_PASSWORD go together"),
        ({"RT_PASSWORD": "p-secret"}, "RT_USER is not set: RT_USER and RT_PASSWORD go together"),
        (
            {"RT_COOKIE": "just-a-session-id"},
            "RT_COOKIE must be NAME=VALUE, e.g. RT_SID_example.443=abc123",
        ),
        (
            {"RT_TOKEN": "has a space"},
            "RT_TOKEN does not look like an RT auth token (no spaces, 8+ characters)",
        ),
    ],
)
def test_unknown_or_ambiguous_rt_auth_is_refused_in_one_line(
    credentials: dict[str, str], expected: str
) -> None:
    assert one_line_error({"RT_URL": "https://rt.example.com", **credentials}) == expected


@pytest.mark.parametrize(
    ("credentials", "method"),
    [
        ({"RT_USER": "u", "RT_PASSWORD": "p"}, "password"),
        ({"RT_TOKEN": "abcdefgh12"}, "token"),
        ({"RT_COOKIE": "RT_SID_x.443=abc"}, "cookie"),
    ],
)
def test_each_single_auth_method_is_accepted(credentials: dict[str, str], method: str) -> None:
    connection = rt_connection_from_env({"RT_URL": "https://rt.example.com", **credentials})
    assert connection.auth_method == method


# --- numbers and options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RT_TIMEOUT", "soon", "RT_TIMEOUT must be a number, got 'soon'"),
        ("RT_TIMEOUT", "0.1", "RT_TIMEOUT must be at least 1.0, got '0.1'"),
        ("RT_MAX_RETRIES", "-1", "RT_MAX_RETRIES must be at least 0.0, got '-1'"),
        ("RT_DISPLAYR_BACKOFF_BASE", "fast", "RT_DISPLAYR_BACKOFF_BASE must be a number"),
    ],
)
def test_malformed_numbers_are_named(variable: str, value: str, expected: str) -> None:
    assert one_line_error({**RT, variable: value}).startswith(expected)


def test_backoff_base_reaches_both_connections() -> None:
    assert rt_connection_from_env(RT).backoff_base == 1.0
    env = {**RT, "DISPLAYR_PROJECT_SECRET": GUID, "RT_DISPLAYR_BACKOFF_BASE": "0.25"}
    assert rt_connection_from_env(env).backoff_base == 0.25
    assert displayr_connection_from_env(env).backoff_base == 0.25


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"abort": "Sometimes"}, "abort must be OnWarning or Never, got 'Sometimes'"),
        ({"abort": "onwarning"}, "abort must be OnWarning or Never, got 'onwarning'"),
        ({"staff": "boss"}, "staff must be name or privileged, got 'boss'"),
        ({"on_missing_ticket": "ignore"}, "on_missing_ticket must be skip or fail, got 'ignore'"),
        ({"max_drop": 50.0}, "max_drop must be a share between 0 and 1, got 50.0"),
    ],
)
def test_run_options_outside_their_choices_are_refused(
    options: dict[str, object], expected: str
) -> None:
    arguments: dict[str, object] = {
        "abort": "OnWarning",
        "staff": "name",
        "on_missing_ticket": "skip",
        "max_drop": 0.5,
        **options,
    }
    with pytest.raises(ConfigError) as failure:
        check_run_options(**arguments)  # type: ignore[arg-type]
    assert str(failure.value) == expected


def test_displayr_client_refuses_an_unknown_abort_before_any_request(
    sent_verify: list[object],
) -> None:
    connection = DisplayrConnection(project_secret=SecretStr(GUID))
    with DisplayrClient(connection) as client, pytest.raises(ConfigError, match="abort must be"):
        client.import_updated_data("data.csv", "some-upload", partial=False, abort="Always")
    assert sent_verify == []


# --- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("RT_URL", "RT_USER", "RT_PASSWORD", "RT_TOKEN", "RT_COOKIE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("DISPLAYR_URL", "DISPLAYR_PROJECT_SECRET", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RT_DISPLAYR_NO_PREFECT_CONFIG", "1")
    return monkeypatch


def assert_one_error_line(output: str, starts: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: {starts}"), output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("env", "arguments", "starts"),
    [
        ({"RT_URL": "rt.example.com", **{k: v for k, v in RT.items() if k != "RT_URL"}},
         ["--dry-run"], "RT_URL must be an http(s) URL"),
        ({**RT, "RT_TOKEN": "abcdefgh12"}, ["--dry-run"], "set only one RT auth method"),
        ({**RT, "DISPLAYR_PROJECT_SECRET": "my-secret-value"}, [],
         "DISPLAYR_PROJECT_SECRET is not a GUID"),
        ({**RT, "RT_URL": "http://rt.example.com"}, ["--dry-run"], "RT_URL uses plain http://"),
    ],
)  # fmt: skip
def test_cli_prints_one_error_line_and_exits_2(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], arguments: list[str], starts: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)

    result = CliRunner().invoke(app, ["run", "--no-progress", *arguments])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, starts)
    assert "my-secret-value" not in result.output


def test_cli_refuses_ambiguous_auth_before_any_request_to_rt(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with RTSimulator(tickets=3) as rt:
        clean_env.setenv("RT_URL", rt.url)
        clean_env.setenv("RT_TOKEN", "abcdefgh12")
        clean_env.setenv("RT_COOKIE", "RT_SID_x.443=abc")

        result = CliRunner().invoke(app, ["run", "--dry-run", "--no-progress"])

        assert result.exit_code == 2
        assert_one_error_line(result.stderr, "set only one RT auth method")
        assert rt.counts["total"] == 0


def test_cli_as_a_process_prints_one_error_line_and_exits_2(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """The installed command, in its own process: no traceback from anywhere on stderr."""
    import os

    script = Path(sys.executable).with_name("rt-displayr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rt_displayr.cli"]
    env = {**os.environ, "RT_URL": "rt.example.com/rt", "RT_USER": "u", "RT_PASSWORD": "p"}

    done = subprocess.run(
        [*command, "run", "--dry-run", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert_one_error_line(done.stderr, "RT_URL must be an http(s) URL")


@pytest.mark.parametrize("option", [["--abort", "Sometimes"], ["--staff", "boss"]])
def test_cli_refuses_an_unknown_choice_before_the_flow_starts(
    clean_env: pytest.MonkeyPatch, option: list[str]
) -> None:
    import rt_displayr.cli

    for name, value in RT.items():
        clean_env.setenv(name, value)

    def flow_must_not_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("the flow started despite an invalid option")

    clean_env.setattr(rt_displayr.cli, "run_flow", flow_must_not_start)

    result = CliRunner().invoke(app, ["run", "--dry-run", "--no-progress", *option])

    assert result.exit_code == 2
    assert_one_error_line(result.stderr, f"{option[0][2:]} must be")
