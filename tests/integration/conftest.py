"""One real RT 5 per test session, seeded once with the scenario.

Skipped (one line) when not root or RT is not installed, unless RT_DISPLAYR_INTEGRATION=1 or
CI=true force it: then a missing or failing RT is a test error, never a silent skip.
The server runs in its own process group; the fixture stops that group, and only it, even when
seeding or a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.rt5 import RTRest, RTServer, missing_prerequisite, running_rt
from tests.integration.scenario import RTView, Scenario, rt_view, seed


def _forced() -> bool:
    return (
        os.environ.get("RT_DISPLAYR_INTEGRATION") == "1"
        or os.environ.get("CI", "").lower() == "true"
    )


@pytest.fixture(scope="session")
def rt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RTServer]:
    problem = missing_prerequisite()
    if problem is not None:
        if _forced():
            pytest.fail(f"a real RT is required here (CI/RT_DISPLAYR_INTEGRATION): {problem}")
        pytest.skip(f"real RT 5 unavailable: {problem}")
    with running_rt(tmp_path_factory.mktemp("rt5")) as server:
        yield server


@pytest.fixture(scope="session")
def scenario(rt_server: RTServer) -> Scenario:
    return seed(rt_server.url, rt_server.password)


@pytest.fixture(scope="session")
def root_rest(rt_server: RTServer) -> Iterator[RTRest]:
    with RTRest(rt_server.url, "root", rt_server.password) as rest:
        yield rest


@pytest.fixture(scope="session")
def rt_views(scenario: Scenario, root_rest: RTRest) -> dict[int, RTView]:
    """REST 2's account of every seeded ticket, read once right after seeding."""
    return {ticket.id: rt_view(root_rest, ticket.id) for ticket in scenario.tickets.values()}
