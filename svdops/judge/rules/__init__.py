"""The rules of `svdops check`: pure functions of (HostFacts, Profile) -> Findings.

Each rule judges one thing and says, with a stable dotted id, what was expected, what the host has and
the exact command that fixes it. A profile key that is absent is not judged. A fact that could not be
gathered (None) yields a finding carrying the probe's note, never an exception: unknown where the
profile requires the check (it fails the check: a check that could not look is not a pass), skip or
warn where it does not or where the worst outcome is only a warning. `evaluate` turns a bug in one rule
into an unknown finding so the other rules still report, and the unknowns of checks the profile lists
as `optional` into skips. One module per subject; the registry below fixes the order of the report.
"""

from __future__ import annotations

from dataclasses import replace

from svdops.findings import CHECK_IDS, Finding, Status
from svdops.host.facts import HostFacts
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import SKIP, UNKNOWN, Rule
from svdops.judge.rules.cuda import cuda_arch_support, cuda_cudnn, cuda_nccl, cuda_toolkit
from svdops.judge.rules.driver import (
    driver_branch_status,
    driver_flavor,
    driver_nouveau,
    driver_persistence,
    driver_presence,
    driver_reboot,
    driver_secure_boot,
    driver_toolkit_compat,
    driver_torch_compat,
    driver_version,
)
from svdops.judge.rules.gpus import gpu_compute_capability, gpu_count, gpu_ecc, gpu_model, gpu_nvlink, gpu_vram
from svdops.judge.rules.health import (
    health_fabric,
    health_memory,
    health_nvlink,
    health_pcie,
    health_thermal,
    health_xid,
)
from svdops.judge.rules.host_os import os_rules
from svdops.judge.rules.python_env import (
    diffusers_compat,
    python_env,
    python_packages,
    python_version,
    transformers_compat,
)
from svdops.judge.rules.storage import ram_size, storage_data, storage_md_health, storage_scratch
from svdops.judge.rules.svd import profile_svd_stack, svd_pipeline_stack, svd_vram
from svdops.judge.rules.torch_build import torch_arch, torch_build, torch_cuda_variant


def evaluate(facts: HostFacts, profile: Profile) -> list[Finding]:
    """Every finding for this host against this profile, in a stable order. Never raises."""
    findings: list[Finding] = []
    for rule_id, rule in RULES:
        try:
            findings.extend(rule(facts, profile))
        except Exception as exc:  # a bug in one rule must not hide what the others found
            findings.append(Finding(
                rule_id, "rule could not run", UNKNOWN, "the rule runs",
                f"internal error: {type(exc).__name__}: {exc}",
                hint="report this as an svdops bug and attach `svdops facts --json`",
            ))
    return [_as_optional(f, profile) if f.status is Status.UNKNOWN and profile.is_optional(f.id) else f
            for f in findings]


def _as_optional(finding: Finding, profile: Profile) -> Finding:
    """A check the profile marks optional that could not look is skipped, saying why, instead of unknown."""
    return replace(finding, status=SKIP, actual=f"{finding.actual} (optional in profile {profile.name})")


# Order is the order of the report: the platform first, then what sits on it.
RULES: tuple[tuple[str, Rule], ...] = (
    ("os.id", os_rules),
    ("driver.present", driver_presence),
    ("driver.version", driver_version),
    ("driver.branch", driver_branch_status),
    ("driver.flavor", driver_flavor),
    ("driver.reboot-required", driver_reboot),
    ("driver.nouveau", driver_nouveau),
    ("driver.secure-boot", driver_secure_boot),
    ("driver.persistence", driver_persistence),
    ("driver.cuda-toolkit-compat", driver_toolkit_compat),
    ("gpu.count", gpu_count),
    ("gpu.model", gpu_model),
    ("gpu.vram", gpu_vram),
    ("gpu.compute-capability", gpu_compute_capability),
    ("gpu.nvlink", gpu_nvlink),
    ("gpu.ecc", gpu_ecc),
    ("cuda.toolkit", cuda_toolkit),
    ("cuda.arch-support", cuda_arch_support),
    ("cuda.cudnn", cuda_cudnn),
    ("cuda.nccl", cuda_nccl),
    ("python.version", python_version),
    ("python.env", python_env),
    ("python.package", python_packages),
    ("torch.cuda-build", torch_build),
    ("torch.cuda-variant", torch_cuda_variant),
    ("driver.torch-cuda-compat", driver_torch_compat),
    ("torch.arch-list", torch_arch),
    ("python.diffusers-compat", diffusers_compat),
    ("python.transformers-compat", transformers_compat),
    ("svd.pipeline-stack", svd_pipeline_stack),
    ("profile.svd-stack", profile_svd_stack),
    ("svd.vram", svd_vram),
    ("ram.size", ram_size),
    ("storage.scratch", storage_scratch),
    ("storage.data", storage_data),
    ("storage.md-health", storage_md_health),
    ("health.memory", health_memory),
    ("health.pcie", health_pcie),
    ("health.nvlink", health_nvlink),
    ("health.xid", health_xid),
    ("health.thermal", health_thermal),
    ("health.fabric-manager", health_fabric),
)


# the ids live on the ground floor (svdops.findings): profiles validate `optional:` against them
RULE_IDS: tuple[str, ...] = CHECK_IDS
