"""Damage real run folders the ways disks, editors, other tools and hostile hands do.

Used by tests/unit/test_report_fuzz.py and benchmarks/fuzz_report.py. Every mutation starts from a copy
of a committed example run (reports/examples/runs), is drawn from a `random.Random(seed)`, and says what
it did, so a failing case is rebuilt from its seed alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

EXAMPLE_RUNS = REPO / "reports" / "examples" / "runs"
EXAMPLE_CHECKS = REPO / "reports" / "examples" / "checks"
JSON_FILES = ("results.json", "config.json", "versions.json", "facts.json")
CSV_FILES = ("telemetry.csv", "marks.csv", "iterations.csv", "steps.csv")
RUN_FILES = JSON_FILES + CSV_FILES
BIG_FILE_BYTES = 65 * 2**20  # above the report's 64 MiB cap (written sparse: costs no disk)

_DEEP = "__svdops_fuzz_deep__"
_HUGE_INT = "__svdops_fuzz_huge_int__"
_DUP_KEY = "__svdops_fuzz_dup_key__"


def example_runs() -> list[Path]:
    runs = sorted(p for p in EXAMPLE_RUNS.iterdir() if (p / "results.json").is_file())
    assert runs, f"no example run under {EXAMPLE_RUNS}"
    return runs


def _odd_values(rng: random.Random) -> list[Any]:
    return [
        None,
        True,
        False,
        0,
        -1,
        10**30,
        -(10**400),
        1e308,
        float("nan"),
        float("inf"),
        float("-inf"),
        "",
        "text",
        "12.5",
        "<script>alert(1)</script>",
        "\x00\x1b[31mred\x07\u202e",
        "9" * 5000,
        [],
        {},
        [1, "a", None, {"b": []}],
        {"a": {"b": [1.5, None]}, "median": "x"},
        _DEEP,
        _HUGE_INT,
        rng.random() * 10 ** rng.randint(-300, 300),
    ]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed JSON document (the root excluded), depth-first."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found += _paths(item, (*prefix, index))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def _dumps(doc: Any, rng: random.Random) -> str:
    text = json.dumps(doc, indent=rng.choice([None, 2]))  # NaN and Infinity as Python writes them
    depth = rng.choice([50, 1000, 5000, 100_000])
    text = text.replace(json.dumps(_DEEP), "[" * depth + "]" * depth)
    text = text.replace(json.dumps(_HUGE_INT), "1" + "0" * rng.choice([400, 5000, 100_000]))
    return text


def _json_mutation(path: Path, rng: random.Random) -> str:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return _byte_mutation(path, rng)
    places = _paths(doc)
    kind = rng.choice(["swap", "swap", "swap", "delete", "duplicate", "root", "graft", "stringify"])
    if kind == "root" or not places:
        doc = rng.choice(_odd_values(rng))
        path.write_text(_dumps(doc, rng), encoding="utf-8")
        return f"{path.name}: the whole document replaced by an odd value"
    where = rng.choice(places)
    parent = _parent(doc, where)
    if kind == "swap":
        parent[where[-1]] = rng.choice(_odd_values(rng))
    elif kind == "delete":
        del parent[where[-1]]
    elif kind == "duplicate" and isinstance(parent, dict):
        twin = rng.choice(list(parent))  # the same key twice in one object: JSON allows it, the last wins
        parent[_DUP_KEY] = rng.choice(_odd_values(rng))
        text = _dumps(doc, rng).replace(json.dumps(_DUP_KEY), json.dumps(twin))
        path.write_text(text, encoding="utf-8")
        return f"{path.name}: key {twin!r} twice"[:160]
    elif kind == "stringify":
        parent[where[-1]] = str(parent[where[-1]])[:200]
    else:  # graft a section only some kinds of run carry (multi-GPU ones), with an odd value or a plausible one
        key = rng.choice(
            [
                "scaling",
                "nccl",
                "topology",
                "ranks",
                "failure",
                "telemetry",
                "weights",
                "request",
                "world_size",
                "per_rank",
                "optimize",
                "largest_fitting",
                "schema",
                "kind",
            ]
        )
        target = doc if isinstance(doc, dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            target[key] = rng.choice(
                [
                    *_odd_values(rng),
                    {
                        "workload": "infer-dp",
                        "world_size": 2,
                        "throughput": {"value": 10.0, "unit": "videos/hour"},
                        "baseline": {"videos_per_hour": "x"},
                        "speedup": None,
                    },
                    [{"size_bytes": "1k", "busbw_gbps": 1e308}, {"size_bytes": 2**70, "algbw_gbps": -1}],
                    {"summary": {"samples": 10**20, "power_limit_w": "700"}, "per_rank": {"0": {"samples": "x"}}},
                    "svdops.bench.results/2",
                ]
            )
        path.write_text(_dumps(doc, rng), encoding="utf-8")
        return f"{path.name}: graft {key}"
    path.write_text(_dumps(doc, rng), encoding="utf-8")
    return f"{path.name}: {kind} at {'/'.join(map(str, where))}"[:160]


def _byte_mutation(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    kind = rng.choice(["flip", "truncate", "junk", "nul"])
    if kind == "flip" and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randint(0, len(data))]
    elif kind == "junk":
        at = rng.randint(0, len(data))
        data[at:at] = rng.randbytes(rng.randint(1, 64))
    else:
        at = rng.randint(0, len(data))
        data[at:at] = b"\x00" * rng.randint(1, 16)
    path.write_bytes(bytes(data))
    return f"{path.name}: bytes {kind}"


def _encoding_mutation(path: Path, rng: random.Random) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return _byte_mutation(path, rng)
    text = text.replace('"', '"café ', 1) if rng.random() < 0.5 else text + "\u00e9"
    encoding = rng.choice(["latin-1", "utf-16", "utf-8-sig", "utf-32", "cp1252"])
    path.write_bytes(text.encode(encoding, errors="replace"))
    return f"{path.name}: written as {encoding}"


def _csv_mutation(path: Path, rng: random.Random) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return _byte_mutation(path, rng)
    if not lines:
        lines = ["t_unix,t_mono"]
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    kind = rng.choice(
        [
            "cell",
            "cell",
            "cell",
            "column",
            "header",
            "ragged",
            "drop_header",
            "dup_column",
            "rank",
            "empty_rows",
            "quote",
        ]
    )
    if kind == "cell" and rows:
        for _ in range(rng.randint(1, 5)):
            row = rng.choice(rows)
            if row:
                row[rng.randrange(len(row))] = rng.choice(
                    ["abc", "nan", "inf", "-inf", "1e999", "", "-", "1" + "0" * 400, "0x10", "True", "[1]", "é"]
                )
    elif kind == "column" and len(header) > 1:
        gone = rng.randrange(len(header))
        header.pop(gone)
        for row in rows:
            if gone < len(row):
                row.pop(gone)
    elif kind == "header":
        header[rng.randrange(len(header))] = rng.choice(["", "t_mono", "t_unix", "rank", "label", "é", "x" * 300])
    elif kind == "ragged" and rows:
        row = rng.choice(rows)
        row += ["1"] * rng.randint(1, 5) if rng.random() < 0.5 else []
        del row[rng.randint(0, len(row)) :]
    elif kind == "drop_header":
        header = rows.pop(0) if rows else header
    elif kind == "dup_column":
        header.append(rng.choice(header))
        for row in rows:
            row.append(rng.choice(["1", "x", ""]))
    elif kind == "rank":
        header.append("rank")
        for row in rows:
            row.append(rng.choice(["0", "1", "x", "", "nan"]))
    elif kind == "empty_rows":
        rows = [[] for _ in rows] or [[]]
    else:
        if rows:
            row = rng.choice(rows)
            if row:
                row[0] = '"' + row[0]
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    path.write_text(text, encoding="utf-8")
    return f"{path.name}: csv {kind}"


def _file_mutation(path: Path, rng: random.Random, outside: Path) -> str:
    kind = rng.choice(["delete", "delete", "directory", "dev_zero", "outside", "fifo", "empty", "big", "dangling"])
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "delete":
        return f"{path.name}: deleted"
    if kind == "directory":
        path.mkdir()
        (path / "inside.json").write_text("{}")
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "outside":
        target = outside / f"{path.name}.outside"
        target.write_text('{"status": "ok", "hostname": "outside", "secret": "not for the report"}\n')
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "big":
        with path.open("wb") as fh:
            fh.truncate(BIG_FILE_BYTES)  # sparse: the size is real, the disk holds nothing
    else:
        path.symlink_to(outside / "nowhere")
    return f"{path.name}: {kind}"


def mutate_run(run: Path, rng: random.Random, outside: Path) -> list[str]:
    """Apply 1 to 3 mutations to the run folder `run`; returns what was done."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(RUN_FILES)
        path = run / name
        if not path.is_file() or path.is_symlink():
            done.append(_file_mutation(path, rng, outside))
            continue
        mutation: Callable[[Path, random.Random], str]
        roll = rng.random()
        if roll < 0.08:
            done.append(_file_mutation(path, rng, outside))
            continue
        if roll < 0.25:
            mutation = _byte_mutation
        elif roll < 0.33:
            mutation = _encoding_mutation
        elif name.endswith(".json"):
            mutation = _json_mutation
        else:
            mutation = _csv_mutation
        done.append(mutation(path, rng))
    return done


def copy_run(source: Path, store: Path) -> Path:
    target = store / source.name
    shutil.copytree(source, target)
    return target


def mutate_check_file(path: Path, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return _json_mutation(path, rng)
    if roll < 0.75:
        return _byte_mutation(path, rng)
    if roll < 0.85:
        return _encoding_mutation(path, rng)
    return _file_mutation(path, rng, path.parent)


# --- one case: a store holding a mutated run, read the way `svdops report` reads it ----------------------

INTERNAL_MARK = "a bug in svdops"  # what the report's boundary writes when it caught something unforeseen
OUTCOMES = ("rendered", "skipped-with-note", "exit-2", "internal")


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang("no answer within the time limit (a read that blocks: a FIFO, a device?)")


def run_store(seed: int, index: int, work: Path, *, render: bool = True, timeout_s: int = 30) -> list[tuple[str, str]]:
    """Build store `index` of `seed` under `work`, report on it; one (outcome, what was done) per mutation.

    A store holds 1 to 8 mutated copies of real runs (one in four stores holds a single one, so a store
    with nothing usable left is tried too) and, one store in three, a mutated check file. With `render`
    the HTML is written (write_report, which `svdops report` calls), else the frames are built
    (build_report) and the telemetry of every run read and charted as the template would.

    A mutation's outcome: `rendered` (its run or check file is in the report), `skipped-with-note` (a
    note names its folder or file), `exit-2` (its store had nothing usable: a clear error), `internal`
    (anything else: a traceback's exception, a hang, or a note of the report's boundary saying it caught
    a bug). An internal error is charged to every mutation of its store: never fewer than there are.
    """
    import signal

    from svdops.errors import SvdopsError
    from svdops.report import charts
    from svdops.report.render import ReportOptions, build_report, write_report
    from svdops.report.telemetry_series import read_telemetry

    rng = random.Random(f"{seed}:{index}")
    case = work / f"store-{index}"
    store, outside = case / "store", case / "outside"
    store.mkdir(parents=True)
    outside.mkdir()
    runs = example_runs()
    size = 1 if index % 4 == 0 else rng.randint(2, 8)
    mutated: list[tuple[Path, str]] = []
    for n in range(size):
        source = rng.choice(runs)
        victim = store / f"{source.name}-m{n}"
        shutil.copytree(source, victim)
        mutated.append((victim, "; ".join(mutate_run(victim, rng, outside))))
    checks: tuple[Path, ...] = ()
    if index % 3 == 0:
        source = rng.choice(sorted(EXAMPLE_CHECKS.glob("*.json")))
        check = case / f"check-{source.name}"
        shutil.copyfile(source, check)
        mutated.append((check, "check " + mutate_check_file(check, rng)))
        checks = (check,)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        options = ReportOptions(checks=checks)
        if render:
            skipped = write_report([str(store)], case / "report.html", options).skipped
        else:
            data = build_report([str(store)], options)
            for run in data.runs:
                series = read_telemetry(run)
                if series is not None:
                    charts.telemetry_chart(series)
            skipped = data.skipped
    except SvdopsError as err:
        outcome = "exit-2" if err.exit_code == 2 else "internal"
        return [(outcome, f"{what} -> exit {err.exit_code}: {err}") for _, what in mutated]
    except Exception as exc:  # the whole point: anything else is an internal error of the report
        return [("internal", f"{what} -> {type(exc).__name__}: {str(exc)[:300]}") for _, what in mutated]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(case, ignore_errors=True)
    bugs = [note for note in skipped if INTERNAL_MARK in note]
    outcomes = []
    for path, what in mutated:
        named = [note for note in skipped if str(path) in note]
        if any(INTERNAL_MARK in note for note in named) or (bugs and not named):
            outcomes.append(("internal", f"{what} -> {bugs}"))
        else:
            outcomes.append(("skipped-with-note" if named else "rendered", what))
    return outcomes
