"""SshShell: the Shell protocol over SSH, so the local probes run unchanged on a remote host.

The only importer of fabric and paramiko. fabric resolves the connection the way `ssh` would
(~/.ssh/config: HostName, User, Port, IdentityFile, ProxyJump; the agent); commands then run on
plain paramiko channels so each one has its own deadline and a hung program can be abandoned.
`run_script` runs one sh script on one channel: BatchShell (batch.py) sends a host's every probe in it.

Host keys are checked against the system and user known_hosts files. A key that is not there is
refused unless `accept_new_host_keys` (then it is recorded); a key that changed is always refused.
The remote side needs a POSIX shell and `env`, nothing else: no Python, no agent, no sudo.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svdops.errors import BadInputError, HostUnreachableError, MissingDependencyError
from svdops.extras import install_hint
from svdops.host.batch import ScriptEnd
from svdops.host.shell import Command, CommandResult, env_words

try:
    import paramiko
    from fabric import Config as FabricConfig
    from fabric import Connection
except ImportError as _exc:  # fabric comes with the [fleet] extra; the base install reads this host only
    raise MissingDependencyError(f"SSH support needs fabric: {_exc}", hint=install_hint("fleet")) from _exc

if TYPE_CHECKING:
    from svdops.host.inventory import Target

# paramiko logs refused channels and the like at ERROR; without a handler Python prints them on stderr,
# in the middle of our tables. Every such failure reaches the user through a CommandResult instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")
KNOWN_HOSTS_ENV = "SVDOPS_KNOWN_HOSTS"
# ssh(1) uses 255 for its own failures; a lost connection mid-run reads the same way in a CommandResult
SSH_FAILURE_RC = 255
_READ_CHUNK = 65536
# OpenSSH's default MaxSessions is 10 channels per connection; stay under it so parallel probes on one
# host never get "open failed: administratively prohibited"
MAX_CHANNELS_PER_HOST = 6
_SLICE_S = 0.25


class SshError(HostUnreachableError):
    """A host could not be connected to or logged into. `kind` is the per-host status word."""

    kind = "unreachable"


class SshUnreachableError(SshError):
    kind = "unreachable"


class SshAuthError(SshError):
    kind = "auth failed"


class HostKeyUnknownError(SshError):
    kind = "host key unknown"


class HostKeyChangedError(SshError):
    kind = "host key changed"


class _Connection(Connection):  # type: ignore[misc]
    # fabric 3 assigns self.inline_ssh_env in __init__ without declaring it. Undeclared, invoke's DataProxy
    # turns that assignment into a config write, which re-merges the Config every host's thread shares
    # (load_ssh_config reads ~/.ssh/config once per run): for that moment the config is empty, and another
    # thread's Connection fails with "No attribute or config key found for 'gateway'". Declared, it is a
    # plain attribute and the shared config is only ever read.
    inline_ssh_env = None


def default_known_hosts() -> Path:
    """Where user host keys are read from and new ones recorded: $SVDOPS_KNOWN_HOSTS, else ~/.ssh/known_hosts."""
    override = os.environ.get(KNOWN_HOSTS_ENV)
    return Path(override).expanduser() if override else Path("~/.ssh/known_hosts").expanduser()


def load_ssh_config() -> Any:
    """fabric's Config with ~/.ssh/config and /etc/ssh/ssh_config loaded: read once per fleet run."""
    try:
        return FabricConfig()
    except Exception as exc:  # paramiko's SSHConfig parser raises plain exceptions on bad files
        raise BadInputError(f"cannot read your SSH config: {exc}", where="~/.ssh/config",
                            hint="fix the line it names; `ssh -G HOST` shows how OpenSSH reads it") from exc


class SocketRegistry:
    """Every socket a run's connections hold, so an interrupt can close them all from the main thread.

    A worker blocked in paramiko's banner read (a host that accepts TCP and never speaks) does not see
    KeyboardInterrupt and would sit out the whole connect timeout; shutting its socket down wakes it at
    once. After `close_all` no new socket may be opened: a worker that was about to dial fails instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.closed = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.closed:
                self._sockets.add(sock)
                return
        sock.close()
        raise ConnectionAbortedError("the run was interrupted")

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def close_all(self) -> None:
        with self._lock:
            self.closed = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            # shutdown, not only close: close() does not wake a thread blocked in recv() on the same socket
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@dataclass
class SshOptions:
    """Settings shared by every connection of a run."""

    connect_timeout_s: float = 10.0
    command_timeout_s: float | None = None  # None: each Command's own timeout
    accept_new_host_keys: bool = False
    known_hosts: Path = field(default_factory=default_known_hosts)
    system_known_hosts: Path = SYSTEM_KNOWN_HOSTS
    ssh_config: Any = None  # a fabric Config; None loads one per connection
    # one lock for all connections: parallel hosts appending to one known_hosts must not interleave lines
    known_hosts_lock: threading.Lock = field(default_factory=threading.Lock)
    sockets: SocketRegistry = field(default_factory=SocketRegistry)  # every live connection's socket
    known_hosts_cache: KnownHostsCache = field(default_factory=lambda: KnownHostsCache())


class KnownHostsCache:
    """A known_hosts file parsed once per run, not once per connection: for a fleet of n hosts the file
    has about n lines, and parsing it for every host cost O(n^2) (5 ms a connection at 100 hosts).
    Parsed again whenever the file changed (a key recorded by --accept-new-host-keys is seen at once).
    Each connection gets its own HostKeys holding the same entries, so what one adds stays its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[tuple[int, int, int], Any]] = {}

    def load_into(self, host_keys: Any, path: Path) -> None:
        """What `host_keys.load(path)` does, from the parsed copy."""
        info = path.stat()
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._parsed.get(str(path))
            if cached is None or cached[0] != signature:
                parsed = paramiko.HostKeys()
                parsed.load(str(path))
                cached = self._parsed[str(path)] = (signature, parsed)
        entries = getattr(host_keys, "_entries", None)
        if not isinstance(entries, list) or not isinstance(getattr(cached[1], "_entries", None), list):
            host_keys.load(str(path))  # a paramiko without the list this relies on: parse it here
            return
        entries.extend(cached[1]._entries)


def remote_command_line(argv: tuple[str, ...], env: tuple[tuple[str, str], ...] = ()) -> str:
    """The text the remote login shell runs: `env NAME=VALUE... PROGRAM ARGS... </dev/null`, words quoted."""
    # a program that reads stdin sees EOF at once instead of waiting for us
    return " ".join([*env_words(argv, env), "</dev/null"])


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class _UnknownHostKey(paramiko.SSHException):  # type: ignore[misc]
    def __init__(self, name: str, key: Any) -> None:
        super().__init__(f"host key for {name} is not in known_hosts")
        self.name = name
        self.key = key


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Unknown keys: refuse, or (opt-in) trust on first use and append them to the known_hosts file."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        if not self.options.accept_new_host_keys:
            raise _UnknownHostKey(hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = self.options.known_hosts
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with self.options.known_hosts_lock:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:  # append: never rewrite the user's other entries
                fh.write(line)


class SshShell:
    """One SSH connection to one host, running Commands as `env LC_ALL=C argv...` on it.

    `connect()` raises an SshError subclass; after that `run()` never raises: a missing program is
    rc 127 (`missing`), a deadline passed is `timed_out`, a dropped connection is rc 255.
    """

    def __init__(self, target: Target, options: SshOptions | None = None) -> None:
        self.target = target
        self.name = target.name
        self.options = options or SshOptions()
        self.lost: str | None = None  # why the connection went away mid-run, if it did
        self.sessions_opened = 0  # channels this shell opened: one per round trip to the host
        self._count_lock = threading.Lock()
        self._conn: Any = None
        self._transport: Any = None
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS_PER_HOST)

    # -- connection

    def connect(self) -> SshShell:
        t, opts = self.target, self.options
        timeout = opts.connect_timeout_s
        connect_kwargs: dict[str, Any] = {
            "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout, "channel_timeout": timeout,
        }
        if t.identity is not None:
            if not t.identity.is_file():
                raise SshAuthError(f"identity file {t.identity} does not exist", where=self.name,
                                   hint="check -i/--identity or ansible_ssh_private_key_file")
            connect_kwargs["key_filename"] = [str(t.identity)]
        config = opts.ssh_config if opts.ssh_config is not None else load_ssh_config()
        conn = _Connection(host=t.address, user=t.user, port=t.port, config=config, connect_kwargs=connect_kwargs)
        # fabric int()s its own connect_timeout (0.5 s would become 'no timeout'): the float rides in kwargs
        conn.connect_timeout = None
        self._guard(conn)
        self._conn = conn
        port = int(conn.port)
        where = f"{self.name} ({conn.user}@{known_hosts_name(conn.host, port)})"
        try:
            if not conn.gateway:
                conn.connect_kwargs["sock"] = _dial(conn.host, port, timeout, opts.sockets)
            conn.open()
        except paramiko.BadHostKeyException as exc:
            self.close()
            raise HostKeyChangedError(
                f"host key CHANGED: known_hosts has {fingerprint(exc.expected_key)}, "
                f"the host offers {fingerprint(exc.key)} ({exc.key.get_name()})", where=where,
                hint=f"if the host was reinstalled, verify the new key and remove the old one: "
                     f"ssh-keygen -f {shlex.quote(str(opts.known_hosts))} -R "
                     f"{shlex.quote(known_hosts_name(conn.host, port))} (a changed key is never accepted "
                     f"automatically; it can mean someone is intercepting the connection)",
            ) from None
        except _UnknownHostKey as exc:
            self.close()
            raise HostKeyUnknownError(
                f"host key not in known_hosts ({exc.key.get_name()} {fingerprint(exc.key)})", where=where,
                hint=f"verify the fingerprint, then rerun with --accept-new-host-keys (records it in "
                     f"{opts.known_hosts}) or `ssh -p {port} {conn.user}@{conn.host}` once",
            ) from None
        except paramiko.PasswordRequiredException:
            self.close()
            raise SshAuthError("the private key is encrypted and no passphrase was given", where=where,
                               hint="load it into your agent (ssh-add KEY) and rerun") from None
        except paramiko.AuthenticationException as exc:
            self.close()
            raise SshAuthError(f"authentication failed: {exc}", where=where,
                               hint="check the user and key (-i, ansible_user, ansible_ssh_private_key_file, "
                                    "ssh-add -l); `ssh -v` shows which keys are offered") from None
        except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError):
            self.close()
            raise SshUnreachableError(f"connection refused on port {port}", where=where,
                                      hint="is sshd running and the port right (ansible_port / HOST:PORT)?") from None
        except socket.gaierror as exc:
            self.close()
            raise SshUnreachableError(f"cannot resolve host name: {exc.strerror}", where=where,
                                      hint="check the name or set ansible_host to its address") from None
        except TimeoutError:
            self.close()
            raise SshUnreachableError(f"no answer within {timeout:g} s", where=where,
                                      hint="is the host up and reachable? raise --connect-timeout for slow links"
                                      ) from None
        except paramiko.SSHException as exc:
            self.close()
            if "No authentication methods available" in str(exc):  # paramiko's words for "no key to offer"
                raise SshAuthError("no key to offer: no identity file, no key in ~/.ssh, no agent", where=where,
                                   hint="give -i KEY or ansible_ssh_private_key_file, or load the key into "
                                        "ssh-agent (ssh-add KEY)") from None
            raise SshUnreachableError(f"SSH connection failed: {exc or type(exc).__name__}", where=where,
                                      hint="try `ssh -v` to the same host to see where it stops") from None
        except (EOFError, OSError) as exc:
            self.close()
            text = str(exc) or type(exc).__name__
            raise SshUnreachableError(f"SSH connection failed: {text}", where=where,
                                      hint="try `ssh -v` to the same host to see where it stops") from None
        self._transport = conn.transport
        return self

    def _guard(self, conn: Any) -> None:
        """Replace fabric's accept-everything policy with known_hosts checking, on any gateway hop too."""
        opts = self.options
        conn.client.set_missing_host_key_policy(_HostKeyPolicy(opts))
        if opts.system_known_hosts.is_file():
            conn.client.load_system_host_keys(str(opts.system_known_hosts))
        if opts.known_hosts.is_file():
            # HostKeys.load, not client.load_host_keys: the latter would make paramiko rewrite the file
            opts.known_hosts_cache.load_into(conn.client.get_host_keys(), opts.known_hosts)
        if isinstance(conn.gateway, Connection):
            self._guard(conn.gateway)

    def close(self) -> None:
        if self._conn is not None:
            # closing a half-open connection can fail in many ways; none of them matter any more.
            # fabric skips the client when it never finished connecting, so close client and socket too
            # (a refused host key or failed login would otherwise keep its socket until GC).
            with contextlib.suppress(Exception):
                self._conn.close()
            with contextlib.suppress(Exception):
                self._conn.client.close()
            sock = self._conn.connect_kwargs.get("sock")
            if isinstance(sock, socket.socket):
                self.options.sockets.discard(sock)
                sock.close()
        self._transport = None

    def __enter__(self) -> SshShell:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands

    def run(self, command: Command) -> CommandResult:
        """Thread-safe: gather_facts runs several commands at once over this one connection."""
        with self._channels:
            return self._run(command)

    def _count_session(self) -> None:
        with self._count_lock:
            self.sessions_opened += 1

    def timeout_for(self, command: Command) -> float:
        return self.options.command_timeout_s or command.timeout_s

    def run_script(self, script: bytes, feed: Callable[[bytes], None], timeout_s: float) -> ScriptEnd:
        """Run `script` with the host's `sh`, its stdout handed to `feed` as it arrives (BatchShell's
        one round trip). Never raises; a dropped connection sets `lost`, as `run()` does."""
        with self._channels:
            start = time.monotonic()
            transport = self._transport
            if transport is None or not transport.is_active():
                self.lost = self.lost or "the SSH connection is closed"
                return ScriptEnd(None, error=f"ssh: {self.lost}")
            try:
                chan = transport.open_session(timeout=min(timeout_s, self.options.connect_timeout_s))
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not transport.is_active():
                    self.lost = f"the SSH connection dropped ({exc or type(exc).__name__})"
                return ScriptEnd(None, error=f"ssh: cannot open a session: {exc or type(exc).__name__}")
            self._count_session()
            try:
                return self._stream(chan, script, feed, start + timeout_s)
            finally:
                chan.close()

    def _stream(self, chan: Any, script: bytes, feed: Callable[[bytes], None], deadline: float) -> ScriptEnd:
        err = bytearray()
        try:
            # the script on stdin, not in the command line: its boundary stays out of every argv on the host.
            # It ends in `exit`, so the shell never waits for an EOF from us (see _exec on shutdown_write).
            chan.exec_command("sh -s")
            chan.settimeout(max(deadline - time.monotonic(), 0.001))
            chan.sendall(script)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ScriptEnd(None, _text(err), timed_out=True)
                chan.settimeout(min(remaining, _SLICE_S))
                try:
                    data: bytes | None = chan.recv(_READ_CHUNK)
                except TimeoutError:
                    data = None
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(_READ_CHUNK)
                if data == b"":
                    break
                if data:
                    feed(data)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(_READ_CHUNK)
            if not chan.status_event.wait(max(deadline - time.monotonic(), 0.0)):
                return ScriptEnd(None, _text(err), timed_out=True)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport = self._transport
            if transport is None or not transport.is_active():
                self.lost = f"the SSH connection dropped ({exc or type(exc).__name__})"
            return ScriptEnd(SSH_FAILURE_RC, _text(err), error=f"ssh: {exc or type(exc).__name__}")
        rc = chan.recv_exit_status()
        transport = self._transport
        if rc == -1 and (transport is None or not transport.is_active()):
            self.lost = "the SSH connection dropped while the probe script ran"
            return ScriptEnd(SSH_FAILURE_RC, _text(err), error=f"ssh: {self.lost}")
        return ScriptEnd(SSH_FAILURE_RC if rc == -1 else rc, _text(err))

    def _run(self, command: Command) -> CommandResult:
        timeout = self.timeout_for(command)
        start = time.monotonic()

        def failed(message: str, rc: int = SSH_FAILURE_RC) -> CommandResult:
            return CommandResult(command.key, command.argv, rc, "", message, time.monotonic() - start)

        try:
            line = remote_command_line(command.argv, command.env)
        except ValueError as exc:
            return failed(f"svdops refused to build the remote command: {exc}", rc=2)
        transport = self._transport
        if transport is None or not transport.is_active():
            self.lost = self.lost or "the SSH connection is closed"
            return failed(f"ssh: {self.lost}")
        delay = 0.01
        while True:
            try:
                chan = transport.open_session(timeout=min(timeout, self.options.connect_timeout_s))
                break
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not transport.is_active():
                    self.lost = f"the SSH connection dropped ({exc or type(exc).__name__})"
                    return failed(f"ssh: cannot open a session: {exc or type(exc).__name__}")
                # Refused while the connection lives: the server's MaxSessions is full, usually with
                # sessions we closed that it has not reaped yet (or a hung command still holds one).
                # paramiko reports this as ChannelException, or, when several opens fail at once and race
                # for its one saved exception, as a bare "Unable to open channel". Wait for a slot.
                if time.monotonic() + delay >= start + timeout:
                    return CommandResult(command.key, command.argv, None, "",
                                         f"ssh: no session slot on the host within {timeout:g} s ({exc})",
                                         time.monotonic() - start, timed_out=True)
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        self._count_session()
        try:
            return self._exec(chan, command, line, start, timeout)
        finally:
            chan.close()

    def _exec(self, chan: Any, command: Command, line: str, start: float, timeout: float) -> CommandResult:
        out, err = bytearray(), bytearray()
        deadline = start + timeout

        def timed_out() -> CommandResult:
            return CommandResult(command.key, command.argv, None, _text(out), _text(err),
                                 time.monotonic() - start, timed_out=True)

        # Blocking recv with short timeouts, never select() on chan.fileno(): paramiko's fileno pipe can
        # be closed by one thread while its transport thread still writes to or reads from that fd number,
        # which, once the number is reused by another host's socket, corrupts that connection.
        try:
            # no shutdown_write(): paramiko sends that EOF outside its channel lock, so under load it can
            # land after the server has freed a finished channel, and OpenSSH then drops the whole
            # connection ("ieof packet referred to nonexistent channel"). stdin is </dev/null instead.
            chan.exec_command(line)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return timed_out()
                # a short slice, so stderr is drained too while stdout is quiet (they share one window)
                chan.settimeout(min(remaining, _SLICE_S))
                try:
                    data: bytes | None = chan.recv(_READ_CHUNK)
                except TimeoutError:
                    data = None
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(_READ_CHUNK)
                if data == b"":  # EOF: all output is in
                    break
                if data:
                    out += data
            while True:  # stderr closes with stdout; take what is left of it
                chunk = chan.recv_stderr(_READ_CHUNK) if chan.recv_stderr_ready() else b""
                if not chunk:
                    break
                err += chunk
            if not chan.status_event.wait(max(deadline - time.monotonic(), 0.0)):
                return timed_out()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport = self._transport
            if transport is None or not transport.is_active():
                self.lost = f"the SSH connection dropped ({exc or type(exc).__name__})"
            return CommandResult(command.key, command.argv, SSH_FAILURE_RC, _text(out),
                                 _text(err) + f"\nssh: {exc or type(exc).__name__}", time.monotonic() - start)
        rc = chan.recv_exit_status()
        stderr = _text(err)
        if rc == -1:  # no exit-status: killed by a signal, or the server closed the channel
            rc = SSH_FAILURE_RC
            stderr += "\nssh: the remote command ended without an exit status (killed by a signal?)"
        # `env` answers 127 when the program is not on the remote PATH
        return CommandResult(command.key, command.argv, rc, _text(out), stderr, time.monotonic() - start,
                             missing=rc == 127)


def _dial(host: str, port: int, timeout: float, registry: SocketRegistry) -> socket.socket:
    """The TCP connection paramiko would open, with Nagle off: each command is a few small request
    packets, and with Nagle on every one waits out the server's delayed ACK (~40 ms per command).

    socket.create_connection's loop, with each socket in `registry` before it connects, so an interrupt
    can close a connect that hangs (a host dropping SYNs) as well as a banner that never comes."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        registry.add(sock)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            registry.discard(sock)
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}")


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
