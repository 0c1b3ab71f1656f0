"""What reading inventories through Ansible adds to one `svdops check --inventory ... --limit ...` process.

Variants, each a fresh process (cold: nothing imported, nothing cached in-process), trials interleaved
so drift in machine load falls on all of them; median and p90 of the wall times:

  old        this tree with svdops/host/inventory.py taken from --old-ref (the parser svdops had; with
             --old-ref main before the inventory cache: Ansible on every run)
  new        this tree (ansible-core's InventoryManager + VariableManager, in-process), its inventory
             cache (svdops/host/inventory_cache.py, in a private $XDG_CACHE_HOME) filled by the untimed
             first run, so timed runs read the cache
  new, cache off   this tree with SVDOPS_INVENTORY_CACHE=off: Ansible reads the inventory every run
  subproc    `ansible-inventory -i INV --limit L --list` alone: what the rejected subprocess design
             would add on top of a process that still has to start itself

`check` runs the whole command against hosts whose SSH port is closed (127.0.0.1, refused at once), so
every variant does the same tiny amount of SSH work; `select` runs only select_targets in a fresh
interpreter, the part that changed. The limit picks 3 hosts, so probing stays small next to start-up.

    .venv/bin/python benchmarks/inventory_startup.py [--sizes 20 100] [--repeats 7] [--old-ref main]
        [--markdown benchmarks/results/inventory_startup.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_inventory(path: Path, hosts: int, port: int) -> Path:
    """An INI inventory of `hosts` nodes in two racks, connection vars in group vars, as labs write them."""
    half = hosts // 2
    path.write_text(
        f"[rack_a]\ngpu[001:{half:03d}]\n\n[rack_b]\ngpu[{half + 1:03d}:{hosts:03d}]\n\n"
        "[gpu:children]\nrack_a\nrack_b\n\n"
        f"[gpu:vars]\nansible_host=127.0.0.1\nansible_port={port}\nansible_user=ops\n",
        encoding="utf-8")
    return path


def old_tree(ref: str, into: Path) -> Path:
    """A copy of this tree's package with the inventory module as it was at `ref`."""
    old = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:svdops/host/inventory.py"],
                         capture_output=True, text=True, check=True).stdout
    shutil.copytree(ROOT / "svdops", into / "svdops", ignore=shutil.ignore_patterns("__pycache__"))
    (into / "svdops" / "host" / "inventory.py").write_text(old, encoding="utf-8")
    # byte-compile once, as an installed package would be; the new tree gets the same treatment
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into / "svdops")], check=True)
    return into


# the inventory cache of the `new` variants: private to this run, never the user's own
CACHE_HOME: dict[str, str] = {}


def environment(pythonpath: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    # the old copy has no profiles/ beside its package; both variants read this tree's
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "SVDOPS_PROFILE_PATH": str(ROOT / "profiles"),
           **CACHE_HOME, **(extra or {})}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def timed(cmd: list[str], pythonpath: Path | None, cwd: Path, extra: dict[str, str] | None = None) -> tuple[float, int]:
    # cwd away from the tree: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environment(pythonpath, extra), cwd=cwd,
                          timeout=300)
    return time.perf_counter() - start, proc.returncode


def assert_imports_from(pythonpath: Path, cwd: Path) -> None:
    """The editable install and the cwd both offer a `svdops`; make sure each variant gets its own."""
    out = subprocess.run([sys.executable, "-c", "import svdops.host.inventory as m; print(m.__file__)"],
                         capture_output=True, text=True, check=True, env=environment(pythonpath), cwd=cwd).stdout
    if not Path(out.strip()).is_relative_to(pythonpath):
        raise SystemExit(f"PYTHONPATH={pythonpath} imported {out.strip()}")


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--old-ref", default="main", help="git ref holding the old parser (default: main)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()

    limit = "gpu:&~gpu00[123]$"
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="svdops-inv-bench-") as tmp_text:
        tmp = Path(tmp_text)
        CACHE_HOME["XDG_CACHE_HOME"] = str(tmp / "cache")
        old = old_tree(args.old_ref, tmp / "old")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "svdops")], check=True)
        port = closed_port()
        assert_imports_from(old, tmp)
        assert_imports_from(ROOT, tmp)
        for size in args.sizes:
            inventory = write_inventory(tmp / f"hosts-{size}", size, port)
            check = [sys.executable, "-c", "from svdops.cli.main import main; main()", "check",
                     "--inventory", str(inventory), "--limit", limit, "--format", "json", "--connect-timeout", "5"]
            select = [sys.executable, "-c",
                      "import sys; from pathlib import Path; from svdops.host.inventory import select_targets; "
                      "t = select_targets(inventory=Path(sys.argv[1]), limit=sys.argv[2]); "
                      "assert [x.name for x in t] == ['gpu001', 'gpu002', 'gpu003'], t", str(inventory), limit]
            subproc = [str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--limit", limit, "--list"]
            off = {"SVDOPS_INVENTORY_CACHE": "off"}
            variants: dict[str, tuple[list[str], Path | None, dict[str, str] | None]] = {
                "check old": (check, old, None), "check new": (check, ROOT, None),
                "check new, cache off": (check, ROOT, off),
                "select old": (select, old, None), "select new": (select, ROOT, None),
                "select new, cache off": (select, ROOT, off),
                "ansible-inventory --list": (subproc, None, None),
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            for cmd, path, extra in variants.values():  # one untimed run each: page cache, .pyc, the cache
                timed(cmd, path, tmp, extra)
            for _ in range(args.repeats):
                for name, (cmd, path, extra) in variants.items():
                    seconds, rc = timed(cmd, path, tmp, extra)
                    expected = 3 if name.startswith("check") else 0  # check: the 3 hosts refuse SSH
                    if rc != expected:
                        raise SystemExit(f"{name} ({size} hosts) exited {rc}, expected {expected}")
                    times[name].append(seconds)
            med = {name: statistics.median(v) for name, v in times.items()}
            for name, values in times.items():
                added = ""
                if " new" in name:
                    base = med[name.split(" new")[0] + " old"]
                    added = f"{med[name] - base:+.2f} s ({med[name] / base:.2f}x)"
                rows.append(f"| {size} | {name} | {med[name]:.2f} | {p90(values):.2f} | {added} |")
                print(rows[-1], flush=True)

    header = [
        f"Inventory start-up, {args.repeats} cold runs per variant (median, p90 in seconds), "
        f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
        f"old = {args.old_ref}, limit `{limit}` (3 hosts)",
        "",
        "| hosts | variant | median s | p90 s | against old |",
        "|---:|---|---:|---:|---|",
    ]
    text = "\n".join(header + rows) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
