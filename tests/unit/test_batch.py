"""BatchShell and its remote script, run by this machine's real `sh` (dash on Debian/Ubuntu).

The script is what an SSH host runs; here `sh -s` runs it locally, so quoting, timeouts, rounds of answers,
caps and framing meet a real POSIX shell and real programs. Over real sshd the same paths are tested in
tests/integration/test_fleet_ssh.py.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from svdops.host.batch import KILL_AFTER_S, BatchShell, FrameReader, ScriptEnd, ScriptRunner, build_script
from svdops.host.shell import Command, CommandResult, LocalShell


class LocalScript:
    """A ScriptRunner on this machine: the script goes to `sh -s`, commands one by one to LocalShell.

    `deadline_s` stands for our own deadline on a host whose command outlives the script's watchdog
    (a process stuck in the kernel); `drop_after_bytes` for a connection lost mid-script.
    """

    def __init__(self, *, env: dict[str, str] | None = None, deadline_s: float | None = None,
                 drop_after_bytes: int | None = None, give_up_after_s: float | None = None) -> None:
        self.name = "local-script"
        self.env = env
        self.deadline_s = deadline_s
        self.drop_after_bytes = drop_after_bytes
        # sends the script's shell the watchdog's last word (USR1) early, as it does when a command
        # outlived SIGKILL: a process stuck in the kernel cannot be made here
        self.give_up_after_s = give_up_after_s
        self.scripts = 0
        self.one_by_one: list[str] = []

    def run(self, command: Command) -> CommandResult:
        self.one_by_one.append(command.key)
        return LocalShell().run(command)

    def timeout_for(self, command: Command) -> float:
        return command.timeout_s

    def run_script(self, script: bytes, feed: Callable[[bytes], None], timeout_s: float) -> ScriptEnd:
        self.scripts += 1
        deadline = time.monotonic() + min(timeout_s, self.deadline_s or timeout_s)
        proc = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env, start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(script)
        proc.stdin.close()
        if self.give_up_after_s is not None:
            give_up = threading.Timer(self.give_up_after_s,
                                      lambda: proc.poll() is None and proc.send_signal(signal.SIGUSR1))
            give_up.start()
        seen = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ScriptEnd(None, timed_out=True)
                ready, _, _ = select.select([proc.stdout], [], [], remaining)
                if not ready:
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                if self.drop_after_bytes is not None and seen + len(data) > self.drop_after_bytes:
                    feed(data[: self.drop_after_bytes - seen])
                    return ScriptEnd(255, error="ssh: the SSH connection dropped (test)")
                seen += len(data)
                feed(data)
            return ScriptEnd(proc.wait(), proc.stderr.read().decode())
        finally:
            if proc.poll() is None:  # TERM first, as a closed channel would: the script removes its folder
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def batch(runner: LocalScript, *commands: Command, cap_bytes: int | None = None) -> dict[str, CommandResult]:
    shell = BatchShell(runner, commands) if cap_bytes is None else BatchShell(runner, commands, cap_bytes=cap_bytes)
    return {c.key: shell.run(c) for c in commands}


def test_local_script_runner_is_a_script_runner() -> None:
    assert isinstance(LocalScript(), ScriptRunner)
    assert not isinstance(LocalShell(), ScriptRunner)  # a shell without run_script is used as it is


NASTY = ("; touch {d}/pwned", "$(touch {d}/pwned2)", "`touch {d}/pwned3`", "a b\tc\nd", "'\"\\", "*", "", "-n")


def test_programs_come_from_path_as_env_would_run_them_never_a_shell_builtin() -> None:
    """The script runs each command as `env NAME=VALUE PROGRAM` would, without an `env` process: the
    variables reach that command only, and a name that is also a builtin of sh runs no builtin."""
    answers = batch(
        LocalScript(),
        Command("type.txt", ("type", "ls")),  # a dash builtin; no program of that name on PATH
        Command("vars.txt", ("sh", "-c", 'echo "$LC_ALL|${SVDOPS_X-unset}|$SVDOPS_Y"'),
                env=(("LC_ALL", "C.UTF-8"), ("SVDOPS_Y", "a b=c $(x)"))),
        Command("after.txt", ("sh", "-c", 'echo "${SVDOPS_Y-unset}"')),
        Command("equals.txt", ("printf", "%s|", "A=1", "B=2")),  # '=' in arguments is data
    )
    assert answers["type.txt"].missing and answers["type.txt"].rc == 127
    assert answers["vars.txt"].stdout == "C.UTF-8|unset|a b=c $(x)\n"
    assert answers["after.txt"].stdout == "unset\n"  # another command never sees them
    assert answers["equals.txt"].stdout == "A=1|B=2|"


def test_each_command_keeps_its_own_exit_status_stdout_and_stderr(tmp_path: Path) -> None:
    args = tuple(a.format(d=tmp_path) for a in NASTY)
    runner = LocalScript()
    answers = batch(
        runner,
        Command("printf.txt", ("printf", "%s|", *args)),
        Command("both.txt", ("sh", "-c", "printf out; echo err >&2; exit 3")),
        Command("env.txt", ("sh", "-c", 'echo "$LC_ALL"')),
        Command("missing.txt", ("svdops-no-such-program", "--version")),
        Command("cat.txt", ("cat", "/nonexistent/file")),
        Command("stdin.txt", ("cat",)),  # reads stdin: gets EOF at once, never the script
        Command("empty.txt", ("true",)),
    )
    assert runner.scripts == 1 and runner.one_by_one == []
    assert answers["printf.txt"].ok and answers["printf.txt"].stdout == "|".join(args) + "|"
    assert not list(tmp_path.iterdir())  # every word reached printf as data; nothing ran
    both = answers["both.txt"]
    assert (both.rc, both.stdout, both.stderr, both.ok) == (3, "out", "err\n", False)
    assert answers["env.txt"].stdout == "C\n"  # Command.env, exported for that command alone
    missing = answers["missing.txt"]
    assert missing.missing and missing.rc == 127 and "not found" in missing.stderr
    assert answers["cat.txt"].rc == 1 and "No such file" in answers["cat.txt"].reason
    assert answers["stdin.txt"].ok and answers["stdin.txt"].stdout == ""
    assert answers["empty.txt"].ok and answers["empty.txt"].stdout == "" and answers["empty.txt"].stderr == ""


def test_binary_and_invalid_utf8_output_decodes_as_a_single_command_would() -> None:
    raw = b"\xff\xfe\x00abc\n\xc3\x28 \xe2\x82\xac"
    escaped = "".join(f"\\{b:03o}" for b in raw)
    answers = batch(LocalScript(), Command("bin.txt", ("printf", escaped)),
                    Command("after.txt", ("echo", "next")))
    assert answers["bin.txt"].stdout == raw.decode("utf-8", errors="replace")
    assert answers["bin.txt"].stdout == LocalShell().run(Command("bin.txt", ("printf", escaped))).stdout
    assert answers["after.txt"].stdout == "next\n"


def test_output_that_looks_like_frames_stays_output() -> None:
    forged = "\nX F 1 0 5 0 0\nX P\nhello\n0123456789abcdef0123456789abcdef F 1 0 2 0 1\n"
    answers = batch(LocalScript(), Command("forge.txt", ("printf", "%s", forged)),
                    Command("real.txt", ("echo", "real")))
    assert answers["forge.txt"].stdout == forged
    assert answers["real.txt"].stdout == "real\n" and not answers["real.txt"].timed_out


def test_a_frame_with_the_real_boundary_inside_its_payload_is_skipped_by_length() -> None:
    """Even output that knew the boundary could not end its frame: payloads are counted, not scanned."""
    boundary = b"b0undary"
    payload = b"\n" + boundary + b" F 1 0 0 0 0\n" + boundary + b" P\n"
    stream = (b"motd banner\n" + boundary + b" H\n" + boundary + b" F 0 0 %d 2 0\n" % len(payload)
              + boundary + b" P\n" + payload + b"e\n" + boundary + b" F 1 7 1 0 1\n" + boundary + b" P\nz")
    whole, bytewise = FrameReader(boundary, 2), FrameReader(boundary, 2)
    whole.feed(stream)
    for i in range(len(stream)):
        bytewise.feed(stream[i:i + 1])
    for reader in (whole, bytewise):
        assert reader.broken is None and reader.started
        assert (reader.frames[0].rc, reader.frames[0].stdout, reader.frames[0].stderr) == (0, payload, b"e\n")
        assert (reader.frames[1].rc, reader.frames[1].stdout, reader.frames[1].stopped) == (7, b"z", True)


def test_a_stream_that_loses_its_frames_is_broken_not_misread() -> None:
    reader = FrameReader(b"bnd", 3)
    reader.feed(b"bnd H\nbnd F 0 0 2 0 0\nbnd P\nabcdef\n")  # two bytes promised, six sent
    assert 0 in reader.frames and reader.frames[0].stdout == b"ab"
    assert reader.broken is not None and 1 not in reader.frames


def test_a_hung_command_times_out_and_the_rest_still_answer() -> None:
    started = time.monotonic()
    answers = batch(
        LocalScript(),
        Command("hang.txt", ("sleep", "30"), timeout_s=1),
        # ignores SIGTERM: the watchdog follows up with SIGKILL
        Command("stubborn.txt", ("sh", "-c", 'trap "" TERM; exec sleep 30'), timeout_s=1),
        Command("quick.txt", ("echo", "quick")),
        Command("slowish.txt", ("sh", "-c", "sleep 0.3; echo late")),
    )
    elapsed = time.monotonic() - started
    assert answers["hang.txt"].timed_out and not answers["hang.txt"].ok
    assert "timed out after 1 s" in answers["hang.txt"].reason
    assert answers["stubborn.txt"].timed_out
    assert answers["quick.txt"].stdout == "quick\n" and answers["slowish.txt"].stdout == "late\n"
    assert elapsed < 1 + KILL_AFTER_S + 2.5, elapsed  # the timeout once, not per command


def test_our_deadline_covers_a_command_the_script_cannot_stop() -> None:
    """A process stuck in the kernel outlives even SIGKILL: what has not answered by our deadline is
    timed out, and what has answered is kept."""
    started = time.monotonic()
    answers = batch(LocalScript(deadline_s=1.5), Command("stuck.txt", ("sleep", "30"), timeout_s=30),
                    Command("quick.txt", ("echo", "quick")))
    assert time.monotonic() - started < 5
    assert answers["stuck.txt"].timed_out and answers["quick.txt"].stdout == "quick\n"


def test_a_command_that_outlives_sigkill_is_given_up_and_the_rest_still_answer(tmp_path: Path) -> None:
    """The watchdog's last word (USR1, a second after its last KILL): the script sends what has ended,
    says the rest was stopped, and ends, instead of waiting on a process stuck in the kernel."""
    primary, fallback, ran = _fallback_pair(tmp_path, ("sleep", "30"), primary_timeout_s=30)
    runner = LocalScript(give_up_after_s=1.0)
    started = time.monotonic()
    commands = (primary, fallback, Command("quick.txt", ("echo", "quick")),
                Command("slowish.txt", ("sh", "-c", "sleep 0.3; echo late"), timeout_s=30))
    shell = BatchShell(runner, commands, fallbacks={fallback.key: primary.key})
    answers = {c.key: shell.run(c) for c in commands}
    assert time.monotonic() - started < 4
    assert answers["quick.txt"].stdout == "quick\n" and answers["slowish.txt"].stdout == "late\n"
    assert answers["primary.txt"].timed_out and answers["fallback.txt"].timed_out  # never started: stopped too
    assert not ran.exists() and runner.one_by_one == [] and runner.scripts == 1


class NoProc(LocalScript):
    """A host whose /proc does not show the script's children (not Linux, say)."""

    def run_script(self, script: bytes, feed: Callable[[bytes], None], timeout_s: float) -> ScriptEnd:
        assert b'[ -r "/proc/$M/stat" ] && P=1' in script
        return super().run_script(script.replace(b'[ -r "/proc/$M/stat" ] && P=1', b":"), feed, timeout_s)


def test_without_proc_every_answer_comes_at_the_end_and_a_hung_command_is_still_stopped(tmp_path: Path) -> None:
    primary, fallback, _ran = _fallback_pair(tmp_path, ("false",))
    runner = NoProc()
    commands = (primary, fallback, Command("hang.txt", ("sleep", "30"), timeout_s=1),
                Command("quick.txt", ("echo", "quick")))
    started = time.monotonic()
    shell = BatchShell(runner, commands, fallbacks={fallback.key: primary.key})
    answers = {c.key: shell.run(c) for c in commands}
    assert time.monotonic() - started < 1 + KILL_AFTER_S + 2.5
    assert answers["hang.txt"].timed_out and answers["quick.txt"].stdout == "quick\n"
    assert answers["primary.txt"].rc == 1 and answers["fallback.txt"].stdout == "fallback\n"
    assert runner.one_by_one == [] and shell.fallback is None


def test_variables_in_the_login_environment_do_not_steer_the_script(tmp_path: Path) -> None:
    """The script's own variables (g: give up, P: /proc usable, p/r: PIDs and statuses, ...) start empty
    or are set by it: a login environment that exports the same names changes nothing."""
    primary, fallback, ran = _fallback_pair(tmp_path, ("false",))
    hostile = {name: "1" for name in ("g", "a", "o", "u", "q", "W", "M", "P", "c", "k", "w", "l", "x", "y")}
    hostile.update({f"{kind}{i}": "1" for kind in "prt" for i in range(4)})
    runner = LocalScript(env={**os.environ, **hostile})
    commands = (primary, fallback, Command("quick.txt", ("echo", "quick")),
                Command("hang.txt", ("sleep", "30"), timeout_s=1))
    shell = BatchShell(runner, commands, fallbacks={fallback.key: primary.key})
    answers = {c.key: shell.run(c) for c in commands}
    assert answers["primary.txt"].rc == 1 and answers["fallback.txt"].stdout == "fallback\n"
    assert ran.read_text() == "ran\n" and answers["quick.txt"].stdout == "quick\n"
    assert answers["hang.txt"].timed_out and runner.one_by_one == [] and shell.fallback is None


def test_each_command_costs_one_process(tmp_path: Path) -> None:
    """No wrapper process per command: each command's PID is a direct child of the script's shell, and
    the temporary folder holds its outputs and nothing per command besides (a fallback's PID file aside)."""
    commands = [Command(f"{i}.txt", ("sh", "-c", 'echo "$PPID"; sleep 0.2')) for i in range(5)]
    answers = batch(LocalScript(env={**os.environ, "TMPDIR": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}),
                    *commands)
    parents = {answers[f"{i}.txt"].stdout for i in range(5)}
    assert len(parents) == 1, parents  # the script's own shell, for every command
    assert not list(tmp_path.iterdir())  # removed on exit


def test_huge_output_is_cut_at_the_cap_with_a_note() -> None:
    cap = 64 * 1024
    answers = batch(LocalScript(), Command("huge.txt", ("sh", "-c", "yes svdops | head -c 10000000")),
                    Command("next.txt", ("echo", "next")), cap_bytes=cap)
    huge = answers["huge.txt"]
    assert len(huge.stdout) == cap and huge.stdout.startswith("svdops\nsvdops\n")
    assert huge.stderr.startswith(f"svdops: stdout cut at {cap} bytes")
    # head was stopped by the file size limit (SIGXFSZ): a failed command whose reason says why
    assert huge.rc == 128 + signal.SIGXFSZ and f"cut at {cap} bytes" in huge.reason
    assert answers["next.txt"].stdout == "next\n"


def test_a_connection_lost_mid_script_keeps_what_came_and_asks_the_rest_one_by_one() -> None:
    # the header line, then a's frame (header, payload mark, "a\n"), then 5 bytes of b's: a 32-digit boundary
    runner = LocalScript(drop_after_bytes=(33 + 2) + (33 + 13) + (33 + 2) + 2 + 5)
    commands = (Command("a.txt", ("echo", "a")), Command("b.txt", ("sh", "-c", "sleep 0.5; echo b")),
                Command("c.txt", ("sh", "-c", "sleep 0.5; echo c")))
    shell = BatchShell(runner, commands)
    answers = {c.key: shell.run(c) for c in commands}
    assert shell.fallback is not None and "dropped" in shell.fallback
    assert "a.txt" not in runner.one_by_one  # its frame had come
    assert sorted(runner.one_by_one) == ["b.txt", "c.txt"]
    assert [answers[k].stdout for k in ("a.txt", "b.txt", "c.txt")] == ["a\n", "b\n", "c\n"]


class NoMemoryFs(LocalScript):
    """This machine as a host without /dev/shm (a container, say)."""

    def run_script(self, script: bytes, feed: Callable[[bytes], None], timeout_s: float) -> ScriptEnd:
        assert b" /dev/shm " in script
        return super().run_script(script.replace(b" /dev/shm ", b" /nonexistent/shm "), feed, timeout_s)


def test_a_host_without_a_temporary_folder_gets_every_command_one_by_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    runner = NoMemoryFs(env={**env, "TMPDIR": str(tmp_path / "absent")})
    commands = (Command("a.txt", ("echo", "a")), Command("b.txt", ("echo", "b")))
    shell = BatchShell(runner, commands)
    assert [shell.run(c).stdout for c in commands] == ["a\n", "b\n"]
    assert runner.scripts == 1 and runner.one_by_one == ["a.txt", "b.txt"]
    assert shell.fallback is not None and "no private temporary folder" in shell.fallback


def test_without_dev_shm_the_script_uses_tmpdir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    runner = NoMemoryFs(env={**env, "TMPDIR": str(tmp_path)})
    answers = batch(runner, Command("a.txt", ("echo", "a")))
    assert answers["a.txt"].stdout == "a\n" and runner.one_by_one == []
    assert not list(tmp_path.iterdir())  # removed on exit


def test_a_command_it_was_not_primed_with_goes_one_by_one() -> None:
    runner = LocalScript()
    primed = Command("x.txt", ("echo", "primed"))
    shell = BatchShell(runner, [primed])
    assert shell.run(Command("y.txt", ("echo", "other"))).stdout == "other\n"
    assert shell.run(Command("x.txt", ("echo", "same key, other argv"))).stdout == "same key, other argv\n"
    assert runner.scripts == 0 and runner.one_by_one == ["y.txt", "x.txt"]
    assert shell.run(primed).stdout == "primed\n" and runner.scripts == 1


def test_many_threads_asking_at_once_run_the_script_once() -> None:
    runner = LocalScript()
    commands = [Command(f"{i}.txt", ("echo", str(i))) for i in range(20)]
    shell = BatchShell(runner, commands)
    barrier = threading.Barrier(10)

    def ask(command: Command) -> str:
        if int(command.key.split(".")[0]) < 10:
            barrier.wait()
        return shell.run(command).stdout

    with ThreadPoolExecutor(10) as pool:
        outputs = list(pool.map(ask, commands))
    assert outputs == [f"{i}\n" for i in range(20)]
    assert runner.scripts == 1 and runner.one_by_one == []


def test_a_command_env_would_misread_is_refused_without_running() -> None:
    runner = LocalScript()
    answers = batch(runner, Command("bad.txt", ("A=b",)), Command("ok.txt", ("echo", "ok")))
    assert answers["bad.txt"].rc == 2 and "refused" in answers["bad.txt"].stderr
    assert answers["ok.txt"].stdout == "ok\n"


def test_the_boundary_must_be_plain() -> None:
    with pytest.raises(ValueError):
        build_script([(0, 1.0, ["true"])], "a b")


def test_prefetch_says_whether_the_script_answered_every_command(tmp_path: Path) -> None:
    """probe_host reads a host's answers one after another, without a thread pool, only when prefetch
    says the script answered them all; otherwise they are asked in parallel, as before."""
    commands = (Command("a.txt", ("echo", "a")), Command("b.txt", ("echo", "b")))
    runner = LocalScript()
    shell = BatchShell(runner, commands)
    assert shell.prefetch() is True and runner.scripts == 1
    assert [shell.run(c).stdout for c in commands] == ["a\n", "b\n"]
    assert runner.scripts == 1 and runner.one_by_one == []  # the script ran once, before any run()

    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    refused = NoMemoryFs(env={**env, "TMPDIR": str(tmp_path / "absent")})
    shell = BatchShell(refused, commands)
    assert shell.prefetch() is False and refused.one_by_one == []
    assert [shell.run(c).stdout for c in commands] == ["a\n", "b\n"]
    assert refused.scripts == 1 and refused.one_by_one == ["a.txt", "b.txt"]


# ---------------------------------------------------------------- fallbacks: run only when needed


def _fallback_pair(tmp_path: Path, primary_argv: tuple[str, ...], *,
                   primary_timeout_s: float = 5) -> tuple[Command, Command, Path]:
    ran = tmp_path / "fallback-ran"
    primary = Command("primary.txt", primary_argv, timeout_s=primary_timeout_s)
    fallback = Command("fallback.txt", ("sh", "-c", f'echo ran >> "{ran}"; echo fallback'), timeout_s=5)
    return primary, fallback, ran


def test_a_fallback_whose_primary_answered_is_not_run(tmp_path: Path) -> None:
    primary, fallback, ran = _fallback_pair(tmp_path, ("echo", "primary"))
    runner = LocalScript()
    shell = BatchShell(runner, [primary, fallback, Command("other.txt", ("echo", "other"))],
                       fallbacks={fallback.key: primary.key})
    assert shell.prefetch()
    assert shell.run(primary).stdout == "primary\n" and shell.run(primary).ok
    skipped = shell.run(fallback)
    assert skipped.rc is None and not skipped.ok and skipped.stdout == ""
    assert "not run: `echo primary` answered first" in skipped.stderr
    assert not ran.exists(), "the script ran the fallback although its primary answered"
    assert runner.scripts == 1 and runner.one_by_one == [] and shell.fallback is None


@pytest.mark.parametrize("primary_argv", [("false",), ("no-such-program-svdops",), ("true",)],
                         ids=["exit 1", "missing", "no output"])
def test_a_fallback_runs_when_its_primary_answered_nothing_usable(tmp_path: Path,
                                                                  primary_argv: tuple[str, ...]) -> None:
    primary, fallback, ran = _fallback_pair(tmp_path, primary_argv)
    runner = LocalScript()
    answers = {c.key: c for c in (primary, fallback)}
    shell = BatchShell(runner, answers.values(), fallbacks={fallback.key: primary.key})
    first = shell.run(primary)
    assert not (first.ok and first.stdout.strip())
    assert shell.run(fallback).stdout == "fallback\n" and shell.run(fallback).ok
    assert ran.read_text() == "ran\n" and runner.one_by_one == [] and runner.scripts == 1


def test_a_fallback_after_a_primary_that_timed_out_gets_its_own_time(tmp_path: Path) -> None:
    primary, fallback, ran = _fallback_pair(tmp_path, ("sleep", "30"), primary_timeout_s=1)
    started = time.monotonic()
    runner = LocalScript()
    shell = BatchShell(runner, [primary, fallback, Command("quick.txt", ("echo", "quick"))],
                       fallbacks={fallback.key: primary.key})
    answers = {c.key: shell.run(c) for c in (primary, fallback)}
    assert answers["primary.txt"].timed_out
    assert answers["fallback.txt"].stdout == "fallback\n" and not answers["fallback.txt"].timed_out
    assert ran.exists() and runner.one_by_one == []
    assert time.monotonic() - started < 1 + KILL_AFTER_S + 3


def test_blank_output_counts_as_nothing_usable_so_the_fallback_is_asked_on_its_own(tmp_path: Path) -> None:
    """The script's test is `status 0 and any stdout`; the collectors want stdout that is not all blanks.
    Where the two differ the skipped fallback is not passed off as an answer: it goes one by one."""
    primary, fallback, ran = _fallback_pair(tmp_path, ("echo", "   "))
    runner = LocalScript()
    shell = BatchShell(runner, [primary, fallback], fallbacks={fallback.key: primary.key})
    assert not shell.prefetch()
    assert shell.run(fallback).stdout == "fallback\n"
    assert runner.one_by_one == ["fallback.txt"] and ran.read_text() == "ran\n"


def test_a_skipped_frame_is_read_and_one_with_output_is_not() -> None:
    reader = FrameReader(b"B0", 2)
    reader.feed(b"B0 H\nB0 F 1 s 0 0 0\nB0 P\n")
    assert reader.frames[1].rc is None and reader.frames[1].stdout == b"" and reader.broken is None
    bad = FrameReader(b"B0", 2)
    bad.feed(b"B0 H\nB0 F 1 s 3 0 0\nB0 P\nabc")
    assert bad.broken is not None and 1 not in bad.frames


def test_one_fallback_per_primary() -> None:
    jobs = [(0, 1.0, ["true"]), (1, 1.0, ["true"]), (2, 1.0, ["true"])]
    with pytest.raises(ValueError):
        build_script(jobs, "abc", fallbacks={1: 0, 2: 0})
    with pytest.raises(ValueError):
        build_script(jobs, "abc", fallbacks={1: 0, 0: 2})
