"""The run documents: round trips of every kind, the shipped example runs, and hostile documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svdops.errors import BadInputError
from svdops.files import atomic_path, atomic_write_json, atomic_write_text, json_text
from svdops.runs.documents import (
    RESULTS_SCHEMA,
    Baseline,
    Config,
    Failure,
    LargestFitting,
    NcclRow,
    OptimizeRecord,
    PointDoc,
    PointSummary,
    Results,
    ScalingEntry,
    SchemaError,
    Stat,
    TelemetryRecord,
    TelemetrySummary,
    Throughput,
    Versions,
    WeightsRecord,
)
from svdops.runs.store import load_run

EXAMPLE_RUNS = Path(__file__).resolve().parents[2] / "reports" / "examples" / "runs"


def _stat(median: float) -> Stat:
    return Stat(n=3, median=median, p90=median * 1.1, min=median * 0.9, max=median * 1.2)


def _telemetry() -> TelemetrySummary:
    return TelemetrySummary(
        samples=183, duration_s=19.1, temp_c_max=62, power_w_median=680.4, power_w_max=697.3, power_limit_w=700.0,
        sm_mhz_median=1950, sm_mhz_min=1710, sm_mhz_max=1980, mem_mhz_median=2619, util_gpu_pct_median=100,
        mem_used_mib_max=32704.8, energy_j=12292.2, clocks_event_reasons={"sw_power_cap": 0.9}, throttled=False,
        power_capped=True,
    )  # fmt: skip


def single_results() -> Results:
    summary = PointSummary(
        iterations=3, warmup_iterations=1, unet_tflop_per_step=159.9, clip_s=_stat(0.01), vae_encode_s=_stat(0.05),
        unet_s=_stat(16.6), decode_s=_stat(1.7), e2e_s=_stat(19.2), unet_step_s=_stat(0.66),
        first_step_s=_stat(0.7), videos_per_hour=187.7, frames_per_s=1.3, unet_tflops=240.9, peak_tflops=989.4,
        peak_tflops_source="gpus.yaml", mfu=0.24, peak_allocated_gib=15.06, peak_reserved_gib=30.8,
        nan_frac_max=0.0, black_frames=0, output_ok=True, energy_j_per_video=12292.2, telemetry=_telemetry(),
        nvml_mem_used_mib_max=32704.8, throttled=False, compile_s=41.5,
    )  # fmt: skip
    config = {"frames": 25, "height": 576, "width": 1024, "steps": 25, "decode_chunk": 8, "sweep": {}}
    return Results(
        status="partial", scenario="svd-xt-25f", device="cuda:0", gpu="NVIDIA H100 80GB HBM3",
        weights=WeightsRecord(kind="local", description="svd-xt", path="/w", model_index_sha256="ab" * 32),
        started_at="2026-11-26T11:28:47+00:00", finished_at="2026-11-26T11:29:10+00:00", build_s=12.5,
        optimize=OptimizeRecord(level="safe", compile_mode="max-autotune", arch="sm90",
                                levers=[{"name": "fused-qkv", "status": "applied"}], applied=["fused-qkv"],
                                compile_cache={"dir": "/c", "state": "warm", "fxgraph_cache_hit": 4},
                                quality_gate={"checked": False, "why": "safe"}, setup_s=3.0),
        points=[
            PointDoc(point=0, config=config, status="ok", iterations_done=3, summary=summary),
            PointDoc(point=1, config={**config, "decode_chunk": 14}, status="oom", error="CUDA out of memory",
                     iterations_done=0, summary=PointSummary(iterations=0, warmup_iterations=0)),
        ],
        largest_fitting=LargestFitting(point=0, config=config),
        telemetry=TelemetryRecord(enabled=True, available=True, gpu="NVIDIA H100 80GB HBM3", hz=10.0,
                                  sampler_cpu_s=0.02, summary=_telemetry()),
        notes=["a note"],
    )  # fmt: skip


def multi_results() -> Results:
    return Results(
        kind="multi", status="failed", scenario="tiny", workload="infer-dp", device="cuda", backend="nccl",
        gpu="NVIDIA H100 80GB HBM3", world_size=2, nnodes=1, nproc_per_node=2, wall_s=30.5,
        scaling=ScalingEntry(
            workload="infer-dp", world_size=2, per_rank=[{"rank": 0, "videos": 2}],
            baseline=Baseline(source="rank 0 alone", e2e_s=10.0, videos_per_hour=360.0),
            throughput=Throughput(value=600.0, unit="videos/hour", videos=4, wall_s=24.0), speedup=1.67,
            efficiency=0.83,
        ),
        nccl=[NcclRow(size_bytes=2**20, iterations=5, time_s=1e-4, algbw_gbps=10.5, busbw_gbps=10.5)],
        topology={"link_type": "nvlink", "expected_busbw_gbps": 370.0},
        ranks=[{"rank": 0, "status": "ok"}, {"rank": 1, "status": "failed"}],
        failure=Failure(rank=1, ranks=[1], how="exception", error="ValueError: bad shape"),
        telemetry=TelemetryRecord(enabled=True, hz=10.0, per_rank={"0": _telemetry(), "1": TelemetrySummary(0)}),
    )  # fmt: skip


@pytest.mark.parametrize("make", [single_results, multi_results], ids=["single", "multi"])
def test_results_round_trip_through_strict_json(make):
    doc = make()
    text = json.dumps(doc.to_json(), allow_nan=False)
    again = Results.read(json.loads(text))
    assert again == doc and again.read_notes == []
    assert again.to_json() == doc.to_json()


def test_config_and_versions_round_trip():
    config = Config(request={"scenario": "tiny", "sweep": ["decode_chunk=1,2"]}, scenario={"name": "tiny"},
                    sweep_axes={"decode_chunk": [1, 2]}, weights=WeightsRecord(kind="random-init"),
                    points=[{"frames": 4}], optimize=OptimizeRecord(level="none"))  # fmt: skip
    multi = Config(request={"bench": {"scenario": "tiny"}}, plan={"gpus": [0, 1]}, command=["torchrun"], point={})
    versions = Versions(svdops="0.1.0", python="3.11.7", torch="2.13.0", cudnn=91900, diffusers="0.42.1", nccl="2.27")
    for doc in (config, multi):
        again = Config.read(json.loads(json.dumps(doc.to_json())))
        assert again == doc and again.read_notes == []
    assert Config.read(config.to_json()).scenario_name == "tiny" and multi.scenario_name == "tiny"
    again = Versions.read(json.loads(json.dumps(versions.to_json())))
    assert again == versions and again.cudnn == 91900 and again.read_notes == []


def test_keys_this_svdops_does_not_know_survive_a_round_trip():
    raw = {**single_results().to_json(), "from_the_future": {"x": 1}}
    raw["points"][0]["summary"]["new_metric"] = 3.5
    doc = Results.read(raw)
    assert doc.extra == {"from_the_future": {"x": 1}} and doc.points[0].summary.extra == {"new_metric": 3.5}
    assert doc.to_json() == raw and doc.read_notes == []


@pytest.mark.parametrize("run", sorted(EXAMPLE_RUNS.iterdir()), ids=lambda p: p.name)
def test_the_shipped_example_runs_read_whole(run):
    loaded = load_run(run)
    assert loaded.read_notes == []
    raw = json.loads((run / "results.json").read_text())
    assert loaded.results.status == raw["status"] and len(loaded.results.points) == len(raw["points"])
    # Every figure the file holds is in the document written back: nothing is lost on the way.
    written = dict(_leaves(loaded.results.to_json()))
    assert {k: v for k, v in _leaves(raw) if v is not None} == {
        k: written[k] for k, v in _leaves(raw) if v is not None
    }
    assert loaded.results.points[0].summary.e2e_s.median == raw["points"][0]["summary"]["e2e_s"]["median"]
    assert loaded.results.is_reference == ("reference" in run.name)
    assert loaded.versions.python == json.loads((run / "versions.json").read_text())["python"]


def _leaves(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def test_wrong_types_read_as_none_with_a_note_naming_the_key():
    raw = single_results().to_json()
    raw["gpu"] = 7
    raw["points"][0]["summary"]["e2e_s"]["median"] = "fast"
    raw["points"][0]["summary"]["videos_per_hour"] = True  # a boolean is not a number
    raw["points"][0]["summary"]["telemetry"] = [1, 2]
    raw["points"].append("not a point")
    raw["notes"] = ["ok", {"no": "text"}]
    raw["telemetry"]["summary"]["clocks_event_reasons"] = {"hw_slowdown": "often"}
    raw["telemetry"]["summary"]["power_w_max"] = float("nan")  # Python's json reads NaN; the store writes null
    doc = Results.read(raw)
    assert doc.telemetry.summary.power_w_max is None
    assert doc.gpu is None and doc.points[0].summary.e2e_s.median is None
    assert doc.points[0].summary.videos_per_hour is None and doc.points[0].summary.telemetry is None
    assert len(doc.points) == 2 and doc.notes == ["ok"]
    assert doc.telemetry.summary.clocks_event_reasons == {}
    assert doc.points[0].summary.e2e_s.p90 == raw["points"][0]["summary"]["e2e_s"]["p90"]  # the rest stays
    assert doc.read_notes == [
        "results.json.gpu: expected a string, got a number 7",
        "results.json.points[0].summary.e2e_s.median: expected a number, got a string 'fast'",
        "results.json.points[0].summary.videos_per_hour: expected a number, got a boolean True",
        "results.json.points[0].summary.telemetry: expected an object, got a list",
        "results.json.points[2]: expected an object, got a string 'not a point'",
        "results.json.telemetry.summary.clocks_event_reasons.hw_slowdown: expected a number, got a string 'often'",
        "results.json.notes[1]: expected a string, got an object",
    ]


def test_missing_keys_read_as_none_and_the_ones_readers_need_are_noted():
    doc = Results.read({"points": [{"config": {"frames": 4}}]})
    assert doc.status is None and doc.points[0].point is None and doc.points[0].summary == PointSummary()
    assert doc.read_notes == [
        f"results.json: no schema; read as {RESULTS_SCHEMA}",
        "results.json.status: missing",
        "results.json.points[0].point: missing",
        "results.json.points[0].status: missing",
    ]
    assert Results.read([1, 2]).read_notes == ["results.json: expected an object, got a list"]
    assert Versions.read(None) == Versions() and Config.read("x").read_notes == [
        "config.json: expected an object, got a string 'x'"
    ]


def test_a_schema_of_another_major_version_is_a_clear_error():
    with pytest.raises(SchemaError) as raised:
        Results.read({"schema": "svdops.bench.results/2", "status": "ok"})
    assert "svdops.bench.results/2" in str(raised.value) and raised.value.where == "results.json"
    assert "upgrade svdops" in raised.value.hint
    with pytest.raises(SchemaError, match="not a bench results document"):
        Results.read({"schema": "svdops.check/1"})
    minor = Results.read({"schema": "svdops.bench.results/1.4", "status": "ok"})  # a minor version only adds
    assert minor.status == "ok" and minor.read_notes == []
    odd = Results.read({"schema": ["svdops"], "status": "ok"})
    assert odd.status == "ok" and "not a schema name" in odd.read_notes[0]


def test_absurd_nesting_is_data_not_a_crash(tmp_path):
    deep: object = "bottom"
    for _ in range(5000):
        deep = {"x": deep}
    doc = Results.read({"status": "ok", "topology": deep, "points": [{"point": 0, "status": "ok", "config": deep}]})
    # Free-form parts are kept as they are, neither walked nor copied below their first level.
    assert doc.topology["x"] is deep["x"] and doc.points[0].config["x"] is deep["x"]
    assert doc.to_json()["topology"]["x"] is deep["x"]
    # A file nested past what the JSON parser recurses into: the run is unreadable, said so plainly.
    run = tmp_path / "20261126T101500Z-gpu01-tiny"
    run.mkdir()
    (run / "results.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BadInputError, match="nested too deeply"):
        load_run(run)


def test_a_run_of_a_newer_svdops_is_skipped_by_the_report_with_the_reason(tmp_path):
    from svdops.report.selection import find_runs

    for minute, schema in (("15", RESULTS_SCHEMA), ("16", "svdops.bench.results/2")):
        name = f"20261126T10{minute}00Z-gpu01-tiny"
        (tmp_path / name).mkdir()
        atomic_write_json(tmp_path / name / "results.json", {"schema": schema, "status": "ok", "points": []})
    selection = find_runs([str(tmp_path)])
    assert [r.name for r in selection.runs] == ["20261126T101500Z-gpu01-tiny"]
    assert len(selection.skipped) == 1 and "svdops.bench.results/2" in selection.skipped[0]


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["status", "points", "summary", "e2e_s", "median", "scaling", "throughput", "nccl",
                             "telemetry", "per_rank", "weights", "gpus", "config", "x"]),
            inner, max_size=5),
        max_leaves=30,
    )
)
def test_any_json_value_reads_without_raising(value):
    for data in (value, {"schema": RESULTS_SCHEMA, "points": [value], "scaling": value, "telemetry": value}):
        doc = Results.read(data)
        json.loads(json_text(doc.to_json()))  # and what it reads, the store's writer writes back
    Config.read(value)
    Versions.read(value)


def test_older_forms_of_scaling_and_weights_read_as_today():
    doc = Results.read({
        "schema": RESULTS_SCHEMA, "status": "ok", "weights": "converted from anchors",
        "scaling": [{"gpus": 4, "videos_per_hour": 900.0, "efficiency": 0.9}, {"gpus": 8}],
    })  # fmt: skip
    assert doc.weights.description == "converted from anchors" and doc.kind == "multi"
    assert doc.scaling.world_size == 4 and doc.scaling.throughput == Throughput(value=900.0, unit="videos/hour")
    assert doc.read_notes == ["results.json.scaling: 2 entries; the first is read"]


def test_plan_finds_the_efficiency_a_multi_gpu_run_measured(tmp_path):
    from svdops.plan.predict import measured_scaling
    from svdops.runs.store import Run

    run = Run(tmp_path / "r", None, Config(), multi_results())
    assert measured_scaling([run], 2) == (0.83, f"measured on 2 GPUs in {run.name}")
    assert measured_scaling([run], 4) is None


def test_atomic_writes_replace_whole_or_leave_the_old_file(tmp_path):
    target = tmp_path / "doc.json"
    atomic_write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": None}
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert json.loads(target.read_text()) == {"a": None} and os.listdir(tmp_path) == ["doc.json"]
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["doc.json"]
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "no-such-folder" / "x", "y")


# --- bounded reads of run files -------------------------------------------------------------------------


def test_read_file_bytes_reads_only_regular_files_within_the_cap(tmp_path):
    from svdops.runs.documents import read_file_bytes

    plain = tmp_path / "plain.json"
    plain.write_bytes(b"x" * 100)
    assert read_file_bytes(plain) == b"x" * 100
    assert read_file_bytes(tmp_path / "absent.json") is None
    with pytest.raises(BadInputError, match="100 bytes: larger than the 0 MiB"):
        read_file_bytes(plain, max_bytes=99)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(BadInputError, match="a FIFO, not a file"):
        read_file_bytes(tmp_path / "fifo")  # opened without blocking, judged on what was opened
    with pytest.raises(BadInputError, match="a folder, not a file"):
        read_file_bytes(tmp_path)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(BadInputError, match="a symbolic link"):
        read_file_bytes(tmp_path / "zero")
    with pytest.raises(BadInputError, match="a device, not a file"):
        read_file_bytes(tmp_path / "zero", follow_symlinks=True)
    (tmp_path / "link").symlink_to(plain)
    assert read_file_bytes(tmp_path / "link", follow_symlinks=True) == b"x" * 100
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(BadInputError, match="a symbolic link to nothing"):
        read_file_bytes(tmp_path / "dangling", follow_symlinks=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xef\xbb\xbf{\"a\": 1}", None),
        (b'{"a": 1, "a": 2}', None),
        (b"[NaN, Infinity]", None),
        (b"caf\xe9", r"not UTF-8 text \(byte 0xe9 at offset 3\)"),
        (b"[" * 100_000, "nested too deeply"),
        (b"1" + b"0" * 5000, r"Exceeds the limit \(4300 digits\)"),
        (b'{"a": ', "not JSON: Expecting value at line 1 column 7"),
    ],
    ids=["bom", "duplicate-key", "nan", "latin-1", "nested", "huge-int", "truncated"],
)
def test_read_json_file_says_what_a_file_is_instead_of_json(tmp_path, content, message):
    from svdops.runs.documents import read_json_file

    path = tmp_path / "doc.json"
    path.write_bytes(content)
    if message is None:
        assert read_json_file(path) is not None
    else:
        with pytest.raises(BadInputError, match=message) as caught:
            read_json_file(path)
        assert caught.value.where == str(path)


def test_a_float_field_holding_an_integer_too_large_for_a_float_is_a_note():
    notes: list[str] = []
    summary = PointSummary.from_json({"videos_per_hour": 10**400, "unet_tflops": 10**300}, "s", notes)
    assert summary.videos_per_hour is None and summary.unet_tflops == 10**300
    assert notes == ["s.videos_per_hour: 401-digit integer: too large to be a measurement"]
