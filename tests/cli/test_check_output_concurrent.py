"""Two `svdops check -o FILE` processes writing the same FILE at once: one whole file wins, no temp left.

Every format goes through svdops.files (mkstemp beside the target, then os.replace), so the two never
share a temporary name; this holds that in place with real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.paths import REPO, recorded_host

WRITERS = 3


def _valid(fmt: str, text: str) -> bool:
    if fmt == "json":
        return json.loads(text)["schema"] == "svdops.check/1"
    if fmt == "junit":
        return ET.fromstring(text).tag == "testsuites"
    return text.startswith("svdops check: ") and text.rstrip().endswith("-v shows them)")


@pytest.mark.parametrize("fmt", ["json", "junit", "table"])
def test_concurrent_writers_of_one_output_leave_one_whole_file(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "out" / f"check.{fmt}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    hosts = ["h100-sxm-ubuntu2404", "seed-2023-ubuntu2004-a100x2", "no-gpu"]  # different content per writer
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "svdops",
                "check",
                "--from-dir",
                str(recorded_host(h)),
                "--format",
                fmt,
                "-o",
                str(target),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in hosts[:WRITERS]
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), stderr
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no .check.*.tmp left
    text = target.read_text()
    assert _valid(fmt, text)
