"""Fleet check over SSH vs `ansible all -m setup`, on the same loopback sshd hosts, in one run.

Both sides start cold (a fresh process), use the same inventory, user, key, known_hosts and forks,
and gather facts from every host; ours also judges them against the svd-host profile. OpenSSH's
connection sharing is off for Ansible (ANSIBLE_SSH_ARGS="-o ControlMaster=no", as in docs RIGS), so
neither side reuses a connection from an earlier trial. Trials alternate (ours, ansible, ours, ...)
so drift in machine load falls on both; the ratio is of the medians. Goals: issue 4, >= 3x faster than
`ansible -m setup`; issue 17, >= 5x faster than it with pipelining (--pipelining times that too).

Besides wall time, each trial records CPU: the client process's own, and the hosts' (every sshd of the
fleet with the sessions and commands it ran; sshd_fleet.SshdFleet.host_cpu_s). On a shared machine
wall time moves with other people's load; CPU seconds spent on the work move much less.

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


# (hosts, tool) -> [(client CPU s, host CPU s)] per timed trial
CPU: dict[tuple[int, str], list[tuple[float, float]]] = {}
# sshd reaps a session's processes a moment after the client hangs up
_SETTLE_S = 0.5
# svdops reading the inventory through Ansible on every run (its inventory cache turned off)
NO_CACHE = "svdops, inventory cache off"


def byte_compile() -> None:
    """Compile this tree's svdops once, as installing a wheel does (pip byte-compiles; the venv's Ansible
    is compiled too). Without it, a PYTHONDONTWRITEBYTECODE environment recompiles every module of
    every svdops run from source, which no installed svdops does."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "svdops")], check=True,
                   stdout=subprocess.DEVNULL)


def assert_runs_this_tree(fleet: SshdFleet) -> None:
    out = subprocess.run([str(VENV_BIN / "python"), "-c", "import svdops; print(svdops.__file__)"],
                         capture_output=True, text=True, check=True, env=ours_env(fleet), cwd="/").stdout
    if not Path(out.strip()).is_relative_to(ROOT):
        raise SystemExit(f"the svdops under test is {out.strip()}, not this tree's")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# the 1-minute load average at the start of every trial: other work on the machine, said in the results
LOADS: list[float] = []


def _timed(fleet: SshdFleet, tool: str, argv: list[str],
           env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    time.sleep(_SETTLE_S)  # the previous trial's sessions are reaped and counted before we start
    LOADS.append(os.getloadavg()[0])
    host0, cpu0, start = fleet.host_cpu_s(), _children_cpu(), time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    client = _children_cpu() - cpu0
    time.sleep(_SETTLE_S)
    CPU.setdefault((len(fleet.hosts), tool), []).append((client, fleet.host_cpu_s() - host0))
    return elapsed, proc


def ours_env(fleet: SshdFleet, *, cache: bool = True) -> dict[str, str]:
    """The fleet's client environment, running this tree's svdops (ahead of any installed copy)."""
    env = fleet.client_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if not cache:
        env["SVDOPS_INVENTORY_CACHE"] = "off"
    return env


def ours(fleet: SshdFleet, inventory: Path, forks: int, out: Path, *, cache: bool = True) -> tuple[float, str]:
    argv = [str(VENV_BIN / "svdops"), "check", "--inventory", str(inventory), "--forks", str(forks),
            "--format", "json", "-o", str(out)]
    elapsed, proc = _timed(fleet, "svdops" if cache else NO_CACHE, argv, ours_env(fleet, cache=cache))
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
    elapsed, proc = _timed(fleet, "ansible+pipelining" if pipelining else "ansible", argv, env)
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
    byte_compile()
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
                assert_runs_this_tree(fleet)
                variants = [("ansible", False)] + ([("ansible+pipelining", True)] if args.pipelining else [])
                times: dict[str, list[float]] = {"svdops": [], NO_CACHE: []} | {name: [] for name, _ in variants}
                notes: dict[str, str] = {}
                # one untimed round each: page cache, .pyc files, sshd's first fork; svdops' inventory cache
                # (in the fleet's HOME) is filled here, so timed `svdops` runs read it
                ours(fleet, inventory, args.forks, work / "out.json")
                ansible(fleet, inventory, args.forks, work, False)
                for i in range(args.repeats):
                    t, notes["svdops"] = ours(fleet, inventory, args.forks, work / "out.json")
                    times["svdops"].append(t)
                    t, notes[NO_CACHE] = ours(fleet, inventory, args.forks, work / "out.json", cache=False)
                    times[NO_CACHE].append(t)
                    for name, pipelining in variants:
                        t, notes[name] = ansible(fleet, inventory, args.forks, work, pipelining)
                        times[name].append(t)
                    print(f"{size} hosts, round {i + 1}: " +
                          ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
            ours_median = statistics.median(times["svdops"])
            ours_cpu = statistics.median(sum(c) for c in CPU[(size, "svdops")][-args.repeats:])
            for name, values in times.items():
                median = statistics.median(values)
                cpu = CPU[(size, name)][-args.repeats:]  # the timed trials, not the warm-up
                client_cpu = statistics.median(c for c, _ in cpu)
                host_cpu = statistics.median(h for _, h in cpu)
                total_cpu = statistics.median(c + h for c, h in cpu)
                rows.append({"hosts": size, "tool": name, "median_s": median, "min_s": min(values),
                             "max_s": max(values), "ratio": median / ours_median, "runs": len(values),
                             "client_cpu_s": client_cpu, "host_cpu_s": host_cpu, "cpu_ratio": total_cpu / ours_cpu,
                             "note": notes[name], "fleet_start_s": started})

    info = machine()
    lines = [
        "# Fleet check vs `ansible all -m setup` (loopback sshd hosts)",
        "",
        "Produced by `benchmarks/fleet_vs_ansible.py` in one run: both tools against the same real sshd",
        "servers on 127.0.0.1 (tests/integration/sshd_fleet.py: each host serves a recorded GPU host), same",
        "inventory, key, known_hosts and forks; cold processes; trials alternate; one untimed warm-up each.",
        "`svdops check` gathers ~30 read-only commands per host (one remote script per host) and judges",
        "them against the svd-host profile; `ansible -m setup` gathers Ansible's facts (ControlMaster off,",
        "pipelining off unless noted). CPU columns are medians: the client process, and the hosts (the",
        "fleet's sshd servers with every session and remote command they ran).",
        "svdops runs byte-compiled, as an installed wheel does (so is the venv's Ansible). Its inventory",
        "cache (svdops/host/inventory_cache.py) is filled by the warm-up run, so `svdops` rows read the",
        f"inventory from it; `{NO_CACHE}` rows read it through Ansible on every run, as before the cache",
        "(their ratio column is that run's time over the `svdops` row's).",
        "",
        "| hosts | tool | median wall s | min | max | runs | ansible / svdops (wall) | client CPU s | host CPU s "
        "| ansible / svdops (CPU) | result |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = "1.0 (reference)" if r["tool"] == "svdops" else \
            f"{r['ratio']:.2f}x" if r["tool"] == NO_CACHE else f"**{r['ratio']:.1f}x**"
        cpu_ratio = "1.0" if r["tool"] == "svdops" else f"{r['cpu_ratio']:.1f}x"
        lines.append(f"| {r['hosts']} | {r['tool']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} "
                     f"| {r['runs']} | {ratio} | {r['client_cpu_s']:.2f} | {r['host_cpu_s']:.2f} | {cpu_ratio} "
                     f"| {r['note']} |")
    lines += ["", "Goals: issue 4, svdops at least 3x faster than `ansible all -m setup`; issue 17, at least 5x "
              "faster than the same with pipelining."]
    by = {(r["hosts"], r["tool"]): r for r in rows}
    for r in rows:
        if r["tool"] not in ("svdops", NO_CACHE):
            goal = 5 if r["tool"] == "ansible+pipelining" else 3
            verdict = "met" if r["ratio"] >= goal else "NOT met"
            uncached = r["median_s"] / by[(r["hosts"], NO_CACHE)]["median_s"]
            lines.append(f"- {r['hosts']} hosts, {r['tool']}: {r['ratio']:.1f}x (goal {goal}x: {verdict}); "
                         f"{r['cpu_ratio']:.1f}x the CPU; {uncached:.1f}x svdops with its inventory cache off")
    for r in rows:
        if r["tool"] in ("svdops", NO_CACHE):
            lines.append(f"- {r['hosts']} hosts, {r['tool']}: its own process used {r['client_cpu_s']:.2f} s of "
                         f"CPU and the hosts {r['host_cpu_s']:.2f} s ({1000 * r['host_cpu_s'] / r['hosts']:.0f} ms per "
                         f"host: sshd and the ~30 commands) in {r['median_s']:.2f} s of wall time on the same CPUs")
    lines += ["", "Machine:", ""] + [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", f"Forks: {args.forks} for both tools. The sshd servers share the same CPUs as both clients."]
    if LOADS:
        lines += [f"Load average (1 min) at the start of the trials: median {statistics.median(LOADS):.1f}, "
                  f"min {min(LOADS):.1f}, max {max(LOADS):.1f} (a load above 2 is other work competing for the "
                  "2 CPUs; it slows whichever tool is running, and trials alternate)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
