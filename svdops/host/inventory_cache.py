"""A cache of what Ansible made of a static inventory, so a fleet run need not start Ansible every time.

Reading an inventory through ansible-core (inventory.py) costs half a second of CPU, mostly importing
it; a fleet check of 20 hosts spends as much again on everything else. The answer, the selected hosts
with their connection settings, is cached per *everything that can change it*, hashed into the key:

- every file of the inventory: the file itself (or the whole directory tree), and the `group_vars/`
  and `host_vars/` trees beside it, by content and executable bit;
- `--limit` and the default identity (`-i`), the working directory (a relative path, ./ansible.cfg)
  and $HOME (`~` in a key path, ~/.ansible.cfg);
- the ansible-core install (where it is and its release.py), and svdops' own code that resolves hosts;
- every ANSIBLE_* environment variable, and each ansible.cfg Ansible could read ($ANSIBLE_CONFIG,
  ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg), by content.

Never cached, because their answer depends on more than those files: dynamic inventories (an
executable file, a YAML/JSON file naming a `plugin:`), vaulted values, a `--limit @file`, and any
setup that brings in other inventory or vars plugins (a config or ANSIBLE_* variable about plugins,
legacy vars plugins in ~/.ansible/plugins/vars or /usr/share/ansible/plugins/vars), or a tree too big
to hash cheaply. Then Ansible reads the inventory every time, as before.

Storage: $XDG_CACHE_HOME/svdops/inventory (by default ~/.cache/svdops/inventory), a folder only its
owner can read, one JSON file per key, written whole to a temporary file and renamed into place. A
cache file is treated as hostile: one that is not ours (owner, permissions, a link), unreadable,
malformed, or holding values inventory.py would refuse is ignored and rebuilt, never trusted or fatal.
SVDOPS_INVENTORY_CACHE=off turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svdops.files import atomic_write_bytes

CACHE_ENV = "SVDOPS_INVENTORY_CACHE"
FORMAT = 1
MAX_FILES = 2000  # inventory, group_vars and host_vars files together
MAX_TREE_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BYTES = 8 * 1024 * 1024
KEEP_ENTRIES = 32

_PLUGIN_LINE = re.compile(rb"""^\s*["']?plugin["']?\s*:""", re.MULTILINE)
_VARS_DIRS = ("group_vars", "host_vars")
# what in a config or an ANSIBLE_* name can bring in another inventory or vars plugin, or a vault
_RISKY_CONFIG = ("plugin", "enable", "vault")


class _Uncacheable(Exception):
    """This inventory's answer depends on more than its files: read it through Ansible every time."""


@dataclass(frozen=True)
class CachedTarget:
    """A Target as stored: plain values, validated again on the way back in."""

    name: str
    address: str
    port: int | None
    user: str | None
    identity: str | None
    groups: tuple[str, ...]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "svdops" / "inventory"


def enabled() -> bool:
    return os.environ.get(CACHE_ENV, "").strip().lower() not in ("0", "off", "no", "false")


def key_for(inventory: Path, limit: str | None, identity: Path | None) -> str | None:
    """The cache key for this selection, or None when it must not be cached."""
    if not enabled():
        return None
    try:
        return _key(inventory, limit, identity)
    except (_Uncacheable, OSError, UnicodeError, ValueError):
        return None


def load(key: str, validate: Callable[[CachedTarget], Any]) -> list[Any] | None:
    """The targets stored under `key`, each passed through `validate` (which raises on a bad one); None
    when there is no usable entry (absent, not ours, corrupt, refused by `validate`)."""
    folder = _private_dir(create=False)
    if folder is None:
        return None
    try:
        fd = os.open(folder / f"{key}.json", os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077 \
                or info.st_size > MAX_ENTRY_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        rows = data["targets"]
        if not isinstance(rows, list) or not rows:
            return None
        return [validate(_cached_target(row)) for row in rows]
    except Exception:  # anything at all in a cache file only means: read the inventory again
        return None


def store(key: str, targets: Sequence[CachedTarget]) -> None:
    """Keep `targets` under `key`: whole or not at all, readable by its owner only. Failing is silent:
    the cache only ever saves time."""
    folder = _private_dir(create=True)
    if folder is None or not targets:
        return
    body = json.dumps({"format": FORMAT, "key": key,
                       "targets": [{"name": t.name, "address": t.address, "port": t.port, "user": t.user,
                                    "identity": t.identity, "groups": list(t.groups)} for t in targets]},
                      separators=(",", ":")).encode()
    try:
        atomic_write_bytes(folder / f"{key}.json", body)  # a private temporary file (0600), renamed in
        _prune(folder)
    except OSError:
        pass


# ---------------------------------------------------------------- the key


def _key(inventory: Path, limit: str | None, identity: Path | None) -> str:
    if limit and "@" in limit:
        raise _Uncacheable("a --limit @file reads a file")  # (and a pattern never needs '@' otherwise)
    cwd = Path.cwd()
    home = Path.home()
    source = Path(os.path.abspath(inventory))
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogateescape")
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)

    add("svdops-inventory-cache", FORMAT, sys.version, limit or "", identity or "", cwd, home,
        oct(cwd.stat().st_mode))
    for module in ("inventory.py", "inventory_cache.py"):
        add(module, (Path(__file__).parent / module).read_bytes())
    spec = importlib.util.find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        raise _Uncacheable("ansible-core is not importable")  # load_inventory says so, properly
    ansible_dir = Path(next(iter(spec.submodule_search_locations)))
    add("ansible", ansible_dir, (ansible_dir / "release.py").read_bytes())

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_"))
    if any(word in k.lower() for k, _ in env for word in _RISKY_CONFIG):
        raise _Uncacheable("an ANSIBLE_* variable about plugins or vaults")
    add("env", json.dumps(env))
    configs = [Path(os.environ["ANSIBLE_CONFIG"]).expanduser()] if os.environ.get("ANSIBLE_CONFIG") else []
    configs += [cwd / "ansible.cfg", home / ".ansible.cfg", Path("/etc/ansible/ansible.cfg")]
    for config in configs:
        text = _read_if_file(config)
        if text is not None and any(word in text.lower() for word in (w.encode() for w in _RISKY_CONFIG)):
            raise _Uncacheable(f"{config} may bring in other plugins")
        add("config", config, b"-" if text is None else b"+" + text)
    ansible_home = Path(os.environ.get("ANSIBLE_HOME") or home / ".ansible").expanduser()
    for legacy in (ansible_home / "plugins" / "vars", Path("/usr/share/ansible/plugins/vars")):
        if legacy.is_dir() and any(legacy.iterdir()):
            raise _Uncacheable(f"legacy vars plugins in {legacy}")

    budget = _Budget()
    if source.is_dir():
        add("tree", source)
        _add_tree(add, source, budget, inventory_part=True)
        base = source
    elif source.is_file():
        add("file", source)
        _add_file(add, source, source.name, budget, inventory_part=True)
        base = source.parent
    else:
        raise _Uncacheable("not a file or directory")  # load_inventory explains
    if not source.is_dir():
        for name in _VARS_DIRS:
            if (base / name).exists():
                add("vars", name)
                _add_tree(add, base / name, budget, inventory_part=False)
    return h.hexdigest()


class _Budget:
    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def take(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files > MAX_FILES or self.bytes > MAX_TREE_BYTES:
            raise _Uncacheable("too many or too big files to hash")


def _add_tree(add: Callable[..., None], top: Path, budget: _Budget, *, inventory_part: bool) -> None:
    if top.is_file():  # group_vars/all as a file
        _add_file(add, top, top.name, budget, inventory_part=False)
        return
    def unreadable(exc: OSError) -> None:
        raise _Uncacheable(f"cannot list {exc.filename}") from exc

    for folder, dirs, files in os.walk(top, onerror=unreadable, followlinks=True):
        budget.take(0)  # folders count too: a symlink loop ends here, not at PATH_MAX
        dirs.sort()
        relative = Path(folder).relative_to(top)
        for name in sorted(files):
            # group_vars/ and host_vars/ inside an inventory directory are vars, not inventory sources
            part = inventory_part and not (relative.parts[:1] and relative.parts[0] in _VARS_DIRS)
            _add_file(add, Path(folder) / name, str(relative / name), budget, inventory_part=part)
        add("dirs", relative, json.dumps(dirs))


def _add_file(add: Callable[..., None], path: Path, label: str, budget: _Budget, *, inventory_part: bool) -> None:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _Uncacheable(f"{path} is not a regular file")
    budget.take(info.st_size)
    data = path.read_bytes()
    executable = bool(info.st_mode & 0o111)
    if inventory_part and executable:
        raise _Uncacheable(f"{path} is executable: a dynamic inventory script")
    if inventory_part and path.suffix.lower() in (".yml", ".yaml", ".json") and _PLUGIN_LINE.search(data):
        raise _Uncacheable(f"{path} configures an inventory plugin")
    if b"$ANSIBLE_VAULT" in data:
        raise _Uncacheable(f"{path} holds vaulted data")
    add(label, executable, data)


def _read_if_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError as exc:
        raise _Uncacheable(f"cannot read {path}") from exc


# ---------------------------------------------------------------- storage


def _private_dir(*, create: bool) -> Path | None:
    """The cache folder if it is ours alone (created 0700 when asked), else None."""
    folder = cache_dir()
    try:
        if create:
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        return None
    return folder


def _prune(folder: Path) -> None:
    entries = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            entries.append((path.lstat().st_mtime, path))
    for _, path in sorted(entries, reverse=True)[KEEP_ENTRIES:]:
        with contextlib.suppress(OSError):
            path.unlink()


def _cached_target(row: object) -> CachedTarget:
    if not isinstance(row, dict):
        raise ValueError("not a mapping")
    name, address, port, user, identity, groups = (row[k] for k in
                                                   ("name", "address", "port", "user", "identity", "groups"))
    if not (isinstance(name, str) and isinstance(address, str)):
        raise ValueError("name/address")
    if port is not None and (type(port) is not int or not 0 < port < 65536):
        raise ValueError("port")
    if not (user is None or isinstance(user, str)) or not (identity is None or isinstance(identity, str)):
        raise ValueError("user/identity")
    if identity is not None and ("\0" in identity or not identity):
        raise ValueError("identity")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("groups")
    return CachedTarget(name, address, port, user, identity, tuple(groups))
