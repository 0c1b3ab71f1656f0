"""BatchShell: every probe command of a host in one remote script, over one SSH channel.

A round trip per command costs a session each (sshd forks, a login shell starts, the channel opens and
closes); thirty of them are most of a fleet check's time. BatchShell is primed with the commands a
gather will ask for, sends them all as one POSIX sh script the first time any of them is asked for, and
answers each `run()` from what came back. A command it was not primed with, or one the script could
not answer (the host has no temporary folder, the stream broke), goes through the inner shell
on its own, so the answers never depend on the batch having worked.

The script (POSIX sh and a few POSIX tools: mktemp, wc, cat, sleep; no Python; read from stdin, so its
boundary is in no process's argv on the host):

- starts every command at once in the background, one process each (a subshell that exports the
  command's variables and execs the program), stdin from /dev/null, stdout and stderr into files of a
  private `mktemp -d` folder (on a memory file system where there is one), `ulimit -f` capping each file;
- waits for the commands itself, shortest timeout first: each time the one it waits for ends, it takes
  every other one that has ended too (/proc tells a finished child from a running one) and sends that
  round's answers, so answers go out as commands end. Where /proc cannot tell, they go out at the end;
- starts a fallback (nvcc outside PATH, /sbin/ldconfig) when its primary has ended, and only when the
  primary answered nothing usable; its frame otherwise says it was skipped;
- stops a command still running at its timeout (TERM, then KILL) from one watchdog for every timeout,
  so a hung nvidia-smi costs its timeout once and every other command still answers. A second after its
  last KILL the watchdog tells the script (USR1) to stop waiting: what still runs then is stuck in the
  kernel, and is sent as stopped, without output;
- for each round prints a header line per finished command,
  `BOUNDARY F INDEX EXIT-STATUS STDOUT-BYTES STDERR-BYTES STOPPED` (EXIT-STATUS `s`: a skipped
  fallback, with no output), then `BOUNDARY P`, then exactly those bytes: each command's stdout and
  stderr, in header order.

The script waits for the commands itself because a wrapper process per command (to wait for it and
announce its end, as it did before) doubles the processes it starts: on the 2-vCPU benchmark machine the
script alone took ~84 ms of CPU per host that way and ~67 ms this way.

The boundary is random per run and payloads are skipped by their length, never scanned, so nothing a
command prints (binary, invalid UTF-8, frame-like lines) can end or forge a frame. Our own deadline
covers what the script cannot (a host too slow to run it, a script that never gets to answer): what has
not answered by then is timed out.
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

    A job's words are `NAME=VALUE... PROGRAM ARG...`, each quoted for sh: the variables reach that command
    alone, and PROGRAM comes from PATH (never a builtin of sh of that name), as with `env`.

    `fallbacks` maps a job to the job it stands in for (its primary): it starts when the primary has ended,
    and only when the primary answered nothing usable (a non-zero exit status or no stdout); otherwise its
    frame says it was skipped (exit status `s`, no output). Its watchdog allows both timeouts, one after
    the other.
    """
    if not boundary.isalnum():
        raise ValueError("the boundary must be letters and digits: it is written into the script unquoted")
    fallbacks = dict(fallbacks or {})
    by_index = {index: (timeout_s, words) for index, timeout_s, words in jobs}
    for fallback, primary in fallbacks.items():
        if (fallback not in by_index or primary not in by_index or primary in fallbacks or fallback == primary
                or list(fallbacks.values()).count(primary) > 1):
            raise ValueError(f"job {fallback} cannot stand in for job {primary} (one fallback per primary job)")
    fallback_of = {primary: fallback for fallback, primary in fallbacks.items()}

    def start(index: int) -> str:
        # one process per command: a subshell that exports the command's variables and becomes the program
        words = list(by_index[index][1])
        assignments = []
        while len(words) > 1 and "=" in words[0]:  # the program's own name never holds '=' (env_words)
            assignments.append(words.pop(0))
        inner = (f"export {' '.join(assignments)}; " if assignments else "") + f"exec {' '.join(words)}"
        return f'( {inner} ) </dev/null >"$d/{index}.o" 2>"$d/{index}.e" & p{index}=$!'

    lines = [
        f"B={boundary}",
        "M=$$",
        # a memory file system first: on a disk one, creating and removing the ~70 small files costs more
        # than all the commands (per-user $XDG_RUNTIME_DIR, then /dev/shm; mktemp -d makes it private)
        "d=",
        'for t in "$XDG_RUNTIME_DIR" /dev/shm "${TMPDIR:-/tmp}"; do',
        '  [ -n "$t" ] && [ -d "$t" ] && [ -w "$t" ] || continue',
        '  d=$(mktemp -d "$t/svdops-probe.XXXXXXXX" 2>/dev/null) && break',
        "  d=",
        "done",
        'if [ -z "$d" ]; then',
        '  printf \'%s X no private temporary folder in $XDG_RUNTIME_DIR, /dev/shm or %s\\n\' \\',
        '    "$B" "${TMPDIR:-/tmp}"',
        "  exit 0",
        "fi",
        # every variable the script reads is set here first: none comes from the login environment
        "W= g= a= o=" + "".join(f" p{f}= r{f}=" for f in sorted(fallbacks)),
        "trap 'kill $W 2>/dev/null; rm -rf \"$d\"' EXIT",
        "trap 'exit 1' HUP INT TERM PIPE",
        # the watchdog's last word: whatever still runs then outlived SIGKILL (stuck in the kernel)
        "trap 'g=1' USR1",
        'printf \'%s H\\n\' "$B"',
        # every command inherits the cap on the files it writes; this shell itself writes none that large
        f"ulimit -f {max(1, cap_bytes // 512)} 2>/dev/null",
        # P: /proc shows this shell's children, so one that has ended can be told from one still running
        "P=",
        '[ -r "/proc/$M/stat" ] && P=1',
        # z PID: true when PID has ended (the script and its watchdog both ask): a zombie, or gone (sh
        # reaps every ended child while it waits for any one), or a PID that is no longer our child
        "z() {",
        '  [ -n "$1" ] || return 1',
        '  read -r l 2>/dev/null <"/proc/$1/stat" || return 0',
        "  l=${l##*) }",
        "  set -- $l",
        '  [ "$1" = Z ] || [ "$2" != "$M" ]',
        "}",
    ]
    # t INDEX STATUS: INDEX has ended; its fallback starts when it answered nothing usable, else is skipped
    lines += ["t() {", '  eval "r$1=$2"', '  o="$o $1"']
    if fallback_of:
        lines.append("  case $1 in")
        for primary, fallback in sorted(fallback_of.items()):
            lines += [
                f"    {primary})",
                f'      if [ "$2" = 0 ] && [ -s "$d/{primary}.o" ]; then r{fallback}=s; o="$o {fallback}"',
                f'      elif [ -n "$g" ]; then r{fallback}=h; o="$o {fallback}"',
                f'      else {start(fallback)}; echo "$p{fallback}" >"$d/{fallback}.p"; a="$a {fallback}"; fi ;;',
            ]
        lines.append("  esac")
    lines.append("}")
    lines += [
        # e INDEX...: a header line per command, then the outputs of those that ran, in one `cat`. A
        # skipped fallback says `s`; a command that outlived SIGKILL (status h) is stopped, without output.
        "e() {",
        "  r=$* l=",
        '  for k do eval "c=\\$r$k"; case $c in s|h) ;; *) l="$l $k.o $k.e" ;; esac; done',
        # relative names: a TMPDIR with spaces must not split wc's answer into more words
        '  [ -n "$l" ] && set -- $(cd "$d" && wc -c $l)',
        "  for k in $r; do",
        '    eval "c=\\$r$k"',
        "    case $c in",
        '      s) printf \'%s F %s s 0 0 0\\n\' "$B" "$k" ;;',
        '      h) printf \'%s F %s 255 0 0 1\\n\' "$B" "$k" ;;',
        "      *) x=0",
        '         [ -e "$d/$k.t" ] && x=1',
        '         printf \'%s F %s %s %s %s %s\\n\' "$B" "$k" "$c" "$1" "$3" "$x"',
        "         shift 4 ;;",
        "    esac",
        "  done",
        '  printf \'%s P\\n\' "$B"',
        '  [ -z "$l" ] || (cd "$d" && exec cat $l)',
        "}",
    ]
    primaries = [index for index, _, _ in jobs if index not in fallbacks]
    lines += [start(index) for index in primaries]

    # one watchdog for every timeout, not a `timeout` process per command: at each limit it stops those of
    # its commands still running (TERM, marking them stopped), KILL_AFTER_S later those still there; a
    # second after the last, it tells the script to stop waiting (USR1): what runs then cannot be stopped.
    # A PID is signalled only while /proc shows it running as this script's child: one that has ended may
    # be someone else's by then. A fallback's PID is in INDEX.p, written when it starts.
    limits: dict[int, float] = {}
    for index, timeout_s, _ in jobs:
        if index not in fallbacks:
            limits[index] = timeout_s
            if (after := fallback_of.get(index)) is not None:
                limits[after] = timeout_s + by_index[after][0]
    events: dict[float, list[tuple[str, list[int]]]] = {}
    for limit in sorted(set(limits.values())):
        group = [index for index, value in limits.items() if value == limit]
        events.setdefault(limit, []).append(("TERM", group))
        events.setdefault(limit + KILL_AFTER_S, []).append(("KILL", group))
    watchdog = [
        "(",
        "  trap 'kill \"$y\" 2>/dev/null; exit 0' TERM",
        "  y=",
        # s SIGNAL INDEX: signal INDEX's process if it still runs as our child (or where /proc cannot tell)
        "  s() {",
        '    eval "q=\\$p$2"',
        '    [ -n "$q" ] || read -r q 2>/dev/null <"$d/$2.p" || return 0',
        '    [ -n "$P" ] && z "$q" && return 0',
        '    [ "$1" = TERM ] && : >"$d/$2.t"',
        '    kill -"$1" "$q"',
        "  }",
    ]
    now = 0.0
    for at in sorted(events):
        watchdog.append(f'  sleep {at - now:g} & y=$!; wait "$y"')
        now = at
        for signal_name, group in events[at]:
            watchdog.append(f"  for k in {' '.join(map(str, group))}; do s {signal_name} $k; done")
    # twice, a second apart: once is enough unless the signal comes just before the script's `wait`
    watchdog += ['  sleep 1 & y=$!; wait "$y"', '  kill -USR1 "$M"', '  sleep 1 & y=$!; wait "$y"', '  kill -USR1 "$M"']
    lines += [*watchdog, ") </dev/null >/dev/null 2>&1 &", "W=$!"]
    lines += [
        f"q='{' '.join(str(i) for i in sorted(primaries, key=lambda i: (limits[i], i)))}'",
        # wait for the first command still running, shortest timeout first; then take every other one
        # that has ended too and send their answers. Answers go out in rounds as commands end: one that
        # hangs holds back those after it until the watchdog stops it (or gives up on it), never beyond.
        # Without /proc the answers go out together at the end.
        'while [ -z "$g" ]; do',
        "  set -- $q",
        '  [ "$#" -gt 0 ] || break',
        "  k=$1",
        "  shift",
        "  q=$*",
        '  eval "w=\\$p$k"',
        '  wait "$w"',
        "  c=$?",
        '  if [ -n "$g" ]; then q="$k $q"; break; fi',
        '  t "$k" "$c"',
        '  if [ -n "$P" ]; then',
        "    u=",
        "    for i in $q; do",
        '      eval "w=\\$p$i"',
        '      if z "$w"; then wait "$w"; t "$i" "$?"; else u="$u $i"; fi',
        "    done",
        '    q="$u $a" a=',
        "    e $o",
        "    o=",
        "  else",
        '    q="$q $a" a=',
        "  fi",
        "done",
        # the watchdog gave up: what has ended is answered, what still runs is stuck (and its fallback too)
        'if [ -n "$g" ]; then',
        "  for i in $q; do",
        '    eval "w=\\$p$i"',
        '    if [ -n "$P" ] && z "$w"; then wait "$w"; t "$i" "$?"; else eval "r$i=h"; o="$o $i"; fi',
        "  done",
    ]
    for primary, fallback in sorted(fallback_of.items()):
        lines.append(f'  [ "$r{primary}" = h ] && [ -z "$p{fallback}" ] && r{fallback}=h o="$o {fallback}"')
    lines += [
        "fi",
        '[ -z "$o" ] || e $o',
        # the watchdog's sleep ends now; a stuck command is left to the system, as it would be anyway
        'kill $W 2>/dev/null',
        'wait "$W"',
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
