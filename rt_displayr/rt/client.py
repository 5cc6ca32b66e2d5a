"""HTTP client for RT's REST 1.0: authentication, retries, pacing and request counting.

One `requests.Session` is shared by every thread of a fetch pool: its connection pool is sized
to the pool (`pool_size`), so N threads reuse N keep-alive connections instead of paying a TLS
handshake per ticket. Only `TransientError`s are retried (connection errors, timeouts, HTTP
429/5xx, a body cut short); an authentication failure, bad TicketSQL or a missing ticket is
raised at once, because repeating it only delays the one line the operator needs to read.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from rt_displayr.errors import (
    RTAuthError,
    RTError,
    RTProtocolError,
    RTSessionExpired,
    RTTransientError,
)
from rt_displayr.models import TicketSummary, Transaction
from rt_displayr.rt import wire
from rt_displayr.settings import RTConnection

log = logging.getLogger(__name__)

T = TypeVar("T")

SEARCH_FIELDS = ",".join(wire.SEARCH_FIELDS)
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 120.0
USER_AGENT = "rt-displayr (RT REST 1.0 client)"


class _TokenBucket:
    """Client-side request pacing shared by all threads: `rate` requests/s, bursts of `rate`.

    A request takes a token even when none is left (the count goes negative); its wait is the
    time the deficit takes to refill, so concurrent threads queue up in arrival order.
    """

    def __init__(
        self, rate: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._sleep = sleep
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


_buckets: dict[tuple[str, float], _TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_bucket(
    conn: RTConnection, sleep: Callable[[float], None], clock: Callable[[], float]
) -> _TokenBucket:
    """One bucket per RT URL and rate in this process: the chunk tasks running side by side each
    have a client of their own, and RT_RATE_LIMIT is meant for the run, not for each chunk."""
    assert conn.rate_limit
    key = (conn.url, conn.rate_limit)
    with _buckets_lock:
        if key not in _buckets:
            _buckets[key] = _TokenBucket(conn.rate_limit, sleep, clock)
        return _buckets[key]


class RequestTally:
    """HTTP requests (retries and re-logins included) made by one thread inside `counting()`."""

    def __init__(self) -> None:
        self.count = 0


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RTClient:
    """RT REST 1.0 over one pooled session; safe to share between the threads of a pool."""

    def __init__(
        self,
        conn: RTConnection,
        *,
        pool_size: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._conn = conn
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size), max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.verify = conn.verify
        self._session.headers["User-Agent"] = USER_AGENT
        if conn.auth_method == "token" and conn.token is not None:
            self._session.headers["Authorization"] = f"token {conn.token.get_secret_value()}"
        elif conn.auth_method == "cookie" and conn.cookie is not None:
            name, _, value = conn.cookie.get_secret_value().partition("=")
            # Scoped to RT's host so that a redirect elsewhere (an SSO page) does not carry it;
            # the cookie jar cannot scope a dotless host such as `localhost`.
            host = urlsplit(conn.url).hostname or ""
            domain = host if "." in host else ""
            self._session.cookies.set(name.strip(), value.strip(), domain=domain, path="/")
            # RT's CSRF protection answers an HTML warning page to a cookie session without it.
            self._session.headers["Referer"] = conn.url
        self._bucket = shared_bucket(conn, sleep, clock) if conn.rate_limit else None
        self._count_lock = threading.Lock()
        self._requests = 0
        self._by_kind: dict[str, int] = {}
        self._local = threading.local()
        # Re-login bookkeeping: threads that saw the same expired session log in only once.
        self._login_lock = threading.Lock()
        self._login_generation = 0
        self._logged_in = False
        # A rejected password is not tried again by the other threads: lockout policies count.
        self._login_refused: RTAuthError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> RTClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- counters --------------------------------------------------------------------------

    @property
    def requests_made(self) -> int:
        """Every HTTP request sent so far, retries and logins included."""
        with self._count_lock:
            return self._requests

    @property
    def requests_by_kind(self) -> dict[str, int]:
        """The same count per kind (`login`, `search`, `search-ids`, `history`, ...)."""
        with self._count_lock:
            return dict(self._by_kind)

    @contextmanager
    def counting(self) -> Iterator[RequestTally]:
        """Count the requests this thread makes inside the block (other threads do not leak in)."""
        tally = RequestTally()
        stack: list[RequestTally] = getattr(self._local, "tallies", [])
        self._local.tallies = stack
        stack.append(tally)
        try:
            yield tally
        finally:
            stack.remove(tally)

    def _count(self, kind: str) -> None:
        with self._count_lock:
            self._requests += 1
            self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
        for tally in getattr(self._local, "tallies", ()):
            tally.count += 1

    # -- authentication --------------------------------------------------------------------

    def login(self) -> None:
        """Log in with user and password (RT then sets its RT_SID_* cookie); no-op otherwise.

        Token and cookie sessions have nothing to log in to: their first request tells.
        """
        if self._conn.auth_method != "password":
            return
        with self._login_lock:
            self._do_login()

    def _ensure_login(self) -> None:
        if self._conn.auth_method == "password" and not self._logged_in:
            with self._login_lock:
                if not self._logged_in:
                    self._do_login()

    def _relogin(self, seen_generation: int) -> None:
        with self._login_lock:
            if self._login_generation == seen_generation:  # nobody renewed it meanwhile
                self._do_login()

    def _do_login(self) -> None:
        if self._login_refused is not None:
            raise RTAuthError(str(self._login_refused))
        try:
            self._post_login()
        except RTAuthError as exc:
            self._login_refused = exc
            raise

    def _post_login(self) -> None:
        conn = self._conn
        password = conn.password.get_secret_value() if conn.password else ""

        def check(response: requests.Response) -> None:
            try:
                wire.parse_response(response.content, endpoint="login")
            except RTSessionExpired:
                hint = ""
                if response.history:
                    hint = (
                        f" (RT_URL was redirected to {response.url}; set RT_URL to the final URL)"
                    )
                raise RTAuthError(
                    f"RT refused the login of user {conn.user!r} (401 Credentials required){hint}"
                ) from None
            except RTAuthError:
                raise RTAuthError(
                    f"RT rejected the password of user {conn.user!r}: "
                    "Your username or password is incorrect"
                ) from None

        self._send(
            "login",
            "POST",
            f"{conn.rest_url}/",
            data={"user": conn.user or "", "pass": password},
            timeout=conn.timeout,
            check=check,
            ticket_id=None,
            login=False,
        )
        self._login_generation += 1
        self._logged_in = True

    def _session_expired(self, exc: RTSessionExpired) -> RTError:
        method = self._conn.auth_method
        if method == "cookie":
            return RTSessionExpired(
                "RT session cookie is no longer valid: log in to RT in a browser and put the "
                "fresh RT_SID_... cookie in RT_COOKIE"
            )
        if method == "token":
            return RTAuthError("RT rejected the auth token in RT_TOKEN (401 Credentials required)")
        return RTSessionExpired(
            f"{exc}; RT ended the session again right after a fresh login (is a proxy dropping "
            "RT's session cookie, or does RT's WebDomain/WebPort not match RT_URL?)"
        )

    # -- the request loop ------------------------------------------------------------------

    def _get(
        self,
        kind: str,
        path: str,
        parse: Callable[[wire.RTResponse], T],
        *,
        timeout: float | None = None,
        ticket_id: int | None = None,
    ) -> T:
        """GET `<rest_url>/<path>`, check RT's status and parse, renewing a password session once."""
        result: list[T] = []

        def check(response: requests.Response) -> None:
            parsed = wire.parse_response(response.content, endpoint=kind, ticket_id=ticket_id)
            result.append(parse(parsed))

        self._send(
            kind,
            "GET",
            f"{self._conn.rest_url}/{path}",
            timeout=timeout or self._conn.timeout,
            check=check,
            ticket_id=ticket_id,
            login=True,
        )
        return result[-1]

    def _send(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        timeout: float,
        check: Callable[[requests.Response], None],
        ticket_id: int | None,
        login: bool,
        data: dict[str, str] | None = None,
    ) -> None:
        where = kind if ticket_id is None else f"{kind} of ticket {ticket_id}"
        attempt = 0
        relogged = False
        while True:
            if login:
                self._ensure_login()
            generation = self._login_generation
            if self._bucket is not None:
                self._bucket.acquire()
            error: RTTransientError
            try:
                self._count(kind)
                response = self._session.request(
                    method, url, data=data, timeout=timeout, verify=self._conn.verify
                )
            except requests.Timeout:
                error = RTTransientError(f"RT did not answer {where} within {timeout:g} s")
            except requests.ConnectionError as exc:
                error = RTTransientError(f"could not reach RT for {where}: {type(exc).__name__}")
            except requests.exceptions.ChunkedEncodingError:
                # the connection closed before the announced length arrived: a body cut short
                error = RTTransientError(f"RT's answer for {where} was cut short mid-transfer")
            except requests.RequestException as exc:
                raise RTProtocolError(f"request for {where} failed: {type(exc).__name__}") from None
            else:
                try:
                    self._check_http(response, where)
                    check(response)
                    return
                except RTSessionExpired as exc:
                    if not login or self._conn.auth_method != "password" or relogged:
                        raise self._session_expired(exc) from None
                    log.info("RT session expired during %s; logging in again", where)
                    relogged = True
                    self._relogin(generation)
                    continue
                except RTTransientError as exc:
                    error = exc
            if attempt >= self._conn.max_retries:
                suffix = f" (gave up after {attempt + 1} attempts)" if attempt else ""
                raise RTTransientError(f"{error}{suffix}", error.retry_after) from None
            delay = self._backoff(attempt, error.retry_after)
            attempt += 1
            log.warning("%s; retry %d/%d in %.1f s", error, attempt, self._conn.max_retries, delay)
            self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (AWS style) so that N threads do not retry in lock step; Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP)
        return self._rng.uniform(0.0, min(BACKOFF_CAP, self._conn.backoff_base * 2**attempt))

    @staticmethod
    def _check_http(response: requests.Response, where: str) -> None:
        """HTTP-level failures; a body that starts with RT's status line is left to RT's status."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise RTTransientError(
                f"RT answered HTTP {status} for {where}",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status == 200 or response.content.lstrip().startswith(b"RT/"):
            return
        if status in (401, 403, 407):
            raise RTAuthError(
                f"HTTP {status} for {where}: refused before RT (a proxy or web server "
                "authentication in front of RT?)"
            )
        raise RTProtocolError(f"RT answered HTTP {status} for {where}; is RT_URL right?")

    # -- REST 1.0 endpoints ----------------------------------------------------------------

    def search(self, query: str, *, range_size: int | None = None) -> list[TicketSummary]:
        """Every ticket matching `query` (TicketSQL), with the fields the metrics need.

        REST 1.0 search has no paging and builds every record in memory: with `range_size`, a
        cheap id listing comes first, then one full search per id range of that many tickets.
        """
        if range_size is None:
            return self._search_fields(query)
        if range_size < 1:
            raise ValueError("range_size must be at least 1")
        ids = sorted(set(self.search_ids(query)))
        tickets: dict[int, TicketSummary] = {}
        for start in range(0, len(ids), range_size):
            chunk = ids[start : start + range_size]
            ranged = f"({query}) AND id >= {chunk[0]} AND id <= {chunk[-1]}"
            for ticket in self._search_fields(ranged):
                tickets.setdefault(ticket.id, ticket)
        return list(tickets.values())

    def search_ids(self, query: str) -> list[int]:
        """Ticket ids only (`format=i`): cheap for RT even for a very large result."""
        path = f"search/ticket?query={quote(query, safe='')}&format=i"
        return self._get(
            "search-ids",
            path,
            lambda r: wire.parse_search_ids(r.text),
            timeout=self._conn.search_timeout,
        )

    def _search_fields(self, query: str) -> list[TicketSummary]:
        path = f"search/ticket?query={quote(query, safe='')}&format=l&fields={SEARCH_FIELDS}"
        return self._get(
            "search",
            path,
            lambda r: wire.parse_search(r.text, require=wire.SEARCH_FIELDS),
            timeout=self._conn.search_timeout,
        )

    def history(self, ticket_id: int) -> list[Transaction]:
        """Every transaction of the ticket in one request (`format=l`), oldest first."""
        return self._get(
            "history",
            f"ticket/{int(ticket_id)}/history?format=l",
            lambda r: wire.parse_history(r.text, ticket_id),
            ticket_id=ticket_id,
        )

    def ensure_visible(self, ticket_id: int) -> None:
        """Raise `RTTicketUnavailable` if RT no longer shows the ticket to this account.

        `ticket/<id>/show` is the one endpoint that says so reliably: for a ticket moved out of
        the account's sight RT 5 answers `history?format=l` with a Mason error page (an infinite
        subrequest loop) and the short history with `# 0/0`, neither of which names the cause.
        """
        self._get("show", f"ticket/{int(ticket_id)}/show", lambda r: None, ticket_id=ticket_id)

    def attachment_headers(self, ticket_id: int, attachment_id: int) -> dict[str, str]:
        """The mail headers stored with one attachment, names lower-cased."""
        return self._get(
            "attachment",
            f"ticket/{int(ticket_id)}/attachments/{int(attachment_id)}",
            lambda r: wire.parse_attachment_headers(r.text),
            ticket_id=ticket_id,
        )

    def is_privileged(self, name: str) -> bool:
        """Whether RT user `name` is privileged staff; a user RT does not know is not."""
        try:
            return self._get(
                "user",
                f"user/{quote(name, safe='')}",
                lambda r: wire.parse_user_privileged(r.text),
            )
        except wire.RTObjectNotFound:
            return False

    def __repr__(self) -> str:  # never show credentials
        return f"RTClient(url={self._conn.url!r}, auth={self._conn.auth_method})"
