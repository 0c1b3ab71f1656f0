"""KnownHostsCache (svdops/host/ssh.py): known_hosts parsed once per run instead of once per connection,
parsed again when the file changes, and each connection's HostKeys its own. Real ed25519 keys from
ssh-keygen, real paramiko HostKeys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

paramiko = pytest.importorskip("paramiko")
from svdops.host.ssh import KnownHostsCache  # noqa: E402

KEYGEN = shutil.which("ssh-keygen")


def host_key(tmp_path: Path, name: str) -> str:
    assert KEYGEN is not None
    subprocess.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    kind, body = (tmp_path / f"{name}.pub").read_text().split()[:2]
    return f"{kind} {body}"


@pytest.mark.skipif(KEYGEN is None, reason="ssh-keygen (openssh-client) is absent")
def test_parsed_once_reparsed_on_change_and_each_connection_keeps_its_own(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    known = tmp_path / "known_hosts"
    a, b = host_key(tmp_path, "a"), host_key(tmp_path, "b")
    known.write_text(f"[127.0.0.1]:2201 {a}\n[127.0.0.1]:2202 {b}\n")
    parses: list[str] = []
    real_load = paramiko.HostKeys.load

    def counting_load(self: object, filename: str) -> None:
        parses.append(filename)
        real_load(self, filename)

    monkeypatch.setattr(paramiko.HostKeys, "load", counting_load)
    cache = KnownHostsCache()
    first, second = paramiko.HostKeys(), paramiko.HostKeys()
    cache.load_into(first, known)
    cache.load_into(second, known)
    assert len(parses) == 1
    fresh = paramiko.HostKeys()
    real_load(fresh, str(known))
    for keys in (first, second):  # what HostKeys.load itself makes of the file
        assert sorted(keys.keys()) == sorted(fresh.keys()) == ["[127.0.0.1]:2201", "[127.0.0.1]:2202"]
        assert keys.lookup("[127.0.0.1]:2201") == fresh.lookup("[127.0.0.1]:2201")

    # a key one connection accepts (--accept-new-host-keys) is that connection's alone
    new = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "a"))
    first.add("[127.0.0.1]:2203", new.get_name(), new)
    assert "[127.0.0.1]:2203" in first and "[127.0.0.1]:2203" not in second

    # once recorded in the file, the next connection sees it
    with known.open("a") as fh:
        fh.write(f"[127.0.0.1]:2203 {a}\n")
    third = paramiko.HostKeys()
    cache.load_into(third, known)
    assert len(parses) == 2 and "[127.0.0.1]:2203" in third
