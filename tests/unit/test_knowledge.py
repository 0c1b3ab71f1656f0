"""The knowledge base: every row sourced, and the lookups the rules and the bench depend on."""

from __future__ import annotations

import datetime
from importlib import resources
from typing import Any

import pytest
import yaml

from svdops.judge import knowledge as kb
from svdops.versions import Version

V = Version.parse


def _rows(node: Any) -> list[dict[str, Any]]:
    """Every mapping inside a list anywhere in the document: the data rows."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for value in node.values():
            found += _rows(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                found.append(item)
            found += _rows(item)
    return found


@pytest.mark.parametrize("name", kb.FILES)
def test_every_file_is_versioned_and_every_row_sourced(name: str) -> None:
    data = yaml.safe_load(resources.files("svdops.judge.knowledge").joinpath(name).read_text(encoding="utf-8"))
    assert isinstance(data["version"], str)
    rows = _rows(data)
    assert rows
    for row in rows:
        assert isinstance(row.get("source"), str) and row["source"].strip(), row


def test_the_whole_base_parses() -> None:
    assert set(kb.knowledge().versions) == {*kb.FILES, "scenarios.yaml"}
    assert "cuda.yaml=" in kb.version()


@pytest.mark.parametrize(
    ("cuda", "ga", "compat"),
    [
        ("13.3", "610.43.02", "580"),
        ("13.2", "595.45.04", "580"),
        ("13.1", "590.44.01", "580"),
        ("13.0", "580.65.06", "580"),
        ("13.0.88", "580.65.06", "580"),
        ("12.9", "575.51.03", "525.60.13"),
        ("12.8", "570.26", "525.60.13"),
        ("12.6", "560.28.03", "525.60.13"),
        ("12.5", "555.42.02", "525.60.13"),
        ("12.4", "550.54.14", "525.60.13"),
        ("12.3", "545.23.06", "525.60.13"),
        ("12.2", "535.54.03", "525.60.13"),
        ("12.1", "530.30.02", "525.60.13"),
        ("12.0", "525.60.13", "525.60.13"),
        ("11.8", "520.61.05", "450.80.02"),
        ("11.3", "465.19.01", "450.80.02"),
    ],
)
def test_min_driver_for_cuda(cuda: str, ga: str, compat: str) -> None:
    req = kb.min_driver_for_cuda(V(cuda))
    assert req.min_driver_ga == V(ga)
    assert req.min_driver_compat == V(compat)
    assert req.source


def test_every_ga_minor_of_cuda_12_and_13_has_a_row() -> None:
    known = set(kb.known_cuda_versions())
    # 12.7 was never released; every other minor from 12.0 to the newest 13.x is
    assert {V(f"12.{m}") for m in (0, 1, 2, 3, 4, 5, 6, 8, 9)} <= known
    assert {V(f"13.{m}") for m in range(4)} <= known


def test_a_cuda_minor_without_a_row_never_borrows_the_one_below() -> None:
    """nvcc 13.2 once passed on R580 because the 13.0 row stood in for it."""
    with pytest.raises(kb.UnknownKnowledgeError, match=r"CUDA 12\.7"):
        kb.min_driver_for_cuda(V("12.7"))
    with pytest.raises(kb.UnknownKnowledgeError, match="newer than svdops's knowledge, as of 2026-12-02"):
        kb.min_driver_for_cuda(V("13.4"))
    assert kb.cuda_is_newer(V("13.4.1")) and not kb.cuda_is_newer(V("13.3.73")) and not kb.cuda_is_newer(V("12.7"))


def test_unknown_cuda_major_raises_or_is_none() -> None:
    with pytest.raises(kb.UnknownKnowledgeError, match=r"CUDA 14\.0"):
        kb.min_driver_for_cuda(V("14.0"))
    assert kb.find_min_driver_for_cuda(V("14.0")) is None


@pytest.mark.parametrize(
    ("cuda", "driver", "level"),
    [
        ("13.0", "580.159.04", "full"),
        ("13.0", "575.57.08", "none"),
        ("13.2", "580.159.04", "compat"),  # the nvcc 13.2 on R580: minor-version compatibility only
        ("13.2", "595.45.04", "full"),
        ("13.3", "595.71.05", "compat"),
        ("13.3", "575.57.08", "none"),
        ("12.8", "535.183.01", "compat"),
        ("12.8", "570.26", "full"),
        ("12.4", "470.256.02", "none"),
        ("11.3", "465.19.01", "full"),
    ],
)
def test_driver_levels(cuda: str, driver: str, level: str) -> None:
    assert kb.min_driver_for_cuda(V(cuda)).level(V(driver)) == level


@pytest.mark.parametrize(
    ("torch", "variants", "py_min"),
    [
        ("2.14.1", ("12.6", "13.0", "13.2"), "3.10"),
        ("2.13.0+cpu", ("12.6", "13.0", "13.2"), "3.10"),
        ("2.12.0", ("12.6", "13.0", "13.2"), "3.10"),
        ("2.11.0", ("12.6", "12.8", "13.0"), "3.10"),
        ("2.7.1", ("11.8", "12.6", "12.8"), "3.9"),
        ("2.6.0", ("11.8", "12.4", "12.6"), "3.9"),
        ("2.5.1", ("11.8", "12.1", "12.4"), "3.9"),
        ("2.4.0", ("11.8", "12.1", "12.4"), "3.8"),
        ("1.10.2", ("10.2", "11.1", "11.3"), "3.6"),
    ],
)
def test_torch_release(torch: str, variants: tuple[str, ...], py_min: str) -> None:
    release = kb.torch_release(V(torch))
    assert release.cuda_variants == tuple(V(v) for v in variants)
    assert release.python_min == V(py_min)


def test_torch_release_python_support_and_unknown() -> None:
    assert kb.torch_release(V("2.11")).supports_python(V("3.12.3"))
    assert not kb.torch_release(V("1.10")).supports_python(V("3.12.3"))
    with pytest.raises(kb.UnknownKnowledgeError):
        kb.torch_release(V("3.0"))
    assert kb.find_torch_release(V("3.0")) is None
    # PyPI has cp310-cp314 wheels of torch 2.13 and 2.14 and none for 3.15 (tests/fixtures/upstream/pypi)
    assert kb.torch_release(V("2.13")).supports_python(V("3.14.0"))
    assert not kb.torch_release(V("2.13")).supports_python(V("3.15.0"))
    assert not kb.torch_release(V("2.14")).supports_python(V("3.15.0"))
    # 2.5 ships cp313 wheels (3.13 "experimental" in RELEASE.md): pip installs it, so it is supported
    assert kb.torch_release(V("2.5")).supports_python(V("3.13.1"))


def test_a_torch_newer_than_the_knowledge_is_unknown() -> None:
    # torch 2.15.0 is on PyPI but not in the knowledge: nothing about 2.14 may stand in for it
    assert kb.torch_is_newer(V("2.15.0")) and not kb.torch_is_newer(V("2.14.1"))
    assert kb.find_torch_release(V("2.15.0")) is None
    assert kb.torch_arch_list(V("2.15.0"), V("13.0")) is None


def test_torch_arch_lists() -> None:
    archs = kb.torch_arch_list(V("2.11.0"), V("13.0"))
    assert archs == ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
    assert kb.torch_arch_list(V("2.6.0"), V("12.6")) is not None
    assert kb.torch_arch_list(V("2.11.0"), V("11.0")) is None
    cu130 = kb.torch_arch_list(V("2.13.0"), V("13.0"))
    assert cu130 is not None and "compute_120" in cu130 and "sm_70" not in cu130  # sm_120 as PTX, no Volta
    assert kb.torch_arch_list(V("2.14.1"), V("13.2")) == cu130
    cu126 = kb.torch_arch_list(V("2.12.0"), V("12.6"))
    assert cu126 is not None and "sm_70" in cu126 and "sm_100" not in cu126
    # only a release's own row answers: 2.8 has no cu128 row, and 2.7's does not stand in for it
    assert kb.torch_arch_list(V("2.8.0"), V("12.8")) is None
    assert not hasattr(kb, "nearest_torch_arch_list")


@pytest.mark.parametrize(
    ("archs", "cc", "runs"),
    [
        (("sm_80", "sm_86", "sm_90"), "8.9", True),  # sm_86 cubin runs on 8.9
        (("sm_80", "sm_86", "sm_90"), "9.0", True),
        (("sm_75", "sm_80"), "7.0", False),  # Volta is not in a cu128+ build
        (("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"), "12.0", False),  # 5090 on cu126
        (("sm_80", "compute_90"), "12.0", True),  # PTX JITs forward
        (("sm_90a",), "9.0", True),
        (("sm_90a",), "10.0", False),
        (("sm_100",), "10.3", True),
    ],
)
def test_arch_runs_on(archs: tuple[str, ...], cc: str, runs: bool) -> None:
    assert kb.arch_runs_on(archs, V(cc)) is runs


def test_arch_support_per_cuda_major() -> None:
    assert kb.arch_support(12) is not None and kb.arch_support(12).min_cc == V("5.0")  # type: ignore[union-attr]
    cuda13 = kb.arch_support(13)
    assert cuda13 is not None and cuda13.min_cc == V("7.5") and "sm_70" in cuda13.dropped
    assert kb.arch_support(99) is None


@pytest.mark.parametrize(
    ("name", "version", "py", "torch"),
    [
        ("diffusers", "0.42.1", "3.11", "2.6"),
        ("diffusers", "0.42", "3.11", "2.6"),
        ("diffusers", "0.24.0", "3.8", "1.4"),
        ("diffusers", "0.30.3", "3.8", "1.4"),
        ("diffusers", "0.36.0", "3.8", "1.4"),
        ("diffusers", "0.37.1", "3.10", "1.4"),  # 0.37 raised Requires-Python to 3.10
        ("diffusers", "0.38.0", "3.10", "1.4"),
        ("diffusers", "0.39.0", "3.10", "2.6"),  # 0.39 raised its torch extra to 2.6
        ("diffusers", "0.40.0", "3.10", "2.6"),
        ("diffusers", "0.41.0", "3.10", "2.6"),
        ("transformers", "5.25.0", "3.11", "2.6"),
        ("transformers", "5.24.0", "3.11", "2.6"),
        ("transformers", "5.17.0", "3.10", "2.5"),
        ("transformers", "5.21.0", "3.11", "2.6"),  # 5.21 raised Requires-Python to 3.11
        ("transformers", "5.20.2", "3.10", "2.6"),  # 5.20 raised its torch extra to 2.6
        ("transformers", "5.15.0", "3.10", "2.5"),
        ("transformers", "5.1.0", "3.10", "2.4"),
        ("transformers", "4.57.1", "3.9", "2.2"),
    ],
)
def test_library_requirements(name: str, version: str, py: str, torch: str) -> None:
    req = kb.library_requirements(name, V(version))
    assert req.min_python == V(py)
    assert req.min_torch == V(torch)


def test_library_requirements_unknown() -> None:
    with pytest.raises(kb.UnknownKnowledgeError):
        kb.library_requirements("diffusers", V("0.10.0"))
    with pytest.raises(kb.UnknownKnowledgeError):
        kb.library_requirements("leftpad", V("1.0"))
    assert kb.find_library_requirements("diffusers", V("0.10.0")) is None


def test_a_library_release_newer_than_the_knowledge_is_unknown() -> None:
    with pytest.raises(kb.UnknownKnowledgeError, match="newer than svdops's knowledge"):
        kb.library_requirements("diffusers", V("0.43.0"))
    assert kb.library_is_newer("diffusers", V("0.43.0")) and not kb.library_is_newer("diffusers", V("0.42.7"))
    assert kb.find_library_requirements("transformers", V("5.26.0")) is None
    assert kb.library_is_newer("transformers", V("6.0.0"))


def test_todays_pipeline_needs_python_311_and_torch_26() -> None:
    req = kb.reference_pipeline_requirements()
    assert (req.min_python, req.min_torch) == (V("3.11"), V("2.6"))
    assert kb.svd_pipeline().diffusers_min == V("0.24.0")


@pytest.mark.parametrize(
    ("scenario", "gib", "gpu"),
    [("svd-xt-25f", 15.6, True), ("svd-14f", 15.5, True), ("low-vram", 8.0, True), ("tiny", 0.0, False)],
)
def test_scenarios(scenario: str, gib: float, gpu: bool) -> None:
    assert kb.scenario_vram_gib(scenario) == gib
    assert kb.scenario(scenario).needs_gpu is gpu


def test_scenario_needs_follow_the_anchors() -> None:
    xt = kb.scenario("svd-xt-25f")
    assert xt.peak_allocated_gib == 15.06 and xt.peak_reserved_gib == 30.79
    assert xt.peak_allocated_gib < xt.min_vram_gib < 16  # fits a 16 GiB card, not a 12 GiB one
    assert kb.scenario_vram_gib("low-vram") <= 12  # low-vram fits 12-16 GB cards
    with pytest.raises(kb.UnknownKnowledgeError, match="known: svd-xt-25f"):
        kb.scenario_vram_gib("svd-xl")


@pytest.mark.parametrize(
    ("name", "short", "fp16", "mem_gb", "cc", "nvlink"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4, 80, "9.0", 4),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.5, 80, "9.0", 4),
        ("NVIDIA H200", "H200", 989.4, 141, "9.0", 4),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB", 312, 80, "8.0", 3),
        ("NVIDIA A100-SXM4-40GB", "A100 SXM 40GB", 312, 40, "8.0", 3),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB", 312, 80, "8.0", 3),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB", 312, 40, "8.0", 3),
        ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB", 125, 32, "7.0", 2),
        ("NVIDIA GeForce RTX 3090", "RTX 3090", 71, 24, "8.6", 3),
        ("NVIDIA GeForce RTX 4090", "RTX 4090", 165.2, 24, "8.9", None),
        ("NVIDIA GeForce RTX 5090", "RTX 5090", 209.5, 32, "12.0", None),
        ("NVIDIA L4", "L4", 121, 24, "8.9", None),
        ("NVIDIA L40S", "L40S", 362.05, 48, "8.9", None),
        ("NVIDIA A10", "A10", 125, 24, "8.6", None),
        ("NVIDIA B200", "B200", 2250, 180, "10.0", 5),
    ],
)
def test_gpu_specs_by_nvidia_smi_name(name: str, short: str, fp16: float, mem_gb: float, cc: str,
                                      nvlink: int | None) -> None:
    spec = kb.gpu_spec(name)
    assert spec.name == short
    assert spec.fp16_tflops == fp16 and spec.memory_gb == mem_gb
    assert spec.compute_capability == V(cc) and spec.nvlink_gen == nvlink
    assert spec.memory_bandwidth_gbps > 0 and spec.source
    assert kb.gpu_spec(short) is spec  # the short name works too


def test_gpu_spec_unknown_and_volta_has_no_bf16() -> None:
    assert kb.gpu_spec("Tesla V100-SXM2-16GB").bf16_tflops is None
    assert kb.find_gpu_spec("NVIDIA Quadro K6000") is None
    with pytest.raises(kb.UnknownKnowledgeError, match="known: H100 SXM"):
        kb.gpu_spec("NVIDIA Quadro K6000")
    assert kb.gpu_spec("nvidia  h100 80gb hbm3").name == "H100 SXM"  # spacing and case do not matter


@pytest.mark.parametrize(
    ("min_driver", "ccs", "package"),
    [
        ("580.65.06", ("9.0",), "nvidia-driver-580-open"),
        ("570.26", ("8.9",), "nvidia-driver-580-open"),  # R570 ended in February 2026, R535 in June
        ("560.28.03", ("8.0",), "nvidia-driver-580-open"),
        ("465.19.01", ("7.0",), "nvidia-driver-580"),  # Volta: proprietary, and R580 is its last branch
        ("525.60.13", ("7.0", "9.0"), "nvidia-driver-580"),
        ("595.45.04", ("9.0",), "nvidia-driver-595-open"),
        ("590.44.01", ("9.0",), "nvidia-driver-595-open"),  # a production branch before a new-feature one
        ("600.0", ("9.0",), "nvidia-driver-620-open"),  # R610 (new feature) ended in August 2026
        ("595.45.04", ("7.0",), None),  # no supported branch drives Volta and reaches CUDA 13.2
        ("700.0", ("9.0",), None),
        ("580.65.06", (), "nvidia-driver-580"),  # no GPU known: no open-module advice
        ("580.65.06", (None,), "nvidia-driver-580"),  # a GPU of unknown compute capability: none either
        ("580.65.06", ("9.0", None), "nvidia-driver-580"),
    ],
)
def test_driver_package(min_driver: str, ccs: tuple[str | None, ...], package: str | None) -> None:
    assert kb.driver_package(V(min_driver), tuple(V(c) if c else None for c in ccs)) == package


def test_driver_package_for_grace_hopper_and_blackwell_is_open() -> None:
    assert kb.driver_package(V("580.65.06"), (None,), gpu_names=("NVIDIA GH200 480GB",)) == "nvidia-driver-580-open"
    assert kb.driver_package(V("580.65.06"), (V("10.0"),)) == "nvidia-driver-580-open"


def test_hints_never_pick_an_ended_branch() -> None:
    today = kb.knowledge().as_of
    for minimum in ("418.39", "525.60.13", "550.54.14", "570.26", "580.65.06", "590.44.01", "610.43.02"):
        for ccs in ((V("9.0"),), (V("7.0"),), ()):
            package = kb.driver_package(V(minimum), ccs)
            if package is not None:
                row = kb.driver_branch(int(package.split("-")[2]))
                assert row is not None and not row.ended(today), (minimum, ccs, package)


@pytest.mark.parametrize(
    ("branch", "kind", "ended"),
    [
        (470, "legacy", True),
        (535, "ltsb", True),  # June 2026
        (550, "production", True),
        (570, "production", True),  # February 2026
        (580, "ltsb", False),  # June 2028
        (590, "new-feature", False),
        (595, "production", False),  # March 2027
        (610, "new-feature", True),  # August 2026
        (620, "ltsb", False),  # September 2029
    ],
)
def test_driver_branch_lifecycle(branch: int, kind: str, ended: bool) -> None:
    row = kb.driver_branch(branch)
    assert row is not None and row.kind == kind and row.source
    assert row.ended(kb.knowledge().as_of) is ended


def test_driver_branch_end_of_life_is_a_month() -> None:
    r535 = kb.driver_branch(535)
    assert r535 is not None and r535.eol is not None
    assert not r535.ended(datetime.date(2026, 5, 31)) and r535.ended(datetime.date(2026, 6, 1))
    assert "end of life June 2026" in r535.label
    assert [b.branch for b in kb.supported_branches(datetime.date(2026, 12, 2))] == [580, 595, 620]
    assert kb.newest_driver_branch().branch == 620
    assert kb.driver_branch(615) is None


@pytest.mark.parametrize(
    ("cc", "name", "can_open", "needs_open"),
    [
        ("9.0", "NVIDIA GH200 480GB", True, True),  # Grace Hopper: open only, though cc 9.0
        ("9.0", "NVIDIA H100 80GB HBM3", True, False),
        ("10.0", "NVIDIA B200", True, True),
        ("12.0", "NVIDIA GeForce RTX 5090", True, True),
        ("7.5", "Tesla T4", True, False),
        ("7.0", "Tesla V100-SXM2-32GB", False, False),  # pre-Turing: proprietary only
        ("6.1", "NVIDIA GeForce GT 1030", False, False),
        (None, "NVIDIA GeForce GT 1030", False, False),  # unknown: never open-module advice
    ],
)
def test_open_and_proprietary_modules(cc: str | None, name: str, can_open: bool, needs_open: bool) -> None:
    version = V(cc) if cc else None
    assert kb.can_use_open_modules(version) is can_open
    assert kb.requires_open_modules(version, name) is needs_open


def test_knowledge_has_one_as_of_date() -> None:
    assert kb.knowledge_as_of() == "2026-12-02"
    text = kb.newer_than_knowledge("CUDA 13.4")
    assert text.startswith("CUDA 13.4 is newer than svdops's knowledge (as of 2026-12-02)")
    assert "svdops/judge/knowledge/" in text and "upgrade svdops" in text
    assert kb.day_of("2027-04-01T10:00:00Z") == datetime.date(2027, 4, 1)
    assert kb.day_of("not a date") == kb.knowledge().as_of


@pytest.mark.parametrize(
    ("name", "cc"),
    [
        ("Tesla K80", "3.7"),
        ("Tesla K40m", "3.5"),
        ("NVIDIA GeForce GTX 680", "3.0"),
        ("Tesla M10", "5.0"),  # the Tesla M10 on R390: no capability reported
        ("Tesla M60", "5.2"),
        ("NVIDIA GeForce GTX TITAN X", "5.2"),
        ("NVIDIA TITAN Xp", "6.1"),
        ("Tesla P100-PCIE-16GB", "6.0"),
        ("NVIDIA GeForce GT 1030", "6.1"),  # the GT 1030 on R470
        ("Quadro P4000", "6.1"),
        ("NVIDIA TITAN V", "7.0"),
        ("Tesla T4", "7.5"),
        ("Quadro RTX 5000", "7.5"),  # Turing, not a GeForce RTX 50 card
        ("NVIDIA GeForce GTX 1660 SUPER", "7.5"),
        ("NVIDIA A10G", "8.6"),
        ("NVIDIA RTX A4000", "8.6"),
        ("NVIDIA A100-SXM4-40GB", "8.0"),
        ("NVIDIA RTX 4000 Ada Generation", "8.9"),  # Ada, not a GeForce RTX 40 card
        ("NVIDIA L40S", "8.9"),
        ("NVIDIA GH200 480GB", "9.0"),
        ("NVIDIA H100 NVL", "9.0"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA B300 SXM6 AC", "10.3"),
        ("NVIDIA GeForce RTX 5060 Ti", "12.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),
        ("NVIDIA Graphics Device", None),  # what nvidia-smi prints for a GPU its driver cannot name
    ],
)
def test_compute_capability_from_the_gpu_name(name: str, cc: str | None) -> None:
    assert kb.compute_capability_of(name) == (V(cc) if cc else None)


def test_the_name_table_agrees_with_the_spec_table() -> None:
    """Two tables from different sources: a spec's nvidia-smi names resolve to its capability by pattern too."""
    for spec in kb.gpu_specs():
        for name in spec.names:
            generation = next(g for g in kb.knowledge().gpu_generations if g.match.search(name))
            assert generation.compute_capability == spec.compute_capability, name


def test_version_names_the_knowledge_date() -> None:
    from click.testing import CliRunner

    from svdops import __version__
    from svdops.cli.main import cli

    for flag in ("--version", "-V"):
        result = CliRunner().invoke(cli, [flag], prog_name="svdops")
        assert result.exit_code == 0
        assert f"svdops {__version__} (knowledge as of 2026-12-02;" in result.stdout


def test_torch_index_urls() -> None:
    assert kb.torch_index_url(V("13.0")) == "https://download.pytorch.org/whl/cu130"
    assert kb.torch_index_url(None) == "https://download.pytorch.org/whl/cpu"
    assert kb.cuda_tag(V("11.3")) == "cu113"


def test_one_scenario_registry_serves_the_bench_and_the_knowledge_base() -> None:
    """The bench's scenarios and the knowledge base's memory rows come from one file and cannot drift."""
    from svdops.bench.config import load_scenario
    from svdops.scenarios import scenario_names, scenarios_document

    assert tuple(scenario_names()) == kb.scenario_names()
    assert kb.knowledge().versions["scenarios.yaml"] == scenarios_document()["version"]
    for name in scenario_names():
        bench, memory = load_scenario(name), kb.scenario(name)
        assert bench.needs_gpu == memory.needs_gpu, name
        assert memory.source.strip(), name
        assert (memory.min_vram_gib >= memory.peak_allocated_gib) if bench.needs_gpu else memory.min_vram_gib == 0, name
    assert not resources.files("svdops.judge.knowledge").joinpath("scenarios.yaml").is_file()


@pytest.mark.parametrize("where", [("svdops.judge.knowledge", name) for name in (*kb.FILES, "xid.yaml")]
                         + [("svdops", "data/scenarios.yaml")])
def test_shipped_data_reads_the_same_through_libyaml(where: tuple[str, str]) -> None:
    """load_shipped_yaml takes libyaml's loader for speed; it must give exactly PyYAML's own values."""
    from svdops.scenarios import load_shipped_yaml

    text = resources.files(where[0]).joinpath(where[1]).read_text(encoding="utf-8")
    assert load_shipped_yaml(text) == yaml.safe_load(text)
