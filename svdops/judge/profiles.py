"""Profiles: YAML files saying what a machine of a given role must have. Loaded, merged, validated.

A profile is found by name in, in order: the directories of $SVDOPS_PROFILE_PATH (os.pathsep-separated),
~/.config/svdops/profiles ($XDG_CONFIG_HOME), then the profiles the package ships (the repository's
top-level `profiles/`); `svdops paths` shows them. A value given as a path (contains a slash or ends in
.yaml/.yml) is read as that file.

`extends: NAME` starts from another profile (looked up beside the file first, then as above); the
child's keys override, sections merge key by key, and `null` clears an inherited requirement.
Every key absent (or null) means "not checked". `optional: [check.id, ...]` names checks whose
"could not look" is a skip rather than an unknown (which fails the check).

Every problem raises ProfileError with `where` = "FILE: key.path" (or "FILE: line N" for YAML syntax)
and a message saying what was expected; unknown keys are errors with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from svdops import paths
from svdops.errors import ProfileError
from svdops.findings import CHECK_IDS
from svdops.judge import knowledge
from svdops.versions import Version, parse_version

DEFAULT_PROFILE = "svd-host"
PROFILE_PATH_ENV = paths.PROFILE_PATH_ENV
RAID_LEVELS = ("raid0", "raid1", "raid5", "raid6", "raid10")


# --- version specifications ---------------------------------------------------------------------

_CLAUSE_RE = re.compile(r"^(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)(\.\*)?$")


@dataclass(frozen=True)
class VersionSpec:
    """'>=2.6', '3.8' (any 3.8.x), '>=12.0,<13', '*' (any version, but present).

    A bare version or '==' matches by prefix: '11.3' accepts 11.3.1; '3.8' accepts 3.8.10.
    """

    text: str
    clauses: tuple[tuple[str, Version], ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionSpec:
        text = text.strip()
        if text in ("*", "any"):
            return cls("*", ())
        clauses = []
        for part in text.split(","):
            match = _CLAUSE_RE.match(part.strip())
            if not match:
                raise ValueError(f"not a version requirement: {part.strip()!r}")
            op, number, _star = match.groups()
            clauses.append((op or "==", Version.parse(number)))
        return cls(text, tuple(clauses))

    def contains(self, version: Version) -> bool:
        return all(_clause_holds(op, bound, version) for op, bound in self.clauses)

    @property
    def minimum(self) -> Version | None:
        """The lowest version the spec admits, where it has one (for hints: install at least this)."""
        lows = [bound for op, bound in self.clauses if op in (">=", ">", "==")]
        return max(lows) if lows else None

    @property
    def pinned(self) -> Version | None:
        """The version a single '==' or bare clause names."""
        if len(self.clauses) == 1 and self.clauses[0][0] == "==":
            return self.clauses[0][1]
        return None

    @property
    def is_any(self) -> bool:
        return not self.clauses

    def __str__(self) -> str:
        return "any version" if self.is_any else self.text


def _clause_holds(op: str, bound: Version, version: Version) -> bool:
    if op == "==":
        return version.truncate(len(bound.parts)) == bound
    if op == "!=":
        return version.truncate(len(bound.parts)) != bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    return version < bound


# --- the profile ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OsRequirements:
    id: str | None = None  # "ubuntu"
    releases: tuple[str, ...] = ()  # VERSION_ID values: "20.04", "24.04"


@dataclass(frozen=True)
class DriverRequirements:
    version: VersionSpec | None = None
    flavor: str | None = None  # "open" | "proprietary"
    persistence_mode: bool = True  # warn when off


@dataclass(frozen=True)
class CudaRequirements:
    toolkit: VersionSpec | None = None  # nvcc
    cudnn: VersionSpec | None = None  # system libcudnn
    nccl: VersionSpec | None = None  # system libnccl; VersionSpec('*') when only presence is required


@dataclass(frozen=True)
class PythonRequirements:
    version: VersionSpec | None = None
    env: str | None = None  # "conda" | "venv" | "any"
    torch_cuda: VersionSpec | None = None  # CUDA the torch wheel was built for
    torch_cpu: bool = False  # the CPU-only torch build is expected (CI runners)
    packages: tuple[tuple[str, VersionSpec], ...] = ()  # normalised name -> requirement


@dataclass(frozen=True)
class GpuRequirements:
    min_count: int | None = None
    max_count: int | None = None
    min_vram_gib: float | None = None  # each GPU, as nvidia-smi reports memory.total
    models: tuple[str, ...] = ()  # any of these substrings of the product name
    min_compute_capability: Version | None = None
    nvlink_all_pairs: bool = False  # only judged with 2 or more GPUs
    ecc: bool | None = None


@dataclass(frozen=True)
class RamRequirements:
    min_gib: float | None = None  # installed size; MemTotal reads a few percent lower
    recommended_gib: float | None = None  # below it: warn


@dataclass(frozen=True)
class ScratchRequirements:
    level: str = "raid0"
    nvme: bool = True  # every member an NVMe device
    min_devices: int = 1
    min_size_tb: float | None = None  # decimal TB, as disks are sold


@dataclass(frozen=True)
class DataArrayRequirements:
    levels: tuple[str, ...] = ("raid5", "raid6")
    min_devices: int = 1
    min_size_tb: float | None = None


@dataclass(frozen=True)
class StorageRequirements:
    scratch: ScratchRequirements | None = None
    data: DataArrayRequirements | None = None


@dataclass(frozen=True)
class SvdRequirements:
    scenario: str | None = None  # a scenario in svdops.judge.knowledge (svd-xt-25f, svd-14f, low-vram, tiny)


HEALTH_LEVELS = ("fail", "warn", "off")
HEALTH_SUBJECTS = ("memory", "pcie", "nvlink", "xid", "thermal", "fabric_manager")


@dataclass(frozen=True)
class HealthRequirements:
    """What `svdops check` asks of the GPUs' own health. Each subject is "fail" (its worst findings fail and,
    unless listed in `optional:`, a look that could not be made is unknown), "warn" (its findings warn at
    most and a look that could not be made is skipped) or None (off: not judged)."""

    memory: str | None = None  # ECC counters, row remapping, retired pages
    pcie: str | None = None  # link generation and width against the GPU's and the host's maximums
    nvlink: str | None = None  # links inactive, error counters
    xid: str | None = None  # Xid events since boot in the kernel log
    thermal: str | None = None  # clocks-event reasons and temperature at idle
    fabric_manager: str | None = None  # NVSwitch fabric state where the GPUs report one
    corrected_ecc_warn_at: int = 1  # corrected ECC errors (lifetime) from this count warn; 0: never
    max_retired_pages: int = 60  # retired pages (of the 64 a GPU can retire) from which the GPU is an RMA case
    idle_temp_margin_c: int = 30  # an idle GPU closer than this to its slowdown temperature warns
    # the kernel log (Xid) often needs the adm group or root: unreadable is unknown only when this is true
    require_kernel_log: bool = False

    def level(self, subject: str) -> str | None:
        return getattr(self, subject)  # type: ignore[no-any-return]

    @property
    def judged(self) -> bool:
        return any(self.level(subject) for subject in HEALTH_SUBJECTS)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: Path
    extends: str | None = None
    chain: tuple[Path, ...] = ()  # every file merged, the base first and this one last
    os: OsRequirements = field(default_factory=OsRequirements)
    driver: DriverRequirements = field(default_factory=DriverRequirements)
    cuda: CudaRequirements = field(default_factory=CudaRequirements)
    python: PythonRequirements = field(default_factory=PythonRequirements)
    gpu: GpuRequirements = field(default_factory=GpuRequirements)
    ram: RamRequirements = field(default_factory=RamRequirements)
    storage: StorageRequirements = field(default_factory=StorageRequirements)
    svd: SvdRequirements = field(default_factory=SvdRequirements)
    health: HealthRequirements = field(default_factory=HealthRequirements)
    # check ids this profile does not insist on: one that could not look is skipped, not unknown
    optional: tuple[str, ...] = ()

    def is_optional(self, check_id: str) -> bool:
        return check_id in self.optional

    @property
    def requires_gpu(self) -> bool:
        return (self.gpu.min_count or 0) > 0


# --- where profiles live ----------------------------------------------------------------------------

def search_dirs() -> list[Path]:
    """$SVDOPS_PROFILE_PATH, the user's folder, then the package's profiles (svdops.paths owns the order)."""
    return [place.path for place in paths.profile_places()]


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


def _find_by_name(name: str, first_dir: Path | None = None) -> Path | None:
    dirs = ([first_dir] if first_dir else []) + search_dirs()
    for directory in dirs:
        for ext in (".yaml", ".yml"):
            candidate = directory / f"{name}{ext}"
            if candidate.is_file():
                return candidate
    return None


def _available_names() -> list[str]:
    names: set[str] = set()
    for directory in search_dirs():
        if directory.is_dir():
            names.update(p.stem for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    return sorted(names)


def _resolve(name_or_path: str, *, beside: Path | None = None, where: str | None = None) -> Path:
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if beside is not None and not path.is_absolute():
            path = beside / path
        if not path.is_file():
            raise ProfileError("profile file not found", where=where or str(path),
                               hint="give an existing file, or a profile name from `svdops profiles list`")
        return path
    found = _find_by_name(name_or_path, beside)
    if found is None:
        names = _available_names()
        close = difflib.get_close_matches(name_or_path, names, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        looked = ", ".join(str(d) for d in ([beside] if beside else []) + search_dirs())
        raise ProfileError(
            f"no profile named {name_or_path!r}{suggestion}; looked in: {looked}",
            where=where or name_or_path,
            hint=f"available: {', '.join(names) or 'none'}; or add a directory to ${PROFILE_PATH_ENV}",
        )
    return found


# --- public API -------------------------------------------------------------------------------------

def load_profile(name_or_path: str) -> Profile:
    """Load, merge (extends) and validate one profile; every problem is a ProfileError."""
    path = _resolve(name_or_path)
    merged, chain = _load_chain(path, ())
    return _build(merged, path, chain)


def list_profiles() -> list[Profile]:
    """Every profile found on the search path (the first of a name wins), sorted by name."""
    seen: dict[str, Path] = {}
    for directory in search_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file() and path.stem not in seen:
                seen[path.stem] = path
    return [load_profile(str(seen[name])) for name in sorted(seen)]


# --- reading and merging ----------------------------------------------------------------------------

def _read_yaml(path: Path) -> dict[str, Any]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError("profile file not found", where=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the profile: {exc}", where=file) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark else "unknown line"
        column = f", column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProfileError(f"YAML syntax error at {line}{column}: {problem}", where=f"{file}: {line}",
                           hint="fix the YAML at that line (indentation, a missing ':' or quote)") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"YAML error: {exc}", where=file) from exc
    if data is None:
        raise ProfileError("the file is empty; expected a mapping with at least `description:`",
                           where=f"{file}: (top level)", hint="see profiles/svd-host.yaml for a complete example")
    if not isinstance(data, dict):
        raise ProfileError(f"expected a mapping of sections at the top level, got {_describe(data)}",
                           where=f"{file}: (top level)")
    return data


def _load_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], tuple[Path, ...]]:
    resolved = path.resolve()
    if resolved in seen:
        cycle = " -> ".join(str(p) for p in (*seen, resolved))
        raise ProfileError(f"`extends` makes a cycle: {cycle}", where=f"{path}: extends")
    raw = _read_yaml(path)
    checked = _check_mapping(raw, _TOP, str(path), "")
    parent_name = checked.get("extends")
    if not parent_name:
        return checked, (path,)
    parent_path = _resolve(parent_name, beside=path.parent, where=f"{path}: extends")
    base, chain = _load_chain(parent_path, (*seen, resolved))
    # a child's name/description are its own, never inherited
    base = {k: v for k, v in base.items() if k not in ("name", "description", "extends")}
    return _merge(base, checked), (*chain, path)


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# --- validation -------------------------------------------------------------------------------------

Check = Callable[[Any, str, str], Any]  # (value, file, key path) -> checked value


def _err(file: str, keypath: str, message: str, hint: str | None = None) -> ProfileError:
    return ProfileError(message, where=f"{file}: {keypath}", hint=hint)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _str(value: Any, file: str, keypath: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(file, keypath, f"expected a text value, got {_describe(value)}")
    return value.strip()


def _number(value: Any, file: str, keypath: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _err(file, keypath, f"expected a number, got {_describe(value)}")
    return float(value)


def _count(value: Any, file: str, keypath: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _err(file, keypath, f"expected a whole number (0 or more), got {_describe(value)}")
    return value


def _bool(value: Any, file: str, keypath: str) -> bool:
    if not isinstance(value, bool):
        raise _err(file, keypath, f"expected true or false, got {_describe(value)}")
    return value


_FLOAT_HINT = "write versions in quotes, e.g. '3.10': a bare 3.10 is read by YAML as the number 3.1"


def _version_text(value: Any, file: str, keypath: str) -> str:
    if isinstance(value, float):
        raise _err(file, keypath, f"expected a version in quotes, got the number {value!r}", hint=_FLOAT_HINT)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _err(file, keypath, f"expected a version such as '>=2.6' or '11.3', got {_describe(value)}")
    return str(value)


def _spec(value: Any, file: str, keypath: str) -> VersionSpec:
    text = _version_text(value, file, keypath)
    try:
        return VersionSpec.parse(text)
    except ValueError:
        raise _err(file, keypath, f"expected a version requirement such as '>=2.6', '11.3', '>=12,<13' or '*', "
                                  f"got {text!r}") from None


def _version(value: Any, file: str, keypath: str) -> Version:
    text = _version_text(value, file, keypath)
    found = parse_version(text)
    if found is None or found.text != text.strip():
        raise _err(file, keypath, f"expected a version such as '8.0', got {text!r}")
    return found


def _str_list(value: Any, file: str, keypath: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _err(file, keypath, f"expected a list of text values, got {_describe(value)}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, float):
            raise _err(file, f"{keypath}[{i}]", f"expected text in quotes, got the number {item!r}",
                       hint="quote release numbers: '20.04', not 20.04 (22.10 would read as 22.1)")
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        out.append(_str(item, file, f"{keypath}[{i}]"))
    return tuple(out)


def _choice(*options: str) -> Check:
    def check(value: Any, file: str, keypath: str) -> str:
        if not isinstance(value, str) or value not in options:
            close = difflib.get_close_matches(str(value), options, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise _err(file, keypath, f"expected one of {', '.join(options)}, got {_describe(value)}{suggestion}")
        return value
    return check


def _levels(value: Any, file: str, keypath: str) -> tuple[str, ...]:
    items = _str_list(value, file, keypath)
    for i, item in enumerate(items):
        _choice(*RAID_LEVELS)(item, file, f"{keypath}[{i}]")
    return items


def _scenario(value: Any, file: str, keypath: str) -> str:
    names = knowledge.scenario_names()
    return str(_choice(*names)(value, file, keypath))


def _nccl(value: Any, file: str, keypath: str) -> VersionSpec | None:
    if isinstance(value, bool):
        return VersionSpec.parse("*") if value else None
    return _spec(value, file, keypath)


def _torch_cuda(value: Any, file: str, keypath: str) -> VersionSpec | str:
    if value == "cpu":
        return "cpu"
    return _spec(value, file, keypath)


_PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@functools.lru_cache(maxsize=8192)  # asked for every package of every host, once per rule that looks
def normalise_package(name: str) -> str:
    """PEP 503 form: 'Pillow' -> 'pillow', 'typing_extensions' -> 'typing-extensions'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(value: Any, file: str, keypath: str) -> dict[str, VersionSpec | None]:
    if not isinstance(value, dict):
        raise _err(file, keypath, f"expected a mapping of package name to version requirement "
                                  f"(e.g. torch: '>=2.6'), got {_describe(value)}")
    out: dict[str, VersionSpec | None] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _PACKAGE_RE.match(name):
            raise _err(file, f"{keypath}.{name}", f"expected a package name, got {_describe(name)}")
        # null clears a package an extended profile required
        out[normalise_package(name)] = None if spec is None else _spec(spec, file, f"{keypath}.{name}")
    return out


def _health_level(value: Any, file: str, keypath: str) -> str:
    # YAML 1.1 reads a bare `off` (and `no`, `false`) as false: that means off too
    if value is False:
        return "off"
    if not isinstance(value, str) or value not in HEALTH_LEVELS:
        close = difflib.get_close_matches(str(value), HEALTH_LEVELS, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        raise _err(file, keypath, f"expected fail, warn or off, got {_describe(value)}{suggestion}",
                   hint="fail: its worst findings fail the check; warn: they warn at most; off: not judged")
    return value


def _health_count(most: int) -> Check:
    def check(value: Any, file: str, keypath: str) -> int:
        count = _count(value, file, keypath)
        if count > most:
            raise _err(file, keypath, f"expected at most {most}, got {count}")
        return count
    return check


def _check_ids(value: Any, file: str, keypath: str) -> tuple[str, ...]:
    items = _str_list(value, file, keypath)
    for i, item in enumerate(items):
        if item not in CHECK_IDS:
            close = difflib.get_close_matches(item, CHECK_IDS, n=1, cutoff=0.6)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise _err(file, f"{keypath}[{i}]", f"unknown check id {item!r}{suggestion}",
                       hint=f"check ids: {', '.join(CHECK_IDS)}")
    return items


Schema = Mapping[str, Any]  # key -> Check, or a nested Schema for a sub-section

_TOP: Schema = {
    "name": _str,
    "description": _str,
    "extends": _str,
    "optional": _check_ids,
    "os": {"id": _str, "releases": _str_list},
    "driver": {"version": _spec, "flavor": _choice("open", "proprietary"), "persistence_mode": _bool},
    "cuda": {"toolkit": _spec, "cudnn": _spec, "nccl": _nccl},
    "python": {"version": _spec, "env": _choice("conda", "venv", "any"), "torch_cuda": _torch_cuda,
               "packages": _packages},
    "gpu": {"min_count": _count, "max_count": _count, "min_vram_gib": _number, "models": _str_list,
            "min_compute_capability": _version, "nvlink_all_pairs": _bool, "ecc": _bool},
    "ram": {"min_gib": _number, "recommended_gib": _number},
    "storage": {
        "scratch": {"level": _choice(*RAID_LEVELS), "nvme": _bool, "min_devices": _count, "min_size_tb": _number},
        "data": {"levels": _levels, "min_devices": _count, "min_size_tb": _number},
    },
    "svd": {"scenario": _scenario},
    "health": {
        **dict.fromkeys(HEALTH_SUBJECTS, _health_level),
        "corrected_ecc_warn_at": _count, "max_retired_pages": _health_count(64),
        "idle_temp_margin_c": _health_count(150), "require_kernel_log": _bool,
    },
}


def _check_mapping(value: Any, schema: Schema, file: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        keys = ", ".join(schema)
        raise _err(file, path or "(top level)", f"expected a mapping with keys from: {keys}; got {_describe(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        keypath = f"{path}.{key}" if path else str(key)
        if not isinstance(key, str) or key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise _err(file, keypath, f"unknown key {key!r}{suggestion} (allowed here: {', '.join(schema)})")
        rule = schema[key]
        if item is None:
            out[key] = None  # "not checked"; in a child profile it clears what the base required
        elif isinstance(rule, Mapping):
            out[key] = _check_mapping(item, rule, file, keypath)
        else:
            out[key] = rule(item, file, keypath)
    return out


# --- building the typed profile ---------------------------------------------------------------------

def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _health(health: Mapping[str, Any]) -> HealthRequirements:
    levels: dict[str, Any] = {subject: None if health.get(subject) in (None, "off") else health[subject]
                              for subject in HEALTH_SUBJECTS}
    limits: dict[str, Any] = {key: health[key] for key in ("corrected_ecc_warn_at", "max_retired_pages",
                                                           "idle_temp_margin_c", "require_kernel_log")
                              if health.get(key) is not None}
    return HealthRequirements(**levels, **limits)


def _build(data: Mapping[str, Any], path: Path, chain: tuple[Path, ...]) -> Profile:
    file = str(path)
    description = data.get("description")
    if not description:
        raise _err(file, "description", "missing required key: say in one line what this profile is for")
    os_ = _section(data, "os")
    drv = _section(data, "driver")
    cud = _section(data, "cuda")
    py = _section(data, "python")
    gpu = _section(data, "gpu")
    ram = _section(data, "ram")
    storage = _section(data, "storage")
    svd = _section(data, "svd")
    health = _section(data, "health")

    if gpu.get("min_count") is not None and gpu.get("max_count") is not None and gpu["max_count"] < gpu["min_count"]:
        raise _err(file, "gpu.max_count",
                   f"expected at least gpu.min_count ({gpu['min_count']}), got {gpu['max_count']}")
    if (ram.get("min_gib") is not None and ram.get("recommended_gib") is not None
            and ram["recommended_gib"] < ram["min_gib"]):
        raise _err(file, "ram.recommended_gib", f"expected at least ram.min_gib ({ram['min_gib']:g}), "
                                                f"got {ram['recommended_gib']:g}")

    torch_cuda = py.get("torch_cuda")
    packages = tuple(sorted((n, s) for n, s in (py.get("packages") or {}).items() if s is not None))

    scratch = _section(storage, "scratch")
    data_array = _section(storage, "data")
    has_scratch, has_data = isinstance(storage.get("scratch"), dict), isinstance(storage.get("data"), dict)
    return Profile(
        name=str(data.get("name") or path.stem),
        description=str(description),
        source=path,
        extends=data.get("extends"),
        chain=chain,
        os=OsRequirements(id=os_.get("id"), releases=tuple(os_.get("releases") or ())),
        driver=DriverRequirements(
            version=drv.get("version"), flavor=drv.get("flavor"),
            persistence_mode=drv.get("persistence_mode") is not False,
        ),
        cuda=CudaRequirements(toolkit=cud.get("toolkit"), cudnn=cud.get("cudnn"), nccl=cud.get("nccl")),
        python=PythonRequirements(
            version=py.get("version"), env=py.get("env"),
            torch_cuda=torch_cuda if isinstance(torch_cuda, VersionSpec) else None,
            torch_cpu=torch_cuda == "cpu",
            packages=packages,
        ),
        gpu=GpuRequirements(
            min_count=gpu.get("min_count"), max_count=gpu.get("max_count"), min_vram_gib=gpu.get("min_vram_gib"),
            models=tuple(gpu.get("models") or ()), min_compute_capability=gpu.get("min_compute_capability"),
            nvlink_all_pairs=bool(gpu.get("nvlink_all_pairs")), ecc=gpu.get("ecc"),
        ),
        ram=RamRequirements(min_gib=ram.get("min_gib"), recommended_gib=ram.get("recommended_gib")),
        storage=StorageRequirements(
            scratch=ScratchRequirements(
                level=scratch.get("level") or "raid0", nvme=scratch.get("nvme") is not False,
                min_devices=scratch.get("min_devices") or 1, min_size_tb=scratch.get("min_size_tb"),
            ) if has_scratch else None,
            data=DataArrayRequirements(
                levels=tuple(data_array.get("levels") or ("raid5", "raid6")),
                min_devices=data_array.get("min_devices") or 1, min_size_tb=data_array.get("min_size_tb"),
            ) if has_data else None,
        ),
        svd=SvdRequirements(scenario=svd.get("scenario")),
        health=_health(health),
        optional=tuple(data.get("optional") or ()),
    )
