"""`svdops plan`: predict SVD throughput, VRAM, energy and cost on GPUs you do not have.

    counting    FLOPs, bytes (by op class) and live memory per stage on the meta device (torch; shipped counts spare it)
    clocks      the clock each card holds under its power cap (plan_gpus.yaml), and which wheels still run it
    shipped     the counts shipped in svdops/data/plan_anchors.json and how to regenerate them
    costmodel   workloads, devices, per-op roofline floors, memory parts
    calibrate   measured points (anchors, runs) -> efficiency and memory factors, by closeness
    predict     per-card predictions with bands, fit search, boxes, cost, energy; predict_for_runs
    public      the public measurements of svdops/data/plan_validation.yaml, with settings and sources
    validate    leave-one-device-out over anchors, public rows and runs; the bands plan prints

For the HTML report: `predict_for_runs(runs)` returns one dict per measured point with the
predicted value, band and error beside each measured metric (see its docstring).
"""

from __future__ import annotations

from svdops.plan.predict import predict_for_runs

__all__ = ["predict_for_runs"]
