"""The rules of `svdops check`: pure functions of (HostFacts, Profile) -> Findings.

Each rule judges one thing and says, with a stable dotted id, what was expected, what the host has and
the exact command that fixes it. A profile key that is absent is not judged. A fact that could not be
gathered (None) yields skip or warn carrying the probe's note, never an exception; `evaluate` also
turns a bug in one rule into a warn finding so the other rules still report.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Iterator

from svdops import knowledge as kb
from svdops.facts import GpuFacts, HostFacts, MdArray
from svdops.findings import Finding, Status
from svdops.profiles import Profile, VersionSpec, normalise_package
from svdops.versions import Version, parse_version

PASS, WARN, FAIL, SKIP = Status.PASS, Status.WARN, Status.FAIL, Status.SKIP
REBOOT = "sudo reboot"
# MemTotal excludes what firmware and the kernel keep, typically 2-4% of the installed DIMMs
RAM_READS_LOW = 0.95

Rule = Callable[[HostFacts, Profile], Iterable[Finding]]


def evaluate(facts: HostFacts, profile: Profile) -> list[Finding]:
    """Every finding for this host against this profile, in a stable order. Never raises."""
    findings: list[Finding] = []
    for rule_id, rule in RULES:
        try:
            findings.extend(rule(facts, profile))
        except Exception as exc:  # a bug in one rule must not hide what the others found
            findings.append(Finding(
                rule_id, "rule could not run", WARN, "the rule runs", f"internal error: {type(exc).__name__}: {exc}",
                hint="report this as an svdops bug and attach `svdops facts --json`",
            ))
    return findings


# --- helpers ------------------------------------------------------------------------------------------

def _note(facts: HostFacts, *subjects: str) -> str:
    """The probe's reason a subject is missing, trying each subject and then its parents."""
    for subject in subjects:
        parts = subject.split(".")
        for n in range(len(parts), 0, -1):
            reason = facts.note_for(".".join(parts[:n]))
            if reason:
                return reason
    return "not gathered"


def _na(facts: HostFacts, *subjects: str) -> str:
    return f"not available: {_note(facts, *subjects)}"


def _gib(mib: int) -> float:
    return mib / 1024


def _py(facts: HostFacts) -> str:
    return shlex.quote(facts.python.executable or "python3")


def _pip(facts: HostFacts, *args: str) -> str:
    return f"{_py(facts)} -m pip install " + " ".join(args)


def _ccs(facts: HostFacts) -> tuple[Version, ...]:
    return tuple(g.compute_capability for g in facts.gpus if g.compute_capability is not None)


def _gpu_label(gpu: GpuFacts) -> str:
    return f"GPU{gpu.index} ({gpu.name})"


def _driver(facts: HostFacts) -> Version | None:
    return facts.driver.userspace_version or facts.driver.kernel_module_version


def _gpu_expected(facts: HostFacts, profile: Profile) -> bool:
    """GPU rules run when the profile wants a GPU or the host has one (a max_count of 0 aside)."""
    if profile.gpu.max_count == 0 and not facts.gpus:
        return False
    return profile.requires_gpu or bool(facts.gpus)


def _skip_no_gpu(rule_id: str, title: str, profile: Profile) -> Finding:
    return Finding(rule_id, title, SKIP, "a GPU host", f"no GPU on this host and profile {profile.name} needs none")


def _installed(facts: HostFacts, name: str) -> Version | None:
    """A package's installed version, from pip's list, or from the dedicated probes."""
    dedicated = {"torch": facts.python.torch_version, "diffusers": facts.python.diffusers_version,
                 "transformers": facts.python.transformers_version}
    if dedicated.get(name) is not None:
        return dedicated[name]
    for pkg, text in facts.python.packages.items():
        if normalise_package(pkg) == name:
            return parse_version(text)
    return None


def _env_probed(facts: HostFacts) -> bool:
    return bool(facts.python.packages) or facts.python.python_version is not None


def _driver_install(min_driver: Version, facts: HostFacts) -> str:
    package = kb.driver_package(min_driver, _ccs(facts))
    if package is None:
        return f"install an NVIDIA driver >= {min_driver} (no Ubuntu-packaged branch known to svdops has it)"
    return f"sudo apt-get install -y {package} && {REBOOT}"


def _toolkit_package(cuda: Version) -> str:
    return f"cuda-toolkit-{cuda.major}-{cuda.minor}"


def _cuda_ok_for_gpus(cuda: Version, torch: Version | None, ccs: tuple[Version, ...]) -> bool:
    nearest = kb.nearest_torch_arch_list(torch, cuda) if torch is not None else None
    if nearest is not None:
        return all(kb.arch_runs_on(nearest[1], cc) for cc in ccs)
    support = kb.arch_support(cuda.major)
    return support is None or all(cc >= support.min_cc for cc in ccs)


def _choose_variant(release: kb.TorchRelease, driver: Version | None, ccs: tuple[Version, ...]) -> Version | None:
    """The newest CUDA variant of a torch release that this driver runs and that carries code for every GPU.

    Full driver support is preferred to minor-version compatibility; with no driver known, the newest
    variant that suits the GPUs wins.
    """
    variants = sorted(release.cuda_variants, reverse=True)
    suited = [v for v in variants if _cuda_ok_for_gpus(v, release.version, ccs)]
    if driver is None:
        return suited[0] if suited else None
    for wanted in ("full", "compat"):
        for variant in suited:
            req = kb.find_min_driver_for_cuda(variant)
            if req is not None and req.level(driver) == wanted:
                return variant
    return None


def _torch_install(facts: HostFacts, release: Version, cuda: Version | None) -> str:
    short = release.truncate(2)
    return _pip(facts, shlex.quote(f"torch=={short}.*"), "--index-url", kb.torch_index_url(cuda))


def _torch_fix(facts: HostFacts, release_version: Version) -> str:
    """The command that installs a CUDA build of this torch release that this host's driver and GPUs run,
    or the driver upgrade it takes first."""
    release = kb.find_torch_release(release_version)
    if release is None:
        return _pip(facts, "torch", "--index-url", kb.torch_index_url(None).rsplit("/", 1)[0] + "/cu130")
    driver, ccs = _driver(facts), _ccs(facts)
    variant = _choose_variant(release, driver, ccs)
    if variant is not None:
        return _torch_install(facts, release.version, variant)
    fitting = [v for v in sorted(release.cuda_variants, reverse=True) if _cuda_ok_for_gpus(v, release.version, ccs)]
    target = fitting[0] if fitting else max(release.cuda_variants)
    req = kb.find_min_driver_for_cuda(target)
    first = _driver_install(req.min_driver_ga, facts) + "  then, after the reboot: " if req is not None else ""
    return first + _torch_install(facts, release.version, target)


def _admits(spec: VersionSpec | None, candidates: Iterable[Version], floor: Version) -> bool:
    """Whether a requirement lets in any candidate at or above `floor` (no requirement lets in all)."""
    if spec is None:
        return True
    return any(c >= floor and spec.contains(c) for c in candidates)


# --- OS -------------------------------------------------------------------------------------------------

def os_rules(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.os
    if want.id:
        title = "operating system"
        if facts.os.id is None:
            yield Finding("os.id", title, WARN, want.id, _na(facts, "os.id"))
        elif facts.os.id.lower() == want.id.lower():
            yield Finding("os.id", title, PASS, want.id, facts.os.pretty_name or facts.os.id)
        else:
            yield Finding("os.id", title, FAIL, want.id, facts.os.pretty_name or facts.os.id,
                          hint=f"reinstall the host with {want.id.capitalize()}: svdops probes and provisions only it")
    if want.releases:
        title = "OS release"
        expected = " or ".join(want.releases)
        have = facts.os.version_id
        if have is None:
            yield Finding("os.release", title, WARN, expected, _na(facts, "os.version_id"))
        elif have in want.releases:
            yield Finding("os.release", title, PASS, expected, have)
        else:
            have_v, newest = parse_version(have), max((parse_version(r) for r in want.releases), key=_vkey)
            if have_v is not None and newest is not None and have_v < newest:
                hint = f"sudo do-release-upgrade  (repeat until VERSION_ID in /etc/os-release is {expected})"
            else:
                hint = f"reinstall the host with Ubuntu {expected}: a release cannot be downgraded in place"
            yield Finding("os.release", title, FAIL, expected, have, hint=hint)


def _vkey(v: Version | None) -> tuple[int, ...]:
    return v.parts if v is not None else ()


# --- driver ---------------------------------------------------------------------------------------------

def driver_presence(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "NVIDIA driver installed"
    if not _gpu_expected(facts, profile):
        yield _skip_no_gpu("driver.present", title, profile)
        return
    driver = _driver(facts)
    if driver is not None:
        yield Finding("driver.present", title, PASS, "an NVIDIA driver", f"{driver}")
        return
    if facts.driver.library_mismatch:
        yield Finding("driver.present", title, FAIL, "an NVIDIA driver whose module and libraries match",
                      "nvidia-smi: Driver/library version mismatch", hint=REBOOT)
        return
    # without the driver there is no nvidia-smi to name the GPUs: install the newest packaged branch
    newest = kb.known_cuda_versions()[0]
    req = kb.min_driver_for_cuda(newest)
    yield Finding("driver.present", title, FAIL, "an NVIDIA driver", f"none found ({_note(facts, 'driver', 'gpus')})",
                  hint=_driver_install(req.min_driver_ga, facts))


def driver_version(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.driver.version
    if spec is None:
        return
    title = "driver version"
    driver = _driver(facts)
    if driver is None:
        yield Finding("driver.version", title, WARN, str(spec), _na(facts, "driver.userspace_version"))
    elif spec.contains(driver):
        yield Finding("driver.version", title, PASS, str(spec), str(driver))
    else:
        minimum = spec.minimum or driver
        yield Finding("driver.version", title, FAIL, str(spec), str(driver), hint=_driver_install(minimum, facts))


def driver_flavor(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "kernel module flavour"
    ccs = _ccs(facts)
    required_open = any(cc >= kb.open_module_required_cc() for cc in ccs)
    want = "open" if required_open else profile.driver.flavor
    if want is None or not facts.gpus:
        return
    have = facts.driver.kernel_module_flavor
    why = " (Blackwell GPUs run only on the open modules)" if required_open else ""
    if have is None:
        yield Finding("driver.flavor", title, WARN, want + why, _na(facts, "driver.kernel_module_flavor"))
    elif have == want:
        yield Finding("driver.flavor", title, PASS, want, have)
    else:
        driver = _driver(facts)
        branch = driver.major if driver is not None else 580
        package = f"nvidia-driver-{branch}-open" if want == "open" else f"nvidia-driver-{branch}"
        yield Finding("driver.flavor", title, FAIL if required_open or profile.driver.flavor else WARN,
                      want + why, have, hint=f"sudo apt-get install -y {package} && {REBOOT}")


def driver_reboot(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "loaded driver matches installed driver"
    d = facts.driver
    if not _gpu_expected(facts, profile):
        yield _skip_no_gpu("driver.reboot-required", title, profile)
        return
    if d.library_mismatch:
        yield Finding("driver.reboot-required", title, FAIL, "kernel module = userspace libraries",
                      "nvidia-smi: Driver/library version mismatch (a driver update is installed but not loaded)",
                      hint=REBOOT)
    elif d.needs_reboot:
        yield Finding("driver.reboot-required", title, FAIL, "kernel module = userspace libraries",
                      f"kernel module {d.kernel_module_version}, userspace {d.userspace_version}", hint=REBOOT)
    elif d.userspace_version is None or d.kernel_module_version is None:
        yield Finding("driver.reboot-required", title, SKIP, "kernel module = userspace libraries",
                      _na(facts, "driver.kernel_module_version", "driver.userspace_version"))
    else:
        yield Finding("driver.reboot-required", title, PASS, "kernel module = userspace libraries",
                      f"both {d.userspace_version}")


def driver_nouveau(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "nouveau not loaded"
    if not _gpu_expected(facts, profile):
        yield _skip_no_gpu("driver.nouveau", title, profile)
        return
    loaded = facts.driver.nouveau_loaded
    if loaded is None:
        yield Finding("driver.nouveau", title, SKIP, "nouveau not loaded", _na(facts, "driver.nouveau_loaded"))
    elif loaded:
        yield Finding("driver.nouveau", title, FAIL, "nouveau not loaded", "nouveau is loaded (it holds the GPUs)",
                      hint="printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee "
                           "/etc/modprobe.d/blacklist-nouveau.conf && sudo update-initramfs -u && " + REBOOT)
    else:
        yield Finding("driver.nouveau", title, PASS, "nouveau not loaded", "not loaded")


def driver_secure_boot(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "Secure Boot and signed driver modules"
    if not _gpu_expected(facts, profile):
        yield _skip_no_gpu("driver.secure-boot", title, profile)
        return
    d = facts.driver
    expected = "Secure Boot off, or the DKMS-built nvidia modules signed with an enrolled key"
    enroll = "sudo mokutil --import /var/lib/shim-signed/mok/MOK.der && " + REBOOT + \
             "  (then choose 'Enroll MOK' at the blue MOK manager screen), or turn Secure Boot off in the firmware"
    if d.secure_boot_enabled is None:
        yield Finding("driver.secure-boot", title, SKIP, expected, _na(facts, "driver.secure_boot_enabled"))
    elif not d.secure_boot_enabled:
        yield Finding("driver.secure-boot", title, PASS, expected, "Secure Boot off")
    elif d.dkms_modules_signed is True:
        yield Finding("driver.secure-boot", title, PASS, expected, "Secure Boot on, modules signed")
    elif d.dkms_modules_signed is None and d.kernel_module_version is not None:
        # the module loads, so its signature was accepted; whether the next DKMS rebuild is signed is unknown
        yield Finding("driver.secure-boot", title, WARN, expected,
                      f"Secure Boot on; module {d.kernel_module_version} loads, signing not confirmed "
                      f"({_note(facts, 'driver.dkms_modules_signed')})", hint=enroll)
    else:
        state = "unsigned" if d.dkms_modules_signed is False else "signing unknown and the module is not loaded"
        yield Finding("driver.secure-boot", title, FAIL, expected,
                      f"Secure Boot on, DKMS modules {state}: the kernel refuses to load them", hint=enroll)


def driver_persistence(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    if not profile.driver.persistence_mode or not facts.gpus:
        return
    title = "persistence mode"
    fix = "sudo systemctl enable --now nvidia-persistenced && sudo nvidia-smi -pm 1"
    states = [g.persistence_mode for g in facts.gpus]
    off = [f"GPU{g.index}" for g in facts.gpus if g.persistence_mode is False]
    if off:
        yield Finding("driver.persistence", title, WARN, "on for every GPU",
                      f"off on {', '.join(off)}: each CUDA start re-initialises the GPU", hint=fix)
    elif all(s is True for s in states) or facts.driver.persistenced_running:
        yield Finding("driver.persistence", title, PASS, "on for every GPU", "on")
    elif facts.driver.persistenced_running is False:
        yield Finding("driver.persistence", title, WARN, "on for every GPU", "nvidia-persistenced not running",
                      hint=fix)
    else:
        yield Finding("driver.persistence", title, SKIP, "on for every GPU", _na(facts, "gpus", "driver"))


def driver_toolkit_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "driver supports the CUDA toolkit (nvcc)"
    toolkit = facts.cuda.toolkit_version
    if toolkit is None or not _gpu_expected(facts, profile):
        return  # no nvcc: nothing is compiled here, so nothing to judge (cuda.toolkit judges a required one)
    req = kb.find_min_driver_for_cuda(toolkit)
    driver = _driver(facts)
    if req is None:
        yield Finding("driver.cuda-toolkit-compat", title, SKIP, f"a driver for CUDA {toolkit}",
                      f"CUDA {toolkit} is not in svdops' knowledge base ({kb.version()})")
        return
    expected = f"driver >= {req.min_driver_ga} for CUDA {req.cuda}"
    if driver is None:
        yield Finding("driver.cuda-toolkit-compat", title, WARN, expected, _na(facts, "driver.userspace_version"))
        return
    level = req.level(driver)
    if level == "full":
        yield Finding("driver.cuda-toolkit-compat", title, PASS, expected, f"driver {driver}, nvcc {toolkit}")
    elif level == "compat":
        yield Finding("driver.cuda-toolkit-compat", title, WARN, expected,
                      f"driver {driver}: CUDA {toolkit} programs run only under minor-version compatibility "
                      f"(PTX they carry cannot be JIT-compiled)", hint=_driver_install(req.min_driver_ga, facts))
    else:
        yield Finding("driver.cuda-toolkit-compat", title, FAIL, expected,
                      f"driver {driver} is older than CUDA {req.cuda.major}.x allows (>= {req.min_driver_compat})",
                      hint=_driver_install(req.min_driver_ga, facts))


def driver_torch_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "driver supports torch's CUDA"
    torch_cuda = facts.python.torch_cuda
    if torch_cuda is None or not _gpu_expected(facts, profile):
        return  # no CUDA build of torch: torch.cuda-build says whether one is needed
    req = kb.find_min_driver_for_cuda(torch_cuda)
    if req is None:
        yield Finding("driver.torch-cuda-compat", title, SKIP, f"a driver for CUDA {torch_cuda}",
                      f"CUDA {torch_cuda} is not in svdops' knowledge base ({kb.version()})")
        return
    expected = f"driver >= {req.min_driver_ga} (or >= {req.min_driver_compat} under minor-version compatibility)"
    driver = _driver(facts)
    if driver is None:
        yield Finding("driver.torch-cuda-compat", title, WARN, expected, _na(facts, "driver.userspace_version"))
        return
    level = req.level(driver)
    torch_v = facts.python.torch_version
    actual = f"driver {driver}, torch {torch_v or '?'} built for CUDA {torch_cuda}"
    if level == "full":
        yield Finding("driver.torch-cuda-compat", title, PASS, expected, actual)
    elif level == "compat":
        yield Finding("driver.torch-cuda-compat", title, WARN, expected,
                      actual + ": runs under minor-version compatibility; torch.compile/Triton PTX may fail to load",
                      hint=_driver_install(req.min_driver_ga, facts))
    else:
        options = [_driver_install(req.min_driver_ga, facts)]
        if torch_v is not None:
            release = kb.find_torch_release(torch_v)
            variant = _choose_variant(release, driver, _ccs(facts)) if release else None
            if release is not None and variant is not None:
                options.append(_torch_install(facts, release.version, variant))
        yield Finding("driver.torch-cuda-compat", title, FAIL, expected,
                      actual + ": CUDA fails to initialise (driver too old)", hint="  or  ".join(options))


# --- torch and the GPU ------------------------------------------------------------------------------------

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
                          "never uses", hint=_torch_install(facts, torch_v, None))
        return
    if not facts.gpus and not profile.requires_gpu:
        return
    if torch_cuda is None:
        yield Finding("torch.cuda-build", title, FAIL, "a CUDA build of torch on a GPU host",
                      f"torch {torch_v} is the CPU-only build: it cannot use the GPUs",
                      hint=_torch_fix(facts, torch_v))
    else:
        yield Finding("torch.cuda-build", title, PASS, "a CUDA build of torch", f"torch {torch_v}, CUDA {torch_cuda}")


def torch_cuda_variant(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.python.torch_cuda
    if spec is None:
        return
    title = "CUDA variant of the torch wheel"
    torch_v, torch_cuda = facts.python.torch_version, facts.python.torch_cuda
    if torch_v is None:
        yield Finding("torch.cuda-variant", title, WARN, f"CUDA {spec}", _na(facts, "python.torch_version"))
        return
    if torch_cuda is not None and spec.contains(torch_cuda):
        yield Finding("torch.cuda-variant", title, PASS, f"CUDA {spec}", f"CUDA {torch_cuda}")
        return
    release = kb.find_torch_release(torch_v)
    fitting = [v for v in (release.cuda_variants if release else ()) if spec.contains(v)]
    if fitting and release is not None:
        hint = _torch_install(facts, release.version, max(fitting))
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
    if not archs:
        nearest = kb.nearest_torch_arch_list(torch_v, torch_cuda)
        if nearest is not None:
            archs = nearest[1]
            if nearest[0] != torch_v.truncate(2):
                assumed = f" (arch list not gathered; assumed from torch {nearest[0]}+{kb.cuda_tag(torch_cuda)})"
    if not archs:
        yield Finding("torch.arch-list", title, SKIP, "every GPU's compute capability in torch's arch list",
                      f"arch list of torch {torch_v}+{kb.cuda_tag(torch_cuda)} not gathered and not in the knowledge "
                      f"base ({_note(facts, 'python.torch_arch_list')})")
        return
    missing = [g for g in facts.gpus if g.compute_capability is not None
               and not kb.arch_runs_on(archs, g.compute_capability)]
    expected = "every GPU's compute capability in torch's arch list"
    if not missing:
        ccs = ", ".join(sorted({f"sm_{c.major}{c.minor}" for c in _ccs(facts)})) or "unknown"
        yield Finding("torch.arch-list", title, PASS, expected, f"{ccs} in {' '.join(archs)}{assumed}")
        return
    gone = ", ".join(f"{_gpu_label(g)} cc {g.compute_capability}" for g in missing)
    yield Finding("torch.arch-list", title, FAIL, expected,
                  f"{gone} not in torch {torch_v}+{kb.cuda_tag(torch_cuda)} ({' '.join(archs)}): "
                  f"'no kernel image is available for execution on the device'{assumed}",
                  hint=_torch_fix(facts, torch_v))


# --- CUDA toolkit and system libraries -------------------------------------------------------------------

def _versus_spec(rule_id: str, title: str, expected: str, spec: VersionSpec, have: Version | None,
                 unknown: str, hint: str) -> Finding:
    """A version against a profile spec: unknown warns (with why), inside passes, outside fails with the fix."""
    if have is None:
        return Finding(rule_id, title, WARN, expected, unknown, hint=hint)
    if spec.contains(have):
        return Finding(rule_id, title, PASS, expected, str(have))
    return Finding(rule_id, title, FAIL, expected, str(have), hint=hint)


def cuda_toolkit(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.cuda.toolkit
    if spec is None:
        return
    title = "CUDA toolkit (nvcc)"
    have = facts.cuda.toolkit_version
    target = spec.pinned or spec.minimum
    hint = f"sudo apt-get install -y {_toolkit_package(target)}" if target is not None else ""
    yield _versus_spec("cuda.toolkit", title, f"CUDA {spec}", spec, have, _na(facts, "cuda.toolkit_version"), hint)


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
    target = spec.pinned or spec.minimum
    hint = f"sudo apt-get install -y {_cudnn_package(target, facts.cuda.toolkit_version)}" if target else ""
    bundled = f"; torch bundles cuDNN {facts.python.torch_cudnn}" if facts.python.torch_cudnn else ""
    yield _versus_spec("cuda.cudnn", title, f"cuDNN {spec}", spec, have, _na(facts, "cuda.cudnn_version") + bundled,
                       hint)


def cuda_nccl(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.cuda.nccl
    if spec is None:
        return
    title = "system NCCL"
    have = facts.cuda.nccl_version
    present = have is not None or any(lib.startswith("libnccl") for lib in facts.cuda.libraries)
    hint = "sudo apt-get install -y libnccl2 libnccl-dev"
    expected = "NCCL" if spec.is_any else f"NCCL {spec}"
    if have is not None and not spec.is_any:
        status = PASS if spec.contains(have) else FAIL
        yield Finding("cuda.nccl", title, status, expected, str(have), hint="" if status is PASS else hint)
    elif present:
        status = PASS if spec.is_any else WARN
        yield Finding("cuda.nccl", title, status, expected, "libnccl present, version unknown",
                      hint="" if status is PASS else hint)
    else:
        yield Finding("cuda.nccl", title, WARN, expected, _na(facts, "cuda.nccl_version"), hint=hint)


def cuda_arch_support(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    toolkit = facts.cuda.toolkit_version
    if toolkit is None or not facts.gpus:
        return
    support = kb.arch_support(toolkit.major)
    if support is None:
        return
    title = "CUDA toolkit still builds for the GPUs"
    expected = f"compute capability >= {support.min_cc} (CUDA {toolkit.major} dropped {', '.join(support.dropped)})"
    old = [g for g in facts.gpus if g.compute_capability is not None and g.compute_capability < support.min_cc]
    if not old:
        yield Finding("cuda.arch-support", title, PASS, expected,
                      ", ".join(f"cc {c}" for c in sorted(set(_ccs(facts)))) or "no compute capability reported")
        return
    previous = [v for v in kb.known_cuda_versions() if v.major == toolkit.major - 1]
    hint = f"sudo apt-get install -y {_toolkit_package(previous[0])}" if previous else ""
    yield Finding("cuda.arch-support", title, FAIL, expected,
                  ", ".join(f"{_gpu_label(g)} cc {g.compute_capability}" for g in old) + f" with nvcc {toolkit}",
                  hint=hint)


# --- Python environment -------------------------------------------------------------------------------------

def python_version(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.python.version
    if spec is None:
        return
    title = "Python version"
    have = facts.python.python_version
    target = spec.pinned or spec.minimum
    hint = _new_env_command(facts, profile, target) if target is not None else ""
    yield _versus_spec("python.version", title, f"Python {spec}", spec, have, _na(facts, "python.python_version"),
                       hint)


def _new_env_command(facts: HostFacts, profile: Profile, python: Version) -> str:
    short = python.truncate(2)
    if profile.python.env == "conda" or facts.python.conda.executable:
        conda = facts.python.conda.executable or "conda"
        return f"{shlex.quote(conda)} create -y -n svd python={short} && conda activate svd"
    return f"python{short} -m venv ~/svd-env && . ~/svd-env/bin/activate"


def _in_conda_env(facts: HostFacts) -> bool:
    exe = facts.python.executable or ""
    prefixes = facts.python.conda.envs
    return any(exe.startswith(p.rstrip("/") + "/") for p in prefixes) or "/envs/" in exe or "conda" in exe


def python_env(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.python.env
    if want is None or want == "any":
        return
    title = "Python environment kind"
    exe = facts.python.executable
    if exe is None:
        yield Finding("python.env", title, WARN, f"a {want} environment", _na(facts, "python.executable"))
        return
    spec = profile.python.version
    target = (spec.pinned or spec.minimum if spec else None) or kb.svd_pipeline().reference_python
    if want == "conda":
        ok = _in_conda_env(facts)
        if not ok and not facts.python.conda.executable:
            hint = ("curl -fsSLo /tmp/miniforge.sh https://github.com/conda-forge/miniforge/releases/latest/download/"
                    "Miniforge3-Linux-x86_64.sh && bash /tmp/miniforge.sh -b -p $HOME/miniforge3 && "
                    f"$HOME/miniforge3/bin/conda create -y -n svd python={target.truncate(2)}")
        else:
            hint = _new_env_command(facts, profile, target)
    else:
        ok = not exe.startswith(("/usr/bin/", "/bin/")) and not _in_conda_env(facts)
        hint = f"python{target.truncate(2)} -m venv ~/svd-env && . ~/svd-env/bin/activate"
    if ok:
        yield Finding("python.env", title, PASS, f"a {want} environment", exe)
    else:
        yield Finding("python.env", title, FAIL, f"a {want} environment", exe, hint=hint)


def python_packages(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    for name, spec in profile.python.packages:
        title = f"Python package {name}"
        expected = f"{name} {spec}"
        have = _installed(facts, name)
        if name == "torch":
            target = spec.minimum or kb.svd_pipeline().reference_torch
            hint = (_torch_install(facts, target, None) if profile.python.torch_cpu else _torch_fix(facts, target))
        else:
            hint = _pip(facts, shlex.quote(f"{name}{spec.text}" if not spec.is_any else name))
        if have is None and not _env_probed(facts):
            yield Finding("python.package", title, WARN, expected, _na(facts, "python.packages"), hint=hint,
                          subject=name)
        elif have is None:
            yield Finding("python.package", title, FAIL, expected, "not installed", hint=hint, subject=name)
        elif spec.contains(have):
            yield Finding("python.package", title, PASS, expected, str(have), subject=name)
        else:
            yield Finding("python.package", title, FAIL, expected, str(have), hint=hint, subject=name)


def _library_compat(facts: HostFacts, profile: Profile, name: str) -> Iterator[Finding]:
    rule_id = f"python.{name}-compat"
    have = _installed(facts, name)
    if have is None:
        return
    title = f"{name} {have} has the Python and torch it needs"
    req = kb.find_library_requirements(name, have)
    if req is None:
        yield Finding(rule_id, title, SKIP, f"what {name} {have} needs",
                      f"{name} {have} is older than svdops' knowledge base covers ({kb.version()})")
        return
    expected = f"Python >= {req.min_python}" + (f", torch >= {req.min_torch}" if req.min_torch else "")
    py, torch_v = facts.python.python_version, _installed(facts, "torch")
    problems = []
    if py is not None and py < req.min_python:
        problems.append(f"Python {py}")
    if req.min_torch is not None and torch_v is not None and torch_v < req.min_torch:
        problems.append(f"torch {torch_v}")
    if problems:
        hint = (_torch_fix(facts, kb.svd_pipeline().reference_torch)
                if not (py is not None and py < req.min_python)
                else _new_env_command(facts, profile, kb.svd_pipeline().reference_python))
        yield Finding(rule_id, title, FAIL, expected, f"{' and '.join(problems)}: {name} {have} cannot import",
                      hint=hint)
    elif py is None:
        yield Finding(rule_id, title, WARN, expected, _na(facts, "python.python_version"))
    else:
        yield Finding(rule_id, title, PASS, expected, f"Python {py}" + (f", torch {torch_v}" if torch_v else ""))


def diffusers_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    yield from _library_compat(facts, profile, "diffusers")


def transformers_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    yield from _library_compat(facts, profile, "transformers")


# --- the SVD pipeline -----------------------------------------------------------------------------------------

def _rebuild_stack_hint(facts: HostFacts, profile: Profile) -> str:
    """The commands that turn this host's stack into one that runs today's SVD pipeline."""
    pipe = kb.svd_pipeline()
    py = pipe.reference_python.truncate(2)
    release = kb.find_torch_release(pipe.reference_torch)
    steps: list[str] = []
    variant: Version | None = None
    if release is not None and (facts.gpus or profile.requires_gpu):
        driver, ccs = _driver(facts), _ccs(facts)
        variant = _choose_variant(release, driver, ccs)
        if variant is None:
            fitting = [v for v in sorted(release.cuda_variants, reverse=True)
                       if _cuda_ok_for_gpus(v, release.version, ccs)]
            variant = fitting[0] if fitting else max(release.cuda_variants)
            req = kb.find_min_driver_for_cuda(variant)
            if req is not None:
                steps.append(_driver_install(req.min_driver_ga, facts))
    index = kb.torch_index_url(variant)
    torch_pin = shlex.quote(f"torch=={pipe.reference_torch.truncate(2)}.*")
    libs = f"{shlex.quote(f'diffusers>={pipe.reference_diffusers.truncate(2)}')} transformers accelerate"
    if profile.python.env == "conda" or facts.python.conda.executable:
        conda = shlex.quote(facts.python.conda.executable or "conda")
        steps.append(f"{conda} create -y -n svd python={py}")
        steps.append(f"{conda} run -n svd python -m pip install {torch_pin} --index-url {index}")
        steps.append(f"{conda} run -n svd python -m pip install {libs}")
    else:
        steps.append(f"python{py} -m venv ~/svd-env")
        steps.append(f"~/svd-env/bin/python -m pip install {torch_pin} --index-url {index}")
        steps.append(f"~/svd-env/bin/python -m pip install {libs}")
    if len(steps) == 4:  # the driver comes first, and nothing chained after `sudo reboot` would run
        return f"{steps[0]}  then, after the reboot: " + " && ".join(steps[1:])
    return " && ".join(steps)


def svd_pipeline_stack(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    if profile.svd.scenario is None:
        return
    title = "this stack can run today's SVD pipeline"
    pipe = kb.svd_pipeline()
    req = kb.reference_pipeline_requirements()
    expected = (f"Python >= {req.min_python} and torch >= {req.min_torch} "
                f"(diffusers {pipe.reference_diffusers.truncate(2)}, today's SVD pipeline)")
    py, torch_v, diffusers = facts.python.python_version, _installed(facts, "torch"), _installed(facts, "diffusers")
    if py is None and torch_v is None:
        yield Finding("svd.pipeline-stack", title, WARN, expected, _na(facts, "python"))
        return
    short: list[str] = []
    if py is not None and py < req.min_python:
        short.append(f"Python {py} (needs >= {req.min_python})")
    if req.min_torch is not None and torch_v is not None and torch_v < req.min_torch:
        short.append(f"torch {torch_v} (needs >= {req.min_torch})")
    if diffusers is not None and diffusers < pipe.diffusers_min:
        short.append(f"diffusers {diffusers} (StableVideoDiffusionPipeline arrived in {pipe.diffusers_min})")
    if short:
        yield Finding("svd.pipeline-stack", title, FAIL, expected,
                      f"this stack cannot run today's SVD pipeline: {'; '.join(short)}. Change: a new environment "
                      f"with Python {pipe.reference_python}, torch {pipe.reference_torch} and diffusers "
                      f">= {pipe.reference_diffusers.truncate(2)}", hint=_rebuild_stack_hint(facts, profile))
        return
    have = ", ".join(x for x in (f"Python {py}" if py else "", f"torch {torch_v}" if torch_v else "") if x)
    if py is None or torch_v is None:
        yield Finding("svd.pipeline-stack", title, WARN, expected,
                      f"{have}; {'Python' if py is None else 'torch'} {_na(facts, 'python')}")
    else:
        yield Finding("svd.pipeline-stack", title, PASS, expected, have)


def profile_svd_stack(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    """Whether the profile's own pins leave room for today's pipeline: no host can pass both otherwise."""
    if profile.svd.scenario is None:
        return
    title = f"profile {profile.name} admits today's SVD pipeline"
    req = kb.reference_pipeline_requirements()
    pythons = {Version((3, m)) for m in range(6, 16)} | {req.min_python}
    releases = {r.version for r in kb.torch_releases()} | ({req.min_torch} if req.min_torch else set())
    torch_spec = dict(profile.python.packages).get("torch")
    problems, edits = [], []
    if not _admits(profile.python.version, pythons, req.min_python):
        problems.append(f"python.version '{profile.python.version}' admits no Python >= {req.min_python}")
        edits.append(f"python.version: '>={req.min_python}'")
    if req.min_torch is not None and not _admits(torch_spec, releases, req.min_torch):
        problems.append(f"python.packages.torch '{torch_spec}' admits no torch >= {req.min_torch}")
        edits.append(f"python.packages.torch: '>={req.min_torch}'")
    expected = f"Python >= {req.min_python} and torch >= {req.min_torch} allowed"
    if problems:
        yield Finding("profile.svd-stack", title, FAIL, expected,
                      "; ".join(problems) + ": no host can satisfy this profile and run today's SVD pipeline",
                      hint=f"edit {profile.source}: set {', '.join(edits)} (or judge with --profile svd-host)")
    else:
        yield Finding("profile.svd-stack", title, PASS, expected, "allowed")


def svd_vram(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    name = profile.svd.scenario
    if name is None:
        return
    title = f"a GPU with the memory {name} needs"
    try:
        scen = kb.scenario(name)
    except LookupError as exc:
        yield Finding("svd.vram", title, SKIP, f"scenario {name}", str(exc), subject=name)
        return
    if not scen.needs_gpu:
        yield Finding("svd.vram", title, PASS, f"{name} runs on the CPU", "no GPU needed", subject=name)
        return
    expected = f">= {scen.min_vram_gib:g} GiB on one GPU (peak allocated {scen.peak_allocated_gib:g} GiB)"
    sized = [g for g in facts.gpus if g.memory_total_mib is not None]
    if not sized:
        status = FAIL if facts.gpus == () and facts.note_for("gpus") is None else WARN
        actual = "no GPU" if status is FAIL else _na(facts, "gpus")
        yield Finding("svd.vram", title, status, expected, actual, subject=name,
                      hint="" if status is WARN else "a GPU is needed for this scenario; use --profile ci-cpu "
                                                     "(scenario tiny) on CPU-only hosts")
        return
    best = max(sized, key=lambda g: g.memory_total_mib or 0)
    best_gib = _gib(best.memory_total_mib or 0)
    if best_gib >= scen.min_vram_gib:
        yield Finding("svd.vram", title, PASS, expected, f"{_gpu_label(best)}: {best_gib:.1f} GiB", subject=name)
    else:
        lower = [s for s in kb.scenario_names() if kb.scenario(s).needs_gpu and kb.scenario(s).min_vram_gib <= best_gib]
        alt = f"set svd.scenario: {lower[0]} in the profile, or " if lower else ""
        yield Finding("svd.vram", title, FAIL, expected, f"largest is {_gpu_label(best)}: {best_gib:.1f} GiB",
                      hint=f"{alt}fit a GPU with >= {scen.min_vram_gib:g} GiB", subject=name)


# --- GPUs -----------------------------------------------------------------------------------------------------

def gpu_count(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    lo, hi = profile.gpu.min_count, profile.gpu.max_count
    if lo is None and hi is None:
        return
    title = "number of GPUs"
    expected = (f"{lo}" if lo == hi else f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"{lo}-{hi}")
    n = len(facts.gpus)
    if n == 0 and (lo or 0) > 0:
        note = facts.note_for("gpus")
        if facts.driver.needs_reboot:
            # nvidia-smi cannot list GPUs while the loaded module and the libraries disagree
            hint = "sudo reboot (driver.reboot-required), then check again: nvidia-smi lists no GPU until then"
        else:
            hint = ("check the GPUs are seated and powered, then `lspci | grep -i nvidia` and install the "
                    "driver (driver.present)")
        yield Finding("gpu.count", title, FAIL, expected, f"0 ({note})" if note else "0", hint=hint)
    elif hi is not None and n > hi:
        yield Finding("gpu.count", title, FAIL, expected, str(n),
                      hint=f"profile {profile.name} is for hosts with at most {hi} GPU(s): judge this host with "
                           "`svdops check --profile svd-host` (or a profile for what it has)")
    elif lo is not None and n < lo:
        yield Finding("gpu.count", title, FAIL, expected, str(n),
                      hint="fit the missing GPUs, or if they are fitted: `sudo dmesg | grep -i -e nvrm -e xid`")
    else:
        yield Finding("gpu.count", title, PASS, expected, str(n))


def gpu_model(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    models = profile.gpu.models
    if not models or not facts.gpus:
        return
    title = "GPU model"
    expected = " or ".join(models)
    wrong = [g for g in facts.gpus if not any(m.lower() in g.name.lower() for m in models)]
    if wrong:
        names = ", ".join(sorted({g.name for g in wrong}))
        yield Finding("gpu.model", title, FAIL, expected, f"{names} ({len(wrong)} of {len(facts.gpus)})",
                      hint=f"fit {expected} GPUs, or judge this host with a profile for what it has")
    else:
        yield Finding("gpu.model", title, PASS, expected, ", ".join(sorted({g.name for g in facts.gpus})))


def gpu_vram(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    need = profile.gpu.min_vram_gib
    if need is None or not facts.gpus:
        return
    title = "memory of each GPU"
    expected = f">= {need:g} GiB per GPU"
    unknown = [g for g in facts.gpus if g.memory_total_mib is None]
    small = [g for g in facts.gpus if g.memory_total_mib is not None and _gib(g.memory_total_mib) < need]
    if small:
        actual = ", ".join(f"GPU{g.index} {_gib(g.memory_total_mib or 0):.1f} GiB" for g in small)
        yield Finding("gpu.vram", title, FAIL, expected, actual, hint=f"fit GPUs with >= {need:g} GiB")
    elif unknown:
        yield Finding("gpu.vram", title, WARN, expected, _na(facts, "gpus"))
    else:
        low = min(_gib(g.memory_total_mib or 0) for g in facts.gpus)
        yield Finding("gpu.vram", title, PASS, expected, f"smallest {low:.1f} GiB")


def gpu_compute_capability(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    need = profile.gpu.min_compute_capability
    if need is None or not facts.gpus:
        return
    title = "compute capability of each GPU"
    expected = f">= {need}"
    old = [g for g in facts.gpus if g.compute_capability is not None and g.compute_capability < need]
    unknown = [g for g in facts.gpus if g.compute_capability is None]
    if old:
        yield Finding("gpu.compute-capability", title, FAIL, expected,
                      ", ".join(f"{_gpu_label(g)} cc {g.compute_capability}" for g in old),
                      hint=f"fit GPUs of compute capability >= {need}")
    elif unknown:
        yield Finding("gpu.compute-capability", title, WARN, expected, _na(facts, "gpus"))
    else:
        yield Finding("gpu.compute-capability", title, PASS, expected,
                      ", ".join(f"cc {c}" for c in sorted(set(_ccs(facts)))))


def gpu_nvlink(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    if not profile.gpu.nvlink_all_pairs or not facts.gpus:
        return
    title = "NVLink between every GPU pair"
    expected = "NV# between every pair in `nvidia-smi topo -m`"
    n = max(facts.topology.gpu_count, len(facts.gpus))
    if n < 2:
        yield Finding("gpu.nvlink", title, SKIP, expected, "one GPU: no pairs to link")
        return
    if not facts.topology.links:
        yield Finding("gpu.nvlink", title, WARN, expected, _na(facts, "topology"))
        return
    pcie = []
    for a in range(n):
        for b in range(a + 1, n):
            link = facts.topology.link(a, b)
            if link is None or not link.is_nvlink:
                pcie.append(f"GPU{a}-GPU{b} {link.kind if link else 'unknown'}")
    if not pcie:
        kinds = sorted({lk.kind for lk in facts.topology.links if lk.is_nvlink})
        yield Finding("gpu.nvlink", title, PASS, expected, f"all {n * (n - 1) // 2} pairs over {'/'.join(kinds)}")
        return
    sxm = any("sxm" in g.name.lower() or "hbm3" in g.name.lower() or g.name in ("NVIDIA H200", "NVIDIA B200")
              for g in facts.gpus)
    driver = _driver(facts)
    branch = driver.major if driver is not None else 580
    if sxm:
        hint = (f"sudo apt-get install -y nvidia-fabricmanager-{branch} && "
                "sudo systemctl enable --now nvidia-fabricmanager && " + REBOOT +
                "  (NVSwitch systems route NVLink only with the fabric manager of the driver's branch running)")
    else:
        hint = "fit NVLink bridges between the GPU pairs listed, then `nvidia-smi nvlink -s` to confirm"
    shown = ", ".join(pcie[:8]) + (f" (+{len(pcie) - 8} more)" if len(pcie) > 8 else "")
    yield Finding("gpu.nvlink", title, FAIL, expected, f"over PCIe: {shown}", hint=hint)


def gpu_ecc(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.gpu.ecc
    if want is None or not facts.gpus:
        return
    title = "ECC memory mode"
    expected = "ECC on for every GPU" if want else "ECC off"
    wrong = [g for g in facts.gpus if g.ecc_enabled is not None and g.ecc_enabled != want]
    unknown = [g for g in facts.gpus if g.ecc_enabled is None]
    if wrong:
        fix = f"sudo nvidia-smi -e {1 if want else 0} && {REBOOT}"
        yield Finding("gpu.ecc", title, FAIL, expected,
                      f"{'off' if want else 'on'} on " + ", ".join(f"GPU{g.index}" for g in wrong), hint=fix)
    elif unknown:
        yield Finding("gpu.ecc", title, SKIP, expected,
                      f"not reported for {', '.join(f'GPU{g.index}' for g in unknown)} (consumer GPUs have no ECC)")
    else:
        yield Finding("gpu.ecc", title, PASS, expected, "on" if want else "off")


# --- memory and storage ---------------------------------------------------------------------------------------

def ram_size(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    lo, rec = profile.ram.min_gib, profile.ram.recommended_gib
    if lo is None and rec is None:
        return
    title = "system memory"
    expected = " ".join(x for x in (f">= {lo:g} GiB" if lo else "", f"({rec:g} GiB recommended)" if rec else "") if x)
    total = facts.memory.total_mib
    if total is None:
        yield Finding("ram.size", title, WARN, expected, _na(facts, "memory.total_mib"))
        return
    have = _gib(total)
    actual = f"{have:.1f} GiB (MemTotal)"
    if lo is not None and have < lo * RAM_READS_LOW:
        yield Finding("ram.size", title, FAIL, expected, actual, hint=f"install at least {lo:g} GiB of memory")
    elif rec is not None and have < rec * RAM_READS_LOW:
        yield Finding("ram.size", title, WARN, expected, actual, hint=f"install {rec:g} GiB of memory")
    else:
        yield Finding("ram.size", title, PASS, expected, actual)


def _tb(size_bytes: int | None) -> float:
    return (size_bytes or 0) / 1e12


def _array_is_nvme(array: MdArray) -> bool:
    return bool(array.members) and all(m.startswith("nvme") for m in array.members)


def _mountpoint(facts: HostFacts, array: MdArray) -> str | None:
    for mount in facts.storage.mounts:
        if mount.device in (f"/dev/{array.name}", array.name) or mount.device.startswith(f"/dev/md/{array.name}"):
            return mount.mountpoint
    return None


def _free_nvme(facts: HostFacts) -> list[str]:
    """NVMe disks with no partitions, no filesystem, no mountpoint and in no md array."""
    members = [m for a in facts.storage.md_arrays for m in a.members]

    def in_md(disk: str) -> bool:
        return any(m == disk or m.startswith(disk + "p") for m in members)

    return [d.name for d in facts.storage.block_devices
            if d.is_nvme and d.type == "disk" and not d.children and not d.mountpoint and not d.fstype
            and not in_md(d.name)]


def storage_scratch(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.storage.scratch
    if want is None:
        return
    title = "NVMe scratch array"
    kind = "NVMe " if want.nvme else ""
    size = f", >= {want.min_size_tb:g} TB" if want.min_size_tb else ""
    expected = f"md {want.level} of >= {want.min_devices} {kind}devices{size}"
    arrays = [a for a in facts.storage.md_arrays if a.level == want.level and (_array_is_nvme(a) or not want.nvme)]
    good = [a for a in arrays if len(a.members) >= want.min_devices
            and (want.min_size_tb is None or _tb(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        mount = _mountpoint(facts, best)
        yield Finding("storage.scratch", title, PASS, expected,
                      f"{best.name}: {best.level}, {len(best.members)} devices, {_tb(best.size_bytes):.2f} TB"
                      + (f" on {mount}" if mount else ""), subject=best.name)
        return
    if not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.scratch", title, WARN, expected, _na(facts, "storage"))
        return
    if arrays:
        a = max(arrays, key=lambda x: x.size_bytes or 0)
        actual = f"{a.name}: {len(a.members)} devices, {_tb(a.size_bytes):.2f} TB"
    else:
        actual = f"no {kind}{want.level} md array"
    free = _free_nvme(facts)
    if len(free) >= want.min_devices:
        devs = " ".join(f"/dev/{d}" for d in free)
        hint = (f"sudo mdadm --create /dev/md/scratch --level={want.level.removeprefix('raid')} "
                f"--raid-devices={len(free)} {devs} && sudo mkfs.xfs /dev/md/scratch && sudo mkdir -p /scratch && "
                "sudo mount /dev/md/scratch /scratch  (erases those disks)")
    else:
        hint = (f"fit {want.min_devices - len(free)} more unused NVMe drive(s) "
                f"(free now: {', '.join(free) or 'none'}), "
                f"then: sudo mdadm --create /dev/md/scratch --level={want.level.removeprefix('raid')} "
                f"--raid-devices={want.min_devices} /dev/nvme0n1 ...")
    yield Finding("storage.scratch", title, FAIL, expected, actual, hint=hint)


def storage_data(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.storage.data
    if want is None:
        return
    title = "data array"
    size = f", >= {want.min_size_tb:g} TB" if want.min_size_tb else ""
    expected = f"md {' or '.join(want.levels)} of >= {want.min_devices} devices{size}"
    arrays = [a for a in facts.storage.md_arrays if a.level in want.levels]
    good = [a for a in arrays if len(a.members) >= want.min_devices
            and (want.min_size_tb is None or _tb(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        yield Finding("storage.data", title, PASS, expected,
                      f"{best.name}: {best.level}, {len(best.members)} devices, {_tb(best.size_bytes):.2f} TB",
                      subject=best.name)
    elif not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.data", title, WARN, expected, _na(facts, "storage"))
    else:
        if arrays:
            a = max(arrays, key=lambda x: x.size_bytes or 0)
            actual = f"{a.name}: {a.level}, {len(a.members)} devices, {_tb(a.size_bytes):.2f} TB"
        else:
            actual = f"no {' or '.join(want.levels)} md array"
        level = want.levels[-1].removeprefix("raid")
        yield Finding("storage.data", title, FAIL, expected, actual,
                      hint=f"sudo mdadm --create /dev/md/data --level={level} --raid-devices=N /dev/sdX /dev/sdY ... "
                           f"(N >= {max(want.min_devices, 3)} disks, usable size {size.lstrip(', ') or 'enough'}) "
                           "&& sudo mkfs.xfs /dev/md/data")


def storage_md_health(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    for array in facts.storage.md_arrays:
        title = f"md array {array.name} health"
        expected = "all members active, not degraded"
        counts = (f" [{array.devices_up}/{array.devices_total}]"
                  if array.devices_total is not None and array.devices_up is not None else "")
        if array.failed_members or array.degraded:
            if array.failed_members:
                steps = [f"sudo mdadm --manage /dev/{array.name} --fail /dev/{m} --remove /dev/{m}"
                         for m in array.failed_members]
                steps.append("replace the failed disk(s), then")
                steps += [f"sudo mdadm --manage /dev/{array.name} --add /dev/{m}" for m in array.failed_members]
                hint = " && ".join(s for s in steps if not s.startswith("replace")) + \
                    "  (swap the disk between --remove and --add)"
                actual = f"failed: {', '.join(array.failed_members)}{counts}"
            else:
                hint = f"sudo mdadm --detail /dev/{array.name}  then: sudo mdadm --manage /dev/{array.name} " \
                       "--add /dev/<replacement disk>"
                actual = f"degraded{counts}"
            status = WARN if array.recovering and not array.failed_members else FAIL
            if array.recovering:
                actual += ", recovery running"
            yield Finding("storage.md-health", title, status, expected, actual, hint=hint, subject=array.name)
        elif array.state != "active":
            yield Finding("storage.md-health", title, FAIL, expected, f"state {array.state}",
                          hint=f"sudo mdadm --assemble --scan && sudo mdadm --detail /dev/{array.name}",
                          subject=array.name)
        elif array.recovering:
            yield Finding("storage.md-health", title, WARN, expected, f"resync running{counts}",
                          hint="watch cat /proc/mdstat  (wait for it to finish)", subject=array.name)
        else:
            yield Finding("storage.md-health", title, PASS, expected, f"active{counts}", subject=array.name)


# --- registry -----------------------------------------------------------------------------------------------------

# Order is the order of the report: the platform first, then what sits on it.
RULES: tuple[tuple[str, Rule], ...] = (
    ("os.id", os_rules),
    ("driver.present", driver_presence),
    ("driver.version", driver_version),
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
)

RULE_IDS: tuple[str, ...] = (
    "os.id", "os.release", "driver.present", "driver.version", "driver.flavor", "driver.reboot-required",
    "driver.nouveau", "driver.secure-boot", "driver.persistence", "driver.cuda-toolkit-compat",
    "driver.torch-cuda-compat", "gpu.count", "gpu.model", "gpu.vram", "gpu.compute-capability", "gpu.nvlink",
    "gpu.ecc", "cuda.toolkit", "cuda.arch-support", "cuda.cudnn", "cuda.nccl", "python.version", "python.env",
    "python.package", "torch.cuda-build", "torch.cuda-variant", "torch.arch-list", "python.diffusers-compat",
    "python.transformers-compat", "svd.pipeline-stack", "profile.svd-stack", "svd.vram", "ram.size",
    "storage.scratch", "storage.data", "storage.md-health",
)
