"""`svdops knowledge refresh` over real saved upstream sources (tests/fixtures/upstream, see its README).

The first tests fail whenever the shipped knowledge disagrees with what the sources say.
"""

from __future__ import annotations

import datetime
import email
import functools
import http.server
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from click.testing import CliRunner

import svdops.judge.knowledge as kb
from svdops.cli.main import cli
from svdops.judge.knowledge import refresh as rf
from svdops.versions import Version

UPSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
KNOWLEDGE = Path(kb.__file__).parent
TODAY = datetime.date(2026, 12, 2)


def V(text: str) -> Version:
    return Version.parse(text)


def sources(folder: Path = UPSTREAM) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "README.md"}


def shipped(folder: Path = KNOWLEDGE) -> dict[str, str]:
    return {name: (folder / name).read_text(encoding="utf-8") for name in kb.FILES}


@pytest.fixture
def knowledge_dir(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    target.mkdir()
    for name in kb.FILES:
        shutil.copy(KNOWLEDGE / name, target / name)
    return target


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    target = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, target)
    return target


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["knowledge", "refresh", *args])
    return result.exit_code, result.output


# --- the shipped knowledge agrees with the real sources -----------------------------------------------------

def test_the_shipped_knowledge_is_what_the_refresher_makes_of_the_sources() -> None:
    result = rf.refresh(sources(), shipped(), today=TODAY)
    assert [(c.file, c.key) for c in result.of("added") + result.of("changed")] == []
    assert result.texts == shipped()
    # torch 2.15 is on PyPI; its CUDA variants need the wheel index, and the saved real copy is of 2023-10
    assert [c.key for c in result.of("pending")] == ["2.15"]


# the CUDA variants of each torch release, read by eye from PyTorch's RELEASE.md compatibility matrix and
# https://pytorch.org/get-started/previous-versions/ (the sources the hand-written rows of torch.yaml cite)
RELEASE_MATRIX = {"1.10": ("10.2", "11.1", "11.3"), "1.11": ("10.2", "11.3", "11.5"), "1.12": ("10.2", "11.3", "11.6"),
                  "1.13": ("11.6", "11.7"), "2.0": ("11.7", "11.8"), "2.1": ("11.8", "12.1")}


def test_torch_cuda_variants_from_the_saved_wheel_index_agree_with_the_release_matrix() -> None:
    variants = rf.torch_cuda_variants(sources())
    assert set(variants) >= set(RELEASE_MATRIX) and max(variants, key=V) == "2.1"  # the page was saved 2023-10-16
    for minor, cudas in RELEASE_MATRIX.items():
        assert variants[minor][0] == tuple(V(c) for c in cudas), minor
        release = kb.find_torch_release(V(minor))
        assert release is not None and release.cuda_variants == tuple(V(c) for c in cudas), minor
    # the releases the page does not list are kept, saying why
    kept = {c.key: c.why for c in rf.refresh(sources(), shipped(), today=TODAY).of("kept") if c.table == "releases"}
    assert "2.14" in kept and "not listed in the download.pytorch.org wheel index in the sources" in kept["2.14"]
    assert "2.1" not in kept


def test_torch_python_ranges_are_pypis_linux_wheels() -> None:
    ranges = rf.torch_python_ranges(sources())
    assert ranges["2.13"][:2] == (V("3.10"), V("3.14")) and ranges["2.15"][:2] == (V("3.11"), V("3.15"))
    for minor, (low, high, _words) in ranges.items():
        release = kb.find_torch_release(V(minor))
        if release is None:
            assert kb.torch_is_newer(V(minor)) or V(minor) < V("1.10"), minor
            continue
        assert (release.python_min, release.python_max) == (low, high), minor


@pytest.mark.parametrize("name", rf.LIBRARIES)
def test_every_library_release_needs_what_its_metadata_says(name: str) -> None:
    floor = min(r.version for r in kb.knowledge().libraries if r.name == name)
    releases = rf.library_releases(sources(), name, floor)
    assert len(releases) > 20 and all(r.min_torch is not None for r in releases)
    for release in releases:
        row = kb.library_requirements(name, release.version)
        assert (row.min_python, row.min_torch) == (release.min_python, release.min_torch), str(release.version)


def test_cuda_drivers_agree_with_the_redistrib_manifests() -> None:
    drivers = rf.cuda_drivers(sources())
    assert set(drivers) == {"11.8", "12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0"}
    for minor, (driver, _words) in drivers.items():
        ga = kb.min_driver_for_cuda(V(minor)).min_driver_ga
        if minor == "12.8":  # the release notes' GA minimum (570.26) is below the driver 12.8.0 ships (570.86.10)
            assert (ga, driver) == (V("570.26"), V("570.86.10"))
        else:
            assert ga == driver, minor


# --- hand-sourced rows are kept ---------------------------------------------------------------------------------

def test_rows_the_sources_cannot_regenerate_are_kept_and_listed(knowledge_dir: Path) -> None:
    result = rf.refresh(sources(), shipped(), today=TODAY)
    kept = {(c.table, c.key) for c in result.of("kept")}
    assert {("toolkit_drivers", "13.3"), ("toolkit_drivers", "12.8"), ("releases", "2.14"),
            ("libraries", "transformers 4.57.0")} <= kept  # 4.57.0 is yanked on PyPI
    # a refresh that does change something writes the kept rows back byte for byte
    torch_yaml = knowledge_dir / "torch.yaml"
    marker = 'python_max: "{}", source: "PyPI torch 2.13'
    torch_yaml.write_text(torch_yaml.read_text().replace(marker.format("3.14"), marker.format("3.15")))
    code, _out = run("--from", str(UPSTREAM), "--knowledge-dir", str(knowledge_dir), "--write", "--as-of", "2027-01-05")
    assert code == 0
    for name in ("cuda.yaml", "torch.yaml"):
        old_rows = [line for line in (KNOWLEDGE / name).read_text().splitlines() if line.startswith("  - {")]
        new_rows = [line for line in (knowledge_dir / name).read_text().splitlines() if line.startswith("  - {")]
        changed = [line for line in new_rows if '{torch: "2.13"' in line]
        assert [line for line in new_rows if line not in changed] == [line for line in old_rows
                                                                      if '{torch: "2.13"' not in line], name
    row_213 = next(r for r in yaml.safe_load((knowledge_dir / "torch.yaml").read_text())["releases"]
                   if r["torch"] == "2.13")
    assert row_213["python_max"] == "3.14" and row_213["source"].count("CUDA variants as before") == 1
    comments = [line for line in (KNOWLEDGE / "cuda.yaml").read_text().splitlines() if line.startswith("#")]
    assert [line for line in (knowledge_dir / "cuda.yaml").read_text().splitlines() if line.startswith("#")] == comments


# --- the printed diff, and --write -------------------------------------------------------------------------------

def test_the_printed_changes_and_diff_name_rows_and_sources(knowledge_dir: Path) -> None:
    libs = knowledge_dir / "libraries.yaml"
    text = libs.read_text()
    row_521 = next(line for line in text.splitlines() if 'version: "5.21.0"' in line)
    libs.write_text(text.replace(row_521 + "\n", ""))
    torch_yaml = knowledge_dir / "torch.yaml"
    torch_yaml.write_text(torch_yaml.read_text().replace('{torch: "2.12", cuda: ["12.6", "13.0", "13.2"], '
                                                         'python_min: "3.10", python_max: "3.14"',
                                                         '{torch: "2.12", cuda: ["12.6", "13.0", "13.2"], '
                                                         'python_min: "3.9", python_max: "3.14"'))
    code, out = run("--from", str(UPSTREAM), "--knowledge-dir", str(knowledge_dir), "--diff")
    assert code == 0, out
    assert ("+ libraries.yaml libraries transformers 5.21.0: min_python 3.11, min_torch 2.6  [transformers 5.21.0 "
            "wheel METADATA (PyPI): Requires-Python >=3.11.0, extra torch: torch>=2.6]") in out
    assert ("~ torch.yaml releases 2.12: python_min 3.9 -> 3.10  "
            "[PyPI torch 2.12.x Linux x86_64 wheels: cp310 to cp314]") in out
    assert "? torch.yaml releases 2.15:" in out and "= cuda.yaml toolkit_drivers 13.3, 13.2, 13.1," in out
    assert "+++ b/libraries.yaml" in out and '-version: "2026.12.2"' in out and '+version: "2026.12.3"' in out
    assert "+  - {name: transformers, version: \"5.21.0\"" in out
    assert "would change: run again with --write" in out
    assert libs.read_text() == text.replace(row_521 + "\n", "")  # nothing written without --write

    code, out = run("--from", str(UPSTREAM), "--knowledge-dir", str(knowledge_dir), "--write", "--as-of", "2027-01-05")
    assert code == 0 and "wrote cuda.yaml, libraries.yaml, torch.yaml" in out
    assert libs.read_text() == text.replace('version: "2026.12.2"', 'version: "2027.01.1"')
    assert yaml.safe_load((knowledge_dir / "cuda.yaml").read_text())["as_of"] == "2027-01-05"
    row_212 = next(r for r in yaml.safe_load(torch_yaml.read_text())["releases"] if r["torch"] == "2.12")
    assert row_212["python_min"] == "3.10" and row_212["source"].startswith("PyPI torch 2.12.x Linux x86_64 wheels")
    assert "CUDA variants as before: PyTorch RELEASE.md" in row_212["source"]
    code, out = run("--from", str(UPSTREAM), "--knowledge-dir", str(knowledge_dir))
    assert code == 0 and not [line for line in out.splitlines() if line.startswith(("+", "~"))]


def test_a_new_cuda_release_in_the_sources_is_added(upstream: Path, knowledge_dir: Path) -> None:
    doc = json.loads((upstream / "nvidia" / "redistrib_13.0.0.json").read_text())
    cuda = knowledge_dir / "cuda.yaml"
    cuda.write_text("\n".join(line for line in cuda.read_text().splitlines() if '{cuda: "13.0"' not in line) + "\n")
    code, out = run("--from", str(upstream), "--knowledge-dir", str(knowledge_dir), "--write", "--as-of", "2026-12-03")
    assert code == 0, out
    assert f"+ cuda.yaml toolkit_drivers 13.0: min_driver {doc['nvidia_driver']['version']}" in out
    rows = yaml.safe_load(cuda.read_text())["toolkit_drivers"]
    assert [r["cuda"] for r in rows[:5]] == ["13.3", "13.2", "13.1", "13.0", "12.9"]
    assert rows[3]["min_driver"] == "580.65.06" and "redistrib_13.0.0.json" in rows[3]["source"]
    assert 'version: "2026.12.2"' in cuda.read_text()


# --- sources it cannot parse ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("nvidia/redistrib_12.8.0.json", b'{"release_date": "2025-01-23", "release_label": "12.8.0", "cuda_nvcc": {',
         "not JSON"),
        ("nvidia/redistrib_12.8.0.json", b'{"release_label": "12.8.0", "cuda_nvcc": {"version": "12.8.61"}}',
         "no `nvidia_driver` entry"),
        ("nvidia/redistrib_12.8.0.json", b'{"release_label": "12.9.0", "nvidia_driver": {"version": "575.51.03"}}',
         "does not match the file name"),
        ("pypi/torch.json", b'{"info": {"name": "diffusers"}, "releases": {}}', "PyPI's project JSON for torch"),
        ("pypi/transformers/5.21.0.METADATA", b"Metadata-Version: 2.4\nName: transformers\nVersion: 5.20.0\n",
         "found Version '5.20.0'"),
        ("pytorch/torch.html", b"\xff\xfe not text", "not UTF-8"),
        ("pytorch/torch.html", b"<html><body>404 Not Found</body></html>", "not a PEP 503 index page"),
        ("pytorch/torch.html", (UPSTREAM / "pytorch" / "torch.html").read_bytes().replace(b"torch-", b"torchvision-"),
         "no torch-X.Y.Z wheel links"),
    ],
)
def test_a_source_it_cannot_parse_is_refused_naming_the_file(upstream: Path, knowledge_dir: Path, path: str,
                                                              content: bytes, message: str) -> None:
    (upstream / path).parent.mkdir(parents=True, exist_ok=True)
    (upstream / path).write_bytes(content)
    with pytest.raises(rf.UpstreamSourceError, match=message) as caught:
        rf.refresh(sources(upstream), shipped(), today=TODAY)
    assert caught.value.where == path
    before = {name: (knowledge_dir / name).read_text() for name in kb.FILES}
    code, out = run("--from", str(upstream), "--knowledge-dir", str(knowledge_dir), "--write")
    assert code == 2 and path in out and message in out and "Traceback" not in out
    assert {name: (knowledge_dir / name).read_text() for name in kb.FILES} == before


def test_the_command_needs_one_place_to_read_from(tmp_path: Path) -> None:
    code, out = run()
    assert code == 2 and "--from DIR or --online" in out
    code, out = run("--from", str(tmp_path / "absent"))
    assert code == 2 and "not a folder of upstream sources" in out
    (tmp_path / "empty").mkdir()
    code, out = run("--from", str(tmp_path / "empty"))
    assert code == 2 and "no nvidia/, pypi/ or pytorch/ sources" in out


# --- a wheel index page listing a release the saved real page (2023-10) predates ---------------------------------

# Shaped as download.pytorch.org/whl/torch/ (PEP 503): these lines are written for this test, not saved upstream.
_LINK = ('    <a href="/whl/{v}/torch-{t}%2B{v}-{py}-{py}-{plat}.whl#sha256=00">'
         "torch-{t}+{v}-{py}-{py}-{plat}.whl</a><br/>")
WHEEL_INDEX = "\n".join([
    "<!DOCTYPE html>", "<html>", "  <body>", "    <h1>Links for torch</h1>",
    *(_LINK.format(v=v, py=py, plat=plat, t=t) for v, py, plat, t in [
        ("cu126", "cp312", "manylinux_2_28_x86_64", "2.15.0"), ("cu130", "cp312", "manylinux_2_28_x86_64", "2.15.0"),
        ("cu132", "cp313", "manylinux_2_28_x86_64", "2.15.0"), ("cu132", "cp313", "win_amd64", "2.15.0"),
        ("cu129", "cp313", "manylinux_2_28_x86_64", "2.16.0.dev20261201"),
        ("cpu", "cp312", "manylinux_2_28_x86_64", "2.15.0")]),
    "  </body>", "</html>", ""])


def test_a_wheel_index_page_adds_the_torch_release_pypi_has(upstream: Path, knowledge_dir: Path) -> None:
    (upstream / "pytorch" / "cu-written-for-test.html").write_text(WHEEL_INDEX)
    variants = rf.torch_cuda_variants(sources(upstream))
    assert variants["2.15"][0] == (V("12.6"), V("13.0"), V("13.2")) and "2.16" not in variants  # no dev builds
    assert variants["2.0"][0] == (V("11.7"), V("11.8"))  # the real page still counts
    code, out = run("--from", str(upstream), "--knowledge-dir", str(knowledge_dir), "--write", "--as-of", "2026-12-03")
    assert code == 0, out
    assert "+ torch.yaml releases 2.15: cuda ['12.6', '13.0', '13.2'], python_min 3.11, python_max 3.15" in out
    newest = yaml.safe_load((knowledge_dir / "torch.yaml").read_text())["releases"][0]
    assert newest["torch"] == "2.15" and newest["cuda"] == ["12.6", "13.0", "13.2"]


# --- --online, for real, against a local HTTP server serving the saved copies at the upstream paths ---------------

class _Mirror(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `answers` replaces what a path answers with (status, body), to play a broken upstream."""

    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}
    requested: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requested.append(self.path)
        if self.path in self.answers:
            status, body = self.answers[self.path]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _mirror_tree(root: Path) -> Path:
    """pypi.org, NVIDIA's redist folder and download.pytorch.org laid out at their URL paths, from the saved copies.

    PyPI's per-release JSON (/pypi/<name>/<version>/json) is a STAND-IN: no real copy was saved (see the fixtures
    README), so each is rebuilt from that release's real wheel METADATA as {"info": {name, version,
    requires_python, requires_dist}}, the fields of PyPI's answer the refresher reads."""
    for name in rf.PYPI_PROJECTS:
        (root / "pypi" / name).mkdir(parents=True)
        shutil.copy(UPSTREAM / "pypi" / f"{name}.json", root / "pypi" / name / "json")
    for meta_path in sorted((UPSTREAM / "pypi").glob("*/*.METADATA")):
        meta = email.message_from_string(meta_path.read_text())
        release = root / "pypi" / meta_path.parent.name / meta_path.name.removesuffix(".METADATA")
        release.mkdir()
        (release / "json").write_text(json.dumps({"info": {
            "name": meta["Name"], "version": meta["Version"], "requires_python": meta["Requires-Python"],
            "requires_dist": meta.get_all("Requires-Dist") or None}}))
    redist = root / "compute" / "cuda" / "redist"
    redist.mkdir(parents=True)
    for manifest in (UPSTREAM / "nvidia").glob("redistrib_*.json"):
        shutil.copy(manifest, redist / manifest.name)
    (root / "whl" / "torch").mkdir(parents=True)
    shutil.copy(UPSTREAM / "pytorch" / "torch.html", root / "whl" / "torch" / "index.html")
    return root


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _mirror_tree(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def mirror(mirror_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SVDOPS_KNOWLEDGE_MIRROR", raising=False)
    _Mirror.answers, _Mirror.requested = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Mirror, directory=str(mirror_root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_online_fetches_parses_and_prints_what_changed(mirror: str, knowledge_dir: Path) -> None:
    libs = knowledge_dir / "libraries.yaml"
    text = libs.read_text()
    row_521 = next(line for line in text.splitlines() if 'version: "5.21.0"' in line)
    libs.write_text(text.replace(row_521 + "\n", ""))
    code, out = run("--online", "--mirror", mirror + "/", "--knowledge-dir", str(knowledge_dir), "--diff")
    assert code == 0, out
    # what it fetched: the upstream paths, under the mirror
    assert {"/pypi/torch/json", "/pypi/diffusers/json", "/pypi/transformers/json", "/compute/cuda/redist/",
            "/compute/cuda/redist/redistrib_12.8.0.json", "/whl/torch/", "/pypi/transformers/5.21.0/json"} <= set(
        _Mirror.requested)
    assert f"fetching {mirror}/pypi/torch/json" in out and f"fetching {mirror}/whl/torch/" in out
    # the same answer as from the saved folder: the removed row comes back, nothing else changes
    assert ("+ libraries.yaml libraries transformers 5.21.0: min_python 3.11, min_torch 2.6  [transformers 5.21.0 "
            "wheel METADATA (PyPI): Requires-Python >=3.11.0, extra torch: torch>=2.6]") in out
    changes = [line for line in out.splitlines() if re.match(r"[+~] \w+\.yaml ", line)]
    assert len(changes) == 1 and changes[0].startswith("+ libraries.yaml libraries transformers 5.21.0")
    assert "? torch.yaml releases 2.15:" in out and "+++ b/libraries.yaml" in out
    assert libs.read_text() == text.replace(row_521 + "\n", "")  # nothing written without --write
    code, out = run("--online", "--mirror", mirror, "--knowledge-dir", str(knowledge_dir), "--write",
                    "--as-of", "2027-01-05")
    assert code == 0 and "wrote cuda.yaml, libraries.yaml" in out
    assert row_521.split(", source:")[0] in libs.read_text()


def test_the_mirror_can_come_from_the_environment(mirror: str, knowledge_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVDOPS_KNOWLEDGE_MIRROR", mirror)
    code, out = run("--online", "--knowledge-dir", str(knowledge_dir))
    assert code == 0, out
    assert "/whl/torch/" in _Mirror.requested and not [line for line in out.splitlines()
                                                        if re.match(r"[+~] \w+\.yaml ", line)]


@pytest.mark.parametrize(
    ("path", "status", "body", "code", "message"),
    [
        ("/pypi/torch/json", 404, b"Not Found", 3, "the server answered HTTP 404"),
        ("/whl/torch/", 500, b"Internal Server Error", 3, "the server answered HTTP 500"),
        ("/pypi/diffusers/json", 200, b'{"info": {"name": "diffusers"', 2, "not JSON"),
        ("/compute/cuda/redist/redistrib_12.4.0.json", 200, b"<html>captive portal</html>", 2, "not JSON"),
        ("/compute/cuda/redist/", 200, b"<html><body>maintenance</body></html>", 2, "no redistrib_<X.Y.Z>.json links"),
        ("/whl/torch/", 200, b"<html><body>nothing here</body></html>", 2, "not a PEP 503 index page"),
        ("/pypi/transformers/5.21.0/json", 200, b'{"info": {"version": "5.20.0"}}', 2, "expected PyPI's JSON"),
    ],
)
def test_a_broken_source_online_is_a_clear_error_and_nothing_is_written(
        mirror: str, knowledge_dir: Path, path: str, status: int, body: bytes, code: int, message: str) -> None:
    (knowledge_dir / "torch.yaml").write_text((knowledge_dir / "torch.yaml").read_text().replace(
        'python_min: "3.10", python_max: "3.14", source: "PyTorch RELEASE.md Release Compatibility Matrix (https',
        'python_min: "3.9", python_max: "3.14", source: "PyTorch RELEASE.md Release Compatibility Matrix (https', 1))
    before = {name: (knowledge_dir / name).read_bytes() for name in kb.FILES}
    _Mirror.answers[path] = (status, body)
    result = CliRunner().invoke(cli, ["knowledge", "refresh", "--online", "--mirror", mirror,
                                      "--knowledge-dir", str(knowledge_dir), "--write"])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert message in error and f"error: {mirror}{path}: " in error  # names the URL, not a saved-copy path
    assert {name: (knowledge_dir / name).read_bytes() for name in kb.FILES} == before
    # the same tree answers properly, and then the pending change is written: the error was the only stop
    _Mirror.answers.clear()
    assert run("--online", "--mirror", mirror, "--knowledge-dir", str(knowledge_dir), "--write")[0] == 0
    assert (knowledge_dir / "torch.yaml").read_bytes() != before["torch.yaml"]


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/", "127.0.0.1:8000", "http://user:pw@127.0.0.1/",
                                 "http://127.0.0.1/?x=1"])
def test_a_mirror_that_is_not_an_http_base_url_is_refused(bad: str, knowledge_dir: Path) -> None:
    code, out = run("--online", "--mirror", bad, "--knowledge-dir", str(knowledge_dir))
    assert code == 2 and "not an http(s) base URL" in out


def test_mirror_goes_with_online(knowledge_dir: Path) -> None:
    code, out = run("--from", str(UPSTREAM), "--mirror", "http://127.0.0.1:1", "--knowledge-dir", str(knowledge_dir))
    assert code == 2 and "--mirror goes with --online" in out


def test_an_unreachable_mirror_is_exit_3(knowledge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        code, out = run("--online", "--mirror", f"http://127.0.0.1:{port}", "--knowledge-dir", str(knowledge_dir))
    assert code == 3 and f"http://127.0.0.1:{port}/pypi/torch/json: cannot fetch" in out
