"""Which runs a report covers: run folders found from arguments (folders, stores, globs), filters
(--host, --gpu, --scenario, --since) and the hourly prices by host pattern.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from svdops.errors import BadInputError
from svdops.plan.prices import gpu_price
from svdops.report.run_fields import BUG_NOTE, run_host, run_scenario, run_started
from svdops.runs.documents import MAX_RUN_FILE_BYTES, Config, Results, Versions, read_json_file
from svdops.runs.store import TMP_PREFIX, Run

RANK_METRICS = ("videos_per_hour", "cost", "energy")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")


_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class RunFilter:
    """Which runs a report keeps. Host and scenario are shell-style patterns (`gpu0*`)."""

    hosts: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    since: datetime | None = None

    def keeps(self, host: str, scenario: str, started: datetime | None) -> bool:
        if self.hosts and not any(fnmatch.fnmatchcase(host, p) for p in self.hosts):
            return False
        if self.scenarios and not any(fnmatch.fnmatchcase(scenario, p) for p in self.scenarios):
            return False
        # A run with no readable start time cannot be shown to be recent enough: leave it out.
        return self.since is None or (started is not None and started >= self.since)

    def describe(self) -> list[str]:
        parts = []
        if self.hosts:
            parts.append("host " + " or ".join(self.hosts))
        if self.scenarios:
            parts.append("scenario " + " or ".join(self.scenarios))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat(timespec='minutes')}")
        return parts


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-26`, `2026-11-26T10:00`, an ISO time with offset, or an age: `90m`, `12h`, `7d`, `2w`."""
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), _DURATION_UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInputError(
            f"cannot read {text!r} as a date, a time or an age",
            where="--since",
            hint="use 2026-11-26, 2026-11-26T10:00, or an age such as 12h, 7d, 2w",
        ) from None
    # A time without a zone is read as UTC: run folder names and results.json are in UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_host_prices(items: Iterable[str]) -> dict[str, float]:
    """`--host-price HOST=USD_PER_HOUR` pairs; HOST may be a pattern (`gpu0*=2.5`)."""
    prices: dict[str, float] = {}
    for item in items:
        host, sep, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = math.nan
        if not sep or not host.strip() or not math.isfinite(price) or price < 0:
            raise BadInputError(
                f"cannot read price {item!r}", where="--host-price",
                hint="use HOST=USD_PER_HOUR, e.g. --host-price gpu01=2.49"
            )
        prices[host.strip()] = price
    return prices


def price_for(host: str, prices: Mapping[str, float]) -> float | None:
    """An exact host name wins over a pattern, so `--price '*=2' --price big=9` does what it says."""
    if host in prices:
        return prices[host]
    for pattern, price in prices.items():
        if fnmatch.fnmatchcase(host, pattern):
            return price
    return None


@dataclass
class RunSelection:
    runs: list[Run]
    skipped: list[str] = field(default_factory=list)  # why a folder or file was passed over, for the report's notes
    matched_before_filter: int = 0


TABLES_READ = ("telemetry.csv", "marks.csv")  # the tables the report reads beside the JSON documents


def _expand(arg: str) -> list[Path]:
    if glob.has_magic(arg):
        found = sorted(Path(p) for p in glob.glob(arg))
        if not found:
            raise BadInputError(f"no file or folder matches {arg!r}", where="RUNS", hint="check the pattern")
        return found
    path = Path(arg)
    if not path.exists():
        raise BadInputError(
            "no such run folder or store", where=arg, hint="pass run folders or a store (default ./svdops-runs)"
        )
    return [path]


def _has_results(folder: Path) -> bool:
    # lexists: a results.json that is a folder, a FIFO or a link is a damaged run to name, not a stranger to skip
    return os.path.lexists(folder / "results.json")


def read_run(folder: Path) -> Run:
    """One run folder read the way a report must read what it did not write: every document through the
    bounded reader (regular files of at most 64 MiB, links not followed), each malformed field a note.
    A document that cannot be read at all is a BadInputError naming the file and why."""
    if folder.name.startswith(TMP_PREFIX):
        raise BadInputError(
            "this is an unfinished run (its writer stopped before committing it)",
            where=str(folder),
            hint="delete it; finished runs have no '.tmp-' prefix",
        )
    if not _has_results(folder):
        raise BadInputError("not a run folder (no results.json)", where=str(folder))
    results = Results.read(read_json_file(folder / "results.json"), where="results.json")
    config = Config.read(read_json_file(folder / "config.json"), where="config.json")
    versions = Versions.read(read_json_file(folder / "versions.json"), where="versions.json")
    facts = read_json_file(folder / "facts.json")
    run = Run(
        path=folder,
        facts=facts if isinstance(facts, dict) else None,
        config=config,
        results=results,
        versions=versions,
    )
    if facts is not None and not isinstance(facts, dict):
        run.results.read_notes.append(f"facts.json: expected an object, got {type(facts).__name__}; not used")
    return run


def _table_notes(folder: Path) -> list[str]:
    """The tables the report reads, judged before the run is kept: one that is not a plain file of sane
    size is left out of the report (its telemetry chart) with a note, the run itself stays."""
    notes = []
    for name in TABLES_READ:
        path = folder / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            notes.append(f"{path}: not read: {exc.strerror or exc}")
            continue
        if not path.is_file() or path.is_symlink():
            kind = "a symbolic link" if path.is_symlink() else "not a regular file"
            notes.append(f"{path}: not read: {kind}")
        elif info.st_size > MAX_RUN_FILE_BYTES:
            notes.append(f"{path}: not read: {info.st_size:,} bytes, past the {MAX_RUN_FILE_BYTES // 2**20} MiB cap")
    return notes


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def find_runs(
    args: Sequence[str],
    run_filter: RunFilter | None = None,
    *,
    usable: Callable[[Run], object] | None = None,
) -> RunSelection:
    """Run folders from paths and globs; a folder without results.json is read as a store of runs.

    Each run is read inside its own boundary: one that cannot be read (or, with `usable`, cannot be
    tabulated: the report passes its row builders) is skipped with a note naming the file and the
    reason, and the report goes on with the others. A failure svdops did not foresee is skipped the
    same way, its note saying it is a bug, rather than costing the report of the other runs.
    """
    run_filter = run_filter or RunFilter()
    selection = RunSelection(runs=[])
    seen: set[Path] = set()
    candidates: list[Path] = []
    for arg in args:
        for path in _expand(arg):
            if _has_results(path) or path.name.startswith(TMP_PREFIX):
                candidates.append(path)
            elif path.is_dir():
                try:
                    children = sorted(c for c in path.iterdir() if c.is_dir())
                except OSError as exc:
                    raise BadInputError(f"cannot list the store: {exc.strerror or exc}", where=str(path)) from None
                for child in children:
                    if child.name.startswith(TMP_PREFIX):
                        selection.skipped.append(f"{child}: unfinished run (its writer stopped before committing it)")
                    elif child.is_symlink() and not _inside(child, path):
                        if _has_results(child):
                            selection.skipped.append(f"{child}: a symbolic link out of the store; not followed")
                    elif _has_results(child):
                        candidates.append(child)
            else:
                raise BadInputError("not a run folder or a store", where=str(path), hint="pass a folder")
    for path in candidates:
        if path.name.startswith(TMP_PREFIX):
            selection.skipped.append(f"{path}: unfinished run (its writer stopped before committing it)")
            continue
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:
            selection.skipped.append(f"{path}: not read: {exc}")
            continue
        if resolved in seen:
            continue
        seen.add(resolved)
        run = _read_within_boundary(path, selection.skipped, usable)
        if run is None:
            continue
        selection.matched_before_filter += 1
        if run_filter.keeps(run_host(run), run_scenario(run), run_started(run)):
            selection.runs.append(run)
    selection.runs.sort(key=lambda r: (run_started(r) or datetime.min.replace(tzinfo=UTC), r.name))
    return selection


def _read_within_boundary(path: Path, skipped: list[str], usable: Callable[[Run], object] | None) -> Run | None:
    """The run, or None with a note in `skipped`: one unreadable run must not cost the report on the other 999."""
    try:
        run = read_run(path)
        if usable is not None:
            usable(run)
    except BadInputError as exc:
        where = exc.where or str(path)
        if not where.startswith(str(path)):
            where = f"{path}/{where}"
        skipped.append(f"{where}: {exc.message}")
        return None
    except MemoryError:
        skipped.append(f"{path}: too large to hold in memory")
        return None
    except Exception as exc:  # unforeseen: said plainly, and the report of the others still written
        skipped.append(f"{path}: svdops failed reading it ({type(exc).__name__}: {str(exc)[:200]}); {BUG_NOTE}")
        return None
    skipped.extend(_table_notes(path))
    return run


@dataclass(frozen=True)
class Prices:
    """What an hour of a run costs. `--price` is per GPU-hour of a GPU model (the one meaning it has in
    `svdops plan` too); `--host-price` is per hour of a whole host and wins where both apply."""

    gpus: Mapping[str, float] = field(default_factory=dict)  # table GPU name -> USD per GPU-hour
    hosts: Mapping[str, float] = field(default_factory=dict)  # host or pattern -> USD per host-hour

    def __bool__(self) -> bool:
        return bool(self.gpus or self.hosts)

    def hourly(self, host: str, gpu: str | None, gpu_count: int = 1) -> float | None:
        by_host = price_for(host, self.hosts)
        if by_host is not None:
            return by_host
        per_gpu = gpu_price(gpu, self.gpus)
        return per_gpu * gpu_count if per_gpu is not None else None
