"""What torch.compile really did at each point of a run: Dynamo's counters and its guard verdicts.

A compiled module runs its compiled code only while that code's guards (input shapes, dtypes, ...)
hold. A new shape fails them and Dynamo compiles again (from the second shape on with dynamic
sizes), up to `torch._dynamo.config.recompile_limit` (8) compilations of one function; past that it
runs the function eagerly and says so in one log warning. A sweep of shapes can therefore measure
eager points under a "compiled" label. This module counts, per point, what Dynamo compiled and broke
(`torch._dynamo.utils.counters`) and every guard verdict (the guard-complete hook of Dynamo's frame
evaluator): a timed call whose guards held ran compiled code; one whose guards failed recompiled
or, past the limit, ran eagerly. A point is `compiled` only when all its timed calls ran compiled code.
"""

from __future__ import annotations

from typing import Any

# How Dynamo words a hit limit in counters["unimplemented"] (torch >= 2.6; `cache_size_limit` before).
_LIMIT_WORDS = ("recompile limit", "recompile_limit", "cache_size_limit", "cache size limit")


class DynamoWatch:
    """Install once per run (`install`/`close`), then per point: `start_point`, `timed = True` before
    the timed iterations, `report()` after them."""

    def __init__(self) -> None:
        import torch
        import torch._dynamo
        from torch._dynamo.utils import counters

        self._config = torch._dynamo.config
        self._counters: Any = counters  # defaultdict(Counter): reason or name -> count
        self._set_hook = getattr(torch._C._dynamo.eval_frame, "set_guard_complete_hook", None)
        self._previous: Any = None
        self.installed = False
        self.timed = False
        self._verdicts = {"warmup": [0, 0], "timed": [0, 0]}  # [compiled, not] per phase
        self._before: dict[str, int] = {}
        self.limit_hit_before = False  # in an earlier point of this run

    def install(self) -> DynamoWatch:
        if self._set_hook is not None and not self.installed:
            self._previous = self._set_hook(self._hook)
            self.installed = True
        return self

    def close(self) -> None:
        if self.installed and self._set_hook is not None:
            self._set_hook(self._previous)  # what was there before (the guard collectives, or nothing)
            self.installed = False

    def _hook(self, hit: bool) -> bool:
        # Called by Dynamo after it evaluated a compiled frame's guards: True runs the compiled code.
        # Another hook that was installed first (guard collectives) still decides; this one only counts.
        result = bool(self._previous(hit)) if self._previous is not None else hit
        self._verdicts["timed" if self.timed else "warmup"][0 if result else 1] += 1
        return result

    def _snapshot(self) -> dict[str, int]:
        counters = self._counters
        limit = sum(n for reason, n in counters.get("unimplemented", {}).items() if _is_limit(reason))
        return {
            "graphs": int(counters.get("stats", {}).get("unique_graphs", 0)),
            "graph_breaks": int(sum(counters.get("graph_break", {}).values())),
            "limit": int(limit),
        }

    def start_point(self) -> None:
        self.timed = False
        self._verdicts = {"warmup": [0, 0], "timed": [0, 0]}
        self._before = self._snapshot()

    def report(self, timed_iterations: int) -> dict[str, Any]:
        """The point's compile record (PointSummary.compile), after `timed_iterations` finished."""
        now = self._snapshot()
        delta = {key: now[key] - self._before.get(key, 0) for key in now}
        limit_hit = delta["limit"] > 0
        warm_miss = self._verdicts["warmup"][1]
        timed_ok, timed_miss = self._verdicts["timed"]
        record: dict[str, Any] = {
            "graphs_compiled": delta["graphs"],
            "graph_breaks": delta["graph_breaks"],
            "guard_misses": warm_miss + timed_miss,  # each one a recompile, or an eager call past the limit
            "recompile_limit": getattr(self._config, "recompile_limit", None),
            "recompile_limit_hit": limit_hit or (self.limit_hit_before and warm_miss + timed_miss > 0),
            "timed": {"compiled": timed_ok, "eager": timed_miss},
            "compiled": None,
            "why": None,
        }
        self.limit_hit_before = self.limit_hit_before or limit_hit
        if not timed_iterations:
            record["why"] = "no timed iteration finished"
        elif not self.installed:
            record["why"] = "this torch has no guard-complete hook: whether the timed calls ran compiled is unknown"
        elif timed_miss and record["recompile_limit_hit"]:
            record["compiled"] = False
            limit = record["recompile_limit"]
            record["why"] = (
                f"Dynamo hit torch._dynamo.config.recompile_limit ({limit}) and ran {timed_miss} of "
                f"{timed_ok + timed_miss} timed calls of compiled code eagerly"
            )
        elif timed_miss:
            record["compiled"] = True
            record["why"] = f"{timed_miss} timed calls failed their guards: compile time is inside the timing"
        elif timed_ok:
            record["compiled"] = True
        else:
            record["compiled"] = False
            record["why"] = "no timed call entered compiled code"
        return record


def _is_limit(reason: Any) -> bool:
    text = str(reason).lower()
    return any(word in text for word in _LIMIT_WORDS)
