"""The requested stack, made concrete and validated before Ansible starts.

1. plan_for(profile, options) -> Plan: what the profile asks for, made concrete (driver branch, CUDA,
   cuDNN, NCCL, Python, torch release and CUDA variant, GPU generation) with svdops' knowledge base.
2. validate_plan(plan) -> findings: whether that combination can work (the driver runs the toolkit and
   the torch wheel, the GPU runs what they were built for, the open modules suit the GPU...), with the
   same kind of hints `svdops check` gives. Any fail stops the run before Ansible starts (exit 2).
3. wipes_by_host(--wipe items, hosts) and check_storage_vars(variables): which disks a run may destroy
   on which host, and the storage variables (array names, mount points, disk allowlists) checked
   before they reach mdadm, mkfs or mount. The storage role asserts the same rules for people who run
   the playbooks directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svdops.errors import BadInputError
from svdops.findings import Finding, Status
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile, VersionSpec
from svdops.versions import Version


class ProvisionPlanError(BadInputError):
    """The requested combination cannot work; `findings` says why, each with a hint."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        failed = [f for f in findings if f.status is Status.FAIL]
        lines = "; ".join(f"{f.id}: expected {f.expected}, the plan has {f.actual}" for f in failed)
        super().__init__(f"the requested stack cannot work: {lines}",
                         hint=" | ".join(f.hint for f in failed if f.hint) or None)
        self.findings = list(findings)


@dataclass(frozen=True)
class PlanOptions:
    """Choices the profile schema has no key for (or that a person overrides for one run)."""

    driver_branch: int | None = None
    driver_flavor: str | None = None  # open | proprietary
    cuda: Version | None = None
    gpu: str | None = None  # a GPU name from the knowledge base (H100 SXM, A100 SXM 80GB, ...)


@dataclass(frozen=True)
class Plan:
    profile: str
    driver_branch: int
    driver_flavor: str
    driver_version: Version | None  # an exact driver, when the profile pins one
    cuda: Version
    cudnn: str  # "" (not installed), "9" (newest 9.x), "9.8.0" (pinned)
    nccl: str  # "" (not installed), "*" (newest), "2.26.2" (pinned)
    python: Version
    torch: Version  # release, major.minor
    torch_variant: Version | None  # None: the CPU build
    pip_packages: tuple[str, ...]
    gpu: kb.GpuSpec | None
    compute_capability: Version | None
    notes: tuple[str, ...] = ()  # how each value was chosen, for --check output

    @property
    def torch_tag(self) -> str:
        return "cpu" if self.torch_variant is None else kb.cuda_tag(self.torch_variant)


def _spec_version(spec: VersionSpec | None) -> Version | None:
    """The version a requirement names: its pin, else its minimum."""
    if spec is None or spec.is_any:
        return None
    return spec.pinned or spec.minimum


def _gpu_of(profile: Profile, name: str | None) -> kb.GpuSpec | None:
    """The GPU to plan for: --gpu, else the oldest generation among the profile's models (the stack
    must run on every one of them)."""
    if name:
        try:
            return kb.gpu_spec(name)
        except kb.UnknownKnowledgeError as exc:
            raise BadInputError(str(exc), where=f"--gpu {name}") from None
    found: list[kb.GpuSpec] = []
    for model in profile.gpu.models:
        spec = kb.find_gpu_spec(model)
        if spec is not None:
            found.append(spec)
            continue
        # profiles match by substring of nvidia-smi's product name: every known GPU that matches
        found.extend(g for g in kb.gpu_specs() if any(model.lower() in n.lower() for n in (g.name, *g.names)))
    return min(found, key=lambda g: g.compute_capability) if found else None


def _torch_release(profile: Profile, python: Version) -> Version:
    """The reference release where the profile admits it and it supports the Python; else the newest
    known release that does both; else what the profile names (validation then says why it fails)."""
    spec = dict(profile.python.packages).get("torch")
    reference = kb.svd_pipeline().reference_torch.truncate(2)
    candidates = [r.version for r in kb.torch_releases()
                  if (spec is None or spec.is_any or spec.contains(r.version)) and r.supports_python(python)]
    if reference in candidates:
        return reference
    if candidates:
        return max(candidates)
    return (_spec_version(spec) or reference).truncate(2)


def _pip_requirement(name: str, spec: VersionSpec | None, reference: Version | None) -> str:
    """An exact-as-possible pip requirement: the profile's pin, else the reference release where the
    profile admits it, else the profile's own requirement text."""
    if spec is not None and spec.pinned is not None:
        return f"{name}=={spec.pinned}.*" if len(spec.pinned.parts) < 3 else f"{name}=={spec.pinned}"
    if reference is not None and (spec is None or spec.contains(reference)):
        return f"{name}=={reference.truncate(2)}.*"
    if spec is None or spec.is_any:
        return name
    return name + spec.text.replace(" ", "")


def plan_for(profile: Profile, options: PlanOptions | None = None) -> Plan:
    """Make the profile's requirements concrete. Pure: reads the profile and the knowledge base."""
    options = options or PlanOptions()
    notes: list[str] = []
    gpu = _gpu_of(profile, options.gpu)
    cc = gpu.compute_capability if gpu is not None else profile.gpu.min_compute_capability
    python = (_spec_version(profile.python.version) or kb.svd_pipeline().reference_python).truncate(2)
    torch = _torch_release(profile, python)
    release = kb.find_torch_release(torch)

    # the torch wheel's CUDA: the profile's, else the newest the release ships that carries code for the GPU
    torch_variant: Version | None
    if profile.python.torch_cpu:
        torch_variant = None
    elif (wanted := _spec_version(profile.python.torch_cuda)) is not None:
        torch_variant = wanted.truncate(2)
    elif release is not None:
        fitting = [v for v in sorted(release.cuda_variants, reverse=True)
                   if cc is None or _cuda_runs_on(v, torch, cc)]
        torch_variant = (fitting or sorted(release.cuda_variants, reverse=True))[0]
        notes.append(f"torch {torch} wheel for CUDA {torch_variant}: the newest variant that carries code for the GPU")
    else:
        torch_variant = None

    if options.cuda is not None:
        cuda = options.cuda.truncate(2)
    elif (toolkit := _spec_version(profile.cuda.toolkit)) is not None:
        cuda = toolkit.truncate(2)
    elif torch_variant is not None:
        cuda = torch_variant
        notes.append(f"CUDA toolkit {cuda}: the same CUDA as the torch wheel")
    else:
        cuda = kb.known_cuda_versions()[0].truncate(2)
        notes.append(f"CUDA toolkit {cuda}: the newest svdops knows")

    if options.driver_flavor:
        flavor = options.driver_flavor
    elif profile.driver.flavor:
        flavor = profile.driver.flavor
    else:
        flavor = "open" if cc is None or cc >= kb.open_module_min_cc() else "proprietary"
        notes.append(f"{flavor} kernel modules: " + ("the GPU generation supports them" if flavor == "open"
                                                     else "the GPU predates Turing"))

    driver_version: Version | None = None
    pinned_driver = profile.driver.version.pinned if profile.driver.version is not None else None
    if pinned_driver is not None and len(pinned_driver.parts) >= 2:
        driver_version = pinned_driver
    if options.driver_branch is not None:
        branch = options.driver_branch
    elif pinned_driver is not None:
        branch = pinned_driver.major
    else:
        needs = [kb.min_driver_for_cuda(v).min_driver_ga for v in (cuda, torch_variant)
                 if v is not None and kb.find_min_driver_for_cuda(v) is not None]
        floor = _spec_version(profile.driver.version)
        if floor is not None:
            needs.append(floor)
        minimum = max(needs) if needs else Version((0,))
        found = kb.driver_branch_for(minimum, want_open=flavor == "open")
        if found is None:
            raise BadInputError(f"no driver branch svdops knows reaches {minimum} ({flavor} modules)",
                                where=f"{profile.source}: driver",
                                hint="give one with --driver-branch, or lower cuda.toolkit / python.torch_cuda")
        branch = found.branch
        notes.append(f"driver branch {branch}: the lowest {flavor} branch with a driver >= {minimum}")

    cudnn = _library_version(profile.cuda.cudnn)
    nccl = _library_version(profile.cuda.nccl, any_ok=True)
    packages = dict(profile.python.packages)
    pip = [f"torch=={torch}.*"]
    pipeline = kb.svd_pipeline()
    reference = kb.find_library_requirements("diffusers", pipeline.reference_diffusers)
    diffusers_ref: Version | None = pipeline.reference_diffusers
    if reference is not None and (python < reference.min_python
                                  or (reference.min_torch is not None and torch < reference.min_torch)):
        # today's diffusers needs a newer Python or torch: let pip pick the newest that installs
        diffusers_ref = None
        notes.append(f"diffusers: the newest release for Python {python} and torch {torch} "
                     f"(diffusers {pipeline.reference_diffusers} needs Python >= {reference.min_python})")
    if diffusers_ref is None and packages.get("diffusers") is None:
        pip.append(f"diffusers>={pipeline.diffusers_min}")
    else:
        pip.append(_pip_requirement("diffusers", packages.get("diffusers"), diffusers_ref))
    pip.append(_pip_requirement("transformers", packages.get("transformers"), None))
    for name, spec in sorted(packages.items()):
        if name not in ("torch", "diffusers", "transformers", "svdops"):
            pip.append(_pip_requirement(name, spec, None))
    return Plan(profile.name, branch, flavor, driver_version, cuda, cudnn, nccl, python, torch, torch_variant,
                tuple(pip), gpu, cc, tuple(notes))


def _library_version(spec: VersionSpec | None, *, any_ok: bool = False) -> str:
    if spec is None:
        return ""
    if spec.is_any:
        return "*" if any_ok else ""
    chosen = _spec_version(spec)
    if chosen is None:
        return "*" if any_ok else ""
    # a minimum ('>=9.1') installs the newest of that major; only a pin names an exact package version
    return str(chosen) if spec.pinned is not None else str(chosen.major)


def _cuda_runs_on(cuda: Version, torch: Version, cc: Version) -> bool:
    archs = kb.torch_arch_list(torch, cuda)
    if archs is not None:
        return kb.arch_runs_on(archs, cc)
    support = kb.arch_support(cuda.major)
    return support is None or cc >= support.min_cc


PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL


def _branch_driver(plan: Plan) -> Version:
    """The newest driver the branch can bring (or the pinned one): what requirements are judged against."""
    return plan.driver_version or Version((plan.driver_branch, 999, 999))


def _driver_hint(minimum: Version, plan: Plan) -> str:
    ccs = (plan.compute_capability,) if plan.compute_capability is not None else ()
    package = kb.driver_package(minimum, ccs)
    if package is None:
        return f"no driver branch svdops knows reaches {minimum}: lower the CUDA version"
    branch = re.sub(r"\D", "", package.split("-")[2])
    return (f"--driver-branch {branch}  "
            f"(what `svdops check` would suggest: sudo apt-get install -y {package} && sudo reboot)")


def validate_plan(plan: Plan) -> list[Finding]:
    """Every judgement of the combination, in a stable order. Pure."""
    out: list[Finding] = []
    driver = _branch_driver(plan)
    branches = {b.branch: b for b in kb.knowledge().driver_branches}
    known = ", ".join(str(b) for b in sorted(branches))

    row = branches.get(plan.driver_branch)
    if row is None:
        out.append(Finding("provision.driver.branch", "driver branch is one svdops knows", FAIL,
                           f"one of {known}", str(plan.driver_branch),
                           hint=f"--driver-branch with one of {known}"))
    elif plan.driver_flavor == "open" and not row.open:
        out.append(Finding("provision.driver.branch", "driver branch has open kernel modules", FAIL,
                           "a branch with -open packages", f"{plan.driver_branch} has none",
                           hint="--driver-flavor proprietary, or a newer --driver-branch"))
    elif row.ended(kb.knowledge().as_of):
        ccs = (plan.compute_capability,) if plan.compute_capability is not None else ()
        move_to = [b for b in kb.supported_branches() if b.branch > row.branch and all(b.drives(cc) for cc in ccs)]
        out.append(Finding("provision.driver.branch", "driver branch is supported by NVIDIA", WARN,
                           "a supported branch", f"{row.label}: no more security fixes",
                           hint=f"--driver-branch {move_to[0].branch} ({move_to[0].label})" if move_to
                           else "no supported branch drives this GPU"))
    else:
        out.append(Finding("provision.driver.branch", "driver branch is one svdops knows", PASS, known,
                           f"{row.label}"))
    if plan.driver_version is not None and plan.driver_version.major != plan.driver_branch:
        out.append(Finding("provision.driver.version", "pinned driver is in the branch", FAIL,
                           f"a {plan.driver_branch}.x driver", str(plan.driver_version),
                           hint=f"--driver-branch {plan.driver_version.major}, or a {plan.driver_branch}.x pin"))

    cc = plan.compute_capability
    gpu = plan.gpu.name if plan.gpu is not None else (f"compute capability {cc}" if cc is not None else "")
    if cc is not None:
        if plan.driver_flavor == "open" and cc < kb.open_module_min_cc():
            out.append(Finding("provision.driver.flavor", "kernel modules suit the GPU", FAIL,
                               f"proprietary modules for compute capability < {kb.open_module_min_cc()}",
                               f"open modules on {gpu}", hint="--driver-flavor proprietary"))
        elif plan.driver_flavor == "proprietary" and cc >= kb.open_module_required_cc():
            out.append(Finding("provision.driver.flavor", "kernel modules suit the GPU", FAIL,
                               f"open modules from compute capability {kb.open_module_required_cc()}",
                               f"proprietary modules on {gpu}", hint="--driver-flavor open"))
        else:
            out.append(Finding("provision.driver.flavor", "kernel modules suit the GPU", PASS,
                               "open on Turing+, required on Blackwell", f"{plan.driver_flavor} on {gpu}"))

    req = kb.find_min_driver_for_cuda(plan.cuda)
    if req is None:
        out.append(Finding("provision.cuda.known", "CUDA toolkit is one svdops has driver data for", FAIL,
                           "one of " + ", ".join(str(v) for v in kb.known_cuda_versions()[:6]) + ", ...",
                           f"CUDA {plan.cuda}", hint="--cuda with a known version, or update svdops' knowledge"))
    elif req.level(driver) == "full":
        out.append(Finding("provision.driver.cuda", "driver runs the CUDA toolkit", PASS,
                           f"driver >= {req.min_driver_ga}", f"branch {plan.driver_branch}"))
    else:
        out.append(Finding("provision.driver.cuda", "driver runs the CUDA toolkit", FAIL,
                           f"driver >= {req.min_driver_ga} for CUDA {plan.cuda}",
                           f"branch {plan.driver_branch} ("
                           + (str(driver) if plan.driver_version else f"at most {plan.driver_branch}.x") + ")",
                           hint=_driver_hint(req.min_driver_ga, plan)))

    if cc is not None:
        support = kb.arch_support(plan.cuda.major)
        if support is not None and cc < support.min_cc:
            out.append(Finding("provision.cuda.gpu", "CUDA toolkit builds for the GPU", FAIL,
                               f"compute capability >= {support.min_cc} for CUDA {plan.cuda.major}",
                               f"{gpu} ({cc})", hint=f"--cuda {plan.cuda.major - 1}.x (CUDA {plan.cuda.major} "
                                                     f"dropped {', '.join(support.dropped)})"))

    release = kb.find_torch_release(plan.torch)
    if release is None:
        out.append(Finding("provision.torch.release", "torch release is one svdops knows", FAIL,
                           "a release in svdops' knowledge", f"torch {plan.torch}",
                           hint="pin python.packages.torch in the profile to a known release"))
        return out
    if not release.supports_python(plan.python):
        out.append(Finding("provision.torch.python", "torch supports the Python", FAIL,
                           f"Python {release.python_min}-{release.python_max} for torch {release.version}",
                           f"Python {plan.python}", hint=f"python.version: '{release.python_max}' in the profile"))
    if plan.torch_variant is not None:
        variants = ", ".join(str(v) for v in release.cuda_variants)
        if plan.torch_variant not in release.cuda_variants:
            out.append(Finding("provision.torch.variant", "torch ships a wheel for that CUDA", FAIL,
                               f"one of {variants} for torch {release.version}", f"CUDA {plan.torch_variant}",
                               hint=f"python.torch_cuda: '{max(release.cuda_variants)}' in the profile "
                                    f"({kb.torch_index_url(max(release.cuda_variants))})"))
        wheel_req = kb.find_min_driver_for_cuda(plan.torch_variant)
        if wheel_req is not None:
            level = wheel_req.level(driver)
            status = {"full": PASS, "compat": WARN}.get(level, FAIL)
            actual = f"branch {plan.driver_branch}" + {"compat": " (minor-version compatibility only: no PTX JIT)",
                                                       "none": ": CUDA fails to initialise"}.get(level, "")
            out.append(Finding("provision.driver.torch", "driver runs the torch wheel", status,
                               f"driver >= {wheel_req.min_driver_ga} for the {plan.torch_tag} wheel", actual,
                               hint="" if status is PASS else _driver_hint(wheel_req.min_driver_ga, plan)))
        if cc is not None and not _cuda_runs_on(plan.torch_variant, plan.torch, cc):
            out.append(Finding("provision.torch.arch", "torch wheel carries code for the GPU", FAIL,
                               f"a build with sm_{cc.major}{cc.minor} or older PTX", f"torch {plan.torch} "
                               f"{plan.torch_tag} on {gpu}", hint="python.torch_cuda: an older CUDA variant "
                                                                  "that still builds for this GPU"))
    return out


def check_plan(plan: Plan) -> list[Finding]:
    """validate_plan, raising ProvisionPlanError (exit 2) when anything failed."""
    findings = validate_plan(plan)
    if any(f.status is Status.FAIL for f in findings):
        raise ProvisionPlanError(findings)
    return findings


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "driver_branch": plan.driver_branch, "driver_flavor": plan.driver_flavor,
        "driver_version": str(plan.driver_version) if plan.driver_version else None,
        "cuda": str(plan.cuda), "cudnn": plan.cudnn, "nccl": plan.nccl, "python": str(plan.python),
        "torch": str(plan.torch), "torch_variant": plan.torch_tag, "pip": list(plan.pip_packages),
        "gpu": plan.gpu.name if plan.gpu else None,
        "compute_capability": str(plan.compute_capability) if plan.compute_capability else None,
        "notes": list(plan.notes),
    }


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The plan as plain data (what the CLI prints and request.json records)."""
    return plan_document(plan)


# --- storage: what may be destroyed, and where arrays go ----------------------------------------------

# udev's by-id names: letters, digits and . _ : + - (it turns spaces into _); no '/', so no '..'
BY_ID = re.compile(r"/dev/disk/by-id/[A-Za-z0-9][A-Za-z0-9._:+-]*")
# /dev/md/NAME and mdadm --name=NAME: a plain name, md's 32-byte limit
ARRAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
# absolute, each part starting with a letter, digit or _ (so no '.', '..' or hidden parts), no spaces
# or shell characters, no trailing '/'
MOUNT_POINT = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
# mounting over these hides the system: refused as they are, and (first group) anything below them
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                "/sys", "/usr")
SYSTEM_DIRS = ("/", "/home", "/opt", "/root", "/srv", "/tmp", "/var", "/var/lib", "/var/log", "/mnt", "/media")
STORAGE_ARRAYS = ("scratch", "data")
# the mode of a mounted array's root, as a string ('' = the role's default on a new filesystem): YAML
# reads 1777 unquoted as a decimal number, which is not mode 1777
MODE = re.compile(r"[0-7]?[0-7]{3}")
GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def by_id_problem(path: object) -> str | None:
    """Why `path` is not a disk svdops may name (None when it is one)."""
    if not isinstance(path, str):
        return f"expected a /dev/disk/by-id/ path, got {type(path).__name__} {path!r}"
    if not path.startswith("/dev/disk/by-id/"):
        return (f"{path!r} is not a /dev/disk/by-id/ path (kernel names such as /dev/nvme0n1 change order "
                f"between boots, and a bare name matches nothing)")
    if not BY_ID.fullmatch(path):
        return f"{path!r} has characters udev never puts in a by-id name (only letters, digits and . _ : + -)"
    return None


def mount_point_problem(path: object) -> str | None:
    """Why `path` is no place to mount an array (None when it is one)."""
    if isinstance(path, str) and (path in SYSTEM_DIRS or any(path == t or path.startswith(t + "/")
                                                             for t in SYSTEM_TREES)):
        return f"{path!r} holds the system: mounting an array there would hide it"
    if not isinstance(path, str) or not MOUNT_POINT.fullmatch(path):
        return (f"{path!r} is not a plain absolute path (each part starts with a letter, digit or _; "
                f"no '..', spaces or shell characters; no trailing '/')")
    return None


def array_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name):
        return (f"{name!r} is not an md array name (1-32 letters, digits, _ or -, starting with a letter or "
                f"digit: the array becomes /dev/md/NAME)")
    return None


def check_storage_vars(variables: Mapping[str, object], *, where: str) -> None:
    """The storage role's svdops_storage_* variables that reach mdadm, mkfs, mount and wipefs (array
    names, mount points, disk allowlists, svdops_storage_wipe) as given; BadInputError (exit 2) names
    the first bad one. Unset variables keep the role's defaults, which are valid."""
    problems: list[str] = []
    for array in STORAGE_ARRAYS:
        key = f"svdops_storage_{array}_name"
        if key in variables and (why := array_name_problem(variables[key])):
            problems.append(f"{key}: {why}")
        key = f"svdops_storage_{array}_mount"
        if key in variables and (why := mount_point_problem(variables[key])):
            problems.append(f"{key}: {why}")
    for key in (*(f"svdops_storage_{a}_devices" for a in STORAGE_ARRAYS), "svdops_storage_wipe"):
        value = variables.get(key)
        if value is None:
            continue
        if not isinstance(value, list | tuple):
            problems.append(f"{key}: expected a list of /dev/disk/by-id/ paths, got {value!r}")
            continue
        problems += [f"{key}: {why}" for item in value if (why := by_id_problem(item))]
    for array in STORAGE_ARRAYS:
        mode = variables.get(f"svdops_storage_{array}_mode", "")
        group = variables.get(f"svdops_storage_{array}_group", "")
        if mode != "" and not (isinstance(mode, str) and MODE.fullmatch(mode)):
            problems.append(f"svdops_storage_{array}_mode: {mode!r} is not a mode (octal digits in quotes, "
                            f"e.g. '1777')")
        if group != "" and not (isinstance(group, str) and GROUP.fullmatch(group)):
            problems.append(f"svdops_storage_{array}_group: {group!r} is not a group name")
    timeout = variables.get("svdops_storage_device_timeout_s", 90)
    if not (type(timeout) is int and 1 <= timeout <= 9999):
        problems.append(f"svdops_storage_device_timeout_s: {timeout!r} is not whole seconds (1 to 9999)")
    names = [variables.get(f"svdops_storage_{a}_name", a) for a in STORAGE_ARRAYS]
    mounts = [variables.get(f"svdops_storage_{a}_mount", f"/{a}") for a in STORAGE_ARRAYS]
    if not problems and names[0] == names[1]:
        problems.append(f"svdops_storage_scratch_name and svdops_storage_data_name are both {names[0]!r}")
    if not problems and mounts[0] == mounts[1]:
        problems.append(f"svdops_storage_scratch_mount and svdops_storage_data_mount are both {mounts[0]!r}")
    if problems:
        raise BadInputError("; ".join(problems), where=where,
                            hint="array names like scratch; mount points like /scratch or /mnt/data; disks as "
                                 "/dev/disk/by-id/... (ls -l /dev/disk/by-id/ on the host)")


def wipes_by_host(items: Sequence[str], hosts: Mapping[str, Mapping[str, object]]) -> dict[str, tuple[str, ...]]:
    """--wipe HOST=/dev/disk/by-id/... (or a bare path when the run has one host) -> host -> disks.

    `hosts`: every host of the run -> its storage variables (checked). A disk must be a by-id path
    written exactly as that host's allowlist (svdops_storage_*_devices) writes it: the storage role
    compares the strings, so nothing else unlocks a disk. BadInputError (exit 2) otherwise."""
    out: dict[str, list[str]] = {}
    for item in items:
        where = f"--wipe {item}"
        host, sep, path = item.partition("=")
        if not sep:
            if len(hosts) != 1:
                raise BadInputError("this run has several hosts: say which one the disk is on", where=where,
                                    hint=f"--wipe HOST={item} with HOST one of {', '.join(sorted(hosts))}")
            host, path = next(iter(hosts)), item
        if host not in hosts:
            raise BadInputError(f"{host!r} is not a host of this run", where=where,
                                hint=f"hosts here: {', '.join(sorted(hosts)) or 'none'} (after --limit)")
        if why := by_id_problem(path):
            raise BadInputError(why, where=where, hint="ls -l /dev/disk/by-id/ on the host, and name the disk "
                                                       "exactly as the inventory's allowlist does")
        listed = [d for a in STORAGE_ARRAYS
                  if isinstance(devices := hosts[host].get(f"svdops_storage_{a}_devices"), list | tuple)
                  for d in devices]
        if path not in listed:
            raise BadInputError(f"{path} is in no disk allowlist of {host}", where=where,
                                hint="--wipe unlocks only disks listed in svdops_storage_scratch_devices or "
                                     "svdops_storage_data_devices for that host")
        if path not in out.setdefault(host, []):
            out[host].append(path)
    return {h: tuple(d) for h, d in out.items()}
