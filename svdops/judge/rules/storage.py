"""Memory and storage: RAM size, the NVMe scratch and data arrays, md RAID health."""

from __future__ import annotations

import shlex
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


def _working(array: MdArray) -> int:
    """The devices in sync: mdstat's [n/m] m where it is printed (during a recovery the listing still names the
    disk being rebuilt), else the working set listed."""
    if array.devices_up is not None:
        return min(array.devices_up, len(array.members))
    return len(array.members)


def _devices(array: MdArray) -> str:
    """`6 devices`, or `4 of 6 devices up` for an array running without some of its devices."""
    if array.devices_total is not None and _working(array) < array.devices_total:
        return f"{_working(array)} of {array.devices_total} devices up"
    return f"{_working(array)} devices"


def _mountpoint(facts: HostFacts, array: MdArray) -> str | None:
    for mount in facts.storage.mounts:
        if mount.device in (f"/dev/{array.name}", array.name) or mount.device.startswith(f"/dev/md/{array.name}"):
            return mount.mountpoint
    return None


def _free_nvme(facts: HostFacts) -> list[str]:
    """NVMe disks with no partitions, no filesystem, no mountpoint and in no md array."""
    members = [m for a in facts.storage.md_arrays for m in a.all_members]  # a spare or failed disk is not free

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
    good = [a for a in arrays if _working(a) >= want.min_devices
            and (want.min_size_tb is None or terabytes(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        mount = _mountpoint(facts, best)
        yield Finding("storage.scratch", title, PASS, expected,
                      f"{best.name}: {best.level}, {_devices(best)}, {terabytes(best.size_bytes):.2f} TB"
                      + (f" on {mount}" if mount else ""), subject=best.name)
        return
    if not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.scratch", title, UNKNOWN, expected, not_available(facts, "storage"))
        return
    if arrays:
        a = max(arrays, key=lambda x: x.size_bytes or 0)
        actual = f"{a.name}: {a.level}, {_devices(a)}, {terabytes(a.size_bytes):.2f} TB"
    else:
        actual = f"no {kind}{want.level} md array"
    free = _free_nvme(facts)
    if len(free) >= want.min_devices:
        devs = " ".join(shlex.quote(f"/dev/{d}") for d in free)
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
    good = [a for a in arrays if _working(a) >= want.min_devices
            and (want.min_size_tb is None or terabytes(a.size_bytes) >= want.min_size_tb)]
    if good:
        best = max(good, key=lambda a: a.size_bytes or 0)
        yield Finding("storage.data", title, PASS, expected,
                      f"{best.name}: {best.level}, {_devices(best)}, {terabytes(best.size_bytes):.2f} TB",
                      subject=best.name)
    elif not facts.storage.md_arrays and not facts.storage.block_devices:
        yield Finding("storage.data", title, UNKNOWN, expected, not_available(facts, "storage"))
    else:
        if arrays:
            a = max(arrays, key=lambda x: x.size_bytes or 0)
            actual = f"{a.name}: {a.level}, {_devices(a)}, {terabytes(a.size_bytes):.2f} TB"
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
        md = shlex.quote(f"/dev/{array.name}")
        # as mdstat prints it, [devices/in sync], and in words
        counts = (f" [{array.devices_total}/{array.devices_up}]: {array.devices_up} of {array.devices_total} "
                  "devices up" if array.devices_total is not None and array.devices_up is not None else "")
        waiting = f", resync waiting ({array.sync_waiting})" if array.sync_waiting else ""
        if array.failed_members or array.degraded:
            add = (f"sudo mdadm --manage {md} --add /dev/NEW_DISK  (NEW_DISK: the replacement disk's name, "
                   "as `lsblk` shows it once fitted)")
            if array.failed_members:
                removes = " && ".join(f"sudo mdadm --manage {md} --remove {shlex.quote(f'/dev/{m}')}"
                                      for m in array.failed_members)
                hint = f"{removes}, then swap in a new disk and: {add}"
                actual = f"failed: {', '.join(array.failed_members)}{counts}"
            else:
                hint = f"sudo mdadm --detail {md}  then: {add}"
                actual = f"degraded{counts}"
            catching_up = array.recovering or array.sync_waiting is not None
            status = WARN if catching_up and not array.failed_members else FAIL
            if array.recovering:
                actual += ", recovery running"
            actual += waiting
            if catching_up and not array.failed_members:  # the missing device is already being rebuilt
                hint = "watch cat /proc/mdstat  (wait for the recovery to finish)"
            yield Finding("storage.md-health", title, status, expected, actual, hint=hint, subject=array.name)
        elif array.state != "active":
            yield Finding("storage.md-health", title, FAIL, expected, f"state {array.state}",
                          hint=f"sudo mdadm --assemble --scan && sudo mdadm --detail {md}",
                          subject=array.name)
        elif array.recovering:
            yield Finding("storage.md-health", title, WARN, expected, f"resync running{counts}",
                          hint="watch cat /proc/mdstat  (wait for it to finish)", subject=array.name)
        elif array.sync_waiting:
            yield Finding("storage.md-health", title, WARN, expected, f"active{counts}{waiting}",
                          hint="watch cat /proc/mdstat  (the resync starts when the array ahead of it is done)",
                          subject=array.name)
        else:
            yield Finding("storage.md-health", title, PASS, expected, f"active{counts}", subject=array.name)
