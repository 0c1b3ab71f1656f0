"""What `svdops check|facts --host/--inventory` shows people: the fleet summary, its footer, the progress bar.

One host that lies in its names (tests/support/hostile.py) must not cost the others their tables.
The fleets are recorded hosts behind the fleet runner (tests/unit/test_fleet_check.py has the core);
the full command over real sshd servers is in tests/integration/test_fleet_ssh.py.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from svdops.cli.fleet_cmds import (
    _check_tables,
    _facts_tables,
    fleet_footer,
    fleet_progress,
    host_progress,
    summary_table,
)
from svdops.host.fleet import FleetOptions
from svdops.host.inventory import Target
from svdops.host.shell import RecordedShell, Shell
from svdops.host.ssh import SshAuthError
from svdops.judge import documents
from svdops.judge.check import check_profile
from svdops.judge.fleet_check import FleetCheck, FleetFacts, check_fleet, gather_fleet
from tests.support.hostile import hostile_host, raw_controls_in
from tests.support.paths import HOSTS
from tests.support.profiles import GPU_ONLY

FLEET = {"a100": "seed-2023-ubuntu2004-a100x2", "rtx": "pcie-pair-rtx4090", "cpu": "no-gpu", "locked": None}


def connector(hosts: dict[str, str | None]) -> Callable[[Target], Shell]:
    def connect(t: Target) -> Shell:
        folder = hosts[t.name]
        if folder is None:
            raise SshAuthError("authentication failed", where=t.name, hint="check the key with ssh -v")
        return RecordedShell(HOSTS / folder, name=t.name)

    return connect


def targets(hosts: dict[str, str | None]) -> list[Target]:
    return [Target(name, "127.0.0.1", 22, "root") for name in hosts]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> FleetCheck:
    profile = tmp_path_factory.mktemp("profiles") / "gpu-only.yaml"
    profile.write_text(GPU_ONLY)
    return check_fleet(targets(FLEET), FleetOptions(), check_profile(str(profile)), connect=connector(FLEET))


def text_of(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, no_color=True).print(renderable)
    return buffer.getvalue()


def test_check_summary_has_a_row_per_host_with_its_counts(checked: FleetCheck) -> None:
    lines = text_of(summary_table(checked)).splitlines()
    assert lines[0].startswith("Fleet check against profile 'gpu-only'")
    header = next(ln for ln in lines if "host" in ln and "status" in ln)
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["host", "status", "pass", "warn", "fail", "unknown",
                                                            "GPUs", "driver", "time"]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.split("│")[1:-1]] for ln in lines
                                              if ln.startswith("│"))}
    # R470 is past NVIDIA's end of life: driver.branch warns
    assert rows["a100"][:7] == ["ok (warnings)", "12", "1", "0", "0", "2x NVIDIA A100-SXM4-40GB", "470.199.02"]
    assert rows["rtx"][0] == "ok (warnings)" and rows["rtx"][3:7] == ["0", "0", "2x NVIDIA GeForce RTX 4090",
                                                                      "570.133.07"]
    assert int(rows["rtx"][2]) > 0  # persistence mode is off on both GPUs
    # no driver: it fails, and whether nouveau or Secure Boot holds the GPU could not be looked at
    assert rows["cpu"][:7] == ["failed checks", "2", "0", "3", "2", "none", "n/a"]
    assert rows["locked"][:7] == ["auth failed", "-", "-", "-", "-", "-", "-"]


def test_check_footer_counts_checked_failed_and_unreachable(checked: FleetCheck) -> None:
    assert fleet_footer(checked) == "4 hosts: 3 checked (1 with failed checks), 1 not checked (1 auth failed)"


def test_a_check_where_no_host_answered_still_says_checked() -> None:
    fleet = check_fleet(targets({"a": None}), FleetOptions(), check_profile(None), connect=connector({"a": None}))
    assert fleet_footer(fleet) == "1 hosts: 0 checked (0 with failed checks), 1 not checked (1 auth failed)"
    assert text_of(summary_table(fleet)).startswith("Fleet check against profile 'svd-host'")


def test_facts_summary_and_footer() -> None:
    fleet: FleetFacts = gather_fleet(targets(FLEET), FleetOptions(), connect=connector(FLEET))
    text = text_of(summary_table(fleet))
    for word in ("Fleet facts", "CUDA", "OS", "2x NVIDIA GeForce RTX 4090", "Ubuntu", "auth failed"):
        assert word in text
    assert "pass" not in text
    assert fleet_footer(fleet) == "4 hosts: 3 probed, 1 not probed (1 auth failed)"


def test_progress_bar_counts_hosts() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with fleet_progress(console) as progress:
        task = progress.add_task("probing hosts", total=3)
        progress.update(task, advance=2)
        progress.refresh()
    assert "2/3" in buffer.getvalue()


def test_no_progress_bar_off_a_terminal() -> None:
    with host_progress(3) as on_result:  # pytest captures stderr: not a terminal
        assert on_result is None


# --- one lying host among honest ones --------------------------------------------------------------------


EVIL_LABEL = "evil[/]\x1b]0;pwned\x07"  # an inventory label is text someone else wrote


@pytest.fixture(scope="module")
def lying_fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    folder = hostile_host(tmp_path_factory.mktemp("hostile") / "evil")
    return {"a100": FLEET["a100"], EVIL_LABEL: str(folder), "rtx": FLEET["rtx"], "locked": None}


def lying_connector(hosts: dict[str, str | None]) -> Callable[[Target], Shell]:
    def connect(t: Target) -> Shell:
        folder = hosts[t.name]
        if folder is None:  # what a server's banner or a proxy could put in the error
            raise SshAuthError("authentication failed: [/]\x1b[2J\x9b", where=t.name, hint="[bold]\x1b]0;x\x07")
        return RecordedShell(HOSTS / folder, name=t.name)

    return connect


def terminal_text(draw: Callable[[Console], None]) -> str:
    """What a colour terminal would receive."""
    buffer = io.StringIO()
    draw(Console(file=buffer, width=200, force_terminal=True, color_system="truecolor", emoji=False))
    return buffer.getvalue()


def without_styles(text: str) -> str:
    """Terminal text less rich's own SGR colour codes (ESC [ ... m), the only escapes it may send."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_one_lying_host_does_not_cost_the_others_their_check_tables(
        lying_fleet: dict[str, str | None], tmp_path: Path) -> None:
    profile = tmp_path / "gpu-only.yaml"
    profile.write_text(GPU_ONLY)
    fleet = check_fleet(targets(lying_fleet), FleetOptions(), check_profile(str(profile)),
                        connect=lying_connector(lying_fleet))
    out = without_styles(terminal_text(lambda console: _check_tables(fleet, console, verbose=True)))  # raised before
    assert raw_controls_in(out) == []
    assert "evil[/]\\x1b]0;pwned\\x07" in out and "[/][bold]x" in out
    assert "authentication failed: [/]\\x1b[2J\\x9b" in out and "hint: [bold]\\x1b]0;x\\x07" in out
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.split("│")[1:-1]] for ln in text_of(
        summary_table(fleet)).splitlines() if ln.startswith("│"))}
    assert rows["a100"][:7] == ["ok (warnings)", "12", "1", "0", "0", "2x NVIDIA A100-SXM4-40GB", "470.199.02"]
    assert rows["rtx"][5:7] == ["2x NVIDIA GeForce RTX 4090", "570.133.07"]
    assert rows["evil[/]\\x1b]0;pwned\\x07"][0].startswith("ok")
    assert rows["locked"][0] == "auth failed"
    junit = documents.junit_text(documents.fleet_junit(fleet))
    assert raw_controls_in(junit) == []
    suites = ET.fromstring(junit).findall("testsuite")
    assert [s.get("name", "").split(" (")[0] for s in suites] == [
        "svdops check a100", "svdops check evil[/]\\x1b]0;pwned\\x07", "svdops check rtx", "svdops check locked"]
    doc = json.loads(documents.json_text(documents.fleet_check_document(fleet)))
    assert [h["name"] for h in doc["hosts"]] == list(lying_fleet)  # the data itself stays as reported


def test_one_lying_host_does_not_cost_the_others_their_facts_tables(lying_fleet: dict[str, str | None]) -> None:
    fleet = gather_fleet(targets(lying_fleet), FleetOptions(), connect=lying_connector(lying_fleet))
    out = without_styles(terminal_text(lambda console: _facts_tables(fleet, console)))  # raised before
    assert raw_controls_in(out) == []
    for honest in ("NVIDIA A100-SXM4-40GB", "NVIDIA GeForce RTX 4090", "470.199.02", "570.133.07"):
        assert honest in out
    assert "Ubuntu [/][bold]x[link=https://evil.example]y[/link]\\x1b]0;pwned" in out  # the OS column
    assert fleet_footer(fleet) == "4 hosts: 3 probed, 1 not probed (1 auth failed)"


# a GPU profile that asks for today's SVD pipeline but pins no package: the cu128-wheel recording lacks its
# Python version, so whether the pipeline runs there could not be looked at: unknown, not a failed check
SVD_NO_PINS = """\
description: "a GPU and today's SVD pipeline; no package pinned"
gpu:
  min_count: 1
svd:
  scenario: svd-xt-25f
"""


def _checked_with(tmp_path: Path, hosts: dict[str, str | None], *, allow_unknown: bool = False) -> FleetCheck:
    profile = tmp_path / "svd-no-pins.yaml"
    profile.write_text(SVD_NO_PINS)
    return check_fleet(targets(hosts), FleetOptions(), check_profile(str(profile)), connect=connector(hosts),
                       allow_unknown=allow_unknown)


def _rows(fleet: FleetCheck) -> tuple[list[str], dict[str, list[str]]]:
    lines = text_of(summary_table(fleet)).splitlines()
    header = next(ln for ln in lines if "host" in ln and "status" in ln)
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.split("│")[1:-1]] for ln in lines
                                              if ln.startswith("│"))}
    return [c.strip() for c in header.split("┃")[1:-1]], rows


def test_a_host_failing_only_on_unknown_checks_says_unknown(tmp_path: Path) -> None:
    fleet = _checked_with(tmp_path, {"wheel": "driver-535-cuda-12-8-wheel", "cpu": "no-gpu"})
    header, rows = _rows(fleet)
    assert header[:6] == ["host", "status", "pass", "warn", "fail", "unknown"]
    wheel = next(h for h in fleet.hosts if h.probe.target.name == "wheel").report
    assert wheel is not None and wheel.summary["fail"] == 0 and wheel.unknown >= 1 and wheel.failed
    assert rows["wheel"][0] == f"{wheel.unknown} unknown"
    assert rows["wheel"][3:5] == ["0", str(wheel.unknown)]
    assert rows["cpu"][0] == "failed checks" and int(rows["cpu"][3]) > 0
    assert fleet_footer(fleet) == "2 hosts: 2 checked (1 with failed checks, 1 with checks that could not look)"


def test_allowed_unknowns_do_not_fail_the_row(tmp_path: Path) -> None:
    fleet = _checked_with(tmp_path, {"wheel": "driver-535-cuda-12-8-wheel"}, allow_unknown=True)
    _header, rows = _rows(fleet)
    assert rows["wheel"][0].startswith("ok (") and "unknown" in rows["wheel"][0]
