"""Disks, md arrays and mounts: `lsblk -J`, /proc/mdstat, `df -PT` and /proc/mounts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from svdops.host.facts import BlockDevice, MdArray, Mount
from svdops.host.probe._text import load_json, small_int

_MD_LEVELS_RE = re.compile(r"^(raid\d+|linear|multipath|faulty)$")
_MD_MEMBER_RE = re.compile(r"^([^\[\s]+)\[\d+\]((?:\([A-Z]\))*)$")
_MD_COUNTS_RE = re.compile(r"\[(\d{1,6})/(\d{1,6})\]")
_MD_BLOCKS_RE = re.compile(r"^\s*(\d{1,20}) blocks")
# a running sync prints a progress bar and "resync = 12.3% (...)"; a queued one "resync=DELAYED"/"=PENDING"
_MD_RECOVERY_RE = re.compile(r"\b(resync|recovery|reshape)\s*=\s*\d")
_MD_WAITING_RE = re.compile(r"\b(?:resync|recovery|reshape)\s*=\s*(DELAYED|PENDING)\b", re.IGNORECASE)
_MD_CONTAINER_RE = re.compile(r"\bsuper external:(?:imsm|ddf)\b")
_MD_MEMBER_OF_RE = re.compile(r"\bsuper external:(/\S+)")
# more mounts than a real host has (a busy Kubernetes node lists a few hundred): a recording with more is
# junk, and building, judging and writing 600,000 of them took 19 s and 1.5 GB
MAX_MOUNTS = 4096


def parse_lsblk_json(text: str) -> tuple[BlockDevice, ...] | None:
    """`lsblk -J -b -o NAME,TYPE,SIZE,ROTA,TRAN,MODEL,MOUNTPOINT,FSTYPE`, children included.

    util-linux before 2.33 prints every value as a string ("rota": "1", "size": "480103981056"), and
    without -b human sizes ("1.8T"); from 2.37 plain `lsblk -J` lists "mountpoints" (an array, [null]
    when unmounted) instead of "mountpoint". tests/fixtures/corpus/lsblk holds real outputs of each.
    """
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        return None
    return tuple(dev for item in data["blockdevices"] if (dev := _block_device(item, 0)) is not None)


def _block_device(item: Any, depth: int) -> BlockDevice | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or depth > 16:
        return None
    children: list[Any] = item["children"] if isinstance(item.get("children"), list) else []
    return BlockDevice(
        name=item["name"],
        type=str(item.get("type") or "unknown"),
        size_bytes=_size(item.get("size")),
        rotational=_bool(item.get("rota")),
        transport=_str(item.get("tran")),
        model=_str(item.get("model")),
        mountpoint=_mountpoint(item),
        fstype=_str(item.get("fstype")),
        children=tuple(dev for child in children if (dev := _block_device(child, depth + 1)) is not None),
    )


def _mountpoint(item: dict[str, Any]) -> str | None:
    """MOUNTPOINT, or else the first mounted entry of MOUNTPOINTS (util-linux 2.37+ default columns).
    Without the second, a whole disk mounted without partitions would look unused."""
    if "mountpoint" in item:
        return _str(item["mountpoint"])
    points = item.get("mountpoints")
    if isinstance(points, list):
        return next((point for p in points[:64] if (point := _str(p)) is not None), None)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return small_int(value, 24) if isinstance(value, str) else None


_HUMAN_SIZE_RE = re.compile(r"^(\d{1,6}(?:[.,]\d{1,3})?)\s?([BKMGTPE])(?:i?B)?$", re.IGNORECASE)
_UNIT_EXP = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def _size(value: Any) -> int:
    """Bytes from `lsblk -b` (a number or a numeric string) or, when -b was left out, from the
    human form lsblk prints ("238.5G", "1,8T" in some locales; binary units). The human form is
    rounded by lsblk to 3 significant digits, so the result is approximate, but it is not 0."""
    exact = _int(value)
    if exact is not None:
        return exact
    match = _HUMAN_SIZE_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return 0
    number = float(match.group(1).replace(",", "."))
    return int(number * 1024 ** _UNIT_EXP[match.group(2).upper()])


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("1", 1):
        return True
    if value in ("0", 0):
        return False
    return None


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def parse_mdstat(text: str) -> tuple[MdArray, ...]:
    """Arrays in /proc/mdstat. Each starts with 'mdN : state [level] dev[n][(F)] ...' and the
    next lines carry the size, '[total/up] [UU_]' and any resync/recovery progress.

    External-metadata containers ('super external:imsm' / ddf) are left out: they are always
    'inactive', list every disk as a spare and hold no data; the volumes inside them
    ('super external:/md127/0') are the arrays, and carry the container's name.
    """
    arrays: list[MdArray] = []
    current: dict[str, Any] | None = None

    def finish() -> None:
        if current is not None and not _is_container(current["detail"]):
            arrays.append(_md_array(current))

    for line in text.splitlines():
        head, sep, rest = line.partition(" : ")
        if sep and re.fullmatch(r"md[\w/]*", head.strip()):
            finish()
            current = {"name": head.strip(), "words": rest.split(), "detail": []}
        elif current is not None and line.startswith((" ", "\t")) and line.strip():
            current["detail"].append(line)
        elif current is not None and not line.strip():
            finish()
            current = None
    finish()
    return tuple(arrays)


def _is_container(detail: list[str]) -> bool:
    return any(_MD_CONTAINER_RE.search(line) for line in detail)


def _md_array(raw: dict[str, Any]) -> MdArray:
    words: list[str] = raw["words"]
    state = words[0] if words else "unknown"
    level = None
    members, failed, spares = [], [], []
    for word in words[1:]:
        if word.startswith("("):  # (auto-read-only), (read-only)
            continue
        if level is None and _MD_LEVELS_RE.match(word):
            level = word
            continue
        match = _MD_MEMBER_RE.match(word)
        if match:
            flags = match.group(2)
            if "(F)" in flags:
                failed.append(match.group(1))
            elif "(S)" in flags:
                spares.append(match.group(1))
            else:
                members.append(match.group(1))
    detail = "\n".join(raw["detail"])
    counts = _MD_COUNTS_RE.search(detail)
    blocks = next((int(m.group(1)) for ln in raw["detail"] if (m := _MD_BLOCKS_RE.match(ln))), None)
    waiting = _MD_WAITING_RE.search(detail)
    container = _MD_MEMBER_OF_RE.search(detail)
    return MdArray(
        name=raw["name"],
        level=level,
        state=state,
        members=tuple(members),
        failed_members=tuple(failed),
        size_bytes=None if blocks is None else blocks * 1024,  # mdstat counts 1 KiB blocks
        devices_total=int(counts.group(1)) if counts else None,
        devices_up=int(counts.group(2)) if counts else None,
        recovering=bool(_MD_RECOVERY_RE.search(detail)),
        spare_members=tuple(spares),
        sync_waiting=waiting.group(1).upper() if waiting else None,
        container=container.group(1) if container else None,
    )


@dataclass(frozen=True)
class MountOptions:
    device: str
    fstype: str
    options: tuple[str, ...]


def parse_df(text: str) -> tuple[Mount, ...] | None:
    """`df -PT`: Filesystem Type 1024-blocks Used Available Capacity Mounted-on (the last may have spaces).

    At most MAX_MOUNTS + 1 mounts: one more than the cap says the recording went past it.
    """
    lines = _lines(text)
    first = next(lines, "")
    if not first.startswith("Filesystem"):
        return None
    block_size = 1024
    header = first.split()
    if len(header) > 2 and (size := re.match(r"(\d{1,12})-blocks", header[2])):
        block_size = int(size.group(1))
    mounts: list[Mount] = []
    for line in lines:
        if len(mounts) > MAX_MOUNTS:
            break
        cells = line.split(None, 6)
        blocks = small_int(cells[2]) if len(cells) == 7 else None
        available = small_int(cells[4]) if len(cells) == 7 else None
        if blocks is None or available is None:
            continue
        mounts.append(Mount(
            device=cells[0],
            mountpoint=cells[6],
            fstype=cells[1],
            size_bytes=blocks * block_size,
            available_bytes=available * block_size,
        ))
    return tuple(mounts)


def parse_proc_mounts(text: str) -> dict[str, MountOptions]:
    """/proc/mounts by mount point (the last mount on a point wins, as the kernel shows it); the first
    4 x MAX_MOUNTS lines only (past that a recording is junk)."""
    mounts = {}
    for n, line in enumerate(_lines(text)):
        if n >= 4 * MAX_MOUNTS:
            break
        cells = line.split(None, 4)
        if len(cells) < 4:
            continue
        mountpoint = _unescape_octal(cells[1])
        mounts[mountpoint] = MountOptions(_unescape_octal(cells[0]), cells[2], tuple(cells[3].split(",")))
    return mounts


def _lines(text: str) -> Iterator[str]:
    """text.splitlines() one line at a time: a parser that stops early never splits 50 MB of junk."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end].rstrip("\r")
        start = end + 1


def _unescape_octal(value: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash in paths as \040 etc.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), value)


def merge_mounts(df: tuple[Mount, ...] | None, options: dict[str, MountOptions]) -> tuple[Mount, ...]:
    """df's sizes with /proc/mounts' options; without df, the block-device mounts of /proc/mounts."""
    if df is None:
        return tuple(
            Mount(opt.device, point, opt.fstype, options=opt.options)
            for point, opt in options.items()
            if opt.device.startswith("/dev/")
        )
    merged = []
    for mount in df:
        opt = options.get(mount.mountpoint)
        merged.append(Mount(
            mount.device, mount.mountpoint, mount.fstype or (opt.fstype if opt else None),
            mount.size_bytes, mount.available_bytes, opt.options if opt else (),
        ))
    return tuple(merged)
