"""Fleet check over SSH vs `ansible all -m setup`, on the same loopback sshd hosts, in one run.

Both sides start cold (a fresh process), use the same inventory, user, key, known_hosts and forks,
and gather facts from every host; ours also judges them against the svd-host profile. OpenSSH's
connection sharing is off for Ansible (ANSIBLE_SSH_ARGS="-o ControlMaster=no", as in docs RIGS), so
neither side reuses a connection from an earlier trial. Trials alternate (ours, ansible, ours, ...)
so drift in machine load falls on both; the ratio is of the medians. Goal (issue 4): >= 3x faster.

    .venv/bin/python benchmarks/fleet_vs_ansible.py [--sizes 20 100] [--repeats 3] [--forks 32]
        [--markdown benchmarks/results/fleet_vs_ansible.md]

Needs /usr/sbin/sshd (scripts/setup-dev.sh installs it as root) and ansible-core (the [dev] extra).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # sshd_fleet reads its hosts through tests.support
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from sshd_fleet import SshdFleet, running_fleet  # noqa: E402  (the rig lives with the tests)

VENV_BIN = Path(sys.executable).parent


CLIENT_CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(fleet: SshdFleet, inventory: Path, forks: int, out: Path) -> tuple[float, str]:
    argv = [str(VENV_BIN / "svdops"), "check", "--inventory", str(inventory), "--forks", str(forks),
            "--format", "json", "-o", str(out)]
    cpu0, start = _children_cpu(), time.monotonic()
    proc = subprocess.run(argv, env=fleet.client_env(), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    # the client's own CPU; the rest of the wall time is sshd and the remote commands on the same CPUs
    CLIENT_CPU.setdefault(str(len(fleet.hosts)), []).append(_children_cpu() - cpu0)
    data = json.loads(out.read_text())
    by_status = data["summary"]["by_status"]
    if by_status["ok"] != len(fleet.hosts):
        raise RuntimeError(f"svdops reached {by_status} hosts (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, f"exit {proc.returncode}, {by_status['ok']} hosts checked"


def ansible(fleet: SshdFleet, inventory: Path, forks: int, work: Path, pipelining: bool) -> tuple[float, str]:
    env = fleet.client_env()
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        LC_ALL="C.UTF-8",
        ANSIBLE_HOME=str(work / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(work / "ansible-local"),
        ANSIBLE_SSH_ARGS=f"-o ControlMaster=no -o UserKnownHostsFile={fleet.known_hosts}",
        ANSIBLE_PIPELINING="True" if pipelining else "False",
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(VENV_BIN / "ansible"), "all", "-i", str(inventory), "-m", "setup", "--forks", str(forks), "--one-line"]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    # ad-hoc one-line output: "NAME | SUCCESS => {...facts...}" per host
    good = sum(1 for line in proc.stdout.splitlines() if " | SUCCESS" in line)
    if good != len(fleet.hosts):
        raise RuntimeError(f"ansible gathered facts from {good}/{len(fleet.hosts)} hosts (exit {proc.returncode}): "
                           f"{proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    return elapsed, f"exit {proc.returncode}, {good} hosts with facts"


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "n/a"

    import fabric
    import paramiko

    return {
        "host": platform.node(),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.platform()}",
        "python": platform.python_version(),
        "openssh": version(["/usr/sbin/sshd", "-V"]) if Path("/usr/sbin/sshd").exists() else "n/a",
        "ansible": version([str(VENV_BIN / "ansible"), "--version"]),
        "fabric / paramiko": f"{fabric.__version__} / {paramiko.__version__}",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forks", type=int, default=32, help="for both tools (svdops' default)")
    parser.add_argument("--pipelining", action="store_true", help="also time Ansible with pipelining on")
    parser.add_argument("--markdown", type=Path, help="write the result table here")
    args = parser.parse_args()
    if shutil.which("ansible", path=str(VENV_BIN)) is None:
        print("ansible not found in the venv: pip install -e '.[dev]'", file=sys.stderr)
        return 2

    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"svdops-bench-{size}-") as tmp:
            work = Path(tmp)
            t0 = time.monotonic()
            with running_fleet(work / "fleet", size) as fleet:
                started = time.monotonic() - t0
                inventory = fleet.write_inventory(
                    work / "hosts.ini",
                    extra_vars={"ansible_python_interpreter": "/usr/bin/python3",
                                "ansible_remote_tmp": str(work / "ansible-remote")},
                )
                variants = [("ansible", False)] + ([("ansible+pipelining", True)] if args.pipelining else [])
                times: dict[str, list[float]] = {"svdops": []} | {name: [] for name, _ in variants}
                notes: dict[str, str] = {}
                # one untimed round each: page cache, .pyc files, sshd's first fork
                ours(fleet, inventory, args.forks, work / "out.json")
                ansible(fleet, inventory, args.forks, work, False)
                for i in range(args.repeats):
                    t, notes["svdops"] = ours(fleet, inventory, args.forks, work / "out.json")
                    times["svdops"].append(t)
                    for name, pipelining in variants:
                        t, notes[name] = ansible(fleet, inventory, args.forks, work, pipelining)
                        times[name].append(t)
                    print(f"{size} hosts, round {i + 1}: " +
                          ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
            ours_median = statistics.median(times["svdops"])
            for name, values in times.items():
                median = statistics.median(values)
                rows.append({"hosts": size, "tool": name, "median_s": median, "min_s": min(values),
                             "max_s": max(values), "ratio": median / ours_median, "runs": len(values),
                             "note": notes[name], "fleet_start_s": started})

    info = machine()
    lines = [
        "# Fleet check vs `ansible all -m setup` (loopback sshd hosts)",
        "",
        "Produced by `benchmarks/fleet_vs_ansible.py` in one run: both tools against the same real sshd",
        "servers on 127.0.0.1 (tests/integration/sshd_fleet.py: each host serves a recorded GPU host), same",
        "inventory, key, known_hosts and forks; cold processes; trials alternate; one untimed warm-up each.",
        "`svdops check` gathers ~30 read-only commands per host and judges them against the svd-host",
        "profile; `ansible -m setup` gathers Ansible's facts (ControlMaster off, pipelining off unless noted).",
        "",
        "| hosts | tool | median wall s | min | max | runs | ansible / svdops | result |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = "1.0 (reference)" if r["tool"] == "svdops" else f"**{r['ratio']:.1f}x**"
        lines.append(f"| {r['hosts']} | {r['tool']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} "
                     f"| {r['runs']} | {ratio} | {r['note']} |")
    lines += ["", "Goal (issue 4): svdops at least 3x faster than `ansible all -m setup`."]
    for r in rows:
        if r["tool"] != "svdops":
            verdict = "met" if r["ratio"] >= 3 else "NOT met"
            lines.append(f"- {r['hosts']} hosts, {r['tool']}: {r['ratio']:.1f}x, goal {verdict}")
    for size, cpu in CLIENT_CPU.items():
        ours_wall = next(r["median_s"] for r in rows if r["tool"] == "svdops" and str(r["hosts"]) == size)
        lines.append(f"- {size} hosts: the svdops process itself used {statistics.median(cpu):.2f} s of CPU "
                     f"(median) in {ours_wall:.2f} s of wall time; the rest of both CPUs went to the sshd "
                     f"servers and the ~30 remote commands per host, which run on this same machine")
    lines += ["", "Machine:", ""] + [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", f"Forks: {args.forks} for both tools. The sshd servers share the same CPUs as both clients."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
