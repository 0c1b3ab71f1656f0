"""`svdops` run as a process ends itself (svdops.cli.main.end_process) once its output is out: the
exit status is click's, atexit handlers still run, and what went to stdout and stderr is all there."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN = ("import atexit, sys\n"
       "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
       "from svdops.cli.main import main\n"
       "sys.argv = ['svdops', *sys.argv[1:]]\n"
       "main()\n")


def svdops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "status"), [(("--version",), 0), (("no-such-command",), 2),
                                              (("check", "--profile", "/nonexistent/profile.yaml"), 2)])
def test_the_exit_status_is_clicks_and_atexit_handlers_run(args: tuple[str, ...], status: int) -> None:
    proc = svdops(*args)
    assert proc.returncode == status, proc.stderr
    assert proc.stderr.rstrip().endswith("atexit ran")
    if status == 0:
        assert proc.stdout.startswith("svdops ")


def test_a_long_output_arrives_whole() -> None:
    proc = svdops("--help")
    direct = subprocess.run(
        [sys.executable, "-c", "from svdops.cli.main import cli; cli.main(['--help'], prog_name='svdops')"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == direct.stdout and len(proc.stdout) > 500
