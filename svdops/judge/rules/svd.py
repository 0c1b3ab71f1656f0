"""Whether this host runs today's SVD pipeline at all: the stack as a whole and the scenario's VRAM."""

from __future__ import annotations

import shlex
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
    choose_cuda_variant,
    compute_capabilities,
    cuda_suits_gpus,
    driver_install_command,
    driver_version_of,
    gib,
    installed_version,
    not_available,
    spec_admits,
    usable_devices,
)
from svdops.versions import Version


def _rebuild_stack_hint(facts: HostFacts, profile: Profile) -> str:
    """The commands that turn this host's stack into one that runs today's SVD pipeline."""
    pipe = kb.svd_pipeline()
    py = pipe.reference_python.truncate(2)
    release = kb.find_torch_release(pipe.reference_torch)
    steps: list[str] = []
    variant: Version | None = None
    if release is not None and (facts.gpus or profile.requires_gpu):
        driver, ccs = driver_version_of(facts), compute_capabilities(facts)
        variant = choose_cuda_variant(release, driver, ccs)
        if variant is None:
            fitting = [v for v in sorted(release.cuda_variants, reverse=True)
                       if cuda_suits_gpus(v, release.version, ccs)]
            variant = fitting[0] if fitting else max(release.cuda_variants)
            req = kb.find_min_driver_for_cuda(variant)
            if req is not None:
                steps.append(driver_install_command(req.min_driver_ga, facts))
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
    py = facts.python.python_version
    torch_v, diffusers = installed_version(facts, "torch"), installed_version(facts, "diffusers")
    if py is None and torch_v is None:
        yield Finding("svd.pipeline-stack", title, UNKNOWN, expected, not_available(facts, "python"))
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
        yield Finding("svd.pipeline-stack", title, UNKNOWN, expected,
                      f"{have}; {'Python' if py is None else 'torch'} {not_available(facts, 'python')}")
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
    if not spec_admits(profile.python.version, pythons, req.min_python):
        problems.append(f"python.version '{profile.python.version}' admits no Python >= {req.min_python}")
        edits.append(f"python.version: '>={req.min_python}'")
    if req.min_torch is not None and not spec_admits(torch_spec, releases, req.min_torch):
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
    # with MIG on, a process gets one MIG device: the largest slice is what the pipeline can have
    sized = [d for d in usable_devices(facts) if d.memory_mib is not None]
    if not sized:
        status = FAIL if facts.gpus == () and facts.note_for("gpus") is None else UNKNOWN
        actual = "no GPU" if status is FAIL else not_available(facts, "gpus")
        hint = "" if status is UNKNOWN else ("a GPU is needed for this scenario; use --profile ci-cpu "
                                             "(scenario tiny) on CPU-only hosts")
        if facts.gpus and all(g.mig_enabled and not g.mig_devices for g in facts.gpus):
            status, actual = FAIL, "MIG is on with no MIG device: no process can use a GPU"
            hint = ("create MIG devices (`sudo nvidia-smi mig -cgi <profile> -C`) or turn MIG off "
                    "(`sudo nvidia-smi -i <gpu> -mig 0`, then reset the GPU)")
        yield Finding("svd.vram", title, status, expected, actual, subject=name, hint=hint)
        return
    best = max(sized, key=lambda d: d.memory_mib or 0)
    best_gib = gib(best.memory_mib or 0)
    shown = f"{best.label}: {best_gib:.1f} GiB"
    if best.mig is not None:
        shown += (f" (a MIG slice: a process gets one MIG device, not the GPU's "
                  f"{gib(best.gpu.memory_total_mib or 0):.1f} GiB)")
    if best_gib >= scen.min_vram_gib:
        yield Finding("svd.vram", title, PASS, expected, shown, subject=name)
    else:
        lower = [s for s in kb.scenario_names() if kb.scenario(s).needs_gpu and kb.scenario(s).min_vram_gib <= best_gib]
        alt = f"set svd.scenario: {lower[0]} in the profile, or " if lower else ""
        mig = ("turn MIG off (`sudo nvidia-smi -i <gpu> -mig 0`, then reset the GPU) or make a larger MIG slice, or "
               if best.mig is not None else "")
        yield Finding("svd.vram", title, FAIL, expected, f"largest is {shown}",
                      hint=f"{alt}{mig}fit a GPU with >= {scen.min_vram_gib:g} GiB", subject=name)
