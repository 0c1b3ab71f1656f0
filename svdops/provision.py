"""`svdops provision`: bring hosts to a profile with the Ansible playbooks in playbooks/, through
ansible-runner's Python API. The only module that imports ansible_runner.

Three steps, each its own function so tests can take them one at a time:

1. plan_for(profile, options) -> Plan: what the profile asks for, made concrete (driver branch, CUDA,
   cuDNN, NCCL, Python, torch release and CUDA variant, GPU generation) with svdops' knowledge base.
2. validate_plan(plan) -> findings: whether that combination can work (the driver runs the toolkit and
   the torch wheel, the GPU runs what they were built for, the open modules suit the GPU...), with the
   same kind of hints `svdops check` gives. Any fail stops the run before Ansible starts (exit 2).
3. run_provision(request) -> ProvisionResult: one fresh run folder, ansible-runner on site.yml, live
   progress from runner events, and a per-host recap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

import svdops
from svdops import knowledge as kb
from svdops.errors import BadInputError, InterruptedRunError, MissingDependencyError, RunFailedError
from svdops.findings import Finding, Status
from svdops.inventory import load_inventory, parse_host_arg, select_targets
from svdops.profiles import Profile, VersionSpec
from svdops.versions import Version

PLAYBOOKS_ENV = "SVDOPS_PLAYBOOKS"
RUNS_DIR_ENV = "SVDOPS_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("svdops-runs") / "provision"
ROLES = ("preflight", "nvidia_driver", "cuda_toolkit", "cudnn", "nccl", "fabricmanager", "dcgm", "conda",
         "storage", "validate")

# extra vars that carry a validated choice: setting them with -e would skip the validation
VALIDATED_VARS = {
    "svdops_driver_branch": "--driver-branch", "svdops_driver_flavor": "--driver-flavor",
    "svdops_driver_version": "driver.version in the profile", "svdops_cuda_version": "--cuda",
    "svdops_cudnn_version": "cuda.cudnn in the profile", "svdops_nccl_version": "cuda.nccl in the profile",
    "svdops_torch_variant": "python.torch_cuda in the profile", "svdops_python_version": "python.version",
    "svdops_pip_packages": "python.packages in the profile", "svdops_allow_reboot": "--allow-reboot",
    "svdops_storage_wipe": "--wipe",
}

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 3


class ProvisionPlanError(BadInputError):
    """The requested combination cannot work; `findings` says why, each with a hint."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        failed = [f for f in findings if f.status is Status.FAIL]
        lines = "; ".join(f"{f.id}: expected {f.expected}, the plan has {f.actual}" for f in failed)
        super().__init__(f"the requested stack cannot work: {lines}",
                         hint=" | ".join(f.hint for f in failed if f.hint) or None)
        self.findings = list(findings)


# --- 1. the plan ------------------------------------------------------------------------------------

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
    nearest = kb.nearest_torch_arch_list(torch, cuda)
    if nearest is not None:
        return kb.arch_runs_on(nearest[1], cc)
    support = kb.arch_support(cuda.major)
    return support is None or cc >= support.min_cc


# --- 2. validation -----------------------------------------------------------------------------------

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
    else:
        out.append(Finding("provision.driver.branch", "driver branch is one svdops knows", PASS, known,
                           str(plan.driver_branch)))
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
    if req is None or not req.exact:
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


# --- 3. the run -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProvisionRequest:
    profile: Profile
    inventory: Path | None = None
    hosts: tuple[str, ...] = ()
    identity: Path | None = None
    check: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    limit: str | None = None
    allow_reboot: bool = False
    wipe: tuple[str, ...] = ()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    options: PlanOptions = field(default_factory=PlanOptions)
    forks: int = 16
    runs_dir: Path | None = None
    playbooks: Path | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One thing worth showing while the play runs. kind: play | task | ok | changed | failed |
    unreachable | skipped | message."""

    kind: str
    host: str = ""
    task: str = ""
    message: str = ""


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class ProvisionResult:
    run_dir: Path
    status: str  # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    check: bool
    recap: dict[str, HostRecap]
    failures: list[ProgressEvent]
    plan: dict[str, Any]  # host -> role -> what it installs (set_stats of the roles)
    reboot_required: dict[str, bool]
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        if any(r.unreachable for r in self.recap.values()):
            return EXIT_UNREACHABLE
        if any(r.failed for r in self.recap.values()) or self.status != "successful":
            return EXIT_FAILED
        return EXIT_OK


def playbooks_dir(explicit: Path | None = None) -> Path:
    """site.yml's folder: $SVDOPS_PLAYBOOKS, the source tree's playbooks/, then <prefix>/share/svdops/playbooks."""
    candidates = [explicit] if explicit else []
    if os.environ.get(PLAYBOOKS_ENV):
        candidates.append(Path(os.environ[PLAYBOOKS_ENV]))
    candidates += [Path(svdops.__file__).resolve().parent.parent / "playbooks",
                   Path(sys.prefix) / "share" / "svdops" / "playbooks"]
    for candidate in candidates:
        if candidate is not None and (candidate / "site.yml").is_file():
            return candidate.resolve()
    raise BadInputError("cannot find the svdops playbooks (site.yml)",
                        where=", ".join(str(c) for c in candidates if c is not None),
                        hint=f"set ${PLAYBOOKS_ENV} to the playbooks/ folder of an svdops checkout")


def new_run_dir(profile: str, base: Path | None = None, now: dt.datetime | None = None) -> Path:
    """A fresh folder per run: <base>/<UTC>-<profile>[-N]. Fresh matters: ansible-runner keeps the
    cmdline (e.g. --check) in its private data dir and would reuse it in a later run."""
    base = base or Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", profile)
    for n in range(1, 1000):
        candidate = base / (f"{stamp}-{safe}" if n == 1 else f"{stamp}-{safe}-{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInputError(f"cannot create the run folder: {exc.strerror}", where=str(candidate)) from exc
    raise BadInputError("too many runs in one second", where=str(base))


def extra_vars(plan: Plan, request: ProvisionRequest) -> dict[str, Any]:
    """The profile, through the plan, as the playbooks' svdops_* variables; -e values on top."""
    profile = request.profile
    bad = sorted(set(request.extra_vars) & set(VALIDATED_VARS))
    if bad:
        hints = ", ".join(f"{k}: use {VALIDATED_VARS[k]}" for k in bad)
        raise BadInputError(f"-e cannot set {', '.join(bad)}: these are validated before the run", hint=hints)
    out: dict[str, Any] = {
        "svdops_profile_name": profile.name,
        "svdops_profile_files": [str(p.resolve()) for p in profile.chain],
        "svdops_driver_branch": str(plan.driver_branch),
        "svdops_driver_flavor": plan.driver_flavor,
        "svdops_driver_version": str(plan.driver_version) if plan.driver_version else "",
        "svdops_cuda_version": f"{plan.cuda.major}.{plan.cuda.minor}",
        "svdops_cudnn_version": plan.cudnn,
        "svdops_nccl_version": plan.nccl,
        "svdops_python_version": f"{plan.python.major}.{plan.python.minor}",
        "svdops_torch_variant": plan.torch_tag,
        "svdops_torch_index_url": kb.torch_index_url(plan.torch_variant),
        "svdops_pip_packages": list(plan.pip_packages),
        "svdops_package_spec": f"svdops=={svdops.__version__}",
        "svdops_allow_reboot": request.allow_reboot,
        "svdops_storage_wipe": list(request.wipe),
    }
    if profile.os.releases:
        out["svdops_supported_releases"] = list(profile.os.releases)
    scratch, data = profile.storage.scratch, profile.storage.data
    if scratch is not None:
        out["svdops_storage_scratch_level"] = scratch.level
        out["svdops_storage_scratch_min_devices"] = scratch.min_devices
    if data is not None:
        # RAID6 where the profile allows it: a second parity survives a rebuild on large HDDs
        out["svdops_storage_data_level"] = "raid6" if "raid6" in data.levels else data.levels[0]
        out["svdops_storage_data_min_devices"] = data.min_devices
    out.update(request.extra_vars)
    return out


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """-e KEY=VALUE (VALUE read as YAML, so lists and numbers work) or -e @FILE (YAML/JSON mapping)."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise BadInputError(f"cannot read extra vars: {exc}", where=str(path)) from exc
            if not isinstance(data, dict):
                raise BadInputError("extra vars file must hold a mapping", where=str(path))
            out.update(data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BadInputError("expected -e KEY=VALUE or -e @FILE", where=f"-e {item}")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        # a mapping out of KEY=VALUE is text that happens to hold ": ", not a structure anyone meant
        out[key] = value if isinstance(parsed, dict) else parsed
    return out


def _write_host_inventory(path: Path, hosts: Sequence[str], identity: Path | None) -> None:
    lines = ["[svdops]"]
    for text in hosts:
        target = parse_host_arg(text, identity=identity)
        parts = [shlex.quote(target.name), f"ansible_host={shlex.quote(target.address)}"]
        if target.port:
            parts.append(f"ansible_port={target.port}")
        if target.user:
            parts.append(f"ansible_user={shlex.quote(target.user)}")
        if target.identity:
            parts.append(f"ansible_ssh_private_key_file={shlex.quote(str(target.identity))}")
        lines.append(" ".join(parts))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _runner_env(run_dir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    env = {
        # ansible-runner starts ansible-playbook by name: it must find this interpreter's copy
        "PATH": venv_bin + (os.pathsep + path if path else ""),
        "LC_ALL": "C.UTF-8",  # ansible refuses to start under a non-UTF-8 locale
        "LANG": "C.UTF-8",
        # a multiplexing master outlives the run by a minute and holds the run's stdout open
        "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", "-o ControlMaster=no"),
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
    }
    # ansible-runner turns host key checking off unless told otherwise; svdops keeps it on unless the
    # caller's own environment turns it off (the VM tests do, for a VM whose key is new on every build)
    env["ANSIBLE_HOST_KEY_CHECKING"] = os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")
    return env


class _EventSink:
    """Turns ansible-runner events into ProgressEvents and keeps what the recap needs."""

    def __init__(self, on_progress: Callable[[ProgressEvent], None] | None) -> None:
        self.on_progress = on_progress
        self.failures: list[ProgressEvent] = []
        self.stats: dict[str, Any] = {}
        self.artifact_data: dict[str, Any] = {}

    def _emit(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        task = str(data.get("task") or "")
        role = data.get("role")
        label = f"{role} : {task}" if role and not task.startswith(f"{role} :") else task
        if name == "playbook_on_play_start":
            self._emit(ProgressEvent("play", task=str(data.get("play") or "")))
        elif name == "playbook_on_task_start":
            self._emit(ProgressEvent("task", task=label))
        elif name == "runner_on_ok":
            res = data.get("res") or {}
            changed = bool(res.get("changed"))
            message = _message(res)
            self._emit(ProgressEvent("changed" if changed else "ok", host, label, message))
            if message and res.get("msg") is not None and data.get("task_action", "").endswith("debug"):
                self._emit(ProgressEvent("message", host, label, message))
        elif name in ("runner_on_failed", "runner_item_on_failed") and not data.get("ignore_errors"):
            failure = ProgressEvent("failed", host, label, _message(data.get("res") or {}))
            self.failures.append(failure)
            self._emit(failure)
        elif name == "runner_on_unreachable":
            failure = ProgressEvent("unreachable", host, label, _message(data.get("res") or {}))
            self.failures.append(failure)
            self._emit(failure)
        elif name == "runner_on_skipped":
            self._emit(ProgressEvent("skipped", host, label))
        elif name == "playbook_on_stats":
            self.stats = dict(data)
            self.artifact_data = dict(data.get("artifact_data") or {})
        return True  # keep every event in the artifacts


def _message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg")
    if isinstance(msg, list):
        msg = " ".join(str(m) for m in msg)
    if msg:
        return " ".join(str(msg).split())
    stderr = str(res.get("stderr") or "").strip()
    return stderr.splitlines()[-1] if stderr else ""


def _recap(stats: Mapping[str, Any]) -> dict[str, HostRecap]:
    fields = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped",
              "rescued": "rescued", "ignored": "ignored"}
    hosts: set[str] = set()
    for key in fields:
        hosts.update((stats.get(key) or {}).keys())
    hosts.update((stats.get("processed") or {}).keys())
    recap = {h: HostRecap() for h in sorted(hosts)}
    for key, attr in fields.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(recap[host], attr, int(count))
    return recap


def _import_runner() -> Any:
    try:
        import ansible_runner
    except ImportError as exc:
        raise MissingDependencyError(f"ansible-runner is not installed ({exc})",
                                     hint="pip install 'ansible-runner>=2.4' 'ansible-core>=2.16'") from exc
    return ansible_runner


def run_provision(request: ProvisionRequest,
                  on_progress: Callable[[ProgressEvent], None] | None = None) -> ProvisionResult:
    """Validate the plan, then run site.yml once through ansible-runner; every outcome is in the result."""
    if not request.hosts and request.inventory is None:
        raise BadInputError("no hosts: give --inventory FILE or --host [USER@]HOST[:PORT]")
    plan = plan_for(request.profile, request.options)
    findings = check_plan(plan)
    for tag in (*request.tags, *request.skip_tags):
        if tag not in ROLES:
            raise BadInputError(f"unknown tag {tag!r}", hint=f"tags are the role names: {', '.join(ROLES)}")
    # a --limit that matches nothing, or a bad inventory, is a usage error before anything starts
    targets = select_targets(hosts=request.hosts, inventory=request.inventory, limit=request.limit,
                             identity=request.identity)
    if not targets:
        raise BadInputError("no hosts to provision", hint="check --limit against the inventory's groups")
    if request.inventory is not None:
        load_inventory(request.inventory)
    variables = extra_vars(plan, request)
    runner = _import_runner()
    playbooks = playbooks_dir(request.playbooks)

    run_dir = new_run_dir(request.profile.name, request.runs_dir)
    private = run_dir / "runner"
    private.mkdir()
    (run_dir / "tmp").mkdir()
    if request.inventory is not None:
        inventory = str(request.inventory.resolve())
    else:
        host_inventory = run_dir / "hosts.ini"
        _write_host_inventory(host_inventory, request.hosts, request.identity)
        inventory = str(host_inventory)

    cmdline = ["--check", "--diff"] if request.check else []
    if request.skip_tags:
        cmdline += ["--skip-tags", ",".join(request.skip_tags)]
    started = dt.datetime.now(dt.UTC)
    _write_json(run_dir / "request.json", {
        "profile": request.profile.name, "profile_file": str(request.profile.source), "check": request.check,
        "tags": list(request.tags), "skip_tags": list(request.skip_tags), "limit": request.limit,
        "inventory": inventory, "allow_reboot": request.allow_reboot, "wipe": list(request.wipe),
        "extra_vars": variables, "plan": _plan_json(plan), "findings": [asdict(f) for f in findings],
        "started": started.isoformat(), "svdops": svdops.__version__,
    })
    sink = _EventSink(on_progress)
    result = runner.run(
        private_data_dir=str(private),
        project_dir=str(playbooks),
        playbook=str(playbooks / "site.yml"),
        inventory=inventory,
        extravars=variables,
        tags=",".join(request.tags) or None,
        limit=request.limit,
        cmdline=shlex.join(cmdline) if cmdline else None,
        envvars=_runner_env(run_dir),
        forks=request.forks,
        ident="run",
        event_handler=sink,
        quiet=True,
    )
    status, rc = str(result.status), int(result.rc if result.rc is not None else -1)
    if not sink.stats and status == "canceled":
        raise InterruptedRunError("interrupted: the play did not finish", where=str(run_dir),
                                  hint=f"what ran is in {private / 'artifacts' / 'run' / 'stdout'}; rerun to finish")
    if not sink.stats:
        tail = _stdout_tail(private / "artifacts" / "run" / "stdout")
        raise RunFailedError(f"ansible-playbook stopped before the play ran (status {status}, rc {rc}): {tail}",
                             where=str(run_dir), hint=f"see {private / 'artifacts' / 'run' / 'stdout'}")
    recap = _recap(sink.stats)
    outcome = ProvisionResult(
        run_dir=run_dir, status=status, rc=rc, check=request.check, recap=recap, failures=sink.failures,
        plan=dict(sink.artifact_data.get("svdops_plan") or {}),
        reboot_required={h: bool(v) for h, v in (sink.artifact_data.get("svdops_reboot_required") or {}).items()},
        findings=findings,
    )
    _write_json(run_dir / "result.json", {
        "status": status, "rc": rc, "exit_code": outcome.exit_code, "check": request.check,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "recap": {h: asdict(r) for h, r in recap.items()},
        "failures": [asdict(f) for f in sink.failures], "plan": outcome.plan,
        "reboot_required": outcome.reboot_required, "artifacts": str(private / "artifacts" / "run"),
    })
    return outcome


def _plan_json(plan: Plan) -> dict[str, Any]:
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
    return _plan_json(plan)


def _stdout_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no output"
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
