"""A recorded host that lies in its text: rich markup and terminal control sequences in the names it reports.

Built from the real recorded H100 host, with its host name, OS name, GPU name and CPU model rewritten the
way a hostile or broken machine could report them. Each payload goes only where its recording could
really carry it: the nvidia-smi XML cannot hold ESC or NUL (expat would refuse the whole document), so the
XML's GPU name has the markup and the C1 control; JSON recordings carry every control as an escape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.paths import recorded_host

MARKUP = "[/][bold]x[link=https://evil.example]y[/link]"
# OSC window title, CSI clear screen, a one-byte C1 CSI, NUL, backspace
CONTROLS = "\x1b]0;pwned\x07\x1b[2J\x9b\x00\x08"
PAYLOAD = MARKUP + CONTROLS
HOSTNAME = "evil" + PAYLOAD  # no space: a host name with one is not a host name
GPU_NAME = "NVIDIA H100 " + PAYLOAD
XML_GPU_NAME = "NVIDIA H100 " + MARKUP + "\x9b"
CPU_MODEL = "Xeon\r" + PAYLOAD  # a bare CR would overwrite the row in a terminal; JSON carries it
OS_NAME = "Ubuntu " + PAYLOAD
REAL_GPU = "NVIDIA H100 80GB HBM3"

# What must never reach a terminal or a file unescaped: ESC, BEL, NUL, backspace, CR, C1 CSI.
RAW_CONTROLS = ("\x1b", "\x07", "\x00", "\x08", "\r", "\x9b")


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_bytes().decode("utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_bytes(text.replace(old, new).encode("utf-8"))


def hostile_host(folder: Path, *, hostname: str = HOSTNAME) -> Path:
    """A copy of the recorded H100 host in `folder` whose names carry markup and control sequences."""
    shutil.copytree(recorded_host("h100-sxm-ubuntu2404"), folder)
    (folder / "hostname.txt").write_bytes(hostname.encode("utf-8") + b"\n")
    _rewrite(folder / "os-release.txt", 'PRETTY_NAME="Ubuntu 24.04.3 LTS"', f'PRETTY_NAME="{OS_NAME}"')
    for key in ("nvidia-smi-query-gpu.csv", "nvidia-smi-q.txt", "nvidia-smi.txt"):
        _rewrite(folder / key, REAL_GPU, GPU_NAME)
    _rewrite(folder / "nvidia-smi-q.xml", REAL_GPU, XML_GPU_NAME)
    nvml = json.loads((folder / "nvml.json").read_text())
    for gpu in nvml["gpus"]:
        gpu["name"] = GPU_NAME
    (folder / "nvml.json").write_text(json.dumps(nvml))
    lscpu = json.loads((folder / "lscpu.json").read_text())
    _set_field(lscpu["lscpu"], "Model name:", CPU_MODEL)
    (folder / "lscpu.json").write_text(json.dumps(lscpu))
    return folder


def _set_field(items: list[Any], field: str, value: str) -> None:
    for item in items:
        if item.get("field") == field:
            item["data"] = value
        _set_field(item.get("children") or [], field, value)


def raw_controls_in(text: str) -> list[str]:
    """The control characters of the payloads that appear raw in `text` (should be none)."""
    return [c for c in RAW_CONTROLS if c in text]
