"""`svdops provision`'s run: the playbooks in playbooks/ through ansible-runner's Python API. The only
module that imports ansible_runner.

run_provision(request) -> ProvisionResult: one fresh run folder, ansible-runner on site.yml, live
progress from runner events, and a per-host recap.

Secrets (a become password given with -e, a token in the caller's environment) stay out of the run
folder: the folder is private to its owner from its creation (0700, files 0600); extra vars reach
ansible-playbook through a 0600 file that is removed when the run ends, never through its command
line; ansible-playbook gets only the environment Ansible needs; request.json records secret-looking
variables as "<redacted>"; and when the run ends every file under the folder is scrubbed of each
secret value svdops knows (ansible-runner's `command`, `stdout`, `job_events/`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

import svdops
from svdops import paths
from svdops.errors import BadInputError, InterruptedRunError, MissingDependencyError, RunFailedError
from svdops.extras import install_hint
from svdops.files import atomic_write_json
from svdops.findings import Finding
from svdops.host.inventory import load_inventory, parse_host_arg, select_targets
from svdops.judge import knowledge as kb
from svdops.judge.profiles import Profile
from svdops.provision.plan import (
    Plan,
    PlanOptions,
    check_plan,
    check_storage_vars,
    plan_document,
    plan_for,
    wipes_by_host,
)

PLAYBOOKS_ENV = paths.PLAYBOOKS_ENV
RUNS_DIR_ENV = "SVDOPS_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("svdops-runs") / "provision"
EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 3
ROLES = ("preflight", "nvidia_driver", "cuda_toolkit", "cudnn", "nccl", "fabricmanager", "dcgm", "conda",
         "storage", "validate")


# extra vars that carry a validated choice: setting them with -e would skip the validation
VALIDATED_VARS = {
    "svdops_driver_branch": "--driver-branch", "svdops_driver_flavor": "--driver-flavor",
    "svdops_driver_version": "driver.version in the profile", "svdops_cuda_version": "--cuda",
    "svdops_cudnn_version": "cuda.cudnn in the profile", "svdops_nccl_version": "cuda.nccl in the profile",
    "svdops_torch_variant": "python.torch_cuda in the profile", "svdops_python_version": "python.version",
    "svdops_pip_packages": "python.packages in the profile", "svdops_allow_reboot": "--allow-reboot",
    "svdops_storage_wipe": "--wipe HOST=DISK (or svdops_storage_wipe as a host var in the inventory)",
    "svdops_storage_wipe_by_host": "--wipe HOST=DISK",
}

REDACTED = "<redacted>"
# a secret shorter than this is redacted where svdops records it by name, but not searched for in
# every byte of the run folder: replacing "42" everywhere would mangle the artifacts
MIN_SCRUBBED_LEN = 4
# the same for a secret-looking variable of the caller's environment, which svdops did not ask for
# (PASS=true): only values long enough to be secrets, not words
MIN_ENV_SECRET_LEN = 8
# words (not substrings: `keyring`, `monkey`, `tokenizer` are not secrets) that make a name secret
_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "pass", "secret", "secrets", "token", "key", "keys",
                           "credential", "credentials", "creds", "vault"})
# ... and glued compounds: dbpassword, apitoken, apikey, privatekey
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "credential", "credentials")
_KEY_COMPOUNDS = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "sshkey", "authkey", "signingkey",
                            "masterkey", "encryptionkey", "sessionkey"})
# a secret word counts at the end of the name, or before one of these: `AWS_ACCESS_KEY_ID`, `vault_id`,
# `token_value`; not `ANSIBLE_HOST_KEY_CHECKING`, `token_url`, `secret_name` or `ansible_ssh_private_key_file`
# and `ANSIBLE_VAULT_PASSWORD_FILE` (where a secret is kept, not the secret)
_VALUE_WORDS = frozenset({"id", "data", "value", "values", "material", "pem", "b64", "base64", "hash", "plain",
                          "raw", "text", "string", "str"})
# values of a secret-looking variable that are not worth searching every byte for (PASS=true)
_NOT_SECRETS = frozenset({"true", "false", "yes", "no", "none", "null", "on", "off"})
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@/\s]+)(?=@)")
# what ansible-playbook keeps of the caller's environment, besides ANSIBLE_* (its own settings) and
# what ansible-runner and svdops set: who and where the user is, how ssh authenticates, proxies
_KEPT_ENV = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "TERM", "SSH_AUTH_SOCK", "KRB5CCNAME",
                       "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})


def is_secret_name(name: str) -> bool:
    """Whether a variable named `name` holds a secret: password, passwd, passphrase, pass, secret(s),
    token, key(s), credential(s), creds or vault as a word of the name (split at `_`, `-`, `.` and
    camelCase) or glued onto one (dbpassword, apitoken, apikey), as its last word or followed only by
    words such as id, data or value. Words, not substrings: `keyring` is no key, `tokenizer` no token."""
    words = [w.lower() for w in _WORD.findall(str(name))]
    while words and words[-1] in _VALUE_WORDS:
        words.pop()
    if not words:
        return False
    last = words[-1]
    return last in _SECRET_WORDS or last in _KEY_COMPOUNDS or last.endswith(_SECRET_ENDINGS)


def redact(value: Any, secrets: set[str], name: str = "") -> Any:
    """`value` with every secret-looking variable (at any depth) replaced by "<redacted>", and the
    password of any URL (scheme://user:password@host) too; what was taken out is added to `secrets`."""
    if name and is_secret_name(name):
        _collect(value, secrets)
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        def hide(match: re.Match[str]) -> str:
            secrets.add(match["password"])
            return match["head"] + REDACTED
        return _URL_PASSWORD.sub(hide, value)
    return value


def _collected(variables: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    redact(variables, found)
    return found


def _collect(value: Any, secrets: set[str]) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _collect(v, secrets)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, secrets)
    elif value is not None and not isinstance(value, bool):
        secrets.add(str(value))


def mask(text: str, secrets: set[str]) -> str:
    """`text` with every secret svdops knows replaced (longest first, so one inside another goes too)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _secret_forms(secrets: set[str]) -> list[bytes]:
    """Each secret as it can appear in a file: as is, JSON-escaped, shell-quoted; longest first."""
    forms: set[bytes] = set()
    for secret in secrets:
        if len(secret) < MIN_SCRUBBED_LEN or secret.lower() in _NOT_SECRETS:
            continue
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                     shlex.quote(secret)):
            forms.add(form.encode("utf-8"))
    return sorted(forms, key=len, reverse=True)


def scrub_run_folder(run_dir: Path, secrets: set[str]) -> list[Path]:
    """Replace every copy of every secret in every file under `run_dir` (bytes, recursively), and make
    what ansible-runner and Ansible created there private (0700/0600). The files changed."""
    forms = _secret_forms(secrets)
    changed: list[Path] = []
    for folder, dirs, files in os.walk(run_dir):
        for name in dirs:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o700)
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue  # a FIFO (ansible-runner's ssh_key_data) would block a read
            path.chmod(0o600)
            data = path.read_bytes()
            cleaned = data
            for form in forms:
                cleaned = cleaned.replace(form, REDACTED.encode())
            if cleaned != data:
                path.write_bytes(cleaned)
                changed.append(path)
    return changed


@dataclass(frozen=True)
class ProvisionRequest:
    profile: Profile
    inventory: Path | None = None
    hosts: tuple[str, ...] = ()
    identity: Path | None = None
    check: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    limit: str | None = None
    allow_reboot: bool = False
    wipe: tuple[str, ...] = ()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    options: PlanOptions = field(default_factory=PlanOptions)
    forks: int = 16
    runs_dir: Path | None = None
    playbooks: Path | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One thing worth showing while the play runs. kind: play | task | ok | changed | failed |
    unreachable | skipped | message."""

    kind: str
    host: str = ""
    task: str = ""
    message: str = ""


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class ProvisionResult:
    run_dir: Path
    status: str  # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    check: bool
    recap: dict[str, HostRecap]
    failures: list[ProgressEvent]
    plan: dict[str, Any]  # host -> role -> what it installs (set_stats of the roles)
    reboot_required: dict[str, bool]
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        if any(r.unreachable for r in self.recap.values()):
            return EXIT_UNREACHABLE
        if any(r.failed for r in self.recap.values()) or self.status != "successful":
            return EXIT_FAILED
        return EXIT_OK


def playbooks_dir(explicit: Path | None = None) -> Path:
    """site.yml's folder: `explicit`, $SVDOPS_PLAYBOOKS, ~/.config/svdops/playbooks, then the package's copy."""
    return paths.find_playbooks(explicit).path


def new_run_dir(profile: str, base: Path | None = None, now: dt.datetime | None = None) -> Path:
    """A fresh folder per run: <base>/<UTC>-<profile>[-N]. Fresh matters: ansible-runner keeps the
    cmdline (e.g. --check) in its private data dir and would reuse it in a later run."""
    base = base or Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", profile)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the runs folder: {exc.strerror}", where=str(base)) from exc
    for n in range(1, 1000):
        candidate = base / (f"{stamp}-{safe}" if n == 1 else f"{stamp}-{safe}-{n}")
        try:
            # private from the start: request.json and ansible-runner's artifacts are written into it
            candidate.mkdir(mode=0o700, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInputError(f"cannot create the run folder: {exc.strerror}", where=str(candidate)) from exc
    raise BadInputError("too many runs in one second", where=str(base))


def extra_vars(plan: Plan, request: ProvisionRequest,
               wipe: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The profile, through the plan, as the playbooks' svdops_* variables; -e values on top. `wipe`:
    host -> the by-id disks --wipe unlocks on it (plan.wipes_by_host)."""
    profile = request.profile
    bad = sorted(set(request.extra_vars) & set(VALIDATED_VARS))
    if bad:
        hints = ", ".join(f"{k}: use {VALIDATED_VARS[k]}" for k in bad)
        raise BadInputError(f"-e cannot set {', '.join(bad)}: these are validated before the run", hint=hints)
    out: dict[str, Any] = {
        "svdops_profile_name": profile.name,
        "svdops_profile_files": [str(p.resolve()) for p in profile.chain],
        "svdops_driver_branch": str(plan.driver_branch),
        "svdops_driver_flavor": plan.driver_flavor,
        "svdops_driver_version": str(plan.driver_version) if plan.driver_version else "",
        "svdops_cuda_version": f"{plan.cuda.major}.{plan.cuda.minor}",
        "svdops_cudnn_version": plan.cudnn,
        "svdops_nccl_version": plan.nccl,
        "svdops_python_version": f"{plan.python.major}.{plan.python.minor}",
        "svdops_torch_variant": plan.torch_tag,
        "svdops_torch_index_url": kb.torch_index_url(plan.torch_variant),
        "svdops_pip_packages": list(plan.pip_packages),
        "svdops_allow_reboot": request.allow_reboot,
        "svdops_storage_wipe_by_host": {host: list(disks) for host, disks in (wipe or {}).items()},
    }
    if profile.os.releases:
        out["svdops_supported_releases"] = list(profile.os.releases)
    scratch, data = profile.storage.scratch, profile.storage.data
    if scratch is not None:
        out["svdops_storage_scratch_level"] = scratch.level
        out["svdops_storage_scratch_min_devices"] = scratch.min_devices
    if data is not None:
        # RAID6 where the profile allows it: a second parity survives a rebuild on large HDDs
        out["svdops_storage_data_level"] = "raid6" if "raid6" in data.levels else data.levels[0]
        out["svdops_storage_data_min_devices"] = data.min_devices
    out.update(request.extra_vars)
    return out


def svdops_source_dir() -> Path | None:
    """The source tree the running svdops was imported from (a checkout or an editable install), or None."""
    root = Path(svdops.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "svdops" / "__init__.py").is_file() else None


def build_svdops_wheel(dest: Path, source: Path | None = None) -> Path:
    """A wheel of the running svdops, built on the controller: the conda role installs this file, never
    a name from a public index (anyone can register one, and validate runs svdops as root)."""
    source = source or svdops_source_dir()
    dest.mkdir(parents=True, exist_ok=True)
    if source is None:
        # installed from a wheel (pip, pipx, uv tool): the installed files are the wheel, packed again
        return repack_installed_wheel(dest)
    # the same sources make the same bytes: the conda role rebuilds the environment whenever the wheel's
    # checksum changes, and a wheel stamped with the build time changed it on every run
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(_WHEEL_EPOCH)}
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--no-input", "--quiet", "-w", str(dest), str(source)],
                              capture_output=True, text=True, timeout=600, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunFailedError(f"building the svdops wheel failed: {exc}", where=str(source)) from exc
    wheels = sorted(dest.glob("svdops-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RunFailedError(f"building the svdops wheel failed (pip rc {done.returncode}): {' '.join(tail)}",
                             where=str(source), hint="python -m pip wheel --no-deps --no-build-isolation . shows why; "
                                                     "or give one with -e svdops_package_wheel=PATH")
    return wheels[0]


# the timestamp of every file in the wheels svdops builds (1980-01-01, the first a zip can hold)
_WHEEL_EPOCH = 315532800
_WHEEL_DATE = (1980, 1, 1, 0, 0, 0)


# written by the installer, not part of the wheel (PEP 376/610/627)
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


def repack_installed_wheel(dest: Path) -> Path:
    """The installed svdops distribution packed back into the wheel it came from.

    Every file the installation's RECORD lists under site-packages (the package and its .dist-info, less
    what the installer itself wrote, less bytecode) goes in unchanged, each checked against the hash the
    RECORD holds: a file changed since installation is refused, never shipped to the hosts.
    """
    where = str(Path(svdops.__file__).resolve().parent)
    try:
        dist = importlib.metadata.distribution("svdops")
    except importlib.metadata.PackageNotFoundError as exc:
        raise BadInputError("svdops is neither a checkout nor an installed distribution", where=where,
                            hint="give a wheel: -e svdops_package_wheel=/path/to/svdops-X-py3-none-any.whl") from exc
    site = Path(str(dist.locate_file(""))).resolve()
    info = f"svdops-{dist.version}.dist-info"
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    entries: list[tuple[str, bytes]] = []
    for record in dist.files or ():
        path = Path(str(dist.locate_file(record))).resolve()
        rel = record.as_posix()
        top = rel.split("/", 1)[0]
        if top not in ("svdops", info) or "__pycache__" in rel or rel.endswith(".pyc"):
            continue  # the console script, bytecode: the installer writes those on the host
        if top == info and rel.split("/")[-1] in _INSTALLER_FILES:
            continue
        if not path.is_relative_to(site):
            continue
        data = path.read_bytes()
        if record.hash is not None:
            digest = base64.urlsafe_b64encode(hashlib.new(record.hash.mode, data).digest()).rstrip(b"=").decode()
            if digest != record.hash.value:
                raise RunFailedError("an installed svdops file changed since installation: not shipping it",
                                     where=str(path), hint="reinstall svdops, or give a wheel with "
                                                           "-e svdops_package_wheel=PATH")
        entries.append((rel, data))
    if not tags or not any(rel.startswith("svdops/") for rel, _ in entries):
        raise RunFailedError("the installed svdops cannot be packed again (no WHEEL tag or no package files)",
                             where=str(site), hint="give a wheel with -e svdops_package_wheel=PATH")
    wheel = dest / f"svdops-{dist.version}-{tags[0]}.whl"
    partial = wheel.with_name(wheel.name + ".part")  # the role installs svdops-*.whl: never half of one
    lines = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(entries):
            zf.writestr(_zip_entry(rel), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{rel},sha256={digest},{len(data)}")
        lines.append(f"{info}/RECORD,,")
        zf.writestr(_zip_entry(f"{info}/RECORD"), "\n".join(lines) + "\n")
    partial.replace(wheel)
    return wheel


def _zip_entry(name: str) -> zipfile.ZipInfo:
    """A wheel entry stamped with a fixed date (writestr with a bare name stamps the current time)."""
    entry = zipfile.ZipInfo(name, date_time=_WHEEL_DATE)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    return entry


def conda_role_runs(request: ProvisionRequest) -> bool:
    return (not request.tags or "conda" in request.tags) and "conda" not in request.skip_tags


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """-e KEY=VALUE (VALUE read as YAML, so lists and numbers work) or -e @FILE (YAML/JSON mapping)."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise BadInputError(f"cannot read extra vars: {exc}", where=str(path)) from exc
            if not isinstance(data, dict):
                raise BadInputError("extra vars file must hold a mapping", where=str(path))
            out.update(data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BadInputError("expected -e KEY=VALUE or -e @FILE", where=f"-e {item}")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        # a mapping out of KEY=VALUE is text that happens to hold ": ", not a structure anyone meant
        out[key] = value if isinstance(parsed, dict) else parsed
    return out


def _write_host_inventory(path: Path, hosts: Sequence[str], identity: Path | None) -> None:
    lines = ["[svdops]"]
    for text in hosts:
        target = parse_host_arg(text, identity=identity)
        parts = [shlex.quote(target.name), f"ansible_host={shlex.quote(target.address)}"]
        if target.port:
            parts.append(f"ansible_port={target.port}")
        if target.user:
            parts.append(f"ansible_user={shlex.quote(target.user)}")
        if target.identity:
            parts.append(f"ansible_ssh_private_key_file={shlex.quote(str(target.identity))}")
        lines.append(" ".join(parts))
    _write_private(path, "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    """A new file only its owner can read, private from its creation (not chmod'ed once written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _runner_env(run_dir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    env = {
        # ansible-runner starts ansible-playbook by name: it must find this interpreter's copy
        "PATH": venv_bin + (os.pathsep + path if path else ""),
        "LC_ALL": "C.UTF-8",  # ansible refuses to start under a non-UTF-8 locale
        "LANG": "C.UTF-8",
        # a multiplexing master outlives the run by a minute and holds the run's stdout open
        "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", "-o ControlMaster=no"),
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
    }
    # ansible-runner turns host key checking off unless told otherwise; svdops keeps it on unless the
    # caller's own environment turns it off (the VM tests do, for a VM whose key is new on every build)
    env["ANSIBLE_HOST_KEY_CHECKING"] = os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")
    return env


def _only_what_ansible_needs(ours: Mapping[str, str]) -> Callable[..., None]:
    """An ansible-runner status handler: on 'starting', before ansible-runner writes
    artifacts/<ident>/command and starts ansible-playbook, it cuts the environment ansible-runner copied
    from this process down to what Ansible needs: what svdops set (`ours`), what ansible-runner set,
    ANSIBLE_* settings, and _KEPT_ENV. A token in the caller's environment never reaches the play."""

    def handler(status: Mapping[str, Any], runner_config: Any = None) -> None:
        if status.get("status") != "starting" or runner_config is None:
            return
        env = runner_config.env
        keep = {}
        for name, value in env.items():
            inherited = name in os.environ and os.environ[name] == value and name not in ours
            if (not inherited or name in _KEPT_ENV
                    or (name.startswith("ANSIBLE_") and not is_secret_name(name))):
                keep[name] = value
        env.clear()
        env.update(keep)

    return handler


class _EventSink:
    """Turns ansible-runner events into ProgressEvents and keeps what the recap needs."""

    def __init__(self, on_progress: Callable[[ProgressEvent], None] | None,
                 secrets: set[str] | None = None) -> None:
        self.on_progress = on_progress
        self.secrets = secrets or set()
        self.failures: list[ProgressEvent] = []
        self.stats: dict[str, Any] = {}
        self.artifact_data: dict[str, Any] = {}

    def _emit(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def _message(self, res: Mapping[str, Any]) -> str:
        return mask(_message(res), self.secrets)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        task = str(data.get("task") or "")
        role = data.get("role")
        label = f"{role} : {task}" if role and not task.startswith(f"{role} :") else task
        if name == "playbook_on_play_start":
            self._emit(ProgressEvent("play", task=str(data.get("play") or "")))
        elif name == "playbook_on_task_start":
            self._emit(ProgressEvent("task", task=label))
        elif name == "runner_on_ok":
            res = data.get("res") or {}
            changed = bool(res.get("changed"))
            message = self._message(res)
            self._emit(ProgressEvent("changed" if changed else "ok", host, label, message))
            if message and res.get("msg") is not None and data.get("task_action", "").endswith("debug"):
                self._emit(ProgressEvent("message", host, label, message))
        elif name in ("runner_on_failed", "runner_item_on_failed") and not data.get("ignore_errors"):
            failure = ProgressEvent("failed", host, label, self._message(data.get("res") or {}))
            self.failures.append(failure)
            self._emit(failure)
        elif name == "runner_on_unreachable":
            failure = ProgressEvent("unreachable", host, label, self._message(data.get("res") or {}))
            self.failures.append(failure)
            self._emit(failure)
        elif name == "runner_on_skipped":
            self._emit(ProgressEvent("skipped", host, label))
        elif name == "playbook_on_stats":
            self.stats = dict(data)
            self.artifact_data = dict(data.get("artifact_data") or {})
        return True  # keep every event in the artifacts


def _message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg")
    if isinstance(msg, list):
        msg = " ".join(str(m) for m in msg)
    if msg:
        return " ".join(str(msg).split())
    stderr = str(res.get("stderr") or "").strip()
    return stderr.splitlines()[-1] if stderr else ""


def _recap(stats: Mapping[str, Any]) -> dict[str, HostRecap]:
    fields = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped",
              "rescued": "rescued", "ignored": "ignored"}
    hosts: set[str] = set()
    for key in fields:
        hosts.update((stats.get(key) or {}).keys())
    hosts.update((stats.get("processed") or {}).keys())
    recap = {h: HostRecap() for h in sorted(hosts)}
    for key, attr in fields.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(recap[host], attr, int(count))
    return recap


def _import_runner() -> Any:
    try:
        import ansible_runner
    except ImportError as exc:
        raise MissingDependencyError(f"ansible-runner is not installed ({exc})",
                                     hint=install_hint("provision")) from exc
    return ansible_runner


def run_provision(request: ProvisionRequest,
                  on_progress: Callable[[ProgressEvent], None] | None = None) -> ProvisionResult:
    """Validate the plan, then run site.yml once through ansible-runner; every outcome is in the result."""
    if not request.hosts and request.inventory is None:
        raise BadInputError("no hosts: give --inventory FILE or --host [USER@]HOST[:PORT]")
    plan = plan_for(request.profile, request.options)
    findings = check_plan(plan)
    for tag in (*request.tags, *request.skip_tags):
        if tag not in ROLES:
            raise BadInputError(f"unknown tag {tag!r}", hint=f"tags are the role names: {', '.join(ROLES)}")
    # a --limit that matches nothing, or a bad inventory, is a usage error before anything starts
    targets = select_targets(hosts=request.hosts, inventory=request.inventory, limit=request.limit,
                             identity=request.identity)
    if not targets:
        raise BadInputError("no hosts to provision", hint="check --limit against the inventory's groups")
    host_vars = _storage_host_vars(request, [t.name for t in targets])
    wipe = wipes_by_host(request.wipe, host_vars)
    variables = extra_vars(plan, request, wipe)
    runner = _import_runner()
    playbooks = playbooks_dir(request.playbooks)

    # absolute: ansible-runner runs from the playbooks' folder and reads an inventory path it cannot find
    # there as a list of host names (a relative ./svdops-runs would make the hosts.ini path the "host")
    run_dir = new_run_dir(request.profile.name, request.runs_dir).absolute()
    private = run_dir / "runner"
    private.mkdir(mode=0o700)
    (run_dir / "tmp").mkdir(mode=0o700)
    # svdops itself reaches the hosts as a wheel built here, unless -e names one (or a trusted spec)
    if conda_role_runs(request) and not variables.get("svdops_package_wheel") \
            and not variables.get("svdops_package_spec_trusted"):
        variables["svdops_package_wheel"] = str(build_svdops_wheel(run_dir / "wheel"))
    if request.inventory is not None:
        inventory = str(request.inventory.resolve())
    else:
        host_inventory = run_dir / "hosts.ini"
        _write_host_inventory(host_inventory, request.hosts, request.identity)
        inventory = str(host_inventory)

    secrets: set[str] = set()
    recorded_vars = redact(variables, secrets)
    # the caller's own secrets: ansible-playbook does not get them (_only_what_ansible_needs), and if
    # anything still echoes one (a lookup('env') in an inventory) the scrub below finds it
    secrets |= {v for v in _collected(dict(os.environ)) if len(v) >= MIN_ENV_SECRET_LEN}
    # extra vars through a private file, not ansible-playbook's command line (ps, artifacts/command)
    vars_file = private / "extravars.json"
    _write_private(vars_file, json.dumps(variables, default=str))
    cmdline = ["-e", f"@{vars_file}"]
    if request.check:
        cmdline += ["--check", "--diff"]
    if request.skip_tags:
        cmdline += ["--skip-tags", ",".join(request.skip_tags)]
    started = dt.datetime.now(dt.UTC)
    _write_json(run_dir / "request.json", {
        "profile": request.profile.name, "profile_file": str(request.profile.source), "check": request.check,
        "tags": list(request.tags), "skip_tags": list(request.skip_tags), "limit": request.limit,
        "inventory": inventory, "allow_reboot": request.allow_reboot, "wipe": wipe,
        "extra_vars": recorded_vars, "plan": plan_document(plan), "findings": [asdict(f) for f in findings],
        "started": started.isoformat(), "svdops": svdops.__version__,
    })
    sink = _EventSink(on_progress, secrets)
    runner_env = _runner_env(run_dir)
    # ansible-runner replaces SIGINT/SIGTERM with handlers that only set its cancel flag, and never puts
    # ours back: after one run, Ctrl-C in this process would no longer interrupt anything
    handlers = _signal_handlers()
    try:
        result = runner.run(
            private_data_dir=str(private),
            project_dir=str(playbooks),
            playbook=str(playbooks / "site.yml"),
            inventory=inventory,
            tags=",".join(request.tags) or None,
            limit=request.limit,
            cmdline=shlex.join(cmdline),
            envvars=runner_env,
            # no env/envvars, env/extravars... in clear beside the artifacts
            suppress_env_files=True,
            status_handler=_only_what_ansible_needs(runner_env),
            forks=request.forks,
            ident="run",
            event_handler=sink,
            quiet=True,
        )
    finally:
        _restore_signal_handlers(handlers)
        vars_file.unlink(missing_ok=True)
        _redact_command_file(private / "artifacts" / "run" / "command", secrets)
        scrub_run_folder(run_dir, secrets)
    status, rc = str(result.status), int(result.rc if result.rc is not None else -1)
    if not sink.stats and status == "canceled":
        raise InterruptedRunError("interrupted: the play did not finish", where=str(run_dir),
                                  hint=f"what ran is in {private / 'artifacts' / 'run' / 'stdout'}; rerun to finish")
    if not sink.stats:
        tail = mask(_stdout_tail(private / "artifacts" / "run" / "stdout"), secrets)
        raise RunFailedError(f"ansible-playbook stopped before the play ran (status {status}, rc {rc}): {tail}",
                             where=str(run_dir), hint=f"see {private / 'artifacts' / 'run' / 'stdout'}")
    recap = _recap(sink.stats)
    outcome = ProvisionResult(
        run_dir=run_dir, status=status, rc=rc, check=request.check, recap=recap, failures=sink.failures,
        plan=redact(dict(sink.artifact_data.get("svdops_plan") or {}), secrets),
        reboot_required={h: bool(v) for h, v in (sink.artifact_data.get("svdops_reboot_required") or {}).items()},
        findings=findings,
    )
    _write_json(run_dir / "result.json", {
        "status": status, "rc": rc, "exit_code": outcome.exit_code, "check": request.check,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "recap": {h: asdict(r) for h, r in recap.items()},
        "failures": [asdict(f) for f in sink.failures], "plan": outcome.plan,
        "reboot_required": outcome.reboot_required, "artifacts": str(private / "artifacts" / "run"),
    })
    return outcome


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set them (and ansible-runner then leaves them alone)
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: Mapping[int, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _storage_host_vars(request: ProvisionRequest, hosts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each host's storage variables as the play will see them (inventory host vars, -e on top),
    validated (plan.check_storage_vars) before anything starts."""
    inventory = load_inventory(request.inventory) if request.inventory is not None else None
    out: dict[str, dict[str, Any]] = {}
    for host in hosts:
        found: dict[str, Any] = {}
        where = f"-e (host {host})"
        if inventory is not None and host in inventory.hosts:
            found = {k: v for k, v in inventory.variables(host).items() if k.startswith("svdops_storage_")}
            where = f"{inventory.source}: host {host}"
        extra = {k: v for k, v in request.extra_vars.items() if k.startswith("svdops_storage_")}
        if extra:
            where += " and -e" if inventory is not None else ""
        merged = {**found, **extra}
        check_storage_vars(merged, where=where)
        out[host] = merged
    return out


def _redact_command_file(path: Path, secrets: set[str]) -> None:
    """ansible-runner's artifacts/<ident>/command records the environment ansible-playbook got: keep
    its names and non-secret values (what ran, and how), not the secrets."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(document, dict):
        document = redact(document, secrets)
        path.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")


def _stdout_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no output"
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def _write_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data, sort_keys=True)
