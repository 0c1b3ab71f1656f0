"""The burn without DCGM: sustained matmul on every GPU at once, a memory pattern test, link bandwidth.

Each measurement takes `torch` (the module) and a device string, so the same code runs on
"cuda:N" on a GPU host and on "cpu" in the tests. Every loop is bounded by a deadline and by a
`threading.Event` that Ctrl-C sets, so nothing here runs on past its limit.

What is judged, and why:

- matmul: the same product computed again and again must give the same bits (gpu-burn's check: a
  GPU with a weak SM or a marginal memory cell gives a different answer now and then), and no NaN/Inf.
- clocks: the SM clock must not collapse (fall below CLOCK_COLLAPSE_FRACTION of its median in the
  first minute) while power is below the cap (below the cap, a slower clock is not power
  management: it is heat or the board protecting itself), and the hardware slowdown reasons NVML
  reports must stay clear.
- memory: patterns written over most of the free memory must read back unchanged.
- bandwidth: host-to-device per GPU against the PCIe link's rated figure, GPU-to-GPU per pair
  against the NVLink or PCIe figure; far below it is a link trained down (x8, a lower generation)
  or an NVLink that is down.
"""

from __future__ import annotations

import functools
import re
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from svdops.runs.documents import BurnCheck
from svdops.telemetry import TelemetrySample

CLOCK_COLLAPSE_FRACTION = 0.75  # below 75% of the first minute's median SM clock: collapsed
CLOCK_COLLAPSE_MIN_SAMPLES = 3  # consecutive samples, so one slow read is not a finding
REFERENCE_WINDOW_S = 60.0  # "the first minute"; a shorter burn uses its first third
POWER_CAP_MARGIN = 0.95  # within 5% of the enforced limit counts as on the cap
# Hardware reasons: the board or its sensors slowed the GPU. sw_thermal is the driver's own
# thermal policy: worth a warning, not a failed GPU.
HW_REASONS = frozenset({"hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"})
SW_THERMAL = "sw_thermal_slowdown"

# Link figures, GB/s (1e9 B/s) in one direction. PCIe per lane after 8b/10b (gen 1-2) and
# 128b/130b (gen 3+) encoding, as the PCI-SIG specifications give them; NVLink 20 GB/s per link per
# direction for generation 1, 25 for 2, 3 and 4 (NVIDIA's NVLink pages: A100 12 links = 300 GB/s,
# H100 18 links = 450 GB/s per direction).
PCIE_LANE_GBPS = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}
NVLINK_LINK_GBPS = {1: 20.0, 2: 25.0, 3: 25.0, 4: 25.0, 5: 50.0}
# A healthy link moves 75-90% of its rated figure in a large pinned copy; half of it is a link
# trained at half the width or one generation lower.
BANDWIDTH_PASS_FRACTION = 0.6
BANDWIDTH_FAIL_FRACTION = 0.5
_NV_KIND = re.compile(r"^NV(\d+)$")


def stop_requested(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


# --- matmul ----------------------------------------------------------------------------------------


@dataclass
class MatmulResult:
    device: str
    iterations: int = 0
    seconds: float = 0.0
    tflops: float | None = None
    checked: int = 0  # products compared with the first
    mismatches: int = 0  # of those, how many differed
    non_finite: bool = False
    error: str | None = None


def matmul_burn(
    torch: Any,
    device: str,
    seconds: float,
    *,
    size: int = 8192,
    dtype: str = "float16",
    stop: threading.Event | None = None,
    check_every: int = 10,
) -> MatmulResult:
    """Multiply two fixed matrices on `device` until `seconds` pass; compare every `check_every`th
    product with the first (bit for bit) and count the ones that differ."""
    result = MatmulResult(device)
    try:
        generator = torch.Generator(device="cpu").manual_seed(1234)
        a = torch.randn(size, size, generator=generator).to(device=device, dtype=getattr(torch, dtype))
        b = torch.randn(size, size, generator=generator).to(device=device, dtype=getattr(torch, dtype))
        reference = torch.matmul(a, b)
        _sync(torch, device)
        if not bool(torch.isfinite(reference).all()):
            result.non_finite = True
        out = torch.empty_like(reference)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline and not stop_requested(stop):
            for _ in range(check_every):
                torch.matmul(a, b, out=out)
            result.iterations += check_every
            result.checked += 1
            # the comparison waits for the GPU: it is also the synchronisation point of the loop
            if not bool(torch.equal(out, reference)):
                result.mismatches += 1
        _sync(torch, device)
        result.seconds = time.perf_counter() - start
        if result.seconds > 0 and result.iterations:
            result.tflops = 2 * size**3 * result.iterations / result.seconds / 1e12
    except Exception as exc:  # an Xid, an OOM, a lost GPU: a finding about this GPU, not a crash of the burn
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    return result


def burn_all(
    torch: Any,
    devices: Sequence[str],
    seconds: float,
    *,
    size: int = 8192,
    dtype: str = "float16",
    stop: threading.Event | None = None,
) -> list[MatmulResult]:
    """One thread per device, all at once (CUDA kernels release the GIL, so the GPUs run in parallel)."""
    results: list[MatmulResult | None] = [None] * len(devices)
    stop = stop if stop is not None else threading.Event()

    def work(index: int, device: str) -> None:
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        results[index] = matmul_burn(torch, device, seconds, size=size, dtype=dtype, stop=stop)

    threads = [
        threading.Thread(target=work, args=(i, d), name=f"svdops-burn-{d}", daemon=True) for i, d in enumerate(devices)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            # Ctrl-C arrives in the main thread: wake up often enough to let it through
            while thread.is_alive():
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()  # the workers leave their loop within one round of products
        for thread in threads:
            thread.join(timeout=30)
        raise
    return [
        r if r is not None else MatmulResult(d, error="the burn thread ended without a result")
        for r, d in zip(results, devices, strict=True)
    ]


def _svdops_check(
    name: str, gpu: int | None, figures: dict[str, Any] | None, status: str, detail: str, *, peer: int | None = None
) -> BurnCheck:
    """One svdops measurement's finding: each judge below fixes the test, the GPU (and peer) and the
    figures once (a judge may add to the figures before its verdict: the partial holds the dict)."""
    return BurnCheck(name=name, source="svdops", gpu=gpu, peer=peer, status=status, figures=figures, detail=detail)


def matmul_check(result: MatmulResult, gpu: int | None) -> BurnCheck:
    figures = {
        "iterations": result.iterations,
        "seconds": round(result.seconds, 3),
        "tflops": None if result.tflops is None else round(result.tflops, 2),
        "mismatches": result.mismatches,
    }
    verdict = functools.partial(_svdops_check, "matmul", gpu, figures)
    if result.error:
        return verdict(
            "fail",
            f"the matmul burn stopped with an error: {result.error}",
        )
    if result.non_finite or result.mismatches:
        what = (
            "NaN/Inf in the product"
            if result.non_finite
            else (f"{result.mismatches} of {result.checked} checked products differed from the first")
        )
        return verdict(
            "fail",
            f"{what}: the GPU computes wrong results under load; drain it and run "
            "`dcgmi diag -r 3`, then RMA if it repeats",
        )
    if not result.iterations:
        return verdict(
            "skip",
            "stopped before a full round of products",
        )
    return verdict(
        "pass",
        f"{result.iterations} products in {result.seconds:.0f} s, all identical"
        + (f", {result.tflops:.1f} TFLOP/s" if result.tflops else ""),
    )


# --- clocks, power, temperature --------------------------------------------------------------------


def judge_clocks(samples: Sequence[TelemetrySample], gpu: int | None, note: str | None = None) -> BurnCheck:
    """Throttling and clock collapse in the NVML samples of one GPU taken during the burn."""
    usable = [s for s in samples if s.sm_mhz is not None]
    if len(usable) < 2:
        return _svdops_check("clocks", gpu, None, "skip", f"no NVML clock samples ({note or 'NVML gave none'})")
    t0 = usable[0].t_mono
    span = usable[-1].t_mono - t0
    window = min(REFERENCE_WINDOW_S, span / 3) if span < 3 * REFERENCE_WINDOW_S else REFERENCE_WINDOW_S
    reference = [s.sm_mhz for s in usable if s.t_mono - t0 <= window and s.sm_mhz]
    ref_mhz = statistics.median(reference) if reference else None
    collapsed_run = longest = 0
    worst: TelemetrySample | None = None
    for s in usable:
        low = (
            ref_mhz is not None
            and s.t_mono - t0 > window
            and s.sm_mhz is not None
            and s.sm_mhz < CLOCK_COLLAPSE_FRACTION * ref_mhz
            and not _on_power_cap(s)
        )
        collapsed_run = collapsed_run + 1 if low else 0
        if low and (worst is None or (s.sm_mhz or 0) < (worst.sm_mhz or 0)):
            worst = s
        longest = max(longest, collapsed_run)
    reasons: dict[str, int] = {}
    for s in samples:
        for reason in s.clocks_event_reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
    temps = [s.temp_c for s in samples if s.temp_c is not None]
    powers = [s.power_w for s in samples if s.power_w is not None]
    figures: dict[str, Any] = {
        "samples": len(samples),
        "sm_mhz_reference": ref_mhz,
        "sm_mhz_min": min(s.sm_mhz for s in usable if s.sm_mhz is not None),
        "temp_c_max": max(temps) if temps else None,
        "power_w_max": max(powers) if powers else None,
        "power_limit_w": next((s.power_limit_w for s in samples if s.power_limit_w), None),
        "clocks_event_reasons": {k: round(v / len(samples), 4) for k, v in sorted(reasons.items())},
        "collapsed_samples": longest,
    }
    verdict = functools.partial(_svdops_check, "clocks", gpu, figures)
    hardware = sorted(HW_REASONS & reasons.keys())
    if hardware:
        return verdict(
            "fail",
            f"NVML reported {', '.join(hardware)} during the burn: the board slowed the GPU "
            "(overheating, a failing power supply or fan); check cooling and `nvidia-smi -q "
            "-d PERFORMANCE`, then the chassis vendor",
        )
    if longest >= CLOCK_COLLAPSE_MIN_SAMPLES and worst is not None and ref_mhz:
        return verdict(
            "fail",
            f"SM clock collapsed to {worst.sm_mhz:.0f} MHz, below {CLOCK_COLLAPSE_FRACTION:.0%} of "
            f"the first minute's {ref_mhz:.0f} MHz, while power ({worst.power_w or 0:.0f} W) was "
            "below its cap: not power management; check cooling and clocks-event reasons",
        )
    if SW_THERMAL in reasons:
        return verdict(
            "warn",
            "the driver slowed the GPU for heat (sw_thermal_slowdown) during the burn: "
            "check airflow and inlet temperature",
        )
    return verdict(
        "pass",
        f"SM clock held (min {figures['sm_mhz_min']:.0f} MHz, first minute median "
        f"{ref_mhz or 0:.0f} MHz), no hardware slowdown",
    )


def _on_power_cap(sample: TelemetrySample) -> bool:
    if sample.power_w is None or not sample.power_limit_w:
        return "sw_power_cap" in sample.clocks_event_reasons
    return sample.power_w >= POWER_CAP_MARGIN * sample.power_limit_w or "sw_power_cap" in sample.clocks_event_reasons


# --- memory pattern --------------------------------------------------------------------------------

PATTERNS = (0x00, 0xFF, 0xAA, 0x55)
CHUNK_BYTES = 256 * 2**20


@dataclass
class MemoryResult:
    device: str
    bytes_tested: int = 0
    passes: int = 0
    mismatches: int = 0
    seconds: float = 0.0
    error: str | None = None
    stopped_early: bool = False


def memory_pattern(
    torch: Any,
    device: str,
    nbytes: int,
    *,
    seconds: float,
    stop: threading.Event | None = None,
) -> MemoryResult:
    """Fill `nbytes` of device memory with each pattern in turn (and with each byte's own address,
    which catches address-line faults a uniform pattern cannot), read it back, count bytes that differ."""
    result = MemoryResult(device)
    start = time.perf_counter()
    deadline = start + seconds
    try:
        block = torch.empty(nbytes, dtype=torch.uint8, device=device)
        result.bytes_tested = nbytes
        fills: list[int | None] = [*PATTERNS, None]  # None: the address pattern
        for fill in fills:
            if time.perf_counter() > deadline or stop_requested(stop):
                result.stopped_early = True
                break
            for offset in range(0, nbytes, CHUNK_BYTES):
                chunk = block[offset : offset + CHUNK_BYTES]
                if fill is None:
                    chunk.copy_(_address_bytes(torch, offset, chunk.numel(), device))
                else:
                    chunk.fill_(fill)
            for offset in range(0, nbytes, CHUNK_BYTES):
                chunk = block[offset : offset + CHUNK_BYTES]
                expected = _address_bytes(torch, offset, chunk.numel(), device) if fill is None else fill
                result.mismatches += int((chunk != expected).sum().item())
            result.passes += 1
        del block
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    result.seconds = time.perf_counter() - start
    return result


def _address_bytes(torch: Any, offset: int, count: int, device: str) -> Any:
    return (torch.arange(offset, offset + count, device=device, dtype=torch.int64) % 251).to(torch.uint8)


def memory_bytes(torch: Any, device: str, fraction: float, cpu_bytes: int) -> int:
    """How much to test: `fraction` of the free memory of a GPU; `cpu_bytes` on the CPU (tests)."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(device)
        return max(int(free * fraction) // CHUNK_BYTES * CHUNK_BYTES, CHUNK_BYTES)
    return cpu_bytes


def memory_check(result: MemoryResult, gpu: int | None) -> BurnCheck:
    figures = {
        "bytes_tested": result.bytes_tested,
        "passes": result.passes,
        "mismatches": result.mismatches,
        "seconds": round(result.seconds, 3),
    }
    verdict = functools.partial(_svdops_check, "memory", gpu, figures)
    if result.error:
        return verdict(
            "fail",
            f"the memory test stopped with an error: {result.error}",
        )
    if result.mismatches:
        return verdict(
            "fail",
            f"{result.mismatches} byte(s) read back differently from what was written: "
            "check `nvidia-smi -q -d ROW_REMAPPER,ECC`, reset the GPU, RMA if it repeats",
        )
    if not result.passes:
        return verdict(
            "skip",
            "no pattern finished within the time limit",
        )
    gib = result.bytes_tested / 2**30
    return verdict(
        "pass",
        f"{result.passes} pattern(s) over {gib:.1f} GiB read back unchanged"
        + (" (time limit reached before the last patterns)" if result.stopped_early else ""),
    )


# --- bandwidth -------------------------------------------------------------------------------------


def copy_bandwidth(
    torch: Any,
    source: str,
    target: str,
    nbytes: int,
    *,
    repeats: int = 5,
    seconds: float = 10.0,
    pin: bool = True,
    stop: threading.Event | None = None,
) -> float | None:
    """GB/s of `repeats` copies of `nbytes` from `source` to `target` ("cpu", "cuda:0"): the best
    repeat, as nvbandwidth and bandwidthTest report it. None when stopped before a copy finished."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=source)
    if pin and source == "cpu" and target.startswith("cuda"):
        src = src.pin_memory()  # pageable memory goes through a staging buffer: half the speed
    dst = torch.empty(nbytes, dtype=torch.uint8, device=target)
    dst.copy_(src)  # warm-up: P2P mappings and the staging buffer are set up on the first copy
    for device in {source, target}:
        _sync(torch, device)
    best: float | None = None
    deadline = time.perf_counter() + seconds
    for _ in range(repeats):
        if stop_requested(stop) or time.perf_counter() > deadline:
            break
        start = time.perf_counter()
        dst.copy_(src, non_blocking=True)
        for device in {source, target}:
            _sync(torch, device)
        elapsed = time.perf_counter() - start
        if elapsed > 0:
            rate = nbytes / elapsed / 1e9
            best = rate if best is None else max(best, rate)
    return best


def pcie_expected_gbps(gen: int | None, width: int | None) -> float | None:
    if gen not in PCIE_LANE_GBPS or not width or width <= 0:
        return None
    return round(PCIE_LANE_GBPS[gen] * width, 2)


def nvlink_expected_gbps(kind: str | None, gen: int | None) -> float | None:
    """`NV12` between two GPUs of NVLink generation 3 -> 12 links x 25 GB/s = 300 GB/s one way."""
    match = _NV_KIND.match(kind or "")
    if match is None or gen not in NVLINK_LINK_GBPS:
        return None
    return float(int(match.group(1)) * NVLINK_LINK_GBPS[gen])


def bandwidth_check(
    name: str,
    gpu: int | None,
    peer: int | None,
    measured: float | None,
    expected: float | None,
    link: str,
) -> BurnCheck:
    figures = {
        "measured_gbps": None if measured is None else round(measured, 2),
        "expected_gbps": expected,
        "link": link,
    }
    where = f"GPU{gpu}->GPU{peer}" if peer is not None else ("host->CPU" if gpu is None else f"host->GPU{gpu}")
    verdict = functools.partial(_svdops_check, name, gpu, figures, peer=peer)
    if measured is None:
        return verdict(
            "skip",
            f"{where}: no copy finished within the time limit",
        )
    if expected is None:
        return verdict(
            "pass",
            f"{where}: {measured:.1f} GB/s ({link}; no rated figure to compare with)",
        )
    share = measured / expected
    figures["fraction"] = round(share, 3)
    said = f"{where}: {measured:.1f} GB/s, {share:.0%} of the {expected:.0f} GB/s {link} is rated for"
    if share < BANDWIDTH_FAIL_FRACTION:
        hint = (
            "an NVLink down or degraded: check `nvidia-smi nvlink -s` and nvidia-fabricmanager"
            if link.startswith("NVLink")
            else "the link trained narrower or slower than it should: check `nvidia-smi -q -d PCIE` "
            "under load, reseat the card or riser, check the slot's BIOS setting"
        )
        return verdict("fail", f"{said}; {hint}")
    if share < BANDWIDTH_PASS_FRACTION:
        return verdict(
            "warn",
            f"{said}: lower than a healthy link gives (75-90%); rerun on an idle host",
        )
    return verdict("pass", said)


def _sync(torch: Any, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
