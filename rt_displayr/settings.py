"""Connection settings for RT and Displayr, read from the environment or Prefect Secret blocks.

Every setting is checked before the first request: a missing or malformed one raises a
`ConfigError` whose one line names the variable, so a scheduled run fails in milliseconds with
the fix in its message instead of half-way through with an HTTP error.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from rt_displayr.errors import ConfigError
from rt_displayr.redact import register_secret

DEFAULT_DISPLAYR_URL = "https://app.displayr.com"
DEFAULT_DATA_NAME = "rt-ticket-history.csv"
# Seconds before the first retry of a failed request (doubling after each, with jitter); both
# HTTP clients read it. Small in tests, larger for an RT that takes long to come back.
BACKOFF_BASE_VARIABLE = "RT_DISPLAYR_BACKOFF_BASE"
DEFAULT_BACKOFF_BASE = 1.0
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_COOKIE = re.compile(r"^[^=;\s]+=[^;\s]+$")


@dataclass(frozen=True)
class RTConnection:
    """How to reach and authenticate to RT. Plain data: safe to pass to Prefect tasks.

    Exactly one auth method is set: user+password (RT's `user`/`pass` form, then its session
    cookie, renewed once if it expires mid-run), a browser session cookie `NAME=VALUE`, or an
    RT 5 auth token.
    """

    url: str
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    cookie: SecretStr | None = None
    timeout: float = 60.0
    search_timeout: float = 600.0
    verify: bool = True
    max_retries: int = 5
    rate_limit: float | None = None
    backoff_base: float = 1.0

    @property
    def auth_method(self) -> str:
        if self.token is not None:
            return "token"
        if self.cookie is not None:
            return "cookie"
        return "password"

    @property
    def rest_url(self) -> str:
        return f"{self.url}/REST/1.0"

    @property
    def account(self) -> str:
        """Who RT answers as, without the secret: part of every cache key, because two accounts
        with different rights see different histories of the same ticket."""
        if self.user is not None:
            return f"user:{self.user}"
        secret = self.token or self.cookie
        digest = (
            hashlib.sha256(secret.get_secret_value().encode()).hexdigest()[:16] if secret else ""
        )
        return f"{self.auth_method}:{digest}"


@dataclass(frozen=True)
class DisplayrConnection:
    """Where to publish. The project secret rides in a query string: it is registered for redaction."""

    project_secret: SecretStr
    url: str = DEFAULT_DISPLAYR_URL
    timeout: float = 300.0
    verify: bool = True
    max_retries: int = 4
    backoff_base: float = 1.0


def normalize_base_url(value: str, variable: str, *, allow_http: bool = False) -> str:
    """Validate a base URL and drop a trailing slash; plain http only for loopback or by opt-in."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{variable} must be an http(s) URL such as https://rt.example.com/rt, got {text!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{variable} must not have a query string or fragment, got {text!r}")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"{variable} uses plain http:// to a non-loopback host ({parts.hostname}); "
            "use https:// or set RT_DISPLAYR_ALLOW_HTTP=1 to accept an unencrypted connection"
        )
    return text.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1/0, true/false or yes/no, got {value!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def rt_connection_from_env(env: Mapping[str, str] | None = None) -> RTConnection:
    """Build the RT connection from `RT_URL`, `RT_USER`/`RT_PASSWORD`, `RT_TOKEN` or `RT_COOKIE`."""
    env = os.environ if env is None else env
    url = _get(env, "RT_URL")
    if url is None:
        raise ConfigError("RT_URL is not set: give the RT base URL, e.g. https://rt.example.com/rt")
    allow_http = _flag(env, "RT_DISPLAYR_ALLOW_HTTP")
    user, password = _get(env, "RT_USER"), _get(env, "RT_PASSWORD")
    token, cookie = _get(env, "RT_TOKEN"), _get(env, "RT_COOKIE")
    methods = [
        name
        for name, present in (
            ("RT_USER/RT_PASSWORD", user or password),
            ("RT_TOKEN", token),
            ("RT_COOKIE", cookie),
        )
        if present
    ]
    if not methods:
        raise ConfigError(
            "no RT credentials: set RT_USER and RT_PASSWORD, or RT_TOKEN, or RT_COOKIE"
        )
    if len(methods) > 1:
        raise ConfigError(f"set only one RT auth method, got {' and '.join(methods)}")
    if (user is None) != (password is None):
        missing = "RT_PASSWORD" if password is None else "RT_USER"
        raise ConfigError(f"{missing} is not set: RT_USER and RT_PASSWORD go together")
    if cookie is not None and not _COOKIE.match(cookie):
        raise ConfigError("RT_COOKIE must be NAME=VALUE, e.g. RT_SID_example.443=abc123")
    if token is not None and (" " in token or len(token) < 8):
        raise ConfigError("RT_TOKEN does not look like an RT auth token (no spaces, 8+ characters)")
    for secret in (password, token, cookie):
        register_secret(secret)
    if cookie is not None:
        register_secret(cookie.split("=", 1)[1])
    rate = _number(env, "RT_RATE_LIMIT", 0.0)
    return RTConnection(
        url=normalize_base_url(url, "RT_URL", allow_http=allow_http),
        user=user,
        password=SecretStr(password) if password else None,
        token=SecretStr(token) if token else None,
        cookie=SecretStr(cookie) if cookie else None,
        timeout=_number(env, "RT_TIMEOUT", 60.0, minimum=1.0),
        search_timeout=_number(env, "RT_SEARCH_TIMEOUT", 600.0, minimum=1.0),
        verify=not _flag(env, "RT_INSECURE_SKIP_VERIFY"),
        max_retries=int(_number(env, "RT_MAX_RETRIES", 5)),
        rate_limit=rate or None,
        backoff_base=_number(env, BACKOFF_BASE_VARIABLE, DEFAULT_BACKOFF_BASE),
    )


def check_project_secret(secret: str, variable: str = "DISPLAYR_PROJECT_SECRET") -> str:
    secret = secret.strip()
    if not _GUID.match(secret):
        # never echo the value: a near-miss secret is still a secret
        raise ConfigError(
            f"{variable} is not a GUID (expected 8-4-4-4-12 hex digits, got {len(secret)} characters)"
        )
    register_secret(secret)
    return secret


def displayr_connection_from_env(
    env: Mapping[str, str] | None = None, *, secret: str | None = None
) -> DisplayrConnection:
    """Build the Displayr connection; `secret` (e.g. from a Prefect Secret block) wins over the env."""
    env = os.environ if env is None else env
    secret = secret or _get(env, "DISPLAYR_PROJECT_SECRET")
    if secret is None:
        raise ConfigError(
            "DISPLAYR_PROJECT_SECRET is not set: copy the project secret (a GUID) from Displayr's "
            "Account settings, or run with --dry-run to stop after the CSV"
        )
    secret = check_project_secret(secret)
    allow_http = _flag(env, "RT_DISPLAYR_ALLOW_HTTP")
    url = normalize_base_url(
        _get(env, "DISPLAYR_URL") or DEFAULT_DISPLAYR_URL, "DISPLAYR_URL", allow_http=allow_http
    )
    return DisplayrConnection(
        project_secret=SecretStr(secret),
        url=url,
        timeout=_number(env, "DISPLAYR_TIMEOUT", 300.0, minimum=1.0),
        verify=not _flag(env, "DISPLAYR_INSECURE_SKIP_VERIFY"),
        backoff_base=_number(env, BACKOFF_BASE_VARIABLE, DEFAULT_BACKOFF_BASE),
    )


def data_name_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    name = _get(env, "DISPLAYR_DATA_NAME") or DEFAULT_DATA_NAME
    if "/" in name or "\\" in name:
        raise ConfigError(f"DISPLAYR_DATA_NAME must be a data set name, not a path: {name!r}")
    return name


ABORT_MODES = ("OnWarning", "Never")
STAFF_RULES = ("name", "privileged")
MISSING_TICKET_POLICIES = ("skip", "fail")


def check_run_options(*, abort: str, staff: str, on_missing_ticket: str, max_drop: float) -> None:
    """The run options that take one of a few words, checked before Prefect or any request.

    A front end (the CLI) calls this first, so a typo gets one line naming the option instead
    of a flow run that fails Prefect's own parameter validation with a traceback.
    """
    for option, value, allowed in (
        ("abort", abort, ABORT_MODES),
        ("staff", staff, STAFF_RULES),
        ("on_missing_ticket", on_missing_ticket, MISSING_TICKET_POLICIES),
    ):
        if value not in allowed:
            raise ConfigError(f"{option} must be {' or '.join(allowed)}, got {value!r}")
    if not 0 <= max_drop <= 1:
        raise ConfigError(f"max_drop must be a share between 0 and 1, got {max_drop}")
