"""The run store: one folder per benchmark run, written atomically, readable without svdops.

    <store>/<YYYYmmddTHHMMSSZ>-<host>-<scenario>/
        facts.json        HostFacts snapshot (JSON null when the facts could not be gathered)
        config.json       the resolved configuration, including which weights were used
        results.json      status and summaries (one entry per configuration point)
        iterations.csv    one row per iteration with per-stage times
        steps.csv         one row per UNet step
        telemetry.csv     NVML samples (t_unix, t_mono, ...)
        marks.csv         stage start/end marks on the same clocks as the telemetry
        versions.json     torch, diffusers, transformers, python, driver

A run is written into `<store>/.tmp-<name>-<pid>/` and renamed into place when complete, so a
reader never sees half a run: a writer killed mid-way leaves only a hidden `.tmp-` folder, which
readers skip. `unfinished_runs(store)` lists those folders (whose writer is gone, how old they are) and
`sweep_unfinished(store)` removes the ones older than STALE_AFTER_S whose writer is gone; every new
RunWriter sweeps its store, so a store does not fill up with the remains of killed runs. Plain JSON
and CSV on purpose: `pandas.read_csv(run / "iterations.csv")` is all a reader needs.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svdops.errors import BadInputError
from svdops.files import atomic_write_text, fsync_dir, json_text
from svdops.runs.documents import Config, Results, Versions, read_file_bytes, read_json_file

TMP_PREFIX = ".tmp-"
DEFAULT_STORE = "svdops-runs"
RUN_FILES = (
    "facts.json",
    "config.json",
    "results.json",
    "iterations.csv",
    "steps.csv",
    "telemetry.csv",
    "marks.csv",
    "versions.json",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# an unfinished run is removed only when its writer is gone and it is this old: a bench run on a shared
# (NFS) store may be alive on another host, where its PID means nothing here
STALE_AFTER_S = 24 * 3600
_TMP_PID = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class UnfinishedRun:
    """A `.tmp-` folder: a run whose writer has not committed it (still writing, or killed)."""

    path: Path
    pid: int | None  # the writer's, from the folder name
    age_s: float  # since the folder last changed
    writer_alive: bool  # a process with that PID runs here, and started before the folder last changed


def _writer_alive(pid: int | None, changed_at: float) -> bool:
    if pid is None:
        return True  # cannot tell: keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    # a PID reused by a process started after the folder last changed cannot be its writer
    started = _process_start(pid)
    return started is None or started <= changed_at + 1.0


def _process_start(pid: int) -> float | None:
    """When process `pid` started (UNIX time), from /proc; None where that cannot be read."""
    try:
        stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(stat_fields[19])  # field 22: starttime, in clock ticks since boot
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def unfinished_runs(store: str | os.PathLike[str], now: float | None = None) -> list[UnfinishedRun]:
    """Every `.tmp-` folder in the store, oldest first."""
    root = Path(store)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    found = []
    for child in root.iterdir():
        if not child.name.startswith(TMP_PREFIX) or child.is_symlink() or not child.is_dir():
            continue
        try:
            changed_at = child.stat().st_mtime
        except OSError:
            continue  # gone meanwhile
        match = _TMP_PID.search(child.name)
        pid = int(match.group(1)) if match else None
        found.append(UnfinishedRun(child, pid, max(0.0, now - changed_at), _writer_alive(pid, changed_at)))
    return sorted(found, key=lambda u: -u.age_s)


def sweep_unfinished(
    store: str | os.PathLike[str], older_than_s: float = STALE_AFTER_S, now: float | None = None
) -> tuple[list[UnfinishedRun], list[UnfinishedRun]]:
    """Remove the unfinished runs whose writer is gone and that are older than `older_than_s`.
    Returns (removed, kept): what a caller reports."""
    removed, kept = [], []
    for run in unfinished_runs(store, now):
        if not run.writer_alive and run.age_s >= older_than_s:
            shutil.rmtree(run.path, ignore_errors=True)
            removed.append(run)
        else:
            kept.append(run)
    return removed, kept


def run_name(host: str, scenario: str, when: datetime | None = None) -> str:
    """`20261126T101500Z-gpu01-svd-xt-25f`: sorts by time, and safe in any file system."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    host_part = _UNSAFE.sub("_", host).strip("._") or "host"
    scenario_part = _UNSAFE.sub("_", scenario).strip("._") or "run"
    return f"{stamp}-{host_part}-{scenario_part}"


def unfinished_notes(writer: RunWriter) -> list[str]:
    """What a new run found of killed ones in its store, in words for the run's notes."""
    notes = []
    if writer.swept:
        names = ", ".join(u.path.name for u in writer.swept[:5]) + (" ..." if len(writer.swept) > 5 else "")
        notes.append(f"removed {len(writer.swept)} unfinished run folder(s) left by killed runs: {names}")
    gone = [u for u in writer.unfinished if not u.writer_alive]
    if gone:
        names = ", ".join(u.path.name for u in gone[:5]) + (" ..." if len(gone) > 5 else "")
        notes.append(f"{len(gone)} unfinished run folder(s) whose writer is gone, kept for "
                     f"{STALE_AFTER_S / 3600:.0f} h in case they belong to another host: {names}")
    return notes


class RunWriter:
    """Collects one run's files in a hidden folder; `commit()` makes the run appear whole.

    Use as a context manager: leaving the block with an exception removes the hidden folder
    (a run that failed before it had anything worth keeping); call `commit()` inside the block
    to keep it. A process killed with SIGKILL leaves the hidden folder behind; readers skip it.
    """

    def __init__(self, store: str | os.PathLike[str], name: str) -> None:
        self.store = Path(store)
        self.name = name
        try:
            self.store.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(
                f"cannot create the run store: {exc.strerror}",
                where=str(self.store),
                hint="pass a writable folder with --store DIR",
            ) from exc
        # the remains of killed runs: removed when stale, the rest kept for the caller to report
        self.swept, self.unfinished = sweep_unfinished(self.store)
        self.tmp = self.store / f"{TMP_PREFIX}{name}-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        self.path: Path | None = None

    def write_json(self, filename: str, data: Any) -> None:
        # Atomic within the hidden folder too: a reader of a committed run never sees a torn file,
        # and the temporary files of a crashed writer stay inside the folder readers skip.
        atomic_write_text(self.tmp / filename, json_text(data))

    def write_text(self, filename: str, text: str) -> None:
        atomic_write_text(self.tmp / filename, text)

    def write_csv(self, filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        target = self.tmp / filename
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if v is None else _cell(v) for v in row])
            fh.flush()
            os.fsync(fh.fileno())

    def commit(self) -> Path:
        """Rename the hidden folder to its final name (`-2`, `-3`… if the name is taken)."""
        if self.path is not None:
            return self.path
        fsync_dir(self.tmp)
        for n in range(1, 1000):
            final = self.store / (self.name if n == 1 else f"{self.name}-{n}")
            if final.exists():
                continue
            try:
                # rename(2) would silently replace an empty folder created since the check;
                # the check above and the error below cover all but that harmless case.
                os.rename(self.tmp, final)
            except OSError:
                continue
            fsync_dir(self.store)
            self.path = final
            return final
        raise BadInputError("no free run folder name", where=str(self.store / self.name))

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.path is None:
            self.discard()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)  # 0/1 reads back as a number in pandas and in a spreadsheet
    if isinstance(value, float):
        return repr(value)  # shortest exact form: CSV round-trips the float bit for bit
    return value


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A committed run folder. JSON documents are read into their types; CSV tables on demand."""

    path: Path
    facts: dict[str, Any] | None  # HostFacts.to_dict(): the host stage owns its shape
    config: Config
    results: Results
    versions: Versions = field(default_factory=Versions)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.results.status or "unknown"

    @property
    def read_notes(self) -> list[str]:
        """What reading the documents found missing or malformed, with file and key."""
        return [*self.results.read_notes, *self.config.read_notes, *self.versions.read_notes]

    def table(self, name: str) -> list[dict[str, Any]]:
        """Rows of `<name>.csv` as dicts, numbers parsed, empty cells as None ([] when absent)."""
        data = read_file_bytes(self.path / f"{name}.csv")
        if data is None:
            return []
        text = data.decode("utf-8", errors="replace")
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text, newline=""))]

    def frame(self, name: str) -> Any:
        """`<name>.csv` as a pandas DataFrame (pandas is imported only here, untyped on purpose)."""
        pandas = importlib.import_module("pandas")
        data = read_file_bytes(self.path / f"{name}.csv")
        if data is None:
            raise BadInputError(f"{name}.csv is not in this run", where=str(self.path))
        return pandas.read_csv(io.BytesIO(data))


def _parse_cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read_json(path: Path) -> Any:
    """The report's bounded reader: a regular file inside the run (no link, FIFO or device), capped,
    UTF-8 JSON of sane depth; anything else a BadInputError naming the file and why."""
    return read_json_file(path)


def load_run(path: str | os.PathLike[str]) -> Run:
    folder = Path(path)
    if folder.name.startswith(TMP_PREFIX):
        raise BadInputError(
            "this is an unfinished run (its writer stopped before committing it)",
            where=str(folder),
            hint="delete it; finished runs have no '.tmp-' prefix",
        )
    if not (folder / "results.json").is_file():
        raise BadInputError(
            "not a run folder (no results.json)",
            where=str(folder),
            hint="pass a folder inside the run store, e.g. ./svdops-runs/<run>",
        )
    results = Results.read(_read_json(folder / "results.json"), where="results.json")
    config = Config.read(_read_json(folder / "config.json"), where="config.json")
    facts = _read_json(folder / "facts.json")
    versions = Versions.read(_read_json(folder / "versions.json"), where="versions.json")
    return Run(
        path=folder,
        facts=facts if isinstance(facts, dict) else None,
        config=config,
        results=results,
        versions=versions,
    )


def list_runs(store: str | os.PathLike[str]) -> list[Run]:
    """Every committed run in the store, oldest first. Hidden (`.tmp-`) folders are skipped."""
    root = Path(store)
    if not root.is_dir():
        return []
    runs = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir() or not (child / "results.json").is_file():
            continue
        runs.append(load_run(child))
    return runs
