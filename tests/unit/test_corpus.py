"""Real command outputs from public repositories (tests/fixtures/corpus, provenance in its README),
each parsed with svdops' parsers and checked against an independent reading of the same file."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from svdops.cli.render import facts_table, file_console
from svdops.findings import Finding, Status
from svdops.host.facts import BlockDevice, CudaFacts, DriverFacts, HostFacts, StorageFacts
from svdops.host.probe.driver import loaded_driver_version, module_behind_userspace
from svdops.host.probe.gpu import parse_nvidia_smi_xml
from svdops.host.probe.storage import parse_lsblk_json, parse_mdstat
from svdops.host.probe.topology import parse_topo_matrix
from svdops.judge import rules
from svdops.judge.profiles import (
    DataArrayRequirements,
    DriverRequirements,
    GpuRequirements,
    Profile,
    ScratchRequirements,
    StorageRequirements,
    VersionSpec,
    load_profile,
)
from svdops.judge.rules.common import driver_version_of
from svdops.versions import Version

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
XMLS = sorted((CORPUS / "smi_xml").glob("*.xml"))
TOPOS = sorted((CORPUS / "topo").glob("*.txt"))
MDSTATS = sorted(p for p in (CORPUS / "mdstat").iterdir() if p.name != "expected.json")
MD_EXPECTED = json.loads((CORPUS / "mdstat" / "expected.json").read_text())
LSBLKS = sorted((CORPUS / "lsblk").glob("*.json"))


def test_corpus_holds_at_least_40_real_outputs_each_with_provenance():
    files = [*XMLS, *TOPOS, *MDSTATS, *LSBLKS]
    assert len(files) >= 40 and len(LSBLKS) >= 4
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


@pytest.mark.parametrize("name", ["ml-engineering__8xh100-nv18-network.txt",
                                  "ml-engineering__8xh100-nv18-performance.txt"])
def test_h100_nv18_all_to_all(name):
    # 8x H100 SXM (HGX/DGX H100): every pair over NVSwitch, 18 links each; two NUMA nodes of four GPUs.
    # Read by eye: 8 rows, 28 pairs, every off-diagonal cell NV18, NUMA 0 for GPU0-3 and 1 for GPU4-7.
    topo = parse_topo_matrix((CORPUS / "topo" / name).read_text())
    assert topo.gpu_count == 8 and len(topo.links) == 28
    assert {(link.kind, link.nvlinks) for link in topo.links} == {("NV18", 18)}
    assert [a.numa_affinity for a in topo.affinity] == ["0"] * 4 + ["1"] * 4
    assert topo.affinity[0].cpu_affinity in ("0-51", "0-51,104-155")
    assert topo.affinity[7].cpu_affinity in ("52-103", "52-103,156-207")


def test_dgx1_v100_hybrid_cube_mesh():
    # DGX-1 (8x V100 SXM2): each GPU has NVLink to four others, two of them doubled (NV2), and no
    # link to the other three (SYS); four NIC columns, CPU affinity and no NUMA column.
    topo = parse_topo_matrix((CORPUS / "topo" / "msccl-tools__dgx1-8xv100-nv1-nv2-4nics.txt").read_text())
    kinds = {(link.gpu_a, link.gpu_b): link.kind for link in topo.links}
    assert topo.gpu_count == 8 and len(kinds) == 28
    # the matrix read by eye, upper triangle
    assert {pair for pair, kind in kinds.items() if kind == "NV2"} == {
        (0, 3), (0, 4), (1, 2), (1, 5), (2, 3), (4, 7), (5, 6), (6, 7)}
    assert {pair for pair, kind in kinds.items() if kind == "NV1"} == {
        (0, 1), (0, 2), (1, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7)}
    assert sum(kind == "SYS" for kind in kinds.values()) == 12
    for gpu in range(8):
        peers = [link for link in topo.links if gpu in (link.gpu_a, link.gpu_b) and link.nvlinks]
        assert sorted(link.nvlinks for link in peers) == [1, 1, 2, 2], gpu
    assert [a.cpu_affinity for a in topo.affinity] == ["0-19,40-59"] * 4 + ["20-39,60-79"] * 4
    assert all(a.numa_affinity is None for a in topo.affinity)


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


# --- the rules on these real outputs (issue 12 §4) ----------------------------------------------

def _gpu_host(name: str, *, module: Version | None = None, flavor: str = "proprietary") -> HostFacts:
    """A host whose GPUs and driver are what the real `nvidia-smi -q -x` output says (the loaded module is the
    same version unless `module` says otherwise)."""
    report = parse_nvidia_smi_xml(_xml(name))
    return HostFacts("corpus", "2026-06-01T00:00:00Z", f"recorded:{name}", gpus=report.gpus,
                     driver=DriverFacts(userspace_version=report.driver_version,
                                        kernel_module_version=module or report.driver_version,
                                        kernel_module_flavor=flavor))


def _md_host(name: str) -> HostFacts:
    return HostFacts("corpus", "2026-06-01T00:00:00Z", f"recorded:{name}",
                     storage=StorageFacts(md_arrays=tuple(_md(name).values())))


def _prof(**requirements: object) -> Profile:
    return Profile(name="corpus", description="", source=CORPUS, **requirements)  # type: ignore[arg-type]


def _one(findings: list[Finding], rule_id: str, subject: str | None = None) -> Finding:
    (found,) = [f for f in findings if f.id == rule_id and (subject is None or f.subject == subject)]
    return found


@pytest.mark.parametrize(("name", "cc"), [("telegraf__gt-1030.xml", "6.1"), ("it-novum__tesla-m10-390.94.xml", "5.0")])
def test_old_driver_gpus_are_judged_by_the_gpu_table(name, cc):
    # R470/R390 do not report the compute capability; the knowledge's GPU table names it (NVIDIA's CUDA GPUs page)
    facts = _gpu_host(name)
    profile = _prof(gpu=GpuRequirements(min_compute_capability=Version.parse("7.0")),
                      driver=DriverRequirements(flavor="open"))
    findings = rules.evaluate(facts, profile)
    cap = _one(findings, "gpu.compute-capability")
    assert cap.status is Status.FAIL and f"cc {cc}" in cap.actual
    flavour = _one(findings, "driver.flavor")  # pre-Turing: the profile's `open` cannot be had
    assert flavour.status is Status.PASS and flavour.expected.startswith("proprietary")
    for finding in findings:
        assert "-open" not in finding.hint, finding


def test_a_gpu_of_unknown_capability_gets_no_open_module_advice():
    # telegraf's GTX 1660 Ti on R418 calls itself "Graphics Device": no capability reported, no name to look up
    facts = _gpu_host("telegraf__gtx-1660-ti.xml")
    assert facts.gpus[0].name == "Graphics Device" and facts.gpus[0].compute_capability is None
    findings = rules.evaluate(facts, _prof(driver=DriverRequirements(flavor="open"),
                                             gpu=GpuRequirements(min_compute_capability=Version.parse("7.0"))))
    for finding in findings:
        assert "-open" not in finding.hint, finding
    flavour = _one(findings, "driver.flavor")
    assert flavour.status is not Status.PASS and "compute capability unknown" in flavour.actual
    assert "https://developer.nvidia.com/cuda-gpus" in flavour.hint
    assert _one(findings, "gpu.compute-capability").status is Status.UNKNOWN


def test_mig_slices_are_what_the_vram_rules_judge():
    # telegraf: an A100-SXM4-80GB split into four 19968 MiB slices; a CUDA process gets one slice: 19.5 GiB
    facts = _gpu_host("telegraf__a100-sxm4-v12.xml")
    needs_24 = _prof(gpu=GpuRequirements(min_count=1, min_vram_gib=24))
    vram = _one(rules.evaluate(facts, needs_24), "gpu.vram")
    assert vram.status is Status.FAIL and "19.5 GiB" in vram.actual and "MIG" in vram.actual
    needs_15 = _prof(gpu=GpuRequirements(min_count=1, min_vram_gib=15.6))
    vram = _one(rules.evaluate(facts, needs_15), "gpu.vram")
    assert vram.status is Status.PASS and "19.5 GiB" in vram.actual and "MIG" in vram.actual
    svd = _one(rules.evaluate(facts, load_profile("svd-host")), "svd.vram")  # svd-xt-25f: 15.6 GiB
    assert svd.status is Status.PASS and "19.5 GiB" in svd.actual and "MIG slice" in svd.actual
    assert "80.0" not in svd.actual.split("(")[0]


def test_mig_devices_are_what_the_gpu_count_counts():
    facts = _gpu_host("telegraf__a100-sxm4-v12.xml")
    count = _one(rules.evaluate(facts, _prof(gpu=GpuRequirements(min_count=1))), "gpu.count")
    assert count.status is Status.PASS and count.actual.startswith("4 ") and "MIG" in count.actual
    count = _one(rules.evaluate(facts, _prof(gpu=GpuRequirements(min_count=8))), "gpu.count")
    assert count.status is Status.FAIL and count.actual.startswith("4 ")
    # netdata: an A100-SXM4-40GB in two 3g.20gb slices
    facts = _gpu_host("netdata__a100-sxm4-mig.xml")
    count = _one(rules.evaluate(facts, _prof(gpu=GpuRequirements(min_count=2, max_count=2))), "gpu.count")
    assert count.status is Status.PASS and count.actual.startswith("2 ")


def _data_need(n: int) -> Profile:
    return _prof(storage=StorageRequirements(data=DataArrayRequirements(levels=("raid5", "raid6"),
                                                                                    min_devices=n)))


def test_a_degraded_array_counts_only_its_working_devices():
    # raid6 [6/4] recovering two disks: mdstat lists all six, four are in sync
    facts = _md_host("check_raid__issue43_recovery")
    data = _one(rules.evaluate(facts, _data_need(5)), "storage.data")
    assert data.status is Status.FAIL and "4 of 6 devices up" in data.actual
    assert _one(rules.evaluate(facts, _data_need(4)), "storage.data").status is Status.PASS
    # a RAID6 at [4/3] (constructed from the same array: one of four out) does not meet a four-device need
    md0 = _md("check_raid__issue43_recovery")["md0"]
    three = replace(md0, members=md0.members[:4], devices_total=4, devices_up=3)
    facts = replace(facts, storage=StorageFacts(md_arrays=(three,)))
    assert _one(rules.evaluate(facts, _data_need(4)), "storage.data").status is Status.FAIL
    scratch = _prof(storage=StorageRequirements(scratch=ScratchRequirements(level="raid6", min_devices=4,
                                                                                        nvme=False)))
    assert _one(rules.evaluate(facts, scratch), "storage.scratch").status is Status.FAIL


def test_md_health_prints_counts_as_mdstat_does():
    # raid5 [3/2] [U_U], sdc1 failed
    health = _one(rules.evaluate(_md_host("check_raid__mdstat-failed"), _prof()), "storage.md-health")
    assert "[3/2]" in health.actual and "2 of 3 devices up" in health.actual and "[2/3]" not in health.actual


@pytest.mark.parametrize(("name", "status"), [("check_raid__pr28_2", Status.WARN), ("check_raid__pr77", Status.WARN)])
def test_a_delayed_resync_is_waiting_not_running(name, status):
    health = _one(rules.evaluate(_md_host(name), _prof()), "storage.md-health", "md1")
    assert health.status is status
    assert "resync waiting (DELAYED)" in health.actual and "running" not in health.actual


@pytest.mark.parametrize(("name", "array", "failed"), [("check_raid__mdstat-failed", "md0", "sdc1"),
                                                       ("check_raid__issue164", "md1", "sdh1")])
def test_a_failed_disk_is_removed_and_a_new_one_added(name, array, failed):
    health = _one(rules.evaluate(_md_host(name), _prof()), "storage.md-health", array)
    assert health.status is Status.FAIL
    assert f"sudo mdadm --manage /dev/{array} --remove /dev/{failed}" in health.hint
    assert f"--add /dev/{failed}" not in health.hint
    assert f"sudo mdadm --manage /dev/{array} --add /dev/NEW_DISK" in health.hint
    assert "NEW_DISK" in health.hint.split("--add /dev/NEW_DISK", 1)[1]  # the placeholder said in words


def test_a_hostile_member_name_is_quoted_in_the_fix():
    md0 = _md("check_raid__mdstat-failed")["md0"]
    facts = _md_host("check_raid__mdstat-failed")
    facts = replace(facts, storage=StorageFacts(md_arrays=(replace(md0, failed_members=("sdc1;reboot",)),)))
    health = _one(rules.evaluate(facts, _prof()), "storage.md-health")
    assert "--remove '/dev/sdc1;reboot'" in health.hint


def test_a_spare_nvme_is_not_free():
    # pr185_1: raid5 with spares; the same array on NVMe names: its spare is in the array, not free for scratch
    arrays = _md("check_raid__pr185_1")
    (md,) = [a for a in arrays.values() if a.spare_members][:1]
    names = {m: f"nvme{i}n1" for i, m in enumerate(md.all_members)}
    nvme = replace(md, members=tuple(names[m] for m in md.members),
                   spare_members=tuple(names[m] for m in md.spare_members),
                   failed_members=tuple(names[m] for m in md.failed_members))
    disks = tuple(BlockDevice(n, "disk", 10**12, transport="nvme") for n in names.values())
    facts = HostFacts("corpus", "2026-06-01T00:00:00Z", "recorded:x",
                      storage=StorageFacts(md_arrays=(nvme,), block_devices=disks))
    scratch = _prof(storage=StorageRequirements(scratch=ScratchRequirements(level="raid0",
                                                                                        min_devices=1)))
    finding = _one(rules.evaluate(facts, scratch), "storage.scratch")
    assert "free now: none" in finding.hint
    for spare in nvme.spare_members:
        assert f"/dev/{spare}" not in finding.hint


def test_compatibility_is_judged_on_the_loaded_module():
    # the real A100 recording's userspace driver (535.54.03) with a loaded module one patch older, 535.54.02
    # (a constructed pair: installed, not rebooted)
    facts = _gpu_host("telegraf__a100-sxm4-v12.xml", module=Version.parse("535.54.02"))
    assert driver_version_of(facts) == Version.parse("535.54.02")
    version = _one(rules.evaluate(facts, _prof(driver=DriverRequirements(
        version=VersionSpec.parse(">=535.54.03")))), "driver.version")
    assert version.status is Status.FAIL and "535.54.02" in version.actual and "reboot" in version.hint
    # CUDA 12.2 wants 535.54.03 (its GA driver): the loaded 535.54.02 runs it only under minor-version
    # compatibility, and the fix is the reboot that loads the installed driver, not another install
    nvcc = replace(facts, cuda=CudaFacts(toolkit_version=Version.parse("12.2.91")))
    compat = _one(rules.evaluate(nvcc, _prof(gpu=GpuRequirements(min_count=1))), "driver.cuda-toolkit-compat")
    assert compat.status is Status.WARN and "driver 535.54.02" in compat.actual
    assert compat.hint.startswith("sudo reboot") and "apt-get" not in compat.hint
    same = _gpu_host("telegraf__a100-sxm4-v12.xml")
    assert driver_version_of(same) == Version.parse("535.54.03")
    compat = _one(rules.evaluate(replace(nvcc, driver=same.driver), _prof()), "driver.cuda-toolkit-compat")
    assert compat.status is Status.PASS


def test_mig_on_without_mig_devices_gives_no_process_a_gpu():
    # netdata's A100-40GB in MIG mode with its two slices taken away (constructed): CUDA sees no device
    facts = _gpu_host("netdata__a100-sxm4-mig.xml")
    facts = replace(facts, gpus=tuple(replace(g, mig_devices=()) for g in facts.gpus))
    findings = rules.evaluate(facts, load_profile("svd-host"))
    count = _one(findings, "gpu.count")
    assert count.status is Status.FAIL and count.actual.startswith("0 ") and "-mig 0" in count.hint
    vram = _one(findings, "svd.vram")
    assert vram.status is Status.FAIL and "no MIG device" in vram.actual


# --- lsblk -J from several util-linux versions ------------------------------------------------------------------

def _lsblk(name: str) -> dict[str, BlockDevice]:
    """Every device of a corpus lsblk output, children included, by name (an LV under four loops: the last)."""
    found: dict[str, BlockDevice] = {}

    def walk(devices: tuple[BlockDevice, ...]) -> None:
        for dev in devices:
            found[dev.name] = dev
            walk(dev.children)

    devices = parse_lsblk_json((CORPUS / "lsblk" / name).read_text())
    assert devices is not None
    walk(devices)
    return found


@pytest.mark.parametrize("path", LSBLKS, ids=lambda p: p.name)
def test_lsblk_devices_match_a_json_reading(path):
    # the independent reading: json.loads, walked by hand; sizes as integers wherever lsblk printed bytes
    raw: list[dict] = []

    def walk(items: list[dict]) -> None:
        for item in items:
            raw.append(item)
            walk(item.get("children") or [])

    walk(json.loads(path.read_text())["blockdevices"])
    parsed = _lsblk(path.name)
    assert set(parsed) == {item["name"] for item in raw}
    for item in raw:
        dev = parsed[item["name"]]
        assert dev.type == item["type"]
        assert dev.size_bytes > 0, item["name"]  # never 0: a disk with size 0 is left out of the summary
        if re.fullmatch(r"\d+", str(item["size"])):
            assert dev.size_bytes == int(item["size"])


def test_util_linux_2_32_strings_with_b_chromeos_caroline_and_eve():
    # `lsblk -J -b` of util-linux 2.32: every value a string, "rm": null on one partition (Caroline).
    # tast's own test of the same outputs expects these disk sizes (hardware_test.go): the second reading
    caroline, eve = _lsblk("tast__caroline-util-linux-2.32__J-b.json"), _lsblk("tast__eve-util-linux-2.32__J-b.json")
    assert caroline["mmcblk0"].size_bytes == 31268536320 and caroline["mmcblk0"].type == "disk"
    assert [c.name for c in caroline["mmcblk0"].children] == ["mmcblk0p1", "mmcblk0p2", "mmcblk0p3", "mmcblk0p12"]
    assert caroline["mmcblk0p1"].mountpoint == "/mnt/stateful_partition"
    assert caroline["zram0"].mountpoint == "[SWAP]" and caroline["zram0"].size_bytes == 5907427328
    assert eve["nvme0n1"].size_bytes == 512110190592 and eve["nvme0n1"].is_nvme
    assert eve["nvme0n1p1"].size_bytes == 503358750720
    assert caroline["loop0"].rotational is None  # ROTA was not asked for: unknown, not False


def test_lsblk_without_b_old_util_linux_keeps_every_disk_with_its_size():
    # autoval-ssd's `lsblk -J` (util-linux < 2.33, no -b): "size": "1.8T". Read by eye: sda 1.8T with four
    # partitions, nvme0n1 1.7T, loop0 100G. lsblk rounds to 3 significant digits, so do the bounds here.
    devices = _lsblk("autoval-ssd__lsblk-J-human-sizes.json")
    tib, gib, mib = 2**40, 2**30, 2**20
    for name, value, unit in [("sda", 1.8, tib), ("nvme0n1", 1.7, tib), ("loop0", 100, gib), ("sda4", 1.8, tib),
                              ("sda1", 243, mib), ("sda2", 488, mib), ("sda3", 1.9, gib)]:
        assert abs(devices[name].size_bytes - value * unit) <= 0.05 * unit, name
    assert [d.mountpoint for d in devices["sda"].children] == ["/boot/efi", "/boot", "[SWAP]", "/"]
    # the summary lists both disks (it left out size-0 disks: the defect of `lsblk -J` without -b)
    facts = HostFacts("corpus", "2026-06-01T00:00:00Z", "recorded:autoval",
                      storage=StorageFacts(block_devices=tuple(d for d in devices.values() if d.name in
                                                               ("loop0", "sda", "nvme0n1"))))
    buffer = io.StringIO()
    facts_table(facts, file_console(buffer, 120))
    disks = [line for line in buffer.getvalue().splitlines() if re.match(r"^\W*(sda|nvme0n1)\b", line)]
    assert len(disks) == 2 and "1.8 TiB" in disks[0] and "1.7 TiB" in disks[1]


# util-linux's own sysfs dumps (tests/ts/lsblk/dumps), read by this machine's lsblk 2.38.1 with --sysroot; the
# second reading is the dump itself: sys/block/*/size (512-byte sectors) and the dump's lsblk table output
SECTORS = {"sda": 468862128, "sdb": 156301488, "nvme0n1": 468862128, "nvme0n1p2": 419430400,
           "nvme0n1p3": 33111183, "sda1": 409600, "sdb1": 156299440}


@pytest.mark.parametrize("name", ["util-linux-2.38.1__simple-nvme__J-b-o-svdops.json",
                                  "util-linux-2.38.1__simple-lvm__J-b-o-svdops.json"])
def test_util_linux_2_38_booleans_and_numbers_with_the_probes_columns(name):
    devices = _lsblk(name)
    for dev, sectors in SECTORS.items():
        assert devices[dev].size_bytes == sectors * 512, dev
    mounts = {d.name: d.mountpoint for d in devices.values() if d.mountpoint}
    assert {k: v for k, v in mounts.items()} == {"sda1": "/boot/efi", "sda2": "/boot", "sda4": "/",
                                                  "sdb1": "/home/archive", "nvme0n1p2": "/home",
                                                  "nvme0n1p3": "/home/test"}
    assert (devices["sdb"].rotational, devices["sda"].rotational, devices["nvme0n1"].rotational) == (True, False, False)
    assert devices["nvme0n1"].transport == "nvme" and devices["nvme0n1"].model == "KINGSTON SKC1000240G"
    assert devices["sdb"].model == "WDC WD800JD-00MS"
    if "lvm" in name:  # one LV on four loop devices: lsblk lists it under each of them
        top = parse_lsblk_json((CORPUS / "lsblk" / name).read_text())
        assert top is not None
        loops = [d for d in top if d.type == "loop"]
        assert len(loops) == 4 and all(d.size_bytes == 20480 * 512 for d in loops)
        assert {c.name for d in loops for c in d.children} == {"vg_foo.4059-lv_foo.4059"}
        assert devices["vg_foo.4059-lv_foo.4059"].size_bytes == 65536 * 512


def test_util_linux_2_38_default_columns_mountpoints_array_and_human_sizes():
    # plain `lsblk -J` of 2.37+: "mountpoints": [...] instead of "mountpoint", sizes like "953.9G", rm/ro booleans
    devices = _lsblk("util-linux-2.38.1__multi-devs-bcachefs__J.json")
    # the dump's own table (lsblk 2.43-devel, `lsblk-multi-devs-bcachefs-basic`), read by eye; sdc2 is the
    # bcachefs second member that 2.38.1 does not yet show as mounted (the regression the dump was made for)
    assert {d.name: d.mountpoint for d in devices.values() if d.mountpoint} == {
        "sda1": "/boot/efi", "sda2": "/boot", "sda3": "/var", "sda4": "/", "sda5": "/var/cache", "sdb1": "/mnt/virt",
        "sdc1": "/mnt/test", "nvme0n1p1": "/home/data", "nvme0n1p2": "/home/work", "nvme0n1p3": "/home/mail",
        "nvme0n1p4": "/home/kzak"}
    assert devices["sdc2"].mountpoint is None and devices["nvme0n1"].mountpoint is None
    for dev, sectors in {"sda": 468862128, "sdb": 156301488, "sdc": 1024000, "nvme0n1": 2000409264}.items():
        assert abs(devices[dev].size_bytes - sectors * 512) <= 0.001 * sectors * 512, dev
    assert devices["sr0"].type == "rom" and devices["sr0"].size_bytes == 1024 * 2**20
