"""The core of `svdops facts` and `svdops check`: get a snapshot, judge it against a profile.

Facts come from exactly one source: the local host, a recorded folder, or a saved snapshot.
Nothing here prints or exits; the CLI renders the returned objects (svdops.judge.documents
turns them into the JSON and JUnit files), and svdops.judge.fleet_check does the same for many hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from svdops.errors import BadInputError, FactsError
from svdops.findings import Finding, Status, fails_exit, summarize
from svdops.host.facts import HostFacts
from svdops.host.shell import LocalShell, RecordedShell, RecordingShell, Shell
from svdops.judge.profiles import DEFAULT_PROFILE, Profile, load_profile


@dataclass(frozen=True)
class FactsSource:
    """Where facts come from. At most one of from_dir / facts_file; neither means this host."""

    from_dir: Path | None = None
    facts_file: Path | None = None
    bundle_dir: Path | None = None  # record raw outputs of a live host here
    python: str = "python3"
    use_nvml: bool = True

    def describe(self) -> str:
        if self.from_dir:
            return f"recorded:{self.from_dir}"
        if self.facts_file:
            return f"snapshot:{self.facts_file}"
        return "local"


def gather(source: FactsSource) -> HostFacts:
    """One HostFacts snapshot from the chosen source."""
    from svdops.host.probe.gather import gather_facts  # the probe layer loads only when facts are gathered

    if source.from_dir and source.facts_file:
        raise FactsError("give either --from-dir or --facts, not both", hint="pick one source of facts")
    if source.facts_file:
        return load_facts_file(source.facts_file)
    if source.from_dir:
        if source.bundle_dir:
            raise FactsError("--bundle records a live host; it cannot be combined with --from-dir")
        recorded = RecordedShell(source.from_dir)  # a missing folder is refused here, with its own message
        require_recorded_outputs(source.from_dir)
        return gather_facts(recorded, source=source.describe())
    require_local_python(source.python)
    shell: Shell = LocalShell()
    if source.bundle_dir:
        shell = RecordingShell(shell, source.bundle_dir)
    return gather_facts(shell, python=source.python, use_nvml=source.use_nvml, source="local")


def require_local_python(python: str) -> None:
    """A --python given as a path must be an executable file on this host: a typo is bad input, not a host
    whose packages all went missing. A bare name (python3) is looked up on PATH by the probe, as before."""
    if "/" not in python:
        return
    path = Path(python).expanduser()
    if not path.exists():
        raise BadInputError(
            "--python: no such interpreter",
            where=python,
            hint="give the target environment's interpreter, e.g. /opt/conda/envs/svd/bin/python",
        )
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BadInputError(
            "--python: not an executable file",
            where=python,
            hint="give the interpreter itself (…/bin/python), not its folder or a script",
        )


def require_recorded_outputs(folder: Path) -> None:
    """A replayed folder must hold at least one recorded probe output: an empty (or wrong) folder would
    otherwise judge a host about which nothing is known."""
    from svdops.host.probe.commands import ALL, HOSTNAME, RECORDED_ONLY

    keys = [c.key for c in (*ALL, *RECORDED_ONLY) if c is not HOSTNAME]
    if not any((folder / key).is_file() or (folder / f"{key}.rc").is_file() for key in keys):
        raise FactsError(
            "the folder holds no recorded outputs (none of the files `svdops facts --bundle` writes)",
            where=str(folder),
            hint="pass a folder written by `svdops facts --bundle DIR` (one host's folder, e.g. BUNDLE/HOST)",
        )


def load_facts_file(path: Path) -> HostFacts:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FactsError(
            "facts file not found", where=str(path), hint="write one with `svdops facts --json -o FILE`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FactsError(f"cannot read facts file: {exc}", where=str(path)) from exc
    return HostFacts.from_json(text, where=str(path))


@dataclass(frozen=True)
class CheckReport:
    facts: HostFacts
    profile: Profile
    findings: tuple[Finding, ...]
    allow_unknown: bool = False  # --allow-unknown: a check that could not look does not fail the exit code

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.findings)

    @property
    def unknown(self) -> int:
        """How many required checks could not look (reported as their own status, never as a pass)."""
        return sum(1 for f in self.findings if f.status is Status.UNKNOWN)

    @property
    def failed(self) -> bool:
        """The check did not pass: a check failed, or one could not look and unknowns are not allowed."""
        return any(fails_exit(f.status, allow_unknown=self.allow_unknown) for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0: nothing failed; 1: a check failed or could not look (warnings never fail a host;
        with allow_unknown, unknowns do not either)."""
        return 1 if self.failed else 0


def check_profile(name_or_path: str | None) -> Profile:
    """The profile a check judges against: the one named, else svd-host. Errors are ProfileErrors (exit 2)."""
    return load_profile(name_or_path or DEFAULT_PROFILE)


def run_check(facts: HostFacts, profile: Profile, *, allow_unknown: bool = False) -> CheckReport:
    """Judge one snapshot. The profile comes in loaded: a fleet loads (and validates) it once, not per host."""
    from svdops.judge.rules import evaluate

    return CheckReport(facts, profile, tuple(evaluate(facts, profile)), allow_unknown=allow_unknown)
