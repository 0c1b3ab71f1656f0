"""Which hosts a fleet run talks to: `--host` arguments, or an Ansible inventory read by Ansible itself.

The inventory is the same source `svdops provision` hands to ansible-playbook, so it is read through
ansible-core's own inventory API (InventoryManager, VariableManager) in this process: INI, YAML,
directories, ranges, `group_vars/` and `host_vars/` beside the inventory, and `--limit` in Ansible's
pattern syntax all mean exactly what they mean to `provision` (an executable file is a dynamic
inventory script, run as Ansible runs it; inventory plugin files work too). In-process rather than
`ansible-inventory --list` because a second Python start-up costs about a second more per run
(benchmarks/inventory_startup.py). ansible-core is imported only when an inventory or a `--limit`
over `--host` names needs it, and not even then when inventory_cache.py holds Ansible's answer for
exactly these files, settings and `--limit` (static inventories only; never a dynamic one).

What reaches ssh (host names, ansible_host, ansible_user, ansible_port) is validated like `--host`:
the inventory is data, and a name such as `$(touch /tmp/x)` is refused, never passed on.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svdops.errors import BadInputError, MissingDependencyError

DEFAULT_SSH_PORT = 22

# Ansible's own spellings, newest first; the first one set wins (as in its ssh connection plugin)
_HOST_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")

# a leading '-' would read as an ssh option; the rest keeps shell and ssh_config syntax out
_HOST_RE = re.compile(r"[A-Za-z0-9_.:%][A-Za-z0-9_.:%-]*")
_USER_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@\\-]*\$?")
_INSTALL_HINT = "pip install 'ansible-core>=2.16' (or reinstall svdops, which depends on it)"


@dataclass(frozen=True)
class Target:
    """One host to reach. `name` is its label (inventory name or the --host text); `address` is
    what we connect to. None for port/user means 'let ~/.ssh/config (then the defaults) decide'."""

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity: Path | None = None
    groups: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """ssh://[user@]host[:port], IPv6 in brackets: the `source` recorded in facts."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{host}{port}"


@dataclass
class Inventory:
    """An inventory as Ansible resolved it: hosts in inventory order, groups, and each host's vars."""

    source: str
    manager: Any  # ansible.inventory.manager.InventoryManager
    variables_of: Any  # ansible.vars.manager.VariableManager
    notes: list[str] = field(default_factory=list)  # Ansible's warnings while reading, kept for errors

    @property
    def hosts(self) -> list[str]:
        with _quiet_ansible(self.notes):
            return [h.name for h in self.manager.get_hosts("all")]

    @property
    def groups(self) -> list[str]:
        """Every group, `all` and `ungrouped` included (as Ansible has them)."""
        return sorted(self.manager.groups)

    def select(self, pattern: str | None) -> list[str]:
        """Hosts matching an Ansible host pattern (all hosts for None), in inventory order: what
        `ansible-playbook --limit PATTERN` runs a `hosts: all` play on."""
        if not pattern:
            return self.hosts
        try:
            with _quiet_ansible(self.notes):
                self.manager.subset(pattern)
                try:
                    return [h.name for h in self.manager.get_hosts("all")]
                finally:
                    self.manager.subset(None)
        except Exception as exc:  # AnsibleError, or a bad regex surfacing from its matcher
            raise BadInputError(f"--limit {pattern!r}: {_reason(exc)}", where=self.source,
                                hint="--limit takes Ansible host patterns: gpu, gpu0*, ~gpu0[1-4], gpu:!gpu03, "
                                     "gpu:&rack_a, @retry-file") from exc

    def variables(self, host: str) -> dict[str, Any]:
        """The host's vars as a play sees them before facts: all, groups (shallow to deep), group_vars/,
        host vars, host_vars/."""
        where = f"{self.source}: host {host}"
        found = self.manager.get_host(host)
        if found is None:
            raise BadInputError("no such host in the inventory", where=where)
        try:
            with _quiet_ansible(self.notes):
                return dict(self.variables_of.get_vars(host=found, include_hostvars=False))
        except Exception as exc:  # a broken group_vars/host_vars file is found only now
            raise BadInputError(f"cannot read the host's variables: {_reason(exc)}", where=where) from exc

    def target(self, host: str, *, default_identity: Path | None = None) -> Target:
        variables = self.variables(host)
        where = f"{self.source}: host {host}"
        name = _valid_host(host, where, what="inventory host name")
        address = _first_str(variables, _HOST_VARS, where)
        address = name if address is None else _valid_host(address, where, what="ansible_host")
        port = _port(_first(variables, _PORT_VARS), where)
        user = _first_str(variables, _USER_VARS, where)
        if user is not None:
            user = _valid_user(user, where)
        key = _first_str(variables, _KEY_VARS, where)
        # inventory connection vars beat command-line defaults, as they do for `ansible -u/--private-key`
        identity = Path(key).expanduser() if key else default_identity
        found = self.manager.get_host(host)
        groups = sorted((g for g in found.get_groups() if g.name != "all"), key=lambda g: (g.depth, g.name))
        return Target(name, address, port, user, identity, tuple(g.name for g in groups))


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file or directory through Ansible; BadInputError when Ansible cannot."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise BadInputError("inventory not found", where=source,
                            hint="give an Ansible inventory (INI or YAML file, or a directory), or hosts with --host")
    ansible = _import_ansible()
    notes: list[str] = []
    try:
        with _quiet_ansible(notes):
            loader = ansible.DataLoader()
            manager = ansible.InventoryManager(loader=loader, sources=[source])
            variables_of = ansible.VariableManager(loader=loader, inventory=manager)
    except Exception as exc:  # Ansible raises its own errors, and plugins raise anything
        raise BadInputError(f"Ansible cannot read the inventory: {_reason(exc)}", where=source) from exc
    inventory = Inventory(source, manager, variables_of, notes)
    if not inventory.hosts:
        hint = f"`ansible-inventory -i {source} --graph` shows what Ansible makes of it"
        # the file is in `where`; Ansible's sentences that only repeat it add nothing
        why = [n for n in dict.fromkeys(notes) if "implicit localhost" not in n and "as an inventory source" not in n]
        if any("as an inventory source" in n for n in notes):
            raise BadInputError("Ansible cannot read the inventory: " + "; ".join(why), where=source, hint=hint)
        raise BadInputError("the inventory lists no hosts" + (f" (Ansible: {'; '.join(why)})" if why else ""),
                            where=source, hint=hint)
    return inventory


# ---------------------------------------------------------------- --host and selection


def parse_host_arg(text: str, *, identity: Path | None = None) -> Target:
    """`[user@]host[:port]`; IPv6 goes in brackets when a port follows (`root@[fe80::1]:2222`)."""
    where = f"--host {text}"
    spec = text.strip()
    if not spec or any(c.isspace() for c in spec):
        raise BadInputError("a host is [USER@]HOST[:PORT] without spaces", where=where)
    user: str | None = None
    if "@" in spec:
        user, _, spec = spec.rpartition("@")
        if not user:
            raise BadInputError("empty user name before '@'", where=where)
        user = _valid_user(user, where)
    port: int | None = None
    if spec.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", spec)
        if not m:
            raise BadInputError("IPv6 addresses go in brackets: [ADDR] or [ADDR]:PORT", where=where)
        host, port = m.group(1), _port(m.group(2), where)
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
        port = _port(port_text, where)
    else:
        host = spec  # a bare IPv6 address (several colons) has no port
    host = _valid_host(host, where, what="host")
    name = host if port is None else (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return Target(name, host, port, user, identity)


def select_targets(
    *,
    hosts: Iterable[str] = (),
    inventory: Path | None = None,
    limit: str | None = None,
    identity: Path | None = None,
) -> list[Target]:
    """The hosts a fleet run covers: `--host` ones first, then the inventory's, `--limit` applied to both."""
    targets: list[Target] = [parse_host_arg(h, identity=identity) for h in hosts]
    if limit and targets:
        keep = set(_match_names([t.name for t in targets], limit))
        targets = [t for t in targets if t.name in keep]
    if inventory is not None:
        targets.extend(_inventory_targets(inventory, limit, identity, others=bool(targets)))
    elif limit and not targets:
        raise BadInputError(f"--limit {limit!r} matches none of the --host arguments")
    seen: set[str] = set()
    unique: list[Target] = []
    for t in targets:
        if t.name not in seen:
            seen.add(t.name)
            unique.append(t)
    return unique


def _inventory_targets(inventory: Path, limit: str | None, identity: Path | None, *, others: bool) -> list[Target]:
    """The inventory's hosts that `limit` selects, from the cache (inventory_cache.py) when it has this
    very selection, else read through Ansible (and cached when it may be)."""
    from svdops.host import inventory_cache as cache

    key = cache.key_for(inventory, limit, identity)
    if key is not None:
        where = f"{inventory} (cached)"
        hit = cache.load(key, lambda row: _from_cache(row, where))
        if hit is not None:
            return hit
    inv = load_inventory(inventory)
    names = inv.select(limit)
    if not names and not others:
        raise BadInputError(f"--limit {limit!r} matches no host in the inventory", where=str(inventory),
                            hint=f"groups here: {', '.join(inv.groups)}")
    found = [inv.target(n, default_identity=identity) for n in names]
    # stored only when the files did not change while Ansible read them
    if found and key is not None and cache.key_for(inventory, limit, identity) == key:
        cache.store(key, [cache.CachedTarget(t.name, t.address, t.port, t.user,
                                             None if t.identity is None else str(t.identity), t.groups)
                          for t in found])
    return found


def _from_cache(row: Any, where: str) -> Target:
    """A cached target, held to the same rules as one fresh from the inventory (a cache file is hostile)."""
    return Target(
        _valid_host(row.name, where, what="inventory host name"),
        _valid_host(row.address, where, what="ansible_host"),
        row.port,
        None if row.user is None else _valid_user(row.user, where),
        None if row.identity is None else Path(row.identity),
        row.groups,
    )


def _match_names(names: list[str], pattern: str) -> list[str]:
    """Ansible's pattern matching over bare names (the `--host` ones), all of them `ungrouped`."""
    ansible = _import_ansible()
    notes: list[str] = []
    with _quiet_ansible(notes):
        manager = ansible.InventoryManager(loader=ansible.DataLoader(), sources=[])
        for name in names:
            manager.add_host(name, group="ungrouped")
        manager.reconcile_inventory()
    adhoc = Inventory("--host", manager, None, notes)
    return adhoc.select(pattern)


# ---------------------------------------------------------------- Ansible, quietly


@dataclass(frozen=True)
class _Ansible:
    DataLoader: Any
    InventoryManager: Any
    VariableManager: Any
    Display: Any


def _import_ansible() -> _Ansible:
    try:
        # importing ansible builds its Display, which reports through stderr; keep that off the terminal
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from ansible.inventory.manager import InventoryManager  # type: ignore[import-untyped]
            from ansible.parsing.dataloader import DataLoader  # type: ignore[import-untyped]
            from ansible.utils.display import Display  # type: ignore[import-untyped]
            from ansible.vars.manager import VariableManager  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError(f"reading an Ansible inventory needs ansible-core, not importable here ({exc})",
                                     hint=_INSTALL_HINT) from exc
    _confine_intern_patch()
    return _Ansible(DataLoader, InventoryManager, VariableManager, Display)


# ansible-core (2.19+) replaces sys.intern process-wide, on import, with a callable object that also
# takes str subclasses. Anything imported later that expects the builtin breaks: torch._dynamo
# registers a polyfill for sys.intern and dies with "substitute_in_graph expects a function but got
# SysInternPatch" (`svdops plan` after an inventory was read in the same process). The patch is kept
# here and put in place only while Ansible itself runs (inside _quiet_ansible).
_ansible_intern: Any = None


def _confine_intern_patch() -> None:
    global _ansible_intern
    current = sys.intern
    builtin = getattr(type(current), "unpatched_implementation", None)
    if builtin is not None:
        _ansible_intern = current
        sys.intern = builtin


@contextlib.contextmanager
def _quiet_ansible(notes: list[str]) -> Iterator[None]:
    """Ansible's warnings go into `notes` instead of the terminal; anything else it prints is dropped.
    Its Display is a process-wide singleton that also de-duplicates warnings for the life of the
    process, so a second read of the same broken file would otherwise lose the reason."""
    from ansible.utils.display import Display

    display = Display()

    def warning(msg: str, *_: Any, **__: Any) -> None:
        notes.append(" ".join(str(msg).split()))

    def error_as_warning(msg: str | None, exception: BaseException, *_: Any, **__: Any) -> None:
        notes.append(_reason(exception))

    def deprecated(*_: Any, **__: Any) -> None:
        return None

    patched = {"warning": warning, "error_as_warning": error_as_warning, "deprecated": deprecated}
    for attr, fn in patched.items():
        setattr(display, attr, fn)  # an instance attribute shadows the method, for this block only
    builtin_intern = sys.intern
    if _ansible_intern is not None:
        sys.intern = _ansible_intern
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.intern = builtin_intern
        for attr in patched:
            with contextlib.suppress(AttributeError):
                delattr(display, attr)


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


# ---------------------------------------------------------------- validation shared with --host


def _valid_host(text: str, where: str, *, what: str) -> str:
    if not _HOST_RE.fullmatch(text):
        raise BadInputError(f"{what} {text!r} is not a host name or address", where=where,
                            hint="use a name, an IPv4 address or an IPv6 address (letters, digits, . _ - : %)")
    return text


def _valid_user(text: str, where: str) -> str:
    if not _USER_RE.fullmatch(text):
        raise BadInputError(f"user name {text!r} is not a login name", where=where,
                            hint="letters, digits, . _ - @ (not starting with '-')")
    return text


def _first(variables: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if variables.get(key) not in (None, ""):
            return variables[key]
    return None


def _first_str(variables: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str | None:
    value = _first(variables, keys)
    return None if value is None else _untemplated(str(value), where)


def _untemplated(text: str, where: str) -> str:
    if "{{" in text or "{%" in text:
        # templating here would run lookups on a read-only check; the literal text would reach the wrong host
        raise BadInputError(f"Jinja templates in connection variables are not evaluated: {text!r}", where=where,
                            hint="write the literal value in the inventory for svdops fleet runs")
    return text


def _port(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        _untemplated(value, where)
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BadInputError(f"port {value!r} is not a number", where=where) from None
    if not 0 < port < 65536:
        raise BadInputError(f"port {port} is out of range 1-65535", where=where)
    return port
