"""GPU telemetry beside a benchmark: one sampler thread reading NVML (nvidia-ml-py) at a fixed rate.

pynvml is loaded through `svdops.nvml.load_pynvml` (that module and this one are the only users
of it). The module is a parameter (`nvml=`), so tests hand in a fake built from a recorded
`nvml.json`; nothing else is faked.

Every sample carries both clocks: `t_unix` (to line up with other machines' logs and the run
folder name) and `t_mono` (to line up with the benchmark's stage marks, which are taken with
`time.monotonic()` in the same process and cannot jump when NTP adjusts the wall clock).

A missing NVML, a missing GPU or a query the driver does not support never raises: the sampler
records why in `note`, and a field the device does not support is None in every sample.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from svdops.nvml import load_pynvml

DEFAULT_HZ = 10.0

# NVML clocks-event ("throttle") reason bits, as in nvml.h (nvmlClocksEventReason*).
CLOCKS_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that mean the GPU ran slower than it could have because of heat or the board protecting
# itself. The software power cap (0x4) is listed apart: a GPU at full load sits on its cap by design.
THROTTLE_REASONS = frozenset({"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"})


def decode_clocks_event_reasons(mask: int | None) -> tuple[str, ...]:
    """Names of the bits set in a clocks-event reasons mask; unknown bits as hex ('0x200')."""
    if not mask:
        return ()
    names = [name for bit, name in CLOCKS_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCKS_EVENT_REASONS)
    bit = 1
    while unknown >= bit:
        if unknown & bit:
            names.append(hex(bit))
        bit <<= 1
    return tuple(names)


@dataclass(frozen=True)
class TelemetrySample:
    t_unix: float
    t_mono: float
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_mhz: float | None = None
    mem_mhz: float | None = None
    util_gpu_pct: float | None = None
    util_mem_pct: float | None = None
    mem_used_mib: float | None = None
    energy_mj: float | None = None  # NVML's counter since the driver loaded, in millijoules
    clocks_event_mask: int | None = None

    @property
    def clocks_event_reasons(self) -> tuple[str, ...]:
        return decode_clocks_event_reasons(self.clocks_event_mask)

    def as_row(self) -> list[Any]:
        return [*astuple(self), "|".join(self.clocks_event_reasons)]


TELEMETRY_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(TelemetrySample)), "clocks_event_reasons")


@dataclass(frozen=True)
class Mark:
    """A moment in the benchmark (a stage starting or ending), on the same clocks as the samples."""

    t_unix: float
    t_mono: float
    label: str
    point: int | None = None
    iteration: int | None = None

    def as_row(self) -> list[Any]:
        return list(astuple(self))


MARK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Mark))


class TelemetrySampler:
    """Samples one GPU at `hz` in a daemon thread between `start()` and `stop()`.

    `device` is an NVML index or a UUID ("GPU-…"); pass the UUID when CUDA_VISIBLE_DEVICES may
    renumber GPUs. When NVML cannot be used, `available` is False, `note` says why, and the
    sampler records nothing (marks are still kept, so stage timings line up either way).
    """

    def __init__(self, device: int | str = 0, *, hz: float = DEFAULT_HZ, nvml: Any = None) -> None:
        if hz <= 0:
            raise ValueError(f"telemetry rate must be above 0 Hz, got {hz}")
        self.device = device
        self.period_s = 1.0 / hz
        self._nvml = nvml
        self._handle: Any = None
        self._samples: list[TelemetrySample] = []
        self._marks: list[Mark] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsupported: set[str] = set()
        self._clocks_event: Callable[[Any], Any] = lambda handle: None
        self._initialised = False
        self.available = False
        self.note: str | None = None
        self.gpu_name: str | None = None
        self.driver_version: str | None = None
        self.errors = 0
        self.thread_cpu_s = 0.0  # CPU time the sampler thread itself used: its cost to the benchmark

    # --- life cycle ------------------------------------------------------------------------

    def open(self) -> bool:
        """Initialise NVML and find the device. False (with `note`) when that is not possible."""
        if self._nvml is None:
            self._nvml, why = load_pynvml()
            if self._nvml is None:
                self.note = why
                return False
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.note = f"NVML could not start: {exc}"
            return False
        self._initialised = True
        try:
            if isinstance(self.device, str):
                self._handle = nvml.nvmlDeviceGetHandleByUUID(self.device)
            else:
                self._handle = nvml.nvmlDeviceGetHandleByIndex(self.device)
        except Exception as exc:
            self.note = f"NVML has no GPU {self.device!r}: {exc}"
            self._shutdown()
            return False
        self.gpu_name = _text(self._query("name", lambda: nvml.nvmlDeviceGetName(self._handle)))
        self.driver_version = _text(self._query("driver", nvml.nvmlSystemGetDriverVersion))
        self._clocks_event = _ClocksEventReasons(nvml)
        self.available = True
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        if not self._initialised and not self.open():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="svdops-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within one period) and release NVML. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 10 * self.period_s))
            self._thread = None
        self._shutdown()

    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown(self) -> None:
        if self._initialised and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down is best effort: the process may be exiting
                self.errors += 1
            self._initialised = False

    def _run(self) -> None:
        cpu_start = time.thread_time()
        # An absolute schedule: the time a sample takes does not add up into drift.
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (a slow query, a suspended process): skip, do not burst
                next_t = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)
        self.thread_cpu_s += time.thread_time() - cpu_start

    # --- reading ---------------------------------------------------------------------------

    def _query(self, field: str, call: Callable[[], Any]) -> Any:
        if field in self._unsupported:
            return None
        try:
            return call()
        except Exception as exc:
            # NotSupported stays unsupported; asking again every 100 ms would only add cost.
            if "NotSupported" in type(exc).__name__ or "Not Supported" in str(exc):
                self._unsupported.add(field)
            else:
                self.errors += 1
            return None

    def sample_once(self) -> TelemetrySample:
        """Take one sample now (the thread calls this; tests may too) and keep it."""
        nvml, handle = self._nvml, self._handle
        t_unix, t_mono = time.time(), time.monotonic()
        q = self._query
        util = q("util", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        mem = q("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        sample = TelemetrySample(
            t_unix=t_unix,
            t_mono=t_mono,
            temp_c=_num(q("temp", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))),
            power_w=_scaled(q("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle)), 1e-3),
            power_limit_w=_scaled(q("power_limit", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle)), 1e-3),
            sm_mhz=_num(q("sm_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))),
            mem_mhz=_num(q("mem_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM))),
            util_gpu_pct=_num(getattr(util, "gpu", None)),
            util_mem_pct=_num(getattr(util, "memory", None)),
            mem_used_mib=_scaled(getattr(mem, "used", None), 1 / 2**20),
            energy_mj=_num(q("energy", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))),
            clocks_event_mask=_int(q("clocks_event", lambda: self._clocks_event(handle))),
        )
        with self._lock:
            self._samples.append(sample)
        return sample

    def mark(self, label: str, *, point: int | None = None, iteration: int | None = None) -> Mark:
        m = Mark(time.time(), time.monotonic(), label, point, iteration)
        with self._lock:
            self._marks.append(m)
        return m

    @property
    def samples(self) -> list[TelemetrySample]:
        with self._lock:
            return list(self._samples)

    @property
    def marks(self) -> list[Mark]:
        with self._lock:
            return list(self._marks)


# Renamed from "throttle" to "clocks event" in driver 535. nvidia-ml-py has both Python functions
# whatever the driver; an older libnvidia-ml.so lacks the new symbol and every call of it raises
# NVMLError_FunctionNotFound (13). Old bindings lack the new function altogether.
CLOCKS_EVENT_CALLS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
NVML_ERROR_FUNCTION_NOT_FOUND = 13


class _ClocksEventReasons:
    """The clocks-event mask through whichever name this binding and driver answer, found once."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self.calls = [name for name in CLOCKS_EVENT_CALLS if hasattr(nvml, name)]

    def __call__(self, handle: Any) -> Any:
        while self.calls:
            try:
                return getattr(self.nvml, self.calls[0])(handle)
            except Exception as exc:
                if not _function_not_found(exc):
                    raise
                self.calls.pop(0)  # the driver has no such symbol: it will not grow one
        raise _ClocksEventCallNotSupported("neither clocks-event reasons call exists in this NVML")


class _ClocksEventCallNotSupported(Exception):
    """No name answers: NotSupported by its name, so the sampler does not ask again."""


def _function_not_found(exc: BaseException) -> bool:
    return getattr(exc, "value", None) == NVML_ERROR_FUNCTION_NOT_FOUND or "FunctionNotFound" in type(exc).__name__


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _scaled(value: Any, factor: float) -> float | None:
    number = _num(value)
    return None if number is None else number * factor


# --- summaries -----------------------------------------------------------------------------


def samples_between(samples: Iterable[TelemetrySample], start_mono: float, end_mono: float) -> list[TelemetrySample]:
    return [s for s in samples if start_mono <= s.t_mono <= end_mono]


def energy_joules(
    samples: Sequence[TelemetrySample], start_mono: float | None = None, end_mono: float | None = None
) -> float | None:
    """Energy from `start_mono` to `end_mono` (default: the samples' span), in joules.

    NVML's energy counter is read between samples by linear interpolation at the window's edges, so
    a window is not cut short to the first and last sample inside it (at 10 Hz that lost up to 0.2 s
    of a few-second iteration). Without a usable counter (unsupported, or it went backwards when the
    driver reloaded), power is integrated over the same window, piecewise linear between samples.
    Pass every sample, not only those inside the window: the edges need their neighbours. Nothing is
    extrapolated: a window reaching past the samples is counted as far as they go, None if they miss it.
    """
    counters = sorted((s.t_mono, float(s.energy_mj)) for s in samples if s.energy_mj is not None)
    span = _clamped(counters, start_mono, end_mono)
    if span is not None:
        start, end = span
        inside = [e for t, e in counters if start < t < end]
        edges = [_interpolate(counters, start), *inside, _interpolate(counters, end)]
        if all(b >= a for a, b in itertools.pairwise(edges)):
            return (edges[-1] - edges[0]) / 1000.0
    powers = sorted((s.t_mono, float(s.power_w)) for s in samples if s.power_w is not None)
    span = _clamped(powers, start_mono, end_mono)
    if span is None:
        return None
    start, end = span
    points = [(start, _interpolate(powers, start)), *((t, p) for t, p in powers if start < t < end)]
    points.append((end, _interpolate(powers, end)))
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(points))


def _clamped(series: list[tuple[float, float]], start: float | None, end: float | None) -> tuple[float, float] | None:
    """The window cut to the series' time span; None with fewer than two points or no overlap."""
    if len(series) < 2:
        return None
    lo = series[0][0] if start is None else max(start, series[0][0])
    hi = series[-1][0] if end is None else min(end, series[-1][0])
    return (lo, hi) if lo <= hi else None


def _interpolate(series: list[tuple[float, float]], t: float) -> float:
    """The value at `t` (inside the series' span) on the straight line between its neighbours."""
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return series[-1][1]


def summarize(samples: Sequence[TelemetrySample]) -> dict[str, Any]:
    """What a result needs from a telemetry series: ranges, energy, and whether the GPU throttled."""
    if not samples:
        return {"samples": 0}

    def series(name: str) -> list[float]:
        return [v for s in samples if (v := getattr(s, name)) is not None]

    def stat(name: str, how: Callable[[list[float]], float]) -> float | None:
        values = series(name)
        return round(how(values), 3) if values else None

    # Fractions of the samples whose mask NVML gave; with no mask at all throttling is unknown (None),
    # never "not throttled": a driver without the call must not read as a cool, unthrottled GPU.
    masked = [s for s in samples if s.clocks_event_mask is not None]
    reason_counts: dict[str, int] = {}
    for s in masked:
        for reason in s.clocks_event_reasons:
            reason_counts[reason] = reason_counts.get(reason, 0) + 1
    seen = {name: round(count / len(masked), 4) for name, count in sorted(reason_counts.items())}
    energy = energy_joules(samples)
    return {
        "samples": len(samples),
        "duration_s": round(samples[-1].t_mono - samples[0].t_mono, 3),
        "temp_c_max": stat("temp_c", max),
        "power_w_median": stat("power_w", statistics.median),
        "power_w_max": stat("power_w", max),
        "power_limit_w": stat("power_limit_w", max),
        "sm_mhz_median": stat("sm_mhz", statistics.median),
        "sm_mhz_min": stat("sm_mhz", min),
        "sm_mhz_max": stat("sm_mhz", max),
        "mem_mhz_median": stat("mem_mhz", statistics.median),
        "util_gpu_pct_median": stat("util_gpu_pct", statistics.median),
        "mem_used_mib_max": stat("mem_used_mib", max),
        "energy_j": None if energy is None else round(energy, 3),
        "clocks_event_reasons": seen if masked else None,  # reason -> fraction of samples it was set in
        "throttled": any(name in THROTTLE_REASONS for name in seen) if masked else None,
        "power_capped": "sw_power_cap" in seen if masked else None,
    }
