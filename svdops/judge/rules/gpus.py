"""The GPUs themselves: count, model, VRAM, compute capability, NVLink, ECC."""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding
from svdops.host.facts import HostFacts
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import (
    FAIL,
    PASS,
    REBOOT,
    SKIP,
    UNKNOWN,
    compute_capabilities,
    driver_version_of,
    gib,
    gpu_capability,
    gpu_label,
    gpus_failing,
    mig_gpus,
    mig_words,
    not_available,
    usable_devices,
)


def gpu_count(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    lo, hi = profile.gpu.min_count, profile.gpu.max_count
    if lo is None and hi is None:
        return
    title = "number of GPUs"
    expected = (f"{lo}" if lo == hi else f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"{lo}-{hi}")
    # with MIG on, a CUDA process gets one MIG device: those are the devices to count
    n = len(usable_devices(facts))
    mig = mig_words(facts)
    shown = f"{n} ({mig})" if mig else str(n)
    if n == 0 and facts.gpus and mig:
        idle = ", ".join(f"GPU{g.index}" for g in mig_gpus(facts) if not g.mig_devices)
        yield Finding("gpu.count", title, FAIL, expected, shown,
                      hint=f"MIG is on with no MIG device on {idle}: create them (`sudo nvidia-smi mig -cgi <profile> "
                           "-C`) or turn MIG off (`sudo nvidia-smi -i <gpu> -mig 0`, then reset the GPU)")
    elif n == 0 and (lo or 0) > 0:
        note = facts.note_for("gpus")
        if facts.driver.needs_reboot:
            # nvidia-smi cannot list GPUs while the loaded module and the libraries disagree
            hint = "sudo reboot (driver.reboot-required), then check again: nvidia-smi lists no GPU until then"
        else:
            hint = ("check the GPUs are seated and powered, then `lspci | grep -i nvidia` and install the "
                    "driver (driver.present)")
        yield Finding("gpu.count", title, FAIL, expected, f"0 ({note})" if note else "0", hint=hint)
    elif hi is not None and n > hi:
        yield Finding("gpu.count", title, FAIL, expected, shown,
                      hint=f"profile {profile.name} is for hosts with at most {hi} GPU(s): judge this host with "
                           "`svdops check --profile svd-host` (or a profile for what it has)")
    elif lo is not None and n < lo:
        yield Finding("gpu.count", title, FAIL, expected, shown,
                      hint=("a process gets one MIG device: turn MIG off (`sudo nvidia-smi -i <gpu> -mig 0`, then "
                            "reset the GPU) or " if mig else "")
                      + "fit the missing GPUs, or if they are fitted: `sudo dmesg | grep -i -e nvrm -e xid`")
    else:
        yield Finding("gpu.count", title, PASS, expected, shown)


def gpu_model(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    models = profile.gpu.models
    if not models or not facts.gpus:
        return
    title = "GPU model"
    expected = " or ".join(models)
    wrong = [g for g in facts.gpus if not any(m.lower() in g.name.lower() for m in models)]
    if wrong:
        names = ", ".join(sorted({g.name for g in wrong}))
        yield Finding("gpu.model", title, FAIL, expected, f"{names} ({len(wrong)} of {len(facts.gpus)})",
                      hint=f"fit {expected} GPUs, or judge this host with a profile for what it has")
    else:
        yield Finding("gpu.model", title, PASS, expected, ", ".join(sorted({g.name for g in facts.gpus})))


def gpu_vram(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    need = profile.gpu.min_vram_gib
    if need is None or not facts.gpus:
        return
    title = "memory of each GPU"
    expected = f">= {need:g} GiB per GPU"
    # with MIG on, a process gets one slice: each slice's memory is what counts, not the board's
    devices = usable_devices(facts)
    idle = [g for g in mig_gpus(facts) if not g.mig_devices]
    unknown = [d for d in devices if d.memory_mib is None]
    small = [d for d in devices if d.memory_mib is not None and gib(d.memory_mib) < need]
    mig = f" ({mig_words(facts)})" if mig_gpus(facts) else ""
    if small or idle:
        actual = ", ".join([f"{d.short} {gib(d.memory_mib or 0):.1f} GiB" for d in small]
                           + [f"GPU{g.index}: MIG on, no MIG device" for g in idle]) + mig
        hint = f"fit GPUs with >= {need:g} GiB"
        if mig:
            hint = (f"turn MIG off on {', '.join(f'GPU{g.index}' for g in mig_gpus(facts))} "
                    "(`sudo nvidia-smi -i <gpu> -mig 0`, then reset the GPU) or make MIG slices of "
                    f">= {need:g} GiB, or " + hint)
        yield Finding("gpu.vram", title, FAIL, expected, actual, hint=hint)
    elif unknown:
        yield Finding("gpu.vram", title, UNKNOWN, expected,
                      f"{', '.join(d.short for d in unknown)}: {not_available(facts, 'gpus')}")
    else:
        low = min(gib(d.memory_mib or 0) for d in devices)
        yield Finding("gpu.vram", title, PASS, expected, f"smallest {low:.1f} GiB{mig}")


def gpu_compute_capability(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    need = profile.gpu.min_compute_capability
    if need is None or not facts.gpus:
        return
    title = "compute capability of each GPU"
    expected = f">= {need}"
    # what the driver reports, else the GPU table's row for the name (R470 and older do not report it)
    old, unknown = gpus_failing(facts, lambda cc: cc < need)
    if old:
        yield Finding("gpu.compute-capability", title, FAIL, expected,
                      ", ".join(f"{gpu_label(g)} cc {gpu_capability(g)}" for g in old),
                      hint=f"fit GPUs of compute capability >= {need}")
    elif unknown:
        yield Finding("gpu.compute-capability", title, UNKNOWN, expected,
                      f"{', '.join(gpu_label(g) for g in unknown)}: not reported by the driver and a name svdops' "
                      f"GPU table does not hold ({not_available(facts, 'gpus')})",
                      hint="look the GPU up at https://developer.nvidia.com/cuda-gpus")
    else:
        yield Finding("gpu.compute-capability", title, PASS, expected,
                      ", ".join(f"cc {c}" for c in sorted(set(compute_capabilities(facts)))))


def gpu_nvlink(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    if not profile.gpu.nvlink_all_pairs or not facts.gpus:
        return
    title = "NVLink between every GPU pair"
    expected = "NV# between every pair in `nvidia-smi topo -m`"
    n = max(facts.topology.gpu_count, len(facts.gpus))
    if n < 2:
        yield Finding("gpu.nvlink", title, SKIP, expected, "one GPU: no pairs to link")
        return
    if not facts.topology.links:
        yield Finding("gpu.nvlink", title, UNKNOWN, expected, not_available(facts, "topology"))
        return
    pcie = []
    for a in range(n):
        for b in range(a + 1, n):
            link = facts.topology.link(a, b)
            if link is None or not link.is_nvlink:
                pcie.append(f"GPU{a}-GPU{b} {link.kind if link else 'unknown'}")
    if not pcie:
        kinds = sorted({lk.kind for lk in facts.topology.links if lk.is_nvlink})
        yield Finding("gpu.nvlink", title, PASS, expected, f"all {n * (n - 1) // 2} pairs over {'/'.join(kinds)}")
        return
    sxm = any("sxm" in g.name.lower() or "hbm3" in g.name.lower() or g.name in ("NVIDIA H200", "NVIDIA B200")
              for g in facts.gpus)
    driver = driver_version_of(facts)
    branch = driver.major if driver is not None else 580
    if sxm:
        hint = (f"sudo apt-get install -y nvidia-fabricmanager-{branch} && "
                "sudo systemctl enable --now nvidia-fabricmanager && " + REBOOT +
                "  (NVSwitch systems route NVLink only with the fabric manager of the driver's branch running)")
    else:
        hint = "fit NVLink bridges between the GPU pairs listed, then `nvidia-smi nvlink -s` to confirm"
    shown = ", ".join(pcie[:8]) + (f" (+{len(pcie) - 8} more)" if len(pcie) > 8 else "")
    yield Finding("gpu.nvlink", title, FAIL, expected, f"over PCIe: {shown}", hint=hint)


def gpu_ecc(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.gpu.ecc
    if want is None or not facts.gpus:
        return
    title = "ECC memory mode"
    expected = "ECC on for every GPU" if want else "ECC off"
    wrong = [g for g in facts.gpus if g.ecc_enabled is not None and g.ecc_enabled != want]
    unknown = [g for g in facts.gpus if g.ecc_enabled is None]
    if wrong:
        fix = f"sudo nvidia-smi -e {1 if want else 0} && {REBOOT}"
        yield Finding("gpu.ecc", title, FAIL, expected,
                      f"{'off' if want else 'on'} on " + ", ".join(f"GPU{g.index}" for g in wrong), hint=fix)
    elif unknown:
        # not reported: a consumer GPU without ECC, or a query that failed. "off" is then met; "on" is not shown
        yield Finding("gpu.ecc", title, UNKNOWN if want else SKIP, expected,
                      f"not reported for {', '.join(f'GPU{g.index}' for g in unknown)} (consumer GPUs have no ECC)",
                      hint=f"nvidia-smi -q -d ECC -i {unknown[0].index}  (shows whether the GPU has ECC at all)"
                      if want else "")
    else:
        yield Finding("gpu.ecc", title, PASS, expected, "on" if want else "off")
