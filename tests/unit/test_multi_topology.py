"""Link type, expected bus bandwidth and NUMA pinning, from the recorded hosts' topo matrices."""

from __future__ import annotations

import dataclasses
import os

import pytest

from svdops.bench.multi.topology import (
    describe_links,
    expected_busbw,
    format_cpu_list,
    parse_cpu_list,
    pin_to_cpus,
)
from svdops.host.facts import GpuLink
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell


@pytest.fixture
def facts_of(host_dir):
    return lambda name: gather_facts(RecordedShell(host_dir(name)))


def test_eight_h100_on_nvswitch_expect_the_nvlink4_ring_figure(facts_of):
    report = describe_links(facts_of("h100-x8-nvlink"), range(8))
    assert report.link_type == "nvlink" and report.nvlink_gen == 4
    assert report.expected is not None and report.expected.busbw_gbps == 370.0
    assert len(report.pairs) == 28 and {kind for _, _, kind in report.pairs} == {"NV18"}
    assert report.affinity[0] == {"cpus": "0-55,112-167", "numa": "0"}
    assert report.affinity[7] == {"cpus": "56-111,168-223", "numa": "1"}
    assert report.warnings == ()
    assert report.to_dict()["expected_busbw_gbps"] == 370.0


def test_a100_pair_on_nvlink3(facts_of):
    report = describe_links(facts_of("seed-2023-ubuntu2004-a100x2"), (0, 1))
    assert report.link_type == "nvlink" and report.nvlink_gen == 3 and report.expected.busbw_gbps == 230.0


def test_a_pcie_pair_gets_the_pcie_generation_figure_and_no_warning(facts_of):
    report = describe_links(facts_of("pcie-pair-rtx4090"), (0, 1))
    assert report.link_type == "pcie" and report.pcie_gen == 4
    assert report.expected.busbw_gbps == 20.0
    assert report.warnings == ()  # GeForce cards have no NVLink to expect


def test_sxm_boards_talking_over_pcie_warn(facts_of):
    facts = facts_of("h100-x8-nvlink")
    degraded = tuple(
        GpuLink(link.gpu_a, link.gpu_b, "SYS") if {link.gpu_a, link.gpu_b} == {0, 4} else link
        for link in facts.topology.links
    )
    facts = dataclasses.replace(facts, topology=dataclasses.replace(facts.topology, links=degraded))
    report = describe_links(facts, (0, 4))
    assert report.link_type == "pcie"
    (warning,) = report.warnings
    assert "NVLink" in warning and "GPU0-GPU4 SYS" in warning and "fabricmanager" in warning
    assert report.expected.link == "pcie" and report.expected.gen == 5
    assert any("socket" in note for note in report.notes)


def test_no_gpus_several_hosts_and_missing_facts(facts_of):
    assert describe_links(None, ()).link_type is None
    assert "no GPU facts" in describe_links(None, (0, 1)).notes[0]
    one = describe_links(facts_of("h100-sxm-ubuntu2404"), (0,))
    assert one.link_type is None and one.expected is None and "one GPU" in one.notes[0]
    across = describe_links(facts_of("h100-x8-nvlink"), range(8), nnodes=2)
    assert across.expected is None and any("network" in note for note in across.notes)


def test_expected_table_lookup():
    assert expected_busbw("nvlink", 4).busbw_gbps == 370.0
    assert expected_busbw("pcie", 3).busbw_gbps == 10.0
    assert expected_busbw("nvlink", 9) is None and expected_busbw(None, None) is None


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0-3", {0, 1, 2, 3}), ("0-1,8-9", {0, 1, 8, 9}), ("5", {5}), ("", set()), (None, set()), ("3-1", set()),
     ("a-b", set()), ("0-55,112-167", set(range(56)) | set(range(112, 168)))],
)  # fmt: skip
def test_parse_cpu_list(text, cpus):
    assert parse_cpu_list(text) == cpus


def test_format_cpu_list_round_trips():
    assert format_cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert format_cpu_list([]) == ""
    assert parse_cpu_list(format_cpu_list([3, 4, 9])) == {3, 4, 9}


def test_pinning_keeps_within_the_allowed_cpus():
    allowed = os.sched_getaffinity(0)
    try:
        cpus, why = pin_to_cpus(format_cpu_list(sorted(allowed)) + ",100000")
        assert why is None and set(cpus) == allowed and os.sched_getaffinity(0) == allowed
        one = min(allowed)
        cpus, why = pin_to_cpus(str(one))
        assert cpus == [one] and os.sched_getaffinity(0) == {one}
        cpus, why = pin_to_cpus("100000-100001")
        assert cpus is None and "outside" in why
        cpus, why = pin_to_cpus(None)
        assert cpus is None and "no CPU affinity" in why
    finally:
        os.sched_setaffinity(0, allowed)
