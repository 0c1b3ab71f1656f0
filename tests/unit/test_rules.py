"""Rules, table-driven: each rule's pass and fail on HostFacts built here, plus whole-profile judgements."""

from __future__ import annotations

from dataclasses import is_dataclass, replace
from pathlib import Path

import pytest

from svdops.findings import Finding, Status, summarize, worst
from svdops.host.facts import (
    BlockDevice,
    CondaFacts,
    CudaFacts,
    DriverFacts,
    GpuFacts,
    GpuHealth,
    GpuLink,
    HostFacts,
    KernelLogFacts,
    MdArray,
    MemoryFacts,
    Mount,
    Note,
    NvLinkState,
    OsFacts,
    PythonEnvFacts,
    StorageFacts,
    TopologyFacts,
    XidEvent,
)
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell
from svdops.judge import rules
from svdops.judge.profiles import (
    CudaRequirements,
    DataArrayRequirements,
    DriverRequirements,
    GpuRequirements,
    HealthRequirements,
    OsRequirements,
    Profile,
    PythonRequirements,
    RamRequirements,
    ScratchRequirements,
    StorageRequirements,
    SvdRequirements,
    VersionSpec,
    load_profile,
)
from svdops.versions import Version
from tests.support.paths import recorded_host

V = Version.parse
S = VersionSpec.parse
TB = 10**12

# The recorded H100 host (tests/fixtures/hosts/h100-sxm-ubuntu2404), as the probes report it: every field a
# rule reads is held to `gather_facts` on the recording (test_hand_built_h100_matches_what_the_recorded_host_gathers).
# A VM: no /proc/modules, mokutil or /proc/mdstat were recorded, so nouveau and Secure Boot are unknown.
H100 = HostFacts(
    hostname="h100-vm",
    collected_at="2026-11-26T12:00:00Z",
    source="recorded:h100-sxm-ubuntu2404",
    os=OsFacts(id="ubuntu", version_id="24.04", pretty_name="Ubuntu 24.04.3 LTS", codename="noble"),
    memory=MemoryFacts(total_mib=131981020 // 1024),
    driver=DriverFacts(
        userspace_version=V("580.159.04"), kernel_module_version=V("580.159.04"), kernel_module_flavor="open",
        cuda_driver_api=V("13.0"), nouveau_loaded=None, secure_boot_enabled=None, persistenced_running=None,
    ),
    gpus=(GpuFacts(index=0, name="NVIDIA H100 80GB HBM3", architecture="Hopper", compute_capability=V("9.0"),
                   memory_total_mib=81559, persistence_mode=True, ecc_enabled=True, mig_enabled=False,
                   uuid="GPU-dbf187b6-39ec-d5dd-7320-ed7f451e1b44", pci_bus_id="00000000:00:06.0",
                   pcie_gen_current=5, pcie_gen_max=5, pcie_width_current=16, pcie_width_max=16,
                   temperature_c=41, temp_slowdown_c=89, temp_shutdown_c=95,
                   # idle (0 %), no ECC error, row remapper clean; the VM's GPU has no NVLink peer
                   health=GpuHealth(ecc_volatile_uncorrected=0, ecc_aggregate_uncorrected=0, ecc_volatile_corrected=0,
                                    ecc_aggregate_corrected=0, sram_threshold_exceeded=False,
                                    remapped_rows_correctable=0, remapped_rows_uncorrectable=0,
                                    remapped_rows_pending=False, remapped_rows_failure=False, pcie_gen_device_max=5,
                                    utilization_pct=0, performance_state="P0", clocks_event_reasons=("gpu_idle",),
                                    nvlinks=())),),
    kernel_log=KernelLogFacts(source="dmesg", lines_read=5),
    topology=TopologyFacts(gpu_count=1),
    # nvcc says "release 13.0"; NCCL is known only by its soname libnccl.so.2, hence version 2
    cuda=CudaFacts(toolkit_version=V("13.0"), cudnn_version=V("9.14.0"), nccl_version=V("2"),
                   # ldconfig -p lists each soname, then its development link
                   libraries=tuple(lib for soname in (
                       "libnvidia-ml.so.1", "libnccl.so.2", "libcudnn_ops.so.9", "libcudnn_heuristic.so.9",
                       "libcudnn_graph.so.9", "libcudnn_engines_runtime_compiled.so.9",
                       "libcudnn_engines_precompiled.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9", "libcudnn.so.9",
                       "libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13",
                   ) for lib in (soname, soname[:soname.index(".so") + 3]))),
    python=PythonEnvFacts(
        executable="/opt/torch/.venv/bin/python3", python_version=V("3.12.3"),
        packages={"torch": "2.11.0", "transformers": "5.17.0", "accelerate": "1.15.0"},
        torch_version=V("2.11.0"), torch_cuda=V("13.0"), torch_cudnn=V("9.19.0"), torch_nccl=V("2.28.9"),
        torch_arch_list=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
        transformers_version=V("5.17.0"),
    ),
    storage=StorageFacts(block_devices=(
        BlockDevice("zram0", "disk", 0, False),
        BlockDevice("vda", "disk", 274_877_906_944, True, "virtio", mountpoint="/"),
        BlockDevice("vdb", "disk", 318_332_928, True, "virtio", mountpoint="/usr/local/nvidia"),
    )),
    notes=(Note("driver.nouveau_loaded", "`cat /proc/modules` was not recorded"),
           Note("driver.secure_boot_enabled", "`mokutil --sb-state` was not recorded"),
           Note("driver.persistenced_running", "`systemctl is-active nvidia-persistenced` was not recorded"),
           Note("python.diffusers_version", "diffusers is not installed"),
           Note("python.conda", "`conda --version` was not recorded"),
           Note("storage.md_arrays", "`cat /proc/mdstat` exited 1: cat: /proc/mdstat: No such file or directory"),
           Note("storage.mounts.options", "`cat /proc/mounts` was not recorded")),
)

# A machine built by the 2023 guide: 2x RTX 3090 on an NVLink bridge, CUDA 11.3, conda Python 3.8.
SEED = HostFacts(
    hostname="seed-01",
    collected_at="2026-11-26T12:00:00Z",
    source="ssh://lab@seed-01:22",
    os=OsFacts(id="ubuntu", version_id="20.04", pretty_name="Ubuntu 20.04.6 LTS", codename="focal"),
    memory=MemoryFacts(total_mib=128 * 1024 - 2600),
    driver=DriverFacts(
        userspace_version=V("465.19.01"), kernel_module_version=V("465.19.01"), kernel_module_flavor="proprietary",
        cuda_driver_api=V("11.3"), nouveau_loaded=False, secure_boot_enabled=False, persistenced_running=True,
    ),
    gpus=tuple(GpuFacts(index=i, name="NVIDIA GeForce RTX 3090", compute_capability=V("8.6"),
                        memory_total_mib=24576, persistence_mode=True) for i in range(2)),
    topology=TopologyFacts(gpu_count=2, links=(GpuLink(0, 1, "NV4", 4),)),
    cuda=CudaFacts(toolkit_version=V("11.3.109"), cudnn_version=V("8.2.1"), nccl_version=V("2.9.9"),
                   libraries=("libcudnn.so.8", "libnccl.so.2")),
    python=PythonEnvFacts(
        executable="/home/lab/miniconda3/envs/svd/bin/python", python_version=V("3.8.10"),
        packages={"torch": "1.10.2", "numpy": "1.21.2"},
        torch_version=V("1.10.2"), torch_cuda=V("11.3"), torch_cudnn=V("8.2.0"),
        conda=CondaFacts(executable="/home/lab/miniconda3/bin/conda", version=V("4.10.3"),
                         envs=("/home/lab/miniconda3", "/home/lab/miniconda3/envs/svd")),
    ),
    storage=StorageFacts(
        block_devices=(
            BlockDevice("nvme0n1", "disk", 1_000_204_886_016, False, "nvme"),
            BlockDevice("nvme1n1", "disk", 1_000_204_886_016, False, "nvme"),
            *(BlockDevice(f"sd{c}", "disk", 2_000_398_934_016, True, "sata") for c in "bcde"),
        ),
        md_arrays=(
            MdArray("md0", "raid0", "active", ("nvme0n1", "nvme1n1"), size_bytes=2_000_000_000_000,
                    devices_total=2, devices_up=2),
            MdArray("md1", "raid6", "active", ("sdb", "sdc", "sdd", "sde"), size_bytes=4_000_000_000_000,
                    devices_total=4, devices_up=4),
        ),
        mounts=(Mount("/dev/md0", "/scratch", "xfs"), Mount("/dev/md1", "/data", "xfs")),
    ),
)

BLANK = Profile(name="test", description="test profile", source=Path("test.yaml"))


def host(base: HostFacts = H100, **changes: object) -> HostFacts:
    return replace(base, **changes)  # type: ignore[arg-type]


def drv(**changes: object) -> DriverFacts:
    return replace(H100.driver, **changes)  # type: ignore[arg-type]


def py(**changes: object) -> PythonEnvFacts:
    return replace(H100.python, **changes)  # type: ignore[arg-type]


def gpu(**changes: object) -> GpuFacts:
    return replace(H100.gpus[0], **changes)  # type: ignore[arg-type]


def prof(**changes: object) -> Profile:
    return replace(BLANK, **changes)  # type: ignore[arg-type]


def eight_gpus(kind: str) -> HostFacts:
    # an NVSwitch node's GPUs show their 18 links active in `nvidia-smi nvlink -s`
    links18 = tuple(NvLinkState(n, True, 26.562) for n in range(18)) if kind.startswith("NV") else ()
    gpus = tuple(gpu(index=i, health=replace(H100.gpus[0].health, nvlinks=links18)) for i in range(8))
    links = tuple(GpuLink(a, b, kind, 18 if kind.startswith("NV") else 0) for a in range(8) for b in range(a + 1, 8))
    return host(gpus=gpus, topology=TopologyFacts(gpu_count=8, links=links))


SYSTEM_PYTHON = host(python=py(executable="/usr/bin/python3"))
GPU1 = GpuRequirements(min_count=1)
SVD_XT = SvdRequirements(scenario="svd-xt-25f")
SEED_PROFILE = load_profile("seed-2023")
Case = tuple[str, HostFacts, Profile, str, Status, str]

CASES: list[Case] = [
    # (case, facts, profile, rule id, status, a part of the hint)
    ("os id ok", H100, prof(os=OsRequirements(id="ubuntu")), "os.id", Status.PASS, ""),
    ("os id other", host(os=OsFacts(id="rocky", version_id="9.4")), prof(os=OsRequirements(id="ubuntu")), "os.id",
     Status.FAIL, "reinstall"),
    ("release ok", H100, prof(os=OsRequirements(releases=("22.04", "24.04"))), "os.release", Status.PASS, ""),
    ("release old", SEED, prof(os=OsRequirements(releases=("24.04",))), "os.release", Status.FAIL,
     "sudo do-release-upgrade"),
    ("release newer", H100, prof(os=OsRequirements(releases=("20.04",))), "os.release", Status.FAIL, "reinstall"),
    ("release unknown", host(os=OsFacts()), prof(os=OsRequirements(releases=("24.04",))), "os.release", Status.UNKNOWN,
     ""),

    ("driver present", H100, prof(gpu=GPU1), "driver.present", Status.PASS, ""),
    ("driver missing", host(driver=DriverFacts(), gpus=(), notes=(Note("gpus", "nvidia-smi: command not found"),)),
     prof(gpu=GPU1), "driver.present", Status.FAIL, "sudo apt-get install -y nvidia-driver-620 "),
    ("no gpu wanted", host(driver=DriverFacts(), gpus=()), prof(gpu=GpuRequirements(min_count=0, max_count=0)),
     "driver.present", Status.SKIP, ""),

    ("driver version ok", H100, prof(driver=DriverRequirements(version=S(">=570"))), "driver.version", Status.PASS, ""),
    ("driver version old", SEED, prof(driver=DriverRequirements(version=S(">=570"))), "driver.version", Status.FAIL,
     "nvidia-driver-580-open"),

    ("flavor ok", H100, prof(driver=DriverRequirements(flavor="open")), "driver.flavor", Status.PASS, ""),
    ("flavor wrong", SEED, prof(driver=DriverRequirements(flavor="open")), "driver.flavor", Status.FAIL,
     "nvidia-driver-580-open"),
    ("blackwell needs open",
     host(gpus=(gpu(name="NVIDIA B200", compute_capability=V("10.0"), memory_total_mib=183359),),
          driver=drv(kernel_module_flavor="proprietary")), BLANK, "driver.flavor", Status.FAIL,
     "nvidia-driver-580-open"),

    ("reboot not needed", H100, BLANK, "driver.reboot-required", Status.PASS, ""),
    ("module older than libraries", host(driver=drv(kernel_module_version=V("570.172.08"))), BLANK,
     "driver.reboot-required", Status.FAIL, "sudo reboot"),
    ("library mismatch", host(driver=drv(library_mismatch=True)), BLANK, "driver.reboot-required", Status.FAIL,
     "sudo reboot"),

    ("nouveau off", host(driver=drv(nouveau_loaded=False)), BLANK, "driver.nouveau", Status.PASS, ""),
    ("nouveau loaded", host(driver=drv(nouveau_loaded=True)), BLANK, "driver.nouveau", Status.FAIL,
     "blacklist nouveau"),
    ("nouveau unknown", H100, BLANK, "driver.nouveau", Status.SKIP, ""),

    ("secure boot off", host(driver=drv(secure_boot_enabled=False)), BLANK, "driver.secure-boot", Status.PASS, ""),
    ("secure boot signed", host(driver=drv(secure_boot_enabled=True, dkms_modules_signed=True)), BLANK,
     "driver.secure-boot", Status.PASS, ""),
    ("secure boot unsigned", host(driver=drv(secure_boot_enabled=True, dkms_modules_signed=False)), BLANK,
     "driver.secure-boot", Status.FAIL, "sudo mokutil --import"),
    ("secure boot unknown signing, no module",
     host(driver=drv(secure_boot_enabled=True, kernel_module_version=None)), BLANK, "driver.secure-boot",
     Status.FAIL, "mokutil"),
    ("secure boot unknown signing, module loads", host(driver=drv(secure_boot_enabled=True)), BLANK,
     "driver.secure-boot", Status.WARN, "mokutil"),
    ("secure boot unknown", H100, BLANK, "driver.secure-boot", Status.SKIP, ""),

    ("persistence on", H100, BLANK, "driver.persistence", Status.PASS, ""),
    ("persistence off", host(gpus=(gpu(persistence_mode=False),)), BLANK, "driver.persistence", Status.WARN,
     "nvidia-persistenced"),

    ("toolkit driver ok", H100, BLANK, "driver.cuda-toolkit-compat", Status.PASS, ""),
    ("toolkit minor compat", host(cuda=replace(H100.cuda, toolkit_version=V("12.8.93")), driver=drv(
        userspace_version=V("535.183.01"), kernel_module_version=V("535.183.01"))), BLANK,
     "driver.cuda-toolkit-compat", Status.WARN, "nvidia-driver-580-open"),
    ("toolkit newer than driver", host(driver=drv(userspace_version=V("575.57.08"),
                                                  kernel_module_version=V("575.57.08"))), BLANK,
     "driver.cuda-toolkit-compat", Status.FAIL, "sudo apt-get install -y nvidia-driver-580-open && sudo reboot"),

    ("torch driver ok", H100, BLANK, "driver.torch-cuda-compat", Status.PASS, ""),
    ("torch cu128 on 535", host(driver=drv(userspace_version=V("535.183.01"), kernel_module_version=V("535.183.01")),
                                python=py(torch_cuda=V("12.8"))), BLANK, "driver.torch-cuda-compat", Status.WARN,
     "nvidia-driver-580-open"),
    ("torch cu130 on 570", host(driver=drv(userspace_version=V("570.172.08"), kernel_module_version=V("570.172.08"))),
     BLANK, "driver.torch-cuda-compat", Status.FAIL,
     "pip install 'torch==2.11.*' --index-url https://download.pytorch.org/whl/cu128"),

    ("gpu count ok", H100, prof(gpu=GPU1), "gpu.count", Status.PASS, ""),
    ("gpu count short", H100, prof(gpu=GpuRequirements(min_count=8)), "gpu.count", Status.FAIL, "dmesg"),
    ("no gpu listed", host(gpus=()), prof(gpu=GPU1), "gpu.count", Status.FAIL, "lspci"),
    ("no gpu listed until reboot", host(gpus=(), driver=drv(library_mismatch=True)), prof(gpu=GPU1), "gpu.count",
     Status.FAIL, "sudo reboot"),
    ("gpu on cpu runner", H100, prof(gpu=GpuRequirements(min_count=0, max_count=0)), "gpu.count", Status.FAIL,
     "--profile svd-host"),

    ("model ok", H100, prof(gpu=GpuRequirements(models=("H100",))), "gpu.model", Status.PASS, ""),
    ("model other", H100, prof(gpu=GpuRequirements(models=("A100", "V100"))), "gpu.model", Status.FAIL, "fit"),

    ("vram ok", H100, prof(gpu=GpuRequirements(min_vram_gib=79)), "gpu.vram", Status.PASS, ""),
    ("vram small", SEED, prof(gpu=GpuRequirements(min_vram_gib=40)), "gpu.vram", Status.FAIL, "40 GiB"),

    ("cc ok", H100, prof(gpu=GpuRequirements(min_compute_capability=V("8.0"))), "gpu.compute-capability",
     Status.PASS, ""),
    ("cc old", SEED, prof(gpu=GpuRequirements(min_compute_capability=V("9.0"))), "gpu.compute-capability",
     Status.FAIL, "9.0"),

    ("nvlink all pairs", eight_gpus("NV18"), prof(gpu=GpuRequirements(nvlink_all_pairs=True)), "gpu.nvlink",
     Status.PASS, ""),
    ("nvlink over pcie on sxm", eight_gpus("SYS"), prof(gpu=GpuRequirements(nvlink_all_pairs=True)), "gpu.nvlink",
     Status.FAIL, "nvidia-fabricmanager-580"),
    ("nvlink bridge missing", host(SEED, topology=TopologyFacts(gpu_count=2, links=(GpuLink(0, 1, "PHB"),))),
     prof(gpu=GpuRequirements(nvlink_all_pairs=True)), "gpu.nvlink", Status.FAIL, "NVLink bridges"),
    ("nvlink single gpu", H100, prof(gpu=GpuRequirements(nvlink_all_pairs=True)), "gpu.nvlink", Status.SKIP, ""),

    ("ecc on", H100, prof(gpu=GpuRequirements(ecc=True)), "gpu.ecc", Status.PASS, ""),
    ("ecc off", host(gpus=(gpu(ecc_enabled=False),)), prof(gpu=GpuRequirements(ecc=True)), "gpu.ecc", Status.FAIL,
     "sudo nvidia-smi -e 1"),
    # a consumer GPU reports no ECC mode at all: "on" cannot be shown (unknown), "off" is met (skip)
    ("ecc consumer", SEED, prof(gpu=GpuRequirements(ecc=True)), "gpu.ecc", Status.UNKNOWN, "nvidia-smi -q -d ECC"),
    ("ecc consumer, off wanted", SEED, prof(gpu=GpuRequirements(ecc=False)), "gpu.ecc", Status.SKIP, ""),

    ("toolkit ok", H100, prof(cuda=CudaRequirements(toolkit=S(">=12.4"))), "cuda.toolkit", Status.PASS, ""),
    ("toolkit wrong", H100, prof(cuda=CudaRequirements(toolkit=S("11.3"))), "cuda.toolkit", Status.FAIL,
     "sudo apt-get install -y cuda-toolkit-11-3"),
    ("toolkit missing", host(cuda=CudaFacts(), notes=(Note("cuda.toolkit_version", "nvcc: command not found"),)),
     prof(cuda=CudaRequirements(toolkit=S("13.0"))), "cuda.toolkit", Status.UNKNOWN, "cuda-toolkit-13-0"),

    ("arch support ok", H100, BLANK, "cuda.arch-support", Status.PASS, ""),
    ("volta on cuda 13", host(gpus=(gpu(name="Tesla V100-SXM2-32GB", compute_capability=V("7.0")),)), BLANK,
     "cuda.arch-support", Status.FAIL, "cuda-toolkit-12-9"),

    ("cudnn ok", H100, prof(cuda=CudaRequirements(cudnn=S(">=9"))), "cuda.cudnn", Status.PASS, ""),
    ("cudnn 9 not 8", H100, prof(cuda=CudaRequirements(cudnn=S("8"))), "cuda.cudnn", Status.FAIL, "libcudnn8"),

    ("nccl present", H100, prof(cuda=CudaRequirements(nccl=S("*"))), "cuda.nccl", Status.PASS, ""),
    ("nccl version ok", SEED, prof(cuda=CudaRequirements(nccl=S(">=2.9"))), "cuda.nccl", Status.PASS, ""),
    # facts without a linker cache read: whether NCCL is there is unknown
    ("nccl not looked for", host(cuda=CudaFacts(toolkit_version=V("13.0"))),
     prof(cuda=CudaRequirements(nccl=S("*"))), "cuda.nccl", Status.UNKNOWN, "libnccl2"),
    # the linker cache was read and lists no libnccl: missing, a failure
    ("nccl missing", host(cuda=CudaFacts(toolkit_version=V("13.0"), libraries=("libcudart.so.13",)),
                          notes=(Note("cuda.nccl_version", "no libnccl in `ldconfig -p`, no NCCL package"),)),
     prof(cuda=CudaRequirements(nccl=S("*"))), "cuda.nccl", Status.FAIL, "libnccl2"),
    ("nccl unreadable linker cache", host(cuda=CudaFacts(toolkit_version=V("13.0")),
                                          notes=(Note("cuda.libraries", "`ldconfig -p` not found on the host"),)),
     prof(cuda=CudaRequirements(nccl=S("*"))), "cuda.nccl", Status.UNKNOWN, "libnccl2"),
    ("nccl old", SEED, prof(cuda=CudaRequirements(nccl=S(">=2.18"))), "cuda.nccl", Status.FAIL, "libnccl2"),

    ("python ok", H100, prof(python=PythonRequirements(version=S(">=3.11"))), "python.version", Status.PASS, ""),
    ("python old", SEED, prof(python=PythonRequirements(version=S(">=3.11"), env="conda")), "python.version",
     Status.FAIL, "conda create -y -n svd python=3.11"),

    ("conda env ok", SEED, prof(python=PythonRequirements(env="conda")), "python.env", Status.PASS, ""),
    ("system python, no conda", SYSTEM_PYTHON, prof(python=PythonRequirements(env="conda")), "python.env",
     Status.FAIL, "Miniforge3"),
    ("venv wanted", SYSTEM_PYTHON, prof(python=PythonRequirements(env="venv")), "python.env", Status.FAIL, "-m venv"),
    ("venv ok", H100, prof(python=PythonRequirements(env="venv")), "python.env", Status.PASS, ""),

    ("package ok", H100, prof(python=PythonRequirements(packages=(("transformers", S(">=4.41")),))),
     "python.package", Status.PASS, ""),
    ("package missing", H100, prof(python=PythonRequirements(packages=(("diffusers", S(">=0.24")),))),
     "python.package", Status.FAIL, "/opt/torch/.venv/bin/python3 -m pip install 'diffusers>=0.24'"),
    ("package old", SEED, prof(python=PythonRequirements(packages=(("torch", S(">=2.6")),))), "python.package",
     Status.FAIL, "torch==2.6.*"),
    ("env not probed", host(python=PythonEnvFacts(), notes=(Note("python", "python3: command not found"),)),
     prof(python=PythonRequirements(packages=(("torch", S("*")),))), "python.package", Status.UNKNOWN, ""),

    ("cuda wheel on gpu host", H100, BLANK, "torch.cuda-build", Status.PASS, ""),
    ("cpu wheel on gpu host", host(python=py(torch_cuda=None, torch_arch_list=())), BLANK, "torch.cuda-build",
     Status.FAIL, "--index-url https://download.pytorch.org/whl/cu130"),
    ("cuda wheel on cpu runner", H100, prof(python=PythonRequirements(torch_cpu=True)), "torch.cuda-build",
     Status.WARN, "whl/cpu"),

    ("variant ok", H100, prof(python=PythonRequirements(torch_cuda=S(">=12.6"))), "torch.cuda-variant", Status.PASS,
     ""),
    ("variant wrong", H100, prof(python=PythonRequirements(torch_cuda=S("12.8"))), "torch.cuda-variant",
     Status.FAIL, "whl/cu128"),

    ("arch ok", H100, BLANK, "torch.arch-list", Status.PASS, ""),
    ("5090 on cu126", host(gpus=(gpu(name="NVIDIA GeForce RTX 5090", compute_capability=V("12.0"),
                                     memory_total_mib=32607),),
                           python=py(torch_version=V("2.6.0"), torch_cuda=V("12.6"), torch_arch_list=())), BLANK,
     "torch.arch-list", Status.FAIL, "torch==2.6.*"),
    ("volta on cu130", host(gpus=(gpu(name="Tesla V100-SXM2-32GB", compute_capability=V("7.0")),),
                            python=py(torch_version=V("2.13.0"))), BLANK,
     "torch.arch-list", Status.FAIL, "whl/cu126"),

    ("diffusers compat ok", host(python=py(diffusers_version=V("0.42.1"))), BLANK, "python.diffusers-compat",
     Status.PASS, ""),
    ("diffusers on old torch", host(SEED, python=replace(SEED.python, python_version=V("3.11.9"),
                                                          diffusers_version=V("0.42.1"))),
     BLANK, "python.diffusers-compat", Status.FAIL, "torch==2.11.*"),
    ("transformers compat ok", H100, BLANK, "python.transformers-compat", Status.PASS, ""),
    ("transformers on py38", host(SEED, python=replace(SEED.python, transformers_version=V("5.17.0"))), BLANK,
     "python.transformers-compat", Status.FAIL, "python=3.12"),

    ("pipeline ok", H100, prof(svd=SVD_XT), "svd.pipeline-stack", Status.PASS, ""),
    ("pipeline on seed stack", SEED, prof(svd=SVD_XT), "svd.pipeline-stack", Status.FAIL, "python=3.12"),

    ("profile admits", H100, prof(svd=SVD_XT, python=PythonRequirements(version=S(">=3.10"))), "profile.svd-stack",
     Status.PASS, ""),
    ("profile pins py38", H100, SEED_PROFILE, "profile.svd-stack", Status.FAIL, "python.version: '>=3.11'"),

    ("vram fits", SEED, prof(svd=SVD_XT), "svd.vram", Status.PASS, ""),
    ("vram short", host(gpus=(gpu(name="NVIDIA GeForce RTX 3060", compute_capability=V("8.6"),
                                  memory_total_mib=12288),)), prof(svd=SVD_XT), "svd.vram", Status.FAIL,
     "svd.scenario: low-vram"),
    ("tiny on cpu", host(gpus=()), prof(svd=SvdRequirements(scenario="tiny")), "svd.vram", Status.PASS, ""),

    ("ram ok", H100, prof(ram=RamRequirements(min_gib=64, recommended_gib=128)), "ram.size", Status.PASS, ""),
    ("ram below recommended", host(memory=MemoryFacts(total_mib=64 * 1024 - 1500)),
     prof(ram=RamRequirements(min_gib=64, recommended_gib=128)), "ram.size", Status.WARN, "128 GiB"),
    ("ram short", host(memory=MemoryFacts(total_mib=32 * 1024)), prof(ram=RamRequirements(min_gib=64)), "ram.size",
     Status.FAIL, "64 GiB"),

    ("scratch ok", SEED, prof(storage=StorageRequirements(scratch=ScratchRequirements(min_devices=2, min_size_tb=1))),
     "storage.scratch", Status.PASS, ""),
    ("scratch none, free nvme", host(SEED, storage=replace(SEED.storage, md_arrays=SEED.storage.md_arrays[1:])),
     prof(storage=StorageRequirements(scratch=ScratchRequirements(min_devices=2))), "storage.scratch", Status.FAIL,
     "sudo mdadm --create /dev/md/scratch --level=0 --raid-devices=2 /dev/nvme0n1 /dev/nvme1n1"),
    ("scratch unknown", host(storage=StorageFacts()), prof(storage=StorageRequirements(scratch=ScratchRequirements())),
     "storage.scratch", Status.UNKNOWN, ""),
    ("scratch on a vm without nvme", H100, prof(storage=StorageRequirements(scratch=ScratchRequirements())),
     "storage.scratch", Status.FAIL, "fit 1 more unused NVMe drive"),

    ("data ok", SEED, prof(storage=StorageRequirements(data=DataArrayRequirements(min_devices=3, min_size_tb=4))),
     "storage.data", Status.PASS, ""),
    ("data too small", SEED,
     prof(storage=StorageRequirements(data=DataArrayRequirements(min_size_tb=8))), "storage.data", Status.FAIL,
     "mdadm --create /dev/md/data --level=6"),

    ("md healthy", SEED, BLANK, "storage.md-health", Status.PASS, ""),
    ("md failed member",
     host(SEED, storage=replace(SEED.storage, md_arrays=(
         MdArray("md1", "raid6", "active", ("sdb", "sdd", "sde"), failed_members=("sdc",),
                 size_bytes=4 * TB, devices_total=4, devices_up=3),))),
     BLANK, "storage.md-health", Status.FAIL, "sudo mdadm --manage /dev/md1 --remove /dev/sdc"),
    ("md degraded", host(SEED, storage=replace(SEED.storage, md_arrays=(
        MdArray("md1", "raid6", "active", ("sdb", "sdd", "sde"), size_bytes=4 * TB, devices_total=4,
                devices_up=3),))), BLANK, "storage.md-health", Status.FAIL, "--add"),
    ("md resync", host(SEED, storage=replace(SEED.storage, md_arrays=(
        MdArray("md0", "raid1", "active", ("sdb", "sdc"), devices_total=2, devices_up=2, recovering=True),))),
     BLANK, "storage.md-health", Status.WARN, "/proc/mdstat"),
]

# Issue 12: what svdops does not know is never a pass; the knowledge is current to its "as of" date.
GH200 = gpu(name="NVIDIA GH200 480GB", compute_capability=V("9.0"), memory_total_mib=97871)
# nvidia-smi names a GPU its driver predates "NVIDIA Graphics Device"; R470 reports no compute capability
UNNAMED = gpu(name="NVIDIA Graphics Device", compute_capability=None, memory_total_mib=16384)
GT1030 = gpu(name="NVIDIA GeForce GT 1030", compute_capability=None, memory_total_mib=2001)
CASES += [
    ("branch ltsb", H100, BLANK, "driver.branch", Status.PASS, ""),
    ("branch ended", host(driver=drv(userspace_version=V("535.274.02"), kernel_module_version=V("535.274.02"))),
     BLANK, "driver.branch", Status.WARN, "move to R580 (long-term support branch"),
    ("branch ended, volta", host(gpus=(gpu(name="Tesla V100-SXM2-32GB", compute_capability=V("7.0")),),
                                 driver=drv(userspace_version=V("570.211.01"), kernel_module_version=V("570.211.01"),
                                            kernel_module_flavor="proprietary")),
     BLANK, "driver.branch", Status.WARN, "sudo apt-get install -y nvidia-driver-580 &&"),
    ("branch new feature ended",
     host(driver=drv(userspace_version=V("610.43.02"), kernel_module_version=V("610.43.02"))), BLANK,
     "driver.branch", Status.WARN, "nvidia-driver-620-open"),
    ("branch unlisted old", host(driver=drv(userspace_version=V("575.57.08"), kernel_module_version=V("575.57.08"))),
     BLANK, "driver.branch", Status.WARN, "move to R580"),
    ("branch newer than knowledge", host(driver=drv(userspace_version=V("630.10"), kernel_module_version=V("630.10"))),
     BLANK, "driver.branch", Status.WARN, ""),
    ("nvcc 13.2 on R580", host(cuda=replace(H100.cuda, toolkit_version=V("13.2.51"))), BLANK,
     "driver.cuda-toolkit-compat", Status.WARN, "nvidia-driver-595-open"),
    ("nvcc 13.2 on R595", host(cuda=replace(H100.cuda, toolkit_version=V("13.2.51")),
                               driver=drv(userspace_version=V("595.71.05"), kernel_module_version=V("595.71.05"))),
     BLANK, "driver.cuda-toolkit-compat", Status.PASS, ""),
    ("nvcc 13.4 newer than knowledge", host(cuda=replace(H100.cuda, toolkit_version=V("13.4.92")),
                                            driver=drv(userspace_version=V("620.1"), kernel_module_version=V("620.1"))),
     BLANK, "driver.cuda-toolkit-compat", Status.WARN, ""),
    ("torch cu132 on R580", host(python=py(torch_version=V("2.14.1"), torch_cuda=V("13.2"))), BLANK,
     "driver.torch-cuda-compat", Status.WARN, "nvidia-driver-595-open"),
    ("torch newer than knowledge", host(python=py(torch_version=V("2.15.0"), torch_cuda=V("13.2"), torch_arch_list=())),
     BLANK, "torch.cuda-build", Status.WARN, ""),
    ("torch 2.14 known", host(python=py(torch_version=V("2.14.1"), torch_cuda=V("13.0"), torch_arch_list=())),
     BLANK, "torch.arch-list", Status.PASS, ""),
    ("diffusers 0.39 on torch 2.5", host(python=py(diffusers_version=V("0.39.0"), torch_version=V("2.5.1"),
                                                   torch_cuda=V("12.4"), packages={"torch": "2.5.1"})),
     BLANK, "python.diffusers-compat", Status.FAIL, "torch=="),
    ("diffusers 0.37 on python 3.9", host(python=py(diffusers_version=V("0.37.0"), python_version=V("3.9.18"))),
     BLANK, "python.diffusers-compat", Status.FAIL, "python3.12 -m venv"),
    ("diffusers newer than knowledge", host(python=py(diffusers_version=V("0.43.0"))), BLANK,
     "python.diffusers-compat", Status.WARN, ""),
    ("grace hopper needs open", host(gpus=(GH200,), driver=drv(kernel_module_flavor="proprietary")), BLANK,
     "driver.flavor", Status.FAIL, "nvidia-driver-580-open"),
    ("pre-turing needs proprietary", host(gpus=(gpu(name="Tesla V100-SXM2-32GB", compute_capability=V("7.0")),)),
     prof(driver=DriverRequirements(flavor="open")), "driver.flavor", Status.FAIL, "nvidia-driver-580 &&"),
    ("unknown cc never passes the toolkit arch check", host(gpus=(UNNAMED,)), BLANK, "cuda.arch-support", Status.WARN,
     ""),
    ("unknown cc never passes the torch arch check", host(gpus=(UNNAMED,)), BLANK, "torch.arch-list", Status.WARN, ""),
    ("cc from the name: GT 1030 and CUDA 13", host(gpus=(GT1030,)), BLANK, "cuda.arch-support", Status.FAIL,
     "cuda-toolkit-12-9"),
]


def test_newer_than_knowledge_findings_say_so_and_how_to_refresh() -> None:
    cases = [
        (host(cuda=replace(H100.cuda, toolkit_version=V("13.4.92"))), "driver.cuda-toolkit-compat", "CUDA 13.4"),
        (host(python=py(torch_version=V("2.15.0"))), "torch.cuda-build", "torch 2.15"),
        (host(python=py(diffusers_version=V("0.43.0"))), "python.diffusers-compat", "diffusers 0.43.0"),
        (host(python=py(transformers_version=V("6.0.0"))), "python.transformers-compat", "transformers 6.0.0"),
        (host(driver=drv(userspace_version=V("630.10"), kernel_module_version=V("630.10"))), "driver.branch",
         "branch R630"),
    ]
    for facts, rule_id, what in cases:
        finding = _find(rules.evaluate(facts, BLANK), rule_id)
        assert finding.status is Status.WARN, finding
        assert f"{what} is newer than svdops's knowledge (as of 2026-12-02)" in finding.actual, finding
        assert "svdops/judge/knowledge/" in finding.actual


@pytest.mark.parametrize("card", [UNNAMED, GT1030], ids=["unnamed", "gt1030"])
def test_unknown_or_pre_turing_gpu_gets_no_open_module_advice(card: GpuFacts) -> None:
    facts = host(gpus=(card,), driver=drv(userspace_version=V("470.256.02"), kernel_module_version=V("470.256.02"),
                                           kernel_module_flavor="proprietary"))
    for finding in rules.evaluate(facts, prof(driver=DriverRequirements(version=S(">=580")))):
        assert "-open" not in finding.hint, finding


def test_an_ended_branch_is_judged_by_when_the_facts_were_collected() -> None:
    before = host(collected_at="2026-05-20T00:00:00Z",
                  driver=drv(userspace_version=V("535.274.02"), kernel_module_version=V("535.274.02")))
    assert _find(rules.evaluate(before, BLANK), "driver.branch").status is Status.PASS
    after = replace(before, collected_at="2026-06-02T00:00:00Z")
    assert _find(rules.evaluate(after, BLANK), "driver.branch").status is Status.WARN


def test_no_hint_suggests_an_ended_branch() -> None:
    from svdops.judge import knowledge as kb

    ended = {b.branch for b in kb.knowledge().driver_branches if b.ended(kb.knowledge().as_of)}
    for _case, facts, profile, _rule_id, _status, _hint in CASES:
        for finding in rules.evaluate(facts, profile):
            for branch in ended:
                assert f"nvidia-driver-{branch}" not in finding.hint, (_case, finding)


# --- the GPUs' own health (issue 19): real outputs are judged in tests/unit/test_health.py --------------

HEALTH = HealthRequirements(memory="fail", pcie="warn", nvlink="fail", xid="fail", thermal="warn",
                            fabric_manager="fail")
HEALTH_WARN = replace(HEALTH, memory="warn", xid="warn")


def gpu_health(**changes: object) -> HostFacts:
    return host(gpus=(gpu(health=replace(H100.gpus[0].health, **changes)),))  # type: ignore[arg-type]


def nvlink_pair(*links: NvLinkState) -> HostFacts:
    one = gpu(health=replace(H100.gpus[0].health, nvlinks=links))
    return host(gpus=(one, replace(one, index=1)),
                topology=TopologyFacts(gpu_count=2, links=(GpuLink(0, 1, "NV4", 4),)))


UP = tuple(NvLinkState(n, True, 25.0) for n in range(4))
CASES += [
    ("memory clean", H100, prof(health=HEALTH), "health.memory", Status.PASS, ""),
    ("row remap failure", gpu_health(remapped_rows_failure=True), prof(health=HEALTH), "health.memory", Status.FAIL,
     "open an RMA"),
    ("row remap pending", gpu_health(remapped_rows_pending=True), prof(health=HEALTH), "health.memory", Status.FAIL,
     "sudo nvidia-smi -r -i 0"),
    ("row remap pending, warn level", gpu_health(remapped_rows_pending=True), prof(health=HEALTH_WARN),
     "health.memory", Status.WARN, "to activate the remap"),
    ("one corrected error warns", gpu_health(ecc_aggregate_corrected=1), prof(health=HEALTH), "health.memory",
     Status.WARN, "dcgmi diag"),
    ("volatile uncorrectable", gpu_health(ecc_volatile_uncorrected=2, ecc_aggregate_uncorrected=2),
     prof(health=HEALTH), "health.memory", Status.FAIL, "sudo nvidia-smi -r -i 0"),
    ("retired pages at the limit", gpu_health(retired_pages_dbe=30, retired_pages_sbe=30), prof(health=HEALTH),
     "health.memory", Status.FAIL, "RMA"),
    ("pending retirement", gpu_health(retired_pages_dbe=1, retired_pages_pending=True), prof(health=HEALTH),
     "health.memory", Status.FAIL, "to retire the page"),
    ("pcie full", H100, prof(health=HEALTH), "health.pcie", Status.PASS, ""),
    ("pcie x8", host(gpus=(gpu(pcie_width_current=8),)), prof(health=HEALTH), "health.pcie", Status.WARN,
     "slot wired x16"),
    ("pcie x8, fail level", host(gpus=(gpu(pcie_width_current=8),)), prof(health=replace(HEALTH, pcie="fail")),
     "health.pcie", Status.FAIL, "bifurcation"),
    ("pcie gen1 at idle", host(gpus=(gpu(pcie_gen_current=1),)), prof(health=HEALTH), "health.pcie", Status.PASS, ""),
    ("pcie gen3 under load", host(gpus=(gpu(pcie_gen_current=3, health=replace(H100.gpus[0].health,
                                                                               utilization_pct=97)),)),
     prof(health=HEALTH), "health.pcie", Status.WARN, "reseat"),
    ("host caps the gen", gpu_health(pcie_gen_device_max=5, pcie_gen_host_max=4), prof(health=HEALTH),
     "health.pcie", Status.WARN, "Gen5 root port"),
    ("nvlink up", nvlink_pair(*UP), prof(health=HEALTH), "health.nvlink", Status.PASS, ""),
    ("nvlink one down", nvlink_pair(*UP[:3], NvLinkState(3, False)), prof(health=HEALTH), "health.nvlink",
     Status.FAIL, "nvidia-fabricmanager"),
    ("nvlink errors", nvlink_pair(*UP[:3], NvLinkState(3, True, 25.0, 0, 0, 7)), prof(health=HEALTH),
     "health.nvlink", Status.WARN, "nvlink -re"),
    ("no xid", H100, prof(health=HEALTH), "health.xid", Status.PASS, ""),
    ("xid 79", host(kernel_log=KernelLogFacts("dmesg", 3, (XidEvent(79, 1, ("0000:01:00",), "812 s after boot"),))),
     prof(health=HEALTH), "health.xid", Status.FAIL, "reboot"),
    ("xid 13 is the app", host(kernel_log=KernelLogFacts("dmesg", 3, (XidEvent(13, 2),))), prof(health=HEALTH),
     "health.xid", Status.WARN, "compute-sanitizer"),
    ("unreadable log skips", host(kernel_log=KernelLogFacts(), notes=(Note("kernel_log", "dmesg: not permitted"),)),
     prof(health=HEALTH), "health.xid", Status.SKIP, "adm group"),
    ("cool at idle", H100, prof(health=HEALTH), "health.thermal", Status.PASS, ""),
    ("hw slowdown at idle", gpu_health(clocks_event_reasons=("gpu_idle", "hw_slowdown")),
     prof(health=replace(HEALTH, thermal="fail")), "health.thermal", Status.FAIL, "airflow"),
    ("hot at idle", host(gpus=(gpu(temperature_c=70),)), prof(health=HEALTH), "health.thermal", Status.WARN,
     "fans"),
    ("fabric completed", gpu_health(fabric_state="Completed", fabric_status="Success"), prof(health=HEALTH),
     "health.fabric-manager", Status.PASS, ""),
    ("fabric not started", gpu_health(fabric_state="Not Started", fabric_status="N/A"), prof(health=HEALTH),
     "health.fabric-manager", Status.FAIL, "nvidia-fabricmanager-580"),
]


def _find(findings: list[Finding], rule_id: str) -> Finding:
    matching = [f for f in findings if f.id == rule_id]
    assert matching, f"no {rule_id} finding in {[f.id for f in findings]}"
    # several (per package, per array): the one that is not a pass speaks for the case
    return next((f for f in matching if f.status is not Status.PASS), matching[0])


@pytest.mark.parametrize(("case", "facts", "profile", "rule_id", "status", "hint"), CASES, ids=[c[0] for c in CASES])
def test_rule(case: str, facts: HostFacts, profile: Profile, rule_id: str, status: Status, hint: str) -> None:
    finding = _find(rules.evaluate(facts, profile), rule_id)
    assert finding.status is status, f"{case}: {finding}"
    assert finding.expected and finding.actual
    assert hint in finding.hint, f"{case}: hint {finding.hint!r}"
    if status is Status.FAIL:
        assert finding.hint, f"{case}: a failure needs a hint"


def test_every_rule_has_a_pass_and_a_fail_case() -> None:
    statuses: dict[str, set[Status]] = {}
    for _case, _facts, _profile, rule_id, status, _hint in CASES:
        statuses.setdefault(rule_id, set()).add(status)
    assert set(statuses) == set(rules.RULE_IDS)
    for rule_id, seen in statuses.items():
        assert Status.PASS in seen and ({Status.FAIL, Status.WARN} & seen), rule_id


def test_unavailable_facts_carry_the_probe_note() -> None:
    facts = host(cuda=CudaFacts(), notes=(Note("cuda.toolkit_version", "nvcc: command not found"),))
    finding = _find(rules.evaluate(facts, prof(cuda=CudaRequirements(toolkit=S("13.0")))), "cuda.toolkit")
    assert finding.actual == "not available: nvcc: command not found"


@pytest.mark.parametrize("name", ["svd-host", "seed-2023", "workstation-24gb", "a100-80gb-x8-nvlink",
                                  "h100-sxm-x8-nvlink", "ci-cpu"])
def test_empty_facts_never_raise(name: str) -> None:
    empty = HostFacts(hostname="x", collected_at="2026-11-26T00:00:00Z", source="local")
    findings = rules.evaluate(empty, load_profile(name))
    assert findings
    assert all(f.id in rules.RULE_IDS for f in findings)
    assert not [f for f in findings if f.title == "rule could not run"]


def test_a_crashing_rule_is_unknown_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(facts: HostFacts, profile: Profile) -> list[Finding]:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(rules, "RULES", (("test.broken", broken), *rules.RULES))
    findings = rules.evaluate(H100, BLANK)
    assert findings[0].id == "test.broken" and findings[0].status is Status.UNKNOWN
    assert "ZeroDivisionError: boom" in findings[0].actual
    assert len(findings) > 1


def _by_status(findings: list[Finding], status: Status) -> set[str]:
    return {f.id for f in findings if f.status is status}


def test_reference_h100_against_the_default_profile() -> None:
    findings = rules.evaluate(H100, load_profile("svd-host"))
    # the recorded host has no diffusers installed: the only thing between it and SVD
    assert _by_status(findings, Status.FAIL) == {"python.package"}
    missing = _find(findings, "python.package")
    assert missing.subject == "diffusers" and "pip install 'diffusers>=0.24'" in missing.hint
    with_diffusers = host(python=py(diffusers_version=V("0.42.1"), packages={**H100.python.packages,
                                                                              "diffusers": "0.42.1"}))
    findings = rules.evaluate(with_diffusers, load_profile("svd-host"))
    assert worst(findings) is Status.PASS, [f for f in findings if f.status not in (Status.PASS, Status.SKIP)]


def test_seed_profile_against_the_modern_h100() -> None:
    findings = rules.evaluate(H100, SEED_PROFILE)
    assert {"os.release", "gpu.model", "cuda.toolkit", "cuda.cudnn", "python.version", "python.env",
            "profile.svd-stack"} <= _by_status(findings, Status.FAIL)
    stack = _find(findings, "profile.svd-stack")
    assert "no host can satisfy this profile and run today's SVD pipeline" in stack.actual
    assert "python.version '3.8' admits no Python >= 3.11" in stack.actual
    assert "ram.size" in _by_status(findings, Status.PASS)  # 125.9 GiB of MemTotal is 128 GiB installed


def test_seed_host_against_its_own_profile_fails_only_for_todays_pipeline() -> None:
    findings = rules.evaluate(SEED, SEED_PROFILE)
    assert _by_status(findings, Status.FAIL) == {"svd.pipeline-stack", "profile.svd-stack"}
    stack = _find(findings, "svd.pipeline-stack")
    assert "this stack cannot run today's SVD pipeline" in stack.actual
    assert "Python 3.8.10 (needs >= 3.11)" in stack.actual and "torch 1.10.2 (needs >= 2.6)" in stack.actual


def test_modern_profile_against_the_seed_host_says_what_to_change() -> None:
    findings = rules.evaluate(SEED, load_profile("svd-host"))
    failed = _by_status(findings, Status.FAIL)
    assert {"svd.pipeline-stack", "python.package"} <= failed
    stack = _find(findings, "svd.pipeline-stack")
    # driver 465 runs no CUDA 12/13 wheel: the driver comes first, then a conda env with today's stack
    assert stack.hint.startswith("sudo apt-get install -y nvidia-driver-")
    assert "/home/lab/miniconda3/bin/conda create -y -n svd python=3.12" in stack.hint
    assert "'torch==2.11.*' --index-url https://download.pytorch.org/whl/cu130" in stack.hint
    assert "'diffusers>=0.42' transformers accelerate" in stack.hint
    diffusers = next(f for f in findings if f.id == "python.package" and f.subject == "diffusers")
    assert diffusers.status is Status.FAIL


def test_x8_profile_on_a_healthy_hgx() -> None:
    hgx = host(eight_gpus("NV18"), memory=MemoryFacts(total_mib=2 * 1024 * 1024 - 30000),
               python=py(diffusers_version=V("0.42.1"), packages={**H100.python.packages, "diffusers": "0.42.1"}),
               storage=StorageFacts(md_arrays=(MdArray("md0", "raid0", "active",
                                                       tuple(f"nvme{i}n1" for i in range(8)),
                                                       size_bytes=30 * TB, devices_total=8, devices_up=8),)))
    findings = rules.evaluate(hgx, load_profile("h100-sxm-x8-nvlink"))
    assert not _by_status(findings, Status.FAIL), [f for f in findings if f.status is Status.FAIL]


def test_ci_profile_on_a_cpu_runner_skips_gpu_rules() -> None:
    runner = HostFacts(
        hostname="ci", collected_at="2026-11-26T00:00:00Z", source="local",
        os=OsFacts(id="debian", version_id="12"),
        python=PythonEnvFacts(executable="/work/.venv/bin/python", python_version=V("3.11.2"),
                              packages={"torch": "2.13.0+cpu", "diffusers": "0.42.1", "transformers": "5.24.0"},
                              torch_version=V("2.13.0"), diffusers_version=V("0.42.1"),
                              transformers_version=V("5.24.0")),
        notes=(Note("gpus", "nvidia-smi: command not found"),),
    )
    findings = rules.evaluate(runner, load_profile("ci-cpu"))
    assert worst(findings) is Status.PASS, [f for f in findings if f.status not in (Status.PASS, Status.SKIP)]
    assert {"driver.present", "driver.reboot-required", "driver.nouveau"} <= _by_status(findings, Status.SKIP)
    assert _find(findings, "svd.vram").actual == "no GPU needed"


def test_summarize_and_worst() -> None:
    findings = [Finding("a", "a", Status.PASS, "x", "x"), Finding("b", "b", Status.WARN, "x", "y", "fix"),
                Finding("c", "c", Status.SKIP, "x", "?")]
    assert summarize(findings) == {"pass": 1, "warn": 1, "fail": 0, "skip": 1, "unknown": 0}
    assert worst(findings) is Status.WARN
    unknown = Finding("d", "d", Status.UNKNOWN, "x", "not available: probe failed")
    assert worst([*findings, unknown]) is Status.UNKNOWN
    assert worst([unknown, Finding("e", "e", Status.FAIL, "x", "y", "fix")]) is Status.FAIL
    assert worst([]) is Status.PASS
    assert worst([findings[2]]) is Status.SKIP
    assert Status.FAIL == "fail"


def test_findings_are_stable_and_pure() -> None:
    profile = load_profile("seed-2023")
    assert rules.evaluate(SEED, profile) == rules.evaluate(SEED, profile)



# --- the hand-built H100 against the recording it stands for ----------------------------------


class _Reads:
    """A read-only stand-in for HostFacts that writes down which fields the rules read.

    Paths are dotted ("driver.kernel_module_version"), "gpus[*].name" for a field of any GPU,
    and "note_for('cuda')" for a note asked for. Properties are read on the real object, so
    `driver.needs_reboot` is one path whose value is compared as a whole.
    """

    def __init__(self, facts: object, path: str, seen: set[str]) -> None:
        object.__setattr__(self, "_facts", facts)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name: str) -> object:
        value = getattr(self._facts, name)
        path = f"{self._path}.{name}" if self._path else name
        if callable(value) and not _is_fact(value):
            def call(*args: object) -> object:
                self._seen.add(f"{path}({', '.join(map(repr, args))})")
                return value(*args)
            return call
        self._seen.add(path)
        if _is_fact(value):
            return _Reads(value, path, self._seen)
        if isinstance(value, tuple) and value and all(_is_fact(item) for item in value):
            return tuple(_Reads(item, f"{path}[*]", self._seen) for item in value)
        return value


def _is_fact(value: object) -> bool:
    return is_dataclass(value) and not isinstance(value, type) and type(value).__module__ == HostFacts.__module__


def _values(facts: object, path: str) -> list[object]:
    """The values at `path`, one per GPU (or other item) where the path passes through `[*]`."""
    values = [facts]
    for part in path.split("."):
        name, each = part.removesuffix("[*]"), part.endswith("[*]")
        values = [getattr(v, name) for v in values]
        if each:
            values = [item for v in values for item in v]  # type: ignore[attr-defined]
    return values


SHIPPED_PROFILES = ("svd-host", "seed-2023", "workstation-24gb", "a100-80gb-x8-nvlink", "h100-sxm-x8-nvlink",
                    "ci-cpu")


def test_hand_built_h100_matches_what_the_recorded_host_gathers() -> None:
    recorded = gather_facts(RecordedShell(recorded_host("h100-sxm-ubuntu2404")))
    profiles = [case[2] for case in CASES] + [load_profile(name) for name in SHIPPED_PROFILES]
    seen: set[str] = set()
    for facts in (H100, recorded):
        for profile in profiles:
            judged = rules.evaluate(_Reads(facts, "", seen), profile)  # type: ignore[arg-type]
            assert judged == rules.evaluate(facts, profile), "the stand-in changed what a rule decided"
    # without these the comparison below would be empty or blind to whole subjects
    assert {"driver.kernel_module_version", "gpus[*].memory_total_mib", "cuda.nccl_version", "python.packages",
            "storage.block_devices", "memory.total_mib", "os.version_id"} <= seen

    drift = []
    # when the facts were gathered is not a property of the host: a replay is stamped with its own time
    # (driver.branch reads it to date a branch's end of life)
    for path in sorted(seen - {"collected_at"}):
        if path.startswith("note_for("):
            subject = path.removeprefix("note_for(").removesuffix(")").strip("'")
            mine, real = H100.note_for(subject), recorded.note_for(subject)
        elif path == "python.packages":
            # the rules look packages up by name: the ones any profile names, and the dedicated three
            names = {"torch", "diffusers", "transformers"} | {n for p in profiles for n, _ in p.python.packages}
            mine = {n: H100.python.packages.get(n) for n in sorted(names)}
            real = {n: recorded.python.packages.get(n) for n in sorted(names)}
        else:
            mine_values, real_values = _values(H100, path), _values(recorded, path)
            if any(_is_fact(v) for v in real_values):
                continue  # a subject: its fields are compared one by one
            if all(isinstance(v, tuple) and v and all(_is_fact(i) for i in v) for v in real_values):
                mine, real = [len(v) for v in mine_values], [len(v) for v in real_values]  # type: ignore[arg-type]
            else:
                mine, real = mine_values, real_values
        if mine != real:
            drift.append(f"{path}: hand-built {mine!r}, recorded {real!r}")
    assert not drift, "\n".join(drift)


def test_a_soname_major_is_not_judged_as_the_nccl_version() -> None:
    """libnccl.so.2 says NCCL 2.x, not which: a '>=2.18' requirement is unknown, never a false fail or a pass."""
    finding = _find(rules.evaluate(H100, prof(cuda=CudaRequirements(nccl=S(">=2.18")))), "cuda.nccl")
    assert finding.status is Status.UNKNOWN and finding.actual == "libnccl present, version unknown"


def test_a_soname_major_is_not_judged_as_the_cudnn_version() -> None:
    facts = replace(H100, cuda=replace(H100.cuda, cudnn_version=V("9")))
    finding = _find(rules.evaluate(facts, prof(cuda=CudaRequirements(cudnn=S(">=9.1")))), "cuda.cudnn")
    assert finding.status is Status.UNKNOWN and finding.actual.startswith("libcudnn.so.9 present, version unknown")


# --- a check that could not look is not a pass --------------------------------------------------------

NO_LOOK = Note("x", "probe failed")
UNKNOWN_CASES: list[tuple[str, HostFacts, Profile, str]] = [
    # (case, facts where the probe could not look, a profile that requires the check, rule id)
    ("os id", host(os=OsFacts()), prof(os=OsRequirements(id="ubuntu")), "os.id"),
    ("driver version", host(driver=DriverFacts()), prof(driver=DriverRequirements(version=S(">=580"))),
     "driver.version"),
    ("driver flavour", host(driver=drv(kernel_module_flavor=None)), prof(driver=DriverRequirements(flavor="open")),
     "driver.flavor"),
    ("gpu vram", host(gpus=(gpu(memory_total_mib=None),)), prof(gpu=GpuRequirements(min_vram_gib=40)), "gpu.vram"),
    # a GPU that neither reports its capability nor has a name the GPU table holds
    ("gpu cc", host(gpus=(UNNAMED,)), prof(gpu=GpuRequirements(min_compute_capability=V("8.0"))),
     "gpu.compute-capability"),
    ("nvlink", host(eight_gpus("NV18"), topology=TopologyFacts(gpu_count=8)),
     prof(gpu=GpuRequirements(nvlink_all_pairs=True)), "gpu.nvlink"),
    ("python env", host(python=py(executable=None)), prof(python=PythonRequirements(env="venv")), "python.env"),
    ("python version", host(python=py(python_version=None)), prof(python=PythonRequirements(version=S(">=3.11"))),
     "python.version"),
    ("torch variant", host(python=PythonEnvFacts()), prof(python=PythonRequirements(torch_cuda=S("13.0"))),
     "torch.cuda-variant"),
    ("ram", host(memory=MemoryFacts()), prof(ram=RamRequirements(min_gib=64)), "ram.size"),
    ("data array", host(storage=StorageFacts()), prof(storage=StorageRequirements(data=DataArrayRequirements())),
     "storage.data"),
    ("svd stack", host(python=PythonEnvFacts()), prof(svd=SVD_XT), "svd.pipeline-stack"),
    ("svd vram", host(gpus=(gpu(memory_total_mib=None),)), prof(svd=SVD_XT), "svd.vram"),
    ("transformers compat", host(python=py(python_version=None)),
     prof(python=PythonRequirements(packages=(("transformers", S("*")),))), "python.transformers-compat"),
    ("nouveau, no nvidia module", host(driver=drv(kernel_module_version=None), gpus=()), prof(gpu=GPU1),
     "driver.nouveau"),
    ("secure boot, no nvidia module", host(driver=drv(kernel_module_version=None), gpus=()), prof(gpu=GPU1),
     "driver.secure-boot"),
    ("reboot, module unreadable", host(driver=drv(kernel_module_version=None)), prof(gpu=GPU1),
     "driver.reboot-required"),
    ("toolkit arch, unknown cc", host(gpus=(UNNAMED,)), prof(gpu=GPU1), "cuda.arch-support"),
    ("torch arch, unknown cc", host(gpus=(UNNAMED,)), prof(gpu=GPU1), "torch.arch-list"),
]


@pytest.mark.parametrize(("case", "facts", "profile", "rule_id"), UNKNOWN_CASES, ids=[c[0] for c in UNKNOWN_CASES])
def test_a_required_check_that_could_not_look_is_unknown(case: str, facts: HostFacts, profile: Profile,
                                                         rule_id: str) -> None:
    finding = _find(rules.evaluate(facts, profile), rule_id)
    assert finding.status is Status.UNKNOWN, f"{case}: {finding}"
    assert finding.actual  # says why it could not look
    assert worst(rules.evaluate(facts, profile)) in (Status.UNKNOWN, Status.FAIL)


@pytest.mark.parametrize(("case", "facts", "profile", "rule_id"), UNKNOWN_CASES, ids=[c[0] for c in UNKNOWN_CASES])
def test_an_optional_check_that_could_not_look_is_skipped(case: str, facts: HostFacts, profile: Profile,
                                                          rule_id: str) -> None:
    optional = replace(profile, optional=(rule_id,))
    finding = _find(rules.evaluate(facts, optional), rule_id)
    assert finding.status is Status.SKIP, f"{case}: {finding}"
    assert finding.actual.endswith("(optional in profile test)")
    # only the optional check is relaxed: the others judge as before
    others = [f for f in rules.evaluate(facts, optional) if f.id != rule_id]
    assert others == [f for f in rules.evaluate(facts, profile) if f.id != rule_id]


NOT_REQUIRED_CASES: list[tuple[str, HostFacts, Profile, str, Status]] = [
    # could not look, but the profile does not require the check (or its worst outcome is a warning)
    ("transformers not required", host(python=py(python_version=None)), BLANK, "python.transformers-compat",
     Status.WARN),
    ("ram recommended only", host(memory=MemoryFacts()), prof(ram=RamRequirements(recommended_gib=64)), "ram.size",
     Status.WARN),
    ("persistence unknown", host(gpus=(gpu(persistence_mode=None),), driver=drv(persistenced_running=None)), BLANK,
     "driver.persistence", Status.SKIP),
    ("ecc off wanted, not reported", host(gpus=(gpu(ecc_enabled=None),)), prof(gpu=GpuRequirements(ecc=False)),
     "gpu.ecc", Status.SKIP),
    ("toolkit arch, no gpu required", host(gpus=(UNNAMED,)), BLANK, "cuda.arch-support", Status.WARN),
    # the nvidia module drives the GPUs: nouveau cannot hold them and Secure Boot did not refuse the module
    ("nouveau, nvidia module loaded", H100, prof(gpu=GPU1), "driver.nouveau", Status.SKIP),
    ("secure boot, nvidia module loaded", H100, prof(gpu=GPU1), "driver.secure-boot", Status.SKIP),
    ("reboot, no driver at all", host(driver=DriverFacts(), gpus=()), prof(gpu=GPU1), "driver.reboot-required",
     Status.SKIP),
]


@pytest.mark.parametrize(("case", "facts", "profile", "rule_id", "status"), NOT_REQUIRED_CASES,
                         ids=[c[0] for c in NOT_REQUIRED_CASES])
def test_a_check_not_required_stays_skip_or_warn(case: str, facts: HostFacts, profile: Profile, rule_id: str,
                                                 status: Status) -> None:
    finding = _find(rules.evaluate(facts, profile), rule_id)
    assert finding.status is status, f"{case}: {finding}"


def test_newer_than_knowledge_stays_a_warning_even_where_required() -> None:
    newer = host(python=py(torch_version=V("99.0.0"), packages={**H100.python.packages, "torch": "99.0.0"}))
    finding = _find(rules.evaluate(newer, prof(gpu=GPU1)), "torch.cuda-build")
    assert finding.status is Status.WARN and "newer than" in finding.actual


def test_an_optional_check_that_fails_still_fails() -> None:
    profile = prof(os=OsRequirements(id="ubuntu"), optional=("os.id",))
    finding = _find(rules.evaluate(host(os=OsFacts(id="rocky")), profile), "os.id")
    assert finding.status is Status.FAIL


def test_every_check_id_is_a_finding_id_and_back() -> None:
    """profiles validate `optional:` against CHECK_IDS: a rule's id missing there could not be made optional."""
    from svdops.findings import CHECK_IDS

    assert rules.RULE_IDS == CHECK_IDS
    assert {rule_id for rule_id, _ in rules.RULES} <= set(CHECK_IDS)
