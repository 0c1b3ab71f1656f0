"""svdops as a user installs it: the wheel, not the checkout.

The sdist and the wheel are built with the build backend itself (setuptools.build_meta, what pip and
`python -m build` call), from a copy of the checkout so the tree stays clean. The wheel built from the
sdist must hold the same files as the one built from the tree. The wheel then goes into a fresh
virtualenv (no system site-packages, no editable finder) and every command runs from a folder outside
the checkout with a bare environment, so a lookup that only works in a source tree fails here.

Offline: the dependencies come from a wheelhouse repacked from the distributions this interpreter has
installed (their RECORD lists every file), and pip runs with --no-index and no configuration file, so
the resolver checks the extras' declared requirements against what the commands import.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FIXTURE_HOST = REPO / "tests" / "fixtures" / "hosts" / "h100-sxm-ubuntu2404"
EXAMPLE_RUNS = REPO / "reports" / "examples" / "runs"
# pyarrow alone is 170 MB installed and serves only `report --export *.parquet`; the report's other
# requirements are installed and the extra's declaration is checked in the wheel's METADATA
LEFT_OUT = {"pyarrow"}
_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                      ".hypothesis", "svdops-runs")


# --- building -----------------------------------------------------------------------------------------

def _backend(source: Path, hook: str, out: Path) -> Path:
    """Call a PEP 517 hook of setuptools.build_meta in `source`, as a build frontend would."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _wheel_files(wheel: Path) -> dict[str, str]:
    """name -> sha256 of every file but RECORD (its own hash line differs by construction)."""
    with zipfile.ZipFile(wheel) as zf:
        return {name: hashlib.sha256(zf.read(name)).hexdigest() for name in zf.namelist()
                if not name.endswith(".dist-info/RECORD")}


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    wheel_from_sdist: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("build")
    tree = work / "tree"
    shutil.copytree(REPO, tree, symlinks=True, ignore=_COPY_IGNORE)
    (work / "sdist").mkdir()
    (work / "wheel").mkdir()
    (work / "wheel-from-sdist").mkdir()
    sdist = _backend(tree, "build_sdist", work / "sdist")
    wheel = _backend(tree, "build_wheel", work / "wheel")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    wheel_from_sdist = _backend(unpacked, "build_wheel", work / "wheel-from-sdist")
    return Built(sdist, wheel, wheel_from_sdist)


# --- an offline wheelhouse from what is installed here ---------------------------------------------------

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(dist: metadata.Distribution, out: Path) -> Path:
    """An installed distribution back into a wheel: the files its RECORD lists inside site-packages.

    Install-time files (INSTALLER, REQUESTED, direct_url.json), bytecode and anything outside
    site-packages (console scripts, which pip writes again from entry_points.txt) are left out.
    """
    files = dist.files or []
    info_dir = next(str(f).split("/")[0] for f in files if str(f).split("/")[0].endswith(".dist-info"))
    wheel_meta = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta if line.startswith("Tag:")]
    # a py2.py3 wheel lists one Tag line each; the file name needs one this interpreter accepts
    here = {str(t) for t in sys_tags()}
    tag = next((t for t in tags if t in here), tags[0])
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    target = out / f"{name}-{dist.version}-{tag}.whl"
    skip = {f"{info_dir}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    rows = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for file in files:
            path = str(file)
            if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc") or path in skip:
                continue
            data = Path(str(file.locate())).read_bytes()
            zf.writestr(path, data)
            rows.append((path, _record_hash(data), str(len(data))))
        rows.append((f"{info_dir}/RECORD", "", ""))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        zf.writestr(f"{info_dir}/RECORD", buffer.getvalue())
    return target


def _marker_env(extra: str) -> dict[str, str]:
    return {**{key: str(value) for key, value in default_environment().items()}, "extra": extra}


def _closure(requirements: Iterable[Requirement], extra: str = "") -> set[str]:
    """Canonical names of the installed distributions `requirements` (of `extra`) need, with their own needs."""
    wanted: set[str] = set()
    todo = [(r, extra) for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(_marker_env(extra)):
            continue
        name = canonicalize_name(req.name)
        if name in wanted or name == "svdops":
            continue
        wanted.add(name)
        for sub in (Requirement(r) for r in metadata.distribution(name).requires or []):
            todo += [(sub, ""), *((sub, e) for e in req.extras)]
    return wanted


def _svdops_requirements(wheel: Path) -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """The wheel's base requirements and, per extra, the ones the extra adds (from its METADATA)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    requirements = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    extras = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:")]
    base = [r for r in requirements if r.marker is None or r.marker.evaluate(_marker_env(""))]
    by_extra = {e: [r for r in requirements if r.marker is not None and r.marker.evaluate(_marker_env(e))
                    and r not in base] for e in extras}
    return base, by_extra


# --- the fresh virtualenv ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Installed:
    venv: Path
    home: Path  # a folder outside the checkout: the working directory and $HOME of every command
    wheelhouse: Path
    requirements: tuple[list[Requirement], dict[str, list[Requirement]]]

    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.home), "LC_ALL": "C.UTF-8",
                "LANG": "C.UTF-8", "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "NO_COLOR": "1", "COLUMNS": "200"}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=self.home, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def svdops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "svdops"), *args, timeout=timeout)

    def pip_install(self, *args: str) -> None:
        done = self.run(str(self.venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-compile",
                        "--find-links", str(self.wheelhouse), *args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel and its base requirements only: what a CI runner that checks hosts installs."""
    root = tmp_path_factory.mktemp("installed")
    requirements = _svdops_requirements(built.wheel)
    base, by_extra = requirements
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    needed = _closure(base) | _closure(by_extra["provision"], "provision") | _closure(by_extra["report"], "report")
    needed -= LEFT_OUT
    for name in sorted(needed):
        repack(metadata.distribution(name), wheelhouse)
    home = root / "home"
    home.mkdir()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = Installed(venv, home, wheelhouse, requirements)
    site.pip_install(str(built.wheel))
    return site


# --- the build ------------------------------------------------------------------------------------------

def test_the_sdist_builds_the_same_wheel(built: Built) -> None:
    from_tree, from_sdist = _wheel_files(built.wheel), _wheel_files(built.wheel_from_sdist)
    assert sorted(from_tree) == sorted(from_sdist)
    assert from_tree == from_sdist


def test_the_wheel_carries_what_the_commands_read(built: Built) -> None:
    names = set(_wheel_files(built.wheel))
    for tracked in ("playbooks", "profiles"):
        for path in (REPO / tracked).rglob("*"):
            if path.is_file() and not path.name.startswith(".") and "__pycache__" not in path.parts:
                assert f"svdops/{path.relative_to(REPO)}" in names, path
    assert "svdops/playbooks/roles/storage/library/svdops_disks.py" in names
    for shipped in ("svdops/judge/knowledge/cuda.yaml", "svdops/report/templates/report.html.j2",
                    "svdops/data/plan_anchors.json", "svdops/data/svd-xt-configs.json", "svdops/data/scenarios.yaml"):
        assert shipped in names
    # nothing from the checkout outside the package (tests, reports, benchmarks) lands in the wheel
    assert {n.split("/")[0] for n in names} == {"svdops", f"svdops-{_version(built.wheel)}.dist-info"}


def test_the_base_install_is_light(installed: Installed) -> None:
    base, by_extra = installed.requirements
    assert sorted(canonicalize_name(r.name) for r in base) == ["click", "nvidia-ml-py", "pyyaml", "rich"]
    assert {canonicalize_name(r.name) for r in by_extra["provision"]} == {"ansible-core", "ansible-runner"}
    assert {canonicalize_name(r.name) for r in by_extra["fleet"]} >= {"fabric"}
    assert {canonicalize_name(r.name) for r in by_extra["report"]} >= {"pandas", "jinja2", "markupsafe"}
    done = installed.run(str(installed.venv / "bin" / "python"), "-m", "pip", "list", "--format=json")
    present = {canonicalize_name(p["name"]) for p in json.loads(done.stdout)}
    assert not present & {"ansible-core", "fabric", "paramiko", "cryptography", "pandas", "jinja2", "psutil"}


# --- the commands, installed, from outside the checkout ---------------------------------------------

def test_svdops_runs_from_the_venv_not_the_checkout(installed: Installed) -> None:
    done = installed.run(str(installed.venv / "bin" / "python"), "-c", "import svdops; print(svdops.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.venv)
    paths = json.loads(installed.svdops("paths", "--json").stdout)
    site = installed.venv / "lib"
    used = next(r for r in paths["playbooks"] if r["state"] == "used")
    assert used["origin"] == "package" and Path(used["path"]).is_relative_to(site)
    assert "svd-host" in paths["profiles"][-1]["profiles"] and Path(paths["profiles"][-1]["path"]).is_relative_to(site)


def test_facts_from_a_recorded_folder(installed: Installed) -> None:
    done = installed.svdops("facts", "--from-dir", str(FIXTURE_HOST), "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["gpus"] and "H100" in facts["gpus"][0]["name"]


def test_check_with_a_shipped_profile(installed: Installed) -> None:
    done = installed.svdops("check", "--from-dir", str(FIXTURE_HOST), "--profile", "seed-2023", "--format", "json")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["profile"] == "seed-2023" and document["failed"]


def test_plan(installed: Installed) -> None:
    done = installed.svdops("plan", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert "H100 SXM (" in document["calibrated_on"]  # the shipped anchors were found (beside public rows)
    assert any(p["gpu"] == "H200" for p in document["predictions"])


def test_a_command_whose_extra_is_missing_names_it(installed: Installed) -> None:
    report = installed.svdops("report", str(EXAMPLE_RUNS), "-o", "report.html")
    assert report.returncode == 2, report.stderr
    assert "pip install 'svdops[report]'" in report.stderr and "Traceback" not in report.stderr
    provision = installed.svdops("provision", "--check", "--host", "127.0.0.1:1")
    assert provision.returncode == 2, provision.stderr
    assert "pip install 'svdops[provision]'" in provision.stderr and "Traceback" not in provision.stderr
    remote = installed.svdops("check", "--host", "127.0.0.1:1")
    assert remote.returncode == 2, remote.stdout + remote.stderr
    assert "pip install 'svdops[fleet]'" in remote.stdout + remote.stderr


@pytest.fixture(scope="module")
def with_extras(installed: Installed, built: Built) -> Installed:
    """[provision] through the resolver (its declared requirements must be complete), then the report's."""
    installed.pip_install(f"svdops[provision] @ {built.wheel.as_uri()}")
    report_needs = _closure(installed.requirements[1]["report"], "report") - LEFT_OUT
    installed.pip_install("--no-deps", *sorted(report_needs))
    return installed


def test_report_on_the_example_runs(with_extras: Installed) -> None:
    done = with_extras.svdops("report", str(EXAMPLE_RUNS), "-o", "report.html")
    assert done.returncode == 0, done.stderr
    html = (with_extras.home / "report.html").read_text(encoding="utf-8")
    assert "<html" in html and "h100-sxm-reference" in html


def test_provision_check_reaches_the_ansible_play(with_extras: Installed) -> None:
    done = with_extras.svdops("provision", "--check", "--host", "127.0.0.1:1", timeout=600)
    out = done.stdout + done.stderr
    assert "cannot find the svdops playbooks" not in out
    assert done.returncode == 3, out  # the host is unreachable, and Ansible said so
    (run,) = (with_extras.home / "svdops-runs" / "provision").iterdir()
    result = json.loads((run / "result.json").read_text(encoding="utf-8"))
    # the inventory svdops wrote was read as one (a relative path would have been taken for a host name)
    assert result["recap"]["127.0.0.1"]["unreachable"] >= 1, result
    assert "port 1" in result["failures"][0]["message"], result
    command = next((run / "runner" / "artifacts").rglob("command")).read_text(encoding="utf-8")
    assert str(with_extras.venv / "lib") in command and "site.yml" in command


def test_an_installed_svdops_ships_the_wheel_it_was_installed_from(with_extras: Installed, built: Built) -> None:
    # no checkout to build from: the hosts get the installed files packed again, never a name from an index
    runs = with_extras.home / "svdops-runs" / "provision"
    shutil.rmtree(runs, ignore_errors=True)
    with_extras.svdops("provision", "--check", "--host", "127.0.0.1:1", timeout=600)
    (run,) = runs.iterdir()
    (shipped,) = (run / "wheel").glob("svdops-*.whl")
    assert shipped.name == built.wheel.name
    with zipfile.ZipFile(shipped) as got, zipfile.ZipFile(built.wheel) as want:
        def contents(z: zipfile.ZipFile) -> dict[str, bytes]:
            return {n: z.read(n) for n in z.namelist() if not n.endswith("/RECORD")}
        assert contents(got) == contents(want)
        record = got.read(next(n for n in got.namelist() if n.endswith(".dist-info/RECORD"))).decode()
        for line in record.splitlines()[:-1]:  # every file with its hash; RECORD itself last, unhashed
            name, digest, size = line.rsplit(",", 2)
            data = got.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
