"""The installed torch build against the host's driver and GPUs: CUDA build, variant, architectures."""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding
from svdops.host.facts import HostFacts
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import (
    FAIL,
    PASS,
    SKIP,
    UNKNOWN,
    WARN,
    compute_capabilities,
    env_probed,
    gpu_capability,
    gpu_label,
    gpus_failing,
    not_available,
    probe_note,
    torch_fix_command,
    torch_install_command,
)


def torch_build(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    torch_v, torch_cuda = facts.python.torch_version, facts.python.torch_cuda
    if torch_v is None:
        return  # python.package.torch says torch is missing, where the profile wants it
    title = "torch build matches the host"
    if profile.python.torch_cpu:
        if torch_cuda is None:
            yield Finding("torch.cuda-build", title, PASS, "the CPU build", f"torch {torch_v} (CPU)")
        else:
            yield Finding("torch.cuda-build", title, WARN, "the CPU build",
                          f"torch {torch_v} built for CUDA {torch_cuda}: gigabytes of CUDA libraries a CPU runner "
                          "never uses", hint=torch_install_command(facts, torch_v, None))
        return
    if not facts.gpus and not profile.requires_gpu:
        return
    if torch_cuda is None:
        yield Finding("torch.cuda-build", title, FAIL, "a CUDA build of torch on a GPU host",
                      f"torch {torch_v} is the CPU-only build: it cannot use the GPUs",
                      hint=torch_fix_command(facts, torch_v))
    elif kb.torch_is_newer(torch_v):
        # its CUDA variants, Python range and arch lists are unknown: what it was built for cannot be vouched for
        yield Finding("torch.cuda-build", title, WARN, "a CUDA build of torch svdops knows",
                      f"torch {torch_v}, CUDA {torch_cuda}: " + kb.newer_than_knowledge(f"torch {torch_v.truncate(2)}"))
    else:
        yield Finding("torch.cuda-build", title, PASS, "a CUDA build of torch", f"torch {torch_v}, CUDA {torch_cuda}")


def torch_cuda_variant(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.python.torch_cuda
    if spec is None:
        return
    title = "CUDA variant of the torch wheel"
    torch_v, torch_cuda = facts.python.torch_version, facts.python.torch_cuda
    if torch_v is None and env_probed(facts):
        yield Finding("torch.cuda-variant", title, FAIL, f"CUDA {spec}", "torch is not installed",
                      hint=f"install a torch release with a CUDA {spec} wheel "
                           f"(see {kb.torch_index_url(None).rsplit('/', 1)[0]})")
        return
    if torch_v is None:
        yield Finding("torch.cuda-variant", title, UNKNOWN, f"CUDA {spec}",
                      not_available(facts, "python.torch_version"))
        return
    if torch_cuda is not None and spec.contains(torch_cuda):
        yield Finding("torch.cuda-variant", title, PASS, f"CUDA {spec}", f"CUDA {torch_cuda}")
        return
    release = kb.find_torch_release(torch_v)
    fitting = [v for v in (release.cuda_variants if release else ()) if spec.contains(v)]
    if fitting and release is not None:
        hint = torch_install_command(facts, release.version, max(fitting))
    else:
        hint = f"install a torch release with a CUDA {spec} wheel (see {kb.torch_index_url(None).rsplit('/', 1)[0]})"
    yield Finding("torch.cuda-variant", title, FAIL, f"CUDA {spec}",
                  f"CUDA {torch_cuda}" if torch_cuda else "the CPU-only build", hint=hint)


def torch_arch(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    torch_v, torch_cuda = facts.python.torch_version, facts.python.torch_cuda
    if torch_v is None or torch_cuda is None or not facts.gpus:
        return
    title = "torch carries code for the GPUs"
    archs, assumed = facts.python.torch_arch_list, ""
    expected = "every GPU's compute capability in torch's arch list"
    if not archs:
        # only this release's own row stands in: another release's list may lack (or add) an arch
        archs = kb.torch_arch_list(torch_v, torch_cuda) or ()
        assumed = f" (arch list not gathered; from svdops' knowledge of torch {torch_v.truncate(2)})" if archs else ""
    if not archs:
        build = f"torch {torch_v}+{kb.cuda_tag(torch_cuda)}"
        if kb.torch_is_newer(torch_v):
            yield Finding("torch.arch-list", title, WARN, expected,
                          f"arch list of {build} not gathered; "
                          + kb.newer_than_knowledge(f"torch {torch_v.truncate(2)}"))
        else:
            yield Finding("torch.arch-list", title, UNKNOWN if profile.requires_gpu else SKIP, expected,
                          f"arch list of {build} not gathered and not in the knowledge "
                          f"base ({probe_note(facts, 'python.torch_arch_list')})")
        return
    missing, unknown = gpus_failing(facts, lambda cc: not kb.arch_runs_on(archs, cc))
    if not missing and unknown:
        yield Finding("torch.arch-list", title, UNKNOWN if profile.requires_gpu else WARN, expected,
                      "compute capability unknown for " + ", ".join(gpu_label(g) for g in unknown)
                      + f": cannot tell whether {' '.join(archs)} runs on it")
        return
    if not missing:
        ccs = ", ".join(sorted({f"sm_{c.major}{c.minor}" for c in compute_capabilities(facts)})) or "unknown"
        yield Finding("torch.arch-list", title, PASS, expected, f"{ccs} in {' '.join(archs)}{assumed}")
        return
    gone = ", ".join(f"{gpu_label(g)} cc {gpu_capability(g)}" for g in missing)
    yield Finding("torch.arch-list", title, FAIL, expected,
                  f"{gone} not in torch {torch_v}+{kb.cuda_tag(torch_cuda)} ({' '.join(archs)}): "
                  f"'no kernel image is available for execution on the device'{assumed}",
                  hint=torch_fix_command(facts, torch_v))
