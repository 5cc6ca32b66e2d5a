"""An RT 5.0.3 REST 1.0 server simulator for the demo, flow tests, fault injection and benchmarks.

It answers like the real thing (status inside the body, HTTP 200 almost always, RT's login form,
session cookie and CSRF interstitial) so the client is exercised on RT's quirks, and it models
cost: `latency_ms` is network time and does not hold a server worker, `service_times` (ms per
endpoint kind) is work done while holding one of `workers` slots, so concurrency is not free.

Run stand-alone (benchmarks drive it through `POST /_sandbox/<action>` JSON):
    python -m rt_displayr.sandbox.rt_server --tickets 1000 --port 0
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rt_displayr.sandbox import rt_render as render
from rt_displayr.sandbox.rt_data import SimRT, SimTicket, generate_tickets

# Milliseconds of server work per endpoint, measured on Debian's RT 5.0.3 (SQLite, 4 workers) on
# this project's 2-core machines: benchmarks/README.md. The search costs per listed ticket
# (4.6 ms each: RT builds every record in memory), so a cheap simulated search does not flatter
# incremental reruns.
DEFAULT_SERVICE_TIMES: dict[str, float] = {
    "history_l": 52.8,
    "history": 16.1,
    "show": 19.5,
    "history_item": 13.5,
    "attachments": 9.6,
    "attachment": 9.6,
    "show_list": 29.7,
    "user": 15,
    "search": 30,
    "search_per_ticket": 4.6,
}
KINDS = frozenset(
    {
        "search",
        "show",
        "show_list",
        "history",
        "history_l",
        "history_item",
        "attachments",
        "attachment",
        "user",
        "logout",
        "other",
        "control",
    }
)
FAULTS = frozenset(
    {
        "http500",
        "http502",
        "reset",
        "http429",
        "hang",
        "session_expired",
        "html",
        "truncated",
        "bad_utf8",
    }
)
PERL_DIE_SUFFIX = " at /usr/share/request-tracker5/lib/RT/Tickets.pm line 3308.\n"
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
APACHE_500 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
    "<title>500 Internal Server Error</title>\n</head><body>\n<h1>Internal Server Error</h1>\n"
    "<p>The server encountered an internal error or\nmisconfiguration and was unable to "
    "complete\nyour request.</p>\n</body></html>\n"
)
PROXY_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Scheduled maintenance</title></head>\n"
    "<body><h1>We'll be right back</h1><p>The ticket system is undergoing scheduled "
    "maintenance.</p></body></html>\n"
)


# --- TicketSQL (the subset the pipeline uses, parsed the way RT::SQL parses) -------------------

_DELIM = r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\""""
_AGGREG = r"(?:AND|OR)"
_OP = (
    r"(?:SHALLOW )?(?:=|!=|>=|<=|>|<|IS NOT|IS|NOT LIKE|LIKE|NOT STARTSWITH|STARTSWITH|"
    r"NOT ENDSWITH|ENDSWITH)"
)
_CF = r"CF\.\{.+?\}(?:\.(?:Content|LargeContent))?"
_VALUE = rf"{_CF}|[\w\.]+|[+-]?\d+|NULL|{_DELIM}"
_KEYWORD = rf"{_CF}|[{{}}\w\.]+|{_DELIM}"
_TOKEN = re.compile(rf"({_AGGREG}|{_OP}|{_KEYWORD}|{_VALUE}|\(|\))", re.I)
VALUE, AGGREG, OP, OPEN_PAREN, CLOSE_PAREN, KEYWORD = 1, 2, 4, 8, 16, 32
_TOKEN_NAMES = ("VALUE", "AGGREGATOR", "OPERATOR", "OPEN_PAREN", "CLOSE_PAREN", "KEYWORD")
TICKET_SQL_FIELDS = {
    name.lower(): name
    for name in (
        "id",
        "EffectiveId",
        "Status",
        "Queue",
        "Owner",
        "Subject",
        "Creator",
        "Created",
        "LastUpdated",
        "LastUpdatedBy",
        "Resolved",
        "Started",
        "Starts",
        "Told",
        "Due",
        "Type",
        "Priority",
        "Requestor",
        "Requestors",
        "Cc",
        "AdminCc",
        "Watcher",
        "Content",
        "TimeWorked",
        "TimeLeft",
        "TimeEstimated",
        "InitialPriority",
        "FinalPriority",
    )
}
SUPPORTED_SQL_FIELDS = {
    "id",
    "status",
    "queue",
    "owner",
    "subject",
    "creator",
    "created",
    "lastupdated",
    "resolved",
    "started",
    "told",
    "requestor",
    "requestors",
}


class TicketSQLError(Exception):
    """The text RT puts between the quotes of `Invalid query: '…'`."""


def _mask_names(mask: int) -> str:
    names = [name for bit, name in enumerate(_TOKEN_NAMES) if mask & (1 << bit)]
    head = ", ".join(names[:-1])
    return " or ".join([head, names[-1]] if head else names[-1:])


def _unquote(text: str) -> str:
    if re.fullmatch(_DELIM, text):
        text = text[1:-1]
    return re.sub(r"\\(.)", r"\1", text)


@dataclass
class _Node:
    """One parenthesised level: RT applies the level's last aggregator to all its children."""

    aggregator: str = "AND"
    children: list[Any] = field(default_factory=list)


def parse_ticket_sql(query: str) -> _Node:
    """Parse like RT::SQL::Parse + QueryBuilder::Tree; raises TicketSQLError with RT's wording."""
    root = node = _Node()
    stack: list[_Node] = []
    want, last, depth = KEYWORD | OPEN_PAREN, 0, 0
    key = op = ""
    errors: list[str] = []
    for match in _TOKEN.finditer(query):
        token = match.group(1)
        current = 0
        if want & OP and re.fullmatch(_OP, token, re.I):
            current = OP
        if want & VALUE and re.fullmatch(_VALUE, token, re.I):
            current = VALUE
        if want & KEYWORD and re.fullmatch(_KEYWORD, token, re.I):
            current = KEYWORD
        if want & AGGREG and re.fullmatch(_AGGREG, token, re.I):
            current = AGGREG
        if want & OPEN_PAREN and token == "(":
            current = OPEN_PAREN
        if want & CLOSE_PAREN and token == ")":
            current = CLOSE_PAREN
        if not current:
            marked = f"{query[: match.start(1)]}>{token}<--here{query[match.end(1) :]}"
            errors.append(f"Wrong query, expecting a {_mask_names(want)} in '{marked}'")
            break
        if current == OPEN_PAREN:
            child = _Node()
            node.children.append(child)
            stack.append(node)
            node, depth, want = child, depth + 1, KEYWORD | OPEN_PAREN
        elif current == CLOSE_PAREN:
            node, depth = stack.pop(), depth - 1
            want = AGGREG | (CLOSE_PAREN if depth else 0)
        elif current == AGGREG:
            node.aggregator, want = token.upper(), KEYWORD | OPEN_PAREN
        elif current == KEYWORD:
            key, want = token, OP
        elif current == OP:
            op, want = token.upper(), VALUE
        else:
            name = _unquote(key)
            if name.split(".")[0].lower() not in TICKET_SQL_FIELDS:
                errors.append(f"Unknown field: {name}")
            node.children.append((name, op, _unquote(token)))
            want = AGGREG | (CLOSE_PAREN if depth else 0)
        last = current
    else:
        if last and not last & (CLOSE_PAREN | VALUE):
            errors.append(
                f"Incomplete query, last element ({_mask_names(last)}) is not close paren or "
                f"value in '{query}'"
            )
        elif depth:
            parens = "unclosed paren" if depth == 1 else "unclosed parens"
            errors.append(f"Incomplete query, {depth} {parens} in '{query}'")
    if errors:
        raise TicketSQLError("; ".join(errors) + PERL_DIE_SUFFIX)
    return root


def _sql_date(sim: SimRT, text: str) -> tuple[int, int]:
    """A TicketSQL date (RT reads it in the user's zone) as [start, end) epoch seconds."""
    for fmt, span in (("%Y-%m-%d %H:%M:%S", 1), ("%Y-%m-%d %H:%M", 60), ("%Y-%m-%d", 86400)):
        try:
            moment = datetime.strptime(text.strip(), fmt).replace(tzinfo=sim.tz)
        except ValueError:
            continue
        return int(moment.timestamp()), int(moment.timestamp()) + span
    raise TicketSQLError(f"Couldn't parse date '{text}'" + PERL_DIE_SUFFIX)


def _compare(op: str, have: Any, want: Any) -> bool:
    match op:
        case "=":
            return bool(have == want)
        case "!=":
            return bool(have != want)
        case ">":
            return bool(have > want)
        case ">=":
            return bool(have >= want)
        case "<":
            return bool(have < want)
        case "<=":
            return bool(have <= want)
    raise TicketSQLError(f"simulator does not support operator {op}" + PERL_DIE_SUFFIX)


def _condition(sim: SimRT, ticket: SimTicket, name: str, op: str, value: str) -> bool:
    field_name = name.lower()
    if field_name not in SUPPORTED_SQL_FIELDS:
        raise TicketSQLError(f"simulator does not support field {name}" + PERL_DIE_SUFFIX)
    if field_name == "id":
        return _compare(op, ticket.id, int(value))
    if field_name in ("created", "lastupdated", "resolved", "started", "told"):
        attr = "last_updated" if field_name == "lastupdated" else field_name
        have = getattr(ticket, attr) or 0
        start, end = _sql_date(sim, value)
        if op == "=":
            return start <= have < end
        if op == "!=":
            return not start <= have < end
        return _compare(op, have, start)
    if field_name in ("requestor", "requestors"):
        people = [r.lower() for r in ticket.requestors]
        if op in ("LIKE", "NOT LIKE"):
            found = any(value.lower() in p for p in people)
            return found if op == "LIKE" else not found
        return _compare("=" if op == "=" else "!=", value.lower() in people, True)
    have = str(getattr(ticket, field_name)).lower()
    if op == "LIKE":
        return value.lower() in have
    if op == "NOT LIKE":
        return value.lower() not in have
    return _compare(op, have, value.lower())


def _matches(sim: SimRT, ticket: SimTicket, node: _Node) -> bool:
    if not node.children:
        return True
    results = (
        _matches(sim, ticket, child)
        if isinstance(child, _Node)
        else _condition(sim, ticket, *child)
        for child in node.children
    )
    return all(results) if node.aggregator == "AND" else any(results)


# --- the server --------------------------------------------------------------------------------


@dataclass
class Fault:
    match: str
    fault: str
    remaining: int
    params: dict[str, Any]

    def applies(self, kind: str, path: str) -> bool:
        return self.match == kind or (
            self.match not in KINDS and re.search(self.match, path) is not None
        )


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False
    declared_length: int | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a keep-alive client waits ~40 ms (delayed ACK) on every request.
    disable_nagle_algorithm = True
    server_version = "Apache"
    sys_version = ""
    timeout = 120
    _set_cookie: str | None = None

    def do_GET(self) -> None:
        self.server.simulator._handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark makes hundreds of thousands of requests."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


class RTSimulator:
    """A running simulated RT. Use as a context manager; `stop()` is idempotent."""

    def __init__(
        self,
        sim: SimRT | None = None,
        *,
        tickets: int = 0,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "",
        user: str = "root",
        password: str = "password",
        token: str | None = None,
        latency_ms: float = 0.0,
        service_times: Mapping[str, float] | None = None,
        workers: int = 4,
        log_requests: bool = False,
        staff_login_emails: bool = False,
    ) -> None:
        self.sim = sim or generate_tickets(
            tickets, seed=seed, staff_login_emails=staff_login_emails
        )
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.credentials = {user: password}
        self.token = token
        self.latency_ms = latency_ms
        self.service_times = dict(service_times or {})
        self.workers = threading.BoundedSemaphore(workers)
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests_log: list[tuple[str, str, str]] | None = [] if log_requests else None
        self._faults: list[Fault] = []
        self._sessions: dict[str, str] = {}  # session id -> "rest" | "browser"
        self._state = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.simulator = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}{self.prefix}"
        self.sim.web_url = self.url
        self.cookie_name = f"RT_SID_{self.sim.rtname}.{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="rt-simulator"
        )
        self._thread.start()

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> RTSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            self._server.shutdown()
        finally:
            self._server.server_close()
            self._thread.join(timeout=5)

    # --- test-facing controls ------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"{self.url}/REST/1.0"

    def reset_counts(self) -> None:
        with self._state:
            self.counts.clear()
            if self.requests_log is not None:
                self.requests_log.clear()

    def inject(self, match: str, fault: str, times: int = 1, **params: Any) -> None:
        """Make the next `times` requests matching `match` (a kind or a path regex) fail;
        times=-1 means every one until `clear_faults()`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        with self._state:
            self._faults.append(Fault(match, fault, times, params))

    def clear_faults(self) -> None:
        with self._state:
            self._faults.clear()

    def browser_session(self) -> str:
        """A cookie as a browser login would have made it (`NAME=VALUE`): REST calls that use it
        without a matching Referer get RT's CSRF interstitial page."""
        sid = secrets.token_hex(16)
        with self._state:
            self._sessions[sid] = "browser"
        return f"{self.cookie_name}={sid}"

    def expire_sessions(self) -> None:
        with self._state:
            self._sessions.clear()

    def add_correspondence(
        self, ticket_id: int, creator: str, text: str = "Any news?", at: Any = None
    ) -> int:
        return self.sim.add_correspondence(ticket_id, creator, text, at).id

    def add_ticket(self, subject: str, requestors: Sequence[str], **kw: Any) -> int:
        return self.sim.add_ticket(subject, requestors, **kw)

    def delete_ticket(self, ticket_id: int) -> None:
        self.sim.delete_ticket(ticket_id)

    def hide_ticket(self, ticket_id: int, hidden: bool = True) -> None:
        self.sim.hide_ticket(ticket_id, hidden)

    def set_status(self, ticket_id: int, status: str, by: str = "root", at: Any = None) -> None:
        self.sim.set_status(ticket_id, status, by, at)

    def control(self, action: str, payload: Mapping[str, Any]) -> Any:
        """The `POST /_sandbox/<action>` dispatcher, so another process can drive the simulator."""
        actions: dict[str, Callable[..., Any]] = {
            "add_correspondence": self.add_correspondence,
            "add_ticket": self.add_ticket,
            "delete_ticket": self.delete_ticket,
            "hide_ticket": self.hide_ticket,
            "set_status": self.set_status,
            "inject": self.inject,
            "clear_faults": self.clear_faults,
            "reset_counts": self.reset_counts,
            "counts": lambda: dict(self.counts),
            "browser_session": lambda: {"cookie": self.browser_session()},
            "expire_sessions": self.expire_sessions,
            "tickets": lambda: sorted(self.sim.tickets),
        }
        if action not in actions:
            raise KeyError(f"unknown action {action!r}")
        return actions[action](**payload)

    # --- request handling --------------------------------------------------------------------

    def _handle(self, req: _Handler) -> None:
        parts = urlsplit(req.path)
        # The web server hands RT a percent-decoded PATH_INFO (`user/jane%40example.com` is
        # the user `jane@example.com`).
        path = unquote(parts.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        for base in ("/_sandbox/", f"{self.prefix}/_sandbox/"):
            if path.startswith(base):
                self._send(req, self._control_reply(path[len(base) :], body))
                return
        args = _request_args(parts.query, body, req.headers.get("Content-Type", ""))
        rest_root = f"{self.prefix}/REST/1.0/"
        if not path.startswith(rest_root):
            self._count("other", req.command, path)
            self._send(req, Reply(404, b"<html><body>Not Found</body></html>\n", "text/html"))
            return
        rest = re.sub(r"/+$", "", path[len(rest_root) :])
        kind = _classify(rest, args)
        self._count(kind, req.command, path)
        if self.latency_ms:
            self._stopping.wait(self.latency_ms / 1000)
        fault = self._take_fault(kind, path)
        if fault is not None and fault.fault not in ("truncated", "bad_utf8"):
            reply = self._fault_reply(fault)
            if reply is not None:
                self._send(req, reply)
                return
        reply = self._authenticate(req, args)
        if reply is None:
            reply = self._serve(kind, rest, args)
        if fault is not None and fault.fault in ("truncated", "bad_utf8"):
            reply = _damage(reply, fault)
        self._send(req, reply)

    def _count(self, kind: str, method: str, path: str) -> None:
        with self._state:
            self.counts[kind] += 1
            self.counts["total"] += 1
            if self.requests_log is not None:
                self.requests_log.append((method, path, kind))

    def _take_fault(self, kind: str, path: str) -> Fault | None:
        with self._state:
            for fault in self._faults:
                if fault.applies(kind, path):
                    if fault.remaining > 0:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _fault_reply(self, fault: Fault) -> Reply | None:
        params = fault.params
        match fault.fault:
            case "http500":
                return Reply(500, APACHE_500.encode(), "text/html; charset=iso-8859-1")
            case "http502":
                return Reply(502, NGINX_502.encode(), "text/html")
            case "http429":
                retry = str(params.get("retry_after", params.get("seconds", 1)))
                return Reply(
                    429, b"Too Many Requests\n", "text/plain", headers=[("Retry-After", retry)]
                )
            case "reset":
                return Reply(reset=True)
            case "hang":
                self._stopping.wait(float(params.get("seconds", 30)))
                return None
            case "session_expired":
                self.expire_sessions()
                return Reply(200, render.UNAUTHENTICATED.encode())
            case "html":
                status = int(params.get("status", 200))
                page = NGINX_502 if status == 502 else PROXY_PAGE
                return Reply(status, page.encode(), "text/html")
        return None

    def _authenticate(self, req: _Handler, args: Mapping[str, list[str]]) -> Reply | None:
        """RT's REST login: user/pass on any URL makes a session; else token or cookie."""
        if "user" in args and "pass" in args:
            user, password = args["user"][0], args["pass"][0]
            if self.credentials.get(user) != password:
                return Reply(200, render.BAD_PASSWORD.encode())
            sid = secrets.token_hex(16)
            with self._state:
                self._sessions[sid] = "rest"
            req._set_cookie = f"{self.cookie_name}={sid}; path={self.prefix or '/'}; HttpOnly"
            return None
        authorization = req.headers.get("Authorization", "")
        if authorization.lower().startswith("token "):
            if self.token and secrets.compare_digest(authorization[6:].strip(), self.token):
                return None
            return Reply(200, render.UNAUTHENTICATED.encode())
        sid = _cookie(req.headers.get("Cookie", ""), self.cookie_name)
        with self._state:
            session = self._sessions.get(sid) if sid else None
        if session == "rest":
            return None
        if session == "browser":
            referer = req.headers.get("Referer", "")
            if referer.startswith(self.url):
                return None
            return Reply(
                200,
                _csrf_page(self.url + urlsplit(req.path).path).encode(),
                "text/html; charset=utf-8",
            )
        return Reply(200, render.UNAUTHENTICATED.encode())

    def _service(self, kind: str, extra_units: int = 0) -> None:
        cost = self.service_times.get(kind, 0.0)
        if kind == "search":
            cost += self.service_times.get("search_per_ticket", 0.0) * extra_units
        if cost:
            self._stopping.wait(cost / 1000)

    def _serve(self, kind: str, rest: str, args: Mapping[str, list[str]]) -> Reply:
        with self.workers:
            if kind == "search":
                text, matched = self._search(args)
                self._service(kind, matched)
            else:
                self._service(kind)
                with self.sim.lock:
                    text = self._object_body(kind, rest, args)
        return Reply(200, text.encode("utf-8", "surrogateescape"))

    def _search(self, args: Mapping[str, list[str]]) -> tuple[str, int]:
        query = _first(args, "query")
        fields_arg = _first(args, "fields")
        fmt = _first(args, "format")
        fields: list[str] | None = None
        if fields_arg:
            fmt = fmt or "l"
            if not re.fullmatch(
                r"(?i:[a-z][a-z0-9_-]*|CF\.\{[^,]+\})(?:\s*,\s*(?i:[a-z][a-z0-9_-]*|CF\.\{[^,]+\}))*",
                fields_arg,
            ):
                return render.search_error_body(
                    "400 Bad Request", f"Invalid field specification: {fields_arg}"
                ), 0
            fields = [f.strip() for f in fields_arg.split(",")]
        fmt = fmt or "s"
        if fmt not in ("i", "s", "l"):
            return render.search_error_body(
                "400 Bad request", f"Unknown listing format: {fmt}. (Use i, s, or l.)\n"
            ), 0
        try:
            tree = parse_ticket_sql(query)
            with self.sim.lock:
                found = [
                    t
                    for t in self.sim.tickets.values()
                    if not t.deleted and not t.hidden and _matches(self.sim, t, tree)
                ]
                found = _order(found, _first(args, "orderby"))
                return render.search_body(self.sim, found, fmt, fields), len(found)
        except TicketSQLError as exc:
            return render.search_error_body("400 Bad request", f"Invalid query: '{exc}'.\n"), 0

    def _object_body(self, kind: str, rest: str, args: Mapping[str, list[str]]) -> str:
        fmt = _first(args, "format")
        fields = [f.strip() for f in _first(args, "fields").split(",") if f.strip()]
        if kind == "show_list":
            specs = []
            utype = rest.split("/")[0] if rest != "show" else ""
            for raw in args.get("id", []):
                for spec in _expand_spec(raw, utype):
                    if spec is None:
                        return render.error_body(
                            "400 Bad Request", f"Invalid object ID specified: '{raw}'"
                        )
                    specs.append(spec)
            if not specs:
                return render.error_body("400 Bad Request", "No objects specified.")
            forms = [f for spec in specs for f in self._forms(spec, fmt, fields)]
            return render.dhandler_body(forms)
        content = re.fullmatch(r"ticket/(\d+)/attachments/(\d+)/content", rest)
        if content:
            ticket = self.sim.tickets.get(int(content.group(1)))
            problem = render.ticket_problem(ticket, int(content.group(1)))
            attachment = (
                None
                if problem or ticket is None
                else self.sim.find_attachment(ticket, int(content.group(2)))
            )
            if attachment is None:
                comment = problem or f"# Invalid attachment id: {content.group(2)}"
                return render.dhandler_body([(comment, [], {})])
            # RT prints the stored text after the status line, and nothing at all when empty
            if not attachment.content:
                return ""
            return f"{render.status_line()}\n{attachment.content}"
        if kind == "logout":
            return render.dhandler_body([("", None, {})]) or f"{render.status_line()}\n"
        return render.dhandler_body(self._forms(rest, fmt, fields))

    def _forms(self, spec: str, fmt: str, fields: list[str]) -> list[render.Form]:
        """The forms RT prints for one object specification such as `ticket/1/history`."""
        sim = self.sim
        m = re.fullmatch(r"([\w.-]+)/(\d+|[a-zA-Z0-9@_.+-]+)(?:/([\w.-]+)(?:/(.*))?)?", spec)
        if not m:
            return [(f"# Invalid object specification: '{spec}'", ["id"], {"id": spec})]
        type_, ident, attr, extra = m.group(1), m.group(2), m.group(3) or "", m.group(4) or ""
        if type_ == "user":
            return [render.user_form(sim, ident)]
        if type_ != "ticket":
            return [(f"# Unknown object type: {type_}", ["id"], {"id": spec})]
        if not ident.isdigit():
            return [
                (
                    f"# Objects of type {type_} must be specified by numeric id.",
                    ["id"],
                    {"id": spec},
                )
            ]
        ticket_id = int(ident)
        ticket = sim.tickets.get(ticket_id)
        problem = render.ticket_problem(ticket, ticket_id)
        if problem:
            return [(problem, [], {})]
        assert ticket is not None
        if attr in ("", "show", "default"):
            return [render.ticket_form(sim, ticket, fields or None, reorder=True)]
        if attr == "history":
            id_match = re.fullmatch(r"id/(\d+)", extra)
            if id_match:
                txn = sim.find_transaction(ticket, int(id_match.group(1)))
                if txn is None:
                    return [
                        (
                            f"# Transaction {id_match.group(1)} is not related to Ticket "
                            f"{ticket_id}",
                            [],
                            {},
                        )
                    ]
                return [render.history_item_form(sim, ticket, txn)]
            type_match = re.fullmatch(r"type/(\w+)", extra)
            if fmt == "l" or fields:
                return [render.history_item_form(sim, ticket, t) for t in ticket.transactions]
            return [render.history_short_form(ticket, type_match.group(1) if type_match else "")]
        if attr == "attachments":
            if not extra:
                listing = render.attachments_list_form(sim, ticket)
                return [listing] if listing else []
            aid = extra.split("/")[0]
            if not aid.isdigit():
                return [(f"# Invalid attachment id: {aid}", [], {})]
            return [render.attachment_form(sim, ticket, int(aid))]
        return [(f"# Unknown object type: {type_}", ["id"], {"id": spec})]

    def _control_reply(self, action: str, body: bytes) -> Reply:
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            result = self.control(action.strip("/"), payload)
            data = {"ok": True, "result": result}
            status = 200
        except (KeyError, ValueError, TypeError) as exc:
            data, status = {"ok": False, "error": str(exc)}, 400
        self._count("control", "POST", action)
        return Reply(status, json.dumps(data).encode(), "application/json")

    def _send(self, req: _Handler, reply: Reply) -> None:
        if reply.reset:
            req.close_connection = True
            try:
                req.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                req.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = reply.body
        try:
            req.send_response(reply.status)
            req.send_header("Content-Type", reply.content_type)
            req.send_header("Content-Length", str(reply.declared_length or len(body)))
            cookie = getattr(req, "_set_cookie", None)
            if cookie:
                req.send_header("Set-Cookie", cookie)
                req._set_cookie = None
            for name, value in reply.headers:
                req.send_header(name, value)
            req.end_headers()
            req.wfile.write(body)
            if reply.declared_length is not None:
                req.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True


def _first(args: Mapping[str, list[str]], name: str) -> str:
    values = args.get(name)
    return values[0] if values else ""


def _request_args(query: str, body: bytes, content_type: str) -> dict[str, list[str]]:
    """Query-string and form fields together, as Mason merges them (urlencoded or multipart)."""
    args: dict[str, list[str]] = collections.defaultdict(list)
    for key, value in parse_qsl(query, keep_blank_values=True):
        args[key].append(value)
    if body and content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True)
                data = payload if isinstance(payload, bytes) else b""
                args[str(name)].append(data.decode("utf-8", "replace"))
    elif body:
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            args[key].append(value)
    return dict(args)


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _classify(rest: str, args: Mapping[str, list[str]]) -> str:
    """The endpoint kind used for counters, service times and fault matching."""
    if rest == "search/ticket":
        return "search"
    if rest in ("show", "ticket/show", "user/show"):
        return "show_list"
    if rest == "logout":
        return "logout"
    m = re.fullmatch(r"(ticket|user)/([^/]+)(?:/(.*))?", rest)
    if not m:
        return "other"
    if m.group(1) == "user":
        return "user"
    tail = m.group(3) or ""
    if tail in ("", "show"):
        return "show"
    if tail.startswith("history/id/"):
        return "history_item"
    if tail.startswith("history"):
        return "history_l" if _first(args, "format") == "l" or _first(args, "fields") else "history"
    if tail == "attachments":
        return "attachments"
    if tail.startswith("attachments/"):
        return "attachment"
    return "other"


def _expand_list(text: str) -> list[str]:
    """RT's expand_list: `1-3,7` -> 1,2,3,7; numbers sorted first, then names."""
    items: list[str] = []
    for part in re.split(r"\s*,\s*", text):
        span = re.fullmatch(r"(\d+)-(\d+)", part)
        if span:
            items.extend(str(i) for i in range(int(span.group(1)), int(span.group(2)) + 1))
        else:
            items.append(part)
    numbers = sorted((int(i), i) for i in items if i.isdigit())
    names = sorted((i for i in items if not i.isdigit()), key=str.lower)
    return [i for _, i in numbers] + names


def _expand_spec(raw: str, utype: str) -> list[str | None]:
    """`ticket/1-3/history` or `ticket/1/history/id/41,42` into single object specifications."""
    if utype and not raw.startswith(f"{utype}/"):
        raw = f"{utype}/{raw}"
    m = re.fullmatch(
        r"([\w.-]+)/((?:(?:\d+-)?\d+,)*(?:\d+-)?\d+|(?:[a-zA-Z0-9@_.+-]+,)*[a-zA-Z0-9@_.+-]+)"
        r"(/.*)?",
        raw,
    )
    if not m:
        return [None]
    type_, oids, extra = m.group(1), m.group(2), m.group(3) or ""
    tids = re.match(r"/history/id/(\d.*)", extra)
    out: list[str | None] = []
    for oid in _expand_list(oids):
        if tids:
            out.extend(f"{type_}/{oid}/history/id/{t}" for t in _expand_list(tids.group(1)))
        else:
            out.append(f"{type_}/{oid}{extra}")
    return out


def _order(tickets: list[SimTicket], orderby: str) -> list[SimTicket]:
    descending = orderby.startswith("-")
    name = orderby.lstrip("+-").lower() or "id"
    keys: dict[str, Callable[[SimTicket], Any]] = {
        "id": lambda t: t.id,
        "lastupdated": lambda t: (t.last_updated, t.id),
        "created": lambda t: (t.created, t.id),
        "resolved": lambda t: (t.resolved or 0, t.id),
        "status": lambda t: (t.status, t.id),
        "queue": lambda t: (t.queue, t.id),
        "subject": lambda t: (t.subject, t.id),
    }
    return sorted(tickets, key=keys.get(name, keys["id"]), reverse=descending)


def _damage(reply: Reply, fault: Fault) -> Reply:
    body = reply.body
    if fault.fault == "truncated":
        cut = max(len(body) // 2, min(len(body), 40))
        if fault.params.get("abort"):
            return Reply(
                reply.status,
                body[:cut],
                reply.content_type,
                reply.headers,
                declared_length=len(body),
            )
        return Reply(reply.status, body[:cut], reply.content_type, reply.headers)
    marker = body.find(b"\nContent: ")
    at = marker + len(b"\nContent: ") if marker >= 0 else len(body) // 2
    return Reply(
        reply.status, body[:at] + b"\xff\xfe\xc3(" + body[at:], reply.content_type, reply.headers
    )


def _csrf_page(original_url: str) -> str:
    """RT's interstitial for a browser session used without a Referer (share/html/Elements/CSRF)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        "<title>Possible cross-site request forgery</title>\n</head>\n<body>\n"
        "<h1>Possible cross-site request forgery</h1>\n"
        "<p>RT has detected a possible <strong>cross-site request forgery</strong> for this "
        "request, because your browser did not supply a Referrer header.  This is possibly "
        "caused by a malicious attacker trying to perform actions against RT on your behalf. "
        "If you did not initiate this request, then you should alert your security team.</p>\n"
        f'<p>If you really intended to visit <tt>{original_url}</tt>, then <strong><a href="'
        f'{original_url}?CSRF_Token={secrets.token_hex(16)}">click here to resume your '
        "request</a></strong>.</p>\n</body>\n</html>\n"
    )


def control(url: str, action: str, timeout: float = 30.0, **payload: Any) -> Any:
    """Drive a simulator in another process: `control(sim_url, "add_correspondence", ...)`."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/_sandbox/{action}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["result"]


def service_times_option(value: str) -> Mapping[str, float] | None:
    """`default`, `zero`, or a JSON table such as the benchmark's costs measured on a real RT."""
    if value == "default":
        return DEFAULT_SERVICE_TIMES
    if value == "zero":
        return None
    table = json.loads(value)
    if not isinstance(table, dict):
        raise SystemExit(f"--service-times must be default, zero or a JSON object, got {value!r}")
    return {str(kind): float(ms) for kind, ms in table.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--service-times",
        default="zero",
        help="'default' (measured on a real RT), 'zero', or a JSON object of ms per endpoint kind",
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="password")
    parser.add_argument("--token", default=None)
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--staff-login-emails", action="store_true")
    opts = parser.parse_args(argv)
    sim = generate_tickets(
        opts.tickets,
        seed=opts.seed,
        timezone=opts.timezone,
        staff_login_emails=opts.staff_login_emails,
    )
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    server = RTSimulator(
        sim,
        port=opts.port,
        prefix=opts.prefix,
        user=opts.user,
        password=opts.password,
        token=opts.token,
        latency_ms=opts.latency_ms,
        workers=opts.workers,
        service_times=service_times_option(opts.service_times),
    )
    try:
        print(server.url, flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
