"""GPUs, their topology and the driver, assembled from the answers of several commands."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from svdops.host.facts import DriverFacts, GpuFacts, KernelLogFacts, TopologyFacts
from svdops.host.probe import commands as cmd
from svdops.host.probe._text import small_int, version_of
from svdops.host.probe.cuda import DpkgPackage, driver_from_dpkg
from svdops.host.probe.driver import (
    SmiVersions,
    driver_unreachable,
    has_library_mismatch,
    module_behind_userspace,
    nvml_library_version,
    parse_mokutil_sb_state,
    parse_proc_driver_version,
    parse_proc_modules,
    parse_smi_header,
    parse_smi_version,
    parse_systemctl_is_active,
)
from svdops.host.probe.gpu import SmiReport, merge_query_gpu, parse_nvidia_smi_xml, parse_query_gpu_csv
from svdops.host.probe.health import parse_kernel_log, parse_nvlink_errors, parse_nvlink_status, with_errors
from svdops.host.probe.outputs import Notes, Outputs, parse_or_note
from svdops.host.probe.topology import parse_topo_matrix

_SMI_COMMANDS = (
    cmd.NVIDIA_SMI_XML, cmd.NVIDIA_SMI, cmd.NVIDIA_SMI_VERSION, cmd.NVIDIA_SMI_TOPO, cmd.NVIDIA_SMI_QUERY_GPU,
)


def collect_gpus(out: Outputs, notes: Notes) -> tuple[SmiReport, TopologyFacts]:
    xml_text = out.text(cmd.NVIDIA_SMI_XML)
    report = parse_nvidia_smi_xml(xml_text) if xml_text is not None else SmiReport()
    if xml_text is None:
        notes.unavailable("gpus", out.result(cmd.NVIDIA_SMI_XML))
    elif report.problems:
        notes.add("gpus", f"`nvidia-smi -q -x`: {'; '.join(report.problems)}")

    gpus = report.gpus
    query_text = out.text(cmd.NVIDIA_SMI_QUERY_GPU)
    if gpus and query_text is not None:
        gpus = merge_query_gpu(gpus, parse_query_gpu_csv(query_text))
    for gpu in gpus:
        if gpu.compute_capability is None:
            reason = f"the driver did not report it and {gpu.name!r} is not in svdops' table"
            notes.add(f"gpus.{gpu.index}.compute_capability", reason)

    topology = TopologyFacts()
    topo_text = out.text(cmd.NVIDIA_SMI_TOPO)
    if topo_text is not None:
        topology = parse_topo_matrix(topo_text)
    if gpus and topology.gpu_count == 0:
        if topo_text is None:
            notes.unavailable("topology", out.result(cmd.NVIDIA_SMI_TOPO))
        else:
            notes.add("topology", "`nvidia-smi topo -m` printed no GPU matrix")
        topology = TopologyFacts(gpu_count=len(gpus))
    numa = {a.gpu: node for a in topology.affinity if (node := small_int(a.numa_affinity or "")) is not None}
    gpus = tuple(replace(gpu, numa_node=numa[gpu.index]) if gpu.index in numa else gpu for gpu in gpus)
    return replace(report, gpus=gpus), topology


def collect_driver(out: Outputs, notes: Notes, report: SmiReport, dpkg: dict[str, DpkgPackage]) -> DriverFacts:
    smi_texts = out.all_output(*_SMI_COMMANDS)
    version_text = out.text(cmd.NVIDIA_SMI_VERSION)
    header_text = out.text(cmd.NVIDIA_SMI)
    from_version = parse_smi_version(version_text) if version_text else SmiVersions()
    from_header = parse_smi_header(header_text) if header_text else SmiVersions()

    mismatch = has_library_mismatch(*smi_texts)
    userspace = report.driver_version or from_version.driver or from_header.driver
    if userspace is None:
        userspace = driver_from_dpkg(dpkg)
        if userspace is not None:
            notes.add("driver.userspace_version", "nvidia-smi gave no version; this is the installed package (dpkg)")
        else:
            notes.unavailable("driver.userspace_version", out.result(cmd.NVIDIA_SMI))
    if mismatch:
        notes.add("driver", "nvidia-smi: Driver/library version mismatch (the loaded kernel module is not the "
                            "installed driver; reboot to load the new module)")
    elif userspace is not None and report.driver_version is None and driver_unreachable(*smi_texts):
        notes.add("driver", "the driver is installed but nvidia-smi cannot reach it (module not loaded)")

    module = parse_or_note(out, notes, cmd.PROC_DRIVER_VERSION, parse_proc_driver_version,
                           "driver.kernel_module_version", "/proc/driver/nvidia/version has no NVRM version line")

    if module and module_behind_userspace(userspace, module.version) and not mismatch:
        notes.add("driver",
                  f"the loaded kernel module {module.version} is older than the userspace driver {userspace}: "
                  "CUDA runs against the loaded module until a reboot; compatibility follows the module")

    modules_text = out.text(cmd.PROC_MODULES)
    nouveau = "nouveau" in parse_proc_modules(modules_text) if modules_text else None
    if nouveau is None:
        notes.unavailable("driver.nouveau_loaded", out.result(cmd.PROC_MODULES))

    mok = out.result(cmd.MOKUTIL)
    secure_boot = None if mok.missing else parse_mokutil_sb_state(mok.stdout + "\n" + mok.stderr)
    if secure_boot is None:
        notes.unavailable("driver.secure_boot_enabled", mok)

    persistenced_text = out.any_text(cmd.SYSTEMCTL_PERSISTENCED)
    persistenced = parse_systemctl_is_active(persistenced_text) if persistenced_text else None
    if persistenced is None:
        notes.unavailable("driver.persistenced_running", out.result(cmd.SYSTEMCTL_PERSISTENCED))

    return DriverFacts(
        userspace_version=userspace,
        kernel_module_version=module.version if module else None,
        kernel_module_flavor=module.flavor if module else None,
        cuda_driver_api=report.cuda_version or from_version.cuda_driver_api or from_header.cuda_driver_api,
        nvml_version=from_version.nvml or nvml_library_version(*smi_texts),
        library_mismatch=mismatch,
        nouveau_loaded=nouveau,
        secure_boot_enabled=secure_boot,
        persistenced_running=persistenced,
    )


def merge_nvml(gpus: tuple[GpuFacts, ...], devices: list[dict[str, Any]]) -> tuple[GpuFacts, ...]:
    """Overlay NVML's live values; a GPU NVML sees that nvidia-smi did not is added."""
    by_uuid = {gpu.uuid: gpu for gpu in gpus if gpu.uuid}
    merged = {gpu.index: gpu for gpu in gpus}
    for device in devices:
        index = int(device.get("index", len(merged)))
        base = by_uuid.get(device.get("uuid") or "") or merged.get(index)
        if base is None:
            base = GpuFacts(index=index, name=device.get("name") or "unknown GPU", uuid=device.get("uuid"))
        live = {
            key: device[key]
            # live readings, and thresholds NVML knows exactly (the R580 XML only gives them ±1 °C)
            for key in ("temperature_c", "power_draw_w", "memory_used_mib", "persistence_mode",
                        "temp_slowdown_c", "temp_shutdown_c")
            if device.get(key) is not None
        }
        for key in ("power_limit_w", "memory_total_mib", "sm_clock_max_mhz"):
            if getattr(base, key) is None and device.get(key) is not None:
                live[key] = device[key]
        if base.compute_capability is None and device.get("compute_capability"):
            live["compute_capability"] = version_of(device["compute_capability"])
        merged[base.index] = replace(base, **live)
    return tuple(merged[index] for index in sorted(merged))


def collect_nvlinks(out: Outputs, notes: Notes, gpus: tuple[GpuFacts, ...]) -> tuple[GpuFacts, ...]:
    """Each GPU's NVLinks from `nvidia-smi nvlink -s` (matched by UUID, else index), with `-e`'s counters."""
    if not gpus:
        return gpus
    status_text = out.any_text(cmd.NVIDIA_SMI_NVLINK_STATUS)
    status_result = out.result(cmd.NVIDIA_SMI_NVLINK_STATUS)
    if status_text is None and not status_result.ok:
        for gpu in gpus:
            notes.add(f"gpus.{gpu.index}.health.nvlinks", status_result.reason)
        return gpus
    status = parse_nvlink_status(status_text or "")
    errors_text = out.any_text(cmd.NVIDIA_SMI_NVLINK_ERRORS)
    errors = parse_nvlink_errors(errors_text) if errors_text else {}
    by_uuid = {uuid: index for index, (uuid, _links) in status.items() if uuid}
    merged = []
    for gpu in gpus:
        index = by_uuid.get(gpu.uuid or "", gpu.index)
        _uuid, links = status.get(index, (None, ()))
        if "all links are inactive" in (status_text or "").lower() and not links:
            links = ()  # NVML says so instead of listing them: no active link
        merged.append(replace(gpu, health=replace(gpu.health, nvlinks=with_errors(links, errors.get(index)))))
    return tuple(merged)


def collect_kernel_log(out: Outputs, notes: Notes) -> KernelLogFacts:
    """Xid events since boot: journalctl first (it has wall-clock times), dmesg where the journal is not
    readable; when neither is, a note says why for each."""
    refusals = []
    for command, source in ((cmd.KERNEL_LOG_JOURNAL, "journalctl -k"), (cmd.KERNEL_LOG_DMESG, "dmesg")):
        text = out.any_text(command)
        if text is None:
            refusals.append(f"{source}: {out.result(command).reason}")
            continue
        read = parse_kernel_log(text, source)
        if read.facts is not None:
            return read.facts
        refusals.append(read.refused or f"{source}: not readable")
    notes.add("kernel_log", "neither kernel log is readable by this user (" + "; ".join(refusals) + ")")
    return KernelLogFacts()
