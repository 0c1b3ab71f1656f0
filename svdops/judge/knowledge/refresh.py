"""Rebuild the knowledge tables from machine-readable upstream sources, and say what changed.

Pure: it takes the sources as bytes by relative path (a folder laid out like tests/fixtures/upstream/,
or the same paths fetched online) and the shipped YAML texts, and returns the proposed rows, the
changes and the rewritten texts. Reading folders, fetching URLs and writing files is the CLI's job.

    nvidia/redistrib_<X.Y.Z>.json      NVIDIA's CUDA redistrib manifests: `nvidia_driver.version` is the
                                       driver each release ships with -> cuda.yaml toolkit_drivers
    pypi/<name>.json                   PyPI's project JSON (pypi.org/pypi/<name>/json) of torch, diffusers,
                                       transformers: releases, their files' python tags and requires_python
    pypi/<name>/<version>.json         PyPI's per-release JSON (pypi.org/pypi/<name>/<version>/json), or
    pypi/<name>/<version>.METADATA     the wheel's core metadata (PEP 658): Requires-Python, Requires-Dist
    pytorch/torch.html                 download.pytorch.org/whl/torch/ (PEP 503 page): the +cuXYZ variants
    pytorch/<variant>.html             or one page per variant (download.pytorch.org/whl/cu128/torch/)

What it cannot regenerate it keeps, marked "kept": CUDA rows without a manifest, torch CUDA variants
without a wheel index page, a library's torch minimum without that release's metadata, and every
other table (driver branches, arch lists, GPUs), which no upstream publishes in a machine-readable form.
"""

from __future__ import annotations

import datetime
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from svdops.errors import BadInputError
from svdops.versions import Version, parse_version

LIBRARIES = ("diffusers", "transformers")
PYPI_PROJECTS = ("torch", *LIBRARIES)
_KEPT_CUDA = "; CUDA variants as before: "
_TORCH_EXTRAS = ("torch", "all")  # the extra whose torch pin is the library's torch minimum, in that order


class UpstreamSourceError(BadInputError):
    """An upstream source file cannot be parsed: `where` names the file, the message what is wrong."""


@dataclass(frozen=True)
class Change:
    file: str  # "cuda.yaml"
    table: str  # "toolkit_drivers"
    key: str  # "12.8", "2.13", "transformers 5.21.0"
    kind: str  # "added", "changed", "kept" (hand-sourced, cannot be regenerated), "pending" (not proposed)
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    why: str  # where the new value comes from, or why the row is kept


@dataclass
class Refresh:
    texts: dict[str, str]  # file -> the YAML text --write would produce
    changes: list[Change] = field(default_factory=list)

    @property
    def changed_files(self) -> tuple[str, ...]:
        return tuple(sorted({c.file for c in self.changes if c.kind in ("added", "changed")}))

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


# --- reading the sources ----------------------------------------------------------------------------

def _json(sources: Mapping[str, bytes], path: str) -> Any:
    try:
        return json.loads(sources[path].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpstreamSourceError(f"not JSON: {exc}", where=path,
                                  hint="save the URL's answer unchanged (curl -o), or fetch it again") from None


def _version(text: Any, where: str, what: str) -> Version:
    found = parse_version(str(text)) if isinstance(text, str | int) else None
    if found is None:
        raise UpstreamSourceError(f"{what}: not a version: {text!r}", where=where)
    return found


def _short(v: Version) -> str:
    return f"{v.major}.{v.minor}"


_STABLE = re.compile(r"\d+(\.\d+)*")


def cuda_drivers(sources: Mapping[str, bytes]) -> dict[str, tuple[Version, str]]:
    """CUDA minor -> (driver its first release in the sources ships with, the manifest's words)."""
    found: dict[str, tuple[Version, Version, str]] = {}
    for path in sorted(p for p in sources if p.startswith("nvidia/")):
        name = path.rsplit("/", 1)[-1]
        match = re.fullmatch(r"redistrib_(\d+\.\d+\.\d+)\.json", name)
        if not match:
            continue
        doc = _json(sources, path)
        driver = doc.get("nvidia_driver") if isinstance(doc, dict) else None
        if not isinstance(driver, dict) or "version" not in driver:
            raise UpstreamSourceError("no `nvidia_driver` entry with a `version`: not a CUDA redistrib manifest",
                                      where=path, hint="expected developer.download.nvidia.com/compute/cuda/redist/"
                                                       "redistrib_<X.Y.Z>.json, saved unchanged")
        label = doc.get("release_label") or match[1]
        release = _version(label, path, "release_label")
        if release.truncate(3) != _version(match[1], path, "file name"):
            raise UpstreamSourceError(f"release_label {label!r} does not match the file name", where=path)
        drv = _version(driver["version"], path, "nvidia_driver.version")
        minor = _short(release)
        words = (f"NVIDIA CUDA redistrib manifest redistrib_{match[1]}.json (released {doc.get('release_date', '?')}):"
                 f" nvidia_driver {driver['version']}")
        if minor not in found or release < found[minor][0]:
            found[minor] = (release, drv, words)
    return {minor: (drv, words) for minor, (_rel, drv, words) in found.items()}


def _project(sources: Mapping[str, bytes], name: str) -> dict[str, Any] | None:
    path = f"pypi/{name}.json"
    if path not in sources:
        return None
    doc = _json(sources, path)
    if (not isinstance(doc, dict) or not isinstance(doc.get("releases"), dict) or not isinstance(doc.get("info"), dict)
            or str(doc["info"].get("name", "")).lower() != name):
        raise UpstreamSourceError(f"expected PyPI's project JSON for {name} (`info.name` and `releases`)", where=path,
                                  hint=f"save https://pypi.org/pypi/{name}/json unchanged")
    return doc


def _releases(doc: Mapping[str, Any], path: str) -> dict[Version, list[dict[str, Any]]]:
    """Final (not pre-release), not yanked releases with files, by version."""
    out: dict[Version, list[dict[str, Any]]] = {}
    for text, files in doc["releases"].items():
        if not isinstance(files, list):
            raise UpstreamSourceError(f"releases[{text!r}]: expected a list of files", where=path)
        if not _STABLE.fullmatch(str(text)) or not files:
            continue
        if any(not isinstance(f, dict) for f in files):
            raise UpstreamSourceError(f"releases[{text!r}]: expected file objects", where=path)
        if all(f.get("yanked") for f in files):
            continue
        out[_version(text, path, "release")] = files
    return out


def _python_floor(spec: Any, where: str) -> Version | None:
    if spec is None or spec == "":
        return None
    match = re.search(r">=\s*(\d+\.\d+)", str(spec))
    if not match:
        raise UpstreamSourceError(f"requires_python {spec!r}: no lower bound", where=where)
    return _version(match[1], where, "requires_python")


_CP_TAG = re.compile(r"^cp(\d)(\d+)$")


def torch_python_ranges(sources: Mapping[str, bytes]) -> dict[str, tuple[Version, Version, str]]:
    """torch major.minor -> (oldest, newest Python with a Linux x86_64 wheel on PyPI, the words)."""
    doc = _project(sources, "torch")
    if doc is None:
        return {}
    path = "pypi/torch.json"
    tags: dict[str, set[Version]] = {}
    for release, files in _releases(doc, path).items():
        for f in files:
            filename = str(f.get("filename", ""))
            if not (filename.endswith(".whl") and "linux" in filename and "x86_64" in filename):
                continue
            match = _CP_TAG.match(str(f.get("python_version", "")))
            if match:
                py = Version((int(match[1]), int(match[2])))
                floor = _python_floor(f.get("requires_python"), path)
                if floor is None or py >= floor:
                    tags.setdefault(_short(release), set()).add(py)
    return {minor: (min(found), max(found),
                    f"PyPI torch {minor}.x Linux x86_64 wheels: cp{_tag(min(found))} to cp{_tag(max(found))}")
            for minor, found in tags.items()}


def _tag(v: Version) -> str:
    return f"{v.major}{v.minor}"


def torch_first_upload(sources: Mapping[str, bytes]) -> dict[str, str]:
    doc = _project(sources, "torch")
    if doc is None:
        return {}
    first: dict[str, str] = {}
    for release, files in _releases(doc, "pypi/torch.json").items():
        day = min(str(f.get("upload_time_iso_8601") or f.get("upload_time") or "")[:10] for f in files)
        minor = _short(release)
        first[minor] = min(first.get(minor, day), day)
    return first


_WHEEL = re.compile(r"torch-(\d+(?:\.\d+)+)(?:\+|%2B)cu(\d+)(\d)-", re.IGNORECASE)


def wheel_index_pages(sources: Mapping[str, bytes]) -> list[str]:
    return sorted(p for p in sources if p.startswith("pytorch/") and p.endswith(".html"))


def torch_cuda_variants(sources: Mapping[str, bytes]) -> dict[str, tuple[tuple[Version, ...], str]]:
    """torch major.minor -> (CUDA variants with Linux x86_64 wheels, the page), from download.pytorch.org pages."""
    found: dict[str, set[Version]] = {}
    pages = wheel_index_pages(sources)
    for path in pages:
        try:
            text = sources[path].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UpstreamSourceError(f"not UTF-8 text: {exc}", where=path) from None
        hrefs = re.findall(r"<a\s[^>]*href=\"([^\"]+)\"", text, re.IGNORECASE)
        if "<html" not in text.lower() or not hrefs:
            raise UpstreamSourceError("not a PEP 503 index page (no <a href=...> links)", where=path,
                                      hint="save https://download.pytorch.org/whl/torch/ unchanged")
        names = [html.unescape(href).split("#", 1)[0].rsplit("/", 1)[-1] for href in hrefs]
        if not any(re.match(r"torch-\d", name) for name in names):
            raise UpstreamSourceError("no torch-X.Y.Z wheel links: not the torch wheel index", where=path,
                                      hint="save https://download.pytorch.org/whl/torch/ (or /whl/cuNNN/torch/) "
                                           "unchanged")
        for name in names:
            if "linux" not in name or "x86_64" not in name:
                continue
            match = _WHEEL.match(name)
            if match and _STABLE.fullmatch(match[1]):
                release = _version(match[1], path, "wheel")
                found.setdefault(_short(release), set()).add(Version((int(match[2]), int(match[3]))))
    words = "download.pytorch.org wheel index (" + ", ".join(pages) + ")"
    return {minor: (tuple(sorted(cudas)), words) for minor, cudas in found.items()}


@dataclass(frozen=True)
class LibraryRelease:
    version: Version
    min_python: Version | None
    min_torch: Version | None  # None: the metadata is not in the sources
    requires_python: str
    torch_requirement: str | None
    extra: str | None


def _torch_requirement(lines: Iterable[str]) -> tuple[Version | None, str | None, str | None]:
    """The lower bound of the torch pin of the `torch` extra (else `all`), its text and the extra."""
    found: dict[str, tuple[Version | None, str]] = {}
    for line in lines:
        match = re.match(r"^\s*torch\s*(?:\[[^\]]*\])?\s*\(?([^;)]*)\)?\s*(?:;\s*(.*))?$", line)
        if not match:
            continue
        extra = re.search(r"extra\s*==\s*['\"]([\w.-]+)['\"]", match[2] or "")
        key = extra[1] if extra else ""
        floor = re.search(r">=\s*(\d+(?:\.\d+)*)", match[1])
        found.setdefault(key, (parse_version(floor[1]) if floor else None, line.strip()))
    for extra_name in (*_TORCH_EXTRAS, ""):
        if extra_name in found:
            return found[extra_name][0], found[extra_name][1], extra_name or None
    return None, None, None


def _metadata(sources: Mapping[str, bytes], name: str, release: Version,
              project: Mapping[str, Any]) -> tuple[str | None, list[str]] | None:
    """(Requires-Python, Requires-Dist lines) of one release, from its own JSON or core metadata."""
    text = str(release)
    json_path, meta_path = f"pypi/{name}/{text}.json", f"pypi/{name}/{text}.METADATA"
    if json_path in sources:
        doc = _json(sources, json_path)
        info = doc.get("info") if isinstance(doc, dict) else None
        if not isinstance(info, dict) or str(info.get("version")) != text:
            raise UpstreamSourceError(f"expected PyPI's JSON for {name} {text} (`info.version` {text!r})",
                                      where=json_path)
        return info.get("requires_python"), [str(r) for r in info.get("requires_dist") or []]
    if meta_path in sources:
        try:
            head = sources[meta_path].decode("utf-8").split("\n\n", 1)[0]
        except UnicodeDecodeError as exc:
            raise UpstreamSourceError(f"not UTF-8 text: {exc}", where=meta_path) from None
        fields = re.findall(r"^([A-Za-z-]+): (.*)$", head, re.MULTILINE)
        version = next((v for k, v in fields if k.lower() == "version"), None)
        if version != text:
            raise UpstreamSourceError(f"expected core metadata of {name} {text}, found Version {version!r}",
                                      where=meta_path)
        rp = next((v for k, v in fields if k.lower() == "requires-python"), None)
        return rp, [v for k, v in fields if k.lower() == "requires-dist"]
    info = project["info"]
    if str(info.get("version")) == text:  # the project JSON carries the newest release's own metadata
        return info.get("requires_python"), [str(r) for r in info.get("requires_dist") or []]
    return None


def library_releases(sources: Mapping[str, bytes], name: str, floor: Version) -> list[LibraryRelease]:
    """Every final release at or after `floor`, oldest first, with what the sources say it needs."""
    doc = _project(sources, name)
    if doc is None:
        return []
    path = f"pypi/{name}.json"
    out = []
    for release, files in sorted(_releases(doc, path).items()):
        if release < floor:
            continue
        meta = _metadata(sources, name, release, doc)
        wheel_rp = next((f.get("requires_python") for f in files if str(f.get("filename", "")).endswith(".whl")),
                        files[0].get("requires_python"))
        rp = meta[0] if meta and meta[0] else wheel_rp
        min_torch, requirement, extra = _torch_requirement(meta[1]) if meta else (None, None, None)
        out.append(LibraryRelease(release, _python_floor(rp, path), min_torch, str(rp), requirement, extra))
    return out


# --- the shipped tables, and the proposal ---------------------------------------------------------------

def _library_row(name: str, rel: LibraryRelease, values: tuple[str | None, str | None]) -> dict[str, Any]:
    words = f"{name} {rel.version} wheel METADATA (PyPI): Requires-Python {rel.requires_python}"
    if rel.torch_requirement and rel.extra:
        words += f", extra {rel.extra}: {rel.torch_requirement.split(';')[0].strip()}"
    return {"name": name, "version": str(rel.version), "min_python": values[0], "min_torch": values[1],
            "source": words}


def _load(texts: Mapping[str, str], file: str) -> dict[str, Any]:
    data = yaml.safe_load(texts[file])
    if not isinstance(data, dict):
        raise UpstreamSourceError("expected a mapping", where=file)
    return data


def _rows(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    rows = data.get(key)
    return [dict(r) for r in rows] if isinstance(rows, list) else []


def _sv(value: Any) -> Version | None:
    return parse_version(str(value)) if value is not None else None


def refresh(sources: Mapping[str, bytes], texts: Mapping[str, str], *, today: datetime.date) -> Refresh:
    """Propose the knowledge the sources support; keep what they cannot say; rewrite the YAML texts."""
    result = Refresh(texts=dict(texts))
    edits: dict[str, dict[str, list[tuple[dict[str, Any] | None, dict[str, Any]]]]] = {}

    def note(change: Change) -> None:
        result.changes.append(change)

    # CUDA toolkit -> driver ------------------------------------------------------------------------------
    cuda = _load(texts, "cuda.yaml")
    drivers = cuda_drivers(sources)
    toolkit_edits: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
    shipped_cuda = {str(r["cuda"]): r for r in _rows(cuda, "toolkit_drivers")}
    for minor, row in shipped_cuda.items():
        old_driver = _sv(row.get("min_driver"))
        if minor not in drivers:
            note(Change("cuda.yaml", "toolkit_drivers", minor, "kept", row, row,
                        "hand-sourced: no redistrib manifest of that release in the sources"))
            continue
        driver, words = drivers[minor]
        if old_driver == driver:
            continue
        if old_driver is not None and old_driver.major == driver.major and old_driver <= driver:
            # the release notes' minimum may sit below the driver the toolkit ships with (12.8: 570.26 / 570.86.10)
            note(Change("cuda.yaml", "toolkit_drivers", minor, "kept", row, row,
                        f"hand-sourced minimum {old_driver} is in the branch of, and not above, {words}"))
            continue
        new = {**row, "min_driver": str(driver), "source": words}
        toolkit_edits.append((row, new))
        note(Change("cuda.yaml", "toolkit_drivers", minor, "changed", row, new, words))
    newest_known = max((v for m in shipped_cuda if (v := _sv(m)) is not None), default=None)
    for minor, (driver, words) in sorted(drivers.items(), key=lambda kv: _version(kv[0], "nvidia/", "minor")):
        if minor in shipped_cuda:
            continue
        new = {"cuda": minor, "min_driver": str(driver), "source": words}
        toolkit_edits.append((None, new))
        older = newest_known is not None and _version(minor, "nvidia/", "minor") < newest_known
        note(Change("cuda.yaml", "toolkit_drivers", minor, "added", None, new,
                    words + (" (a minor older than the newest row)" if older else "")))
    edits["cuda.yaml"] = {"toolkit_drivers": toolkit_edits}

    # torch releases ---------------------------------------------------------------------------------------
    torch = _load(texts, "torch.yaml")
    pythons = torch_python_ranges(sources)
    variants = torch_cuda_variants(sources)
    uploads = torch_first_upload(sources)
    pages = wheel_index_pages(sources)
    index_words = (f"the download.pytorch.org wheel index in the sources ({', '.join(pages)})" if pages
                   else "a download.pytorch.org wheel index: none in the sources")
    release_edits: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
    shipped_torch = {str(r["torch"]): r for r in _rows(torch, "releases")}
    for minor, row in shipped_torch.items():
        new, why = dict(row), []
        if minor in pythons:
            lo, hi, words = pythons[minor]
            if (_sv(row.get("python_min")), _sv(row.get("python_max"))) != (lo, hi):
                new["python_min"], new["python_max"] = _short(lo), _short(hi)
                why.append(words)
        else:
            note(Change("torch.yaml", "releases", minor, "kept", row, row,
                        "hand-sourced Python range: no PyPI torch wheels of that release in the sources"))
        if minor in variants:
            cudas, words = variants[minor]
            if tuple(_sv(c) for c in row.get("cuda") or ()) != cudas:
                new["cuda"] = [_short(c) for c in cudas]
                why.append(words)
        elif pythons:
            note(Change("torch.yaml", "releases", minor, "kept", row, row,
                        f"hand-sourced CUDA variants: not listed in {index_words}"))
        if why:
            new["source"] = f"{'; '.join(why)} (svdops knowledge refresh, {today.isoformat()})"
            if minor not in variants:
                before = str(row.get("source")).rsplit(_KEPT_CUDA, 1)[-1]
                new["source"] += f"{_KEPT_CUDA}{before}"
            release_edits.append((row, new))
            note(Change("torch.yaml", "releases", minor, "changed", row, new, "; ".join(why)))
    oldest = min((_version(m, "torch.yaml", "torch") for m in shipped_torch), default=None)
    for minor in sorted(set(pythons) - set(shipped_torch), key=lambda m: _version(m, "torch", "minor")):
        if oldest is not None and _version(minor, "torch", "minor") < oldest:
            continue
        lo, hi, words = pythons[minor]
        if minor not in variants:
            note(Change("torch.yaml", "releases", minor, "pending", None,
                        {"torch": minor, "python_min": _short(lo), "python_max": _short(hi)},
                        f"torch {minor} is on PyPI (first upload {uploads.get(minor, '?')}) but its CUDA variants "
                        f"come from the wheel index, and it is not listed in {index_words}: not added"))
            continue
        cudas, vwords = variants[minor]
        new = {"torch": minor, "cuda": [_short(c) for c in cudas], "python_min": _short(lo), "python_max": _short(hi),
               "source": f"{words}; {vwords} (svdops knowledge refresh, {today.isoformat()})"}
        release_edits.append((None, new))
        note(Change("torch.yaml", "releases", minor, "added", None, new, f"{words}; {vwords}"))
    edits["torch.yaml"] = {"releases": release_edits}

    # diffusers and transformers -------------------------------------------------------------------------
    libs = _load(texts, "libraries.yaml")
    lib_rows = _rows(libs, "libraries")
    lib_edits: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
    for name in LIBRARIES:
        shipped = sorted((r for r in lib_rows if str(r.get("name")) == name),
                         key=lambda r: _sv(r["version"]) or Version((0,)))
        if not shipped:
            continue
        floor = _sv(shipped[0]["version"])
        assert floor is not None
        releases = library_releases(sources, name, floor)
        if not releases:
            continue
        by_version = {str(r["version"]): r for r in shipped}
        known = {str(r.version) for r in releases}
        # a shipped row of a release PyPI no longer offers (yanked: transformers 4.57.0) still holds from there
        floor_row: dict[str, Any] | None = shipped[0] if str(shipped[0]["version"]) not in known else None
        current: tuple[str | None, str | None] | None = (
            None if floor_row is None else (floor_row.get("min_python"), floor_row.get("min_torch")))
        emitted: list[Version] = [] if floor_row is None else [floor]
        for rel in releases:
            key = str(rel.version)
            lib_row: dict[str, Any] | None = by_version.get(key)
            py = _short(rel.min_python) if rel.min_python else None
            tv = _short(rel.min_torch) if rel.min_torch else None
            if tv is None:  # no metadata of this release: its torch minimum stays what the table says
                base = (lib_row.get("min_python"), lib_row.get("min_torch")) if lib_row is not None else current
                tv = None if base is None else base[1]
                if lib_row is not None:
                    note(Change("libraries.yaml", "libraries", f"{name} {key}", "kept", lib_row, lib_row,
                                "hand-sourced torch minimum: no metadata of that release in the sources"))
            values = (py, tv)
            if lib_row is None and values == current:
                continue
            new = _library_row(name, rel, values)
            if lib_row is None:
                lib_edits.append((None, new))
                note(Change("libraries.yaml", "libraries", f"{name} {key}", "added", None, new, new["source"]))
            elif (_sv(lib_row.get("min_python")), _sv(lib_row.get("min_torch"))) != (_sv(py), _sv(tv)):
                lib_edits.append((lib_row, new))
                note(Change("libraries.yaml", "libraries", f"{name} {key}", "changed", lib_row, new, new["source"]))
            current = values
            emitted.append(rel.version)
        newest = releases[-1]
        if all(v.truncate(2) < newest.version.truncate(2) for v in emitted):
            # the newest minor needs a row of its own, or the knowledge calls it newer than itself
            first = min((r for r in releases if r.version.truncate(2) == newest.version.truncate(2)),
                        key=lambda r: r.version)
            assert current is not None
            new = _library_row(name, first, current)
            lib_edits.append((None, new))
            note(Change("libraries.yaml", "libraries", f"{name} {first.version}", "added", None, new, new["source"]))
        for key, row in by_version.items():
            if key not in known:
                note(Change("libraries.yaml", "libraries", f"{name} {key}", "kept", row, row,
                            f"hand-sourced: not a final, unyanked release in pypi/{name}.json"))
    edits["libraries.yaml"] = {"libraries": lib_edits}

    for file, tables in edits.items():
        if any(tables.values()):
            result.texts[file] = _rewrite(texts[file], file, tables, today)
    if result.changed_files:
        result.texts["cuda.yaml"] = _bump_as_of(result.texts["cuda.yaml"], today)
    for file, text in result.texts.items():
        if text != texts[file]:
            _check_rewrite(text, file, edits.get(file, {}))
    return result


# --- writing: the YAML files keep their comments and every untouched line ---------------------------------

_ORDER = {"toolkit_drivers": "cuda", "releases": "torch", "libraries": None}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w-]*", text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def row_line(row: Mapping[str, Any]) -> str:
    return "  - {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in row.items()) + "}"


def _sort_key(table: str, row: Mapping[str, Any]) -> tuple[Any, ...]:
    if table == "libraries":
        return (str(row["name"]), _sv(row["version"]) or Version((0,)))
    return (_sv(row[_ORDER[table] or "version"]) or Version((0,)),)


def _rewrite(text: str, file: str, tables: Mapping[str, list[tuple[dict[str, Any] | None, dict[str, Any]]]],
             today: datetime.date) -> str:
    lines = text.splitlines()
    for table, table_edits in tables.items():
        if not table_edits:
            continue
        start = next((i for i, line in enumerate(lines) if line.rstrip() == f"{table}:"), None)
        if start is None:
            raise UpstreamSourceError(f"no `{table}:` block to rewrite", where=file)
        end = start + 1
        while end < len(lines) and lines[end].startswith("  - {"):
            end += 1
        block = lines[start + 1:end]
        parsed = [dict(yaml.safe_load(line[4:])) for line in block]
        out: list[tuple[dict[str, Any], str]] = []
        for row, line in zip(parsed, block, strict=True):
            match = next((new for old, new in table_edits if old is not None and old == row), None)
            out.append((match, row_line(match)) if match is not None else (row, line))
        out.extend((new, row_line(new)) for old, new in table_edits if old is None)
        descending = table in ("toolkit_drivers", "releases")
        out.sort(key=lambda pair: _sort_key(table, pair[0]), reverse=descending)
        lines[start + 1:end] = [line for _row, line in out]
    text = "\n".join(lines) + "\n"
    return _bump_version(text, file, today)


def _bump_version(text: str, file: str, today: datetime.date) -> str:
    match = re.search(r'^version: "(\d{4})\.(\d{2})\.(\d+)"$', text, re.MULTILINE)
    if not match:
        raise UpstreamSourceError('no `version: "YYYY.MM.N"` line', where=file)
    same_month = (int(match[1]), int(match[2])) == (today.year, today.month)
    new = f"{today.year}.{today.month:02d}.{int(match[3]) + 1 if same_month else 1}"
    return text[:match.start()] + f'version: "{new}"' + text[match.end():]


def _bump_as_of(text: str, today: datetime.date) -> str:
    new, count = re.subn(r'^as_of: "\d{4}-\d{2}-\d{2}"$', f'as_of: "{today.isoformat()}"', text, flags=re.MULTILINE)
    if count != 1:
        raise UpstreamSourceError('no `as_of: "YYYY-MM-DD"` line', where="cuda.yaml")
    return new


def _check_rewrite(text: str, file: str,
                   tables: Mapping[str, list[tuple[dict[str, Any] | None, dict[str, Any]]]]) -> None:
    """The rewritten text must parse and hold every proposed row: a bug here must never reach the package."""
    data = yaml.safe_load(text)
    for table, table_edits in tables.items():
        rows = data.get(table) if isinstance(data, dict) else None
        for _old, new in table_edits:
            if not isinstance(rows, list) or new not in rows:
                raise RuntimeError(f"{file}: {table}: the rewrite lost the row {new}")


def describe(result: Refresh) -> list[str]:
    """What changed, one line per row (kept rows one line per reason), for the terminal."""
    lines = []
    for kind, sign in (("added", "+"), ("changed", "~"), ("pending", "?")):
        for c in result.of(kind):
            head = f"{sign} {c.file} {c.table} {c.key}"
            if kind == "changed" and c.old is not None and c.new is not None:
                diffs = ", ".join(f"{k} {c.old.get(k)} -> {c.new.get(k)}" for k in c.new
                                  if k != "source" and c.old.get(k) != c.new.get(k))
                lines.append(f"{head}: {diffs}  [{c.why}]")
            elif kind == "added" and c.new is not None:
                values = ", ".join(f"{k} {v}" for k, v in c.new.items() if k not in ("source", "name", "version",
                                                                                    "torch", "cuda")
                                   or (k == "cuda" and c.table == "releases"))
                lines.append(f"{head}: {values}  [{c.why}]")
            else:
                lines.append(f"{head}: {c.why}")
    groups: dict[tuple[str, str, str], list[str]] = {}
    for c in result.of("kept"):
        groups.setdefault((c.file, c.table, c.why), []).append(c.key)
    for (file, table, why), keys in groups.items():
        lines.append(f"= {file} {table} {', '.join(keys)}: kept, {why}")
    return lines
