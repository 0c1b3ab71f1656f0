"""The GPUs' own health, read passively: memory errors, PCIe and NVLink links, Xid events, thermals, fabric.

Actions follow NVIDIA's documents: "NVIDIA GPU Memory Error Management"
(https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/index.html: a pending row remap needs a GPU reset,
a row-remapping failure or the SRAM threshold flag is the RMA criterion), "Dynamic Page Retirement"
(https://docs.nvidia.com/deploy/dynamic-page-retirement/index.html: at most 64 pages retired, a pending
retirement takes effect at the next driver reload) and the Xid catalogue (svdops/judge/knowledge/xid.yaml).
A profile's `health:` level caps each subject: "fail" lets its worst findings fail, "warn" caps them at warn.
"""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding, Status
from svdops.host.facts import GpuFacts, HostFacts
from svdops.judge.knowledge.xid import catalogue, find_xid
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import FAIL, PASS, SKIP, WARN, could_not_look, gpu_label, not_available

MEMORY_DOC = "https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/index.html"
PAGE_RETIREMENT_LIMIT = 64  # Dynamic Page Retirement: a GPU retires at most 64 pages
IDLE_UTILIZATION_PCT = 5


def _capped(status: Status, level: str) -> Status:
    return WARN if status is FAIL and level == "warn" else status


def _active(subject: str, facts: HostFacts, profile: Profile) -> str | None:
    level = profile.health.level(subject)
    return level if level and facts.gpus else None


def _reset(gpu: GpuFacts) -> str:
    return f"stop the work on GPU{gpu.index}, then `sudo nvidia-smi -r -i {gpu.index}` (or reboot the node)"


def _rma(gpu: GpuFacts) -> str:
    which = gpu.uuid or gpu.pci_bus_id or "its UUID"
    return (f"drain the node, run NVIDIA's field diagnostic on GPU{gpu.index} ({which}) "
            f"and open an RMA with its result ({MEMORY_DOC})")


def _unread(check_id: str, title: str, expected: str, level: str, facts: HostFacts, gpu: GpuFacts) -> Finding:
    """One GPU whose figures for this subject could not be read: never a pass (UNKNOWN when the
    profile lets this subject fail, else a skip), with why the facts lack them."""
    return Finding(check_id, title, could_not_look(level == "fail"), expected,
                   f"{gpu_label(gpu)}: {not_available(facts, f'gpus.{gpu.index}', 'gpus')}", subject=f"GPU{gpu.index}")


# --- memory ------------------------------------------------------------------------------------

def health_memory(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("memory", facts, profile)
    if level is None:
        return
    rules = profile.health
    title = "GPU memory errors (ECC, row remapping, retired pages)"
    expected = "no uncorrectable error, no pending or failed remap, retired pages below the limit"
    for gpu in facts.gpus:
        h = gpu.health
        subject = f"GPU{gpu.index}"
        counters = (h.ecc_volatile_uncorrected, h.ecc_aggregate_uncorrected, h.ecc_aggregate_corrected,
                    h.remapped_rows_pending, h.retired_pages_dbe, h.retired_pages_sbe)
        if all(value is None for value in counters):
            if gpu.ecc_enabled is False or (gpu.ecc_enabled is None and facts.note_for("gpus") is None):
                yield Finding("health.memory", title, SKIP, expected,
                              f"{gpu_label(gpu)} reports no memory error counters (ECC off or a GPU without ECC)",
                              subject=subject)
            else:
                yield _unread("health.memory", title, expected, level, facts, gpu)
            continue
        retired = (h.retired_pages_sbe or 0) + (h.retired_pages_dbe or 0)
        problems: list[tuple[Status, str, str]] = []  # status, what, what to do
        if h.remapped_rows_failure:
            problems.append((FAIL, "row remapping failed (no spare row left for an uncorrectable error)", _rma(gpu)))
        if h.sram_threshold_exceeded:
            problems.append((FAIL, "SRAM uncorrectable-error threshold exceeded", _rma(gpu)))
        if retired >= rules.max_retired_pages:
            problems.append((FAIL, f"{retired} retired pages (a GPU can retire {PAGE_RETIREMENT_LIMIT}; this profile's "
                                   f"RMA threshold is {rules.max_retired_pages})", _rma(gpu)))
        if h.remapped_rows_pending:
            problems.append((FAIL, "a row remap is pending: the bad row stays in use until the GPU is reset",
                             _reset(gpu) + " to activate the remap"))
        if h.retired_pages_pending:
            problems.append((FAIL, "a page retirement is pending: the page stays in use until the driver reloads",
                             _reset(gpu) + " to retire the page"))
        if (h.ecc_volatile_uncorrected or 0) > 0:
            problems.append((FAIL, f"{h.ecc_volatile_uncorrected} uncorrectable ECC error(s) since the last reset",
                             _reset(gpu) + "; if they come back after the reset: " + _rma(gpu)))
        elif (h.ecc_aggregate_uncorrected or 0) > 0:
            problems.append((WARN, f"{h.ecc_aggregate_uncorrected} uncorrectable ECC error(s) in the GPU's lifetime "
                                   "(none since the last reset)",
                             f"watch it: `nvidia-smi -q -d ECC,ROW_REMAPPER,PAGE_RETIREMENT -i {gpu.index}`"))
        if 0 < retired < rules.max_retired_pages:
            problems.append((WARN, f"{retired} retired page(s) of the {PAGE_RETIREMENT_LIMIT} a GPU can retire",
                             f"watch the count: `nvidia-smi -q -d PAGE_RETIREMENT -i {gpu.index}`"))
        corrected = h.ecc_aggregate_corrected or 0
        if rules.corrected_ecc_warn_at and corrected >= rules.corrected_ecc_warn_at:
            problems.append((WARN, f"{corrected} corrected ECC error(s) in the GPU's lifetime",
                             f"corrected errors do no harm by themselves; if the count grows, run `dcgmi diag -r 3` "
                             f"and watch `nvidia-smi -q -d ECC -i {gpu.index}`"))
        if not problems:
            remapped = (h.remapped_rows_correctable or 0) + (h.remapped_rows_uncorrectable or 0)
            extra = f", {remapped} row(s) remapped" if remapped else ""
            yield Finding("health.memory", title, PASS, expected, f"{gpu_label(gpu)}: no memory errors{extra}",
                          subject=subject)
            continue
        worst = FAIL if any(status is FAIL for status, _, _ in problems) else WARN
        yield Finding("health.memory", title, _capped(worst, level), expected,
                      f"{gpu_label(gpu)}: " + "; ".join(what for _, what, _ in problems),
                      hint="; ".join(dict.fromkeys(fix for status, _, fix in problems if status is worst)),
                      subject=subject)


# --- PCIe ----------------------------------------------------------------------------------------

def _idle(gpu: GpuFacts) -> bool | None:
    """Whether the GPU was idle when read: its utilisation, else the driver's gpu_idle clocks-event reason."""
    h = gpu.health
    if h.utilization_pct is not None:
        return h.utilization_pct <= IDLE_UTILIZATION_PCT
    if h.clocks_event_reasons is not None:
        return "gpu_idle" in h.clocks_event_reasons
    return None


def health_pcie(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("pcie", facts, profile)
    if level is None:
        return
    title = "PCIe link of each GPU"
    expected = "the generation and width both the GPU and the host support"
    for gpu in facts.gpus:
        h = gpu.health
        subject = f"GPU{gpu.index}"
        if gpu.pcie_gen_max is None and gpu.pcie_width_max is None:
            yield _unread("health.pcie", title, expected, level, facts, gpu)
            continue
        idle = _idle(gpu)
        problems: list[str] = []
        hints: list[str] = []
        device, host = h.pcie_gen_device_max, h.pcie_gen_host_max
        if device is not None and host is not None and host < device:
            problems.append(f"the host's port runs PCIe Gen{host}, the GPU Gen{device}")
            hints.append(f"move GPU{gpu.index} to a slot wired to a Gen{device} root port, or set the slot to "
                         f"Gen{device}/Auto in the BIOS (a riser or retimer can also cap it)")
        width, width_max = gpu.pcie_width_current, gpu.pcie_width_max
        # the width does not change at idle (only the generation does), so it is judged whatever the load
        if width is not None and width_max is not None and width < width_max:
            problems.append(f"x{width} of x{width_max}")
            hints.append(f"reseat GPU{gpu.index} (or its riser) in a slot wired x{width_max} and check the BIOS "
                         "bifurcation setting; `sudo lspci -vv -s <bus id> | grep -e LnkCap -e LnkSta` shows both ends")
        gen, gen_max = gpu.pcie_gen_current, gpu.pcie_gen_max
        gen_note = ""
        if gen is not None and gen_max is not None and gen < gen_max:
            if idle is False:
                problems.append(f"Gen{gen} of Gen{gen_max} under load")
                hints.append("a link that stays below its maximum under load is a signal problem: reseat the GPU, "
                             "replace the riser, update the BIOS")
            else:
                why = "idle" if idle else "load unknown"
                gen_note = f" (Gen{gen} now, {why}: links train down at idle, so the generation is judged under load)"
        if problems:
            yield Finding("health.pcie", title, _capped(FAIL, level), expected,
                          f"{gpu_label(gpu)}: " + "; ".join(problems) + gen_note, hint="; ".join(hints),
                          subject=subject)
        else:
            shown = f"Gen{gen_max} x{width_max}" if gen_max and width_max else "as supported"
            yield Finding("health.pcie", title, PASS, expected, f"{gpu_label(gpu)}: {shown}{gen_note}",
                          subject=subject)


# --- NVLink --------------------------------------------------------------------------------------

def health_nvlink(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("nvlink", facts, profile)
    if level is None:
        return
    title = "NVLink links of each GPU"
    expected = "every NVLink active, no error counts"
    unread = [g for g in facts.gpus if g.health.nvlinks is None]
    wants_nvlink = profile.gpu.nvlink_all_pairs and len(facts.gpus) > 1
    if len(unread) == len(facts.gpus):
        # a host whose topology shows no NVLink, judged by a profile that wants none, has nothing to miss
        has_nvlink = wants_nvlink or any(link.is_nvlink for link in facts.topology.links)
        yield Finding("health.nvlink", title, could_not_look(level == "fail" and has_nvlink), expected,
                      not_available(facts, f"gpus.{unread[0].index}.health.nvlinks", "gpus")
                      + ("" if has_nvlink else " (and `nvidia-smi topo -m` shows no NVLink)"))
        return
    any_active = any(link.active for g in facts.gpus for link in g.health.nvlinks or ())
    if not any_active and not wants_nvlink:
        yield Finding("health.nvlink", title, SKIP, expected,
                      "no active NVLink on any GPU (GPUs without NVLink or without a bridge)")
        return
    for gpu in facts.gpus:
        links = gpu.health.nvlinks
        subject = f"GPU{gpu.index}"
        if links is None:
            continue
        down = [link.link for link in links if not link.active]
        active = [link for link in links if link.active]
        problems: list[str] = []
        hints: list[str] = []
        status = PASS
        if down or not links:
            status = FAIL
            shown = "no link listed (NVML: all links inactive)" if not links else (
                f"link{'s' if len(down) > 1 else ''} {', '.join(map(str, down))} inactive of {len(links)}")
            problems.append(shown)
            hints.append(f"on NVSwitch systems: `systemctl status nvidia-fabricmanager`; reset GPU{gpu.index} "
                         f"(`sudo nvidia-smi -r -i {gpu.index}`); if a link stays down, reseat and have the "
                         "baseboard/bridge serviced")
        errors = [(link.link, kind, count) for link in links
                  for kind, count in (("replay", link.replay_errors), ("recovery", link.recovery_errors),
                                      ("CRC", link.crc_errors)) if count]
        if errors:
            status = status if status is FAIL else WARN
            problems.append(", ".join(f"link {n} {count} {kind} error(s)" for n, kind, count in errors[:8]))
            hints.append(f"reset the counters (`sudo nvidia-smi nvlink -re -i {gpu.index}`), run a load and read "
                         "`nvidia-smi nvlink -e` again: counts that grow mean a bad link (reseat the GPU; have the "
                         "baseboard or bridge serviced)")
        if status is PASS:
            speed = sum(link.speed_gbps or 0 for link in active)
            yield Finding("health.nvlink", title, PASS, expected,
                          f"{gpu_label(gpu)}: {len(active)} link(s) active, {speed:.0f} GB/s", subject=subject)
        else:
            yield Finding("health.nvlink", title, _capped(status, level), expected,
                          f"{gpu_label(gpu)}: " + "; ".join(problems), hint="; ".join(hints), subject=subject)


# --- Xid events ---------------------------------------------------------------------------------

_ACTIONS = {
    "app": "the application caused it: fix the program (run it under `compute-sanitizer`); if it recurs across "
           "programs, run `dcgmi diag -r 3`",
    "reset": "stop the work on the GPU and reset it (`sudo nvidia-smi -r -i <gpu>`, or reboot); if it recurs, "
             "run `dcgmi diag -r 3`",
    "reboot": "drain the node and reboot it (cold boot); check the GPU's power cables, seating/riser and "
              "cooling; if it recurs, RMA",
    "rma": "drain the node, run NVIDIA's field diagnostic and open an RMA with its result",
    "none": "it follows another Xid: act on that one",
}


def health_xid(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("xid", facts, profile)
    if level is None:
        return
    title = "Xid events since boot (kernel log)"
    expected = "no Xid event since boot"
    log = facts.kernel_log
    if log.source is None:
        required = level == "fail" and profile.health.require_kernel_log
        yield Finding("health.xid", title, could_not_look(required), expected,
                      not_available(facts, "kernel_log"),
                      hint="run svdops as a user in the adm group (journalctl -k), or allow dmesg "
                           "(`sudo sysctl kernel.dmesg_restrict=0`), or check as root")
        return
    if not log.xids:
        yield Finding("health.xid", title, PASS, expected, f"none ({log.source}, {log.lines_read} NVIDIA lines)")
        return
    for event in log.xids:
        row = find_xid(event.code)
        where = f"{event.count}x on {', '.join(event.devices[:4]) or 'an unnamed device'}"
        when = f", last at {event.last_time}" if event.last_time else ""
        said = f" ({event.last_message})" if event.last_message else ""
        if row is None:
            yield Finding("health.xid", title, WARN, expected,
                          f"Xid {event.code}: {where}{when}{said}; not in svdops' catalogue",
                          hint=f"look it up in NVIDIA's Xid catalogue: {catalogue().url}", subject=f"Xid {event.code}")
            continue
        status = _capped(FAIL if row.severity == "fail" else WARN, level)
        yield Finding("health.xid", title, status, expected,
                      f"Xid {event.code} {row.name}: {where}{when}: {row.meaning}{said}",
                      hint=_ACTIONS[row.action], subject=f"Xid {event.code}")


# --- thermals and clocks ------------------------------------------------------------------------

_HW_REASONS = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
_SW_THERMAL = ("sw_thermal_slowdown",)


def health_thermal(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("thermal", facts, profile)
    if level is None:
        return
    margin = profile.health.idle_temp_margin_c
    title = "clocks-event reasons and temperature at idle"
    expected = f"no HW/thermal slowdown; idle temperature more than {margin} °C below the slowdown threshold"
    for gpu in facts.gpus:
        h = gpu.health
        subject = f"GPU{gpu.index}"
        idle = _idle(gpu)
        reasons = h.clocks_event_reasons
        if reasons is None and gpu.temperature_c is None:
            yield _unread("health.thermal", title, expected, level, facts, gpu)
            continue
        problems: list[tuple[Status, str]] = []
        hw = [r for r in reasons or () if r in _HW_REASONS]
        sw = [r for r in reasons or () if r in _SW_THERMAL]
        state = "at idle" if idle else "under load" if idle is False else "when read"
        if hw:
            problems.append((FAIL if idle else WARN, f"{', '.join(hw)} active {state}"))
        if sw:
            problems.append((WARN, f"{', '.join(sw)} active {state}"))
        temp, slowdown = gpu.temperature_c, gpu.temp_slowdown_c
        if idle and temp is not None and slowdown is not None:
            if temp >= slowdown:
                problems.append((FAIL, f"{temp} °C at idle, at or above its slowdown threshold {slowdown} °C"))
            elif temp > slowdown - margin:
                problems.append((WARN, f"{temp} °C at idle, within {margin} °C of its slowdown threshold "
                                       f"{slowdown} °C"))
        if not problems:
            shown = f"{temp} °C" if temp is not None else "temperature not reported"
            yield Finding("health.thermal", title, PASS, expected,
                          f"{gpu_label(gpu)}: {shown} {state}" + (f" (slowdown {slowdown} °C)" if slowdown else ""),
                          subject=subject)
            continue
        worst = FAIL if any(s is FAIL for s, _ in problems) else WARN
        yield Finding("health.thermal", title, _capped(worst, level), expected,
                      f"{gpu_label(gpu)}: " + "; ".join(what for _, what in problems),
                      hint="check the airflow and fans (blanking panels, fan speed, inlet temperature) and the "
                           "power supply; HW slowdown at idle is the board asking for it (thermal or power brake): "
                           f"`nvidia-smi -q -d PERFORMANCE,TEMPERATURE -i {gpu.index}`",
                      subject=subject)


# --- NVSwitch fabric -----------------------------------------------------------------------------

def health_fabric(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    level = _active("fabric_manager", facts, profile)
    if level is None:
        return
    reporting = [g for g in facts.gpus if g.health.fabric_state is not None]
    if not reporting:
        return  # no NVSwitch fabric reported (a PCIe or NVLink-bridge host, or a driver before R530)
    title = "NVSwitch fabric (fabric manager)"
    expected = "fabric state Completed, status Success on every GPU"
    bad = [g for g in reporting
           if (g.health.fabric_state or "").lower() != "completed" or (g.health.fabric_status or "success").lower()
           != "success"]
    if not bad:
        yield Finding("health.fabric-manager", title, PASS, expected, f"Completed on {len(reporting)} GPU(s)")
        return
    shown = ", ".join(f"GPU{g.index} {g.health.fabric_state}" + (f" ({g.health.fabric_status})"
                      if g.health.fabric_status else "") for g in bad[:8])
    branch = facts.driver.userspace_version.major if facts.driver.userspace_version else "<branch>"
    yield Finding("health.fabric-manager", title, _capped(FAIL, level), expected, shown,
                  hint=f"sudo apt-get install -y nvidia-fabricmanager-{branch} && sudo systemctl enable --now "
                       "nvidia-fabricmanager (its version must match the driver's); then "
                       "`journalctl -u nvidia-fabricmanager`")
