"""Probe many hosts at once: a bounded pool of workers, one SSH connection per host.

Over SSH a host's probes go out as one remote script on one channel (BatchShell, batch.py): one round
trip per host instead of one per command. Each host ends in exactly one status, and no host can hold
up another beyond its own deadlines: a dead host costs its worker at most the connect timeout, a hung
command at most the command timeout (the probes of one host run in parallel, so a stuck nvidia-smi
costs that once, not once per nvidia-smi call). Nothing here prints; `on_result` is called as each
host finishes (progress bars).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from svdops.errors import SvdopsError
from svdops.host.batch import BatchShell, ScriptRunner
from svdops.host.facts import HostFacts
from svdops.host.inventory import Target
from svdops.host.shell import Command, CommandResult, RecordingShell, Shell

DEFAULT_FORKS = 32


class HostStatus(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth failed"
    HOST_KEY_UNKNOWN = "host key unknown"
    HOST_KEY_CHANGED = "host key changed"
    TIMEOUT = "timeout"  # connected, but a command did not finish in --command-timeout
    ERROR = "error"  # svdops itself failed on this host (a bug): reported, never allowed to stop the rest


_STATUS_OF_KIND = {s.value: s for s in HostStatus}


@dataclass(frozen=True)
class FleetOptions:
    forks: int = DEFAULT_FORKS
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 30.0
    accept_new_host_keys: bool = False
    known_hosts: Path | None = None  # None: $SVDOPS_KNOWN_HOSTS, else ~/.ssh/known_hosts
    python: str = "python3"
    bundle_dir: Path | None = None  # keep each host's raw outputs in bundle_dir/<host>/


@dataclass(frozen=True)
class HostResult:
    """What became of one host. `facts` is set for ok hosts, and partly for timeout ones."""

    target: Target
    status: HostStatus
    facts: HostFacts | None = None
    message: str = ""
    hint: str = ""
    duration_s: float = 0.0
    bundle: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status is HostStatus.OK


class SshConnector:
    """Connections over SSH with the run's timeouts and host key policy; ~/.ssh/config read once.

    `abort()` closes every socket its connections hold, those still waiting for a host's banner
    included: probe_fleet calls it on Ctrl-C so no worker sits out its connect timeout.
    """

    def __init__(self, options: FleetOptions) -> None:
        from svdops.host.ssh import SshOptions, default_known_hosts, load_ssh_config

        self.ssh_options = SshOptions(
            connect_timeout_s=options.connect_timeout_s,
            command_timeout_s=options.command_timeout_s,
            accept_new_host_keys=options.accept_new_host_keys,
            known_hosts=options.known_hosts or default_known_hosts(),
            ssh_config=load_ssh_config(),
        )

    def __call__(self, target: Target) -> Shell:
        from svdops.host.ssh import SshShell

        return SshShell(target, self.ssh_options).connect()

    def abort(self) -> None:
        self.ssh_options.sockets.close_all()


def ssh_connector(options: FleetOptions) -> SshConnector:
    return SshConnector(options)


def bundle_folder_name(name: str) -> str:
    """A host label as a folder name: `[::1]:2222` -> `__1__2222`; never `..` or a path."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "host"
    return safe[:200]


class _Watch:
    """Passes commands through and remembers the ones that timed out."""

    def __init__(self, inner: Shell) -> None:
        self.inner = inner
        self.name = inner.name
        self.timed_out: list[CommandResult] = []
        self._lock = threading.Lock()

    def run(self, command: Command) -> CommandResult:
        result = self.inner.run(command)
        if result.timed_out:
            with self._lock:
                self.timed_out.append(result)
        return result


def probe_host(
    target: Target,
    options: FleetOptions,
    connect: Callable[[Target], Shell],
    *,
    bundle: Path | None = None,
    opened: Callable[[Shell], None] | None = None,
) -> HostResult:
    """Connect, gather facts, close. Never raises: every failure is a HostResult status."""
    from svdops.host.probe.gather import gather_facts

    start = time.monotonic()

    def result(status: HostStatus, facts: HostFacts | None = None, message: str = "", hint: str = "") -> HostResult:
        kept = bundle if bundle is not None and bundle.is_dir() else None  # no folder for hosts never reached
        return HostResult(target, status, facts, message, hint, time.monotonic() - start, kept)

    try:
        shell = connect(target)
    except SvdopsError as exc:
        kind = getattr(exc, "kind", HostStatus.UNREACHABLE.value)
        return result(_STATUS_OF_KIND.get(kind, HostStatus.UNREACHABLE), message=exc.message, hint=exc.hint or "")
    except Exception as exc:
        return result(HostStatus.ERROR, message=f"{type(exc).__name__}: {exc}",
                      hint="this is a bug in svdops; rerun with SVDOPS_DEBUG=1 and report it")
    if opened is not None:
        opened(shell)
    try:
        batched = _one_round_trip(shell, options.python)
        # the one script runs now; when it answered every command, they are read one after another
        # (dictionary look-ups) instead of from a pool of threads per host
        answered_all = isinstance(batched, BatchShell) and batched.prefetch()
        watch = _Watch(batched)
        probed: Shell = RecordingShell(watch, bundle) if bundle is not None else watch
        facts = gather_facts(probed, python=options.python, use_nvml=False, source=_source(target),
                             parallel=not answered_all)
    except SvdopsError as exc:  # e.g. a bundle folder svdops will not write into: this host's error, said plainly
        return result(HostStatus.ERROR, message=f"{exc.message}: {exc.where}" if exc.where else exc.message,
                      hint=exc.hint or "")
    except Exception as exc:
        return result(HostStatus.ERROR, message=f"{type(exc).__name__}: {exc}",
                      hint="this is a bug in svdops; rerun with SVDOPS_DEBUG=1 and report it")
    finally:
        close = getattr(shell, "close", None)
        if callable(close):
            close()
    lost = getattr(shell, "lost", None)
    if lost:
        return result(HostStatus.UNREACHABLE, facts=facts, message=f"connection lost while probing: {lost}",
                      hint="the host may have rebooted or dropped off the network; rerun for this host")
    if watch.timed_out:
        first = watch.timed_out[0]
        more = f" (and {len(watch.timed_out) - 1} more)" if len(watch.timed_out) > 1 else ""
        return result(HostStatus.TIMEOUT, facts=facts, message=first.reason + more,
                      hint="a hung nvidia-smi usually means a GPU or driver fault (check dmesg for Xid errors); "
                           "for a slow but healthy host raise --command-timeout")
    return result(HostStatus.OK, facts=facts)


def _one_round_trip(shell: Shell, python: str) -> Shell:
    """The shell primed with every command a gather asks, where it can run them as one script."""
    if not isinstance(shell, ScriptRunner):
        return shell
    from svdops.host.probe.commands import FALLBACKS
    from svdops.host.probe.gather import commands_for

    return BatchShell(shell, commands_for(shell, python), fallbacks=FALLBACKS)


def _source(target: Target) -> str:
    return target.url


def probe_fleet(
    targets: Sequence[Target],
    options: FleetOptions,
    *,
    connect: Callable[[Target], Shell] | None = None,
    on_result: Callable[[HostResult], None] | None = None,
) -> list[HostResult]:
    """Probe every target with at most `options.forks` at once. Results come back in target order."""
    if not targets:
        return []
    connect = connect or ssh_connector(options)
    bundles = _bundle_folders(targets, options.bundle_dir)
    shells: dict[int, Shell] = {}
    lock = threading.Lock()

    def track(shell: Shell) -> None:
        with lock:
            shells[id(shell)] = shell

    def task(index: int) -> HostResult:
        return probe_host(targets[index], options, connect, bundle=bundles[index], opened=track)

    # daemon threads, not a ThreadPoolExecutor: the interpreter joins a pool's workers at exit, so Ctrl-C
    # would still wait for a worker stuck where no close reaches (a slow DNS lookup)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(targets)):
        todo.put(index)
    answered: queue.Queue[tuple[int, HostResult]] = queue.Queue()  # Queue.get is interruptible by Ctrl-C
    stopping = threading.Event()

    def worker() -> None:
        while not stopping.is_set():
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            answered.put((index, task(index)))

    workers = [threading.Thread(target=worker, name=f"svdops-fleet-{n}", daemon=True)
               for n in range(max(1, min(options.forks, len(targets))))]
    results: dict[int, HostResult] = {}
    try:
        for thread in workers:
            thread.start()
        while len(results) < len(targets):
            index, host_result = answered.get()
            results[index] = host_result
            if on_result is not None:
                on_result(host_result)
    except BaseException:
        # Ctrl-C: start no more hosts, close every socket (connecting ones too) so workers return at once
        stopping.set()
        abort = getattr(connect, "abort", None)
        if callable(abort):
            abort()
        with lock:
            for shell in shells.values():
                close = getattr(shell, "close", None)
                if callable(close):
                    close()
        raise
    for thread in workers:
        thread.join()
    return [results[i] for i in range(len(targets))]


def _bundle_folders(targets: Sequence[Target], bundle_dir: Path | None) -> list[Path | None]:
    if bundle_dir is None:
        return [None] * len(targets)
    used: set[str] = set()
    folders: list[Path | None] = []
    for target in targets:
        base = bundle_folder_name(target.name)
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        folders.append(bundle_dir / name)
    return folders


@dataclass
class FleetTally:
    """Counts for summaries: hosts per status."""

    by_status: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, results: Sequence[HostResult]) -> FleetTally:
        tally = cls({s.value: 0 for s in HostStatus})
        for r in results:
            tally.by_status[r.status.value] += 1
        return tally

    @property
    def not_checked(self) -> int:
        return sum(n for s, n in self.by_status.items() if s != HostStatus.OK.value)


def fleet_exit_code(results: Sequence[HostResult], *, any_failed: bool) -> int:
    """3 when any host could not be checked, else 1 when any host failed a check, else 0.

    3 outranks 1 on purpose: a fleet with a host nobody looked at is not known to be fine or to
    fail only where it says, so automation must not read its result as a plain check failure.
    """
    if any(not r.ok for r in results):
        return 3
    return 1 if any_failed else 0
