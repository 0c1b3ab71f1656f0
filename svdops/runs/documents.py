"""The run documents: results.json, config.json and versions.json as types, for every writer and reader.

The single-GPU bench and the multi-GPU merge build these; the report, plan's calibration and the
bench CLI read them. `to_json()` gives the plain JSON document (what `jq` and pandas see);
`from_json()` reads one written by any svdops, older or newer, whole or cut short, or by hand:

- a field that is missing or has the wrong type reads as None (or an empty list) and, when the
  field is one a reader relies on or its value is malformed, adds a note saying where;
- keys this svdops does not know are kept in `extra` and written back, so a round trip through an
  older svdops loses nothing a newer one wrote;
- only a schema of another major version is an error (SchemaError): its fields may mean something
  else, and guessing would put wrong figures in a report.

Only the structure declared here is walked, so a hostile document cannot make reading recurse
deeper than these classes nest. Free-form parts (a point's configuration, a rank's own result,
the topology) stay dicts: their shape belongs to the bench code that fills them.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from svdops.errors import BadInputError

RESULTS_SCHEMA_NAME = "svdops.bench.results"
RESULTS_SCHEMA_MAJOR = 1
RESULTS_SCHEMA = f"{RESULTS_SCHEMA_NAME}/{RESULTS_SCHEMA_MAJOR}"

# Point and run statuses, as written by the bench.
POINT_STATUSES = ("ok", "oom", "failed", "interrupted", "not_run")
RUN_STATUSES = ("ok", "partial", "oom", "failed", "interrupted")

# No run document or table a bench writes comes near this; a file past it is damage or a trap, and
# reading it whole (a 5 GB "telemetry.csv", /dev/zero behind a link) would cost the reader its memory.
MAX_RUN_FILE_BYTES = 64 * 2**20

_SCHEMA = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)/(?P<major>\d+)(?:\.\d+)*$")
_NOTE_VALUE_CHARS = 60


class SchemaError(BadInputError):
    """A document of a major version this svdops cannot read."""


# Field metadata. OMITTED: left out of the JSON while None (sections only some kinds of run carry).
# REQUIRED: a field every reader relies on, whose absence is worth a note. SKIPPED: not in the JSON.
OMITTED = {"omit_none": True}
REQUIRED = {"required": True}
SKIPPED = {"skip": True}


@dataclass
class Doc:
    """Base of every document part: typed fields, unknown keys kept, tolerant reading."""

    OMIT_NONE: ClassVar[bool] = False  # True: parts whose keys depend on the workload leave None out

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, compare=True, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra" or f.metadata.get("skip"):
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none", self.OMIT_NONE):
                continue
            # Free-form parts go out as they are: walking them would let a hostile one set the depth.
            out[f.name] = _dump(value) if f.name in _structured(type(self)) else value
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "", notes: list[str] | None = None) -> Self:
        """Read `data` (a parsed JSON value); problems are appended to `notes`, never raised."""
        notes = notes if notes is not None else []
        data = cls._upgrade(data, where, notes)
        if not isinstance(data, dict):
            if data is not None:
                notes.append(f"{where or cls.__name__}: expected an object, got {_shown(data)}")
            return cls()
        return cls._from_object(data, where, notes)

    @classmethod
    def _from_object(cls, data: dict[Any, Any], where: str, notes: list[str]) -> Self:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra" or f.metadata.get("skip"):
                continue
            here = f"{where}.{f.name}" if where else f.name
            if f.name not in data:
                if f.metadata.get("required"):
                    notes.append(f"{here}: missing")
                continue
            read = _read(hints[f.name], data[f.name], here, notes)
            if read is not _BAD:
                values[f.name] = read
        known = {f.name for f in fields(cls)}
        extra = {str(k): v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra)

    @classmethod
    def checked(cls, data: object, where: str) -> Self:
        """Read a document part a writer built as a dict: any note is a bug in that writer, so it raises."""
        notes: list[str] = []
        doc = cls.from_json(data, where, notes)
        if notes:
            raise TypeError(f"{cls.__name__} built with the wrong shape: {'; '.join(notes)}")
        return doc

    @classmethod
    def _upgrade(cls, data: object, where: str, notes: list[str]) -> object:
        """Rewrite an older form of this part into today's before it is read (default: as it is)."""
        return data


class _Bad:
    """A value that did not read: the field keeps its default."""


_BAD: Any = _Bad()


def _dump(value: Any) -> Any:
    if isinstance(value, Doc):
        return value.to_json()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}
_STRUCTURED: dict[type, frozenset[str]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _structured(cls: type) -> frozenset[str]:
    """The fields whose type holds document parts (as opposed to free-form JSON)."""
    if cls not in _STRUCTURED:
        _STRUCTURED[cls] = frozenset(name for name, hint in _hints(cls).items() if _holds_doc(hint))
    return _STRUCTURED[cls]


def _holds_doc(hint: Any) -> bool:
    if isinstance(hint, type) and issubclass(hint, Doc):
        return True
    return any(_holds_doc(arg) for arg in typing.get_args(hint))


def _shown(value: object) -> str:
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value))
    if kind is None:
        kind = "a number" if isinstance(value, int | float) else type(value).__name__
    text = repr(value) if isinstance(value, str | int | float | bool) else ""
    if len(text) > _NOTE_VALUE_CHARS:
        text = text[:_NOTE_VALUE_CHARS] + "..."
    return f"{kind} {text}".rstrip()


_EXPECTED = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}


def _read(hint: Any, value: object, where: str, notes: list[str]) -> Any:
    """`value` as the annotated type, else _BAD with a note (None is always accepted for an optional)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _read(options[0], value, where, notes)
        for option in options:  # int | str: the first that fits, with no notes from the others
            read = _read(option, value, where, [])
            if read is not _BAD:
                return read
        notes.append(f"{where}: unexpected {_shown(value)}")
        return _BAD
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, Doc):
        value = hint._upgrade(value, where, notes)
        if not isinstance(value, dict):
            return _mistyped(dict, value, where, notes)
        return hint._from_object(value, where, notes)
    if origin is list:
        if not isinstance(value, list):
            return _mistyped(list, value, where, notes)
        (item,) = args
        kept = []
        for index, element in enumerate(value):
            read = _read(item, element, f"{where}[{index}]", notes)
            if read is not _BAD:
                kept.append(read)
        return kept
    if origin is dict:
        if not isinstance(value, dict):
            return _mistyped(dict, value, where, notes)
        item = args[1]
        if item is Any:
            return dict(value)
        kept_items = {}
        for key, element in value.items():
            read = _read(item, element, f"{where}.{key}", notes)
            if read is not _BAD:
                kept_items[str(key)] = read
        return kept_items
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return None  # the store writes NaN as null, so a NaN is an absent value, not a malformed one
            if isinstance(value, int) and not _fits_float(value):
                notes.append(f"{where}: {len(str(abs(value)))}-digit integer: too large to be a measurement")
                return _BAD
            return value
        return _mistyped(float, value, where, notes)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _mistyped(int, value, where, notes)
    if hint in (str, bool):
        if type(value) is hint:
            return value
        return _mistyped(hint, value, where, notes)
    raise TypeError(f"documents: no reader for {hint!r} at {where}")  # a bug in this module, not in the input


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _mistyped(expected: type, value: object, where: str, notes: list[str]) -> Any:
    if value is not None:
        notes.append(f"{where}: expected {_EXPECTED[expected]}, got {_shown(value)}")
    return _BAD


# --- the parts of results.json -------------------------------------------------------------------


@dataclass
class Stat(Doc):
    """{n, median, p90, min, max} of a timed quantity (svdops.bench.stats.describe)."""

    n: int | None = None
    median: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class TelemetrySummary(Doc):
    """What NVML saw over a window (svdops.telemetry.summarize); null where it saw nothing."""

    samples: int | None = None
    duration_s: float | None = None
    temp_c_max: float | None = None
    power_w_median: float | None = None
    power_w_max: float | None = None
    power_limit_w: float | None = None
    sm_mhz_median: float | None = None
    sm_mhz_min: float | None = None
    sm_mhz_max: float | None = None
    mem_mhz_median: float | None = None
    util_gpu_pct_median: float | None = None
    mem_used_mib_max: float | None = None
    energy_j: float | None = None
    clocks_event_reasons: dict[str, float] | None = None  # reason -> fraction of samples it was set in
    throttled: bool | None = None
    power_capped: bool | None = None


@dataclass
class PointSummary(Doc):
    """A point's timed iterations reduced: stage times, throughput, MFU, memory, energy, output checks."""

    iterations: int | None = None
    warmup_iterations: int | None = None
    unet_tflop_per_step: float | None = None
    clip_s: Stat | None = None
    vae_encode_s: Stat | None = None
    unet_s: Stat | None = None
    decode_s: Stat | None = None
    e2e_s: Stat | None = None
    unet_step_s: Stat | None = None
    first_step_s: Stat | None = None
    videos_per_hour: float | None = None
    frames_per_s: float | None = None
    unet_tflops: float | None = None
    peak_tflops: float | None = None
    peak_tflops_source: str | None = None
    mfu: float | None = None
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    nan_frac_max: float | None = None
    black_frames: int | None = None
    output_ok: bool | None = None
    energy_j_per_video: float | None = None
    telemetry: TelemetrySummary | None = None
    nvml_mem_used_mib_max: float | None = None
    throttled: bool | None = None
    compile_s: float | None = field(default=None, metadata=OMITTED)  # compiled runs
    compile: dict[str, Any] | None = field(default=None, metadata=OMITTED)  # compiled runs: what Dynamo did
    traceback: str | None = field(default=None, metadata=OMITTED)  # points that failed with a bug

    def stage(self, name: str) -> Stat | None:
        """`clip`, `vae_encode`, `unet`, `decode`, `e2e`, `unet_step` or `first_step` by name."""
        value = getattr(self, f"{name}_s", None)
        return value if isinstance(value, Stat) else None

    def median(self, name: str) -> float | None:
        stat = self.stage(name)
        return stat.median if stat else None


@dataclass
class PointDoc(Doc):
    """One configuration point of a run: its resolved configuration, status and summary."""

    point: int | None = field(default=None, metadata=REQUIRED)
    config: dict[str, Any] = field(default_factory=dict)  # PointConfig.to_dict(): the bench owns its shape
    status: str | None = field(default=None, metadata=REQUIRED)
    error: str | None = None
    iterations_done: int | None = None
    summary: PointSummary = field(default_factory=PointSummary)


@dataclass
class WeightsRecord(Doc):
    kind: str | None = None
    description: str | None = None
    path: str | None = None
    model_index_sha256: str | None = None
    variant: str | None = None

    @classmethod
    def _upgrade(cls, data: object, where: str, notes: list[str]) -> object:
        # Early runs named the weights in one string.
        return {"description": data} if isinstance(data, str) else data

    def text(self) -> str | None:
        return self.description or self.kind


@dataclass
class LargestFitting(Doc):
    point: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizeRecord(Doc):
    """What --optimize applied and declined (levers with reasons), the compile cache, the quality gate."""

    level: str | None = None
    compile_mode: str | None = None
    arch: str | None = None
    levers: list[dict[str, Any]] = field(default_factory=list)  # {name, status, reason|note}: levers.py
    applied: list[str] = field(default_factory=list)
    compile_cache: dict[str, Any] | None = None  # counters named by Inductor, which may add some
    quality_gate: dict[str, Any] | None = None
    setup_s: float | None = field(default=None, metadata=OMITTED)


@dataclass
class TelemetryRecord(Doc):
    """results.json `telemetry`: was it on, did NVML answer, and the run-wide summary (per rank for multi)."""

    enabled: bool | None = None
    available: bool | None = None
    gpu: str | None = None
    note: str | None = None
    hz: float | None = None
    sampler_cpu_s: float | None = None
    summary: TelemetrySummary | None = None
    per_rank: dict[str, TelemetrySummary] | None = field(default=None, metadata=OMITTED)

    def samples(self) -> int:
        """How many samples the run has in all (multi-GPU runs count each rank's)."""
        count = (self.summary.samples if self.summary else None) or 0
        return count + sum(s.samples or 0 for s in (self.per_rank or {}).values())


# --- multi-GPU parts -----------------------------------------------------------------------------


@dataclass
class Throughput(Doc):
    OMIT_NONE: ClassVar[bool] = True

    value: float | None = field(default=None, metadata={"omit_none": False})
    unit: str | None = field(default=None, metadata={"omit_none": False})  # videos/hour | samples/s
    videos: int | None = None
    wall_s: float | None = None
    pairs: int | None = None
    batch_per_rank: int | None = None


@dataclass
class Baseline(Doc):
    """The single-GPU figure a scaling entry is compared with, and where it came from."""

    source: str | None = None
    e2e_s: float | None = field(default=None, metadata=OMITTED)
    unet_step_s: float | None = field(default=None, metadata=OMITTED)
    step_s: float | None = field(default=None, metadata=OMITTED)
    videos_per_hour: float | None = field(default=None, metadata=OMITTED)
    samples_per_s: float | None = field(default=None, metadata=OMITTED)

    def figure(self, unit: str | None) -> float | None:
        return self.samples_per_s if unit == "samples/s" else self.videos_per_hour


@dataclass
class ScalingEntry(Doc):
    """results.json `scaling` of a multi-GPU run: throughput at a world size against the baseline."""

    workload: str | None = None  # infer-dp | infer-cfg | train-ddp
    world_size: int | None = None
    per_rank: list[dict[str, Any]] = field(default_factory=list)  # the workload's own per-rank figures
    baseline: Baseline | None = None
    latency_s: float | None = field(default=None, metadata=OMITTED)
    throughput: Throughput | None = None
    speedup: float | None = None
    efficiency: float | None = None
    check: dict[str, Any] | None = field(default=None, metadata=OMITTED)
    gradient_bytes: int | None = field(default=None, metadata=OMITTED)
    gradient_checkpointing: bool | None = field(default=None, metadata=OMITTED)
    autocast: Any = field(default=None, metadata=OMITTED)
    optimizer: Any = field(default=None, metadata=OMITTED)

    @classmethod
    def _upgrade(cls, data: object, where: str, notes: list[str]) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        # Drafts of the multi-GPU bench wrote `gpus` for the world size and a bare videos/hour figure.
        if "world_size" not in data and "gpus" in data:
            data["world_size"] = data.pop("gpus")
        throughput = data.get("throughput")
        if throughput is None and "videos_per_hour" in data:
            throughput = data.pop("videos_per_hour")
        if isinstance(throughput, int | float) and not isinstance(throughput, bool):
            data["throughput"] = {"value": throughput, "unit": "videos/hour"}
        return data


@dataclass
class NcclRow(Doc):
    """One all-reduce size of the NCCL sweep; the time is the slowest rank's."""

    size_bytes: int | None = None
    iterations: int | None = None
    time_s: float | None = None
    algbw_gbps: float | None = None
    busbw_gbps: float | None = None
    expected_busbw_gbps: float | None = None


@dataclass
class Failure(Doc):
    """The rank that brought a multi-GPU run down, how (stalled, died, exception, oom, ...) and its error.

    `oom`: the rank ran out of memory, and the run's status is `oom` like a single-GPU point's."""

    rank: int | None = None
    ranks: list[int] = field(default_factory=list)
    how: str | None = None
    error: str | None = None


# --- the documents -------------------------------------------------------------------------------


@dataclass
class Results(Doc):
    """results.json: status and summaries, one entry per configuration point (none for multi-GPU runs)."""

    schema: str | None = RESULTS_SCHEMA  # an absent one is noted by check_schema
    kind: str = "single"  # single | multi
    status: str | None = field(default=None, metadata=REQUIRED)
    scenario: str | None = None
    workload: str | None = field(default=None, metadata=OMITTED)
    device: str | None = None
    backend: str | None = field(default=None, metadata=OMITTED)
    gpu: str | None = None
    world_size: int | None = field(default=None, metadata=OMITTED)
    nnodes: int | None = field(default=None, metadata=OMITTED)
    nproc_per_node: int | None = field(default=None, metadata=OMITTED)
    weights: WeightsRecord | None = None
    provenance: str | None = field(default=None, metadata=OMITTED)  # reference runs converted from published anchors
    started_at: str | None = None
    finished_at: str | None = None
    build_s: float | None = None
    wall_s: float | None = field(default=None, metadata=OMITTED)
    optimize: OptimizeRecord | None = None
    points: list[PointDoc] = field(default_factory=list)
    largest_fitting: LargestFitting | None = None
    scaling: ScalingEntry | None = None
    nccl: list[NcclRow] | None = None
    topology: dict[str, Any] | None = field(default=None, metadata=OMITTED)
    ranks: list[dict[str, Any]] | None = field(default=None, metadata=OMITTED)
    failure: Failure | None = None
    telemetry: TelemetryRecord | None = None
    notes: list[str] = field(default_factory=list)
    read_notes: list[str] = field(default_factory=list, metadata=SKIPPED, compare=False, repr=False)

    @classmethod
    def read(cls, data: object, where: str = "results.json") -> Results:
        """Read a parsed results.json; a schema of another major version raises SchemaError."""
        notes: list[str] = []
        check_schema(data, where, notes)
        doc = cls.from_json(data, where, notes)
        written_kind = isinstance(data, dict) and "kind" in data
        if not written_kind and (doc.scaling is not None or doc.nccl is not None or doc.world_size is not None):
            doc.kind = "multi"  # written before `kind` existed
        doc.read_notes = notes
        return doc

    @classmethod
    def _upgrade(cls, data: object, where: str, notes: list[str]) -> object:
        if not isinstance(data, dict) or not isinstance(data.get("scaling"), list):
            return data
        entries = [e for e in data["scaling"] if isinstance(e, dict)]
        if len(entries) > 1:
            notes.append(f"{where}.scaling: {len(entries)} entries; the first is read")
        return {**data, "scaling": entries[0] if entries else None}

    @property
    def is_reference(self) -> bool:
        return bool(self.provenance)

    def ok_points(self) -> list[PointDoc]:
        return [p for p in self.points if p.status == "ok"]


@dataclass
class Config(Doc):
    """config.json: the request as given, the scenario, the resolved points (multi: the plan and command)."""

    OMIT_NONE: ClassVar[bool] = True

    request: dict[str, Any] = field(default_factory=dict)  # BenchRequest / MultiRequest as dataclasses.asdict
    scenario: dict[str, Any] | None = None
    sweep_axes: dict[str, Any] | None = None
    weights: WeightsRecord | None = None
    points: list[dict[str, Any]] | None = None
    optimize: OptimizeRecord | None = None
    plan: dict[str, Any] | None = None
    command: list[str] | None = None
    point: dict[str, Any] | None = None
    read_notes: list[str] = field(default_factory=list, metadata=SKIPPED, compare=False, repr=False)

    @classmethod
    def read(cls, data: object, where: str = "config.json") -> Config:
        notes: list[str] = []
        doc = cls.from_json(data, where, notes)
        doc.read_notes = notes
        return doc

    @property
    def scenario_name(self) -> str | None:
        name = self.request.get("scenario")
        if isinstance(name, str):
            return name
        bench = self.request.get("bench")  # a multi-GPU request nests the bench's
        name = bench.get("scenario") if isinstance(bench, dict) else None
        return name if isinstance(name, str) else None


@dataclass
class Versions(Doc):
    """versions.json: what the run's numbers depend on beyond the hardware."""

    svdops: str | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    torch_cuda: str | None = None
    cudnn: int | str | None = None  # torch reports an integer (91900 is 9.19.0)
    diffusers: str | None = None
    transformers: str | None = None
    accelerate: str | None = None
    driver: str | None = None
    gpu: str | None = None
    nccl: str | None = field(default=None, metadata=OMITTED)  # multi-GPU runs: the NCCL torch was built with
    read_notes: list[str] = field(default_factory=list, metadata=SKIPPED, compare=False, repr=False)

    @classmethod
    def read(cls, data: object, where: str = "versions.json") -> Versions:
        notes: list[str] = []
        doc = cls.from_json(data, where, notes)
        doc.read_notes = notes
        return doc


def check_schema(data: object, where: str, notes: list[str]) -> None:
    """Raise SchemaError for a results document of another major version; note an absent or odd one."""
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema is None:
        if isinstance(data, dict):
            notes.append(f"{where}: no schema; read as {RESULTS_SCHEMA}")
        return
    match = _SCHEMA.match(schema) if isinstance(schema, str) else None
    if match is None:
        notes.append(f"{where}.schema: not a schema name: {_shown(schema)}; read as {RESULTS_SCHEMA}")
        return
    if match["name"] != RESULTS_SCHEMA_NAME:
        raise SchemaError(
            f"not a bench results document (schema {schema!r})",
            where=where,
            hint=f"results.json of a run folder has schema {RESULTS_SCHEMA}",
        )
    if int(match["major"]) != RESULTS_SCHEMA_MAJOR:
        raise SchemaError(
            f"written with schema {schema!r}; this svdops reads {RESULTS_SCHEMA}",
            where=where,
            hint="read it with the svdops version that wrote it (versions.json names it), or upgrade svdops",
        )


# --- reading the files -------------------------------------------------------------------------------


def read_file_bytes(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_RUN_FILE_BYTES, follow_symlinks: bool = False
) -> bytes | None:
    """The bytes of a regular file of at most `max_bytes`, or None when there is no such file.

    Anything else is a BadInputError naming the file and why: a folder, a FIFO or a device (reading
    one blocks or never ends), a symbolic link (not followed unless `follow_symlinks`: a run folder's
    files are the run's own, never a link out of the store), a file past the cap, an unreadable one.
    The file is opened first and judged on what was opened, so it cannot be swapped in between.
    """
    where = str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise BadInputError("a symbolic link to nothing", where=where) from None
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInputError(
                "a symbolic link; run files are read only from the run folder itself", where=where
            ) from None
        raise BadInputError(f"cannot open: {exc.strerror or exc}", where=where) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadInputError(f"{_file_kind(info.st_mode)}, not a file", where=where)
        if info.st_size > max_bytes:
            raise BadInputError(
                f"{info.st_size:,} bytes: larger than the {max_bytes // 2**20} MiB a run file may be",
                where=where,
            )
        chunks = []
        left = max_bytes + 1  # a file that grows while it is read is still cut at the cap
        while left > 0:
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise BadInputError(f"cannot read: {exc.strerror or exc}", where=where) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise BadInputError(f"grew past the {max_bytes // 2**20} MiB a run file may be while read", where=where)
    return data


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_json_file(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_RUN_FILE_BYTES, follow_symlinks: bool = False
) -> Any:
    """A JSON file parsed (None when absent); anything that is not UTF-8 JSON is a BadInputError saying
    what it is instead: bytes that are not UTF-8, a syntax error with its line, nesting past Python's
    limit, an integer of thousands of digits."""
    data = read_file_bytes(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks)
    if data is None:
        return None
    name = Path(path).name
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): {name} is written as UTF-8 JSON",
            where=str(path),
        ) from None
    try:
        return json.loads(text.removeprefix("\ufeff"))  # an editor's byte-order mark is not damage
    except json.JSONDecodeError as exc:
        raise BadInputError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", where=str(path)) from None
    except RecursionError:
        raise BadInputError("nested too deeply to be an svdops document", where=str(path)) from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise BadInputError(f"not readable JSON: {exc}", where=str(path)) from None


# --- burn-in (svdops burnin) ---------------------------------------------------------------------

BURNIN_SCHEMA_NAME = "svdops.burnin"
BURNIN_SCHEMA_MAJOR = 1
BURNIN_SCHEMA = f"{BURNIN_SCHEMA_NAME}/{BURNIN_SCHEMA_MAJOR}"
BURNIN_FILE = "burnin.json"
CHECK_STATUSES = ("pass", "warn", "fail", "skip")


@dataclass
class BurnCheck(Doc):
    """One finding of a burn-in: a DCGM test on one GPU (DCGM's own test name), or one svdops measurement."""

    name: str | None = field(default=None, metadata=REQUIRED)  # "memory", "pcie" (DCGM) | "matmul", "h2d", ...
    source: str | None = None  # dcgm | svdops
    category: str | None = None  # DCGM's category (Deployment, Hardware, ...) or the svdops test
    gpu: int | None = None  # None: the whole host
    peer: int | None = field(default=None, metadata=OMITTED)  # the other GPU of a peer-to-peer pair
    status: str | None = field(default=None, metadata=REQUIRED)  # pass | warn | fail | skip
    detail: str | None = None  # DCGM's warning/info text, or what svdops measured in words
    figures: dict[str, Any] | None = None  # numbers measured (GB/s, MHz, mismatches, ...)


@dataclass
class BurnIn(Doc):
    """burnin.json: what a burn-in ran and found. Rewritten after every finished test, so an
    interrupted run keeps what finished."""

    schema: str | None = BURNIN_SCHEMA
    status: str | None = field(default=None, metadata=REQUIRED)  # ok | failed | interrupted | running
    mode: str | None = None  # dcgm | burn
    dcgm_level: int | None = None
    dcgm_version: str | None = None
    duration_s: float | None = None  # the matmul burn's requested length
    gpus: list[int] = field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None
    tests_finished: list[str] = field(default_factory=list)
    tests_not_run: list[str] = field(default_factory=list)
    checks: list[BurnCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    read_notes: list[str] = field(default_factory=list, metadata=SKIPPED, compare=False, repr=False)

    @classmethod
    def read(cls, data: object, where: str = BURNIN_FILE) -> BurnIn:
        """Read a parsed burnin.json; a schema of another name or major version raises SchemaError."""
        notes: list[str] = []
        schema = data.get("schema") if isinstance(data, dict) else None
        match = _SCHEMA.match(schema) if isinstance(schema, str) else None
        if match is not None and (match["name"] != BURNIN_SCHEMA_NAME or int(match["major"]) != BURNIN_SCHEMA_MAJOR):
            raise SchemaError(
                f"written with schema {schema!r}; this svdops reads {BURNIN_SCHEMA}",
                where=where,
                hint="read it with the svdops version that wrote it, or upgrade svdops",
            )
        if isinstance(data, dict) and match is None:
            notes.append(f"{where}: no schema; read as {BURNIN_SCHEMA}")
        doc = cls.from_json(data, where, notes)
        doc.read_notes = notes
        return doc

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status, every status present (0 where none)."""
        counted = {status: 0 for status in CHECK_STATUSES}
        for check in self.checks:
            if check.status in counted:
                counted[check.status] += 1
        return counted
