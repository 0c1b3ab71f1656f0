"""The versioned compatibility knowledge the rules use: typed accessors over the YAML files beside this.

Every row in the data files carries a `source:` (a URL or a document title) and every file a
`version:`. Lookups that find nothing raise `UnknownKnowledgeError` (a LookupError) with what was
asked for; the `find_*` variants return None instead, for callers such as the rules that must not raise.
The files are read once per process.

The knowledge never stretches past what it holds: a version newer than its newest row (a CUDA minor,
a driver branch, a torch, diffusers or transformers release) is unknown, not judged by the row
below it, and `newer_than_knowledge` says so with the "as of" date and how to refresh.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from svdops.scenarios import load_shipped_yaml, scenario_values, scenarios_document
from svdops.versions import Version, parse_version

FILES = ("cuda.yaml", "torch.yaml", "libraries.yaml", "gpus.yaml")  # scenarios: svdops/data/scenarios.yaml

REFRESH_HINT = ("upgrade svdops (pip install -U svdops) or run `svdops knowledge refresh --online` for newer "
                "knowledge, or add the rows with their sources to svdops/judge/knowledge/*.yaml")


class UnknownKnowledgeError(LookupError):
    """The knowledge base has no row for what was asked."""


class KnowledgeDataError(RuntimeError):
    """A data file in the package is malformed: a bug in svdops, caught by the tests."""


# --- typed rows -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriverRequirement:
    """What a CUDA toolkit (or a wheel built with it) needs from the Linux driver."""

    cuda: Version
    min_driver_ga: Version  # the toolkit's own minimum: every feature, PTX JIT included
    min_driver_compat: Version  # minor-version compatibility floor of the CUDA major family
    source: str

    def level(self, driver: Version) -> str:
        """'full' (driver >= GA minimum), 'compat' (minor-version compatibility only) or 'none'."""
        if driver >= self.min_driver_ga:
            return "full"
        if driver >= self.min_driver_compat:
            return "compat"
        return "none"


@dataclass(frozen=True)
class TorchRelease:
    version: Version  # major.minor
    cuda_variants: tuple[Version, ...]
    python_min: Version
    python_max: Version
    source: str

    def supports_python(self, python: Version) -> bool:
        short = python.truncate(2)
        return self.python_min <= short <= self.python_max


@dataclass(frozen=True)
class LibraryRequirement:
    name: str
    version: Version  # holds from this version up to the next row
    min_python: Version
    min_torch: Version | None
    source: str


@dataclass(frozen=True)
class SvdPipeline:
    diffusers_min: Version  # first diffusers with StableVideoDiffusionPipeline
    reference_diffusers: Version  # today's pipeline
    reference_python: Version  # what the reference host runs: the target when a stack is rebuilt
    reference_torch: Version
    source: str


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    needs_gpu: bool
    peak_allocated_gib: float
    peak_reserved_gib: float | None
    min_vram_gib: float
    source: str


@dataclass(frozen=True)
class GpuSpec:
    name: str
    names: tuple[str, ...]  # nvidia-smi product names
    arch: str
    compute_capability: Version
    memory_gb: float
    memory_bandwidth_gbps: float
    fp16_tflops: float  # dense tensor peak, FP32 accumulate
    bf16_tflops: float | None
    nvlink_gen: int | None
    form_factor: str
    source: str
    # For `svdops plan`; each has its own entry in `field_sources` (field -> where the figure is from).
    fp8_tflops: float | None = None  # dense, FP32 accumulate where the card halves it (GeForce)
    power_w: float | None = None  # board power limit (TDP / TBP) at default settings
    pcie_gen: int | None = None
    nvlink_gbps: float | None = None  # total bidirectional NVLink bandwidth per GPU
    price_usd_per_hour: float | None = None  # an editable default; `svdops plan --price` overrides it
    field_sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class GpuGeneration:
    """A family of GPU product names and the compute capability they share."""

    match: re.Pattern[str]
    compute_capability: Version
    arch: str
    source: str


@dataclass(frozen=True)
class ArchSupport:
    cuda_major: int
    min_cc: Version
    dropped: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class DriverBranch:
    branch: int
    kind: str  # "ltsb", "production", "new-feature" or "legacy"
    eol: datetime.date | None  # first day of the month NVIDIA ends it; None: no date announced
    open: bool
    min_cc: Version  # the oldest GPU generation it still drives
    source: str

    @property
    def label(self) -> str:
        kind = {"ltsb": "long-term support branch", "production": "production branch",
                "new-feature": "new feature branch", "legacy": "legacy branch"}[self.kind]
        return f"R{self.branch} ({kind}" + (f", end of life {self.eol:%B %Y})" if self.eol else ")")

    def ended(self, today: datetime.date) -> bool:
        return self.eol is not None and today >= self.eol

    def drives(self, cc: Version | None) -> bool:
        """Whether the branch drives a GPU of this compute capability (unknown: assumed, the caller warns)."""
        return cc is None or cc >= self.min_cc


@dataclass(frozen=True)
class Knowledge:
    versions: Mapping[str, str]  # file -> its version
    as_of: datetime.date  # the day the whole base was last checked against upstream
    toolkit_drivers: tuple[tuple[Version, Version, str], ...]  # (cuda, min driver, source), newest first
    minor_compat: Mapping[int, tuple[Version, str]]
    arch_support: tuple[ArchSupport, ...]
    driver_branches: tuple[DriverBranch, ...]
    open_module_min_cc: Version
    open_module_required_cc: Version
    open_module_required_names: tuple[str, ...]
    torch_index_url: str
    torch_releases: tuple[TorchRelease, ...]  # newest first
    arch_lists: tuple[tuple[tuple[Version, ...], Version, tuple[str, ...], str], ...]
    libraries: tuple[LibraryRequirement, ...]
    svd_pipeline: SvdPipeline
    scenarios: Mapping[str, Scenario]
    gpus: tuple[GpuSpec, ...]
    gpu_generations: tuple[GpuGeneration, ...] = ()


# --- loading -----------------------------------------------------------------------------------

def _read(name: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data = load_shipped_yaml(text)
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise KnowledgeDataError(f"{name}: expected a mapping with a string `version:`")
    return data


def _rows(data: Mapping[str, Any], key: str, file: str) -> list[dict[str, Any]]:
    rows = data.get(key)
    if not isinstance(rows, list):
        raise KnowledgeDataError(f"{file}: {key}: expected a list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("source"), str) or not row["source"].strip():
            raise KnowledgeDataError(f"{file}: {key}[{i}]: every row needs a `source:`")
    return rows


def _v(value: Any, where: str) -> Version:
    # versions are strings in the data files: a YAML float would turn 12.10 into 12.1
    if not isinstance(value, str | int):
        raise KnowledgeDataError(f"{where}: expected a version string, got {value!r}")
    found = parse_version(str(value))
    if found is None:
        raise KnowledgeDataError(f"{where}: not a version: {value!r}")
    return found


def _month(value: Any, where: str) -> datetime.date | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(value))
    if not match:
        raise KnowledgeDataError(f"{where}: expected a month 'YYYY-MM' or null, got {value!r}")
    return datetime.date(int(match[1]), int(match[2]), 1)


def _day(value: Any, where: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise KnowledgeDataError(f"{where}: expected a date 'YYYY-MM-DD', got {value!r}") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _scenario(name: str) -> Scenario:
    """A scenario's memory needs from the one registry (svdops/data/scenarios.yaml), sourced like every row."""
    values = scenario_values(name)
    memory = values.get("memory")
    where = f"svdops/data/scenarios.yaml: scenarios.{name}.memory"
    if not isinstance(memory, dict) or not isinstance(memory.get("source"), str) or not memory["source"].strip():
        raise KnowledgeDataError(f"{where}: every scenario needs a `memory:` block with a `source:`")
    try:
        return Scenario(name, str(values.get("description", "")), bool(values["needs_gpu"]),
                        float(memory["peak_allocated_gib"]), _opt_float(memory.get("peak_reserved_gib")),
                        float(memory["min_vram_gib"]), memory["source"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KnowledgeDataError(f"{where}: {type(exc).__name__}: {exc}") from None


def _load() -> Knowledge:
    cuda = _read("cuda.yaml")
    torch = _read("torch.yaml")
    libs = _read("libraries.yaml")
    scen = scenarios_document()
    gpus = _read("gpus.yaml")
    versions = {"cuda.yaml": cuda["version"], "torch.yaml": torch["version"], "libraries.yaml": libs["version"],
                "scenarios.yaml": scen["version"], "gpus.yaml": gpus["version"]}

    toolkit = sorted(
        ((_v(r["cuda"], "cuda.yaml: toolkit_drivers"), _v(r["min_driver"], "cuda.yaml: toolkit_drivers"), r["source"])
         for r in _rows(cuda, "toolkit_drivers", "cuda.yaml")),
        key=lambda row: row[0], reverse=True,
    )
    compat = {int(r["cuda_major"]): (_v(r["min_driver"], "cuda.yaml: minor_version_compat"), str(r["source"]))
              for r in _rows(cuda, "minor_version_compat", "cuda.yaml")}
    arch_support = tuple(
        ArchSupport(int(r["cuda_major"]), _v(r["min_cc"], "cuda.yaml: arch_support"), tuple(r["dropped"]), r["source"])
        for r in _rows(cuda, "arch_support", "cuda.yaml")
    )
    branches = tuple(sorted(
        (DriverBranch(int(r["branch"]), str(r["kind"]), _month(r.get("eol"), "cuda.yaml: driver_branches.eol"),
                      bool(r["open"]), _v(r["min_cc"], "cuda.yaml: driver_branches.min_cc"), r["source"])
         for r in _rows(cuda, "driver_branches", "cuda.yaml")),
        key=lambda b: b.branch,
    ))
    open_module = cuda.get("open_module")
    if not isinstance(open_module, dict) or not open_module.get("source"):
        raise KnowledgeDataError("cuda.yaml: open_module needs min_cc, required_from_cc and source")
    kinds = {b.kind for b in branches} - {"ltsb", "production", "new-feature", "legacy"}
    if kinds:
        raise KnowledgeDataError(f"cuda.yaml: driver_branches: unknown kind {sorted(kinds)}")

    releases = tuple(sorted(
        (TorchRelease(
            _v(r["torch"], "torch.yaml: releases"),
            tuple(_v(c, "torch.yaml: releases.cuda") for c in r["cuda"]),
            _v(r["python_min"], "torch.yaml: releases"),
            _v(r["python_max"], "torch.yaml: releases"),
            r["source"],
        ) for r in _rows(torch, "releases", "torch.yaml")),
        key=lambda rel: rel.version, reverse=True,
    ))
    arch_lists = tuple(
        (tuple(_v(t, "torch.yaml: arch_lists") for t in r["torch"]), _v(r["cuda"], "torch.yaml: arch_lists"),
         tuple(str(a) for a in r["archs"]), str(r["source"]))
        for r in _rows(torch, "arch_lists", "torch.yaml")
    )

    libraries = tuple(
        LibraryRequirement(
            str(r["name"]), _v(r["version"], "libraries.yaml"), _v(r["min_python"], "libraries.yaml"),
            None if r.get("min_torch") is None else _v(r["min_torch"], "libraries.yaml"), r["source"],
        )
        for r in _rows(libs, "libraries", "libraries.yaml")
    )
    pipe = libs.get("svd_pipeline")
    if not isinstance(pipe, dict) or not pipe.get("source"):
        raise KnowledgeDataError("libraries.yaml: svd_pipeline needs diffusers_min, reference_* and source")

    scenarios = {name: _scenario(name) for name in scen["scenarios"]}
    gpu_specs = tuple(
        GpuSpec(
            str(r["name"]), tuple(str(n) for n in r["names"]), str(r["arch"]),
            _v(r["compute_capability"], "gpus.yaml"), float(r["memory_gb"]), float(r["memory_bandwidth_gbps"]),
            float(r["fp16_tflops"]), _opt_float(r.get("bf16_tflops")),
            None if r.get("nvlink_gen") is None else int(r["nvlink_gen"]), str(r["form_factor"]), r["source"],
            fp8_tflops=_opt_float(r.get("fp8_tflops")), power_w=_opt_float(r.get("power_w")),
            pcie_gen=None if r.get("pcie_gen") is None else int(r["pcie_gen"]),
            nvlink_gbps=_opt_float(r.get("nvlink_gbps")), price_usd_per_hour=_opt_float(r.get("price_usd_per_hour")),
            field_sources={str(k): str(v) for k, v in (r.get("field_sources") or {}).items()},
        )
        for r in _rows(gpus, "gpus", "gpus.yaml")
    )
    generations = []
    for i, r in enumerate(_rows(gpus, "compute_capability_by_name", "gpus.yaml")):
        try:
            pattern = re.compile(str(r["match"]), re.IGNORECASE)
        except re.error as exc:
            raise KnowledgeDataError(f"gpus.yaml: compute_capability_by_name[{i}]: bad match: {exc}") from None
        generations.append(GpuGeneration(pattern, _v(r["cc"], "gpus.yaml: compute_capability_by_name"),
                                         str(r["arch"]), r["source"]))
    return Knowledge(
        versions=versions,
        as_of=_day(cuda.get("as_of"), "cuda.yaml: as_of"),
        toolkit_drivers=tuple(toolkit),
        minor_compat=compat,
        arch_support=arch_support,
        driver_branches=branches,
        open_module_min_cc=_v(open_module["min_cc"], "cuda.yaml: open_module"),
        open_module_required_cc=_v(open_module["required_from_cc"], "cuda.yaml: open_module"),
        open_module_required_names=tuple(str(n) for n in open_module.get("required_names") or ()),
        torch_index_url=str(torch.get("index_url", "https://download.pytorch.org/whl")).rstrip("/"),
        torch_releases=releases,
        arch_lists=arch_lists,
        libraries=libraries,
        svd_pipeline=SvdPipeline(
            _v(pipe["diffusers_min"], "libraries.yaml: svd_pipeline"),
            _v(pipe["reference_diffusers"], "libraries.yaml: svd_pipeline"),
            _v(pipe["reference_python"], "libraries.yaml: svd_pipeline"),
            _v(pipe["reference_torch"], "libraries.yaml: svd_pipeline"), str(pipe["source"]),
        ),
        scenarios=scenarios,
        gpus=gpu_specs,
        gpu_generations=tuple(generations),
    )


@functools.cache
def knowledge() -> Knowledge:
    """The whole knowledge base, parsed and checked once."""
    return _load()


def version() -> str:
    """One string naming the data version of every file, for reports ('cuda.yaml=2026.11.1 ...')."""
    return " ".join(f"{name}={ver}" for name, ver in sorted(knowledge().versions.items()))


def knowledge_as_of() -> str:
    """The day (ISO) the knowledge was last checked against upstream: for --version, documents, JUnit."""
    return knowledge().as_of.isoformat()


def newer_than_knowledge(what: str) -> str:
    """The words every rule uses for a version past the newest row: never a pass, always how to refresh."""
    return f"{what} is newer than svdops's knowledge (as of {knowledge_as_of()}): {REFRESH_HINT}"


def day_of(timestamp: str | None) -> datetime.date:
    """The date of an ISO 8601 timestamp (when facts were collected), else the knowledge's own date."""
    try:
        return datetime.date.fromisoformat((timestamp or "")[:10])
    except ValueError:
        return knowledge().as_of


# --- CUDA and the driver ------------------------------------------------------------------------

def min_driver_for_cuda(cuda: Version) -> DriverRequirement:
    """The driver a CUDA toolkit (or a wheel built with it) needs: GA minimum and minor-compat floor.

    Only a minor with its own row answers: a newer one may need a newer branch (13.2 needs R595 where
    13.0 needed R580), so the row below it says nothing about it.
    """
    kb = knowledge()
    short = cuda.truncate(2)
    row = next((r for r in kb.toolkit_drivers if r[0] == short), None)
    if row is None:
        newer = " (newer than svdops's knowledge, as of " + knowledge_as_of() + ")" if cuda_is_newer(short) else ""
        raise UnknownKnowledgeError(f"no driver data for CUDA {cuda}{newer} (knowledge {version()})")
    compat_min, compat_src = kb.minor_compat.get(short.major, (row[1], row[2]))
    return DriverRequirement(short, row[1], compat_min, f"{row[2]}; {compat_src}")


def cuda_is_newer(cuda: Version) -> bool:
    """Whether a CUDA version is past the newest toolkit the knowledge holds."""
    return cuda.truncate(2) > knowledge().toolkit_drivers[0][0]


def find_min_driver_for_cuda(cuda: Version) -> DriverRequirement | None:
    try:
        return min_driver_for_cuda(cuda)
    except UnknownKnowledgeError:
        return None


def known_cuda_versions() -> tuple[Version, ...]:
    """Toolkit versions with driver data, newest first."""
    return tuple(row[0] for row in knowledge().toolkit_drivers)


def arch_support(cuda_major: int) -> ArchSupport | None:
    return next((a for a in knowledge().arch_support if a.cuda_major == cuda_major), None)


def driver_branch(branch: int) -> DriverBranch | None:
    return next((b for b in knowledge().driver_branches if b.branch == branch), None)


def newest_driver_branch() -> DriverBranch:
    return knowledge().driver_branches[-1]


def supported_branches(today: datetime.date | None = None) -> tuple[DriverBranch, ...]:
    """Branches NVIDIA still supports and that a fleet standardises on (LTSB, production), oldest first."""
    day = today or knowledge().as_of
    return tuple(b for b in knowledge().driver_branches
                 if b.kind in ("ltsb", "production") and not b.ended(day))


def driver_branch_for(min_driver: Version, *, want_open: bool, compute_capabilities: tuple[Version, ...] = (),
                      today: datetime.date | None = None) -> DriverBranch | None:
    """The lowest supported branch that satisfies `min_driver` and drives every GPU (an -open one if
    wanted); an ended branch never, a new-feature branch only when no LTSB or production branch reaches."""
    day = today or knowledge().as_of
    candidates = [b for b in knowledge().driver_branches
                  if not b.ended(day) and (b.open or not want_open)
                  and all(b.drives(cc) for cc in compute_capabilities)
                  and Version((b.branch, 999, 999)) >= min_driver]
    stable = [b for b in candidates if b.kind in ("ltsb", "production")]
    fallback = [b for b in candidates if b.kind == "new-feature"]
    return (stable or fallback)[0] if stable or fallback else None


def can_use_open_modules(cc: Version | None) -> bool:
    """Open kernel modules run on Turing and later; an unknown GPU gets no open-module advice."""
    return cc is not None and cc >= knowledge().open_module_min_cc


def requires_open_modules(cc: Version | None, gpu_name: str = "") -> bool:
    """Blackwell (by compute capability) and Grace Hopper (a GH200, by name) run on the open modules only."""
    kb = knowledge()
    if cc is not None and cc >= kb.open_module_required_cc:
        return True
    name = gpu_name.lower()
    return any(n.lower() in name for n in kb.open_module_required_names)


def driver_package(min_driver: Version, compute_capabilities: tuple[Version | None, ...] = (),
                   today: datetime.date | None = None, gpu_names: tuple[str, ...] = ()) -> str | None:
    """The apt package that brings a driver >= min_driver from a supported branch: the open flavour
    only where every GPU is known to run it, and always where one needs it."""
    known = tuple(cc for cc in compute_capabilities if cc is not None)
    need_open = any(requires_open_modules(cc) for cc in known) or any(requires_open_modules(None, n)
                                                                        for n in gpu_names)
    want_open = need_open or (bool(compute_capabilities) and all(can_use_open_modules(cc)
                                                                  for cc in compute_capabilities))
    branch = driver_branch_for(min_driver, want_open=want_open, compute_capabilities=known, today=today)
    if branch is None:
        return None
    return f"nvidia-driver-{branch.branch}" + ("-open" if want_open else "")


def open_module_min_cc() -> Version:
    return knowledge().open_module_min_cc


def open_module_required_cc() -> Version:
    return knowledge().open_module_required_cc


# --- PyTorch ----------------------------------------------------------------------------------------

def torch_release(torch: Version) -> TorchRelease:
    """The release row (major.minor) of a torch version: its wheel CUDA variants and Python range."""
    short = torch.truncate(2)
    for release in knowledge().torch_releases:
        if release.version == short:
            return release
    raise UnknownKnowledgeError(f"no data for PyTorch {short} (knowledge {version()})")


def find_torch_release(torch: Version) -> TorchRelease | None:
    try:
        return torch_release(torch)
    except UnknownKnowledgeError:
        return None


def torch_releases() -> tuple[TorchRelease, ...]:
    """Every known release, newest first."""
    return knowledge().torch_releases


def torch_arch_list(torch: Version, cuda: Version) -> tuple[str, ...] | None:
    """The sm_XY list a torch build for this CUDA carries, where the knowledge base has it."""
    short, cuda_short = torch.truncate(2), cuda.truncate(2)
    for releases, row_cuda, archs, _source in knowledge().arch_lists:
        if short in releases and row_cuda == cuda_short:
            return archs
    return None


def torch_is_newer(torch: Version) -> bool:
    """Whether a torch release is past the newest one the knowledge holds."""
    return torch.truncate(2) > knowledge().torch_releases[0].version


def torch_index_url(cuda: Version | None) -> str:
    """download.pytorch.org index of a CUDA variant (cu130) or of the CPU build (None)."""
    base = knowledge().torch_index_url
    if cuda is None:
        return f"{base}/cpu"
    return f"{base}/{cuda_tag(cuda)}"


def cuda_tag(cuda: Version) -> str:
    """13.0 -> 'cu130', 12.8 -> 'cu128', 11.3 -> 'cu113'."""
    return f"cu{cuda.major}{cuda.minor}"


_ARCH_RE = re.compile(r"^(sm|compute)_(\d+?)(\d)([a-z]?)$")


def arch_runs_on(arch_list: tuple[str, ...], cc: Version) -> bool:
    """Whether a build with these archs has code a GPU of compute capability `cc` can run.

    A cubin for sm_XY runs on X.z for z >= Y (same major); compute_XY PTX JITs onto any cc >= X.Y;
    arch-specific cubins (sm_90a, sm_100f) run only on their exact cc.
    """
    for entry in arch_list:
        match = _ARCH_RE.match(entry.strip().lower())
        if not match:
            continue
        kind, major_txt, minor_txt, suffix = match.groups()
        arch = Version((int(major_txt), int(minor_txt)))
        if kind == "compute":
            if cc >= arch:
                return True
        elif suffix:
            if cc.truncate(2) == arch:
                return True
        elif arch.major == cc.major and arch.minor <= cc.minor:
            return True
    return False


# --- Python libraries ---------------------------------------------------------------------------------

def library_requirements(name: str, lib_version: Version) -> LibraryRequirement:
    """What `name` at `lib_version` needs (Python, torch): the newest row at or below that version.

    A release past the newest row is unknown: its metadata may raise either minimum.
    """
    rows = sorted((r for r in knowledge().libraries if r.name == name.lower()), key=lambda r: r.version, reverse=True)
    if not rows:
        raise UnknownKnowledgeError(f"no data for library {name!r} (knowledge {version()})")
    if library_is_newer(name, lib_version):
        raise UnknownKnowledgeError(f"no data for {name} {lib_version}: newer than svdops's knowledge "
                                    f"(as of {knowledge_as_of()}, newest {rows[0].version})")
    for row in rows:
        if row.version <= lib_version:
            return row
    raise UnknownKnowledgeError(f"no data for {name} {lib_version}: the oldest row is {rows[-1].version}")


def find_library_requirements(name: str, lib_version: Version) -> LibraryRequirement | None:
    try:
        return library_requirements(name, lib_version)
    except UnknownKnowledgeError:
        return None


def library_is_newer(name: str, lib_version: Version) -> bool:
    """Whether a library release (major.minor) is past the newest row the knowledge holds for it."""
    rows = [r.version for r in knowledge().libraries if r.name == name.lower()]
    return bool(rows) and lib_version.truncate(2) > max(rows).truncate(2)


def svd_pipeline() -> SvdPipeline:
    return knowledge().svd_pipeline


def reference_pipeline_requirements() -> LibraryRequirement:
    """What today's SVD pipeline (the reference diffusers release) needs from Python and torch."""
    return library_requirements("diffusers", svd_pipeline().reference_diffusers)


# --- SVD scenarios ----------------------------------------------------------------------------------

def scenario(name: str) -> Scenario:
    found = knowledge().scenarios.get(name)
    if found is None:
        raise UnknownKnowledgeError(f"unknown SVD scenario {name!r}; known: {', '.join(scenario_names())}")
    return found


def scenario_names() -> tuple[str, ...]:
    return tuple(knowledge().scenarios)


def scenario_vram_gib(name: str) -> float:
    """GPU memory (GiB) one GPU needs to run the scenario; 0 for a CPU-only scenario."""
    return scenario(name).min_vram_gib


# --- GPUs -----------------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    text = " ".join(name.lower().replace("_", " ").split())
    for prefix in ("nvidia ", "tesla ", "geforce "):
        text = text.removeprefix(prefix)
    return text


def find_gpu_spec(name: str) -> GpuSpec | None:
    """The spec of a GPU by its nvidia-smi product name (or the table's short name), else None."""
    wanted = _norm(name)
    for spec in knowledge().gpus:
        if wanted == _norm(spec.name) or any(wanted == _norm(n) for n in spec.names):
            return spec
    return None


def compute_capability_of(name: str) -> Version | None:
    """A GPU's compute capability from its product name (Kepler to Blackwell), else None: for drivers
    that do not report it. A name the knowledge does not hold stays unknown, never guessed."""
    spec = find_gpu_spec(name)
    if spec is not None:
        return spec.compute_capability
    generation = next((g for g in knowledge().gpu_generations if g.match.search(name)), None)
    return generation.compute_capability if generation is not None else None


def gpu_spec(name: str) -> GpuSpec:
    """Like find_gpu_spec, but an unknown name raises UnknownKnowledgeError naming the known ones."""
    spec = find_gpu_spec(name)
    if spec is None:
        known = ", ".join(s.name for s in knowledge().gpus)
        raise UnknownKnowledgeError(f"no spec for GPU {name!r}; known: {known}")
    return spec


def gpu_specs() -> tuple[GpuSpec, ...]:
    return knowledge().gpus
