"""Memory and storage: RAM size, the NVMe scratch and data arrays, md RAID health."""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding
from svdops.host.facts import HostFacts, MdArray
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import FAIL, PASS, RAM_READS_LOW, UNKNOWN, WARN, gib, not_available, terabytes


def ram_size(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    lo, rec = profile.ram.min_gib, profile.ram.recommended_gib
    if lo is None and rec is None:
        return
    title = "system memory"
    expected = " ".join(x for x in (f">= {lo:g} GiB" if lo else "", f"({rec:g} GiB recommended)" if rec else "") if x)
    total = facts.memory.total_mib
    if total is None:
        # only a recommendation (a warning at worst) stays a warning when it could not look
        yield Finding("ram.size", title, UNKNOWN if lo is not None else WARN, expected,
                      not_available(facts, "memory.total_mib"))
        return
    have = gib(total)
    actual = f"{have:.1f} GiB (MemTotal)"
    if lo is not None and have < lo * RAM_READS_LOW:
        yield Finding("ram.size", title, FAIL, expected, actual, hint=f"install at least {lo:g} GiB of memory")
    elif rec is not None and have < rec * RAM_READS_LOW:
        yield Finding("ram.size", title, WARN, expected, actual, hint=f"install {rec:g} GiB of memory")
    else:
        yield Finding("ram.size", title, PASS, expected, actual)


def _array_is_nvme(array: MdArray) -> bool:
    return bool(array.members) and all(m.startswith("nvme") for m in array.members)


def _mountpoint(facts: HostFacts, array: MdArray) -> str | None:
    for mount in facts.storage.mounts:
        if mount.device in (f"/dev/{array.name}", array.name) or mount.device.startswith(f"/dev/md/{array.name}"):
            return mount.mountpoint
    return None


def _free_nvme(facts: HostFacts) -> list[str]:
    """NVMe disks with no partitions, no filesystem, no mountpoint and in no md array."""
    members = [m for a in facts.storage.md_arrays for m in a.members]

    def in_md(disk: str) -> bool:
        return any(m == disk or m.startswith(disk + "p") for m in members)

    return [d.name for d in facts.storage.block_devices
            if d.is_nvme and d.type == "disk" and not d.children and not d.mountpoint and not d.fstype
            and not in_md(d.name)]


def storage_scratch(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.storage.scratch
    if want is None:
        return
    title = "NVMe scratch array"
    kind = "NVMe " if want.nvme else ""
    size = f", >= {want.min_size_tb:g} TB" if want.min_size_tb else ""
    expected = f"md {want.level} of >= {want.min_devices} {kind}devices{size}"
    arrays = [a for a in facts.storage.md_arrays if a.level == want.level and (_array_is_nvme(a) or not want.nvme)]
    good = [a for a in arrays if len(a.members) >= want.min_devices
            and (want.min_size_tb is None or terabytes(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        mount = _mountpoint(facts, best)
        yield Finding("storage.scratch", title, PASS, expected,
                      f"{best.name}: {best.level}, {len(best.members)} devices, {terabytes(best.size_bytes):.2f} TB"
                      + (f" on {mount}" if mount else ""), subject=best.name)
        return
    if not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.scratch", title, UNKNOWN, expected, not_available(facts, "storage"))
        return
    if arrays:
        a = max(arrays, key=lambda x: x.size_bytes or 0)
        actual = f"{a.name}: {len(a.members)} devices, {terabytes(a.size_bytes):.2f} TB"
    else:
        actual = f"no {kind}{want.level} md array"
    free = _free_nvme(facts)
    if len(free) >= want.min_devices:
        devs = " ".join(f"/dev/{d}" for d in free)
        hint = (f"sudo mdadm --create /dev/md/scratch --level={want.level.removeprefix('raid')} "
                f"--raid-devices={len(free)} {devs} && sudo mkfs.xfs /dev/md/scratch && sudo mkdir -p /scratch && "
                "sudo mount /dev/md/scratch /scratch  (erases those disks)")
    else:
        hint = (f"fit {want.min_devices - len(free)} more unused NVMe drive(s) "
                f"(free now: {', '.join(free) or 'none'}), "
                f"then: sudo mdadm --create /dev/md/scratch --level={want.level.removeprefix('raid')} "
                f"--raid-devices={want.min_devices} /dev/nvme0n1 ...")
    yield Finding("storage.scratch", title, FAIL, expected, actual, hint=hint)


def storage_data(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.storage.data
    if want is None:
        return
    title = "data array"
    size = f", >= {want.min_size_tb:g} TB" if want.min_size_tb else ""
    expected = f"md {' or '.join(want.levels)} of >= {want.min_devices} devices{size}"
    arrays = [a for a in facts.storage.md_arrays if a.level in want.levels]
    good = [a for a in arrays if len(a.members) >= want.min_devices
            and (want.min_size_tb is None or terabytes(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        yield Finding("storage.data", title, PASS, expected,
                      f"{best.name}: {best.level}, {len(best.members)} devices, {terabytes(best.size_bytes):.2f} TB",
                      subject=best.name)
    elif not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.data", title, UNKNOWN, expected, not_available(facts, "storage"))
    else:
        if arrays:
            a = max(arrays, key=lambda x: x.size_bytes or 0)
            actual = f"{a.name}: {a.level}, {len(a.members)} devices, {terabytes(a.size_bytes):.2f} TB"
        else:
            actual = f"no {' or '.join(want.levels)} md array"
        level = want.levels[-1].removeprefix("raid")
        yield Finding("storage.data", title, FAIL, expected, actual,
                      hint=f"sudo mdadm --create /dev/md/data --level={level} --raid-devices=N /dev/sdX /dev/sdY ... "
                           f"(N >= {max(want.min_devices, 3)} disks, usable size {size.lstrip(', ') or 'enough'}) "
                           "&& sudo mkfs.xfs /dev/md/data")


def storage_md_health(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    for array in facts.storage.md_arrays:
        title = f"md array {array.name} health"
        expected = "all members active, not degraded"
        counts = (f" [{array.devices_up}/{array.devices_total}]"
                  if array.devices_total is not None and array.devices_up is not None else "")
        if array.failed_members or array.degraded:
            if array.failed_members:
                steps = [f"sudo mdadm --manage /dev/{array.name} --fail /dev/{m} --remove /dev/{m}"
                         for m in array.failed_members]
                steps.append("replace the failed disk(s), then")
                steps += [f"sudo mdadm --manage /dev/{array.name} --add /dev/{m}" for m in array.failed_members]
                hint = " && ".join(s for s in steps if not s.startswith("replace")) + \
                    "  (swap the disk between --remove and --add)"
                actual = f"failed: {', '.join(array.failed_members)}{counts}"
            else:
                hint = f"sudo mdadm --detail /dev/{array.name}  then: sudo mdadm --manage /dev/{array.name} " \
                       "--add /dev/<replacement disk>"
                actual = f"degraded{counts}"
            status = WARN if array.recovering and not array.failed_members else FAIL
            if array.recovering:
                actual += ", recovery running"
            yield Finding("storage.md-health", title, status, expected, actual, hint=hint, subject=array.name)
        elif array.state != "active":
            yield Finding("storage.md-health", title, FAIL, expected, f"state {array.state}",
                          hint=f"sudo mdadm --assemble --scan && sudo mdadm --detail /dev/{array.name}",
                          subject=array.name)
        elif array.recovering:
            yield Finding("storage.md-health", title, WARN, expected, f"resync running{counts}",
                          hint="watch cat /proc/mdstat  (wait for it to finish)", subject=array.name)
        else:
            yield Finding("storage.md-health", title, PASS, expected, f"active{counts}", subject=array.name)
