"""One pipeline run as its own process: `python -m benchmarks.pipeline_child '<json parameters>'`.

What the `rt-displayr run --dry-run` command does (the flow, Prefect's start-up included), plus
one line `BENCH_RESULT {...}` with this process's own peak memory and CPU time: measured here,
inside the client, so that the Prefect server Prefect starts as a child does not count.
The environment (RT_URL, credentials, a fresh PREFECT_HOME) comes from the parent.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    started = time.perf_counter()
    parameters = json.loads(sys.argv[1])
    from rt_displayr.cli import run_flow  # imports nothing of Prefect until called

    summary = run_flow(parameters, progress=False)
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "seconds_in_process": time.perf_counter() - started,
        "flow_seconds": summary["duration_seconds"],
        "rows": summary["rows"],
        "new": summary["new"],
        "changed": summary["changed"],
        "unchanged": summary["unchanged"],
        "rt_requests": summary["rt_requests"],
        "csv": summary["csv"],
        "maxrss_kb": own.ru_maxrss,
        "cpu_seconds": own.ru_utime + own.ru_stime,
        "children_cpu_seconds": children.ru_utime + children.ru_stime,
        "children_maxrss_kb": children.ru_maxrss,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
