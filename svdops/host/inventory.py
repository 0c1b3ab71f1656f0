"""Which hosts a fleet run talks to: `--host` arguments, or an Ansible inventory (INI or YAML).

The inventory is the same file `svdops provision` hands to Ansible, so we read it the way Ansible
does for the parts that decide where to connect: groups, `children`, `vars`, host ranges
(`gpu[01:20]`), `ansible_host`, `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`.
Anything else in the file (other variables, plugins, Jinja) is carried along or left alone.
`--limit` takes Ansible's host patterns: names, groups, globs, `~regex`, `a:b`, `a:&b`, `a:!b`, `@file`.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from svdops.errors import BadInputError

DEFAULT_SSH_PORT = 22

# Ansible's own spellings, newest first; the first one set wins
_HOST_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")


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
    """Hosts in file order, with their own vars, and groups with members, children and vars."""

    source: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    group_hosts: dict[str, list[str]] = field(default_factory=dict)
    group_children: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _group(self, name: str) -> None:
        self.group_hosts.setdefault(name, [])
        self.group_children.setdefault(name, [])
        self.group_vars.setdefault(name, {})

    def add_host(self, name: str, group: str, variables: Mapping[str, Any]) -> None:
        self._group(group)
        self.hosts.setdefault(name, {}).update(variables)
        if name not in self.group_hosts[group]:
            self.group_hosts[group].append(name)

    def add_child(self, parent: str, child: str) -> None:
        self._group(parent)
        self._group(child)
        if child not in self.group_children[parent]:
            self.group_children[parent].append(child)

    @property
    def groups(self) -> list[str]:
        """Every group, `all` and `ungrouped` included (as Ansible has them)."""
        return sorted({*self.group_hosts, "all", "ungrouped"})

    def hosts_of(self, group: str) -> list[str]:
        """Members of `group` and of its descendants, in inventory order."""
        if group == "all":
            return list(self.hosts)
        if group == "ungrouped":
            grouped = {h for g, members in self.group_hosts.items() if g not in ("all", "ungrouped") for h in members}
            return [h for h in self.hosts if h not in grouped]
        found: set[str] = set()
        seen: set[str] = set()
        stack = [group]
        while stack:
            g = stack.pop()
            if g in seen:
                continue  # a cycle in `children` should not hang us; Ansible rejects it, we just stop
            seen.add(g)
            found.update(self.group_hosts.get(g, ()))
            stack.extend(self.group_children.get(g, ()))
        return [h for h in self.hosts if h in found]

    def groups_of(self, host: str) -> list[tuple[int, str]]:
        """(depth, group) for every group `host` is in, directly or through children; `all` is depth 0."""
        parents: dict[str, list[str]] = {}
        for parent, children in self.group_children.items():
            for child in children:
                parents.setdefault(child, []).append(parent)
        direct = [g for g, members in self.group_hosts.items() if host in members]
        depth: dict[str, int] = {}

        def depth_of(g: str, trail: frozenset[str]) -> int:
            if g == "all":
                return 0
            if g in depth:
                return depth[g]
            ups = [p for p in parents.get(g, []) if p not in trail]
            d = 1 + max((depth_of(p, trail | {g}) for p in ups), default=0)
            depth[g] = d
            return d

        result: set[str] = set()
        stack = list(direct)
        while stack:
            g = stack.pop()
            if g in result:
                continue
            result.add(g)
            stack.extend(parents.get(g, []))
        result.add("all")
        return sorted((depth_of(g, frozenset()), g) for g in result)

    def variables(self, host: str) -> dict[str, Any]:
        """Ansible's order: `all` vars, then groups from shallow to deep (ties by name), then host vars."""
        merged: dict[str, Any] = {}
        for _, group in self.groups_of(host):
            merged.update(self.group_vars.get(group, {}))
        merged.update(self.hosts.get(host, {}))
        return merged

    def target(self, host: str, *, default_identity: Path | None = None) -> Target:
        variables = self.variables(host)
        where = f"{self.source}: host {host}"
        address = _first_str(variables, _HOST_VARS, where) or host
        port = _port(_first(variables, _PORT_VARS), where)
        user = _first_str(variables, _USER_VARS, where)
        key = _first_str(variables, _KEY_VARS, where)
        # inventory connection vars beat command-line defaults, as they do for `ansible -u/--private-key`
        identity = Path(key).expanduser() if key else default_identity
        groups = tuple(g for _, g in self.groups_of(host) if g != "all")
        return Target(host, address, port, user, identity, groups)

    def select(self, pattern: str | None) -> list[str]:
        """Hosts matching an Ansible host pattern (all hosts for None), in inventory order."""
        if not pattern or pattern.strip() in ("all", "*"):
            return list(self.hosts)
        include: list[str] = []
        intersect: list[set[str]] = []
        exclude: set[str] = set()
        for term in split_pattern(pattern):
            if term.startswith("&"):
                intersect.append(set(self._match(term[1:])))
            elif term.startswith("!"):
                exclude.update(self._match(term[1:]))
            else:
                include.extend(h for h in self._match(term) if h not in include)
        chosen = set(include)
        for other in intersect:
            chosen &= other
        chosen -= exclude
        return [h for h in self.hosts if h in chosen]

    def _match(self, term: str) -> list[str]:
        if term.startswith("@"):
            return self._match_file(term[1:])
        if term in ("all", "*"):
            return list(self.hosts)
        if term in self.group_hosts or term == "ungrouped":
            return self.hosts_of(term)
        if term in self.hosts:
            return [term]
        if term.startswith("~"):
            try:
                regex = re.compile(term[1:])
            except re.error as exc:
                raise BadInputError(f"bad regular expression in --limit: {exc}", where=term) from exc
            return self._expand(lambda name: regex.search(name) is not None)
        if any(c in term for c in "*?["):
            return self._expand(lambda name: fnmatch.fnmatchcase(name, term))
        return []

    def _expand(self, matches: Any) -> list[str]:
        # like Ansible, a glob or regex picks groups (all their hosts) as well as host names
        found: list[str] = []
        for group in self.groups:
            if matches(group):
                found.extend(h for h in self.hosts_of(group) if h not in found)
        found.extend(h for h in self.hosts if matches(h) and h not in found)
        return found

    def _match_file(self, path: str) -> list[str]:
        try:
            lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BadInputError(f"cannot read --limit file: {exc.strerror}", where=path) from exc
        names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return [h for h in self.hosts if h in names]


def split_pattern(pattern: str) -> list[str]:
    """Ansible splits on commas, else on colons, except inside IPv6 addresses and `[a:b]` ranges."""
    pattern = pattern.strip()
    if "," in pattern:
        return [t.strip() for t in pattern.split(",") if t.strip()]
    if pattern.count(":") >= 2 and re.fullmatch(r"[0-9a-fA-F:.]+", pattern):
        return [pattern]  # a bare IPv6 address is one term, not eight
    terms = [chunk.strip() for chunk in re.findall(r"(?:[^:\[\]]|\[[^\]]*\])+", pattern)]
    return [t for t in terms if t]


def load_inventory(path: str | Path) -> Inventory:
    """Parse an inventory file: YAML when it parses as a mapping with Ansible's shape, else INI."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError("inventory file not found", where=str(path),
                            hint="give an Ansible inventory (INI or YAML), or hosts with --host") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read inventory: {exc}", where=str(path)) from exc
    if path.suffix in (".yml", ".yaml") or _looks_like_yaml(text):
        inventory = parse_yaml_inventory(text, str(path))
    else:
        inventory = parse_ini_inventory(text, str(path))
    if not inventory.hosts:
        raise BadInputError("the inventory lists no hosts", where=str(path),
                            hint="add hosts under a group, e.g. [gpu] then one host per line")
    return inventory


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped == "---":
            return True
        return bool(re.match(r"^[\w.-]+:\s*(#.*)?$", stripped)) and not stripped.startswith("[")
    return False


# ---------------------------------------------------------------- INI


def parse_ini_inventory(text: str, source: str = "inventory") -> Inventory:
    inv = Inventory(source)
    inv._group("all")
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        where = f"{source}:{lineno}"
        header = re.fullmatch(r"\[([^\]]+)\]", line)
        if header:
            name, _, suffix = header.group(1).partition(":")
            if suffix not in ("", "vars", "children"):
                raise BadInputError(f"unknown section kind ':{suffix}'", where=where,
                                    hint="sections are [group], [group:vars] or [group:children]")
            section, kind = name.strip(), suffix or "hosts"
            inv._group(section)
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise BadInputError("expected key=value in a :vars section", where=where)
            inv.group_vars[section][key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            inv.add_child(section, line.split()[0])
        else:
            _ini_host_line(inv, section, line, where)
    return inv


def _ini_host_line(inv: Inventory, group: str, line: str, where: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise BadInputError(f"cannot parse host line: {exc}", where=where) from exc
    if not tokens:
        return
    pattern, rest = tokens[0], tokens[1:]
    variables: dict[str, Any] = {}
    for token in rest:
        key, sep, value = token.partition("=")
        if not sep:
            raise BadInputError(f"expected key=value after the host name, got {token!r}", where=where)
        variables[key] = _ini_value(value)
    name, port = _split_host_port(pattern, where)
    for host in expand_host_range(name, where):
        host_vars = dict(variables)
        if port is not None:
            host_vars.setdefault("ansible_port", port)
        inv.add_host(host, group, host_vars)


def _ini_value(value: str) -> Any:
    # Ansible reads INI values as Python literals where they parse; ports must come out as ints
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _split_host_port(pattern: str, where: str) -> tuple[str, int | None]:
    """`host:port` in an inventory host name; IPv6 only in brackets when a port follows."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%]+)\](?::(\d+))?", pattern)
    if m and ":" in m.group(1):
        return m.group(1), _port(m.group(2), where)
    m = re.fullmatch(r"(.+):(\d+)", pattern)
    # the colon in a range (`gpu[01:20]`) or in a bare IPv6 address is not a port separator
    if m and ":" not in re.sub(r"\[[^\]]*\]", "", m.group(1)):
        return m.group(1), _port(m.group(2), where)
    return pattern, None


def expand_host_range(pattern: str, where: str = "inventory") -> list[str]:
    """`gpu[01:12]` -> gpu01..gpu12 (zero padding kept), `[a:c]`, an optional `:stride`. Ranges nest."""
    m = re.search(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::(\d+))?\]", pattern)
    if not m:
        return [pattern]
    start, end, stride_text = m.group(1), m.group(2), m.group(3)
    stride = int(stride_text) if stride_text else 1
    if stride < 1:
        raise BadInputError(f"bad stride in host range {pattern!r}", where=where)
    head, tail = pattern[: m.start()], pattern[m.end():]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
    elif len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        letters = string.ascii_letters
        values = list(letters[letters.index(start): letters.index(end) + 1: stride])
    else:
        raise BadInputError(f"cannot expand host range {pattern!r}", where=where,
                            hint="ranges look like gpu[01:20] or rack[a:f]")
    if not values:
        raise BadInputError(f"empty host range {pattern!r}", where=where)
    return [name for v in values for name in expand_host_range(head + v + tail, where)]


# ---------------------------------------------------------------- YAML


def parse_yaml_inventory(text: str, source: str = "inventory") -> Inventory:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"inventory is not valid YAML: {exc}", where=source) from exc
    if not isinstance(data, dict):
        raise BadInputError("a YAML inventory must be a mapping of groups (e.g. `all:`)", where=source)
    inv = Inventory(source)
    inv._group("all")
    for group, body in data.items():
        _yaml_group(inv, str(group), body, f"{source}: {group}", parent=None)
    return inv


def _yaml_group(inv: Inventory, name: str, body: Any, where: str, parent: str | None) -> None:
    inv._group(name)
    if parent is not None and parent != "all":
        inv.add_child(parent, name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise BadInputError("a group must be a mapping with hosts, children and/or vars", where=where)
    unknown = set(body) - {"hosts", "children", "vars"}
    if unknown:
        raise BadInputError(f"unknown key(s) in group: {', '.join(sorted(map(str, unknown)))}", where=where,
                            hint="a group holds only `hosts:`, `children:` and `vars:`")
    variables = body.get("vars") or {}
    if not isinstance(variables, dict):
        raise BadInputError("`vars` must be a mapping", where=f"{where}.vars")
    inv.group_vars[name].update(variables)
    hosts = body.get("hosts") or {}
    if isinstance(hosts, list):  # a list of names is not Ansible's shape, but it is unambiguous
        hosts = dict.fromkeys(hosts)
    if not isinstance(hosts, dict):
        raise BadInputError("`hosts` must be a mapping of host names", where=f"{where}.hosts")
    for host_pattern, host_vars in hosts.items():
        if host_vars is not None and not isinstance(host_vars, dict):
            raise BadInputError("host vars must be a mapping", where=f"{where}.hosts.{host_pattern}")
        host_text, port = _split_host_port(str(host_pattern), f"{where}.hosts.{host_pattern}")
        for host in expand_host_range(host_text, where):
            merged = dict(host_vars or {})
            if port is not None:
                merged.setdefault("ansible_port", port)
            inv.add_host(host, name, merged)
    children = body.get("children") or {}
    if not isinstance(children, dict):
        raise BadInputError("`children` must be a mapping of groups", where=f"{where}.children")
    for child, child_body in children.items():
        _yaml_group(inv, str(child), child_body, f"{where}.children.{child}", parent=name)


# ---------------------------------------------------------------- --host and shared helpers


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
    if not host or not re.fullmatch(r"[A-Za-z0-9_.:%-]+", host):
        raise BadInputError("not a host name or address", where=where,
                            hint="use a name, an IPv4 address or a bracketed IPv6 address")
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
        adhoc = Inventory("--host")
        for t in targets:
            adhoc.add_host(t.name, "ungrouped", {})
        keep = set(adhoc.select(limit))
        targets = [t for t in targets if t.name in keep]
    if inventory is not None:
        inv = load_inventory(inventory)
        names = inv.select(limit)
        if not names and not targets:
            raise BadInputError(f"--limit {limit!r} matches no host in the inventory", where=str(inventory),
                                hint=f"groups here: {', '.join(inv.groups)}")
        targets.extend(inv.target(n, default_identity=identity) for n in names)
    elif limit and not targets:
        raise BadInputError(f"--limit {limit!r} matches none of the --host arguments")
    seen: set[str] = set()
    unique: list[Target] = []
    for t in targets:
        if t.name not in seen:
            seen.add(t.name)
            unique.append(t)
    return unique


def _first(variables: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if variables.get(key) not in (None, ""):
            return variables[key]
    return None


def _first_str(variables: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str | None:
    value = _first(variables, keys)
    if value is None:
        return None
    text = str(value)
    if "{{" in text or "{%" in text:
        # connecting with the literal template text would reach the wrong host or user
        raise BadInputError(f"Jinja templates in connection variables are not evaluated: {text!r}", where=where,
                            hint="write the literal value in the inventory for svdops fleet runs")
    return text


def _port(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BadInputError(f"port {value!r} is not a number", where=where) from None
    if not 0 < port < 65536:
        raise BadInputError(f"port {port} is out of range 1-65535", where=where)
    return port
