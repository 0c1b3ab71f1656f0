"""Writing a file so that a reader sees the old content or the new, never half of either.

The one place that does it: a temporary file in the target's own folder (os.replace is atomic only
within one file system), flushed and fsynced before the rename, so a crash after the rename cannot
leave a named but empty file. Errors are the OSError the system raised: what a failed write means
(bad input, a full disk, a run to keep) is the caller's to say.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    atomic_write_text(path, json_text(data, indent=indent, sort_keys=sort_keys))


def json_text(data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON (NaN and infinities as null: jq and most parsers reject the bare tokens), one trailing newline."""
    return json.dumps(finite(data), indent=indent, sort_keys=sort_keys, default=str, allow_nan=False) + "\n"


def finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path`; whatever the block writes there replaces `path` when it ends.

    For writers that want a file name rather than bytes (pandas' to_csv, to_parquet). The block must
    close what it opened; the file is fsynced here before the rename. On an exception the temporary
    file is removed and `path` is left as it was. A target that exists and is not a regular file (a
    device such as /dev/null, a FIFO) is written directly: it is never replaced.
    """
    target = Path(path)
    if _is_special(target):
        # /dev/null, /dev/stdout, a FIFO: write into it. Renaming over it would replace the device itself
        # (as root, `-o /dev/null` turned /dev/null into a regular file for every process on the machine)
        yield target
        return
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _is_special(target: Path) -> bool:
    """An existing target that is not a regular file (followed through symlinks): a device, a FIFO, a socket."""
    try:
        mode = target.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in `path` survive a power cut (a file's fsync does not cover its name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
