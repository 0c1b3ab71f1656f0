"""The target Python environment: packages, torch and what its wheel bundles, conda.

torch is never imported (seconds, and a CUDA context): its version file, pip metadata and, in a
support bundle, `torch.utils.collect_env` output are read instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from svdops.host.probe._text import load_json, small_int, version_of
from svdops.versions import Version, cudnn_from_int

_CUDA_LABEL_RE = re.compile(r"^cu(\d{1,3})(\d)$")
_FREEZE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*(\S+)")


def normalise_name(name: str) -> str:
    """PEP 503: 'Jinja2' -> 'jinja2', 'typing_extensions' -> 'typing-extensions'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pip_freeze(text: str) -> dict[str, str]:
    """'name==version' lines by normalised name; editable installs and 'name @ url' lines have no
    version to compare and are left out."""
    packages = {}
    for line in text.splitlines():
        match = _FREEZE_RE.match(line.strip())
        if match:
            packages[normalise_name(match.group(1))] = match.group(2)
    return packages


def cuda_from_wheel_label(label: str) -> Version | None:
    """The CUDA a wheel was built for, from its local label: cu130 -> 13.0, cu128 -> 12.8, cpu -> None."""
    match = _CUDA_LABEL_RE.match(label.strip().lower())
    if not match:
        return None
    return Version.parse(f"{int(match.group(1))}.{match.group(2)}")


def nccl_from_any(value: Any) -> Version | None:
    """NCCL as torch reports it across releases: '2.28.9', (2, 28, 9), or 22809 / 2708 as an int."""
    if isinstance(value, bool):
        return None
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return Version(tuple(value), "", ".".join(map(str, value)))
    if isinstance(value, int) and value > 0:
        # NCCL_VERSION_CODE is M*10000+m*100+p since 2.9, M*1000+m*100+p before
        major, rest = divmod(value, 10000) if value >= 20900 else divmod(value, 1000)
        minor, patch = divmod(rest, 100)
        return Version((major, minor, patch), "", f"{major}.{minor}.{patch}")
    if isinstance(value, str):
        return version_of(value)
    return None


def cudnn_from_any(value: Any) -> Version | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return cudnn_from_int(value)
    if isinstance(value, str):
        number = small_int(value, 9)
        return cudnn_from_int(number) if number else version_of(value)
    return None


@dataclass(frozen=True)
class TorchBuild:
    """What a torch install says about itself; any field may be unknown."""

    version: Version | None = None
    cuda: Version | None = None
    hip: str | None = None
    cudnn: Version | None = None
    nccl: Version | None = None
    arch_list: tuple[str, ...] = ()
    cpu_only: bool = False


def parse_torch_versions_json(text: str) -> TorchBuild | None:
    """Either our own TORCH_VERSIONS command ({torch, cuda, hip, git_version}) or the richer
    fixture form ({torch, cuda, cudnn: 91900, nccl, arch_list, ...}). None when torch is absent."""
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("torch"), str):
        return None
    version = version_of(data["torch"])
    cuda = version_of(data["cuda"]) if isinstance(data.get("cuda"), str) else None
    if cuda is None and version is not None:
        cuda = cuda_from_wheel_label(version.label)
    hip = data.get("hip") if isinstance(data.get("hip"), str) else None
    arch_list = data.get("arch_list")
    return TorchBuild(
        version=version,
        cuda=cuda,
        hip=hip,
        cudnn=cudnn_from_any(data.get("cudnn")),
        nccl=nccl_from_any(data.get("nccl")),
        arch_list=tuple(a for a in arch_list if isinstance(a, str)) if isinstance(arch_list, list) else (),
        cpu_only=cuda is None and hip is None,
    )


@dataclass(frozen=True)
class CollectEnv:
    """The parts of `python -m torch.utils.collect_env` that other sources may lack."""

    torch_version: Version | None = None
    torch_cuda: Version | None = None
    python_version: Version | None = None
    cudnn_paths: tuple[str, ...] = ()
    pip_packages: dict[str, str] = field(default_factory=dict)


def parse_collect_env(text: str) -> CollectEnv | None:
    lines = text.splitlines()
    values: dict[str, str] = {}
    cudnn_paths: list[str] = []
    pip: dict[str, str] = {}
    in_cudnn = False
    for line in lines:
        if line.startswith("[pip3] ") or line.startswith("[pip] "):
            pip.update(parse_pip_freeze(line.split("] ", 1)[1]))
            continue
        if in_cudnn and line.startswith("/"):
            cudnn_paths.append(line.strip())
            continue
        in_cudnn = False
        key, sep, value = line.partition(":")
        if not sep:
            continue
        values.setdefault(key.strip(), value.strip())
        if key.strip() == "cuDNN version":
            in_cudnn = True
            if value.strip().startswith("/"):
                cudnn_paths.append(value.strip())
    if "PyTorch version" not in values and not pip:
        return None
    cuda_text = values.get("CUDA used to build PyTorch", "")
    return CollectEnv(
        torch_version=version_of(values.get("PyTorch version")),
        torch_cuda=None if cuda_text in ("", "None", "N/A") else version_of(cuda_text),
        python_version=version_of(values.get("Python version")),
        cudnn_paths=tuple(cudnn_paths),
        pip_packages=pip,
    )


def parse_python_version(text: str) -> tuple[Version | None, str | None]:
    """Our PYTHON_VERSION command: the version on the first line, sys.executable on the second."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    version = version_of(lines[0]) if lines and re.match(r"^\d+\.\d+", lines[0]) else None
    executable = lines[1] if len(lines) > 1 and lines[1].startswith("/") else None
    return version, executable


def bundled_library(packages: dict[str, str], library: str) -> Version | None:
    """cuDNN / NCCL a CUDA wheel of torch pulls in: nvidia-cudnn-cu13 9.19.0.56 -> 9.19.0."""
    for suffix in ("cu13", "cu12", "cu11"):
        text = packages.get(f"nvidia-{library}-{suffix}")
        if text and (version := version_of(text)) is not None:
            return version.truncate(3)
    return None


def parse_conda_version(text: str) -> Version | None:
    """'conda 24.7.1' (or mamba's two-line 'mamba 1.5.8\\nconda 24.5.0')."""
    match = re.search(r"\b(?:conda|mamba|micromamba)\s+(\d+(?:\.\d+)+)", text)
    if match:
        return version_of(match.group(1))
    stripped = text.strip()
    return version_of(stripped) if re.fullmatch(r"\d+(\.\d+)+", stripped) else None


def parse_conda_envs_json(text: str) -> tuple[str, ...] | None:
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("envs"), list):
        return None
    return tuple(env for env in data["envs"] if isinstance(env, str))


def parse_which(text: str) -> dict[str, str]:
    """`which a b c` prints only what it found, one path a line: map each back by its basename."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        path = line.strip()
        if path.startswith("/") and "/bin/" in path:
            found.setdefault(path.rsplit("/", 1)[-1], path)
    return found
