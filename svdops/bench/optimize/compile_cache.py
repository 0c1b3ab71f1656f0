"""A compile cache that outlives the process, so the second run of a compiled bench skips most of
the compile (114 s for the SVD-XT UNet on an H100, anchors).

Inductor keeps compiled graphs (FX graph cache) and AOTAutograd keeps traced graphs in one folder;
PyTorch's default folder is under /tmp, which a reboot or a tmp cleaner empties, and which is per
user rather than per project. Dynamo still traces the Python on every run: a warm cache removes
code generation and kernel compilation, not the trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COUNTERS = (
    ("inductor", "fxgraph_cache_hit"),
    ("inductor", "fxgraph_cache_miss"),
    ("aot_autograd", "autograd_cache_hit"),
    ("aot_autograd", "autograd_cache_miss"),
)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "svdops" / "inductor"


@dataclass
class CompileCache:
    """Where the cache lives and what it held when this run began (cold: nothing)."""

    path: Path
    files_before: int
    counters_before: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "warm" if self.files_before else "cold"

    def report(self, compile_s: float | None = None) -> dict[str, Any]:
        """The cache's part of a result: state before, files after, and this process's hits and misses."""
        now = _counters()
        used = {k: now.get(k, 0) - self.counters_before.get(k, 0) for k in now}
        return {
            "dir": str(self.path),
            "state": self.state,
            "files_before": self.files_before,
            "files_after": _count_files(self.path),
            "compile_s": compile_s,
            **used,
        }


def configure(path: str | Path | None = None) -> CompileCache:
    """Point Inductor's caches at `path` (default ~/.cache/svdops/inductor) before anything compiles.

    Environment variables as well as the config flags: Inductor's compile workers are separate
    processes that read the environment, not this process's config module.
    """
    folder = Path(path).expanduser() if path else default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    files = _count_files(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder.resolve())
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return CompileCache(path=folder.resolve(), files_before=files, counters_before=_counters())


def _counters() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {name: int(counters[group][name]) for group, name in COUNTERS}


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
