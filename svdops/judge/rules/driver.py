"""The NVIDIA driver: presence, version, flavour (open/proprietary), reboot, nouveau, Secure Boot,
persistence, and what CUDA toolkit and torch build it runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from svdops.findings import Finding
from svdops.host.facts import HostFacts
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import (
    FAIL,
    PASS,
    REBOOT,
    SKIP,
    UNKNOWN,
    WARN,
    choose_cuda_variant,
    compute_capabilities,
    could_not_look,
    driver_install_command,
    driver_version_of,
    gpu_capability,
    gpu_expected,
    gpu_label,
    not_available,
    probe_note,
    skip_no_gpu,
    torch_install_command,
)
from svdops.versions import Version

# What NVIDIA's minor-version compatibility leaves out, said wherever a driver runs a newer CUDA minor.
MINOR_COMPAT_LIMITS = ("PTX newer than the driver cannot be JIT-compiled and APIs newer than the driver's CUDA "
                       "fail with cudaErrorCallRequiresNewerDriver")


def _unknown_cuda(rule_id: str, title: str, cuda: Version, actual: str) -> Finding:
    """A CUDA minor without a row: newer than the knowledge warns (it may need a newer branch), older skips."""
    if kb.cuda_is_newer(cuda):
        return Finding(rule_id, title, WARN, f"a driver for CUDA {cuda}",
                       f"{actual}: " + kb.newer_than_knowledge(f"CUDA {cuda.truncate(2)}"))
    return Finding(rule_id, title, SKIP, f"a driver for CUDA {cuda}",
                   f"CUDA {cuda} is not in svdops' knowledge base ({kb.version()})")


def _nvidia_drives_gpus(facts: HostFacts) -> bool:
    """The nvidia kernel module is loaded and nvidia-smi lists GPUs through it."""
    return facts.driver.kernel_module_version is not None and bool(facts.gpus) and not facts.driver.needs_reboot


def _upgrade_hint(facts: HostFacts, req: kb.DriverRequirement, install: str) -> str:
    """A reboot where the driver this needs is installed but an older module still runs, else `install`."""
    installed, loaded = facts.driver.userspace_version, driver_version_of(facts)
    if installed is not None and loaded is not None and installed != loaded and req.level(installed) == "full":
        return f"{REBOOT}  (driver {installed} is installed; the loaded module {loaded} is older)"
    return install


def driver_presence(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "NVIDIA driver installed"
    if not gpu_expected(facts, profile):
        yield skip_no_gpu("driver.present", title, profile)
        return
    driver = driver_version_of(facts)
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
    yield Finding("driver.present", title, FAIL, "an NVIDIA driver",
                  f"none found ({probe_note(facts, 'driver', 'gpus')})",
                  hint=driver_install_command(req.min_driver_ga, facts))


def driver_version(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.driver.version
    if spec is None:
        return
    title = "driver version"
    driver = driver_version_of(facts)
    if driver is None:
        yield Finding("driver.version", title, UNKNOWN, str(spec), not_available(facts, "driver.userspace_version"))
    elif spec.contains(driver):
        yield Finding("driver.version", title, PASS, str(spec), str(driver))
    elif (installed := facts.driver.userspace_version) is not None and installed != driver \
            and spec.contains(installed):
        # the right driver is installed but an older module still runs: a reboot loads it
        yield Finding("driver.version", title, FAIL, str(spec),
                      f"{driver} loaded ({installed} installed, not loaded until a reboot)", hint=REBOOT)
    else:
        minimum = spec.minimum or driver
        yield Finding("driver.version", title, FAIL, str(spec), str(driver),
                      hint=driver_install_command(minimum, facts))


def driver_flavor(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "kernel module flavour"
    required_open = any(kb.requires_open_modules(gpu_capability(g), g.name) for g in facts.gpus)
    pre_turing = [g for g in facts.gpus if (cc := gpu_capability(g)) is not None and not kb.can_use_open_modules(cc)]
    required_proprietary = bool(pre_turing) and not required_open
    want = "open" if required_open else "proprietary" if required_proprietary else profile.driver.flavor
    if want is None or not facts.gpus:
        return
    have = facts.driver.kernel_module_flavor
    unknown = [g for g in facts.gpus if gpu_capability(g) is None]
    if want == "open" and not required_open and unknown and have is not None and have != "open":
        # the open modules need Turing or later: for a GPU nobody can name, no open-module advice
        names = ", ".join(gpu_label(g) for g in unknown)
        yield Finding("driver.flavor", title, FAIL if profile.driver.flavor else WARN, "open",
                      f"{have or 'flavour not known'}; {names}: compute capability unknown, so whether the open "
                      "modules can drive it is unknown",
                      hint=f"look {names} up at https://developer.nvidia.com/cuda-gpus: the open kernel modules "
                           f"need compute capability >= {kb.open_module_min_cc()} (Turing); svdops names no open-"
                           "module package for a GPU it cannot identify")
        return
    why = (" (Blackwell and Grace Hopper GPUs run only on the open modules)" if required_open
           else f" ({', '.join(gpu_label(g) for g in pre_turing)} predates Turing: the open modules cannot drive it)"
           if required_proprietary else "")
    if have is None:
        yield Finding("driver.flavor", title, UNKNOWN, want + why,
                      not_available(facts, "driver.kernel_module_flavor"))
    elif have == want:
        yield Finding("driver.flavor", title, PASS, want, have)
    else:
        driver = driver_version_of(facts)
        package = _flavour_package(driver, want, compute_capabilities(facts), kb.day_of(facts.collected_at))
        required = required_open or required_proprietary
        yield Finding("driver.flavor", title, FAIL if required or profile.driver.flavor else WARN,
                      want + why, have, hint=package)


def _flavour_package(driver: Version | None, flavour: str, ccs: tuple[Version, ...], today: date) -> str:
    """The running branch in the wanted flavour while NVIDIA supports it, else the lowest supported one above."""
    row = kb.driver_branch(driver.major) if driver is not None else None
    if not (row is not None and not row.ended(today) and (row.open or flavour != "open")
            and all(row.drives(cc) for cc in ccs)):
        row = kb.driver_branch_for(Version((driver.major,)) if driver is not None else Version((0,)),
                                   want_open=flavour == "open", compute_capabilities=ccs, today=today)
    if row is None:
        return f"an NVIDIA driver with {flavour} kernel modules (no supported branch known to svdops drives these GPUs)"
    return f"sudo apt-get install -y nvidia-driver-{row.branch}" + ("-open" if flavour == "open" else "") + \
        f" && {REBOOT}"


def driver_reboot(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "loaded driver matches installed driver"
    d = facts.driver
    if not gpu_expected(facts, profile):
        yield skip_no_gpu("driver.reboot-required", title, profile)
        return
    if d.library_mismatch:
        yield Finding("driver.reboot-required", title, FAIL, "kernel module = userspace libraries",
                      "nvidia-smi: Driver/library version mismatch (a driver update is installed but not loaded)",
                      hint=REBOOT)
    elif d.needs_reboot:
        yield Finding("driver.reboot-required", title, FAIL, "kernel module = userspace libraries",
                      f"kernel module {d.kernel_module_version}, userspace {d.userspace_version}", hint=REBOOT)
    elif d.userspace_version is None and d.kernel_module_version is None:
        # no driver at all: driver.present fails and says why; there is nothing here to compare
        yield Finding("driver.reboot-required", title, SKIP, "kernel module = userspace libraries",
                      f"no driver to compare ({not_available(facts, 'driver.kernel_module_version')})")
    elif d.userspace_version is None or d.kernel_module_version is None:
        # one side is known and the other could not be read: whether they match is unknown
        yield Finding("driver.reboot-required", title, could_not_look(profile.requires_gpu),
                      "kernel module = userspace libraries",
                      not_available(facts, "driver.kernel_module_version" if d.kernel_module_version is None
                                    else "driver.userspace_version"))
    else:
        yield Finding("driver.reboot-required", title, PASS, "kernel module = userspace libraries",
                      f"both {d.userspace_version}")


def driver_nouveau(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "nouveau not loaded"
    if not gpu_expected(facts, profile):
        yield skip_no_gpu("driver.nouveau", title, profile)
        return
    loaded = facts.driver.nouveau_loaded
    if loaded is None and _nvidia_drives_gpus(facts):
        # both cannot hold the same GPU: with the nvidia module driving every listed GPU, nouveau holds none
        yield Finding("driver.nouveau", title, SKIP, "nouveau not loaded",
                      f"{not_available(facts, 'driver.nouveau_loaded')}; the nvidia module "
                      f"{facts.driver.kernel_module_version} drives the GPUs, so nouveau holds none")
    elif loaded is None:
        yield Finding("driver.nouveau", title, could_not_look(profile.requires_gpu), "nouveau not loaded",
                      not_available(facts, "driver.nouveau_loaded"))
    elif loaded:
        yield Finding("driver.nouveau", title, FAIL, "nouveau not loaded", "nouveau is loaded (it holds the GPUs)",
                      hint="printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee "
                           "/etc/modprobe.d/blacklist-nouveau.conf && sudo update-initramfs -u && " + REBOOT)
    else:
        yield Finding("driver.nouveau", title, PASS, "nouveau not loaded", "not loaded")


def driver_secure_boot(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "Secure Boot and signed driver modules"
    if not gpu_expected(facts, profile):
        yield skip_no_gpu("driver.secure-boot", title, profile)
        return
    d = facts.driver
    expected = "Secure Boot off, or the DKMS-built nvidia modules signed with an enrolled key"
    enroll = "sudo mokutil --import /var/lib/shim-signed/mok/MOK.der && " + REBOOT + \
             "  (then choose 'Enroll MOK' at the blue MOK manager screen), or turn Secure Boot off in the firmware"
    if d.secure_boot_enabled is None and _nvidia_drives_gpus(facts):
        # the module is loaded and drives the GPUs: whatever Secure Boot's state, it did not refuse the module
        yield Finding("driver.secure-boot", title, SKIP, expected,
                      f"{not_available(facts, 'driver.secure_boot_enabled')}; the nvidia module "
                      f"{d.kernel_module_version} is loaded, so it was not refused")
    elif d.secure_boot_enabled is None:
        yield Finding("driver.secure-boot", title, could_not_look(profile.requires_gpu), expected,
                      not_available(facts, "driver.secure_boot_enabled"))
    elif not d.secure_boot_enabled:
        yield Finding("driver.secure-boot", title, PASS, expected, "Secure Boot off")
    elif d.dkms_modules_signed is True:
        yield Finding("driver.secure-boot", title, PASS, expected, "Secure Boot on, modules signed")
    elif d.dkms_modules_signed is None and d.kernel_module_version is not None:
        # the module loads, so its signature was accepted; whether the next DKMS rebuild is signed is unknown
        yield Finding("driver.secure-boot", title, WARN, expected,
                      f"Secure Boot on; module {d.kernel_module_version} loads, signing not confirmed "
                      f"({probe_note(facts, 'driver.dkms_modules_signed')})", hint=enroll)
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
        yield Finding("driver.persistence", title, SKIP, "on for every GPU", not_available(facts, "gpus", "driver"))


def driver_toolkit_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "driver supports the CUDA toolkit (nvcc)"
    toolkit = facts.cuda.toolkit_version
    if toolkit is None or not gpu_expected(facts, profile):
        return  # no nvcc: nothing is compiled here, so nothing to judge (cuda.toolkit judges a required one)
    req = kb.find_min_driver_for_cuda(toolkit)
    driver = driver_version_of(facts)
    if req is None:
        yield _unknown_cuda("driver.cuda-toolkit-compat", title, toolkit, f"nvcc {toolkit}")
        return
    expected = f"driver >= {req.min_driver_ga} for CUDA {req.cuda}"
    if driver is None:
        yield Finding("driver.cuda-toolkit-compat", title, UNKNOWN if profile.requires_gpu else WARN, expected,
                      not_available(facts, "driver.userspace_version"))
        return
    level = req.level(driver)
    if level == "full":
        yield Finding("driver.cuda-toolkit-compat", title, PASS, expected, f"driver {driver}, nvcc {toolkit}")
    elif level == "compat":
        yield Finding("driver.cuda-toolkit-compat", title, WARN, expected,
                      f"driver {driver}: CUDA {toolkit} programs run only under minor-version compatibility: "
                      f"{MINOR_COMPAT_LIMITS}",
                      hint=_upgrade_hint(facts, req, driver_install_command(req.min_driver_ga, facts)))
    else:
        yield Finding("driver.cuda-toolkit-compat", title, FAIL, expected,
                      f"driver {driver} is older than CUDA {req.cuda.major}.x allows (>= {req.min_driver_compat})",
                      hint=_upgrade_hint(facts, req, driver_install_command(req.min_driver_ga, facts)))


def driver_torch_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    title = "driver supports torch's CUDA"
    torch_cuda = facts.python.torch_cuda
    if torch_cuda is None or not gpu_expected(facts, profile):
        return  # no CUDA build of torch: torch.cuda-build says whether one is needed
    req = kb.find_min_driver_for_cuda(torch_cuda)
    if req is None:
        yield _unknown_cuda("driver.torch-cuda-compat", title, torch_cuda, f"torch built for CUDA {torch_cuda}")
        return
    expected = f"driver >= {req.min_driver_ga} (or >= {req.min_driver_compat} under minor-version compatibility)"
    driver = driver_version_of(facts)
    if driver is None:
        yield Finding("driver.torch-cuda-compat", title, UNKNOWN if profile.requires_gpu else WARN, expected,
                      not_available(facts, "driver.userspace_version"))
        return
    level = req.level(driver)
    torch_v = facts.python.torch_version
    actual = f"driver {driver}, torch {torch_v or '?'} built for CUDA {torch_cuda}"
    if level == "full":
        yield Finding("driver.torch-cuda-compat", title, PASS, expected, actual)
    elif level == "compat":
        yield Finding("driver.torch-cuda-compat", title, WARN, expected,
                      actual + f": runs only under minor-version compatibility: {MINOR_COMPAT_LIMITS} "
                               "(torch.compile/Triton kernels may be among them)",
                      hint=_upgrade_hint(facts, req, driver_install_command(req.min_driver_ga, facts)))
    else:
        options = [_upgrade_hint(facts, req, driver_install_command(req.min_driver_ga, facts))]
        if torch_v is not None:
            release = kb.find_torch_release(torch_v)
            variant = choose_cuda_variant(release, driver, compute_capabilities(facts)) if release else None
            if release is not None and variant is not None:
                options.append(torch_install_command(facts, release.version, variant))
        yield Finding("driver.torch-cuda-compat", title, FAIL, expected,
                      actual + ": CUDA fails to initialise (driver too old)", hint="  or  ".join(options))


def driver_branch_status(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    """The driver's branch against NVIDIA's lifecycle: an ended branch gets no security fixes."""
    driver = driver_version_of(facts)
    if driver is None or not facts.gpus:
        return
    title = "driver branch is supported by NVIDIA"
    today = kb.day_of(facts.collected_at)
    row = kb.driver_branch(driver.major)
    newest = kb.newest_driver_branch()
    expected = "a supported branch: " + ", ".join(b.label for b in kb.supported_branches(today))
    if row is None and driver.major > newest.branch:
        yield Finding("driver.branch", title, WARN, expected,
                      f"driver {driver}: " + kb.newer_than_knowledge(f"branch R{driver.major}"))
        return
    if row is not None and not row.ended(today):
        yield Finding("driver.branch", title, PASS, expected, f"driver {driver}: {row.label}")
        return
    # ended, or an unlisted older branch: NVIDIA ends every branch it no longer lists
    ccs = compute_capabilities(facts)
    move_to = [b for b in kb.supported_branches(today) if b.branch > driver.major and all(b.drives(cc) for cc in ccs)]
    what = row.label if row is not None else f"R{driver.major} (not a branch NVIDIA still lists: end of life)"
    if move_to:
        target = move_to[0]
        open_ok = bool(facts.gpus) and all(kb.can_use_open_modules(gpu_capability(g)) for g in facts.gpus)
        package = f"nvidia-driver-{target.branch}" + ("-open" if open_ok and target.open else "")
        hint = f"move to {target.label}: sudo apt-get install -y {package} && {REBOOT}"
    else:
        hint = "no supported branch drives these GPUs: plan their replacement"
    yield Finding("driver.branch", title, WARN, expected, f"driver {driver}: {what}, no more security fixes",
                  hint=hint)
