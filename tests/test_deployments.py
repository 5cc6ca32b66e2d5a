"""deployments/prefect.yaml, `rt-displayr serve` and every command of docs/operations.md.

The offline half reads the deployment definitions the way Prefect would and checks what
Prefect itself lets through: parameter names the flow does not have (silently ignored by a
deployment), a schedule that is not the weekly Thursday 11:00, anything that looks like a
secret. The other half runs docs/operations.md, command by command, against a throw-away
Prefect server, the RT simulator and the Displayr simulator: deploy, a process worker, runs
started from the command line, `serve`. Every process it starts is stopped, and checked gone.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
import yaml
from cronsim import CronSim

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
BIN = Path(sys.executable).parent
WEEKLY_CRON = "0 11 * * 4"
DEFAULT_TIMEZONE = "America/New_York"
SECRET_NAME = re.compile(r"password|passwd|secret|token|cookie|api[_-]?key", re.IGNORECASE)
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

# Every command of docs/operations.md, each run by a test below (the last offline test fails
# when the page and this list differ, so a new command in the docs needs a test here).
SERVER_START = "uv run prefect server start --host 127.0.0.1 --port 4200"
CONFIG_SET = "uv run prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api"
VARIABLES = (
    "uv run prefect variable set rt_url https://rt.example.com/rt",
    "uv run prefect variable set rt_user rt-reporting",
    "uv run prefect variable set displayr_url https://app.displayr.com",
    "uv run prefect variable set displayr_data_name rt-ticket-history.csv",
)
SECRET_RT = (
    "uv run python -c 'import getpass; from prefect.blocks.system import Secret; "
    'Secret(value=getpass.getpass("RT password: ")).save("rt-password", overwrite=True)\''
)
SECRET_DISPLAYR = (
    "uv run python -c 'import getpass; from prefect.blocks.system import Secret; "
    'Secret(value=getpass.getpass("Displayr project secret: "))'
    '.save("displayr-project-secret", overwrite=True)\''
)
POOL_CREATE = "uv run prefect work-pool create rt-displayr --type process"
DEPLOY = "uv run prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml"
DEPLOY_TZ = (
    "uv run prefect --no-prompt deploy --prefect-file deployments/prefect.yaml "
    "--name rt-to-displayr/weekly --timezone Europe/London"
)
DEPLOYMENT_LS = "uv run prefect deployment ls"
WORKER = "uv run prefect worker start --pool rt-displayr"
RUN_ADHOC = (
    "uv run prefect deployment run rt-to-displayr/adhoc "
    "--param \"query=Queue='General' AND Status='resolved'\""
)
RUN_ADHOC_PUBLISH = RUN_ADHOC + " --param dry_run=false --param data_name=rt-test-general.csv"
RUN_WEEKLY = "uv run prefect deployment run rt-to-displayr/weekly"
FLOW_RUN_LS = (
    "uv run prefect flow-run ls --flow-name rt-to-displayr "
    "--state-type COMPLETED --state-type FAILED --state-type CRASHED --limit 5"
)
ARTIFACT = "uv run prefect artifact inspect rt-displayr-summary --limit 1"
SERVE = "uv run rt-displayr serve"
SERVE_TZ = "uv run rt-displayr serve --timezone Europe/London"
RUN_SERVED = "uv run prefect deployment run rt-to-displayr/served --param dry_run=true"
DOC_COMMANDS = (
    SERVER_START,
    CONFIG_SET,
    *VARIABLES,
    SECRET_RT,
    SECRET_DISPLAYR,
    POOL_CREATE,
    DEPLOY,
    DEPLOYMENT_LS,
    DEPLOY_TZ,
    WORKER,
    RUN_ADHOC,
    RUN_ADHOC_PUBLISH,
    RUN_WEEKLY,
    FLOW_RUN_LS,
    ARTIFACT,
    SERVE,
    SERVE_TZ,
    RUN_SERVED,
)


def load_definitions() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))


def deployments() -> list[dict[str, Any]]:
    return load_definitions()["deployments"]


def by_name(name: str) -> dict[str, Any]:
    return next(d for d in deployments() if d["name"] == name)


def doc_commands() -> list[str]:
    """The command lines of the page's bash blocks (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    lines = (line.strip() for block in blocks for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, text) leaf of a YAML document; keys count, so `password: x` is seen."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif value is not None:
        yield path, str(value)


# --- offline: the definitions themselves ----------------------------------------------------


def test_every_entrypoint_loads_the_flow_from_the_repository_root() -> None:
    from prefect.flows import load_flow_from_entrypoint

    from flows.rt_to_displayr import rt_to_displayr

    names = [d["name"] for d in deployments()]
    assert names == ["weekly", "adhoc"]
    for deployment in deployments():
        path, _, function = deployment["entrypoint"].partition(":")
        assert (REPO / path).is_file(), deployment["entrypoint"]
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + function)
        assert flow.name == rt_to_displayr.name == "rt-to-displayr"


def test_every_parameter_is_one_the_flow_takes_with_a_value_of_its_type() -> None:
    from flows.rt_to_displayr import rt_to_displayr

    signature = inspect.signature(rt_to_displayr.fn)
    for deployment in deployments():
        parameters = deployment["parameters"]
        unknown = set(parameters) - set(signature.parameters)
        assert not unknown, f"{deployment['name']}: the flow has no parameter {unknown}"
        # The flow's own validation (pydantic, from the signature) accepts the values.
        rt_to_displayr.validate_parameters(parameters)


def test_weekly_runs_thursdays_at_eleven_local_time_and_one_at_a_time() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    weekly = by_name("weekly")
    [schedule] = weekly["schedules"]
    assert schedule["cron"] == WEEKLY_CRON
    assert schedule["timezone"] == DEFAULT_TIMEZONE
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # Prefect's validation
    zone = ZoneInfo(schedule["timezone"])
    # Across a DST change (2026-03-08 in New York) the wall clock stays at 11:00.
    runs = CronSim(schedule["cron"], datetime(2026, 2, 20, tzinfo=zone))
    upcoming = [next(runs) for _ in range(6)]
    assert {(run.strftime("%A"), run.hour, run.minute) for run in upcoming} == {("Thursday", 11, 0)}
    assert len({run.utcoffset() for run in upcoming}) == 2
    assert weekly["concurrency_limit"] == 1
    assert weekly["parameters"]["dry_run"] is False


def test_adhoc_is_an_unscheduled_dry_run_that_keeps_its_csv_apart() -> None:
    adhoc, weekly = by_name("adhoc"), by_name("weekly")
    assert adhoc["schedules"] == []
    assert adhoc["parameters"]["dry_run"] is True
    assert adhoc["parameters"]["output"] != weekly["parameters"]["output"]
    assert "data_name" not in adhoc["parameters"]


def test_both_deploy_to_the_process_pool_and_run_in_the_deployed_checkout() -> None:
    definitions = load_definitions()
    for deployment in definitions["deployments"]:
        assert deployment["work_pool"]["name"] == "rt-displayr"
    [build] = definitions["build"]
    step = build["prefect.deployments.steps.run_shell_script"]
    [pull] = definitions["pull"]
    directory = pull["prefect.deployments.steps.set_working_directory"]["directory"]
    assert (step["id"], step["script"]) == ("repo-root", "pwd")
    assert directory == "{{ repo-root.stdout }}"


def test_no_value_is_a_secret_or_a_secret_placeholder() -> None:
    """`prefect deploy` resolves `{{ prefect.blocks.* }}` at deploy time and stores the
    plain value in the deployment: the flow reads Secret blocks itself instead."""
    for path, text in strings(load_definitions()):
        assert "prefect.blocks" not in text, path
        assert not GUID.search(text), path
        if SECRET_NAME.search(path.rsplit(".", 1)[-1]):
            pytest.fail(f"{path} looks like a secret setting: keep it in a Secret block")
        assert not re.search(r"://[^/\s]*:[^/\s]*@", text), f"{path} has credentials in a URL"


def test_serve_defaults_are_the_weekly_deployment() -> None:
    from rt_displayr import cli

    defaults = {
        name: parameter.default.default
        for name, parameter in inspect.signature(cli.serve).parameters.items()
    }
    [schedule] = by_name("weekly")["schedules"]
    assert (defaults["cron"], defaults["timezone"]) == (schedule["cron"], schedule["timezone"])
    for name, value in by_name("weekly")["parameters"].items():
        assert str(defaults[name]) == str(value), name


@pytest.mark.parametrize(
    ("option", "value"), [("--timezone", "Mars/Olympus"), ("--cron", "0 11 * * 8")]
)
def test_serve_rejects_a_bad_schedule_in_one_line(option: str, value: str) -> None:
    from typer.testing import CliRunner

    from rt_displayr.cli import app

    result = CliRunner().invoke(app, ["serve", option, value])
    assert result.exit_code == 2
    assert "error: invalid schedule" in result.output
    assert value in result.output
    assert "Traceback" not in result.output


def test_serve_without_a_prefect_server_says_how_to_set_one(tmp_path: Path) -> None:
    env = _base_env(tmp_path / "home", tmp_path / "state")
    result = subprocess.run(
        [str(BIN / "rt-displayr"), "serve"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "PREFECT_API_URL is not set" in result.stderr
    assert "docs/operations.md" in result.stderr


def test_operations_doc_commands_are_all_run_here() -> None:
    assert doc_commands() == list(dict.fromkeys(doc_commands())), "a command appears twice"
    assert sorted(doc_commands()) == sorted(DOC_COMMANDS)


# --- with a Prefect server: the operations guide, command by command ------------------------


def _base_env(prefect_home: Path, state_dir: Path) -> dict[str, str]:
    """This environment minus every setting the flow could read, Prefect in its own home."""
    drop = ("PREFECT_API_URL", "RT_DISPLAYR_NO_PREFECT_CONFIG", "PREFECT_PROFILE")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith(("RT_", "DISPLAYR_"))
    }
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        RT_DISPLAYR_STATE_DIR=str(state_dir),
        COLUMNS="200",  # rich tables of the CLI: whole cells, not "COMPL…"
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Stop a process started in its own session, with all its descendants; return survivors."""
    try:
        family = [psutil.Process(process.pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    # One SIGTERM per process group: a second one makes Prefect's runner exit at once, without
    # the graceful shutdown (pausing the schedule) that the first one started.
    groups = {process.pid}
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            groups.add(os.getpgid(member.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=20)
    for member in alive:
        member.kill()
    psutil.wait_procs(alive, timeout=10)
    process.wait(timeout=10)
    survivors = []
    for member in family:
        try:
            if member.is_running() and member.status() != psutil.STATUS_ZOMBIE:
                survivors.append(member)
        except psutil.NoSuchProcess:
            pass
    return survivors


@dataclass
class Stack:
    """A Prefect server, the simulators and how to run the guide's commands against them."""

    tmp: Path
    env: dict[str, str]
    api_url: str
    rt: Any
    displayr: Any
    displayr_secret: str
    replacements: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def argv(self, command: str) -> list[str]:
        """The documented command as run here: venv executables for `uv run`, local URLs."""
        assert command in doc_commands(), f"not in docs/operations.md: {command}"
        for documented, local in self.replacements.items():
            command = command.replace(documented, local)
        argv = shlex.split(command)
        assert argv[:2] == ["uv", "run"]
        program = sys.executable if argv[2] == "python" else str(BIN / argv[2])
        return [program, *argv[3:]]

    def run(
        self, command: str, *extra: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.argv(command), *extra],
            env=self.env,
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # no terminal: getpass reads stdin, as from a pipe
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, command: str, *extra: str, log: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "wb") as sink:
            process = subprocess.Popen(
                [*self.argv(command), *extra],
                env=self.env,
                cwd=REPO,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        survivors = _stop(process)
        assert not survivors, f"still running after stop: {survivors}"

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")

    def api(self, call: Callable[[Any], Any]) -> Any:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: self.api_url}),
            get_client(sync_client=True) as client,
        ):
            return call(client)

    def flow_run_id(self, output: str) -> uuid.UUID:
        match = re.search(r"UUID: ([0-9a-f-]{36})", output)
        assert match, output
        return uuid.UUID(match.group(1))

    def wait_for_run(self, run_id: uuid.UUID, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flow_run = self.api(lambda client: client.read_flow_run(run_id))
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            time.sleep(1)
        pytest.fail(f"flow run {run_id} did not finish in {timeout} s")


def _wait_healthy(api_url: str, server: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "prefect server start exited"
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no Prefect server at {api_url} after {timeout} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sections 1 and 2 of the guide: a server on a free port, its profile, settings, secrets."""
    from rt_displayr.sandbox.displayr_server import DisplayrSimulator
    from rt_displayr.sandbox.rt_server import RTSimulator

    tmp = tmp_path_factory.mktemp("operations")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    displayr_secret = str(uuid.uuid4())
    with (
        RTSimulator(tickets=40, seed=7, user="rt-bot", password="sim-password") as rt,
        DisplayrSimulator([displayr_secret]) as displayr,
    ):
        for data_set in ("rt-ticket-history.csv", "rt-test-general.csv"):
            displayr.create_data_set(displayr_secret, data_set)
        stack = Stack(
            tmp=tmp,
            env=_base_env(tmp / "prefect-home", tmp / "state"),
            api_url=api_url,
            rt=rt,
            displayr=displayr,
            displayr_secret=displayr_secret,
            replacements={
                "http://127.0.0.1:4200/api": api_url,
                "--port 4200": f"--port {port}",
                "https://rt.example.com/rt": rt.url,
                "rt_user rt-reporting": "rt_user rt-bot",
                "https://app.displayr.com": displayr.url,
            },
        )
        try:
            server = stack.start(SERVER_START, log="server.log")
            _wait_healthy(api_url, server)
            # Later commands find the server through the profile only, as the guide says.
            stack.run(CONFIG_SET)
            for command in VARIABLES:
                stack.run(command)
            stack.run(SECRET_RT, stdin="sim-password\n")
            stack.run(SECRET_DISPLAYR, stdin=displayr_secret + "\n")
            stack.run(POOL_CREATE)
            yield stack
        finally:
            survivors = [survivor for process in stack.processes for survivor in _stop(process)]
            assert not survivors, f"processes survived the teardown: {survivors}"


def test_settings_and_secrets_are_in_prefect_and_the_profile(stack: Stack) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    profiles = (Path(stack.env["PREFECT_HOME"]) / "profiles.toml").read_text()
    assert f'PREFECT_API_URL = "{stack.api_url}"' in profiles
    values = {
        name: stack.api(lambda client, name=name: client.read_variable_by_name(name).value)
        for name in ("rt_url", "rt_user", "displayr_url", "displayr_data_name")
    }
    assert values == {
        "rt_url": stack.rt.url,
        "rt_user": "rt-bot",
        "displayr_url": stack.displayr.url,
        "displayr_data_name": "rt-ticket-history.csv",
    }
    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        assert Secret.load("rt-password").get() == "sim-password"
        assert Secret.load("displayr-project-secret").get() == stack.displayr_secret


def _deployment(stack: Stack, name: str) -> Any:
    return stack.api(lambda client: client.read_deployment_by_name(f"rt-to-displayr/{name}"))


def test_deploy_all_creates_both_deployments_and_redeploying_replaces_the_schedule(
    stack: Stack,
) -> None:
    output = stack.run(DEPLOY).stdout
    assert "Deployment 'rt-to-displayr/adhoc' successfully created" in output
    stack.run(DEPLOY_TZ)
    [schedule] = _deployment(stack, "weekly").schedules
    assert schedule.schedule.timezone == "Europe/London"
    # Deploying everything again puts the yaml's zone back, still a single schedule.
    stack.run(DEPLOY)
    weekly, adhoc = _deployment(stack, "weekly"), _deployment(stack, "adhoc")
    [schedule] = weekly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (WEEKLY_CRON, DEFAULT_TIMEZONE)
    assert schedule.active and not weekly.paused
    assert adhoc.schedules == []
    assert weekly.global_concurrency_limit.limit == 1
    for deployment in (weekly, adhoc):
        assert deployment.work_pool_name == "rt-displayr"
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        stored = json.dumps(deployment.model_dump(mode="json"))
        for secret in ("sim-password", stack.displayr_secret):
            assert secret not in stored
    assert adhoc.parameters["dry_run"] is True
    listing = stack.run(DEPLOYMENT_LS).stdout
    assert "rt-to-displayr/weekly" in listing and "rt-to-displayr/adhoc" in listing


def _csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _resolved(stack: Stack, queue: str | None = None) -> int:
    tickets = stack.rt.sim.tickets.values()
    return sum(1 for t in tickets if t.status == "resolved" and (queue is None or t.queue == queue))


def test_runs_from_the_command_line_complete_on_a_process_worker(stack: Stack) -> None:
    if not _deployment_exists(stack, "adhoc"):
        stack.run(DEPLOY)
    general, everything = _resolved(stack, "General"), _resolved(stack)
    assert 0 < general < everything
    outputs = {name: stack.tmp / f"{name}.csv" for name in ("dry", "published", "weekly")}
    runs = {
        "dry": stack.run(RUN_ADHOC, "--param", f"output={outputs['dry']}"),
        "published": stack.run(RUN_ADHOC_PUBLISH, "--param", f"output={outputs['published']}"),
        "weekly": stack.run(RUN_WEEKLY, "--param", f"output={outputs['weekly']}"),
    }
    run_ids = {name: stack.flow_run_id(result.stdout) for name, result in runs.items()}

    # `--run-once` alone may return before its runs end; with `--limit` it waits for them.
    worker = stack.start(WORKER, "--run-once", "--limit", "3", log="worker.log")
    try:
        worker.wait(timeout=600)
    finally:
        stack.stop(worker)
    assert worker.returncode == 0, stack.log("worker.log")
    for name, run_id in run_ids.items():
        flow_run = stack.wait_for_run(run_id, timeout=60)
        assert flow_run.state.is_completed(), f"{name}: {flow_run.state}\n{stack.log('worker.log')}"

    assert _csv_rows(outputs["dry"]) == general
    assert _csv_rows(outputs["published"]) == general
    assert _csv_rows(outputs["weekly"]) == everything
    published = stack.displayr.data_set(stack.displayr_secret, "rt-test-general.csv")
    dashboard = stack.displayr.data_set(stack.displayr_secret, "rt-ticket-history.csv")
    assert published == outputs["published"].read_bytes()
    assert dashboard == outputs["weekly"].read_bytes()
    assert len(stack.displayr.imports) == 2, "the dry run must not publish"

    listing = stack.run(FLOW_RUN_LS).stdout
    assert all(str(run_id) in listing for run_id in run_ids.values()), listing
    assert listing.count("COMPLETED") == 3, listing
    assert "SCHEDULED" not in listing
    summary = stack.run(ARTIFACT).stdout
    assert "rt-displayr-summary" in summary


def _deployment_exists(stack: Stack, name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        _deployment(stack, name)
    except ObjectNotFound:
        return False
    return True


def _wait_for_served(stack: Stack, serve: subprocess.Popen[bytes], timezone: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert serve.poll() is None, stack.log("serve.log")
        if _deployment_exists(stack, "served"):
            served = _deployment(stack, "served")
            zones = [schedule.schedule.timezone for schedule in served.schedules]
            if zones == [timezone] and not served.paused:
                return served
        time.sleep(1)
    pytest.fail("rt-displayr serve registered no deployment\n" + stack.log("serve.log"))


def test_serve_registers_the_schedule_runs_ui_triggered_runs_and_pauses_on_stop(
    stack: Stack,
) -> None:
    output = stack.tmp / "served.csv"
    serve = stack.start(SERVE_TZ, log="serve.log")
    try:
        served = _wait_for_served(stack, serve, "Europe/London")
        [schedule] = served.schedules
        assert schedule.schedule.cron == WEEKLY_CRON
        assert served.work_pool_name is None
        assert served.global_concurrency_limit.limit == 1
        run = stack.run(RUN_SERVED, "--param", f"output={output}")
        flow_run = stack.wait_for_run(stack.flow_run_id(run.stdout))
        assert flow_run.state.is_completed(), f"{flow_run.state}\n{stack.log('serve.log')}"
        assert flow_run.parameters["dry_run"] is True
        assert _csv_rows(output) == _resolved(stack)
    finally:
        stack.stop(serve)
    assert _deployment(stack, "served").paused

    serve = stack.start(SERVE, log="serve.log")
    try:
        served = _wait_for_served(stack, serve, DEFAULT_TIMEZONE)
        assert len(served.schedules) == 1
    finally:
        stack.stop(serve)


def test_runs_left_no_time_zone_confusion_in_the_schedule(stack: Stack) -> None:
    """The next scheduled weekly run, as the server computed it, is a Thursday 11:00 local."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    if not _deployment_exists(stack, "weekly"):
        stack.run(DEPLOY)
    weekly = _deployment(stack, "weekly")
    deadline = time.monotonic() + 120
    scheduled: list[Any] = []
    while not scheduled and time.monotonic() < deadline:
        scheduled = stack.api(
            lambda client: client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[weekly.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))
                ),
            )
        )
        time.sleep(1)
    assert scheduled, "the server scheduled no weekly run"
    local = [run.expected_start_time.astimezone(ZoneInfo(DEFAULT_TIMEZONE)) for run in scheduled]
    assert all(moment > datetime.now(UTC) for moment in local)
    assert {(m.strftime("%A"), m.hour, m.minute) for m in local} == {("Thursday", 11, 0)}
