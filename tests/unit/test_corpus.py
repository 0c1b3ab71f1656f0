"""Real command outputs from public repositories (tests/fixtures/corpus, provenance in its README),
each parsed with svdops' parsers and checked against an independent reading of the same file."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from svdops.host.probe.driver import loaded_driver_version, module_behind_userspace
from svdops.host.probe.gpu import parse_nvidia_smi_xml
from svdops.host.probe.storage import parse_mdstat
from svdops.host.probe.topology import parse_topo_matrix
from svdops.versions import Version

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
XMLS = sorted((CORPUS / "smi_xml").glob("*.xml"))
TOPOS = sorted((CORPUS / "topo").glob("*.txt"))
MDSTATS = sorted(p for p in (CORPUS / "mdstat").iterdir() if p.name != "expected.json")
MD_EXPECTED = json.loads((CORPUS / "mdstat" / "expected.json").read_text())


def test_corpus_holds_at_least_40_real_outputs_each_with_provenance():
    files = [*XMLS, *TOPOS, *MDSTATS]
    assert len(files) >= 40
    readme = (CORPUS / "README.md").read_text()
    for path in files:
        assert path.name in readme, f"{path.name} has no provenance line in the corpus README"


@pytest.mark.parametrize("path", XMLS, ids=lambda p: p.name)
def test_smi_xml_gpus_match_an_etree_reading(path):
    text = path.read_text()
    root = ET.fromstring(text)
    gpus = root.findall("gpu")
    report = parse_nvidia_smi_xml(text)
    attached = int(root.findtext("attached_gpus") or len(gpus))
    if attached == len(gpus):
        assert report.problems == ()
    else:  # telegraf's A100 file: one GPU of four (queried with -i, or cut); the parser says so
        assert report.problems == (f"nvidia-smi says {attached} attached GPU(s) but describes {len(gpus)}",)
    assert [g.name for g in report.gpus] == [g.findtext("product_name").strip() for g in gpus]
    assert [g.memory_total_mib for g in report.gpus] == [
        int(g.findtext("fb_memory_usage/total").split()[0]) for g in gpus
    ]
    assert [g.uuid for g in report.gpus] == [g.findtext("uuid").strip() for g in gpus]
    assert str(report.driver_version) == root.findtext("driver_version").strip()


def _xml(name: str) -> str:
    return (CORPUS / "smi_xml" / name).read_text()


def test_mig_devices_are_the_usable_gpus_with_their_own_memory():
    # netdata: an A100-SXM4-40GB in MIG mode, split into two 3g.20gb slices (R510)
    root = ET.fromstring(_xml("netdata__a100-sxm4-mig.xml"))
    slices = root.findall("gpu/mig_devices/mig_device")
    (gpu,) = parse_nvidia_smi_xml(_xml("netdata__a100-sxm4-mig.xml")).gpus
    assert gpu.mig_enabled is True
    assert gpu.memory_total_mib == 40960  # the whole board
    assert len(gpu.mig_devices) == len(slices) == 2
    assert [m.memory_total_mib for m in gpu.mig_devices] == [
        int(s.findtext("fb_memory_usage/total").split()[0]) for s in slices
    ] == [19968, 19968]
    assert [m.multiprocessor_count for m in gpu.mig_devices] == [42, 42]
    assert [(m.gpu_instance_id, m.compute_instance_id) for m in gpu.mig_devices] == [(1, 0), (2, 0)]


def test_a100_80gb_in_four_20gb_slices():
    # telegraf: A100-SXM4-80GB on R535 in MIG mode, four 1g.20gb slices: each process gets
    # 19968 MiB (19.5 GiB), not 80 GiB
    root = ET.fromstring(_xml("telegraf__a100-sxm4-v12.xml"))
    slices = root.findall("gpu/mig_devices/mig_device")
    (gpu,) = parse_nvidia_smi_xml(_xml("telegraf__a100-sxm4-v12.xml")).gpus
    assert gpu.memory_total_mib == 81920 and gpu.mig_enabled
    assert [m.memory_total_mib for m in gpu.mig_devices] == [
        int(s.findtext("fb_memory_usage/total").split()[0]) for s in slices
    ] == [19968] * 4


def test_no_mig_devices_when_mig_is_off_or_absent():
    for name in ("telegraf__a10g.xml", "netdata__tesla-p100.xml", "telegraf__gt-1030.xml",
                 "netdata__rtx-4090-driver-535.xml"):
        assert all(g.mig_devices == () for g in parse_nvidia_smi_xml(_xml(name)).gpus)


def test_attached_gpus_is_cross_checked_with_the_gpu_elements():
    # a real two-GPU output (2x RTX 2070, R590) with its second <gpu> gone, as when a GPU falls off the bus
    text = _xml("telegraf__dual_2070-v13.xml")
    second = text.index("<gpu id=", text.index("<gpu id=") + 1)
    cut = text[:second] + text[text.index("</gpu>", second) + len("</gpu>"):]
    report = parse_nvidia_smi_xml(cut)
    assert len(report.gpus) == 1
    assert report.problems == ("nvidia-smi says 2 attached GPU(s) but describes 1",)


@pytest.mark.parametrize(("name", "driver"), [
    ("telegraf__gt-1030.xml", "470.74"),  # Pascal GP108: no open-module support
    ("it-novum__tesla-m10-390.94.xml", "390.94"),  # Maxwell GM107 (x4, vGPU host)
])
def test_gpus_svdops_cannot_name_have_no_compute_capability(name, driver):
    # The rules must not read None as "new enough for open modules": see the corpus README
    report = parse_nvidia_smi_xml(_xml(name))
    assert str(report.driver_version) == driver
    assert report.gpus and all(g.compute_capability is None for g in report.gpus)


def _topo_rows(text: str) -> list[str]:
    """GPU rows counted by hand: lines that start with GPUn and hold an X (the diagonal)."""
    return [ln for ln in text.splitlines() if re.match(r"\s*GPU\d+\s", ln) and re.search(r"(^|\s)X(\s|$)", ln)]


@pytest.mark.parametrize("path", TOPOS, ids=lambda p: p.name)
def test_topo_gpu_count_and_links_match_a_hand_count(path):
    text = path.read_text()
    rows = _topo_rows(text)
    topo = parse_topo_matrix(text)
    assert topo.gpu_count == len(rows) > 0
    # every pair of GPUs has exactly one link, and NV# counts agree with the cell text
    n = len(rows)
    assert len(topo.links) == n * (n - 1) // 2
    for link in topo.links:
        cells = re.split(r"\t| {2,}", rows[link.gpu_a].strip())
        assert cells[link.gpu_b + 1].strip() == link.kind


def test_topo_header_without_its_leading_blank_cell():
    # the 8x A100 output as a .strip() leaves it (vLLM's collect_env does): the header's
    # leading empty cell is gone, so the header starts with GPU0 like the rows do
    text = (CORPUS / "topo" / "xuesongtap__8xa100-nv12-17nics.txt").read_text()
    lines = text.splitlines()
    stripped = "\n".join([lines[1].strip(), *lines[2:]])
    assert stripped.startswith("GPU0")
    topo = parse_topo_matrix(stripped)
    assert topo.gpu_count == 8
    assert {link.kind for link in topo.links} == {"NV12"}
    assert [a.numa_affinity for a in topo.affinity] == ["0"] * 8


def test_h800_numa_affinity_from_a_truncated_terminal_copy():
    topo = parse_topo_matrix((CORPUS / "topo" / "llm-action__8xh800-nv8-truncated.txt").read_text())
    assert [a.numa_affinity for a in topo.affinity] == ["0"] * 4 + ["1"] * 4
    assert {link.nvlinks for link in topo.links} == {8}


@pytest.mark.parametrize("path", MDSTATS, ids=lambda p: p.name)
def test_mdstat_matches_the_hand_reading(path):
    expected = MD_EXPECTED[path.name]
    arrays = parse_mdstat(path.read_text())
    got = [{
        "name": a.name, "level": a.level, "state": a.state, "members": list(a.members),
        "failed": list(a.failed_members), "spares": list(a.spare_members), "total": a.devices_total,
        "up": a.devices_up, "recovering": a.recovering, "waiting": a.sync_waiting, "container": a.container,
        "blocks": None if a.size_bytes is None else a.size_bytes // 1024,
    } for a in arrays]
    assert got == expected


def _md(name: str):
    return {a.name: a for a in parse_mdstat((CORPUS / "mdstat" / name).read_text())}


def test_imsm_container_is_not_an_array():
    # md0 : inactive sda[1](S) sdb[0](S) / 5288 blocks super external:imsm
    arrays = _md("check_raid__issue34")
    assert set(arrays) == {"md127"}
    assert arrays["md127"].state == "active" and not arrays["md127"].degraded


def test_resync_delayed_is_waiting_not_running():
    md1 = _md("check_raid__pr28_2")["md1"]
    assert md1.degraded and not md1.recovering and md1.sync_waiting == "DELAYED"
    md1 = _md("check_raid__pr77")["md1"]
    assert not md1.degraded and not md1.recovering and md1.sync_waiting == "DELAYED"


def test_member_counts_leave_out_spares_and_failed_disks():
    md0 = _md("check_raid__mdstat-failed")["md0"]  # raid5 [3/2], sdc1 failed
    assert len(md0.members) == 2 == md0.devices_up and md0.devices_total == 3
    assert md0.all_members == ("sdb1", "sdd1", "sdc1")
    md0 = _md("check_raid__issue43_reshape")["md0"]  # raid6 [6/4] with 2 spares being reshaped in
    assert len(md0.members) == 4 and md0.spare_members == ("sde1", "sdf1")


def test_loaded_module_older_than_userspace_is_what_runs():
    userspace = parse_nvidia_smi_xml(_xml("telegraf__a100-sxm4-v12.xml")).driver_version  # 535.54.03
    assert userspace == Version.parse("535.54.03")
    older = Version.parse("535.54.02")
    assert module_behind_userspace(userspace, older)
    assert loaded_driver_version(userspace, older) == older
    assert loaded_driver_version(userspace, None) == userspace
    assert not module_behind_userspace(userspace, userspace)
