"""os-release, uname, lscpu -J and /proc/meminfo."""

from __future__ import annotations

import json

from svdops.host.probe.system import parse_hostname, parse_lscpu_json, parse_meminfo, parse_os_release, parse_uname

H100 = "h100-sxm-ubuntu2404"


def test_recorded_os_release(host_text):
    facts = parse_os_release(host_text(H100, "os-release.txt"))
    assert (facts.id, facts.version_id, facts.codename) == ("ubuntu", "24.04", "noble")
    assert facts.pretty_name == "Ubuntu 24.04.3 LTS"


def test_recorded_uname(host_text):
    uname = parse_uname(host_text(H100, "uname-a.txt"))
    assert (uname.hostname, uname.kernel_release, uname.arch) == ("vm", "6.18.44-fc-v657-gpu", "x86_64")


def test_uname_of_a_stock_ubuntu_kernel():
    text = "Linux dgx01 5.15.0-126-generic #136-Ubuntu SMP Wed Nov 6 10:38:22 UTC 2024 x86_64 x86_64 x86_64 GNU/Linux"
    assert parse_uname(text).kernel_release == "5.15.0-126-generic"
    assert parse_uname(text).arch == "x86_64"
    assert parse_uname("Darwin mac 23.0").kernel_release is None


def test_hostname():
    assert parse_hostname("gpu-07\n") == "gpu-07"
    assert parse_hostname("") is None
    assert parse_hostname("not a hostname") is None


def test_recorded_lscpu(host_text):
    cpu = parse_lscpu_json(host_text(H100, "lscpu.json"))
    assert cpu is not None
    assert cpu.model_name == "Intel(R) Xeon(R) Processor"
    assert (cpu.logical_cpus, cpu.sockets, cpu.cores_per_socket, cpu.threads_per_core) == (16, 1, 16, 1)
    assert cpu.numa_nodes == 1
    assert cpu.vendor == "GenuineIntel"


def test_nested_lscpu_of_util_linux_2_39():
    data = {"lscpu": [
        {"field": "Architecture:", "data": "x86_64"},
        {"field": "CPU(s):", "data": "224"},
        {"field": "Vendor ID:", "data": "GenuineIntel", "children": [
            {"field": "Model name:", "data": "Intel(R) Xeon(R) Platinum 8480C", "children": [
                {"field": "Thread(s) per core:", "data": "2"},
                {"field": "Core(s) per socket:", "data": "56"},
                {"field": "Socket(s):", "data": "2"},
            ]},
        ]},
        {"field": "NUMA:", "data": None, "children": [{"field": "NUMA node(s):", "data": "2"}]},
    ]}
    cpu = parse_lscpu_json(json.dumps(data))
    assert cpu is not None
    assert cpu.model_name == "Intel(R) Xeon(R) Platinum 8480C"
    assert (cpu.logical_cpus, cpu.sockets, cpu.cores_per_socket, cpu.threads_per_core, cpu.numa_nodes) == (
        224, 2, 56, 2, 2,
    )


def test_lscpu_garbage():
    for text in ("", "{", "[]", '{"lscpu": 3}', '{"lscpu": []}', "\x00"):
        assert parse_lscpu_json(text) is None


def test_recorded_meminfo(host_text):
    mem = parse_meminfo(host_text(H100, "meminfo.txt"))
    assert mem is not None
    assert mem.total_mib == 131981020 // 1024
    assert mem.available_mib == 131407100 // 1024
    assert mem.swap_total_mib == 0
    assert mem.hugepages_total == 0
    assert parse_meminfo("garbage") is None
