#!/usr/bin/env python3
"""Regenerate reports/examples/: example run folders, check results, and the report rendered from them.

    .venv/bin/python scripts/make_example_runs.py            # everything (about a minute on a CPU)
    .venv/bin/python scripts/make_example_runs.py --no-bench # only the converted H100 reference runs

Two kinds of runs, so a newcomer sees a full report without a GPU:

* Real `tiny` runs on this machine's CPU through svdops' own benchmark (run_bench): a clean sweep,
  one where an out-of-memory is injected at the larger decode chunk (a CPU has no VRAM to run out
  of; the fault goes through the pipeline's real error path, as in the bench tests), and one
  interrupted in its third timed iteration. Those two say so in their notes.
* The H100 reference measurements (reports/examples/anchors/, copied from the project's
  shared/anchors/) converted to the run-store format, with their NVML telemetry series split
  across the runs by time. Every converted run is labelled: weights and `provenance` say
  "converted from anchors: ...", and the notes list what was estimated.

The host facts of the reference runs are the recorded H100 host (tests/fixtures/hosts/h100-sxm-ubuntu2404)
under the name `h100-sxm-reference`; the CPU runs use this machine's facts under the name
`cpu-devbox`, so regenerated examples differ only in measured values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svdops.bench.config import BenchRequest, load_scenario, resolve_points  # noqa: E402
from svdops.bench.stats import describe  # noqa: E402
from svdops.files import atomic_write_text, json_text  # noqa: E402
from svdops.host.facts import HostFacts  # noqa: E402
from svdops.runs.documents import RESULTS_SCHEMA, Config, Results, Versions  # noqa: E402
from svdops.runs.store import RunWriter, run_name  # noqa: E402
from svdops.telemetry import MARK_COLUMNS, TELEMETRY_COLUMNS, TelemetrySample, energy_joules, summarize  # noqa: E402

EXAMPLES = ROOT / "reports" / "examples"
ANCHORS = EXAMPLES / "anchors"
H100_FIXTURE = ROOT / "tests" / "fixtures" / "hosts" / "h100-sxm-ubuntu2404"
REFERENCE_HOST = "h100-sxm-reference"
CPU_HOST = "cpu-devbox"
GPU_NAME = "NVIDIA H100 80GB HBM3"
PROVENANCE = "converted from anchors: diffusers defaults on H100 SXM, 2026-11-26"
POWER_CAP_W = 700.0
# The anchor script ran warm-up, SVD-XT, SVD and the chunk-2 case back to back in one process. Where
# each call ended is read off the telemetry (utilisation and power drop between calls, in seconds
# from the first sample); its start follows from the measured end-to-end time.
CALL_END_S = {"warmup": 4.10, "svd-xt-25f": 23.30, "svd-14f": 34.30, "svd-xt-25f-chunk2": 38.70}
# (run scenario, anchor case, extra settings, the anchor cases whose calls belong to this run)
REFERENCE_RUNS = (
    ("svd-xt-25f", "svd-xt-25f", {}, ("warmup", "svd-xt-25f")),
    ("svd-14f", "svd-14f", {}, ("svd-14f",)),
    ("svd-xt-25f", "svd-xt-25f-chunk2", {"decode_chunk": 2, "steps": 3}, ("svd-xt-25f-chunk2",)),
)
SPLIT_S = (0.0, 23.35, 34.35, float("inf"))  # telemetry windows of the three runs
UNET_TFLOP_XT = 159.8964604928  # FlopCounterMode at the SVD-XT shape, from the anchors


def reference_facts() -> HostFacts:
    from svdops.host.probe.gather import gather_facts
    from svdops.host.shell import RecordedShell

    facts = gather_facts(RecordedShell(H100_FIXTURE), source=f"recorded:{H100_FIXTURE.relative_to(ROOT)}")
    return _renamed(facts, REFERENCE_HOST)


def _renamed(facts: HostFacts, host: str) -> HostFacts:
    return dataclasses.replace(facts, hostname=host, os=dataclasses.replace(facts.os, hostname=host))


def unet_tflop_per_step(frames: int) -> float:
    if frames == 25:
        return UNET_TFLOP_XT
    # The 14-frame UNet is the same network with num_frames=14; count it the way the bench does.
    from svdops.bench.flops import unet_flops

    config = json.loads((ROOT / "svdops" / "data" / "svd-xt-configs.json").read_text())["unet"]
    return (
        unet_flops({**config, "num_frames": frames}, batch=2, frames=frames, latent_height=72, latent_width=128) / 1e12
    )


def convert_anchors(store: Path) -> list[Path]:
    cases = {c["case"]: c for c in json.loads((ANCHORS / "svd-diffusers-h100-results.json").read_text())}
    rows = json.loads((ANCHORS / "telemetry-h100.json").read_text())
    t0 = rows[0]["t"]
    samples = [
        TelemetrySample(
            t_unix=r["t"],
            t_mono=r["t"] - t0,
            temp_c=r["temp_c"],
            power_w=r["power_w"],
            power_limit_w=POWER_CAP_W,
            sm_mhz=r["sm_mhz"],
            mem_mhz=r["mem_mhz"],
            util_gpu_pct=r["util"],
            mem_used_mib=r["mem_used_mib"],
            energy_mj=r["energy_mj"],
            clocks_event_mask=r["throttle"],
        )
        for r in rows
    ]
    facts = reference_facts().to_dict()
    from svdops.judge.knowledge import find_gpu_spec

    spec = find_gpu_spec(GPU_NAME)
    assert spec is not None
    paths = []
    for index, (scenario, case_name, settings, calls) in enumerate(REFERENCE_RUNS):
        case = cases[case_name]
        window = [s for s in samples if SPLIT_S[index] <= s.t_mono < SPLIT_S[index + 1]]
        request = BenchRequest(
            scenario=scenario,
            device="cuda",
            dtype="fp16",
            iterations=1,
            warmup=1 if "warmup" in calls else 0,
            **settings,
        )
        (point,) = resolve_points(request, "cuda:0")
        iterations, marks = [], []
        for i, call in enumerate(calls):
            c = cases[call]
            start = CALL_END_S[call] - c["total_s"]
            unet_start = start + c["first_step_end_s"] - c["step_s_median"]
            unet_s = c["steps"] * c["step_s_median"]
            decode_start = unet_start + unet_s
            end = start + c["total_s"]
            for label, t in (
                ("iteration:start", start),
                ("e2e:start", start),
                ("unet:start", unet_start),
                ("unet:end", decode_start),
                ("decode:start", decode_start),
                ("decode:end", decode_start + c["decode_s"]),
                ("e2e:end", end),
                ("iteration:end", end),
            ):
                marks.append([t0 + t, t, label, 0, i])
            energy = energy_joules([s for s in window if start <= s.t_mono <= end])
            iterations.append(
                {
                    "point": 0,
                    "iteration": i,
                    "warmup": call == "warmup",
                    "frames": c["frames"],
                    "height": c["h"],
                    "width": c["w"],
                    "steps": c["steps"],
                    "decode_chunk": c["decode_chunk"],
                    "videos_per_call": 1,
                    "t_start_unix": t0 + start,
                    "clip_s": None,
                    "vae_encode_s": None,
                    "unet_s": unet_s,
                    "unet_step_median_s": c["step_s_median"],
                    "decode_s": c["decode_s"],
                    "e2e_s": c["total_s"],
                    "other_s": c["total_s"] - unet_s - c["decode_s"],
                    "peak_allocated_gib": c["peak_alloc_gib"],
                    "peak_reserved_gib": c["peak_reserved_gib"],
                    "nan_frac": c["nan_frac"],
                    "black_frames": None,
                    "frames_out": c["frames"],
                    "energy_j": energy,
                    "_start": start,
                    "_end": end,
                }
            )
        timed = [it for it in iterations if not it["warmup"]]
        timed_window = [s for s in window if timed[0]["_start"] <= s.t_mono <= timed[-1]["_end"]]
        tflop = unet_tflop_per_step(case["frames"])
        step = case["step_s_median"]
        e2e = case["total_s"]
        telemetry = summarize(timed_window)
        summary = {
            "iterations": len(timed),
            "warmup_iterations": len(iterations) - len(timed),
            "unet_tflop_per_step": tflop,
            "unet_s": describe([it["unet_s"] for it in timed]),
            "decode_s": describe([it["decode_s"] for it in timed]),
            "e2e_s": describe([it["e2e_s"] for it in timed]),
            "unet_step_s": describe([step]),
            "videos_per_hour": 3600.0 / e2e,
            "frames_per_s": case["frames"] / e2e,
            "unet_tflops": tflop / step,
            "peak_tflops": spec.fp16_tflops,
            "peak_tflops_source": f"svdops/judge/knowledge/gpus.yaml: {spec.name} fp16 dense",
            "mfu": tflop / step / spec.fp16_tflops,
            "peak_allocated_gib": case["peak_alloc_gib"],
            "peak_reserved_gib": case["peak_reserved_gib"],
            "nan_frac_max": case["nan_frac"],
            "black_frames": None,
            "output_ok": None,
            "energy_j_per_video": statistics.median(it["energy_j"] for it in timed if it["energy_j"] is not None),
            "telemetry": telemetry,
            "nvml_mem_used_mib_max": telemetry.get("mem_used_mib_max"),
            "throttled": telemetry.get("throttled"),
        }
        started = datetime.fromtimestamp(t0 + iterations[0]["_start"], UTC)
        weights = {
            "kind": "random-init",
            "description": f"{PROVENANCE} (random weights, released architecture)",
            "path": None,
            "model_index_sha256": None,
            "variant": None,
        }
        results = {
            "schema": RESULTS_SCHEMA,
            "status": "ok",
            "scenario": scenario,
            "device": "cuda:0",
            "gpu": GPU_NAME,
            "weights": weights,
            "provenance": PROVENANCE,
            "started_at": started.isoformat(),
            "finished_at": datetime.fromtimestamp(t0 + iterations[-1]["_end"], UTC).isoformat(),
            "build_s": None,
            "points": [
                {
                    "point": 0,
                    "config": point.to_dict(),
                    "status": "ok",
                    "error": None,
                    "iterations_done": len(timed),
                    "summary": summary,
                }
            ],
            "largest_fitting": None,
            "telemetry": {
                "enabled": True,
                "available": True,
                "gpu": GPU_NAME,
                "note": None,
                "hz": 10.0,
                "sampler_cpu_s": None,
                "summary": summarize(window),
            },
            "notes": [
                f"{PROVENANCE}: one measured call per case (p50 = p90), PyTorch 2.11.0+cu130, diffusers 0.42.1",
                "UNet time estimated as steps x median step time; CLIP and VAE encode not timed apart (in 'other')",
                "stage marks reconstructed from the published timings, aligned on the telemetry",
            ]
            + (["the warm-up call ran SVD at 14 frames, 2 steps"] if "warmup" in calls else []),
        }
        config = {
            "request": dataclasses.asdict(request),
            "scenario": dataclasses.asdict(load_scenario(scenario)),
            "sweep_axes": {},
            "weights": weights,
            "points": [point.to_dict()],
            "provenance": PROVENANCE,
        }
        versions = {
            "svdops": None,
            "python": "3.12.3",
            "platform": None,
            "torch": "2.11.0+cu130",
            "torch_cuda": "13.0",
            "cudnn": 91900,
            "diffusers": "0.42.1",
            "transformers": "5.17.0",
            "accelerate": None,
            "driver": "580.159.04",
            "gpu": GPU_NAME,
        }
        with RunWriter(store, run_name(REFERENCE_HOST, scenario, started)) as writer:
            writer.write_json("facts.json", facts)
            # Checked against the run documents: a converted run must read like one the bench wrote.
            writer.write_json("config.json", Config.checked(config, "config").to_json())
            writer.write_json("results.json", Results.checked(results, "results").to_json())
            writer.write_json("versions.json", Versions.checked(versions, "versions").to_json())
            columns = [k for k in iterations[0] if not k.startswith("_")]
            writer.write_csv("iterations.csv", columns, ([it[k] for k in columns] for it in iterations))
            writer.write_csv("steps.csv", ("point", "iteration", "warmup", "step", "step_s", "t_end_unix"), [])
            writer.write_csv("telemetry.csv", TELEMETRY_COLUMNS, (s.as_row() for s in window))
            writer.write_csv("marks.csv", MARK_COLUMNS, marks)
            paths.append(writer.commit())
    return paths


def cpu_runs(store: Path) -> list[Path]:
    import torch

    from svdops.bench.environment import gather_local_facts
    from svdops.bench.runner import run_bench

    facts, note = gather_local_facts(use_nvml=False)
    renamed = (_renamed(facts, CPU_HOST) if facts is not None else None, note)

    def tiny(**options: Any) -> BenchRequest:
        base: dict[str, Any] = {
            "scenario": "tiny",
            "store": str(store),
            "iterations": 2,
            "warmup": 1,
            "telemetry": False,
        }
        return BenchRequest(**{**base, **options})

    def oom_at_chunk_4(pipe: Any, point: Any) -> None:
        def hook(module: Any, args: Any) -> None:
            if point.decode_chunk >= 4:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

        pipe.vae.decoder.register_forward_pre_hook(hook)

    calls = {"unet": 0}

    def ctrl_c_in_third_timed_iteration(pipe: Any, point: Any) -> None:
        def hook(module: Any, args: Any) -> None:
            calls["unet"] += 1
            if calls["unet"] == 1 + 3 + 3 + 1:  # warm-up (1 step), two timed (3 steps each), then one
                raise KeyboardInterrupt

        pipe.unet.register_forward_pre_hook(hook)

    paths = [run_bench(tiny(sweep=("decode_chunk=1,2",)), gather=lambda: renamed).path]
    oom = run_bench(
        tiny(sweep=("decode_chunk=2,4",), iterations=1), gather=lambda: renamed, before_point=oom_at_chunk_4
    ).path
    _add_note(oom, "example: the out-of-memory at decode_chunk 4 was injected by scripts/make_example_runs.py")
    stopped = run_bench(tiny(iterations=5), gather=lambda: renamed, before_point=ctrl_c_in_third_timed_iteration).path
    _add_note(stopped, "example: interrupted on purpose by scripts/make_example_runs.py")
    return [*paths, oom, stopped]


def _add_note(run: Path, note: str) -> None:
    results = Results.read(json.loads((run / "results.json").read_text()))
    results.notes.append(note)
    atomic_write_text(run / "results.json", json_text(results.to_json()))


def write_checks(folder: Path, with_cpu: bool) -> list[Path]:
    from svdops.bench.environment import gather_local_facts
    from svdops.judge.check import check_profile, run_check
    from svdops.judge.documents import check_document, json_text

    folder.mkdir(parents=True, exist_ok=True)
    hosts = [(REFERENCE_HOST, reference_facts())]
    if with_cpu:
        facts, _ = gather_local_facts(use_nvml=False)
        if facts is not None:
            hosts.append((CPU_HOST, _renamed(facts, CPU_HOST)))
    paths = []
    for host, facts in hosts:
        path = folder / f"{host}.json"
        path.write_text(json_text(check_document(run_check(facts, check_profile(None)))))
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-bench", action="store_true", help="skip the CPU runs (keep the ones already there)")
    args = parser.parse_args()
    store = EXAMPLES / "runs"
    if args.no_bench:
        for run in store.glob(f"*-{REFERENCE_HOST}-*"):
            shutil.rmtree(run)
    elif store.exists():
        shutil.rmtree(store)
    convert_anchors(store)
    if not args.no_bench:
        cpu_runs(store)
    write_checks(EXAMPLES / "checks", with_cpu=not args.no_bench)
    checks = sorted((EXAMPLES / "checks").glob("*.json"))  # with --no-bench, the CPU host's from before

    from svdops.report import Prices, ReportOptions, parse_host_prices, write_report

    options = ReportOptions(
        title="svdops report: example (H100 reference figures and CPU tiny runs; prices illustrative)",
        checks=tuple(checks),
        prices=Prices(hosts=parse_host_prices([f"{REFERENCE_HOST}=3.00", f"{CPU_HOST}=0.10"])),
    )
    result = write_report([str(store)], EXAMPLES / "report.html", options)
    size = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    print(
        f"{result.runs} runs from {result.hosts} hosts -> {result.output.relative_to(ROOT)}; "
        f"reports/examples is {size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
