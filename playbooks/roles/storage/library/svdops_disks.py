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
author: svdops
"""

RETURN = r"""
arrays:
  description: >-
    NAME -> {exists, path, members (resolved paths), level, uuid, brief (its mdadm.conf ARRAY line),
    fs_type, fs_uuid (blkid), mounted_uuid (of what is mounted on C(mount), when given)}.
  returned: always
  type: dict
devices:
  description: PATH -> {exists, resolved, holds (what is on it), in_array, wipe, refused}.
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


def device_state(module, path, mounts):
    if not os.path.exists(path):
        return {"exists": False, "resolved": None, "holds": [], "mountpoints": [], "holders": []}
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
    mountpoints, holders = [], []
    for part in [name, *partitions]:
        for point in mounts.get(f"/dev/{part}", []):
            holds.append(f"/dev/{part} mounted on {point}")
            mountpoints.append(point)
        holder_dir = f"/sys/class/block/{part}/holders"
        for holder in sorted(os.listdir(holder_dir)) if os.path.isdir(holder_dir) else []:
            holds.append(f"/dev/{part} in use by /dev/{holder}")
            holders.append(f"/dev/{holder}")
    return {"exists": True, "resolved": resolved, "holds": holds, "mountpoints": mountpoints, "holders": holders}


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
                       "devices": {"type": "bool", "default": True}},
        supports_check_mode=True,
    )
    wipe_names = wipe_set(module.params["wipe"])
    mounts = _mounted_sources()
    arrays, devices = {}, {}
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
    module.exit_json(changed=False, arrays=arrays, devices=devices)


if __name__ == "__main__":
    main()
