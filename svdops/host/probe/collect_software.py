"""The CUDA toolkit and libraries, and the target Python environment, from several sources each.

Sources are ranked: what the tool states about itself (nvcc, torch's version file, pip metadata)
comes first; dpkg, ldconfig sonames and collect_env output fill gaps, with a note saying so.
"""

from __future__ import annotations

from typing import TypedDict

from svdops.host.facts import CondaFacts, CudaFacts, PythonEnvFacts
from svdops.host.probe import commands as cmd
from svdops.host.probe._text import version_of
from svdops.host.probe.cuda import (
    DpkgPackage,
    LinkerLibraries,
    cudnn_from_dpkg,
    library_version_from_paths,
    nccl_from_dpkg,
    parse_dpkg_query,
    parse_ldconfig,
    parse_nvcc_version,
    toolkit_from_dpkg,
)
from svdops.host.probe.outputs import Notes, Outputs
from svdops.host.probe.python_env import (
    CollectEnv,
    TorchBuild,
    bundled_library,
    cuda_from_wheel_label,
    parse_collect_env,
    parse_conda_envs_json,
    parse_conda_version,
    parse_pip_freeze,
    parse_python_version,
    parse_torch_versions_json,
    parse_which,
)
from svdops.versions import Version


def collect_dpkg(out: Outputs) -> dict[str, DpkgPackage]:
    text = out.any_text(cmd.DPKG_NVIDIA)
    return parse_dpkg_query(text) if text else {}


def collect_collect_env(out: Outputs) -> CollectEnv | None:
    text = out.any_text(cmd.TORCH_COLLECT_ENV)
    return parse_collect_env(text) if text else None


def collect_cuda(out: Outputs, notes: Notes, dpkg: dict[str, DpkgPackage], env: CollectEnv | None) -> CudaFacts:
    which = parse_which(out.any_text(cmd.WHICH) or "")
    nvcc_text, nvcc_result = out.first(cmd.NVCC_VERSION, cmd.NVCC_VERSION_DEFAULT_PATH)
    toolkit = parse_nvcc_version(nvcc_text) if nvcc_text else None
    toolkit_path = None
    if toolkit is not None:
        nvcc_path = nvcc_result.argv[0] if nvcc_result.argv[0].startswith("/") else which.get("nvcc")
        toolkit_path = nvcc_path.removesuffix("/bin/nvcc") if nvcc_path else None
    else:
        toolkit = toolkit_from_dpkg(dpkg)
        if toolkit is not None:
            notes.add("cuda.toolkit_version", f"nvcc did not answer ({nvcc_result.reason}); version from dpkg")
        else:
            notes.unavailable("cuda.toolkit_version", nvcc_result)

    ld_text, ld_result = out.first(cmd.LDCONFIG, cmd.LDCONFIG_SBIN)
    linker = parse_ldconfig(ld_text) if ld_text else LinkerLibraries()
    if ld_text is None:
        notes.unavailable("cuda.libraries", ld_result)

    env_cudnn = library_version_from_paths(list(env.cudnn_paths), "libcudnn") if env else None
    cudnn = _most_precise(cudnn_from_dpkg(dpkg), env_cudnn, linker.cudnn)
    nccl = _most_precise(nccl_from_dpkg(dpkg), linker.nccl)
    if cudnn is None:
        notes.add("cuda.cudnn_version", "no libcudnn in `ldconfig -p` and no cuDNN package in dpkg")
    if nccl is None:
        notes.add("cuda.nccl_version", "no libnccl in `ldconfig -p` and no NCCL package in dpkg")
    return CudaFacts(toolkit, toolkit_path, cudnn, nccl, linker.sonames)


def _most_precise(*candidates: Version | None) -> Version | None:
    """The candidate with the most version parts; earlier ones win ties (they are ranked)."""
    best: Version | None = None
    for candidate in candidates:
        if candidate is not None and (best is None or len(candidate.parts) > len(best.parts)):
            best = candidate
    return best


def collect_python(out: Outputs, notes: Notes, python: str, env: CollectEnv | None) -> PythonEnvFacts:
    pip_text = out.text(cmd.PIP_LIST)
    packages = parse_pip_freeze(pip_text) if pip_text else {}
    if not packages:
        if env and env.pip_packages:
            packages = dict(env.pip_packages)
            notes.add("python.packages", "package list is partial: from collect_env's torch-related list")
        else:
            notes.unavailable("python.packages", out.result(cmd.PIP_LIST))

    version_text = out.text(cmd.PYTHON_VERSION)
    python_version, executable = parse_python_version(version_text) if version_text else (None, None)
    if python_version is None and env is not None:
        python_version = env.python_version
    if python_version is None:
        notes.unavailable("python.python_version", out.result(cmd.PYTHON_VERSION))
    if executable is None:
        which = parse_which(out.any_text(cmd.WHICH) or "")
        executable = which.get(python) if "/" not in python else python

    torch_text = out.text(cmd.TORCH_VERSIONS)
    build = (parse_torch_versions_json(torch_text) if torch_text else None) or _torch_from_packages(packages, env)
    torch_facts = _torch_fields(build, packages, notes, python)

    return PythonEnvFacts(
        executable=executable,
        python_version=python_version,
        packages=packages,
        diffusers_version=_package_version(packages, "diffusers", notes),
        transformers_version=_package_version(packages, "transformers", notes),
        conda=_collect_conda(out, notes),
        **torch_facts,
    )


def _torch_from_packages(packages: dict[str, str], env: CollectEnv | None) -> TorchBuild | None:
    version = version_of(packages.get("torch")) or (env.torch_version if env else None)
    if version is None:
        return None
    cuda = cuda_from_wheel_label(version.label) or (env.torch_cuda if env else None)
    return TorchBuild(version=version, cuda=cuda, cpu_only=version.label == "cpu")


class _TorchFields(TypedDict, total=False):
    torch_version: Version | None
    torch_cuda: Version | None
    torch_cudnn: Version | None
    torch_nccl: Version | None
    torch_arch_list: tuple[str, ...]


def _torch_fields(build: TorchBuild | None, packages: dict[str, str], notes: Notes, python: str) -> _TorchFields:
    if build is None or build.version is None:
        if packages:
            notes.add("python.torch_version", f"torch is not installed for {python}")
        else:  # no package list: we cannot tell "not installed" from "could not look"
            notes.add("python.torch_version", f"unknown: the packages of {python} could not be listed")
        return {}
    cudnn = build.cudnn or bundled_library(packages, "cudnn")
    nccl = build.nccl or bundled_library(packages, "nccl")
    if build.cuda is None:
        kind = f"a ROCm {build.hip} build" if build.hip else "a CPU-only build" if build.cpu_only else "unknown"
        notes.add("python.torch_cuda", f"torch {build.version} is {kind}")
    elif cudnn is None or nccl is None:
        missing = " and ".join(name for name, value in (("cuDNN", cudnn), ("NCCL", nccl)) if value is None)
        notes.add("python.torch_cudnn" if cudnn is None else "python.torch_nccl",
                  f"torch's bundled {missing} version is not known (no nvidia-* wheel for it)")
    return {
        "torch_version": build.version.truncate(len(build.version.parts)),
        "torch_cuda": build.cuda,
        "torch_cudnn": cudnn,
        "torch_nccl": nccl,
        "torch_arch_list": build.arch_list,
    }


def _package_version(packages: dict[str, str], name: str, notes: Notes) -> Version | None:
    version = version_of(packages.get(name))
    if version is None and packages:
        notes.add(f"python.{name}_version", f"{name} is not installed")
    return version


def _collect_conda(out: Outputs, notes: Notes) -> CondaFacts:
    which = parse_which(out.any_text(cmd.WHICH) or "")
    executable = next((which[name] for name in ("conda", "mamba", "micromamba") if name in which), None)
    version_text = out.text(cmd.CONDA_VERSION)
    envs_text = out.text(cmd.CONDA_ENVS)
    version = parse_conda_version(version_text) if version_text else None
    envs = (parse_conda_envs_json(envs_text) if envs_text else None) or ()
    if version is None and executable is None:
        notes.unavailable("python.conda", out.result(cmd.CONDA_VERSION))
    return CondaFacts(executable=executable, version=version, envs=envs)
