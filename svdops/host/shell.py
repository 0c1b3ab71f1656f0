"""How commands reach a host. Everything that probes a host goes through a Shell.

- LocalShell runs argv on this machine with a timeout (no shell, no quoting issues).
- RecordedShell answers from a folder of recorded outputs (`NAME`, `NAME.rc`, `NAME.err`).
- RecordingShell wraps another shell and writes each answer into such a folder (a support bundle).

A Shell never raises for a command that is missing, fails or hangs: that is a CommandResult with
`available` False and a `reason`, so a probe can mark its value not-available and go on.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from svdops.errors import FactsError

DEFAULT_TIMEOUT_S = 20.0
# a recorded output larger than this is cut (with a note): no real probe prints a tenth of it
MAX_RECORDED_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1 << 20
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RC = re.compile(r"-?\d{1,6}")


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
    refused: str = ""  # a recorded answer svdops would not read, and why (a symlink out of the folder, a FIFO)
    cut: str = ""  # why stdout/stderr are partial (a recorded file over MAX_RECORDED_BYTES)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.missing and not self.timed_out and not self.refused

    @property
    def reason(self) -> str:
        """Why this command gave no usable output, in words fit for a 'not available' note."""
        cmd = display_argv(self.argv) or self.key
        if self.refused:
            return f"recorded output of `{cmd}` refused: {self.refused}"
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

    The folder may come from anyone (a support bundle), so only regular files inside it are read, each
    up to MAX_RECORDED_BYTES: a symlink that leaves the folder, a FIFO or a device makes that command's
    answer `refused` (not ok, with the reason), never a read of /dev/zero, a hang or a copy of /etc/shadow.
    """

    def __init__(self, folder: str | os.PathLike[str], name: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FactsError(
                "recorded host folder does not exist or is not a folder",
                where=str(self.folder),
                hint="pass a folder written by `svdops facts --bundle DIR`",
            )
        self._root = self.folder.resolve()
        self.name = name or _recorded_hostname(self.folder, self._root)

    def run(self, command: Command) -> CommandResult:
        key = command.key
        out = read_recorded(self._root, key)
        rc_file = read_recorded(self._root, f"{key}.rc", limit=64)
        err = read_recorded(self._root, f"{key}.err")
        refused = "; ".join(r.refused for r in (out, rc_file, err) if r.refused)
        if refused:
            return CommandResult(key, command.argv, 1, "", "", refused=refused)
        if not out.present and not rc_file.present:
            return CommandResult(key, command.argv, None, "")
        cut = "; ".join(r.cut for r in (out, err) if r.cut)
        rc = 0
        if rc_file.present:
            rc_text = rc_file.text.strip()
            if not _RC.fullmatch(rc_text):
                bad = f"unreadable exit status {rc_text[:20]!r} in {self.folder / f'{key}.rc'}"
                return CommandResult(key, command.argv, 1, out.text, bad, cut=cut)
            rc = int(rc_text)
        return CommandResult(key, command.argv, rc, out.text, err.text, missing=rc == 127, cut=cut)


@dataclass(frozen=True)
class RecordedFile:
    """One file of a recorded folder as read: absent, refused (and why), or its text (cut, and why)."""

    text: str = ""
    present: bool = False
    refused: str = ""
    cut: str = ""


def read_recorded(root: Path, name: str, *, limit: int = MAX_RECORDED_BYTES) -> RecordedFile:
    """The file `name` of the recorded folder `root` (resolved), read safely.

    Opened with O_NOFOLLOW|O_NONBLOCK and judged by fstat of the opened descriptor, so what is checked is
    what is read. A symlink is followed only when it resolves to a file inside `root`; then the target is
    opened the same way and its real path (from /proc/self/fd) must still be inside `root`.
    """
    path = root / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return RecordedFile()
    except OSError as exc:
        return RecordedFile(refused=f"{name}: {exc.strerror}")
    if stat.S_ISLNK(st.st_mode):
        target = Path(os.path.realpath(path))
        if not _inside(root, target):
            return RecordedFile(refused=f"{name} is a symlink that leaves the folder")
        path = target
    elif not stat.S_ISREG(st.st_mode):
        return RecordedFile(refused=f"{name} is {_kind(st.st_mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return RecordedFile(refused=f"{name} is a symlink to a file that does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return RecordedFile(refused=f"{name} is a symlink loop, or was swapped for a symlink while being read")
        return RecordedFile(refused=f"{name}: {exc.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return RecordedFile(refused=f"{name} is {_kind(st.st_mode)}, not a regular file")
        real = _fd_path(fd)
        if real is not None and not _inside(root, real):
            return RecordedFile(refused=f"{name} resolves outside the folder")
        data = bytearray()  # one buffer, decoded in place: a 50 MB file costs 50 MB here, not 100
        while len(data) <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        return RecordedFile(refused=f"{name}: {exc.strerror}")
    finally:
        os.close(fd)
    cut = ""
    if len(data) > limit:
        del data[limit:]
        cut = f"recorded {name} cut at its first {_size(limit)} (the file holds {_size(max(st.st_size, limit + 1))})"
    return RecordedFile(data.decode("utf-8", errors="replace"), present=True, cut=cut)


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _fd_path(fd: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # no /proc (macOS): the realpath check before opening stands alone
        return None


def _kind(mode: int) -> str:
    for test, words in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class RecordingShell:
    """Runs through `inner` and keeps every answer in `folder`, in RecordedShell's layout."""

    def __init__(self, inner: Shell, folder: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # a bundle folder someone else could write to (/tmp) may hold planted links: never write through one
        for entry in self.folder.iterdir():
            if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                raise FactsError(
                    "the bundle folder holds a link or a special file: svdops will not write through it",
                    where=str(entry),
                    hint="write the bundle into a new or empty folder",
                )
        _write_file(self.folder / "hostname.txt", self.name + "\n")

    def run(self, command: Command) -> CommandResult:
        result = self.inner.run(command)
        _write_recording(self.folder, result)
        return result


def _write_file(path: Path, text: str) -> None:
    """Create or truncate a regular file, never following a link or opening a FIFO or device in its place."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise FactsError(f"cannot write the recording: {exc.strerror}", where=str(path),
                         hint="write the bundle into a new or empty folder") from exc
    with os.fdopen(fd, "wb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FactsError("not a regular file: svdops will not write a recording into it", where=str(path))
        fh.write(text.encode("utf-8", errors="surrogateescape"))


def _write_recording(folder: Path, result: CommandResult) -> None:
    if result.rc is None and not result.missing and not result.timed_out:
        return
    _write_file(folder / result.key, result.stdout)
    rc = 127 if result.missing else (124 if result.timed_out else result.rc)
    rc_path = folder / f"{result.key}.rc"
    if rc:
        _write_file(rc_path, f"{rc}\n")
    elif rc_path.exists():
        rc_path.unlink()
    err_path = folder / f"{result.key}.err"
    stderr = result.stderr or (result.reason if (result.missing or result.timed_out) else "")
    if stderr:
        _write_file(err_path, stderr)
    elif err_path.exists():
        err_path.unlink()


def _recorded_hostname(folder: Path, root: Path) -> str:
    text = read_recorded(root, "hostname.txt", limit=4096).text.strip()
    if text:
        return text.splitlines()[0][:253]
    return root.name
