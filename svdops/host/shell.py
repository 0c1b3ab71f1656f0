"""How commands reach a host. Everything that probes a host goes through a Shell.

- LocalShell runs argv on this machine with a timeout (no shell, no quoting issues).
- RecordedShell answers from a folder of recorded outputs (`NAME`, `NAME.rc`, `NAME.err`).
- RecordingShell wraps another shell and writes each answer into such a folder (a support bundle).

A Shell never raises for a command that is missing, fails or hangs: that is a CommandResult with
`available` False and a `reason`, so a probe can mark its value not-available and go on.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from svdops.errors import FactsError

DEFAULT_TIMEOUT_S = 20.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Command:
    """A read-only command a probe runs. `key` names its recording file, e.g. 'nvidia-smi-q.xml'."""

    key: str
    argv: tuple[str, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S
    env: tuple[tuple[str, str], ...] = field(default=(("LC_ALL", "C"),))


@dataclass(frozen=True)
class CommandResult:
    key: str
    argv: tuple[str, ...]
    rc: int | None
    stdout: str
    stderr: str = ""
    duration_s: float = 0.0
    missing: bool = False  # the program does not exist on the host
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.missing and not self.timed_out

    @property
    def reason(self) -> str:
        """Why this command gave no usable output, in words fit for a 'not available' note."""
        cmd = display_argv(self.argv) or self.key
        if self.missing:
            return f"`{cmd}` not found on the host"
        if self.timed_out:
            return f"`{cmd}` timed out after {self.duration_s:.0f} s"
        if self.rc not in (0, None):
            first = next((ln.strip() for ln in (self.stderr or self.stdout).splitlines() if ln.strip()), "")
            return f"`{cmd}` exited {self.rc}" + (f": {first[:200]}" if first else "")
        if self.rc is None:
            return f"`{cmd}` was not recorded"
        return f"`{cmd}` printed nothing usable"


def display_argv(argv: tuple[str, ...]) -> str:
    """argv for messages: an inline script (`python3 -c '...'`) shows as `-c …`, not forty lines."""
    shown = []
    for arg in argv:
        shown.append("…" if ("\n" in arg or len(arg) > 80) else arg)
    return " ".join(shown)


def env_words(argv: tuple[str, ...], env: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """argv as words for a remote POSIX shell: `env NAME=VALUE... PROGRAM ARGS...`, each word quoted.

    The environment rides on the command line because sshd drops SetEnv/SendEnv variables it was not
    told to accept (most servers accept only LANG and LC_*, and some not even those). Raises ValueError
    for what `env` would misread (a program name with '=', a malformed variable name).
    """
    if not argv:
        raise ValueError("empty argv")
    if "=" in argv[0]:
        raise ValueError(f"program name {argv[0]!r} contains '=': env would read it as a variable")
    words = ["env"]
    for name, value in env:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"bad environment variable name {name!r}")
        words.append(shlex.quote(f"{name}={value}"))
    words.extend(shlex.quote(arg) for arg in argv)
    return words


class Shell(Protocol):
    """Anything that can run a Command on one host. `name` is the host's label in messages."""

    name: str

    def run(self, command: Command) -> CommandResult: ...


class LocalShell:
    """Runs commands on this machine. Never invokes a shell: argv goes straight to exec."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or os.uname().nodename

    def run(self, command: Command) -> CommandResult:
        env = {**os.environ, **dict(command.env)}
        start = time.monotonic()
        try:
            proc = subprocess.run(  # argv list, no shell
                list(command.argv),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=command.timeout_s,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            return CommandResult(command.key, command.argv, None, "", "", time.monotonic() - start, missing=True)
        except PermissionError as exc:
            return CommandResult(command.key, command.argv, 126, "", str(exc), time.monotonic() - start)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return CommandResult(command.key, command.argv, None, out, "", time.monotonic() - start, timed_out=True)
        duration = time.monotonic() - start
        # 127 from exec-wrappers (env, sudo) also means the program is not there
        missing = proc.returncode == 127 and "not found" in proc.stderr
        return CommandResult(command.key, command.argv, proc.returncode, proc.stdout, proc.stderr, duration, missing)


class RecordedShell:
    """Replays a folder of recorded outputs. A file that is absent means 'not recorded'.

    Layout (shared with `svdops facts --bundle`): `KEY` is stdout, `KEY.rc` the exit status where
    not 0, `KEY.err` stderr where not empty. An exit status of 127 is read as 'command missing'.
    """

    def __init__(self, folder: str | os.PathLike[str], name: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FactsError(
                "recorded host folder does not exist or is not a folder",
                where=str(self.folder),
                hint="pass a folder written by `svdops facts --bundle DIR`",
            )
        self.name = name or _recorded_hostname(self.folder)

    def run(self, command: Command) -> CommandResult:
        out_path = self.folder / command.key
        rc_path = self.folder / f"{command.key}.rc"
        err_path = self.folder / f"{command.key}.err"
        if not out_path.exists() and not rc_path.exists():
            return CommandResult(command.key, command.argv, None, "")
        stdout = _read_text(out_path)
        stderr = _read_text(err_path)
        rc = 0
        if rc_path.exists():
            rc_text = _read_text(rc_path).strip()
            try:
                rc = int(rc_text)
            except ValueError:
                bad = f"unreadable exit status {rc_text!r} in {rc_path}"
                return CommandResult(command.key, command.argv, 1, stdout, bad)
        return CommandResult(command.key, command.argv, rc, stdout, stderr, missing=rc == 127)


class RecordingShell:
    """Runs through `inner` and keeps every answer in `folder`, in RecordedShell's layout."""

    def __init__(self, inner: Shell, folder: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "hostname.txt").write_text(self.name + "\n")

    def run(self, command: Command) -> CommandResult:
        result = self.inner.run(command)
        _write_recording(self.folder, result)
        return result


def _write_recording(folder: Path, result: CommandResult) -> None:
    if result.rc is None and not result.missing and not result.timed_out:
        return
    (folder / result.key).write_text(result.stdout)
    rc = 127 if result.missing else (124 if result.timed_out else result.rc)
    rc_path = folder / f"{result.key}.rc"
    if rc:
        rc_path.write_text(f"{rc}\n")
    elif rc_path.exists():
        rc_path.unlink()
    err_path = folder / f"{result.key}.err"
    stderr = result.stderr or (result.reason if (result.missing or result.timed_out) else "")
    if stderr:
        err_path.write_text(stderr)
    elif err_path.exists():
        err_path.unlink()


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise FactsError(f"cannot read recorded output: {exc.strerror}", where=str(path)) from exc


def _recorded_hostname(folder: Path) -> str:
    for key in ("hostname.txt",):
        text = _read_text(folder / key).strip()
        if text:
            return text.splitlines()[0][:253]
    return folder.resolve().name
