"""The Python environment: interpreter, conda env, required packages, diffusers/transformers needs."""

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
    WARN,
    env_probed,
    installed_version,
    not_available,
    pip_install,
    torch_fix_command,
    torch_install_command,
    versus_spec,
)
from svdops.versions import Version


def python_version(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    spec = profile.python.version
    if spec is None:
        return
    title = "Python version"
    have = facts.python.python_version
    target = spec.pinned or spec.minimum
    hint = _new_env_command(facts, profile, target) if target is not None else ""
    yield versus_spec("python.version", title, f"Python {spec}", spec, have,
                      not_available(facts, "python.python_version"), hint)


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
        yield Finding("python.env", title, UNKNOWN, f"a {want} environment",
                      not_available(facts, "python.executable"))
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
        have = installed_version(facts, name)
        if name == "torch":
            target = spec.minimum or kb.svd_pipeline().reference_torch
            hint = (torch_install_command(facts, target, None) if profile.python.torch_cpu
                    else torch_fix_command(facts, target))
        else:
            hint = pip_install(facts, shlex.quote(f"{name}{spec.text}" if not spec.is_any else name))
        if have is None and not env_probed(facts):
            yield Finding("python.package", title, UNKNOWN, expected, not_available(facts, "python.packages"),
                          hint=hint, subject=name)
        elif have is None:
            yield Finding("python.package", title, FAIL, expected, "not installed", hint=hint, subject=name)
        elif spec.contains(have):
            yield Finding("python.package", title, PASS, expected, str(have), subject=name)
        else:
            yield Finding("python.package", title, FAIL, expected, str(have), hint=hint, subject=name)


def _library_compat(facts: HostFacts, profile: Profile, name: str) -> Iterator[Finding]:
    rule_id = f"python.{name}-compat"
    have = installed_version(facts, name)
    if have is None:
        return
    title = f"{name} {have} has the Python and torch it needs"
    req = kb.find_library_requirements(name, have)
    if req is None and kb.library_is_newer(name, have):
        # a newer release may have raised its Python or torch minimum: never a pass
        yield Finding(rule_id, title, WARN, f"what {name} {have} needs", kb.newer_than_knowledge(f"{name} {have}"))
        return
    if req is None:
        yield Finding(rule_id, title, SKIP, f"what {name} {have} needs",
                      f"{name} {have} is older than svdops' knowledge base covers ({kb.version()})")
        return
    expected = f"Python >= {req.min_python}" + (f", torch >= {req.min_torch}" if req.min_torch else "")
    py, torch_v = facts.python.python_version, installed_version(facts, "torch")
    problems = []
    if py is not None and py < req.min_python:
        problems.append(f"Python {py}")
    if req.min_torch is not None and torch_v is not None and torch_v < req.min_torch:
        problems.append(f"torch {torch_v}")
    if problems:
        hint = (torch_fix_command(facts, kb.svd_pipeline().reference_torch)
                if not (py is not None and py < req.min_python)
                else _new_env_command(facts, profile, kb.svd_pipeline().reference_python))
        yield Finding(rule_id, title, FAIL, expected, f"{' and '.join(problems)}: {name} {have} cannot import",
                      hint=hint)
    elif py is None:
        # required where the profile names the library (it then must import): could not look is unknown
        required = name in dict(profile.python.packages)
        yield Finding(rule_id, title, UNKNOWN if required else WARN, expected,
                      not_available(facts, "python.python_version"))
    else:
        yield Finding(rule_id, title, PASS, expected, f"Python {py}" + (f", torch {torch_v}" if torch_v else ""))


def diffusers_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    yield from _library_compat(facts, profile, "diffusers")


def transformers_compat(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    yield from _library_compat(facts, profile, "transformers")
