#!/usr/bin/python
"""Inspect allowlisted disks and md arrays before the storage role touches anything. Read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: svdops_disks
short_description: Say what each allowlisted disk holds and which md arrays already exist
description:
  - Read-only. For each array, whether /dev/md/NAME exists and its members; for each device, its
    partitions, signatures (wipefs), mounts and holders, and whether the role may use it as it is,
    must wipe it first (named in C(wipe)), or must refuse it.
options:
  arrays:
    description: List of dicts with C(name) and C(devices) (/dev/disk/by-id paths).
    type: list
    elements: dict
    required: true
  wipe:
    description: >-
      Disks the user allowed to be wiped, written exactly as in C(arrays) (/dev/disk/by-id paths). Only
      the same string unlocks a disk: not its kernel name, its resolved path or its base name.
    type: list
    elements: str
    default: []
  devices:
    description: Inspect the devices too; false reads only the arrays (after they are built).
    type: bool
    default: true
  fstab:
    description: The fstab to read for lines that already mount something on an array's C(mount).
    type: str
    default: /etc/fstab
author: svdops
"""

RETURN = r"""
arrays:
  description: >-
    NAME -> {exists, path, members (resolved paths), level, uuid, brief (its mdadm.conf ARRAY line),
    fs_type, fs_uuid (blkid), mounted_uuid (of what is mounted on C(mount), when given),
    fstab_foreign (fstab lines for C(mount) that svdops did not write: refused)}.
  returned: always
  type: dict
devices:
  description: PATH -> {exists, resolved, holds (what is on it), in_array, wipe, refused, fs_uuids}.
  returned: always
  type: dict
wipe_plan:
  description: >-
    What wiping the disks named for it takes: {unmount (mount points), stop (md arrays to stop),
    refused (holders svdops does not take apart: device-mapper, LVM, dm-crypt, or an md array with
    something on top), fs_uuids and md_uuids (filesystems and arrays destroyed: their fstab and
    mdadm.conf lines are retired)}.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def _export(text):
    """KEY=VALUE lines (mdadm --export) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _unescape(field):
    """fstab and mountinfo write space, tab, newline and backslash as octal escapes (\\040...)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _normal_mount(path):
    path = _unescape(path)
    return os.path.normpath(path) if path.startswith("/") else path


def fstab_entries(text, mount):
    """The fstab lines (comments and blank lines aside) that mount something on `mount`."""
    found = []
    want = _normal_mount(mount)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        if _normal_mount(fields[1]) == want:
            found.append({"spec": fields[0], "fstype": fields[2], "line": line.strip()})
    return found


def spec_uuid(spec):
    """The filesystem UUID an fstab source names (UUID=... or /dev/disk/by-uuid/...), else None."""
    for prefix in ("UUID=", "/dev/disk/by-uuid/"):
        if spec.startswith(prefix):
            return spec[len(prefix):].strip('"').lower() or None
    return None


def foreign_fstab_lines(entries, own_uuid, destroyed_uuids):
    """The lines of `entries` svdops did not write for this array: not the array's own filesystem
    (UUID= of what is on it now) and not a filesystem a wipe in this run destroys (those are retired).
    An NFS export, a bind mount or a disk someone else mounts there is foreign: svdops refuses to
    replace it."""
    ours = {u.lower() for u in (own_uuid, *destroyed_uuids) if u}
    return [e["line"] for e in entries if spec_uuid(e["spec"]) not in ours]


def _mounted_sources():
    """Resolved device path -> mount points, from /proc/self/mountinfo (sources may be symlinks)."""
    found = {}
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2 or not tail[1].startswith("/dev/"):
            continue
        found.setdefault(os.path.realpath(tail[1]), []).append(fields[4])
    return found


def _uuid_of(module, device):
    blkid = module.get_bin_path("blkid", required=True)
    rc, out, _err = module.run_command([blkid, "--probe", "--output", "value", "--match-tag", "UUID", device])
    if rc != 0:
        return None
    return out.strip() or None


def stable_brief(line):
    """The ARRAY line without the fields that change on their own.

    A new RAID5/6 is built degraded plus a spare and resyncs onto it: until the resync ends,
    `mdadm --detail --brief` says `spares=1`, afterwards not. Keeping that field would rewrite
    mdadm.conf (and rebuild the initramfs) on the next run for no reason.
    """
    words = line.split()
    kept = [w for w in words[:2]] + [w for w in words[2:] if w.split("=", 1)[0] in ("metadata", "name", "UUID")]
    return " ".join(kept)


def array_state(module, name):
    path = f"/dev/md/{name}"
    state = {"exists": os.path.exists(path), "path": path, "members": [], "level": None, "uuid": None,
             "brief": None, "fs_type": None, "fs_uuid": None}
    if not state["exists"]:
        return state
    mdadm = module.get_bin_path("mdadm", required=True)
    rc, out, _err = module.run_command([mdadm, "--detail", "--export", path])
    if rc != 0:
        state["exists"] = False
        return state
    info = _export(out)
    state["level"] = info.get("MD_LEVEL")
    state["uuid"] = info.get("MD_UUID")
    state["members"] = sorted(os.path.realpath(v) for k, v in info.items() if k.startswith("MD_DEVICE_") and k.endswith("_DEV"))
    rc, out, _err = module.run_command([mdadm, "--detail", "--brief", path])
    brief = next((ln.strip() for ln in out.splitlines() if ln.startswith("ARRAY")), None)
    state["brief"] = stable_brief(brief) if brief else None
    blkid = module.get_bin_path("blkid", required=True)
    # -p probes the device itself: the cache may still describe what was there before the array
    rc, out, _err = module.run_command([blkid, "--probe", "--output", "export", path])
    fs = _export(out) if rc == 0 else {}
    state["fs_type"], state["fs_uuid"] = fs.get("TYPE"), fs.get("UUID")
    return state


def signatures(module, device):
    wipefs = module.get_bin_path("wipefs", required=True)
    rc, out, err = module.run_command([wipefs, "--noheadings", "--output", "TYPE,OFFSET", device])
    if rc != 0:
        module.fail_json(msg=f"wipefs could not read {device}: {err.strip()}")
    return [" at ".join(line.split()) for line in out.splitlines() if line.strip()]


def holder_kind(sys_block, name):
    """What /dev/NAME, found in a disk's holders/, is: ("md", "") for an md array, else the
    device-mapper user that its dm/uuid names (LVM, dm-crypt, multipath...) and its dm name."""
    if name.startswith("md"):
        return "md", ""
    base = f"{sys_block}/{name}"
    uuid, label = _read(f"{base}/dm/uuid").strip(), _read(f"{base}/dm/name").strip()
    if not name.startswith("dm-") and not uuid:
        return "unknown", label
    prefix = uuid.split("-", 1)[0] if "-" in uuid else ""
    return {"LVM": "LVM", "CRYPT": "dm-crypt", "mpath": "multipath", "part1": "kpartx partition",
            "stratis": "Stratis"}.get(prefix, "device-mapper"), label


DM_HINTS = {
    "LVM": "vgchange -an VG, then vgreduce/pvremove the disk",
    "dm-crypt": "cryptsetup close NAME",
    "multipath": "multipath -f NAME",
}


def holder_refusal(holder):
    """Why svdops will not take `holder` (a holder_state) off a disk to wipe, or None: it stops md arrays
    and nothing else (mdadm --stop on a device-mapper device fails half-way, and an LVM volume or an
    open LUKS mapping holds data the allowlist never named)."""
    if holder["kind"] != "md":
        label = f" ({holder['label']})" if holder["label"] else ""
        hint = DM_HINTS.get(holder["kind"], "dmsetup remove NAME")
        return (f"{holder['path']}{label} is a {holder['kind']} device: svdops stops only md arrays; "
                f"take it down yourself ({hint}) and rerun")
    if holder["holders"]:
        return (f"{holder['path']} is itself in use by {', '.join(holder['holders'])}: svdops stops only an md "
                f"array nothing is built on")
    return None


def wipe_plan(devices, holders):
    """What wiping the devices marked `wipe` takes (pure). `devices`: PATH -> device_state with `wipe`;
    `holders`: /dev/NAME -> holder_state."""
    plan = {"unmount": [], "stop": [], "refused": [], "fs_uuids": [], "md_uuids": []}

    def add(key, value):
        if value and value not in plan[key]:
            plan[key].append(value)

    for path, dev in devices.items():
        if not dev.get("wipe"):
            continue
        for point in dev["mountpoints"]:
            add("unmount", point)
        for uuid in dev.get("fs_uuids", []):
            add("fs_uuids", uuid)
        for name in dev["holders"]:
            holder = holders[name]
            why = holder_refusal(holder)
            if why:
                add("refused", f"{path}: {why}")
                continue
            for point in holder["mountpoints"]:
                add("unmount", point)
            add("stop", holder["path"])
            add("fs_uuids", holder["fs_uuid"])
            add("md_uuids", holder["md_uuid"])
    return plan


def holder_state(module, name, mounts, sys_block="/sys/class/block"):
    kind, label = holder_kind(sys_block, name)
    above_dir = f"{sys_block}/{name}/holders"
    state = {"path": f"/dev/{name}", "kind": kind, "label": label,
             "holders": [f"/dev/{h}" for h in sorted(os.listdir(above_dir))] if os.path.isdir(above_dir) else [],
             "mountpoints": mounts.get(f"/dev/{name}", []), "md_uuid": None, "fs_uuid": None}
    if kind == "md":
        mdadm = module.get_bin_path("mdadm", required=True)
        rc, out, _err = module.run_command([mdadm, "--detail", "--export", state["path"]])
        state["md_uuid"] = _export(out).get("MD_UUID") if rc == 0 else None
        state["fs_uuid"] = _uuid_of(module, state["path"])
    return state


def device_state(module, path, mounts):
    if not os.path.exists(path):
        return {"exists": False, "resolved": None, "holds": [], "mountpoints": [], "holders": [], "fs_uuids": []}
    resolved = os.path.realpath(path)
    name = os.path.basename(resolved)
    sys_dir = f"/sys/class/block/{name}"
    holds = []
    if os.path.exists(f"{sys_dir}/partition"):
        holds.append("it is a partition, not a whole disk")
    partitions = sorted(p for p in os.listdir(sys_dir) if os.path.exists(f"{sys_dir}/{p}/partition")) \
        if os.path.isdir(sys_dir) else []
    for part in partitions:
        holds.append(f"partition /dev/{part}")
    for sig in signatures(module, resolved):
        holds.append(f"{sig.split()[0]} signature" + (f" ({sig})" if " at " in sig else ""))
    mountpoints, holders, fs_uuids = [], [], []
    for part in [name, *partitions]:
        uuid = _uuid_of(module, f"/dev/{part}") if holds else None
        if uuid:
            fs_uuids.append(uuid)
        for point in mounts.get(f"/dev/{part}", []):
            holds.append(f"/dev/{part} mounted on {point}")
            mountpoints.append(point)
        holder_dir = f"/sys/class/block/{part}/holders"
        for holder in sorted(os.listdir(holder_dir)) if os.path.isdir(holder_dir) else []:
            holds.append(f"/dev/{part} in use by /dev/{holder}")
            holders.append(holder)
    return {"exists": True, "resolved": resolved, "holds": holds, "mountpoints": mountpoints, "holders": holders,
            "fs_uuids": fs_uuids}


def wipe_set(items):
    """The disks named for wiping, as written: only by-id paths count (a kernel name such as
    /dev/nvme0n1 or a bare `vdz` names nothing; the role refuses them before this module runs)."""
    return {item for item in items if isinstance(item, str) and item.startswith("/dev/disk/by-id/")}


def may_wipe(path, wipe_names):
    """Whether the allowlisted `path` was named for wiping: the same string, nothing looser (a
    resolved path or base name would let `--wipe nvme0n1` unlock whatever disk has that name today)."""
    return path in wipe_names


def main():
    module = AnsibleModule(
        argument_spec={"arrays": {"type": "list", "elements": "dict", "required": True},
                       "wipe": {"type": "list", "elements": "str", "default": []},
                       "devices": {"type": "bool", "default": True},
                       "fstab": {"type": "str", "default": "/etc/fstab"}},
        supports_check_mode=True,
    )
    wipe_names = wipe_set(module.params["wipe"])
    mounts = _mounted_sources()
    arrays, devices, holders = {}, {}, {}
    for spec in module.params["arrays"]:
        name = spec["name"]
        state = array_state(module, name)
        arrays[name] = state
        if spec.get("mount"):
            mounted = [src for src, points in mounts.items() if spec["mount"] in points]
            state["mounted_uuid"] = _uuid_of(module, mounted[0]) if mounted else None
        if not module.params["devices"]:
            continue
        for path in spec.get("devices") or []:
            dev = device_state(module, path, mounts)
            dev["array"] = name
            # a member of the array it is meant for holds that array's data: it is in place, not in the way
            dev["in_array"] = bool(dev["exists"] and dev["resolved"] in state["members"])
            named = may_wipe(path, wipe_names)
            dirty = bool(dev["exists"] and dev["holds"] and not dev["in_array"])
            dev["wipe"] = dirty and named
            dev["refused"] = dirty and not named
            devices[path] = dev
            for holder in dev["holders"] if dev["wipe"] else []:
                if holder not in holders:
                    holders[holder] = holder_state(module, holder, mounts)
    plan = wipe_plan(devices, holders)
    # the fstab lines for each mount point that svdops did not write: checked before anything changes
    fstab_text = _read(module.params["fstab"])
    for spec in module.params["arrays"]:
        state = arrays[spec["name"]]
        entries = fstab_entries(fstab_text, spec["mount"]) if spec.get("mount") else []
        state["fstab_foreign"] = foreign_fstab_lines(entries, state["fs_uuid"], plan["fs_uuids"])
    module.exit_json(changed=False, arrays=arrays, devices=devices, wipe_plan=plan)


if __name__ == "__main__":
    main()
