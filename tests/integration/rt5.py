"""Bring up a real Request Tracker 5 (Debian 12 packages) on loopback for the integration tests.

Usage:
    python tests/integration/rt5.py install          # as root: apt, idempotent, instant if present
    python tests/integration/rt5.py serve --port N   # a fresh RT until Ctrl-C, for manual poking

Why the site configuration lives in a temp directory instead of /etc/request-tracker5: RT reads
`RT_SITE_CONFIG` (the site file) and `RT_SITE_CONFIG_DIR` (instead of both RT_SiteConfig.d
directories) from the environment, so every test session gets its own config and SQLite database,
nothing in /etc is edited, and the Debian `51-dbconfig-common.pm` (with its bogus DatabaseName)
is never read. RT writes outgoing mail ($MailCommand 'mbox') under `$RT::VarPath`; the config
points that at the session directory too, so a run leaves nothing behind in /var/lib.

The server runs in its own process group and `stop()` signals only that group.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

PACKAGES = ("request-tracker5", "rt5-db-sqlite", "rt5-standalone")
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
DATAFILE = Path(__file__).resolve().parent / "data" / "rt-displayr-test.pl"
RT_NAME = "rt-displayr-test"
RT_TIMEZONE = "America/New_York"
READY_TIMEOUT = 120.0
STOP_GRACE = 15.0
MAX_WORKERS = 4

# Without this answer the postinst lets dbconfig-common build its own database.
DEBCONF_PRESEED = "request-tracker5 request-tracker5/dbconfig-install boolean false\n"
APT_LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=600")


class RTStartError(RuntimeError):
    """RT could not be configured or did not answer in time; the message carries its log tail."""


def missing_prerequisite() -> str | None:
    """Why a real RT cannot be started here, in one line; None when it can."""
    if os.geteuid() != 0:
        return "needs root (RT's site config and rt-server run as root)"
    missing = [str(p) for p in (RT_SERVER, RT_SETUP_DATABASE) if not p.exists()]
    if missing:
        return (
            f"RT 5 is not installed ({', '.join(missing)} missing): "
            "run `python tests/integration/rt5.py install` as root"
        )
    return None


def packages_installed() -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status} ", *PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.split() == ["installed"] * len(PACKAGES)


def install() -> None:
    """Install RT 5 with the Debian packages; a no-op (no apt call) when they are already there."""
    if packages_installed() and RT_SERVER.exists() and RT_SETUP_DATABASE.exists():
        print("rt5: request-tracker5, rt5-db-sqlite, rt5-standalone already installed")
        return
    if os.geteuid() != 0:
        raise SystemExit("rt5 install: run as root (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input=DEBCONF_PRESEED, text=True, check=True)
    started = time.monotonic()
    subprocess.run(["apt-get", *APT_LOCK_WAIT, "update", "-q"], env=env, check=True)
    subprocess.run(
        [
            "apt-get",
            *APT_LOCK_WAIT,
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *PACKAGES,
        ],
        env=env,
        check=True,
    )
    print(f"rt5: installed in {time.monotonic() - started:.0f} s")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_config(base_dir: Path, port: int) -> str:
    """The whole site configuration; every value that differs from RT's defaults is on purpose."""
    return f"""\
Set($rtname, '{RT_NAME}');
Set($Organization, 'rt-displayr.test');
Set($CorrespondAddress, 'rt@rt-displayr.test');
Set($CommentAddress, 'rt-comment@rt-displayr.test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{base_dir / "rt.sqlite"}');
# no MTA: outgoing mail is appended to an mbox under $RT::VarPath (set below)
Set($MailCommand, 'mbox');
Set($RecordOutgoingEmail, 1);
# not UTC, so that the pipeline's UTC handling is really exercised
Set($Timezone, '{RT_TIMEZONE}');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($LogToSTDERR, 'warning');
$RT::VarPath = '{base_dir / "var"}';
1;
"""


@dataclass
class RTServer:
    """A running RT: where to reach it, how to log in as root, and its process group."""

    base_dir: Path
    port: int
    password: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "rt-server.log"

    @property
    def mbox_paths(self) -> list[Path]:
        return sorted((self.base_dir / "var").glob("*.mbox"))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RT_SITE_CONFIG": str(self.base_dir / "RT_SiteConfig.pm"),
            "RT_SITE_CONFIG_DIR": str(self.base_dir / "RT_SiteConfig.d"),
            "RT_DISPLAYR_TEST_PASSWORD": self.password,
        }

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def configure(server: RTServer) -> None:
    """Write the site config and build a fresh database with the test users, queues and rights."""
    base = server.base_dir
    (base / "RT_SiteConfig.d").mkdir(parents=True, exist_ok=True)
    (base / "var").mkdir(exist_ok=True)
    config = base / "RT_SiteConfig.pm"
    config.write_text(site_config(base, server.port))
    config.chmod(0o600)
    (base / "rt.sqlite").unlink(missing_ok=True)
    for action in (
        ["--action", "init", "--skip-create"],
        ["--action", "insert", "--datafile", str(DATAFILE)],
    ):
        result = subprocess.run(
            [str(RT_SETUP_DATABASE), *action],
            env=server.env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=300,
        )
        # rt-setup-database exits 0 on some failures; its output then says so
        if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
            raise RTStartError(
                f"rt-setup-database {' '.join(action)} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )


def start(server: RTServer) -> None:
    """Start rt-server in a new process group (so stop() can signal it and all its workers)."""
    log = server.log_path.open("ab")
    try:
        server.process = subprocess.Popen(
            [
                str(RT_SERVER),
                "--host",
                "127.0.0.1",
                "--port",
                str(server.port),
                "--max-workers",
                str(MAX_WORKERS),
            ],
            env=server.env(),
            cwd=server.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def wait_until_ready(server: RTServer, timeout: float = READY_TIMEOUT) -> None:
    """Poll REST 1.0 until it answers `RT/5...`; REST answers HTTP 200 even for errors."""
    import requests  # not at module level: `install` must run on a bare system python

    deadline = time.monotonic() + timeout
    while True:
        if server.process is not None and server.process.poll() is not None:
            raise RTStartError(
                f"rt-server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            body = requests.get(f"{server.url}/REST/1.0/", timeout=5).text
            if body.startswith("RT/"):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RTStartError(f"RT did not answer within {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.3)


def stop(server: RTServer) -> None:
    """SIGTERM the server's process group, SIGKILL it after a grace period, and reap the leader."""
    process = server.process
    if process is None:
        return
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    # workers may outlive the leader for a moment; never leave one behind
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    deadline = time.monotonic() + STOP_GRACE
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    server.process = None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def running_rt(
    base_dir: Path | None = None, port: int | None = None, password: str | None = None
) -> Iterator[RTServer]:
    """A fresh, seeded-with-rights RT for the duration of the block; stopped even on failure."""
    owned_dir = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="rt5-")) if base_dir is None else base_dir
    base.mkdir(parents=True, exist_ok=True)
    server = RTServer(
        base_dir=base,
        port=port or free_port(),
        password=password or secrets.token_urlsafe(12),
    )
    try:
        configure(server)
        start(server)
        wait_until_ready(server)
        yield server
    finally:
        stop(server)
        if owned_dir:
            shutil.rmtree(base, ignore_errors=True)


class RTRestError(RuntimeError):
    """RT answered a seeding request with something other than the expected `# ...` line."""


def form(fields: dict[str, str]) -> str:
    """REST 1.0's `content=` form: `Key: value` lines, a multi-line value continued indented."""
    lines = []
    for key, value in fields.items():
        first, *rest = value.split("\n")
        lines.append(f"{key}: {first}")
        lines.extend(f" {line}" for line in rest)
    return "\n".join(lines) + "\n"


class RTRest:
    """Just enough of RT's REST 1.0 (writes) and REST 2 (independent reads) to seed and check.

    REST 1.0 answers HTTP 200 for everything; the real outcome is the first line
    (`RT/5.0.3 200 Ok`) plus a `# ...` line, so every write names the line it expects.
    """

    def __init__(self, url: str, user: str, password: str) -> None:
        import requests  # not at module level: `install` must run on a bare system python

        self.url = url
        self.user = user
        self._password = password
        self._session: requests.Session = requests.Session()
        self._session.auth = (user, password)  # used by REST 2 only

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RTRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rest1(self, path: str, data: dict[str, str] | None = None) -> str:
        payload = {"user": self.user, "pass": self._password, **(data or {})}
        response = self._session.post(f"{self.url}/REST/1.0/{path}", data=payload, timeout=60)
        response.raise_for_status()
        return response.text

    def write(self, path: str, fields: dict[str, str], expect: str) -> str:
        """POST a form; return the first regex group of `expect` found in RT's answer."""
        body = self.rest1(path, {"content": form(fields)})
        match = re.search(expect, body)
        if not body.startswith("RT/") or " 200 Ok" not in body.split("\n", 1)[0] or not match:
            raise RTRestError(f"{self.user} POST {path}: expected {expect!r}, got {body[:500]!r}")
        return match.group(1) if match.groups() else match.group(0)

    def mail_gateway(self, queue: str, message: bytes, action: str = "correspond") -> None:
        """What rt-mailgate does: the raw mail as a multipart field; RT answers `ok`."""
        response = self._session.post(
            f"{self.url}/REST/1.0/NoAuth/mail-gateway",
            data={"queue": queue, "action": action},
            files={"message": (None, message)},
            auth=None,
            timeout=60,
        )
        response.raise_for_status()
        if not response.text.startswith("ok"):
            raise RTRestError(f"mail-gateway ({queue}, {action}): {response.text[:300]!r}")

    def newest_ticket_id(self) -> int:
        body = self.rest1("search/ticket", {"query": "id > 0", "orderby": "-id", "format": "i"})
        match = re.search(r"^ticket/(\d+)$", body, re.MULTILINE)
        if match is None:
            raise RTRestError(f"no ticket found: {body[:300]!r}")
        return int(match.group(1))

    def rest2(self, path: str, **params: str) -> Any:
        response = self._session.get(f"{self.url}/REST/2.0/{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def rest2_all(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every item of a paged REST 2 collection."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.rest2(path, page=str(page), per_page="100", **params)
            items.extend(data["items"])
            if page >= int(data.get("pages") or 1):
                return items
            page += 1


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Python's default SIGTERM ends the process without running `finally`, which would leave
    # the server's process group (a separate session) running: turn it into a clean exit
    raise SystemExit(128 + signum)


def _serve(port: int, base_dir: Path | None, password: str | None) -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGHUP, _stop_on_sigterm)
    started = time.monotonic()
    with running_rt(base_dir, port, password) as server:
        print(f"RT {server.url}  user root  password {server.password}", flush=True)
        print(f"ready in {time.monotonic() - started:.1f} s; data in {server.base_dir}", flush=True)
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="apt-get install RT 5 (root; no-op when installed)")
    serve = commands.add_parser("serve", help="run a fresh RT on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--dir", type=Path, help="keep config and database here (default: temp)")
    serve.add_argument("--password", help="root's password (default: random, printed)")
    args = parser.parse_args(argv)
    if args.command == "install":
        install()
        return
    problem = missing_prerequisite()
    if problem:
        raise SystemExit(f"rt5 serve: {problem}")
    _serve(args.port or free_port(), args.dir, args.password)


if __name__ == "__main__":
    main()
