"""The core of `svdops facts|check --host/--inventory`: the same probes and rules, many hosts at once.

The CLI chooses options and renders; here the targets are selected, probed (svdops.host.fleet) and
judged against one loaded profile, and the fleet's exit code is decided. Nothing here prints or exits.

Exit codes, most severe first: 3 when any host could not be checked (unreachable, auth failed,
host key unknown/changed, timeout, error), else 1 when any host failed a check (or a required check
could not look there, unless allow_unknown), else 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from svdops.errors import BadInputError
from svdops.host.fleet import FleetOptions, FleetTally, HostResult, fleet_exit_code, probe_fleet
from svdops.host.inventory import Target, select_targets
from svdops.host.shell import Shell
from svdops.judge.check import CheckReport, run_check
from svdops.judge.profiles import Profile

OnResult = Callable[[HostResult], None]
Connect = Callable[[Target], Shell]


def fleet_targets(
    *,
    hosts: Sequence[str] = (),
    inventory: Path | None = None,
    limit: str | None = None,
    identity: Path | None = None,
) -> list[Target]:
    """The hosts a fleet run covers, refusing an empty selection before any connection is opened."""
    if identity is not None and not identity.is_file():
        raise BadInputError("identity file not found", where=str(identity), hint="give -i the private key file")
    targets = select_targets(hosts=hosts, inventory=inventory, limit=limit, identity=identity)
    if not targets:
        raise BadInputError("no hosts to probe", hint="give --host HOST or --inventory FILE")
    return targets


@dataclass(frozen=True)
class FleetFacts:
    """Every selected host's probe result, in target order."""

    hosts: tuple[HostResult, ...]

    @property
    def tally(self) -> FleetTally:
        return FleetTally.of(self.hosts)

    @property
    def exit_code(self) -> int:
        return fleet_exit_code(self.hosts, any_failed=False)


@dataclass(frozen=True)
class HostCheck:
    """One host of a fleet check: how probing went and, when it answered in full, the judgement.

    A host that timed out has partial facts but no report: judging half a snapshot would turn the
    missing half into failures (or passes) that say nothing about the host.
    """

    probe: HostResult
    report: CheckReport | None

    @property
    def name(self) -> str:
        return self.probe.target.name

    @property
    def failed(self) -> bool:
        return self.report is not None and self.report.failed


@dataclass(frozen=True)
class FleetCheck:
    profile: Profile
    hosts: tuple[HostCheck, ...]

    @property
    def probes(self) -> tuple[HostResult, ...]:
        return tuple(h.probe for h in self.hosts)

    @property
    def tally(self) -> FleetTally:
        return FleetTally.of(self.probes)

    @property
    def checked(self) -> int:
        return sum(1 for h in self.hosts if h.report is not None)

    @property
    def failed(self) -> int:
        return sum(1 for h in self.hosts if h.failed)

    @property
    def exit_code(self) -> int:
        """A host nobody looked at outranks a known failure: the fleet's state is unknown (see fleet_exit_code)."""
        return fleet_exit_code(self.probes, any_failed=self.failed > 0)


def gather_fleet(
    targets: Sequence[Target],
    options: FleetOptions,
    *,
    connect: Connect | None = None,
    on_result: OnResult | None = None,
) -> FleetFacts:
    """Probe every target (at most options.forks at once); on_result sees each host as it finishes."""
    return FleetFacts(tuple(probe_fleet(targets, options, connect=connect, on_result=on_result)))


def check_fleet(
    targets: Sequence[Target],
    options: FleetOptions,
    profile: Profile,
    *,
    connect: Connect | None = None,
    on_result: OnResult | None = None,
    allow_unknown: bool = False,
) -> FleetCheck:
    """Probe every target and judge each host that answered against `profile`.

    Each host is judged as its answer comes in, while the others are still being probed: the judging
    (and the first import of the rules) then overlaps the hosts' own work instead of following it."""
    reports: dict[int, CheckReport | None] = {}

    def judge_now(result: HostResult) -> None:
        reports[id(result)] = _judge(result, profile, allow_unknown)
        if on_result is not None:
            on_result(result)

    probed = gather_fleet(targets, options, connect=connect, on_result=judge_now)
    return FleetCheck(profile, tuple(
        HostCheck(r, reports[id(r)] if id(r) in reports else _judge(r, profile, allow_unknown)) for r in probed.hosts
    ))


def judge_fleet(probed: FleetFacts, profile: Profile, *, allow_unknown: bool = False) -> FleetCheck:
    """Judge each host that answered; with allow_unknown a required check that could not look fails no host."""
    return FleetCheck(profile, tuple(HostCheck(r, _judge(r, profile, allow_unknown)) for r in probed.hosts))


def _judge(result: HostResult, profile: Profile, allow_unknown: bool) -> CheckReport | None:
    if not result.ok or result.facts is None:
        return None
    return run_check(result.facts, profile, allow_unknown=allow_unknown)
