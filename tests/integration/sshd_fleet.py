"""A fleet of real OpenSSH servers on 127.0.0.1, each answering as a recorded GPU host.

Every host is its own `/usr/sbin/sshd -D` with its own port, host key, authorized_keys and folder,
all under one temporary directory; nothing in /etc or ~ is touched. sshd puts the host's `bin/`
first on PATH (`SetEnv PATH=...` in its sshd_config), and that folder holds small sh scripts named
after the programs the probes run (nvidia-smi, cat, lscpu, python3, ...): each one matches its exact
argv against svdops' command registry and prints that host's recorded output, stderr and exit
status. An invocation it does not know falls through (`cat` to the real cat; others exit 127), so
the probes cannot tell these hosts from real ones except by the data.

Host kinds, for the failure modes a fleet run must survive:
  ok           a recorded host
  down         a port with nothing listening (connection refused)
  wrong-key    its authorized_keys holds a different key (authentication fails)
  hang         its nvidia-smi sleeps (a command timeout)
  unknown-key  answers fine, but its host key is left out of the test known_hosts

Used by tests/integration/test_fleet_ssh.py and benchmarks/fleet_vs_ansible.py.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib
import os
import pkgutil
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import recorded_hosts as fixture_hosts

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
HANG_SECONDS = 30  # far beyond any --command-timeout the tests use; killed at teardown anyway

KINDS = ("ok", "down", "wrong-key", "hang", "unknown-key")


def skip_reason() -> str | None:
    """Why the rig cannot run here, or None. Only a missing sshd that we may not install is a reason."""
    if not SSHD.exists():
        if os.geteuid() != 0:
            return f"{SSHD} is absent and we are not root to install it (apt-get install openssh-server)"
        return f"{SSHD} is absent: run scripts/setup-dev.sh (installs openssh-server as root)"
    if not Path(SSH_KEYGEN).exists():
        return "ssh-keygen is absent (openssh-client)"
    return None


def recorded_hosts() -> list[Path]:
    """Recorded GPU host folders to serve (tests/fixtures/hosts; never empty)."""
    return fixture_hosts(having="nvidia-smi-q.xml")


@dataclass
class FakeHost:
    name: str
    port: int
    folder: Path
    kind: str
    recorded: Path | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts_name(self) -> str:
        return f"[127.0.0.1]:{self.port}"


@dataclass
class SshdFleet:
    root: Path
    user: str
    client_key: Path
    known_hosts: Path
    home: Path
    hosts: list[FakeHost] = field(default_factory=list)

    def host(self, name: str) -> FakeHost:
        return next(h for h in self.hosts if h.name == name)

    def of_kind(self, kind: str) -> list[FakeHost]:
        return [h for h in self.hosts if h.kind == kind]

    def client_env(self) -> dict[str, str]:
        """Environment for an svdops run against the fleet: a private HOME (no ~/.ssh/config, no keys)
        and the rig's known_hosts; no agent."""
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env.update(HOME=str(self.home), SVDOPS_KNOWN_HOSTS=str(self.known_hosts))
        return env

    def write_inventory(self, path: Path, *, fmt: str = "ini", extra_vars: dict[str, str] | None = None) -> Path:
        """An Ansible inventory of every host: group `gpu`, plus one group per host kind."""
        common = {"ansible_host": "127.0.0.1", "ansible_user": self.user,
                  "ansible_ssh_private_key_file": str(self.client_key), **(extra_vars or {})}
        if fmt == "yaml":
            import yaml

            kinds: dict[str, dict[str, object]] = {}
            for h in self.hosts:
                kinds.setdefault(h.kind.replace("-", "_"), {"hosts": {}})["hosts"][h.name] = None  # type: ignore[index]
            data = {"all": {
                "vars": common,
                "children": {
                    "gpu": {"hosts": {h.name: {"ansible_port": h.port} for h in self.hosts}},
                    **kinds,
                },
            }}
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            return path
        lines = ["[gpu]"]
        lines += [f"{h.name} ansible_port={h.port}" for h in self.hosts]
        by_kind: dict[str, list[str]] = {}
        for h in self.hosts:
            by_kind.setdefault(h.kind.replace("-", "_"), []).append(h.name)
        for kind, names in by_kind.items():
            lines += ["", f"[{kind}]", *names]
        lines += ["", "[all:vars]", *(f"{k}={v}" for k, v in common.items())]
        path.write_text("\n".join(lines) + "\n")
        return path

    def host_cpu_s(self) -> float:
        """CPU seconds the hosts have spent: every sshd listener with its finished sessions and the
        commands they ran (reaped children count in cutime/cstime). A client's work on the hosts is the
        difference across its run, whatever else loads the machine."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for h in self.hosts:
            if h.process is None or h.process.poll() is not None:
                continue
            try:
                fields = Path(f"/proc/{h.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        return total / tick

    def stop(self) -> None:
        """Stop every sshd we started (by PID) and every hung fake command (by PID from its pid file)."""
        for h in self.hosts:
            if h.process is not None and h.process.poll() is None:
                h.process.terminate()
        for h in self.hosts:
            if h.process is not None:
                try:
                    h.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    h.process.kill()
                    h.process.wait(timeout=5)
            pid_file = h.folder / "hang.pids"
            if pid_file.exists():
                for text in pid_file.read_text().split():
                    _kill_if_ours(int(text), h.folder)


def _kill_if_ours(pid: int, folder: Path) -> None:
    # a PID can be reused once its process is gone: only signal it if it is still our sleeping script
    try:
        environ = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"sleep" in environ:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _keygen(path: Path, comment: str) -> None:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


# ---------------------------------------------------------------- the fake programs


def _registry() -> list[tuple[str, tuple[str, ...]]]:
    """(key, argv) of every Command svdops' probes define: the registry plus any module-level ones."""
    from svdops.host.probe import commands
    from svdops.host.shell import Command

    found: dict[tuple[str, ...], str] = {c.argv: c.key for c in commands.ALL}
    import svdops.host.probe as probe_pkg

    for info in pkgutil.iter_modules(probe_pkg.__path__):
        try:
            module = importlib.import_module(f"svdops.host.probe.{info.name}")
        except Exception:  # a probe module still being written must not break the rig
            continue
        for value in vars(module).values():
            if isinstance(value, Command):
                found.setdefault(value.argv, value.key)
    return [(key, argv) for argv, key in found.items()]


_SERVE = r"""serve() {
  f="$R/$1"
  if [ ! -e "$f" ] && [ ! -e "$f.rc" ]; then
    if [ "$P" = cat ]; then echo "cat: $2: No such file or directory" >&2; exit 1; fi
    if [ -n "$HAS" ]; then echo "$P: no recorded output for this invocation" >&2; exit 1; fi
    echo "sh: 1: $P: not found" >&2; exit 127
  fi
  # the common case is one process, as the real program would be
  [ ! -e "$f.err" ] && [ ! -e "$f.rc" ] && exec /bin/cat "$f"
  [ -e "$f" ] && /bin/cat "$f"
  [ -e "$f.err" ] && /bin/cat "$f.err" >&2
  rc=0
  [ -e "$f.rc" ] && read -r rc < "$f.rc"
  exit "$rc"
}
"""


def _write_bin(folder: Path, recorded: Path, *, hang: bool) -> None:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    by_program: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for key, argv in _registry():
        if "/" not in argv[0]:  # absolute paths cannot be intercepted through PATH; they hit this machine
            by_program.setdefault(argv[0], []).append((key, argv[1:]))
    for program, cases in by_program.items():
        # a program counts as installed on the recorded host when any of its outputs was recorded
        has = any((recorded / key).exists() or (recorded / f"{key}.rc").exists() for key, _ in cases)
        lines = ["#!/bin/sh", f"R={shlex.quote(str(recorded))}", f"P={shlex.quote(program)}",
                 f"HAS={'1' if has else ''}", _SERVE]
        if hang and program == "nvidia-smi":
            lines.append(f'echo $$ >> {shlex.quote(str(folder / "hang.pids"))}; exec sleep {HANG_SECONDS}')
        for key, args in cases:
            tests = [f'[ "$#" -eq {len(args)} ]']
            tests += [f'[ "${{{i}}}" = {shlex.quote(a)} ]' for i, a in enumerate(args, 1)]
            path_arg = shlex.quote(args[-1]) if args else "''"
            lines.append(f"if {' && '.join(tests)}; then serve {shlex.quote(key)} {path_arg}; fi")
        if program in ("cat", "sh"):  # a shell is not a probe: anything but a recorded invocation is real
            lines.append(f'exec /bin/{program} "$@"')
        else:
            lines.append(f'echo "{program}: this recorded host has no output for: $*" >&2; exit 127')
        script = bin_dir / program
        script.write_text("\n".join(lines) + "\n")
        script.chmod(0o755)


# ---------------------------------------------------------------- sshd


def _sshd_config(h: FakeHost, authorized_keys: Path) -> str:
    return "\n".join([
        f"Port {h.port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {h.folder / 'ssh_host_ed25519_key'}",
        f"PidFile {h.folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxStartups 200",
        "LogLevel ERROR",
        # SHLVL=1 makes bash skip ~/.bashrc (it sources it only for top-level shells started by sshd), so
        # this machine's dotfiles (pyenv shims, PATH edits) cannot leak into the fake hosts
        f"SetEnv PATH={h.folder / 'bin'}:/usr/local/bin:/usr/bin:/bin SHLVL=1",
        "",
    ])


def _private_run_works() -> bool:
    """sshd needs /run/sshd; as root we give each sshd a private /run rather than create it system-wide."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run"],
        capture_output=True, check=False,
    )
    return probe.returncode == 0


def _sshd_argv(conf: Path, private_run: bool) -> list[str]:
    sshd = [str(SSHD), "-D", "-e", "-f", str(conf)]
    if not private_run:
        return sshd
    inner = "mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && exec " + shlex.join(sshd)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"sshd on port {port} did not open within the deadline")


def start_fleet(
    root: Path,
    count: int,
    *,
    kinds: dict[int, str] | None = None,
    recorded: Sequence[Path] | None = None,
    prefix: str = "gpu",
) -> SshdFleet:
    """Start `count` hosts named gpu01.. under `root`. `kinds` maps a 1-based host number to a kind
    (default ok); ok hosts serve the recorded folders round-robin. Call `.stop()` when done."""
    reason = skip_reason()
    if reason:
        raise RuntimeError(reason)
    sources = list(recorded) if recorded is not None else recorded_hosts()
    if not sources:
        raise RuntimeError("no recorded hosts to serve")
    kinds = kinds or {}
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    client_key, stranger_key = root / "client_ed25519", root / "stranger_ed25519"
    _keygen(client_key, "svdops-test-client")
    _keygen(stranger_key, "svdops-test-stranger")
    fleet = SshdFleet(root, getpass.getuser(), client_key, root / "known_hosts", home)
    width = max(2, len(str(count)))
    ports = _free_ports(count)
    for i in range(1, count + 1):
        kind = kinds.get(i, "ok")
        if kind not in KINDS:
            raise ValueError(f"unknown host kind {kind!r}")
        name = f"{prefix}{i:0{width}d}"
        folder = root / "hosts" / name
        folder.mkdir(parents=True)
        source = sources[(i - 1) % len(sources)]
        data = folder / "recorded"
        shutil.copytree(source, data)
        (data / "hostname.txt").write_text(name + "\n")  # what `uname -n` answers on this host
        fleet.hosts.append(FakeHost(name, ports[i - 1], folder, kind, source))

    private_run = os.geteuid() == 0 and not Path("/run/sshd").is_dir() and _private_run_works()
    if os.geteuid() == 0 and not private_run and not Path("/run/sshd").is_dir():
        # last resort (no unshare): the privilege-separation dir Debian's sshd.service would create
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    known_lines = []
    try:
        for h in fleet.hosts:
            _write_bin(h.folder, h.folder / "recorded", hang=h.kind == "hang")
            if h.kind == "down":
                continue
            _keygen(h.folder / "ssh_host_ed25519_key", f"{h.name}-host")
            pub = (h.folder / "ssh_host_ed25519_key.pub").read_text().split()
            if h.kind != "unknown-key":
                known_lines.append(f"{h.known_hosts_name} {pub[0]} {pub[1]}")
            auth = h.folder / "authorized_keys"
            key = stranger_key if h.kind == "wrong-key" else client_key
            shutil.copy(key.with_suffix(".pub"), auth)
            conf = h.folder / "sshd_config"
            conf.write_text(_sshd_config(h, auth))
            log = (h.folder / "sshd.log").open("wb")
            h.process = subprocess.Popen(_sshd_argv(conf, private_run), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
            log.close()
        fleet.known_hosts.write_text("\n".join(known_lines) + "\n")
        deadline = time.monotonic() + 20
        for h in fleet.hosts:
            if h.process is not None:
                _wait_for_port(h.port, h.process, deadline)
    except BaseException:
        fleet.stop()
        raise
    return fleet


@contextlib.contextmanager
def running_fleet(root: Path, count: int, **kwargs: object) -> Iterator[SshdFleet]:
    fleet = start_fleet(root, count, **kwargs)  # type: ignore[arg-type]
    try:
        yield fleet
    finally:
        fleet.stop()
