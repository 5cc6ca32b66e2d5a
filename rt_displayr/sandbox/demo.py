"""`rt-displayr demo`: the whole flow against the sandbox, twice, with nothing configured.

The first run is cold (every history fetched); then a few tickets get a new reply and a few new
tickets arrive, and the second run fetches only those: the demo shows both what the tool
publishes and why a weekly rerun takes seconds.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from rt_displayr.process_env import exported_environment
from rt_displayr.sandbox.displayr_server import DisplayrSimulator
from rt_displayr.sandbox.rt_server import RTSimulator

DEMO_DATA_NAME = "rt-ticket-history.csv"
DEMO_USER = "root"
DEMO_PASSWORD = "password"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _describe(label: str, summary: dict[str, Any]) -> None:
    _say(
        f"{label}: {summary['rows']} tickets published "
        f"({summary['new']} new, {summary['changed']} changed, {summary['unchanged']} unchanged) "
        f"with {summary['rt_requests']} RT requests in {summary['duration_seconds']:.1f} s"
    )


def run_demo(*, tickets: int, output: Path) -> dict[str, Any]:
    from rt_displayr.cli import run_flow

    secret = str(uuid.uuid4())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with (
        RTSimulator(tickets=tickets, seed=7, user=DEMO_USER, password=DEMO_PASSWORD) as rt,
        DisplayrSimulator([secret]) as displayr,
        tempfile.TemporaryDirectory(prefix="rt-displayr-demo-state-") as state_dir,
    ):
        # In Displayr the data set is created once by hand; the API only ever updates it.
        displayr.create_data_set(secret, DEMO_DATA_NAME)
        _say(f"sandbox RT ({tickets} generated tickets): {rt.url}")
        _say(f"sandbox Displayr: {displayr.url}")
        settings = {
            "RT_URL": rt.url,
            "RT_USER": DEMO_USER,
            "RT_PASSWORD": DEMO_PASSWORD,
            "DISPLAYR_URL": displayr.url,
            "DISPLAYR_PROJECT_SECRET": secret,
            "DISPLAYR_DATA_NAME": DEMO_DATA_NAME,
        }
        parameters = {"output": str(output), "state_dir": state_dir}
        progress = sys.stderr.isatty()
        with exported_environment(settings):
            first = run_flow(parameters, progress=progress)
            _describe("cold run", first)
            resolved = [t.id for t in rt.sim.tickets.values() if t.status == "resolved"]
            changed = resolved[:: max(1, len(resolved) // 3)][:3]
            for ticket_id in changed:
                rt.add_correspondence(ticket_id, "alice.customer@example.com")
                rt.set_status(ticket_id, "resolved")
            for number in range(2):
                new_id = rt.add_ticket(f"Demo ticket {number + 1}", ["new.client@example.com"])
                rt.set_status(new_id, "resolved")
            second = run_flow(parameters, progress=progress)
            _describe("rerun after 3 replies and 2 new tickets", second)
        published = displayr.data_set(secret, DEMO_DATA_NAME)
        imports = len([entry for entry in displayr.imports if entry.get("accepted")])
    _say()
    rows = len(list(csv.reader(io.StringIO(published.decode("utf-8"))))) - 1
    _say(f"Displayr data set '{DEMO_DATA_NAME}' now holds {rows} rows ({imports} imports accepted)")
    _say(f"CSV: {Path(second['csv']).resolve()}")
    head = Path(second["csv"]).read_text(encoding="utf-8").splitlines()[:3]
    for line in head:
        _say(f"  {line[:160]}")
    return second
