"""The core of `svdops facts` and `svdops check`: get a snapshot, judge it against a profile.

Facts come from exactly one source: the local host, a recorded folder, or a saved snapshot.
Nothing here prints or exits; the CLI renders the returned objects (svdops.judge.documents
turns them into the JSON and JUnit files), and svdops.judge.fleet_check does the same for many hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from svdops.errors import FactsError
from svdops.findings import Finding, Status, summarize, worst
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
        return gather_facts(RecordedShell(source.from_dir), source=source.describe())
    shell: Shell = LocalShell()
    if source.bundle_dir:
        shell = RecordingShell(shell, source.bundle_dir)
    return gather_facts(shell, python=source.python, use_nvml=source.use_nvml, source="local")


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

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.findings)

    @property
    def failed(self) -> bool:
        return worst(self.findings) is Status.FAIL

    @property
    def exit_code(self) -> int:
        """0: nothing failed; 1: a check failed (warnings never fail a host)."""
        return 1 if self.failed else 0


def check_profile(name_or_path: str | None) -> Profile:
    """The profile a check judges against: the one named, else svd-host. Errors are ProfileErrors (exit 2)."""
    return load_profile(name_or_path or DEFAULT_PROFILE)


def run_check(facts: HostFacts, profile: Profile) -> CheckReport:
    """Judge one snapshot. The profile comes in loaded: a fleet loads (and validates) it once, not per host."""
    from svdops.judge.rules import evaluate

    return CheckReport(facts, profile, tuple(evaluate(facts, profile)))
