"""The RT client against a stub HTTP server answering real RT 5.0.3 bodies."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import SecretStr

from rt_displayr.errors import (
    RTAuthError,
    RTProtocolError,
    RTQueryError,
    RTSessionExpired,
    RTTicketUnavailable,
    RTTransientError,
)
from rt_displayr.rt import RTClient
from rt_displayr.rt.client import RETRY_AFTER_CAP, _TokenBucket, retry_after_seconds
from rt_displayr.settings import RTConnection
from tests.unit.rt_stub import Reply, Request, RTStub, rt_body, sample

COOKIE = "RT_SID_rtbed.8080"
PASSWORD = "s3cret-Pa55"
TOKEN = "1-14-0123456789abcdef"


class FakeRT:
    """Just enough RT: a login form, session cookies that can be revoked, canned bodies."""

    def __init__(self, routes: dict[str, bytes] | None = None) -> None:
        self.routes = dict(routes or {})
        self.sessions: set[str] = set()
        self.issued = 0
        self.lock = threading.Lock()

    def revoke_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def __call__(self, request: Request) -> Reply:
        if request.method == "POST" and request.path.endswith("/REST/1.0/"):
            if request.form.get("user") == ["root"] and request.form.get("pass") == [PASSWORD]:
                with self.lock:
                    self.issued += 1
                    sid = f"sid{self.issued}"
                    self.sessions.add(sid)
                return Reply(rt_body(), headers={"Set-Cookie": f"{COOKIE}={sid}; path=/; HttpOnly"})
            return Reply(sample("bad-password-ticket-show.txt"))
        with self.lock:
            valid = request.cookies.get(COOKIE) in self.sessions
        if not valid:
            return Reply(sample("unauthenticated-ticket-show.txt"))
        key = request.path.split("/REST/1.0/", 1)[1]
        return Reply(self.routes.get(key, sample("ticket-999999-show-nonexistent.txt")))


def connection(url: str, **overrides: Any) -> RTConnection:
    settings: dict[str, Any] = {"user": "root", "password": SecretStr(PASSWORD), "max_retries": 3}
    settings.update(overrides)
    if "token" in overrides or "cookie" in overrides:
        settings.pop("user"), settings.pop("password")
    return RTConnection(url=url, **settings)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fake_rt() -> Iterator[tuple[FakeRT, RTStub]]:
    rt = FakeRT(
        {
            "ticket/1/history": sample("ticket-1-history-format-l.txt"),
            "ticket/1/attachments/20": sample("ticket-1-attachment-20.txt"),
            "user/jdoe": sample("user-jdoe-show.txt"),
            "user/alice.customer@example.com": sample("user-alice-show.txt"),
            "user/nosuchuser": sample("user-nonexistent-show.txt"),
        }
    )
    with RTStub(rt) as stub:
        yield rt, stub


def scripted(*replies: Reply) -> Callable[[Request], Reply]:
    """Answer the replies in turn, repeating the last one."""
    queue = list(replies)
    lock = threading.Lock()

    def handler(_: Request) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


# -- authentication ---------------------------------------------------------------------------


def test_password_login_then_session_cookie(fake_rt: tuple[FakeRT, RTStub], sleeps: Sleeps) -> None:
    _, stub = fake_rt
    with RTClient(connection(stub.url), sleep=sleeps) as client:
        history = client.history(1)
        assert len(history) == 17
        assert client.requests_made == 2
        assert client.requests_by_kind == {"login": 1, "history": 1}
    login, get = stub.requests
    assert (login.method, login.path) == ("POST", "/REST/1.0/")
    assert login.form == {"user": ["root"], "pass": [PASSWORD]}
    assert (get.method, get.path, get.query) == (
        "GET",
        "/REST/1.0/ticket/1/history",
        {"format": ["l"]},
    )
    assert get.cookies == {COOKIE: "sid1"}
    assert "referer" not in get.headers and "authorization" not in get.headers
    assert sleeps == []


def test_explicit_login_is_not_repeated(fake_rt: tuple[FakeRT, RTStub]) -> None:
    _, stub = fake_rt
    with RTClient(connection(stub.url)) as client:
        client.login()
        assert client.is_privileged("jdoe") is True
    assert [r.method for r in stub.requests] == ["POST", "GET"]


def test_bad_password_fails_once_and_is_not_retried(
    fake_rt: tuple[FakeRT, RTStub], sleeps: Sleeps
) -> None:
    _, stub = fake_rt
    conn = connection(stub.url, password=SecretStr("wrong"))
    with RTClient(conn, sleep=sleeps) as client:
        with pytest.raises(RTAuthError, match="password of user 'root'") as caught:
            client.history(1)
        assert "wrong" not in str(caught.value)
        with pytest.raises(RTAuthError):  # other threads do not try the password again
            client.history(1)
        assert client.requests_made == 1
    assert sleeps == []


def test_expired_session_logs_in_again_once(fake_rt: tuple[FakeRT, RTStub]) -> None:
    rt, stub = fake_rt
    with RTClient(connection(stub.url)) as client:
        client.history(1)
        rt.revoke_sessions()
        assert client.is_privileged("jdoe") is True
    assert [(r.method, r.path) for r in stub.requests] == [
        ("POST", "/REST/1.0/"),
        ("GET", "/REST/1.0/ticket/1/history"),
        ("GET", "/REST/1.0/user/jdoe"),
        ("POST", "/REST/1.0/"),
        ("GET", "/REST/1.0/user/jdoe"),
    ]
    assert stub.requests[-1].cookies == {COOKIE: "sid2"}


def test_session_lost_again_after_relogin_is_final(sleeps: Sleeps) -> None:
    # RT accepts the login but the cookie never comes back (a proxy dropping Set-Cookie).
    def handler(request: Request) -> Reply:
        if request.method == "POST":
            return Reply(rt_body())
        return Reply(sample("unauthenticated-ticket-show.txt"))

    with RTStub(handler) as stub, RTClient(connection(stub.url), sleep=sleeps) as client:
        with pytest.raises(RTSessionExpired, match="again right after a fresh login"):
            client.history(1)
        assert [r.method for r in stub.requests] == ["POST", "GET", "POST", "GET"]
    assert sleeps == []


def test_concurrent_threads_share_one_login_and_one_relogin(fake_rt: tuple[FakeRT, RTStub]) -> None:
    rt, stub = fake_rt
    with RTClient(connection(stub.url), pool_size=8) as client, ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: len(client.history(1)), range(16)))
        rt.revoke_sessions()
        second = list(pool.map(lambda _: len(client.history(1)), range(16)))
    assert first == second == [17] * 16
    assert sum(r.method == "POST" for r in stub.requests) == 2


def test_cookie_auth_sends_cookie_and_referer(fake_rt: tuple[FakeRT, RTStub]) -> None:
    rt, stub = fake_rt
    rt.sessions.add("browser-sid")
    conn = connection(stub.url, cookie=SecretStr(f"{COOKIE}=browser-sid"))
    with RTClient(conn) as client:
        assert len(client.history(1)) == 17
    (request,) = stub.requests
    assert request.cookies == {COOKIE: "browser-sid"}
    assert request.headers["referer"] == stub.url


def test_expired_cookie_fails_at_once(fake_rt: tuple[FakeRT, RTStub], sleeps: Sleeps) -> None:
    _, stub = fake_rt
    conn = connection(stub.url, cookie=SecretStr(f"{COOKIE}=stale-sid"))
    with RTClient(conn, sleep=sleeps) as client:
        with pytest.raises(
            RTSessionExpired, match="RT session cookie is no longer valid"
        ) as caught:
            client.history(1)
        assert "stale-sid" not in str(caught.value)
    assert [r.method for r in stub.requests] == ["GET"]
    assert sleeps == []


def test_token_auth_header() -> None:
    with RTStub(lambda r: Reply(sample("user-jdoe-show.txt"))) as stub:
        with RTClient(connection(stub.url, token=SecretStr(TOKEN))) as client:
            assert client.is_privileged("jdoe") is True
        (request,) = stub.requests
    assert request.headers["authorization"] == f"token {TOKEN}"
    assert request.cookies == {}


def test_rejected_token_is_final(sleeps: Sleeps) -> None:
    with RTStub(lambda r: Reply(sample("unauthenticated-ticket-show.txt"))) as stub:
        with RTClient(connection(stub.url, token=SecretStr(TOKEN)), sleep=sleeps) as client:
            with pytest.raises(RTAuthError, match="rejected the auth token") as caught:
                client.history(1)
            assert TOKEN not in str(caught.value)
        assert len(stub.requests) == 1
    assert sleeps == []


# -- retries ----------------------------------------------------------------------------------


def token_client(url: str, sleeps: Sleeps, **overrides: Any) -> RTClient:
    return RTClient(connection(url, token=SecretStr(TOKEN), **overrides), sleep=sleeps)


def test_http_500_is_retried_with_jittered_backoff(sleeps: Sleeps) -> None:
    handler = scripted(
        Reply(b"Internal Server Error", status=500),
        Reply(b"Bad Gateway", status=502),
        Reply(sample("ticket-2-history-format-l.txt")),
    )
    with RTStub(handler) as stub, token_client(stub.url, sleeps) as client:
        assert len(client.history(2)) == 11
        assert client.requests_made == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1 and 0 <= sleeps[1] <= 2


def test_429_honours_retry_after(sleeps: Sleeps) -> None:
    handler = scripted(
        Reply(b"slow down", status=429, headers={"Retry-After": "7"}),
        Reply(b"slow down", status=429, headers={"Retry-After": "86400"}),
        Reply(sample("ticket-3-history-format-l.txt")),
    )
    with RTStub(handler) as stub, token_client(stub.url, sleeps) as client:
        assert len(client.history(3)) == 7
    assert sleeps == [7.0, RETRY_AFTER_CAP]


def test_retries_stop_at_max_retries(sleeps: Sleeps) -> None:
    with RTStub(lambda r: Reply(b"down", status=503)) as stub:
        with (
            token_client(stub.url, sleeps, max_retries=2) as client,
            pytest.raises(RTTransientError, match=r"HTTP 503 for history of ticket 4.*3 attempts"),
        ):
            client.history(4)
        assert len(stub.requests) == 3
    assert len(sleeps) == 2


def test_truncated_body_is_retried(sleeps: Sleeps) -> None:
    whole = sample("ticket-1-history-format-l.txt")
    handler = scripted(Reply(whole[:3000]), Reply(whole))
    with RTStub(handler) as stub, token_client(stub.url, sleeps) as client:
        assert len(client.history(1)) == 17
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(rt_body("Invalid query: 'Wrong query'.\n", 400, "Bad request")), RTQueryError),
        (Reply(sample("ticket-999999-show-nonexistent.txt")), RTTicketUnavailable),
        (
            Reply(b"<html><body>Possible cross-site request forgery</body></html>\n"),
            RTProtocolError,
        ),
        (Reply(b"Not Found", status=404), RTProtocolError),
    ],
)
def test_final_errors_are_not_retried(reply: Reply, error: type[Exception], sleeps: Sleeps) -> None:
    with RTStub(lambda r: reply) as stub, token_client(stub.url, sleeps) as client:
        with pytest.raises(error):
            client.history(999999)
        assert len(stub.requests) == 1
    assert sleeps == []


def test_connection_refused_is_transient(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with token_client(f"http://127.0.0.1:{port}", sleeps, max_retries=1) as client:
        with pytest.raises(RTTransientError, match="could not reach RT for history of ticket 1"):
            client.history(1)
        assert client.requests_made == 2
    assert len(sleeps) == 1


def test_timeout_is_transient(sleeps: Sleeps) -> None:
    with (
        RTStub(lambda r: Reply(hold=True)) as stub,
        token_client(stub.url, sleeps, timeout=0.2, max_retries=0) as client,
        pytest.raises(RTTransientError, match=r"did not answer history of ticket 1 within 0\.2 s"),
    ):
        client.history(1)


def test_search_uses_search_timeout_and_others_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, float]] = []
    routes = {
        "search": sample("search-resolved-format-l-all.txt"),
        "history": sample("ticket-1-history-format-l.txt"),
    }
    with RTStub(lambda r: Reply(routes["search" if "search" in r.path else "history"])) as stub:
        client = RTClient(
            connection(stub.url, token=SecretStr(TOKEN), timeout=12.0, search_timeout=345.0)
        )
        with client:
            original = client._session.request

            def spy(method: str, url: str, **kwargs: Any) -> Any:
                seen.append((url.split("/REST/1.0/")[1].split("?")[0], kwargs["timeout"]))
                assert kwargs["verify"] is True
                return original(method, url, **kwargs)

            monkeypatch.setattr(client._session, "request", spy)
            client.search("Status = 'resolved'")
            client.history(1)
    assert seen == [("search/ticket", 345.0), ("ticket/1/history", 12.0)]


def test_verify_false_is_passed_on() -> None:
    client = RTClient(connection("https://rt.example.com", token=SecretStr(TOKEN), verify=False))
    with client:
        assert client._session.verify is False


# -- endpoints --------------------------------------------------------------------------------


def test_path_prefixed_base_url(fake_rt: tuple[FakeRT, RTStub]) -> None:
    _, stub = fake_rt
    with RTClient(connection(stub.url + "/rt")) as client:
        client.history(1)
    assert [r.path for r in stub.requests] == ["/rt/REST/1.0/", "/rt/REST/1.0/ticket/1/history"]


def test_search_query_is_url_encoded() -> None:
    query = "Status = 'resolved' AND Queue = 'Café & Co' AND Subject LIKE '100%+#?'"
    with RTStub(lambda r: Reply(sample("search-resolved-format-l-all.txt"))) as stub:
        with RTClient(connection(stub.url, token=SecretStr(TOKEN))) as client:
            tickets = client.search(query)
        (request,) = stub.requests
    assert [t.id for t in tickets] == [1, 2, 3, 4]
    assert request.path == "/REST/1.0/search/ticket"
    assert request.query == {
        "query": [query],
        "format": ["l"],
        "fields": ["id,Queue,Owner,Subject,Requestors,Created,Resolved,LastUpdated,Status"],
    }
    assert " " not in request.raw_path and "'" not in request.raw_path


def test_search_with_no_results() -> None:
    with (
        RTStub(lambda r: Reply(rt_body("No matching results.\n"))) as stub,
        RTClient(connection(stub.url, token=SecretStr(TOKEN))) as client,
    ):
        assert client.search("Status = 'nonesuch'") == []


def ranged_search_rt(ids: list[int]) -> Callable[[Request], Reply]:
    """Format i lists `ids`; format l answers the tickets inside the query's id range."""

    def handler(request: Request) -> Reply:
        if request.query["format"] == ["i"]:
            return Reply(rt_body("".join(f"ticket/{i}\n" for i in ids) + "\n"))
        low, high = map(
            int, re.search(r"id >= (\d+) AND id <= (\d+)$", request.query["query"][0]).groups()
        )  # type: ignore[union-attr]
        records = [
            f"id: ticket/{i}\nQueue: General\nOwner: root\nSubject: s{i}\nStatus: resolved\n"
            f"Requestors: r{i}@example.com\nCreated: x\nResolved: y\nLastUpdated: Fri Dec 04 11:06:4{i % 10} 2026\n"
            for i in ids
            if low <= i <= high
        ]
        return Reply(rt_body("\n--\n\n".join(records) + "\n"))

    return handler


def test_search_in_id_ranges() -> None:
    ids = [3, 8, 9, 15, 21]
    with RTStub(ranged_search_rt(ids)) as stub:
        with RTClient(connection(stub.url, token=SecretStr(TOKEN))) as client:
            tickets = client.search("Status = 'resolved'", range_size=2)
            assert client.requests_by_kind == {"search-ids": 1, "search": 3}
        queries = [(r.query["format"][0], r.query["query"][0]) for r in stub.requests]
    assert [t.id for t in tickets] == ids
    assert tickets[0].requestors == "r3@example.com"
    assert queries == [
        ("i", "Status = 'resolved'"),
        ("l", "(Status = 'resolved') AND id >= 3 AND id <= 8"),
        ("l", "(Status = 'resolved') AND id >= 9 AND id <= 15"),
        ("l", "(Status = 'resolved') AND id >= 21 AND id <= 21"),
    ]
    assert "fields" not in stub.requests[0].query


def test_search_in_ranges_with_no_hits_asks_once() -> None:
    with RTStub(ranged_search_rt([])) as stub:
        with RTClient(connection(stub.url, token=SecretStr(TOKEN))) as client:
            assert client.search("Status = 'resolved'", range_size=100) == []
        assert len(stub.requests) == 1


def test_attachment_headers_and_users(fake_rt: tuple[FakeRT, RTStub]) -> None:
    _, stub = fake_rt
    with RTClient(connection(stub.url)) as client:
        assert client.attachment_headers(1, 20)["bcc"] == "boss@example.com"
        assert client.is_privileged("jdoe") is True
        assert client.is_privileged("alice.customer@example.com") is False
        assert client.is_privileged("nosuchuser") is False
    raw = [r.raw_path for r in stub.requests]
    assert "/REST/1.0/ticket/1/attachments/20" in raw
    assert "/REST/1.0/user/alice.customer%40example.com" in raw


def test_missing_ticket_history_names_the_ticket(fake_rt: tuple[FakeRT, RTStub]) -> None:
    _, stub = fake_rt
    with RTClient(connection(stub.url)) as client, pytest.raises(RTTicketUnavailable) as caught:
        client.history(999999)
    assert caught.value.ticket_id == 999999


# -- pacing and helpers -----------------------------------------------------------------------


def test_rate_limit_token_bucket_waits_for_the_deficit(sleeps: Sleeps) -> None:
    now = [100.0]
    bucket = _TokenBucket(2.0, sleeps, lambda: now[0])
    for _ in range(4):
        bucket.acquire()
    assert sleeps == [0.5, 1.0]
    now[0] += 10.0  # refilled to its burst of 2
    bucket.acquire()
    assert sleeps == [0.5, 1.0]


def test_client_rate_limit_paces_requests(sleeps: Sleeps) -> None:
    with RTStub(lambda r: Reply(sample("user-jdoe-show.txt"))) as stub:
        conn = connection(stub.url, token=SecretStr(TOKEN), rate_limit=1.0)
        with RTClient(conn, sleep=sleeps, clock=lambda: 0.0) as client:
            for _ in range(3):
                client.is_privileged("jdoe")
    assert sleeps == [1.0, 2.0]


def test_clients_of_one_run_share_the_rate_limit(sleeps: Sleeps) -> None:
    """Two chunk tasks run side by side, each with its own client: RT still sees 1 request/s."""
    with RTStub(lambda r: Reply(sample("user-jdoe-show.txt"))) as stub:
        conn = connection(stub.url, token=SecretStr(TOKEN), rate_limit=1.0)
        with (
            RTClient(conn, sleep=sleeps, clock=lambda: 0.0) as first,
            RTClient(conn, sleep=sleeps, clock=lambda: 0.0) as second,
        ):
            first.is_privileged("jdoe")
            second.is_privileged("jdoe")
            first.is_privileged("jdoe")
    assert sleeps == [1.0, 2.0]


def test_retry_after_forms() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_repr_has_no_secret() -> None:
    client = RTClient(connection("https://rt.example.com"))
    with client:
        assert PASSWORD not in repr(client)


def test_http_401_with_rt_body_is_judged_by_rt_status(sleeps: Sleeps) -> None:
    reply = Reply(sample("unauthenticated-ticket-show.txt"), status=401)
    with (
        RTStub(lambda r: reply) as stub,
        token_client(stub.url, sleeps) as client,
        pytest.raises(RTAuthError, match="rejected the auth token"),
    ):
        client.history(1)


def test_http_401_from_a_proxy_is_final(sleeps: Sleeps) -> None:
    reply = Reply(b"<html>401 Authorization Required</html>", status=401)
    with RTStub(lambda r: reply) as stub, token_client(stub.url, sleeps) as client:
        with pytest.raises(RTAuthError, match="refused before RT"):
            client.history(1)
        assert len(stub.requests) == 1


def test_cookie_is_not_sent_to_another_host() -> None:
    with RTStub(lambda r: Reply(sample("user-jdoe-show.txt"))) as other:
        conn = connection("https://rt.example.com", cookie=SecretStr(f"{COOKIE}=browser-sid"))
        with RTClient(conn) as client:
            client._session.get(other.url + "/REST/1.0/user/jdoe", timeout=5)
        (request,) = other.requests
    assert request.cookies == {}
