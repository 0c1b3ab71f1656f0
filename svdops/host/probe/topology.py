"""The GPU link matrix of `nvidia-smi topo -m`, with each GPU's CPU and NUMA affinity.

The matrix is tab separated; header cells carry ANSI underline codes, NIC columns may follow the
GPU columns, and recent drivers add a `GPU NUMA ID` column after an empty cell. Cells are mapped
by the header's column positions, so extra columns do not shift the GPU ones.
"""

from __future__ import annotations

import re

from svdops.host.facts import GpuAffinity, GpuLink, TopologyFacts
from svdops.host.probe._text import strip_ansi

_GPU_LABEL_RE = re.compile(r"^GPU(\d{1,4})$")
_LINK_RE = re.compile(r"^(NV(\d{1,4})|PIX|PXB|PHB|NODE|SYS|SOC|X)$")


def parse_topo_matrix(text: str) -> TopologyFacts:
    """TopologyFacts from `nvidia-smi topo -m`; an empty TopologyFacts when no matrix is found."""
    lines = [strip_ansi(line).rstrip("\n") for line in text.splitlines()]
    header_at = next((i for i, line in enumerate(lines) if _is_header(line)), None)
    if header_at is None:
        return TopologyFacts()
    header = _cells(lines[header_at])
    if header and _GPU_LABEL_RE.match(header[0]):
        # the header's leading empty cell was lost (output passed through .strip(), as vLLM's
        # collect_env does, or pasted flush left): put it back so columns line up with the rows
        header = ["", *header]
    gpu_columns = {int(m.group(1)): col for col, cell in enumerate(header) if (m := _GPU_LABEL_RE.match(cell))}
    cpu_col = _column(header, "CPU Affinity")
    numa_col = _column(header, "NUMA Affinity")

    rows: dict[int, list[str]] = {}
    for line in lines[header_at + 1:]:
        cells = _cells(line)
        if not cells or not (match := _GPU_LABEL_RE.match(cells[0])):
            if rows and not line.strip():
                break  # the legend follows the matrix after a blank line
            continue
        rows[int(match.group(1))] = cells

    links = []
    affinity = []
    for gpu_a, cells in sorted(rows.items()):
        for gpu_b, col in sorted(gpu_columns.items()):
            if gpu_b <= gpu_a or gpu_b not in rows:
                continue
            kind = _cell(cells, col)
            link_match = _LINK_RE.match(kind or "")
            if link_match is None or kind == "X":
                continue
            nvlinks = int(link_match.group(2)) if link_match.group(2) else 0
            links.append(GpuLink(gpu_a, gpu_b, kind or "", nvlinks))
        affinity.append(GpuAffinity(gpu_a, _cell(cells, cpu_col), _cell(cells, numa_col)))
    return TopologyFacts(gpu_count=len(rows), links=tuple(links), affinity=tuple(affinity))


def _is_header(line: str) -> bool:
    """Column titles: GPU labels and no link value. A row also starts with a GPU label, but holds
    its own ' X ' (and the links), which a header never does."""
    cells = _cells(line)
    return (any(_GPU_LABEL_RE.match(c) for c in cells)
            and not any(_LINK_RE.match(c) for c in cells[1:]))


def _cells(line: str) -> list[str]:
    if "\t" in line:
        return [cell.strip() for cell in line.split("\t")]
    # Tabs lost (copied from a terminal): fall back to runs of 2+ spaces, keeping the leading cell.
    return [cell.strip() for cell in re.split(r" {2,}", line)]


def _column(header: list[str], title: str) -> int | None:
    return header.index(title) if title in header else None


def _cell(cells: list[str], col: int | None) -> str | None:
    if col is None or col >= len(cells):
        return None
    value = cells[col].strip()
    return value if value and value.upper() != "N/A" else None
