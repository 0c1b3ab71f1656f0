"""The svdops burn's mechanics on CPU torch: matmul loop, NVML sampling (the recorded fake), clock
judging on recorded H100 samples, memory patterns, copy bandwidth, interrupts, the run folder, the report.

What only a GPU exercises (fp16 on cuda:N, pinned host-to-device copies, P2P, NCCL through torchrun,
real NVML under load) is in tests/gpu/test_burnin_gpu.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from svdops.bench.burnin import BurninRequest, burn
from svdops.bench.burnin.run import nccl_check, run_burnin
from svdops.bench.multi.merge import MultiOutcome
from svdops.cli.main import cli
from svdops.runs.documents import BurnIn, Failure, NcclRow, Results, SchemaError
from svdops.runs.store import load_run
from svdops.telemetry import TelemetrySample
from tests.support.fake_nvml import FakeNvml, recorded_series

torch = pytest.importorskip("torch")


def _request(tmp_path: Path, **kw: Any) -> BurninRequest:
    return BurninRequest(store=str(tmp_path / "runs"), device="cpu", dcgm_level=None, **{"duration_s": 0.5, **kw})


# --- matmul ----------------------------------------------------------------------------------------


def test_matmul_burn_runs_for_its_time_and_finds_every_product_identical() -> None:
    start = time.perf_counter()
    result = burn.matmul_burn(torch, "cpu", 0.5, size=64, dtype="float32")
    assert 0.5 <= time.perf_counter() - start < 3
    assert result.iterations >= 10 and result.checked >= 1 and result.mismatches == 0 and result.tflops > 0
    assert burn.matmul_check(result, 0).status == "pass"


class _FlakyTorch:
    """torch whose matmul into `out` flips one element every third call: a GPU computing wrong now and then."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is None:
            return torch.matmul(a, b)
        torch.matmul(a, b, out=out)
        self.calls += 1
        if self.calls % 3 == 0:
            out[0, 0] += 1
        return out


def test_matmul_burn_counts_products_that_differ_from_the_first() -> None:
    result = burn.matmul_burn(_FlakyTorch(), "cpu", 0.3, size=32, dtype="float32", check_every=1)
    assert result.mismatches > 0
    check = burn.matmul_check(result, 2)
    assert check.status == "fail" and check.gpu == 2 and "differed from the first" in check.detail


def test_matmul_errors_are_findings_not_crashes() -> None:
    result = burn.matmul_burn(torch, "cpu", 0.1, size=16, dtype="no_such_dtype")
    assert result.error and burn.matmul_check(result, 0).status == "fail"


def test_burn_all_runs_every_device_at_once() -> None:
    start = time.perf_counter()
    results = burn.burn_all(torch, ["cpu", "cpu", "cpu"], 0.6, size=32, dtype="float32")
    assert time.perf_counter() - start < 0.6 * 2  # in parallel, not 3 x 0.6 s one after another
    assert [r.iterations > 0 for r in results] == [True] * 3


def test_burn_all_stops_when_asked() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.perf_counter()
    burn.burn_all(torch, ["cpu", "cpu"], 30, size=32, dtype="float32", stop=stop)
    assert time.perf_counter() - start < 5


# --- clocks on recorded NVML samples ---------------------------------------------------------------


def _loaded_samples() -> list[TelemetrySample]:
    """The recorded H100 series while the GPU was busy (util > 50%), as the sampler builds samples."""
    rows = [r for r in recorded_series() if r["util"] > 50]
    t0 = rows[0]["t"]
    return [
        TelemetrySample(
            t_unix=r["t"],
            t_mono=r["t"] - t0,
            temp_c=r["temp_c"],
            power_w=r["power_w"],
            power_limit_w=700.0,
            sm_mhz=r["sm_mhz"],
            mem_mhz=r["mem_mhz"],
            util_gpu_pct=r["util"],
            energy_mj=r["energy_mj"],
            clocks_event_mask=r["throttle"],
        )
        for r in rows
    ]


def test_recorded_h100_under_load_holds_its_clock_even_on_the_power_cap() -> None:
    samples = _loaded_samples()
    assert any(s.clocks_event_mask == 4 for s in samples), "the recording has sw_power_cap samples"
    check = burn.judge_clocks(samples, 0)
    assert check.status == "pass", check.detail
    assert check.figures["sm_mhz_reference"] > 1500 and "sw_power_cap" in check.figures["clocks_event_reasons"]


def _collapse(samples: list[TelemetrySample], power_w: float) -> list[TelemetrySample]:
    cut = len(samples) * 2 // 3
    return samples[:cut] + [
        dataclasses.replace(s, sm_mhz=600.0, power_w=power_w, clocks_event_mask=0) for s in samples[cut:]
    ]


def test_clock_collapse_below_the_power_cap_fails() -> None:
    check = burn.judge_clocks(_collapse(_loaded_samples(), power_w=300.0), 3)
    assert check.status == "fail" and "collapsed to 600 MHz" in check.detail and check.gpu == 3


def test_a_slower_clock_on_the_power_cap_is_power_management() -> None:
    assert burn.judge_clocks(_collapse(_loaded_samples(), power_w=699.0), 0).status == "pass"


@pytest.mark.parametrize(("mask", "status"), [(0x8, "fail"), (0x40, "fail"), (0x80, "fail"), (0x20, "warn")])
def test_slowdown_reasons(mask: int, status: str) -> None:
    samples = _loaded_samples()
    samples[5] = dataclasses.replace(samples[5], clocks_event_mask=mask)
    assert burn.judge_clocks(samples, 0).status == status


def test_no_samples_is_a_skip_with_the_reason() -> None:
    check = burn.judge_clocks([], 1, "NVML could not start: Driver Not Loaded")
    assert check.status == "skip" and "Driver Not Loaded" in check.detail


# --- memory ----------------------------------------------------------------------------------------


def test_memory_patterns_read_back_on_the_cpu() -> None:
    result = burn.memory_pattern(torch, "cpu", 3 * burn.CHUNK_BYTES // 64, seconds=30)
    assert result.passes == len(burn.PATTERNS) + 1 and result.mismatches == 0 and not result.error
    assert burn.memory_check(result, 0).status == "pass"


class _StuckBit:
    """A uint8 block whose byte at `bad` keeps bit 0 set whatever is written: a stuck memory cell."""

    def __init__(self, tensor: Any, bad: int, offset: int = 0) -> None:
        self.tensor, self.bad, self.offset = tensor, bad, offset

    def __getitem__(self, item: slice) -> _StuckBit:
        return _StuckBit(self.tensor[item], self.bad, self.offset + (item.start or 0))

    def _stick(self) -> None:
        local = self.bad - self.offset
        if 0 <= local < self.tensor.numel():
            self.tensor[local] |= 1

    def fill_(self, value: int) -> None:
        self.tensor.fill_(value)
        self._stick()

    def copy_(self, other: Any) -> None:
        self.tensor.copy_(other)
        self._stick()

    def numel(self) -> int:
        return int(self.tensor.numel())

    def __ne__(self, other: object) -> Any:  # type: ignore[override]
        return self.tensor != other


class _StuckTorch:
    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def empty(self, n: int, **kw: Any) -> Any:
        return _StuckBit(torch.empty(n, **kw), bad=12345)


def test_memory_pattern_counts_a_stuck_bit() -> None:
    result = burn.memory_pattern(_StuckTorch(), "cpu", 2**20, seconds=30)
    # 0x00 and 0xAA have bit 0 clear: two of the four patterns see it, the address pattern when its byte is even
    assert result.mismatches >= 2
    check = burn.memory_check(result, 1)
    assert check.status == "fail" and "ROW_REMAPPER" in check.detail


def test_memory_pattern_stops_at_its_time_limit() -> None:
    result = burn.memory_pattern(torch, "cpu", 2**20, seconds=0)
    assert result.passes == 0 and result.stopped_early and burn.memory_check(result, 0).status == "skip"


# --- bandwidth -------------------------------------------------------------------------------------


def test_copy_bandwidth_measures_on_the_cpu_and_stops_when_asked() -> None:
    assert burn.copy_bandwidth(torch, "cpu", "cpu", 8 * 2**20, pin=False) > 0
    stop = threading.Event()
    stop.set()
    assert burn.copy_bandwidth(torch, "cpu", "cpu", 2**20, pin=False, stop=stop) is None


def test_link_figures() -> None:
    assert burn.pcie_expected_gbps(4, 16) == 31.5
    assert burn.pcie_expected_gbps(5, 16) == 63.01
    assert burn.pcie_expected_gbps(4, 8) == 15.75
    assert burn.pcie_expected_gbps(None, 16) is None and burn.pcie_expected_gbps(9, 16) is None
    assert burn.nvlink_expected_gbps("NV12", 3) == 300.0  # A100 SXM
    assert burn.nvlink_expected_gbps("NV18", 4) == 450.0  # H100 SXM
    assert burn.nvlink_expected_gbps("PIX", 4) is None and burn.nvlink_expected_gbps("NV8", None) is None


@pytest.mark.parametrize(
    ("measured", "status", "said"),
    [(53.0, "pass", "84%"), (35.0, "warn", "healthy link"), (25.0, "fail", "trained narrower")],
)
def test_h2d_against_a_pcie5_x16_link(measured: float, status: str, said: str) -> None:
    check = burn.bandwidth_check("h2d", 0, None, measured, 63.01, "PCIe gen5 x16")
    assert check.status == status and said in check.detail and check.figures["expected_gbps"] == 63.01


def test_a_slow_nvlink_pair_points_at_nvlink_and_fabric_manager() -> None:
    check = burn.bandwidth_check("p2p", 0, 5, 120.0, 450.0, "NVLink4 NV18")
    assert check.status == "fail" and check.peer == 5 and "nvlink -s" in check.detail


# --- NCCL through the bench's outcome --------------------------------------------------------------


def _nccl_outcome(tmp_path: Path, busbw: float | None, status: str = "ok") -> MultiOutcome:
    rows = (
        [
            NcclRow(size_bytes=2**20, busbw_gbps=40.0, expected_busbw_gbps=370.0),
            NcclRow(size_bytes=2**32, busbw_gbps=busbw, expected_busbw_gbps=370.0),
        ]
        if busbw
        else []
    )
    failure = Failure(rank=3, how="died", error="NCCL error: unhandled system error") if status == "failed" else None
    return MultiOutcome(
        tmp_path / "20261202T000000Z-gpu01-svd-xt-25f-nccl-x8",
        status,
        Results(kind="multi", status=status, nccl=rows, failure=failure),
    )


@pytest.mark.parametrize(("busbw", "status"), [(365.0, "pass"), (250.0, "warn"), (150.0, "fail")])
def test_nccl_busbw_against_the_topology_figure(tmp_path: Path, busbw: float, status: str) -> None:
    check = nccl_check(_nccl_outcome(tmp_path, busbw))
    assert check.status == status and check.figures["size_bytes"] == 2**32
    assert check.figures["run"].endswith("nccl-x8")


def test_nccl_that_failed_names_the_error(tmp_path: Path) -> None:
    check = nccl_check(_nccl_outcome(tmp_path, None, "failed"))
    assert check.status == "fail" and "unhandled system error" in check.detail


# --- the run: folder, telemetry, interrupts, CLI, report -------------------------------------------


def test_cpu_burnin_writes_a_run_folder_the_store_reads(tmp_path: Path) -> None:
    nvml = FakeNvml()
    outcome = run_burnin(_request(tmp_path), nvml=nvml, gather=lambda: (None, "no facts in this test"))
    assert not outcome.interrupted and not outcome.failed
    run = load_run(outcome.path)
    assert (run.results.kind, run.results.status, run.results.scenario) == ("burnin", "ok", "burnin")
    doc = BurnIn.read(json.loads((outcome.path / "burnin.json").read_text()))
    assert doc.tests_finished == ["matmul", "clocks", "memory", "h2d", "p2p", "nccl"] and doc.tests_not_run == []
    assert {c.name: c.status for c in doc.checks}["clocks"] == "pass"  # the recorded H100 sampled by the fake
    telemetry = run.table("telemetry")
    assert telemetry and telemetry[0]["gpu"] == 0 and telemetry[0]["rank"] == 0 and telemetry[0]["sm_mhz"] > 0
    assert nvml.calls["nvmlDeviceGetClockInfo"] >= 2 and nvml.initialised == nvml.shutdowns
    assert run.results.telemetry.summary.samples == len(telemetry)
    assert "no facts in this test" in doc.notes


def test_ctrl_c_between_tests_keeps_what_finished(tmp_path: Path) -> None:
    def progress(text: str) -> None:
        if text.startswith("memory pattern"):
            raise KeyboardInterrupt

    outcome = run_burnin(_request(tmp_path), gather=lambda: (None, None), progress=progress)
    assert outcome.interrupted
    doc = BurnIn.read(json.loads((outcome.path / "burnin.json").read_text()))
    assert doc.status == "interrupted" and doc.tests_finished == ["matmul", "clocks"]
    assert doc.tests_not_run == ["memory", "h2d", "p2p", "nccl"]
    assert load_run(outcome.path).results.status == "interrupted"
    assert not list((tmp_path / "runs").glob(".tmp-*"))


def test_sigint_during_the_burn_stops_it_within_seconds(tmp_path: Path) -> None:
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    outcome = run_burnin(_request(tmp_path, duration_s=120), gather=lambda: (None, None))
    timer.cancel()
    assert time.perf_counter() - start < 30
    assert outcome.interrupted and outcome.doc.tests_finished == [] and "matmul" in outcome.doc.tests_not_run


def test_sigterm_is_an_interrupt_too(tmp_path: Path) -> None:
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    outcome = run_burnin(_request(tmp_path, duration_s=120), gather=lambda: (None, None))
    timer.cancel()
    assert outcome.interrupted and outcome.doc.status == "interrupted"


def test_cli_cpu_dry_run_exit_0_and_ctrl_c_exit_130(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "runs")
    ok = runner.invoke(cli, ["burnin", "--device", "cpu", "--no-dcgm", "--duration", "0.5", "--store", store])
    assert ok.exit_code == 0, ok.output
    assert "burn: " in ok.output and "passed" in ok.output
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    stopped = runner.invoke(cli, ["burnin", "--device", "cpu", "--no-dcgm", "--duration", "120", "--store", store])
    timer.cancel()
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted: finished tests kept in" in stopped.output and "not run: matmul" in stopped.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--duration", "0"], "--duration"),
        (["--duration", "1e9"], "--duration"),
        (["--gpus", "zero"], "--gpus"),
        (["--gpus", "0", "--device", "cpu"], "--gpus with --device cpu"),
        (["--dcgm-level", "7"], "--dcgm-level"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, args: list[str], said: str) -> None:
    result = CliRunner().invoke(cli, ["burnin", "--no-dcgm", "--store", str(tmp_path), *args])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output


def test_burnin_document_round_trip_and_schema() -> None:
    doc = BurnIn(
        status="ok", mode="burn", gpus=[0, 1], checks=[burn.bandwidth_check("p2p", 0, 1, 300.0, 450.0, "NV18")]
    )
    again = BurnIn.read(json.loads(json.dumps(doc.to_json())))
    assert again == doc and again.read_notes == [] and again.counts()["pass"] == 1
    with pytest.raises(SchemaError):
        BurnIn.read({"schema": "svdops.burnin/2", "status": "ok"})
    hostile = BurnIn.read({"status": 3, "checks": [{"name": "x", "status": "fail", "gpu": "zero"}, 5], "gpus": "all"})
    assert hostile.checks[0].gpu is None and len(hostile.read_notes) >= 3


def test_report_shows_the_burnin_beside_the_runs(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from svdops.report import write_report

    outcome = run_burnin(_request(tmp_path), gather=lambda: (None, None))
    broken = tmp_path / "runs" / "20261202T000000Z-evil-burnin"
    broken.mkdir()
    (broken / "results.json").write_text(
        json.dumps({"schema": "svdops.bench.results/1", "kind": "burnin", "status": "failed"})
    )
    (broken / "burnin.json").write_text(
        '{"schema": "svdops.burnin/1", "checks": [{"name": "<script>x", "status": "fail", "detail": "\\u001b[31mred"}]}'
    )
    write_report([str(tmp_path / "runs")], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    section = html[html.index('id="burnin"') : html.index('id="runs"')]
    assert outcome.path.name in section and "matmul" in section and "CPU dry run" in section
    assert "&lt;script&gt;x" in section and "<script>" not in html and "\x1b" not in html
