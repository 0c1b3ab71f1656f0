"""The CUDA toolkit and system libraries (cuDNN, NCCL), and the toolkit's GPU architectures."""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding
from svdops.host.facts import HostFacts
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import (
    FAIL,
    PASS,
    UNKNOWN,
    WARN,
    compute_capabilities,
    gpu_capability,
    gpu_label,
    gpus_failing,
    not_available,
    probe_note,
    toolkit_package,
    versus_spec,
)
from svdops.versions import Version


def _linker_read(facts: HostFacts, subject: str) -> bool:
    """Whether `ldconfig -p` was read and the probe looked for `subject` there: its absence is then a fact,
    not a gap (facts built without a probe, with no note at all, stay unknown)."""
    return facts.note_for("cuda.libraries") is None and (bool(facts.cuda.libraries)
                                                          or facts.note_for(subject) is not None)


def _has_library(facts: HostFacts, prefix: str) -> bool:
    return any(lib.startswith(prefix) for lib in facts.cuda.libraries)


def cuda_toolkit(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.cuda.toolkit
    if spec is None:
        return
    title = "CUDA toolkit (nvcc)"
    have = facts.cuda.toolkit_version
    target = spec.pinned or spec.minimum
    hint = f"sudo apt-get install -y {toolkit_package(target)}" if target is not None else ""
    yield versus_spec("cuda.toolkit", title, f"CUDA {spec}", spec, have,
                      not_available(facts, "cuda.toolkit_version"), hint)


def _cudnn_package(cudnn: Version, cuda: Version | None) -> str:
    if cudnn.major >= 9:
        major = cuda.major if cuda is not None else 12
        return f"cudnn9-cuda-{major}"
    return f"libcudnn{cudnn.major} libcudnn{cudnn.major}-dev"


def cuda_cudnn(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.cuda.cudnn
    if spec is None:
        return
    title = "system cuDNN"
    have = facts.cuda.cudnn_version
    unknown = not_available(facts, "cuda.cudnn_version")
    target = spec.pinned or spec.minimum
    hint = f"sudo apt-get install -y {_cudnn_package(target or Version((9,)), facts.cuda.toolkit_version)}"
    if have is None and _linker_read(facts, "cuda.cudnn_version") and not _has_library(facts, "libcudnn"):
        # the linker cache was read and has no libcudnn: it is missing, not unknown
        yield Finding("cuda.cudnn", title, FAIL, f"cuDNN {spec}",
                      f"not installed ({probe_note(facts, 'cuda.cudnn_version')})", hint=hint)
        return
    if have is not None and len(have.parts) < 2:
        # only a soname (libcudnn.so.9): the major says nothing of the release within it
        have, unknown = None, f"libcudnn.so.{have} present, version unknown"
        if spec.is_any:
            yield Finding("cuda.cudnn", title, PASS, f"cuDNN {spec}", unknown)
            return
    bundled = f"; torch bundles cuDNN {facts.python.torch_cudnn}" if facts.python.torch_cudnn else ""
    yield versus_spec("cuda.cudnn", title, f"cuDNN {spec}", spec, have, unknown + bundled, hint)


def cuda_nccl(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.cuda.nccl
    if spec is None:
        return
    title = "system NCCL"
    have = facts.cuda.nccl_version
    present = have is not None or any(lib.startswith("libnccl") for lib in facts.cuda.libraries)
    if have is not None and len(have.parts) < 2:
        have = None  # only a soname (libnccl.so.2): present, but which 2.x is unknown
    hint = "sudo apt-get install -y libnccl2 libnccl-dev"
    expected = "NCCL" if spec.is_any else f"NCCL {spec}"
    if have is not None and not spec.is_any:
        status = PASS if spec.contains(have) else FAIL
        yield Finding("cuda.nccl", title, status, expected, str(have), hint="" if status is PASS else hint)
    elif present:
        status = PASS if spec.is_any else UNKNOWN
        yield Finding("cuda.nccl", title, status, expected, "libnccl present, version unknown",
                      hint="" if status is PASS else hint)
    elif _linker_read(facts, "cuda.nccl_version"):
        # the linker cache was read and has no libnccl: it is missing, not unknown
        yield Finding("cuda.nccl", title, FAIL, expected, f"not installed ({probe_note(facts, 'cuda.nccl_version')})",
                      hint=hint)
    else:
        yield Finding("cuda.nccl", title, UNKNOWN, expected, not_available(facts, "cuda.nccl_version"), hint=hint)


def cuda_arch_support(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    toolkit = facts.cuda.toolkit_version
    if toolkit is None or not facts.gpus:
        return
    support = kb.arch_support(toolkit.major)
    if support is None:
        return
    title = "CUDA toolkit still builds for the GPUs"
    expected = f"compute capability >= {support.min_cc} (CUDA {toolkit.major} dropped {', '.join(support.dropped)})"
    old, unknown = gpus_failing(facts, lambda cc: cc < support.min_cc)
    if not old and unknown:
        # an unknown GPU may be one the toolkit dropped: never a pass
        yield Finding("cuda.arch-support", title, UNKNOWN if profile.requires_gpu else WARN, expected,
                      "compute capability unknown for " + ", ".join(gpu_label(g) for g in unknown)
                      + f" ({probe_note(facts, 'gpus')})")
        return
    if not old:
        yield Finding("cuda.arch-support", title, PASS, expected,
                      ", ".join(f"cc {c}" for c in sorted(set(compute_capabilities(facts)))))
        return
    previous = [v for v in kb.known_cuda_versions() if v.major == toolkit.major - 1]
    hint = f"sudo apt-get install -y {toolkit_package(previous[0])}" if previous else ""
    yield Finding("cuda.arch-support", title, FAIL, expected,
                  ", ".join(f"{gpu_label(g)} cc {gpu_capability(g)}" for g in old) + f" with nvcc {toolkit}",
                  hint=hint)
