"""Temporarily exported environment variables, for the processes a run starts meanwhile.

Child processes (Dask workers, the demo's flow runs) read their settings from the environment
they inherit; this sets the values for the duration of a block and restores what was there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def exported_environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
