"""`nvidia-smi topo -m` matrices: the recorded single GPU, NVLink meshes, NIC columns, old drivers."""

from __future__ import annotations

from svdops.host.probe.topology import parse_topo_matrix

# R470 layout (no GPU NUMA ID column), copied from an A100 pair with a Mellanox NIC
R470_PAIR = (
    "\t\x1b[4mGPU0\tGPU1\tmlx5_0\tCPU Affinity\tNUMA Affinity\x1b[0m\n"
    "GPU0\t X \tNV12\tSYS\t0-31,64-95\t0\n"
    "GPU1\tNV12\t X \tSYS\t0-31,64-95\t0\n"
    "mlx5_0\tSYS\tSYS\t X \t\t\n"
    "\n"
    "Legend:\n\n  X    = Self\n  NV#  = Connection traversing a bonded set of # NVLinks\n"
)


def test_recorded_single_h100(host_text):
    topo = parse_topo_matrix(host_text("h100-sxm-ubuntu2404", "nvidia-smi-topo-m.txt"))
    assert topo.gpu_count == 1
    assert topo.links == ()
    (affinity,) = topo.affinity
    assert (affinity.gpu, affinity.cpu_affinity, affinity.numa_affinity) == (0, "0-15", "0")
    assert topo.all_pairs_nvlink


def test_r470_pair_with_nic_column():
    topo = parse_topo_matrix(R470_PAIR)
    assert topo.gpu_count == 2
    (link,) = topo.links
    assert (link.gpu_a, link.gpu_b, link.kind, link.nvlinks, link.is_nvlink) == (0, 1, "NV12", 12, True)
    assert [a.cpu_affinity for a in topo.affinity] == ["0-31,64-95", "0-31,64-95"]


def test_pcie_links_are_not_nvlink():
    text = R470_PAIR.replace("NV12", "PHB")
    topo = parse_topo_matrix(text)
    assert topo.link(0, 1).kind == "PHB"
    assert topo.link(0, 1).nvlinks == 0
    assert not topo.all_pairs_nvlink


def test_matrix_without_tabs_still_parses():
    text = R470_PAIR.replace("\t", "    ")
    topo = parse_topo_matrix(text)
    assert topo.gpu_count == 2
    assert topo.link(0, 1).kind == "NV12"
    assert topo.affinity[1].numa_affinity == "0"


def test_eight_gpu_mesh_from_scenario(host_text):
    topo = parse_topo_matrix(host_text("h100-x8-nvlink", "nvidia-smi-topo-m.txt"))
    assert topo.gpu_count == 8
    assert len(topo.links) == 28
    assert {link.kind for link in topo.links} == {"NV18"}
    assert topo.all_pairs_nvlink
    assert [a.numa_affinity for a in topo.affinity] == ["0"] * 4 + ["1"] * 4
    assert topo.affinity[4].cpu_affinity == "56-111,168-223"


def test_garbage_gives_an_empty_topology():
    for text in ("", "GPU0", "NVIDIA-SMI has failed", "\x00" * 50, "\tGPU0\nGPU0"):
        topo = parse_topo_matrix(text)
        assert topo.links == ()
