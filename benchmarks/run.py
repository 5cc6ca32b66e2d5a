"""Benchmark: the legacy algorithm against the pipeline, cold, unchanged and 1 % changed.

    uv run python -m benchmarks.run --quick     # ~2.5 minutes: simulator, 200 tickets, 50 ms
    uv run python -m benchmarks.run --full      # ~30 minutes: real RT, 1,000/10,000/100,000

Every run is a whole process (interpreter and Prefect start-up included) with a fresh
PREFECT_HOME; the RT simulator runs as another process so that client and server do not share a
GIL. Results go to benchmarks/results/<mode>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import procs
from rt_displayr.sandbox.rt_server import DEFAULT_SERVICE_TIMES

QUERY = "Status='resolved'"
USER, PASSWORD = "root", "password"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One measured process: what ran, against what, and what it cost."""

    target: str
    tickets: int
    latency_ms: float
    run: str  # a legacy | b cold | c unchanged | d 1 % changed
    wall_s: float
    flow_s: float | None = None
    rows: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    per_ticket: float | None = None
    client_rss_mb: float = 0.0
    client_cpu_s: float = 0.0
    note: str = ""


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _env(url: str, prefect_home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RT_", "DISPLAYR_"))
    }
    env.update(
        RT_URL=url,
        RT_USER=USER,
        RT_PASSWORD=PASSWORD,
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        RT_DISPLAYR_NO_PREFECT_CONFIG="1",
        DISPLAYR_DATA_NAME="benchmark.csv",
    )
    return env


def run_pipeline(
    url: str,
    work: Path,
    label: str,
    *,
    password: str = PASSWORD,
    concurrency: int = 8,
    home: Path | None = None,
) -> tuple[procs.ChildResult, list[dict[str, str]]]:
    """One `rt-displayr run --dry-run` equivalent, by default with a fresh PREFECT_HOME; the
    incremental state (state_dir) persists across the runs of one scenario."""
    home = home or Path(tempfile.mkdtemp(prefix="prefect-home-", dir=work))
    output = work / f"{label}.csv"
    parameters = {
        "query": QUERY,
        "dry_run": True,
        "output": str(output),
        "state_dir": str(work / "state"),
        "concurrency": concurrency,
        "max_drop": 1.0,
    }
    env = _env(url, home)
    env["RT_PASSWORD"] = password
    result = procs.run_child(
        [sys.executable, "-m", "benchmarks.pipeline_child", json.dumps(parameters)],
        env,
        work / f"{label}.log",
    )
    with output.open(newline="", encoding="utf-8") as handle:
        rows = [{k: v for k, v in row.items() if k} for row in csv.DictReader(handle)]
    return result, rows


def run_legacy(
    url: str,
    work: Path,
    query: str,
    *,
    password: str = PASSWORD,
    timezone: str = "America/New_York",
) -> tuple[procs.ChildResult, list[dict[str, str]]]:
    env = _env(url, work)
    env["RT_PASSWORD"] = password
    rows_path = work / "legacy-rows.json"
    args = [sys.executable, "-m", "benchmarks.legacy", url, query, "--timezone", timezone]
    result = procs.run_child([*args, "--rows", str(rows_path)], env, work / "legacy.log")
    return result, json.loads(rows_path.read_text())


def _http(counts: dict[str, int]) -> dict[str, int]:
    """Simulator counters without the benchmark's own control calls; `other` is the login POST."""
    return {k: v for k, v in counts.items() if k not in ("control", "total") and v}


def _row(
    target: str,
    tickets: int,
    latency: float,
    run: str,
    child: procs.ChildResult,
    counts: dict[str, int],
    listed: int,
    note: str = "",
) -> Row:
    result = child.result
    requests = _http(counts)
    total = sum(requests.values())
    return Row(
        target=target,
        tickets=tickets,
        latency_ms=latency,
        run=run,
        wall_s=round(child.wall_seconds, 2),
        flow_s=round(float(result["flow_seconds"]), 2) if "flow_seconds" in result else None,
        rows=int(result["rows"]),
        requests=requests,
        per_ticket=round(total / listed, 3) if listed else None,
        client_rss_mb=round(int(result["maxrss_kb"]) / 1024, 1),
        client_cpu_s=round(float(result["cpu_seconds"]), 1),
        note=note,
    )


def _compare(legacy: list[dict[str, str]], pipeline: list[dict[str, str]]) -> str:
    """Which legacy rows differ from the pipeline's, and in which columns."""
    if not legacy:
        return "legacy listed no tickets"
    by_id = {row["TicketID"]: row for row in pipeline}
    columns: dict[str, int] = {}
    example = ""
    for row in legacy:
        other = by_id.get(row["TicketID"], {})
        diff = {k: (v, other.get(k)) for k, v in row.items() if other.get(k) != v}
        for column in diff:
            columns[column] = columns.get(column, 0) + 1
        if diff and not example:
            example = f"e.g. ticket {row['TicketID']} (legacy, pipeline): {diff}"
    if not columns:
        return f"legacy rows == pipeline rows ({len(legacy)} tickets)"
    return (
        f"legacy rows differ from the pipeline's in columns {columns} of {len(legacy)}; {example}"
    )


def sim_scenario(
    work_root: Path,
    tickets: int,
    latency: float,
    service_times: dict[str, float],
    *,
    legacy: bool,
    incremental: bool = True,
    concurrency: int = 8,
    workers: int = 4,
    label: str = "",
    warm: bool = False,
) -> tuple[list[Row], list[str]]:
    target = f"sim{label}"
    work = Path(tempfile.mkdtemp(prefix=f"sim-{tickets}-{int(latency)}-", dir=work_root))
    rows: list[Row] = []
    notes: list[str] = []
    _log(
        f"simulator {tickets} tickets, {latency:g} ms, workers {workers}, concurrency {concurrency}"
    )
    with procs.simulator(tickets, latency, service_times, workers) as sim:
        legacy_rows: list[dict[str, str]] = []
        if legacy:
            sim.control("reset_counts")
            child, legacy_rows = run_legacy(sim.url, work, QUERY)
            counts = sim.control("counts")
            rows.append(_row(target, tickets, latency, "a legacy", child, counts, len(legacy_rows)))
            _log(f"  legacy {child.wall_seconds:.1f} s")
        sim.control("reset_counts")
        child, cold = run_pipeline(sim.url, work, "cold", concurrency=concurrency)
        rows.append(
            _row(
                target,
                tickets,
                latency,
                "b cold",
                child,
                sim.control("counts"),
                len(cold),
                f"concurrency {concurrency}",
            )
        )
        _log(f"  cold {child.wall_seconds:.1f} s")
        if legacy:
            notes.append(f"{target} {tickets}/{latency:g} ms: {_compare(legacy_rows, cold)}")
        if not incremental:
            return rows, notes
        sim.control("reset_counts")
        home = work / "prefect-home-kept"
        child, _ = run_pipeline(sim.url, work, "unchanged", concurrency=concurrency, home=home)
        rows.append(
            _row(target, tickets, latency, "c unchanged", child, sim.control("counts"), len(cold))
        )
        _log(f"  unchanged {child.wall_seconds:.1f} s")
        # The same again with the PREFECT_HOME of the previous run: Prefect's database exists.
        if warm:
            sim.control("reset_counts")
            child, _ = run_pipeline(
                sim.url, work, "unchanged-warm", concurrency=concurrency, home=home
            )
            rows.append(
                _row(
                    target,
                    tickets,
                    latency,
                    "c' unchanged",
                    child,
                    sim.control("counts"),
                    len(cold),
                    "PREFECT_HOME kept from (c)",
                )
            )
            _log(f"  unchanged, warm Prefect home {child.wall_seconds:.1f} s")
        step = max(1, len(cold) // max(1, len(cold) // 100))
        changed = [int(row["TicketID"]) for row in cold][::step][: max(1, len(cold) // 100)]
        for ticket_id in changed:
            sim.control(
                "add_correspondence", ticket_id=ticket_id, creator="jdoe", text="One more thing."
            )
        for index in range(len(changed)):
            new_id = sim.control(
                "add_ticket", subject=f"New {index}", requestors=[f"new{index}@client.example"]
            )
            sim.control("set_status", ticket_id=new_id, status="resolved", by="jdoe")
        sim.control("reset_counts")
        child, after = run_pipeline(sim.url, work, "changed", concurrency=concurrency)
        counts = sim.control("counts")
        rows.append(
            _row(
                target,
                tickets,
                latency,
                "d 1 % changed",
                child,
                counts,
                len(after),
                f"{len(changed)} changed + {len(changed)} new",
            )
        )
        _log(f"  changed {child.wall_seconds:.1f} s")
        fetched = counts.get("history_l", 0)
        notes.append(
            f"{target} {tickets}/{latency:g} ms: rerun after {len(changed)} changed + {len(changed)} new "
            f"fetched {fetched} histories (expected {2 * len(changed)}); rows {len(cold)} -> {len(after)}"
        )
    return rows, notes


def real_rt_scenario(work_root: Path, tickets: int) -> tuple[list[Row], dict[str, Any]]:
    from benchmarks import realrt
    from tests.integration.rt5 import RT_TIMEZONE, missing_prerequisite, running_rt

    problem = missing_prerequisite()
    if problem:
        _log(f"real RT skipped: {problem}")
        return [], {"skipped": problem}
    work = Path(tempfile.mkdtemp(prefix="realrt-", dir=work_root))
    info: dict[str, Any] = {}
    rows: list[Row] = []
    started = time.perf_counter()
    with running_rt(work / "rt") as server:
        assert server.process is not None
        pgid = server.process.pid
        info["start_seconds"] = round(time.perf_counter() - started, 1)
        _log(f"real RT up in {info['start_seconds']} s; seeding {tickets} tickets")
        ids, seconds = realrt.seed(server, tickets)
        info["seed"] = {
            "tickets": len(ids),
            "seconds": round(seconds, 1),
            "how": "REST 1.0 + mail gateway, 4 threads",
        }
        _log(f"  seeded in {seconds:.0f} s; timing endpoints")
        info["endpoints"] = realrt.endpoint_times(server, ids)
        _log(f"  {info['endpoints']['medians_ms']}")
        info["paths"] = realrt.compare_paths(server, ids)
        _log(f"  paths {info['paths']}")

        def measured(run: str, call: Any) -> tuple[procs.ChildResult, list[dict[str, str]]]:
            cpu_before = realrt.group_cpu_seconds(pgid)
            child, out = call()
            server_cpu = realrt.group_cpu_seconds(pgid) - cpu_before
            info.setdefault("cpu", {})[run] = {
                "wall_s": round(child.wall_seconds, 2),
                "rt_server_cpu_s": round(server_cpu, 1),
                "client_cpu_s": round(float(child.result["cpu_seconds"]), 1),
                "prefect_server_cpu_s": round(
                    float(child.result.get("children_cpu_seconds", 0)), 1
                ),
            }
            return child, out

        password = server.password
        child, legacy_rows = measured(
            "a legacy",
            lambda: run_legacy(server.url, work, QUERY, password=password, timezone=RT_TIMEZONE),
        )
        legacy_requests = int(child.result["requests"])
        rows.append(
            _row(
                "real RT 5",
                len(ids),
                0,
                "a legacy",
                child,
                {"all": legacy_requests},
                len(legacy_rows),
            )
        )
        _log(f"  legacy {child.wall_seconds:.1f} s")
        for run, label in (("b cold", "cold"), ("c unchanged", "unchanged")):
            child, out = measured(
                run, lambda label=label: run_pipeline(server.url, work, label, password=password)
            )
            rows.append(
                _row(
                    "real RT 5",
                    len(ids),
                    0,
                    run,
                    child,
                    {"all": int(child.result["rt_requests"])},
                    len(out),
                    "client's own count",
                )
            )
            _log(f"  {run} {child.wall_seconds:.1f} s")
            if run == "b cold":
                info["legacy_vs_pipeline"] = _compare(legacy_rows, out)
        _, count = realrt.change(server, ids, tickets)
        child, out = measured(
            "d 1 % changed", lambda: run_pipeline(server.url, work, "changed", password=password)
        )
        rows.append(
            _row(
                "real RT 5",
                len(ids),
                0,
                "d 1 % changed",
                child,
                {"all": int(child.result["rt_requests"])},
                len(out),
                f"{count} changed + {count} new; fetched {child.result['new']} new, {child.result['changed']} changed",
            )
        )
        _log(f"  changed {child.wall_seconds:.1f} s")
    return rows, info


def measured_service_times(info: dict[str, Any]) -> dict[str, float]:
    """The simulator's cost table from the real RT's medians (defaults where not measured)."""
    times = dict(DEFAULT_SERVICE_TIMES)
    medians = info.get("endpoints", {}).get("medians_ms", {})
    for kind in ("history_l", "history", "show", "history_item", "attachment", "show_list"):
        if kind in medians:
            times[kind] = medians[kind]
    if "attachment" in medians:
        times["attachments"] = medians["attachment"]
    return times


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    memory = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    return {
        "nproc": str(os.cpu_count()),
        "memory_gb": f"{int(memory) / 1024 / 1024:.1f}",
        "cpu": cpu,
        "python": platform.python_version(),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def ratios(rows: list[Row], legacy_scale: dict[tuple[str, float], tuple[float, int]]) -> list[str]:
    """(a)/(b), (b)/(c), (b)/(d) per target, tickets and latency; legacy scaled linearly."""
    out = []
    groups: dict[tuple[str, int, float], dict[str, Row]] = {}
    for row in rows:
        groups.setdefault((row.target, row.tickets, row.latency_ms), {})[row.run[0]] = row
    for (target, tickets, latency), runs in groups.items():
        b = runs.get("b")
        if b is None:
            continue
        parts = [f"{target} {tickets} tickets {latency:g} ms:"]
        a = runs.get("a")
        if a is not None:
            parts.append(f"(a)/(b) {a.wall_s / b.wall_s:.1f}")
        elif (target, latency) in legacy_scale:
            seconds, measured_n = legacy_scale[(target, latency)]
            scaled = seconds * b.rows / measured_n
            parts.append(
                f"(a)/(b) {scaled / b.wall_s:.1f} (legacy {seconds:.0f} s for {measured_n} "
                f"tickets scaled ×{b.rows / measured_n:.2f} = {scaled:.0f} s)"
            )
        for key, name in (("c", "(b)/(c)"), ("d", "(b)/(d)")):
            if key in runs:
                other = runs[key]
                flow = ""
                if b.flow_s and other.flow_s:
                    flow = f" [in-flow {b.flow_s / other.flow_s:.1f}]"
                parts.append(f"{name} {b.wall_s / other.wall_s:.1f}{flow}")
        out.append(" ".join(parts))
    return out


def table(rows: list[Row]) -> str:
    lines = [
        "| target | tickets | latency | run | wall s | in-flow s | rows | requests (by kind) | req/ticket | client peak RSS MB | client CPU s | note |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.requests.items()))
        lines.append(
            f"| {r.target} | {r.tickets:,} | {r.latency_ms:g} ms | {r.run} | {r.wall_s:.1f} | "
            f"{'' if r.flow_s is None else f'{r.flow_s:.1f}'} | {r.rows:,} | {kinds} | "
            f"{'' if r.per_ticket is None else f'{r.per_ticket:.2f}'} | {r.client_rss_mb:.0f} | {r.client_cpu_s:.1f} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--quick", action="store_true", help="simulator only, 200 tickets at 50 ms (~2.5 min)"
    )
    mode.add_argument("--full", action="store_true", help="everything (~30 min)")
    parser.add_argument("--no-real-rt", action="store_true", help="skip the real RT 5")
    parser.add_argument(
        "--skip-100k", action="store_true", help="skip the 100,000-ticket memory run"
    )
    parser.add_argument(
        "--reuse-real-rt",
        metavar="JSON",
        help="take the real RT part (and its service times) from an earlier results file",
    )
    opts = parser.parse_args(argv)
    procs.install_signal_handlers()
    name = "full" if opts.full else "quick"
    report: dict[str, Any] = {
        "mode": name,
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rows: list[Row] = []
    notes: list[str] = []
    legacy_scale: dict[tuple[str, float], tuple[float, int]] = {}
    work_root = Path(tempfile.mkdtemp(prefix="rt-displayr-bench-"))
    started = time.perf_counter()
    try:
        service_times = dict(DEFAULT_SERVICE_TIMES)
        if opts.reuse_real_rt:
            earlier = json.loads(Path(opts.reuse_real_rt).read_text())
            report["real_rt"] = earlier["real_rt"]
            rows += [Row(**row) for row in earlier["rows"] if row["target"] == "real RT 5"]
            service_times = measured_service_times(earlier["real_rt"])
        elif opts.full and not opts.no_real_rt:
            rt_rows, info = real_rt_scenario(work_root, 150)
            rows += rt_rows
            report["real_rt"] = info
            if "endpoints" in info:
                service_times = measured_service_times(info)
        report["service_times_ms"] = service_times
        _log(f"simulator service times (ms): {service_times}")
        if opts.quick:
            plan = [(200, 50.0, True, True)]
        else:
            # 10,000 at 0 ms is left out: at RT's 4 workers the cold run is server-bound, so it
            # costs what the 50 ms run costs; the zero-service-time runs below cover 0 ms.
            plan = [(1000, 0.0, True, True), (1000, 50.0, True, True), (10000, 50.0, False, True)]
        for tickets, latency, legacy, incremental in plan:
            got, more = sim_scenario(
                work_root,
                tickets,
                latency,
                service_times,
                legacy=legacy,
                incremental=incremental,
                warm=tickets >= 10000,
            )
            rows += got
            notes += more
            for row in got:
                if row.run.startswith("a"):
                    legacy_scale[("sim", latency)] = (row.wall_s, row.rows)
        if opts.full:
            cold = next(
                r
                for r in rows
                if r.target == "sim"
                and r.tickets == 10000
                and r.latency_ms == 50
                and r.run == "b cold"
            )
            seconds, measured_n = legacy_scale[("sim", 50.0)]
            if seconds * 10000 / measured_n / cold.wall_s < 20:
                # Server-bound at RT's 4 workers: does more client concurrency, or more server, help?
                for concurrency, workers in ((16, 8),):
                    got, _ = sim_scenario(
                        work_root,
                        10000,
                        50.0,
                        service_times,
                        legacy=False,
                        incremental=False,
                        concurrency=concurrency,
                        workers=workers,
                        label=f" (workers {workers})",
                    )
                    rows += got
                    legacy_scale[(f"sim (workers {workers})", 50.0)] = legacy_scale[("sim", 50.0)]
            zero: dict[str, float] = {}
            sizes = [10000] if opts.skip_100k else [10000, 100000]
            for tickets in sizes:
                got, _ = sim_scenario(
                    work_root,
                    tickets,
                    0.0,
                    zero,
                    legacy=False,
                    incremental=False,
                    label=" (zero service time)",
                )
                rows += got
    finally:
        procs.stop_all()
        report["seconds"] = round(time.perf_counter() - started, 1)
        report["rows"] = [asdict(r) for r in rows]
        report["ratios"] = ratios(rows, legacy_scale)
        report["notes"] = notes
        report["left_running"] = procs.processes_left()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
        subprocess.run(["rm", "-rf", str(work_root)], check=False)
    print(table(rows))
    print()
    for line in report["ratios"] + notes:
        print(f"- {line}")
    print(
        f"\ntotal {report['seconds']:.0f} s; processes left running: {report['left_running'] or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
