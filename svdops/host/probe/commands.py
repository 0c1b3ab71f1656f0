"""Every read-only command svdops runs on a host, keyed by the name of its recording file.

Keys match the recorded fixture layout (`nvidia-smi-q.xml`, `meminfo.txt`, ...), so a folder
written by `svdops facts --bundle` replays through RecordedShell unchanged. No command here changes
the host, and none needs Python on it except the python-env ones (which use the target env's python).
"""

from __future__ import annotations

from svdops.host.shell import Command

NVIDIA_SMI_XML = Command("nvidia-smi-q.xml", ("nvidia-smi", "-q", "-x"), timeout_s=30)
NVIDIA_SMI_TOPO = Command("nvidia-smi-topo-m.txt", ("nvidia-smi", "topo", "-m"), timeout_s=30)
NVIDIA_SMI_VERSION = Command("nvidia-smi-version.txt", ("nvidia-smi", "--version"))
NVIDIA_SMI = Command("nvidia-smi.txt", ("nvidia-smi",), timeout_s=30)
# The XML has no compute capability; this field list matches the recorded fixtures, column for column.
QUERY_GPU_FIELDS: tuple[str, ...] = (
    "index", "name", "uuid", "driver_version", "memory.total", "memory.used", "temperature.gpu",
    "power.draw", "power.limit", "clocks.sm", "clocks.max.sm", "pcie.link.gen.current",
    "pcie.link.width.current", "persistence_mode", "compute_cap", "ecc.mode.current",
)
NVIDIA_SMI_QUERY_GPU = Command(
    "nvidia-smi-query-gpu.csv",
    ("nvidia-smi", "--query-gpu=" + ",".join(QUERY_GPU_FIELDS), "--format=csv,noheader,nounits"),
    timeout_s=30,
)
NVIDIA_SMI_NVLINK_STATUS = Command("nvidia-smi-nvlink-s.txt", ("nvidia-smi", "nvlink", "-s"), timeout_s=30)
NVIDIA_SMI_NVLINK_ERRORS = Command("nvidia-smi-nvlink-e.txt", ("nvidia-smi", "nvlink", "-e"), timeout_s=30)
# The kernel log since boot, cut on the host to NVIDIA's lines (a long-running host's log is megabytes, and
# its newest lines, the ones that matter, are the ones a size cap would lose). The first lines are kept
# whatever they say: they show the log was readable, or carry the refusal (dmesg_restrict, no adm group).
_NVIDIA_LINES = "awk 'NR<=2 || tolower($0) ~ /nvrm|xid|nvidia/'"
KERNEL_LOG_JOURNAL = Command(
    "journalctl-kernel-nvidia.txt",
    ("sh", "-c", f"journalctl -k -b --no-pager -o short-iso 2>&1 | {_NVIDIA_LINES}"), timeout_s=30,
)
KERNEL_LOG_DMESG = Command("dmesg-nvidia.txt", ("sh", "-c", f"dmesg 2>&1 | {_NVIDIA_LINES}"), timeout_s=30)
PROC_DRIVER_VERSION = Command("proc-driver-nvidia-version.txt", ("cat", "/proc/driver/nvidia/version"))
NVCC_VERSION = Command("nvcc-version.txt", ("nvcc", "--version"))
# nvcc is often only under /usr/local/cuda/bin, which a non-login SSH shell lacks on PATH
NVCC_VERSION_DEFAULT_PATH = Command("nvcc-default-version.txt", ("/usr/local/cuda/bin/nvcc", "--version"))
OS_RELEASE = Command("os-release.txt", ("cat", "/etc/os-release"))
UNAME = Command("uname-a.txt", ("uname", "-a"))
HOSTNAME = Command("hostname.txt", ("uname", "-n"))
MEMINFO = Command("meminfo.txt", ("cat", "/proc/meminfo"))
LSCPU = Command("lscpu.json", ("lscpu", "-J"))
LSBLK = Command(
    "lsblk.json", ("lsblk", "-J", "-b", "-o", "NAME,TYPE,SIZE,ROTA,TRAN,MODEL,MOUNTPOINT,FSTYPE")
)
DF = Command("df.txt", ("df", "-PT"))  # 1024-byte blocks, as recorded
PROC_MOUNTS = Command("mounts.txt", ("cat", "/proc/mounts"))
MDSTAT = Command("mdstat.txt", ("cat", "/proc/mdstat"))
LDCONFIG = Command("ldconfig-cuda.txt", ("ldconfig", "-p"))
LDCONFIG_SBIN = Command("ldconfig-sbin.txt", ("/sbin/ldconfig", "-p"))
DPKG_NVIDIA = Command(
    "dpkg-nvidia.txt",
    (
        "dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n",
        "libcudnn*", "cudnn*", "libnccl*", "cuda-toolkit-*", "nvidia-driver-*", "nvidia-fabricmanager*",
    ),
)
PROC_MODULES = Command("proc-modules.txt", ("cat", "/proc/modules"))
MOKUTIL = Command("mokutil-sb-state.txt", ("mokutil", "--sb-state"))
PIP_LIST = Command(
    "pip-list.txt",
    (
        "python3", "-c",
        # pip's own `list` costs ~1 s; importlib.metadata prints the same freeze format in ~0.1 s
        "import importlib.metadata as m\n"
        "seen=set()\n"
        "for d in m.distributions():\n"
        "    n=d.metadata['Name']\n"
        "    if n and n.lower() not in seen:\n"
        "        seen.add(n.lower()); print(f'{n}=={d.version}')\n",
    ),
)
PYTHON_VERSION = Command(
    "python-version.txt", ("python3", "-c", "import sys; print(sys.version.split()[0]); print(sys.executable)")
)
TORCH_VERSIONS = Command(
    "torch-versions.json",
    (
        "python3", "-c",
        # read torch/version.py instead of importing torch (importing costs seconds and a GPU context)
        "import importlib.util, json, re, pathlib\n"
        "spec = importlib.util.find_spec('torch')\n"
        "out = {}\n"
        "if spec and spec.origin:\n"
        "    text = (pathlib.Path(spec.origin).parent / 'version.py').read_text()\n"
        "    for key in ('__version__', 'cuda', 'hip', 'git_version'):\n"
        "        m = re.search(r'^' + key + r\"\\s*(?::\\s*\\S+)?\\s*=\\s*'([^']*)'\", text, re.M)\n"
        "        out[key.strip('_') if key != '__version__' else 'torch'] = m.group(1) if m else None\n"
        "print(json.dumps(out))\n",
    ),
)
WHICH = Command(
    "which.txt",
    ("which", "nvidia-smi", "nvcc", "python3", "conda", "mamba", "micromamba", "dcgmi", "nvidia-fabricmanager"),
)
CONDA_ENVS = Command("conda-envs.json", ("conda", "env", "list", "--json"))
CONDA_VERSION = Command("conda-version.txt", ("conda", "--version"))
SYSTEMCTL_PERSISTENCED = Command("systemctl-persistenced.txt", ("systemctl", "is-active", "nvidia-persistenced"))
# Imports torch (seconds): never run live, but read when a support bundle carries it.
TORCH_COLLECT_ENV = Command("torch-env.txt", ("python3", "-m", "torch.utils.collect_env"), timeout_s=60)

ALL: tuple[Command, ...] = (
    HOSTNAME, OS_RELEASE, UNAME, LSCPU, MEMINFO,
    NVIDIA_SMI_XML, NVIDIA_SMI_TOPO, NVIDIA_SMI_VERSION, NVIDIA_SMI, NVIDIA_SMI_QUERY_GPU, PROC_DRIVER_VERSION,
    NVIDIA_SMI_NVLINK_STATUS, NVIDIA_SMI_NVLINK_ERRORS, KERNEL_LOG_JOURNAL, KERNEL_LOG_DMESG,
    NVCC_VERSION, NVCC_VERSION_DEFAULT_PATH, LDCONFIG, LDCONFIG_SBIN, DPKG_NVIDIA, PROC_MODULES, MOKUTIL,
    LSBLK, DF, PROC_MOUNTS, MDSTAT, PIP_LIST, PYTHON_VERSION, TORCH_VERSIONS, WHICH, CONDA_ENVS, CONDA_VERSION,
    SYSTEMCTL_PERSISTENCED,
)

RECORDED_ONLY: tuple[Command, ...] = (TORCH_COLLECT_ENV,)

# fallback key -> the key of the command it stands in for. The collectors read the fallback only when the
# primary printed nothing usable (Outputs.first), so a host's one script (svdops.host.batch) runs it only
# then. Not the kernel log's dmesg: journalctl's pipe exits 0 whatever journalctl said, and the collector
# judges that answer by its words.
FALLBACKS: dict[str, str] = {
    NVCC_VERSION_DEFAULT_PATH.key: NVCC_VERSION.key,
    LDCONFIG_SBIN.key: LDCONFIG.key,
}


def with_python(command: Command, python: str) -> Command:
    """The same command run with another interpreter (the target env's), e.g. /opt/conda/envs/svd/bin/python."""
    if command.argv and command.argv[0] == "python3":
        return Command(command.key, (python, *command.argv[1:]), command.timeout_s, command.env)
    return command
