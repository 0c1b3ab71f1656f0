"""What every rule module shares: statuses, the probe's notes, install commands built from the knowledge base."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from svdops.findings import Finding, Status
from svdops.host.facts import GpuFacts, HostFacts, MigDevice
from svdops.host.probe.driver import loaded_driver_version
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile, VersionSpec, normalise_package
from svdops.versions import Version, parse_version

PASS, WARN, FAIL, SKIP, UNKNOWN = Status.PASS, Status.WARN, Status.FAIL, Status.SKIP, Status.UNKNOWN


REBOOT = "sudo reboot"


# MemTotal excludes what firmware and the kernel keep, typically 2-4% of the installed DIMMs
RAM_READS_LOW = 0.95


Rule = Callable[[HostFacts, Profile], Iterable[Finding]]


def probe_note(facts: HostFacts, *subjects: str) -> str:
    """The probe's reason a subject is missing, trying each subject and then its parents."""
    for subject in subjects:
        parts = subject.split(".")
        for n in range(len(parts), 0, -1):
            reason = facts.note_for(".".join(parts[:n]))
            if reason:
                return reason
    return "not gathered"


def not_available(facts: HostFacts, *subjects: str) -> str:
    return f"not available: {probe_note(facts, *subjects)}"


def gib(mib: int) -> float:
    return mib / 1024


def python_command(facts: HostFacts) -> str:
    return shlex.quote(facts.python.executable or "python3")


def pip_install(facts: HostFacts, *args: str) -> str:
    return f"{python_command(facts)} -m pip install " + " ".join(args)


def gpu_capability(gpu: GpuFacts) -> Version | None:
    """What the driver reported, else what the GPU's name says (old drivers do not report it), else None."""
    if gpu.compute_capability is not None:
        return gpu.compute_capability
    return kb.compute_capability_of(gpu.name) if gpu.name else None


def compute_capabilities(facts: HostFacts) -> tuple[Version, ...]:
    """The known compute capabilities; a GPU whose capability is unknown is left out (see gpu_capability)."""
    return tuple(cc for cc in (gpu_capability(g) for g in facts.gpus) if cc is not None)


def gpus_failing(facts: HostFacts, fails: Callable[[Version], bool]) -> tuple[list[GpuFacts], list[GpuFacts]]:
    """The GPUs whose known compute capability `fails`, and those whose capability is unknown: an arch
    check passes only when the first list is empty and the second one too (unknown is never a pass)."""
    capabilities = [(g, gpu_capability(g)) for g in facts.gpus]
    failing = [g for g, cc in capabilities if cc is not None and fails(cc)]
    return failing, [g for g, cc in capabilities if cc is None]


def gpu_label(gpu: GpuFacts) -> str:
    return f"GPU{gpu.index} ({gpu.name})"


def driver_version_of(facts: HostFacts) -> Version | None:
    """The driver that runs: the loaded kernel module where it is known (an upgrade installed but not yet
    rebooted into leaves the older module running), else the userspace version."""
    return loaded_driver_version(facts.driver.userspace_version, facts.driver.kernel_module_version)


@dataclass(frozen=True)
class UsableDevice:
    """What one CUDA process can be given: a whole GPU, or one MIG slice of a GPU in MIG mode."""

    gpu: GpuFacts
    mig: MigDevice | None = None

    @property
    def memory_mib(self) -> int | None:
        return self.mig.memory_total_mib if self.mig is not None else self.gpu.memory_total_mib

    @property
    def short(self) -> str:
        """`GPU0`, or `GPU0 MIG device 1`."""
        return f"GPU{self.gpu.index}" + (f" MIG device {self.mig.index}" if self.mig is not None else "")

    @property
    def label(self) -> str:
        if self.mig is None:
            return gpu_label(self.gpu)
        return f"{gpu_label(self.gpu)} MIG device {self.mig.index}"


def usable_devices(facts: HostFacts) -> list[UsableDevice]:
    """The devices processes can use: each GPU, or with MIG on each of its MIG devices (a GPU in MIG mode
    without MIG devices gives none)."""
    found: list[UsableDevice] = []
    for gpu in facts.gpus:
        if gpu.mig_enabled:
            found += [UsableDevice(gpu, mig) for mig in gpu.mig_devices]
        else:
            found.append(UsableDevice(gpu))
    return found


def mig_gpus(facts: HostFacts) -> list[GpuFacts]:
    return [g for g in facts.gpus if g.mig_enabled]


def mig_words(facts: HostFacts) -> str:
    """`MIG slices: GPU0 in 4 MIG devices` (empty without MIG): what `actual` says where MIG changed the count."""
    on = mig_gpus(facts)
    if not on:
        return ""
    return "MIG slices: " + ", ".join(
        f"GPU{g.index} in {len(g.mig_devices)} MIG device{'' if len(g.mig_devices) == 1 else 's'}" for g in on)


def gpu_expected(facts: HostFacts, profile: Profile) -> bool:
    """GPU rules run when the profile wants a GPU or the host has one (a max_count of 0 aside)."""
    if profile.gpu.max_count == 0 and not facts.gpus:
        return False
    return profile.requires_gpu or bool(facts.gpus)


def could_not_look(required: bool) -> Status:
    """A check that could not look: unknown (fails the check) where the profile requires it, else a skip."""
    return UNKNOWN if required else SKIP


def skip_no_gpu(rule_id: str, title: str, profile: Profile) -> Finding:
    return Finding(rule_id, title, SKIP, "a GPU host", f"no GPU on this host and profile {profile.name} needs none")


def installed_version(facts: HostFacts, name: str) -> Version | None:
    """A package's installed version, from pip's list, or from the dedicated probes."""
    dedicated = {"torch": facts.python.torch_version, "diffusers": facts.python.diffusers_version,
                 "transformers": facts.python.transformers_version}
    if dedicated.get(name) is not None:
        return dedicated[name]
    for pkg, text in facts.python.packages.items():
        if normalise_package(pkg) == name:
            return parse_version(text)
    return None


def env_probed(facts: HostFacts) -> bool:
    return bool(facts.python.packages) or facts.python.python_version is not None


def driver_install_command(min_driver: Version, facts: HostFacts) -> str:
    package = kb.driver_package(min_driver, tuple(gpu_capability(g) for g in facts.gpus),
                                today=kb.day_of(facts.collected_at), gpu_names=tuple(g.name for g in facts.gpus))
    if package is None:
        return (f"install an NVIDIA driver >= {min_driver} (no supported Ubuntu-packaged branch known to svdops "
                "has it for these GPUs)")
    return f"sudo apt-get install -y {package} && {REBOOT}"


def toolkit_package(cuda: Version) -> str:
    return f"cuda-toolkit-{cuda.major}-{cuda.minor}"


def cuda_suits_gpus(cuda: Version, torch: Version | None, ccs: tuple[Version, ...]) -> bool:
    archs = kb.torch_arch_list(torch, cuda) if torch is not None else None
    if archs is not None:
        return all(kb.arch_runs_on(archs, cc) for cc in ccs)
    support = kb.arch_support(cuda.major)
    return support is None or all(cc >= support.min_cc for cc in ccs)


def choose_cuda_variant(release: kb.TorchRelease, driver: Version | None, ccs: tuple[Version, ...]) -> Version | None:
    """The newest CUDA variant of a torch release that this driver runs and that carries code for every GPU.

    Full driver support is preferred to minor-version compatibility; with no driver known, the newest
    variant that suits the GPUs wins.
    """
    variants = sorted(release.cuda_variants, reverse=True)
    suited = [v for v in variants if cuda_suits_gpus(v, release.version, ccs)]
    if driver is None:
        return suited[0] if suited else None
    for wanted in ("full", "compat"):
        for variant in suited:
            req = kb.find_min_driver_for_cuda(variant)
            if req is not None and req.level(driver) == wanted:
                return variant
    return None


def torch_install_command(facts: HostFacts, release: Version, cuda: Version | None) -> str:
    short = release.truncate(2)
    return pip_install(facts, shlex.quote(f"torch=={short}.*"), "--index-url", kb.torch_index_url(cuda))


def torch_fix_command(facts: HostFacts, release_version: Version) -> str:
    """The command that installs a CUDA build of this torch release that this host's driver and GPUs run,
    or the driver upgrade it takes first."""
    release = kb.find_torch_release(release_version)
    if release is None:
        return pip_install(facts, "torch", "--index-url", kb.torch_index_url(None).rsplit("/", 1)[0] + "/cu130")
    driver, ccs = driver_version_of(facts), compute_capabilities(facts)
    variant = choose_cuda_variant(release, driver, ccs)
    if variant is not None:
        return torch_install_command(facts, release.version, variant)
    fitting = [v for v in sorted(release.cuda_variants, reverse=True) if cuda_suits_gpus(v, release.version, ccs)]
    target = fitting[0] if fitting else max(release.cuda_variants)
    req = kb.find_min_driver_for_cuda(target)
    first = driver_install_command(req.min_driver_ga, facts) + "  then, after the reboot: " if req is not None else ""
    return first + torch_install_command(facts, release.version, target)


def spec_admits(spec: VersionSpec | None, candidates: Iterable[Version], floor: Version) -> bool:
    """Whether a requirement lets in any candidate at or above `floor` (no requirement lets in all)."""
    if spec is None:
        return True
    return any(c >= floor and spec.contains(c) for c in candidates)


def version_sort_key(v: Version | None) -> tuple[int, ...]:
    return v.parts if v is not None else ()


def versus_spec(rule_id: str, title: str, expected: str, spec: VersionSpec, have: Version | None,
                 unknown: str, hint: str) -> Finding:
    """A version against a profile spec: unknown is UNKNOWN (with why: the profile requires it), inside passes,
    outside fails with the fix."""
    if have is None:
        return Finding(rule_id, title, UNKNOWN, expected, unknown, hint=hint)
    if spec.contains(have):
        return Finding(rule_id, title, PASS, expected, str(have))
    return Finding(rule_id, title, FAIL, expected, str(have), hint=hint)


def terabytes(size_bytes: int | None) -> float:
    return (size_bytes or 0) / 1e12
