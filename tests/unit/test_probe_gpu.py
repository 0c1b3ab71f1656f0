"""nvidia-smi XML, --query-gpu CSV and the compute-capability table, on real recordings."""

from __future__ import annotations

import pytest

from svdops.host.probe.gpu import (
    compute_capability_from_name,
    merge_query_gpu,
    parse_nvidia_smi_xml,
    parse_query_gpu_csv,
)
from svdops.versions import Version

H100 = "h100-sxm-ubuntu2404"
H200 = "h200-ubuntu2404"


def test_h100_xml_gives_every_field(host_text):
    report = parse_nvidia_smi_xml(host_text(H100, "nvidia-smi-q.xml"))
    assert report.problems == ()
    assert report.driver_version == Version.parse("580.159.04")
    assert report.cuda_version == Version.parse("13.0")
    (gpu,) = report.gpus
    assert gpu.index == 0
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.uuid == "GPU-dbf187b6-39ec-d5dd-7320-ed7f451e1b44"
    assert gpu.pci_bus_id == "00000000:00:06.0"
    assert gpu.architecture == "Hopper"
    assert gpu.compute_capability == Version.parse("9.0")
    assert gpu.memory_total_mib == 81559
    assert gpu.memory_used_mib == 0
    assert (gpu.pcie_gen_current, gpu.pcie_gen_max, gpu.pcie_width_current, gpu.pcie_width_max) == (5, 5, 16, 16)
    assert gpu.power_limit_w == 700.0
    assert gpu.power_max_limit_w == 700.0
    assert gpu.power_draw_w == 77.5
    assert gpu.temperature_c == 41
    # R580 gives thresholds relative to T.Limit; NVML on the same host answered 89 and 95
    assert gpu.temp_slowdown_c == 89
    assert gpu.temp_shutdown_c == 95
    assert gpu.persistence_mode is True
    assert gpu.ecc_enabled is True
    assert gpu.mig_enabled is False
    assert gpu.vbios_version == "96.00.DA.00.0C"
    assert gpu.sm_clock_max_mhz == 1980


def test_h200_xml(host_text):
    (gpu,) = parse_nvidia_smi_xml(host_text(H200, "nvidia-smi-q.xml")).gpus
    assert gpu.name == "NVIDIA H200"
    assert gpu.uuid == "GPU-12cfad6b-70aa-58bd-9bef-d1fd4893b706"
    assert gpu.memory_total_mib == 143771
    assert gpu.compute_capability == Version.parse("9.0")
    assert gpu.power_limit_w == 700.0
    assert gpu.temperature_c == 39
    # current temp and T.Limit margin are sampled apart: 1 °C above NVML's 89/95 on this recording
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c) == (90, 96)


def test_truncated_xml_keeps_versions_and_reports_the_problem(host_text):
    text = host_text(H100, "nvidia-smi-q.xml")
    report = parse_nvidia_smi_xml(text[: len(text) // 2])
    assert report.gpus == ()
    assert report.driver_version == Version.parse("580.159.04")
    assert "not well-formed" in report.problems[0]


def test_xml_with_a_complete_gpu_before_the_cut_keeps_it(host_text):
    text = host_text(H100, "nvidia-smi-q.xml")
    gpu_block = text[text.index("\t<gpu ") : text.index("</gpu>") + len("</gpu>\n")]
    two_gpus_cut = text.replace(gpu_block, gpu_block + gpu_block.replace("00:06.0", "00:07.0"))
    cut = two_gpus_cut[: two_gpus_cut.rindex("<fb_memory_usage>")]
    report = parse_nvidia_smi_xml(cut)
    assert [g.pci_bus_id for g in report.gpus] == ["00000000:00:06.0"]
    assert report.problems


@pytest.mark.parametrize("text", ["", "not xml", "\x00\x01\x02", "<nvidia_smi_log></nvidia_smi_log>"])
def test_xml_garbage_gives_no_gpus_and_a_reason(text):
    report = parse_nvidia_smi_xml(text)
    assert report.gpus == ()
    assert report.problems


_BOMB = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
         + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdefgh", "bcdefghi", strict=True))
         + ']><nvidia_smi_log><driver_version>&i;</driver_version></nvidia_smi_log>')


def test_an_entity_expansion_bomb_is_refused_not_expanded():
    """10^9 bytes if expanded: expat (>= 2.4) stops it, and the document counts as not well-formed."""
    report = parse_nvidia_smi_xml(_BOMB)
    assert report.gpus == () and report.driver_version is None
    assert "not well-formed" in report.problems[0]


def test_an_external_entity_is_never_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("580.1.2")
    text = (f'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file://{secret}">]>'
            "<nvidia_smi_log><driver_version>&x;</driver_version></nvidia_smi_log>")
    report = parse_nvidia_smi_xml(text)
    assert report.driver_version is None and report.problems


def test_a_whole_document_and_the_event_walk_read_the_same(host_text):
    """Well-formed XML is parsed whole; a broken one is walked event by event. Each recorded document,
    with garbage appended (which breaks it after its end), gives the same report both ways."""
    from tests.support.paths import recorded_outputs

    compared = 0
    for text in recorded_outputs("nvidia-smi-q.xml"):
        whole = parse_nvidia_smi_xml(text)
        if not whole.gpus:  # nvidia-smi's error message, recorded where the XML would be
            continue
        walked = parse_nvidia_smi_xml(text + "<garbage")
        assert whole.gpus == walked.gpus
        assert (whole.driver_version, whole.cuda_version) == (walked.driver_version, walked.cuda_version)
        assert walked.problems and not [p for p in whole.problems if "well-formed" in p]
        compared += 1
    assert compared == 7


def test_pre_r575_thresholds_and_power_readings():
    xml = """<?xml version="1.0" ?><nvidia_smi_log><driver_version>470.199.02</driver_version>
    <cuda_version>11.4</cuda_version><gpu id="00000000:07:00.0"><product_name>NVIDIA A100-SXM4-40GB</product_name>
    <mig_mode><current_mig>N/A</current_mig></mig_mode>
    <power_readings><power_draw>61.42 W</power_draw><power_limit>400.00 W</power_limit>
    <max_power_limit>400.00 W</max_power_limit></power_readings>
    <temperature><gpu_temp>31 C</gpu_temp><gpu_temp_max_threshold>92 C</gpu_temp_max_threshold>
    <gpu_temp_slow_threshold>89 C</gpu_temp_slow_threshold></temperature></gpu></nvidia_smi_log>"""
    report = parse_nvidia_smi_xml(xml)
    (gpu,) = report.gpus
    assert report.cuda_version == Version.parse("11.4")
    assert (gpu.power_draw_w, gpu.power_limit_w, gpu.power_max_limit_w) == (61.42, 400.0, 400.0)
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c) == (89, 92)
    assert gpu.mig_enabled is None
    assert gpu.compute_capability == Version.parse("8.0")
    assert gpu.architecture is None


def test_query_gpu_csv_gives_compute_capability(host_text):
    (row,) = parse_query_gpu_csv(host_text(H100, "nvidia-smi-query-gpu.csv"))
    assert row.index == 0
    assert row.uuid == "GPU-dbf187b6-39ec-d5dd-7320-ed7f451e1b44"
    assert row.compute_capability == Version.parse("9.0")
    assert row.fields["power.limit"] == "700.00"


def test_query_gpu_csv_from_an_old_driver_is_empty():
    assert parse_query_gpu_csv('Field "compute_cap" is not a valid field to query.\n') == ()


def test_driver_compute_capability_wins_over_the_name_table(host_text):
    (gpu,) = parse_nvidia_smi_xml(host_text(H100, "nvidia-smi-q.xml")).gpus
    row_text = host_text(H100, "nvidia-smi-query-gpu.csv").replace(", 9.0, ", ", 9.1, ")
    (merged,) = merge_query_gpu((gpu,), parse_query_gpu_csv(row_text))
    assert merged.compute_capability == Version.parse("9.1")


@pytest.mark.parametrize(
    ("name", "arch", "cc"),
    [
        ("NVIDIA H100 80GB HBM3", None, "9.0"),
        ("NVIDIA A100-SXM4-40GB", "Ampere", "8.0"),
        ("NVIDIA A10", "Ampere", "8.6"),
        ("NVIDIA GeForce RTX 4090", None, "8.9"),
        ("NVIDIA L40S", None, "8.9"),
        ("NVIDIA L4", None, "8.9"),
        ("Tesla V100-SXM2-32GB", None, "7.0"),
        ("Some Future GPU", "Hopper", "9.0"),
        ("NVIDIA GeForce RTX 5090", "Blackwell", "12.0"),
    ],
)
def test_compute_capability_table(name, arch, cc):
    expected = Version.parse(cc) if cc else None
    assert compute_capability_from_name(name, arch) == expected


def test_ambiguous_architecture_alone_gives_nothing():
    assert compute_capability_from_name("Unknown Board", "Ampere") is None
    assert compute_capability_from_name(None, "Blackwell") is None
