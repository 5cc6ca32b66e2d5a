"""Write the data set in the byte layout of the legacy R `write.csv` file.

Displayr maps an updated data set onto the existing one by layout, so the file keeps what R
produced: a leading row-number column with an empty header, every field double-quoted (numbers
too), quotes doubled, UTF-8 without a BOM, "\\n" line ends.

The file is written next to its destination and renamed over it only once complete and synced:
a failed or killed run leaves the last good CSV in place, never a truncated one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pandas as pd


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN: R would write NA; we never publish one
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def _records(df: pd.DataFrame, row_numbers: bool) -> Iterator[list[str]]:
    """Header then rows, all as text; columns are read as lists once, not cell by cell."""
    header = [str(name) for name in df.columns]
    yield ["", *header] if row_numbers else header
    columns = [df.iloc[:, position].tolist() for position in range(df.shape[1])]
    for number, values in enumerate(zip(*columns, strict=True), start=1):
        row = [_text(value) for value in values]
        yield [str(number), *row] if row_numbers else row


def _write(df: pd.DataFrame, stream: TextIO, row_numbers: bool) -> None:
    writer = csv.writer(stream, quoting=csv.QUOTE_ALL, doublequote=True, lineterminator="\n")
    writer.writerows(_records(df, row_numbers))


def csv_bytes(df: pd.DataFrame, *, row_numbers: bool = True) -> bytes:
    """The exact bytes `write_csv` would put on disk (for uploads and tests)."""
    buffer = io.StringIO(newline="")
    _write(df, buffer, row_numbers)
    return buffer.getvalue().encode("utf-8")


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str], *, row_numbers: bool = True) -> Path:
    """Atomically replace `path` with the CSV of `df`; return the resolved destination."""
    destination = Path(path).expanduser().resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A hidden, unique sibling: same file system (so the rename is atomic), and created with
    # O_EXCL under the caller's umask, so it never clobbers or out-permissions anything.
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as stream:
            _write(df, stream, row_numbers)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _sync_directory(destination.parent)
    return destination


def _sync_directory(directory: Path) -> None:
    """Persist the rename itself; best effort, as some platforms cannot open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
