"""BatchShell: every probe command of a host in one remote script, over one SSH channel.

A round trip per command costs a session each (sshd forks, a login shell starts, the channel opens and
closes); thirty of them are most of a fleet check's time. BatchShell is primed with the commands a
gather will ask for, sends them all as one POSIX sh script the first time any of them is asked for, and
answers each `run()` from what came back. A command it was not primed with, or one the script could
not answer (the host has no FIFO or temporary folder, the stream broke), goes through the inner shell
on its own, so the answers never depend on the batch having worked.

The script (POSIX sh and a few POSIX tools: mktemp, mkfifo, wc, cat, sleep; no Python; read from
stdin, so its boundary is in no process's argv on the host):

- starts every command at once in the background, stdin from /dev/null, stdout and stderr into files
  of a private `mktemp -d` folder (on a memory file system where there is one), `ulimit -f` capping each file;
- runs a fallback (nvcc outside PATH, /sbin/ldconfig) after its primary, and only when the primary
  answered nothing usable; its frame otherwise says it was skipped;
- stops a command still running at its timeout (TERM, then KILL) from one watchdog for every timeout,
  so a hung nvidia-smi costs its timeout once and every other command still answers;
- as commands end (a FIFO wakes it), prints a header line per finished command,
  `BOUNDARY F INDEX EXIT-STATUS STDOUT-BYTES STDERR-BYTES STOPPED` (EXIT-STATUS `s`: a skipped
  fallback, with no output), then `BOUNDARY P`, then exactly those bytes: each command's stdout and
  stderr, in header order.

The boundary is random per run and payloads are skipped by their length, never scanned, so nothing a
command prints (binary, invalid UTF-8, frame-like lines) can end or forge a frame. Our own deadline
covers what the script cannot (a process stuck in the kernel ignores even KILL): what has not answered
by then is timed out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from svdops.host.shell import Command, CommandResult, display_argv, env_words

# More than any probe prints (nvidia-smi -q -x for 8 GPUs is ~0.5 MB); a runaway command stops here.
OUTPUT_CAP_BYTES = 8 * 1024 * 1024
# a command that ignores SIGTERM at its timeout is killed this long after it
KILL_AFTER_S = 2.0
# our own deadline beyond the longest command timeout: script start-up, the last frames in flight
DEADLINE_SLACK_S = 3.0
_HEADER_MAX_BYTES = 200


@dataclass(frozen=True)
class ScriptEnd:
    """How a script's channel ended. `error` says why it broke (connection lost, no session)."""

    rc: int | None
    stderr: str = ""
    timed_out: bool = False
    error: str | None = None


@runtime_checkable
class ScriptRunner(Protocol):
    """A shell that can also run one sh script on its host, streaming the script's stdout to `feed`."""

    name: str

    def run(self, command: Command) -> CommandResult: ...

    def timeout_for(self, command: Command) -> float: ...

    def run_script(self, script: bytes, feed: Callable[[bytes], None], timeout_s: float) -> ScriptEnd: ...


@dataclass
class Frame:
    rc: int | None  # None: a fallback the script skipped, its primary having answered
    stdout: bytes
    stderr: bytes
    stdout_bytes: int  # what the command wrote, which may be more than was kept
    stderr_bytes: int
    stopped: bool  # the script's watchdog stopped it at its timeout
    arrived: float  # time.monotonic() when the frame was complete


@dataclass
class FrameReader:
    """Parses the script's stdout in whatever pieces it arrives. Never raises: a stream that stops
    making sense sets `broken` and is ignored from there on."""

    boundary: bytes
    count: int
    cap_bytes: int = OUTPUT_CAP_BYTES
    frames: dict[int, Frame] = field(default_factory=dict)
    started: bool = False  # the script's first line has come: it runs
    refused: str | None = None  # the script's own reason for not running the commands
    broken: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    # index, exit status (None: skipped), stdout bytes, stderr bytes, stopped at its timeout
    _announced: list[tuple[int, int | None, int, int, bool]] = field(default_factory=list)
    _in_payload: bool = False
    _out: bytearray = field(default_factory=bytearray)
    _err: bytearray = field(default_factory=bytearray)
    _taken: int = 0  # bytes of the first announced frame's payload consumed so far

    def feed(self, data: bytes) -> None:
        if self.broken or self.refused:
            return
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume what the buffer allows; True when another step may make progress."""
        if self._in_payload:
            return self._payload()
        if not self.started:
            return self._preamble()
        return self._header_line()

    def _preamble(self) -> bool:
        # a login shell may print a banner before the script starts: skip to the boundary
        at = self._buffer.find(self.boundary)
        if at < 0:
            del self._buffer[: max(0, len(self._buffer) - len(self.boundary))]
            return False
        end = self._buffer.find(b"\n", at)
        if end < 0:
            del self._buffer[:at]
            return False
        words = bytes(self._buffer[at + len(self.boundary):end]).decode("utf-8", "replace").split(" ", 2)[1:]
        del self._buffer[: end + 1]
        if words == ["H"]:
            self.started = True
            return True
        if words[:1] == ["X"]:
            self.refused = words[1] if len(words) > 1 else "the script refused to run"
            return False
        self.broken = f"unexpected script header {words!r}"
        return False

    def _header_line(self) -> bool:
        end = self._buffer.find(b"\n", 0, _HEADER_MAX_BYTES)
        if end < 0:
            if len(self._buffer) >= _HEADER_MAX_BYTES:
                self.broken = "a frame header is missing its end"
            return False
        words = bytes(self._buffer[:end]).split(b" ")
        del self._buffer[: end + 1]
        if words[0] != self.boundary:
            self.broken = "the stream lost its frames (a header is not where the lengths put it)"
            return False
        if words[1:] == [b"P"] and self._announced:
            self._in_payload = True
            return True
        try:
            if len(words) != 7 or words[1] != b"F" or words[6] not in (b"0", b"1"):
                raise ValueError
            index, out_bytes, err_bytes = int(words[2]), int(words[4]), int(words[5])
            rc = None if words[3] == b"s" and out_bytes == err_bytes == 0 else int(words[3])
        except ValueError:
            self.broken = f"malformed frame header {b' '.join(words[1:])[:80]!r}"
            return False
        seen = index in self.frames or any(index == a[0] for a in self._announced)
        if not 0 <= index < self.count or seen or min(out_bytes, err_bytes) < 0:
            self.broken = f"frame {index} is out of place"
            return False
        self._announced.append((index, rc, out_bytes, err_bytes, words[6] == b"1"))
        return True

    def _payload(self) -> bool:
        index, rc, out_bytes, err_bytes, stopped = self._announced[0]
        take = min(out_bytes + err_bytes - self._taken, len(self._buffer))
        chunk = self._buffer[:take]
        del self._buffer[:take]
        in_stdout = max(0, min(take, out_bytes - self._taken))
        self._keep(self._out, chunk[:in_stdout])
        self._keep(self._err, chunk[in_stdout:])
        self._taken += take
        if self._taken < out_bytes + err_bytes:
            return False
        self.frames[index] = Frame(rc, bytes(self._out), bytes(self._err), out_bytes, err_bytes, stopped,
                                   time.monotonic())
        self._announced.pop(0)
        self._out, self._err, self._taken = bytearray(), bytearray(), 0
        self._in_payload = bool(self._announced)
        return True

    def _keep(self, into: bytearray, data: bytes | bytearray) -> None:
        room = self.cap_bytes - len(into)
        if room > 0:
            into += data[:room]


def build_script(jobs: Sequence[tuple[int, float, Sequence[str]]], boundary: str,
                 cap_bytes: int = OUTPUT_CAP_BYTES, fallbacks: Mapping[int, int] | None = None) -> str:
    """The sh script that runs `jobs` (index, timeout in seconds, quoted words) and frames their answers.

    `fallbacks` maps a job to the job it stands in for (its primary): it runs after the primary, in the
    same background subshell, and only when the primary answered nothing usable (a non-zero exit status or
    no stdout); otherwise its frame says it was skipped (exit status `s`, no output). Its watchdog allows
    both timeouts, one after the other.
    """
    if not boundary.isalnum():
        raise ValueError("the boundary must be letters and digits: it is written into the script unquoted")
    fallbacks = dict(fallbacks or {})
    by_index = {index: (timeout_s, words) for index, timeout_s, words in jobs}
    for fallback, primary in fallbacks.items():
        if (fallback not in by_index or primary not in by_index or primary in fallbacks or fallback == primary
                or list(fallbacks.values()).count(primary) > 1):
            raise ValueError(f"job {fallback} cannot stand in for job {primary} (one fallback per primary job)")
    lines = [
        f"B={boundary}",
        # a memory file system first: on a disk one, creating and removing the ~120 small files costs more
        # than all the commands (per-user $XDG_RUNTIME_DIR, then /dev/shm; mktemp -d makes it private)
        "d=",
        'for t in "$XDG_RUNTIME_DIR" /dev/shm "${TMPDIR:-/tmp}"; do',
        '  [ -n "$t" ] && [ -d "$t" ] && [ -w "$t" ] || continue',
        '  d=$(mktemp -d "$t/svdops-probe.XXXXXXXX" 2>/dev/null) || { d=; continue; }',
        '  mkfifo "$d/q" 2>/dev/null && break',
        '  rm -rf "$d"',
        "  d=",
        "done",
        'if [ -z "$d" ]; then',
        '  printf \'%s X no private temporary folder with a FIFO in $XDG_RUNTIME_DIR, /dev/shm or %s\\n\' \\',
        '    "$B" "${TMPDIR:-/tmp}"',
        "  exit 0",
        "fi",
        'W=',
        "trap 'kill $W 2>/dev/null; rm -rf \"$d\"' EXIT",
        "trap 'exit 1' HUP INT TERM PIPE",
        # read-write open: a FIFO opened for reading alone would block until the first writer
        'exec 3<>"$d/q"',
        'printf \'%s H\\n\' "$B"',
        # x INDEX [NAME=VALUE...] PROGRAM ARG...: run one command and wait for it; INDEX.p holds its PID,
        # INDEX.r its exit status once it is done, and the FIFO hears its INDEX. The variables are exported
        # in the command's own process, for that command alone: what `env NAME=VALUE... PROGRAM` does on a
        # command line, without a process for `env` (an exec per command, a fifth of the script's CPU).
        # `exec` runs PROGRAM from PATH, never a shell builtin of that name, as env would; not found is
        # status 127, as with env.
        "x() {",
        "  k=$1",
        "  shift",
        "  (",
        '    while [ "$#" -gt 1 ]; do case $1 in *=*) export "$1"; shift ;; *) break ;; esac; done',
        '    exec "$@"',
        '  ) </dev/null >"$d/$k.o" 2>"$d/$k.e" 3>&- &',
        '  echo "$!" >"$d/$k.p"',
        '  wait "$!"',
        '  echo "$?" >"$d/$k.r"',
        '  echo "$k" >&3',
        "}",
        # u INDEX PRIMARY: true when the fallback INDEX need not run (PRIMARY exited 0 and printed something);
        # its frame then says `s`, skipped
        "u() {",
        '  read -r c <"$d/$2.r" && [ "$c" = 0 ] && [ -s "$d/$2.o" ] || return 1',
        '  : >"$d/$1.o"',
        '  : >"$d/$1.e"',
        '  echo s >"$d/$1.r"',
        '  echo "$1" >&3',
        "}",
        # f INDEX...: one header line per finished command, then all their outputs in one `cat`
        "f() {",
        "  r=$* l=",
        '  for k do l="$l $k.o $k.e"; done',
        # relative names: a TMPDIR with spaces must not split wc's answer into more words
        '  set -- $(cd "$d" && wc -c $l)',
        "  for k in $r; do",
        "    c=255 x=0",
        '    read -r c <"$d/$k.r"',
        '    [ -e "$d/$k.t" ] && x=1',
        '    printf \'%s F %s %s %s %s %s\\n\' "$B" "$k" "$c" "$1" "$3" "$x"',
        "    shift 4",
        "  done",
        '  printf \'%s P\\n\' "$B"',
        '  (cd "$d" && exec cat $l)',
        "}",
    ]
    ulimit = f"ulimit -f {max(1, cap_bytes // 512)} 2>/dev/null"
    fallback_of = {primary: fallback for fallback, primary in fallbacks.items()}
    limits: dict[int, float] = {}
    for index, timeout_s, words in jobs:
        if index in fallbacks:
            continue
        limits[index] = timeout_s
        steps = [ulimit, f"x {index} {' '.join(words)}"]
        if (after := fallback_of.get(index)) is not None:
            after_timeout, after_words = by_index[after]
            limits[after] = timeout_s + after_timeout
            steps.append(f"u {after} {index} || x {after} {' '.join(after_words)}")
        lines += ["(", *(f"  {step}" for step in steps), ") &"]
    # one watchdog for every timeout, not a `timeout` process per command (that cost ~2 ms of CPU each, a
    # quarter of the script) nor one per timeout value: at each limit it stops those of its commands still
    # running (TERM), KILL_AFTER_S later those still there. A command with an exit status is never signalled
    # (its PID may be someone else's by then); one between its exit and that status is a zombie, whose PID
    # is not reused. A fallback that has not started has no PID yet and is left to our own deadline.
    events: dict[float, list[tuple[str, list[int]]]] = {}
    for limit in sorted(set(limits.values())):
        group = [index for index, value in limits.items() if value == limit]
        events.setdefault(limit, []).append(("TERM", group))
        events.setdefault(limit + KILL_AFTER_S, []).append(("KILL", group))
    watchdog = ["(", "  trap 'kill \"$z\" 2>/dev/null; exit 0' TERM", "  z="]
    now = 0.0
    for at in sorted(events):
        watchdog.append(f'  sleep {at - now:g} & z=$!; wait "$z"')
        now = at
        for signal_name, group in events[at]:
            mark = ' && : >"$d/$k.t"' if signal_name == "TERM" else ""
            watchdog.append(f"  for k in {' '.join(map(str, group))}; do "
                            f'[ -s "$d/$k.r" ] || {{ read -r c <"$d/$k.p"{mark} && kill -{signal_name} "$c"; }}; done')
    lines += [*watchdog, ") </dev/null >/dev/null 2>&1 3>&- &", 'W=$!']
    lines += [
        f"p='{' '.join(str(index) for index, _, _ in jobs)}'",
        # each finished command writes a line to the FIFO: wake up, send every answer that is complete
        # (a non-empty INDEX.r: the exit status is written in one go, after the command has been reaped).
        # Answers go out as commands finish, so one that never ends holds back no other.
        'while [ -n "$p" ] && read -r k <&3; do',
        "  r= q=",
        '  for i in $p; do if [ -s "$d/$i.r" ]; then r="$r $i"; else q="$q $i"; fi; done',
        "  p=$q",
        '  [ -n "$r" ] && f $r',
        "done",
        # reap every child before leaving: none is left to init, and the watchdog's sleep ends now
        'kill $W 2>/dev/null',
        "wait",
        "exit 0",
        "",
    ]
    return "\n".join(lines)


class BatchShell:
    """Answers `commands` from one script run on `inner`'s host; anything else goes to `inner` itself.

    Thread-safe: gather_facts asks from a pool of threads; the first question runs the script, the rest
    wait for it and read the answers.
    """

    def __init__(self, inner: ScriptRunner, commands: Iterable[Command], *,
                 cap_bytes: int = OUTPUT_CAP_BYTES, fallbacks: Mapping[str, str] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.cap_bytes = cap_bytes
        self._primed = {command.key: command for command in commands}
        # fallback key -> primary key: the script runs a fallback only when its primary answered nothing
        # usable (what Outputs.first would then read); a skipped fallback answers "not run"
        self._fallbacks = {f: p for f, p in (fallbacks or {}).items() if f in self._primed and p in self._primed}
        self._answers: dict[str, CommandResult] | None = None
        self._lock = threading.Lock()
        self.fallback: str | None = None  # why some primed commands went one by one, if they did

    def run(self, command: Command) -> CommandResult:
        if self._primed.get(command.key) != command:
            return self.inner.run(command)
        answer = self._batch().get(command.key)
        return answer if answer is not None else self.inner.run(command)

    def prefetch(self) -> bool:
        """Run the script now (if it has not run); True when it answered every primed command, so no
        `run` of them will go to the host."""
        return len(self._batch()) == len(self._primed)

    def _batch(self) -> dict[str, CommandResult]:
        with self._lock:
            if self._answers is None:
                self._answers = self._run_batch()
            return self._answers

    def _run_batch(self) -> dict[str, CommandResult]:
        commands = list(self._primed.values())
        answers: dict[str, CommandResult] = {}
        jobs: list[tuple[int, float, Sequence[str]]] = []
        timeouts: dict[int, float] = {}
        for index, command in enumerate(commands):
            try:
                words = env_words(command.argv, command.env)[1:]  # NAME=VALUE... PROGRAM ARG...: no `env`
            except ValueError as exc:
                answers[command.key] = CommandResult(command.key, command.argv, 2, "",
                                                     f"svdops refused to build the remote command: {exc}")
                continue
            timeouts[index] = self.inner.timeout_for(command)
            jobs.append((index, timeouts[index], words))
        if not jobs:
            return answers
        boundary = secrets.token_hex(16)
        reader = FrameReader(boundary.encode(), len(commands), self.cap_bytes)
        position = {command.key: index for index, command in enumerate(commands)}
        primary_of = {position[f]: position[p] for f, p in self._fallbacks.items()
                   if position[f] in timeouts and position[p] in timeouts}
        # a fallback may start only when its primary ends: both timeouts, one after the other
        limit_s = max(timeouts[i] + (timeouts[primary_of[i]] if i in primary_of else 0) for i in timeouts)
        limit_s += KILL_AFTER_S + DEADLINE_SLACK_S
        script = build_script(jobs, boundary, self.cap_bytes, primary_of)
        start = time.monotonic()
        end = self.inner.run_script(script.encode(), reader.feed, limit_s)
        skipped: set[int] = set()
        for index, command in enumerate(commands):
            frame = reader.frames.get(index)
            if frame is not None and frame.rc is None:
                skipped.add(index)
            elif frame is not None:
                answers[command.key] = self._answer(command, frame, start, timeouts[index])
        for index in skipped:
            primary = commands[primary_of[index]] if index in primary_of else None
            answer = answers.get(primary.key) if primary is not None else None
            # the script's test (status 0 and any stdout) is looser than a usable answer (stdout that is not
            # all blanks): where they differ, the fallback is left unanswered and asked on its own
            if primary is not None and answer is not None and answer.ok and answer.stdout.strip():
                command = commands[index]
                answers[command.key] = CommandResult(command.key, command.argv, None, "",
                                                     f"not run: `{display_argv(primary.argv)}` answered first")
        for index, command in enumerate(commands):
            if command.key not in answers and index not in skipped and end.timed_out and index in timeouts:
                # still running at our deadline: hung (no usable `timeout` there, or an unkillable process)
                answers[command.key] = CommandResult(command.key, command.argv, None, "", "",
                                                     time.monotonic() - start, timed_out=True)
        if any(command.key not in answers and index not in skipped for index, command in enumerate(commands)):
            self.fallback = reader.refused or reader.broken or end.error or _script_failed(end)
        return answers

    def _answer(self, command: Command, frame: Frame, start: float, timeout_s: float) -> CommandResult:
        stdout = frame.stdout.decode("utf-8", errors="replace")
        stderr = frame.stderr.decode("utf-8", errors="replace")
        cut = [name for name, size in (("stdout", frame.stdout_bytes), ("stderr", frame.stderr_bytes))
               if size >= self.cap_bytes]
        if cut:
            # first, so that a CommandResult's reason (its first stderr line) says what happened
            stderr = (f"svdops: {' and '.join(cut)} cut at {self.cap_bytes} bytes (the command wrote more and was "
                      f"stopped there)\n") + stderr
        if frame.stopped:
            return CommandResult(command.key, command.argv, None, stdout, stderr, timeout_s, timed_out=True)
        return CommandResult(command.key, command.argv, frame.rc, stdout, stderr, frame.arrived - start,
                             missing=frame.rc == 127)


def _script_failed(end: ScriptEnd) -> str:
    first = next((line.strip() for line in end.stderr.splitlines() if line.strip()), "")
    return f"the probe script ended with status {end.rc}" + (f": {first[:200]}" if first else "")
