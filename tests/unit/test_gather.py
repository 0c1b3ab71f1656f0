"""gather_facts end to end: real recordings, scenario folders, broken folders and this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from svdops.host.facts import HostFacts
from svdops.host.probe import commands as cmd
from svdops.host.probe.gather import commands_for, gather_facts
from svdops.host.shell import LocalShell, RecordedShell
from svdops.versions import Version

V = Version.parse


def gather(folder: Path) -> HostFacts:
    """Facts of a recorded folder, as `svdops facts --from DIR` would build them."""
    return gather_facts(RecordedShell(folder))


def test_real_h100_gives_complete_correct_facts(host_dir):
    facts = gather(host_dir("h100-sxm-ubuntu2404"))
    assert facts.hostname == "vm"
    assert facts.source.startswith("recorded:")
    assert (facts.os.id, facts.os.version_id, facts.os.kernel_release) == ("ubuntu", "24.04", "6.18.44-fc-v657-gpu")
    assert (facts.cpu.logical_cpus, facts.memory.total_mib) == (16, 128887)

    (gpu,) = facts.gpus
    assert (gpu.name, gpu.memory_total_mib, gpu.compute_capability) == ("NVIDIA H100 80GB HBM3", 81559, V("9.0"))
    assert (gpu.pcie_gen_current, gpu.pcie_width_current, gpu.power_limit_w) == (5, 16, 700.0)
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c) == (89, 95)
    assert (gpu.persistence_mode, gpu.ecc_enabled, gpu.mig_enabled, gpu.numa_node) == (True, True, False, 0)

    driver = facts.driver
    assert driver.userspace_version == V("580.159.04") == driver.kernel_module_version
    assert driver.kernel_module_flavor == "open"
    assert driver.cuda_driver_api == V("13.0")
    assert driver.nvml_version == "580.159"
    assert not driver.library_mismatch and not driver.needs_reboot

    assert facts.topology.gpu_count == 1 and facts.topology.links == ()
    assert facts.cuda.toolkit_version == V("13.0")
    assert facts.cuda.toolkit_path == "/usr/local/cuda"
    assert facts.cuda.cudnn_version == V("9.14.0")  # collect_env's file names beat ldconfig's soname
    assert facts.cuda.nccl_version == V("2")
    assert "libcudnn.so.9" in facts.cuda.libraries

    py = facts.python
    assert (py.torch_version, py.torch_cuda, py.torch_cudnn, py.torch_nccl) == (
        V("2.11.0"), V("13.0"), V("9.19"), V("2.28.9"),
    )
    assert str(py.torch_version) == "2.11.0"
    assert py.python_version == V("3.12.3")
    assert py.executable == "/opt/torch/.venv/bin/python3"
    assert py.transformers_version == V("5.17.0")
    assert py.diffusers_version is None and facts.note_for("python.diffusers_version")
    assert "sm_90" in py.torch_arch_list

    assert not any(d.is_nvme for d in facts.storage.block_devices)
    assert facts.storage.md_arrays == ()
    assert "No such file" in (facts.note_for("storage.md_arrays") or "")
    noted = {note.subject for note in facts.notes}
    assert noted.isdisjoint({"gpus", "topology", "driver", "driver.userspace_version", "driver.kernel_module_version",
                             "cuda.toolkit_version", "cuda.cudnn_version", "python.torch_version", "os.id", "cpu"})


def test_real_h200(host_dir):
    facts = gather(host_dir("h200-ubuntu2404"))
    (gpu,) = facts.gpus
    assert (gpu.name, gpu.memory_total_mib, gpu.compute_capability) == ("NVIDIA H200", 143771, V("9.0"))
    assert facts.driver.userspace_version == V("580.159.04")
    assert facts.python.torch_version == V("2.11.0")


def test_facts_survive_a_json_round_trip(host_dir):
    facts = gather(host_dir("h100-x8-nvlink"))
    assert HostFacts.from_json(facts.to_json()) == facts


def test_driver_535_with_a_cuda_12_8_wheel(host_dir):
    facts = gather(host_dir("driver-535-cuda-12-8-wheel"))
    assert facts.driver.userspace_version == V("535.183.01") == facts.driver.kernel_module_version
    assert facts.driver.kernel_module_flavor == "proprietary"
    assert facts.driver.cuda_driver_api == V("12.2")
    assert facts.python.torch_version == V("2.7.0")
    assert facts.python.torch_cuda == V("12.8")
    assert (facts.python.torch_cudnn, facts.python.torch_nccl) == (V("9.7.1"), V("2.26.2"))
    assert facts.cuda.toolkit_version == V("12.2")
    (gpu,) = facts.gpus
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c, gpu.power_draw_w) == (89, 95, 77.5)


def test_kernel_module_mismatch_needs_a_reboot(host_dir):
    facts = gather(host_dir("kernel-module-mismatch"))
    assert facts.gpus == ()
    assert "version mismatch" in (facts.note_for("gpus") or "")
    driver = facts.driver
    assert driver.library_mismatch and driver.needs_reboot
    assert driver.kernel_module_version == V("570.172.08")
    assert driver.userspace_version == V("580.95.05")
    assert str(driver.userspace_version) == "580.95.05"
    assert driver.nvml_version == "580.95"
    assert "dpkg" in (facts.note_for("driver.userspace_version") or "")
    # dpkg-query exited 1 (two empty patterns) but its stdout still counts
    assert (facts.cuda.cudnn_version, facts.cuda.nccl_version) == (V("9.14.0"), V("2.28.9"))
    assert (facts.python.torch_cudnn, facts.python.torch_nccl) == (V("9.19.0"), V("2.28.9"))


def test_degraded_raid6_and_nvme_raid0(host_dir):
    storage = gather(host_dir("degraded-raid6-nvme-raid0")).storage
    arrays = {md.name: md for md in storage.md_arrays}
    assert arrays["md1"].degraded and arrays["md1"].failed_members == ("sde",)
    assert arrays["md1"].level == "raid6" and not arrays["md1"].recovering
    assert arrays["md0"].level == "raid0" and not arrays["md0"].degraded
    assert sum(d.is_nvme for d in storage.block_devices) == 4
    assert sum(bool(d.rotational) and d.transport == "sata" for d in storage.block_devices) == 6
    scratch = next(m for m in storage.mounts if m.mountpoint == "/scratch")
    assert scratch.fstype == "xfs" and "noatime" in scratch.options


def test_no_gpu_host_is_normal(host_dir):
    facts = gather(host_dir("no-gpu"))
    assert facts.gpus == ()
    assert "not found" in (facts.note_for("gpus") or "")
    assert facts.topology.gpu_count == 0
    assert facts.driver.userspace_version is None and facts.driver.kernel_module_version is None
    assert not facts.driver.needs_reboot
    assert facts.cuda.toolkit_version is None and facts.note_for("cuda.toolkit_version")
    assert facts.cuda.libraries == ()
    assert facts.python.torch_version == V("2.11.0") and facts.python.torch_cuda is None
    assert "CPU-only" in (facts.note_for("python.torch_cuda") or "")
    assert facts.python.python_version == V("3.12.3")


def test_eight_h100_on_nvlink(host_dir):
    facts = gather(host_dir("h100-x8-nvlink"))
    assert len(facts.gpus) == 8
    assert len({g.uuid for g in facts.gpus}) == 8
    assert len({g.pci_bus_id for g in facts.gpus}) == 8
    assert facts.topology.gpu_count == 8 and facts.topology.all_pairs_nvlink
    assert all(link.nvlinks == 18 for link in facts.topology.links)
    assert [g.numa_node for g in facts.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert (facts.cpu.sockets, facts.cpu.numa_nodes, facts.cpu.logical_cpus) == (2, 2, 224)


def test_pcie_pair_of_rtx_4090(host_dir):
    facts = gather(host_dir("pcie-pair-rtx4090"))
    assert len(facts.gpus) == 2
    for gpu in facts.gpus:
        assert (gpu.name, gpu.architecture) == ("NVIDIA GeForce RTX 4090", "Ada Lovelace")
        assert gpu.compute_capability == V("8.9")
        assert (gpu.memory_total_mib, gpu.power_limit_w, gpu.power_max_limit_w) == (24564, 450.0, 600.0)
        assert (gpu.pcie_gen_current, gpu.pcie_width_current, gpu.pcie_width_max) == (4, 8, 16)
        assert gpu.ecc_enabled is None and gpu.mig_enabled is None and gpu.persistence_mode is False
    assert facts.topology.link(0, 1).kind == "PHB"
    assert not facts.topology.all_pairs_nvlink
    assert facts.driver.userspace_version == V("570.133.07")


def test_secure_boot_blocks_the_driver_and_nouveau_is_loaded(host_dir):
    facts = gather(host_dir("secure-boot-nouveau"))
    assert facts.driver.secure_boot_enabled is True
    assert facts.driver.nouveau_loaded is True
    assert facts.gpus == ()
    assert facts.driver.kernel_module_version is None
    assert facts.driver.userspace_version == V("580.95.05")
    notes = {note.subject: note.reason for note in facts.notes}
    assert "cannot reach" in notes["driver"]


def test_seed_2023_box(host_dir):
    facts = gather(host_dir("seed-2023-ubuntu2004-a100x2"))
    assert facts.hostname == "seed-a100-01"
    assert (facts.os.version_id, facts.os.codename) == ("20.04", "focal")
    assert facts.cuda.toolkit_version == V("11.3")
    assert (facts.cuda.cudnn_version, facts.cuda.nccl_version) == (V("8.2.1"), V("2.9.9"))
    assert facts.driver.userspace_version == V("470.199.02") == facts.driver.kernel_module_version
    assert facts.driver.cuda_driver_api == V("11.4")
    assert (facts.driver.secure_boot_enabled, facts.driver.nouveau_loaded, facts.driver.persistenced_running) == (
        False, False, True,
    )
    assert facts.python.python_version == V("3.8.10")
    assert (facts.python.torch_version, facts.python.torch_cuda) == (V("1.10.0"), V("11.3"))
    assert facts.python.diffusers_version == V("0.11.1")
    assert facts.python.conda.version == V("4.12.0")
    assert facts.python.conda.envs == ("/opt/conda", "/opt/conda/envs/svd")
    assert len(facts.gpus) == 2
    assert all(g.compute_capability == V("8.0") and g.memory_total_mib == 40536 for g in facts.gpus)
    assert facts.topology.link(0, 1).kind == "NV12"
    assert facts.storage.md_arrays == () and facts.note_for("storage.md_arrays") is None


def test_an_empty_folder_gives_empty_facts_and_notes(tmp_path):
    facts = gather_facts(RecordedShell(tmp_path, name="empty-host"))
    assert facts.hostname == "empty-host"
    assert facts.gpus == ()
    assert facts.note_for("gpus") == "`nvidia-smi -q -x` was not recorded"
    for subject in ("os", "cpu", "memory", "driver", "cuda", "python", "storage"):
        assert facts.note_for(subject), subject


@pytest.mark.parametrize("key", sorted({c.key for c in cmd.ALL + cmd.RECORDED_ONLY}))
def test_any_single_file_may_be_absent(host_dir, tmp_path, key):
    folder = tmp_path / "host"
    shutil.copytree(host_dir("h100-sxm-ubuntu2404"), folder)
    for suffix in ("", ".rc", ".err"):
        (folder / f"{key}{suffix}").unlink(missing_ok=True)
    facts = gather(folder)
    assert facts.hostname == "vm" or key == "uname-a.txt"


def test_garbage_files_never_crash(host_dir, tmp_path):
    folder = tmp_path / "host"
    shutil.copytree(host_dir("h100-sxm-ubuntu2404"), folder)
    for path in folder.iterdir():
        path.write_bytes(b"\x00\xff\xfe garbage {<" * 3)
    facts = gather(folder)
    assert facts.gpus == ()
    assert facts.note_for("gpus")


def test_an_unreadable_recording_becomes_a_note(host_dir, tmp_path):
    folder = tmp_path / "host"
    shutil.copytree(host_dir("h100-sxm-ubuntu2404"), folder)
    (folder / "lscpu.json").unlink()
    (folder / "lscpu.json").mkdir()  # RecordedShell refuses it: not a regular file
    facts = gather(folder)
    assert facts.cpu.logical_cpus is None
    assert "lscpu.json is a folder, not a regular file" in (facts.note_for("cpu") or "")
    assert len(facts.gpus) == 1


def test_nvcc_outside_path_is_found_by_the_fallback(host_dir, tmp_path):
    folder = tmp_path / "host"
    shutil.copytree(host_dir("h100-sxm-ubuntu2404"), folder)
    (folder / "nvcc-version.txt").rename(folder / "nvcc-default-version.txt")
    (folder / "nvcc-version.txt").write_text("")
    (folder / "nvcc-version.txt.rc").write_text("127\n")
    cuda = gather(folder).cuda
    assert cuda.toolkit_version == V("13.0")
    assert cuda.toolkit_path == "/usr/local/cuda"


def test_python_commands_use_the_target_interpreter(host_dir):
    shell = RecordedShell(host_dir("h100-sxm-ubuntu2404"))
    argv = {c.key: c.argv for c in commands_for(shell, "/opt/conda/envs/svd/bin/python")}
    assert argv["pip-list.txt"][0] == "/opt/conda/envs/svd/bin/python"
    assert argv["torch-versions.json"][0] == "/opt/conda/envs/svd/bin/python"
    assert argv["nvidia-smi-q.xml"][0] == "nvidia-smi"
    assert "torch-env.txt" not in {c.key for c in commands_for(LocalShell())}


# how fast (replay < 0.5 s, local < 1.5 s) is measured by benchmarks/check_speed.py, not timed here
def test_this_machine_without_a_gpu():
    facts = gather_facts(LocalShell())
    assert facts.source == "local"
    assert facts.hostname
    assert facts.os.kernel_release
    assert facts.memory.total_mib
    if not Path("/proc/driver/nvidia/version").exists():
        assert facts.gpus == ()
        assert facts.note_for("gpus")
