"""lsblk -J, /proc/mdstat, df -PT and /proc/mounts."""

from __future__ import annotations

import json

from svdops.host.probe.storage import merge_mounts, parse_df, parse_lsblk_json, parse_mdstat, parse_proc_mounts

H100 = "h100-sxm-ubuntu2404"
RAID = "degraded-raid6-nvme-raid0"


def test_recorded_vm_disks_are_virtio_and_not_nvme(host_text):
    devices = parse_lsblk_json(host_text(H100, "lsblk.json"))
    assert devices is not None
    assert [d.name for d in devices] == ["zram0", "vda", "vdb"]
    vda = devices[1]
    assert (vda.size_bytes, vda.rotational, vda.transport, vda.mountpoint) == (274877906944, True, "virtio", "/")
    assert not any(d.is_nvme for d in devices)
    assert all(d.children == () for d in devices)


def test_nvme_and_hdd_disks_with_md_children(host_text):
    devices = parse_lsblk_json(host_text(RAID, "lsblk.json"))
    assert devices is not None
    nvme = [d for d in devices if d.is_nvme]
    hdd = [d for d in devices if d.transport == "sata"]
    assert [d.name for d in nvme] == ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1"]
    assert all(d.rotational is False and d.children[0].name == "md0" for d in nvme)
    assert len(hdd) == 6
    assert all(d.rotational and d.children[0].type == "raid6" and d.children[0].mountpoint == "/archive" for d in hdd)


def test_lsblk_with_string_values_of_old_util_linux(host_text):
    devices = parse_lsblk_json(host_text("seed-2023-ubuntu2004-a100x2", "lsblk.json"))
    assert devices is not None
    sda, nvme = devices
    assert (sda.size_bytes, sda.rotational) == (1920383410176, False)
    assert [c.mountpoint for c in sda.children] == ["/boot/efi", "/"]
    assert nvme.is_nvme


def test_lsblk_garbage():
    for text in ("", "{", '{"blockdevices": {}}', "\x00\x01", "[1, 2]"):
        assert parse_lsblk_json(text) is None
    assert parse_lsblk_json('{"blockdevices": [{"no": "name"}, 3]}') == ()
    deep: dict = {"name": "d0", "type": "disk"}
    node = deep
    for i in range(40):
        node["children"] = [{"name": f"d{i + 1}", "type": "part"}]
        node = node["children"][0]
    assert parse_lsblk_json(json.dumps({"blockdevices": [deep]}))[0].name == "d0"


def test_degraded_raid6_and_healthy_raid0(host_text):
    md1, md0 = parse_mdstat(host_text(RAID, "mdstat.txt"))
    assert (md1.name, md1.level, md1.state) == ("md1", "raid6", "active")
    assert md1.members == ("sdf", "sdd", "sdc", "sdb", "sda")  # the working set: the failed disk is apart
    assert md1.failed_members == ("sde",)
    assert (md1.devices_total, md1.devices_up) == (6, 5)
    assert md1.degraded
    assert not md1.recovering
    assert md1.size_bytes == 62502989824 * 1024
    assert (md0.name, md0.level) == ("md0", "raid0")
    assert md0.members == ("nvme3n1", "nvme2n1", "nvme1n1", "nvme0n1")
    assert md0.failed_members == ()
    assert not md0.degraded
    assert md0.devices_total is None  # raid0 has no [n/m]


def test_mdstat_recovery_readonly_and_inactive_arrays():
    # mdstat ends each array with a line of spaces; kept here as the kernel writes it
    text = "\n".join([
        "Personalities : [raid1] [raid10]",
        "md2 : active (auto-read-only) raid1 sdb1[1] sda1[0]",
        "      1046528 blocks super 1.2 [2/2] [UU]",
        "      ",
        "md3 : active raid10 sdf[4] sde[2] sdd[1] sdc[0]",
        "      1953260544 blocks super 1.2 512K chunks 2 near-copies [4/3] [UUU_]",
        "      [=>...................]  recovery =  8.5% (83097344/976630272) finish=95.8min speed=155326K/sec",
        "      ",
        "md127 : inactive sdg[0](S)",
        "      976630488 blocks super 1.2",
        "       ",
        "unused devices: <none>",
    ])
    md2, md3, md127 = parse_mdstat(text)
    assert (md2.level, md2.members, md2.degraded) == ("raid1", ("sdb1", "sda1"), False)
    assert md3.recovering and md3.degraded and md3.devices_up == 3
    assert (md127.state, md127.level, md127.members, md127.spare_members) == ("inactive", None, (), ("sdg",))


def test_mdstat_without_arrays_and_garbage():
    assert parse_mdstat("Personalities : \nunused devices: <none>\n") == ()
    assert parse_mdstat("") == ()
    assert parse_mdstat("md0 : \n\x00") == (parse_mdstat("md0 : \n")[0],)


def test_recorded_df(host_text):
    mounts = parse_df(host_text(H100, "df.txt"))
    assert mounts is not None
    root = next(m for m in mounts if m.mountpoint == "/")
    assert (root.device, root.fstype, root.size_bytes, root.available_bytes) == (
        "/dev/vda", "ext4", 264212084 * 1024, 67060544 * 1024,
    )
    assert any(m.mountpoint == "/mnt/sandboxing/model_tools_env/v1/python" for m in mounts)
    assert parse_df("garbage") is None


def test_df_merged_with_mount_options(host_text):
    df = parse_df(host_text(RAID, "df.txt"))
    options = parse_proc_mounts(host_text(RAID, "mounts.txt"))
    merged = {m.mountpoint: m for m in merge_mounts(df, options)}
    assert "noatime" in merged["/scratch"].options
    assert merged["/archive"].size_bytes == 62502989824 * 1024
    assert merged["/"].options == ("rw", "relatime")


def test_mounts_without_df_keep_block_devices_only():
    options = parse_proc_mounts(
        "/dev/sda2 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs ro 0 0\n"
    )
    assert [m.mountpoint for m in merge_mounts(None, options)] == ["/", "/mnt/my disk"]


def test_lsblk_without_b_keeps_the_disk_with_its_approximate_size():
    # the shape util-linux < 2.33 prints for plain `lsblk -J` (strings, human sizes); not a recorded output
    text = ('{"blockdevices": [{"name": "nvme0n1", "rm": "0", "size": "238.5G", "ro": "0", "type": "disk",'
            ' "children": [{"name": "nvme0n1p1", "size": "243M", "type": "part"}]}, {"name": "sdb", "size": "1,8T",'
            ' "type": "disk"}, {"name": "sr0", "size": "1024M", "type": "rom"}, {"name": "x", "size": "lots"}]}')
    nvme, sdb, sr0, odd = parse_lsblk_json(text)
    assert nvme.size_bytes == int(238.5 * 1024**3) and nvme.children[0].size_bytes == 243 * 1024**2
    assert sdb.size_bytes == int(1.8 * 1024**4)
    assert sr0.size_bytes == 1024**3 and odd.size_bytes == 0
