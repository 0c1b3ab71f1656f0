"""Passive GPU health (issue 19) on real outputs: tests/fixtures/corpus/health (provenance in its README),
the corpus's real `nvidia-smi -q -x` files and the recorded hosts' dmesg. Two XML files are real recordings
edited minimally to show counters no public file was found with; their names end in `__constructed` and
the README says what was changed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from svdops.findings import Status
from svdops.host.facts import HostFacts, KernelLogFacts, Note
from svdops.host.probe import commands as cmd
from svdops.host.probe.gather import gather_facts
from svdops.host.probe.gpu import parse_nvidia_smi_xml
from svdops.host.probe.health import (
    parse_gpu_health,
    parse_kernel_log,
    parse_nvlink_errors,
    parse_nvlink_status,
)
from svdops.host.shell import RecordedShell
from svdops.judge import rules
from svdops.judge.knowledge.xid import ACTIONS, catalogue, find_xid
from svdops.judge.profiles import load_profile

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
HEALTH = CORPUS / "health"
HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def _gpus(path: Path) -> list[ET.Element]:
    return ET.parse(path).getroot().findall("gpu")


def _findings(facts: HostFacts, profile: str, rule_id: str) -> list[rules.Finding]:  # type: ignore[name-defined]
    return [f for f in rules.evaluate(facts, load_profile(profile)) if f.id == rule_id]


# --- memory errors --------------------------------------------------------------------------------

def test_real_p100_with_corrected_errors_warns_once() -> None:
    # netdata's Tesla P100 (real): 3 single-bit errors over its lifetime, none uncorrectable
    health = parse_gpu_health(_gpus(CORPUS / "smi_xml" / "netdata__tesla-p100.xml")[0])
    assert health.ecc_aggregate_corrected == 3 and health.ecc_aggregate_uncorrected == 0
    report = parse_nvidia_smi_xml((CORPUS / "smi_xml" / "netdata__tesla-p100.xml").read_text())
    facts = HostFacts("p100", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    (finding,) = _findings(facts, "svd-host", "health.memory")
    assert finding.status is Status.WARN and "3 corrected ECC error(s)" in finding.actual


def test_constructed_pending_remap_on_the_recorded_h100_fails_with_a_reset() -> None:
    # the real H100 recording with remapped_row_pending Yes and one uncorrectable error (README: constructed)
    report = parse_nvidia_smi_xml((HEALTH / "h100-sxm__remap-pending-uncorrectable__constructed.xml").read_text())
    health = report.gpus[0].health
    assert (health.remapped_rows_pending, health.remapped_rows_uncorrectable, health.ecc_volatile_uncorrected) == \
        (True, 1, 1)
    facts = HostFacts("h100", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    (finding,) = _findings(facts, "svd-host", "health.memory")
    assert finding.status is Status.FAIL
    assert "row remap is pending" in finding.actual and "sudo nvidia-smi -r -i 0" in finding.hint


def test_constructed_retired_pages_pending_on_a_real_p100() -> None:
    report = parse_nvidia_smi_xml((HEALTH / "tesla-p100__retired-pages-pending__constructed.xml").read_text())
    health = report.gpus[0].health
    assert (health.retired_pages_dbe, health.retired_pages_sbe, health.retired_pages_pending) == (2, 0, True)
    facts = HostFacts("p100", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    (finding,) = _findings(facts, "svd-host", "health.memory")
    assert finding.status is Status.FAIL and "page retirement is pending" in finding.actual
    assert "2 retired page(s) of the 64" in finding.actual


@pytest.mark.parametrize("path", sorted((CORPUS / "smi_xml").glob("*.xml")), ids=lambda p: p.name)
def test_every_real_xml_reads_its_health_without_inventing_errors(path: Path) -> None:
    """Each corpus file, read independently with xml.etree: no counter the file does not hold."""
    for gpu in _gpus(path):
        health = parse_gpu_health(gpu)
        volatile = gpu.find("ecc_errors/volatile/dram_uncorrectable")
        if volatile is not None and (volatile.text or "").strip().isdigit():
            assert health.ecc_volatile_uncorrected is not None
            assert health.ecc_volatile_uncorrected >= int((volatile.text or "0").strip())
        if gpu.find("remapped_rows/remapped_row_pending") is None:
            assert health.remapped_rows_pending is None
        assert not health.remapped_rows_failure and not health.retired_pages_pending


# --- PCIe -----------------------------------------------------------------------------------------

def test_real_rtx4090_on_a_gen3_host_is_capped_by_the_host() -> None:
    # netdata's RTX 4090: the GPU does Gen4, the host port Gen3; idle at Gen1 (not judged at idle)
    report = parse_nvidia_smi_xml((CORPUS / "smi_xml" / "netdata__rtx-4090-driver-535.xml").read_text())
    facts = HostFacts("4090", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    (finding,) = _findings(facts, "svd-host", "health.pcie")
    assert finding.status is Status.WARN
    assert "host's port runs PCIe Gen3, the GPU Gen4" in finding.actual and "idle" in finding.actual


@pytest.mark.parametrize(("name", "status"), [
    ("telegraf__rtx-3060-v12.xml", Status.PASS),  # Gen1 x16 at idle of Gen4 x16: trained down, fine
    ("telegraf__dual_2070-v13.xml", Status.WARN),  # x8 of x16 (a desktop board's x8/x8 split)
    ("telegraf__rtx-3080-v13.xml", Status.PASS),  # under load (65 %) at Gen4 x16: full link
])
def test_real_links_judged_with_idle_in_mind(name: str, status: Status) -> None:
    report = parse_nvidia_smi_xml((CORPUS / "smi_xml" / name).read_text())
    facts = HostFacts("x", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    assert {f.status for f in _findings(facts, "svd-host", "health.pcie")} == {status}


# --- NVLink ---------------------------------------------------------------------------------------

def test_real_nvlink_status_with_two_inactive_links() -> None:
    status = parse_nvlink_status((HEALTH / "nvlink-s__azhpc-diagnostics-73__v100-two-inactive.txt").read_text())
    _uuid, links = status[3]
    assert [link.link for link in links if not link.active] == [3, 5]
    assert [link.speed_gbps for link in links if link.active] == [25.781] * 4


def test_real_nvlink_error_counters() -> None:
    errors = parse_nvlink_errors((HEALTH / "nvlink-e__scuffedsquared__2xv100-sxm2-crc-replay.txt").read_text())
    assert errors[0][3] == {"replay": 211, "recovery": 0, "crc": 0}
    assert errors[2][0] == {"replay": 2, "recovery": 0, "crc": 65535}


def test_real_nvlink_outputs_judged(tmp_path: Path) -> None:
    """A recorded host replayed with the real `nvlink -s` (two links down) and `nvlink -e` (CRC errors)."""
    host = tmp_path / "v100"
    host.mkdir()
    xml = (HOSTS / "h100-x8-nvlink" / "nvidia-smi-q.xml").read_text()
    (host / cmd.NVIDIA_SMI_XML.key).write_text(xml)
    status = (HEALTH / "nvlink-s__azhpc-diagnostics-73__v100-two-inactive.txt").read_text().replace("GPU 3:", "GPU 0:")
    (host / cmd.NVIDIA_SMI_NVLINK_STATUS.key).write_text(status)
    errors = (HEALTH / "nvlink-e__scuffedsquared__2xv100-sxm2-crc-replay.txt").read_text()
    (host / cmd.NVIDIA_SMI_NVLINK_ERRORS.key).write_text(errors)
    facts = gather_facts(RecordedShell(host))
    by_gpu = {f.subject: f for f in _findings(facts, "svd-host", "health.nvlink")}
    assert by_gpu["GPU0"].status is Status.FAIL and "links 3, 5 inactive of 6" in by_gpu["GPU0"].actual
    assert "link 3 211 replay error(s)" in by_gpu["GPU0"].actual


def test_recorded_hgx_nvlinks_all_up() -> None:
    facts = gather_facts(RecordedShell(HOSTS / "h100-x8-nvlink"))
    findings = _findings(facts, "h100-sxm-x8-nvlink", "health.nvlink")
    assert len(findings) == 8 and {f.status for f in findings} == {Status.PASS}
    assert "18 link(s) active, 478 GB/s" in findings[0].actual


# --- the kernel log -------------------------------------------------------------------------------

def test_real_dmesg_ctime_xids() -> None:
    read = parse_kernel_log((HEALTH / "kernel-log__gpud-pr46__xid-13-109-dmesg-ctime.txt").read_text(), "dmesg")
    assert read.facts is not None
    (x13, x109) = read.facts.xids
    assert (x13.code, x13.count, x13.devices, x13.last_time) == (13, 3, ("0000:cb:00",), "Fri Aug 30 11:43:09 2024")
    assert (x109.code, x109.count, x109.last_time) == (109, 1, "Fri Aug 30 11:43:14 2024")
    assert "CTX SWITCH TIMEOUT" in x109.last_message


def test_real_journal_xid_79_is_a_fail_with_a_reboot() -> None:
    read = parse_kernel_log((HEALTH / "kernel-log__open-gpu-kernel-modules-1151__xid-79-journal.txt").read_text(),
                            "journalctl -k")
    assert read.facts is not None and [(x.code, x.count, x.last_time) for x in read.facts.xids] == \
        [(79, 1, "May 18 19:02:39")]
    facts = replace(gather_facts(RecordedShell(HOSTS / "h100-sxm-ubuntu2404")), kernel_log=read.facts)
    (finding,) = _findings(facts, "svd-host", "health.xid")
    assert finding.status is Status.FAIL and finding.subject == "Xid 79"
    assert "GPU has fallen off the bus" in finding.actual and "reboot" in finding.hint


def test_real_xid_45_counts_per_device() -> None:
    read = parse_kernel_log((HEALTH / "kernel-log__open-gpu-kernel-modules-1150__xid-45-after-149.txt").read_text(),
                            "journalctl -k")
    assert read.facts is not None
    (x45,) = read.facts.xids
    assert x45.count == 7 and set(x45.devices) == {"0000:dc:00", "0000:ed:00", "0000:ba:00", "0000:97:00"}
    assert x45.last_time is None


def test_real_fallen_off_the_bus_without_an_xid_line_counts_as_79() -> None:
    read = parse_kernel_log((HEALTH / "kernel-log__nvsentinel-155__fallen-off-bus-no-xid.txt").read_text(), "dmesg")
    assert read.facts is not None
    (x79,) = read.facts.xids
    assert (x79.code, x79.count, x79.devices, x79.last_time) == (79, 1, ("0000:b3:00.0",), "1843 s after boot")


@pytest.mark.parametrize("host", ["h100-sxm-ubuntu2404", "h200-ubuntu2404", "kernel-module-mismatch"])
def test_recorded_dmesg_is_read_and_has_no_xid(host: str) -> None:
    facts = gather_facts(RecordedShell(HOSTS / host))
    assert facts.kernel_log.source == "dmesg" and facts.kernel_log.lines_read >= 5 and facts.kernel_log.xids == ()


@pytest.mark.parametrize("text", [
    "dmesg: read kernel buffer failed: Operation not permitted\n",
    "No journal files were found.\n-- No entries --\n",  # a container without a journal (seen here)
    "Hint: You are currently not seeing messages from other users and the system.\n"
    "      Users in groups 'adm', 'systemd-journal' can see all messages.\n-- No entries --\n",
])
def test_a_refused_kernel_log_is_not_an_empty_one(text: str) -> None:
    read = parse_kernel_log(text, "dmesg")
    assert read.facts is None and read.refused


def test_neither_log_readable_is_skipped_by_default_and_unknown_where_required(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    for item in (HOSTS / "h100-sxm-ubuntu2404").iterdir():
        if item.name != "dmesg-nvidia.txt":
            (host / item.name).write_bytes(item.read_bytes())
    (host / "dmesg-nvidia.txt").write_text("dmesg: read kernel buffer failed: Operation not permitted\n")
    facts = gather_facts(RecordedShell(host))
    assert facts.kernel_log == KernelLogFacts()
    assert "Operation not permitted" in (facts.note_for("kernel_log") or "")
    (skipped,) = _findings(facts, "svd-host", "health.xid")
    assert skipped.status is Status.SKIP and "Operation not permitted" in skipped.actual
    (unknown,) = _findings(facts, "h100-sxm-x8-nvlink", "health.xid")
    assert unknown.status is Status.UNKNOWN


def test_kernel_log_commands_filter_on_the_host() -> None:
    for command in (cmd.KERNEL_LOG_JOURNAL, cmd.KERNEL_LOG_DMESG):
        assert command in cmd.ALL and command.argv[:2] == ("sh", "-c") and "nvrm|xid|nvidia" in command.argv[2]
    assert cmd.KERNEL_LOG_JOURNAL.argv[2].startswith("journalctl -k -b --no-pager -o short-iso")
    assert {cmd.NVIDIA_SMI_NVLINK_STATUS, cmd.NVIDIA_SMI_NVLINK_ERRORS} <= set(cmd.ALL)


# --- thermals, fabric, the catalogue ---------------------------------------------------------------

def test_real_throttle_reasons_read() -> None:
    # telegraf's RTX 3090 (R590): idle, with the software power cap active (not a thermal reason)
    (gpu,) = _gpus(CORPUS / "smi_xml" / "telegraf__3090-v13.xml")
    assert parse_gpu_health(gpu).clocks_event_reasons == ("sw_power_cap",)
    report = parse_nvidia_smi_xml((CORPUS / "smi_xml" / "telegraf__3090-v13.xml").read_text())
    facts = HostFacts("3090", "2026-12-01T00:00:00Z", "corpus", gpus=report.gpus)
    assert {f.status for f in _findings(facts, "svd-host", "health.thermal")} == {Status.PASS}


def test_recorded_h100_fabric_not_reported_gives_no_finding() -> None:
    facts = gather_facts(RecordedShell(HOSTS / "h100-sxm-ubuntu2404"))
    assert facts.gpus[0].health.fabric_state is None
    assert _findings(facts, "h100-sxm-x8-nvlink", "health.fabric-manager") == []


def test_xid_catalogue_rows_are_sourced() -> None:
    rows = catalogue().rows
    assert {13, 31, 43, 45, 48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119} <= set(rows)
    for row in rows.values():
        assert row.action in ACTIONS and "docs.nvidia.com" in row.source
    assert find_xid(64) is not None and find_xid(64).action == "rma"  # type: ignore[union-attr]
    assert find_xid(99999) is None


def test_unknown_xid_warns_with_the_catalogue_address() -> None:
    facts = replace(gather_facts(RecordedShell(HOSTS / "h100-sxm-ubuntu2404")),
                    kernel_log=parse_kernel_log("[ 5.0] NVRM: Xid (PCI:0000:01:00): 4242, something\n", "dmesg").facts
                    or KernelLogFacts(), notes=(Note("x", "y"),))
    (finding,) = _findings(facts, "svd-host", "health.xid")
    assert finding.status is Status.WARN and "docs.nvidia.com/deploy/xid-errors" in finding.hint
