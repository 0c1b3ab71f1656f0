"""Where a bench runs and what it runs with: the device, dtype checks, out-of-memory detection, SIGTERM as
Ctrl-C, the host facts, the software versions, the GPU's NVML identity and its dense peak.

Shared by the single-GPU runner and the multi-GPU ranks (which used to import the runner's privates).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from svdops import __version__
from svdops.bench.config import BenchRequest, PointConfig, load_scenario
from svdops.bench.multi.topology import nvml_identity
from svdops.errors import BadInputError
from svdops.runs.documents import Versions
from svdops.telemetry import TelemetrySampler


def resolve_device(request: BenchRequest, torch: Any) -> str:
    scenario = load_scenario(request.scenario)
    has_cuda = bool(torch.cuda.is_available())
    hint = (
        f"run `svdops bench --scenario tiny` (seconds on a CPU), or `--scenario {scenario.name} --device cpu` "
        "(the full model on the CPU: very slow); `svdops check` says why no GPU is visible"
    )
    requested = request.device
    if requested is None:
        if has_cuda:
            requested = "cuda"
        elif scenario.needs_gpu:
            message = f"no CUDA GPU is visible to torch, and scenario {scenario.name!r} needs one"
            raise BadInputError(message, where="--scenario", hint=hint)
        else:
            return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not has_cuda:
            raise BadInputError(f"--device {requested}: no CUDA GPU is visible to torch", where="--device", hint=hint)
        index = int(requested.partition(":")[2] or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise BadInputError(
                f"--device {requested}: torch sees {torch.cuda.device_count()} GPU(s)",
                where="--device",
                hint="GPUs are numbered from 0 (CUDA_VISIBLE_DEVICES renumbers them)",
            )
        return f"cuda:{index}"
    raise BadInputError(f"unsupported device {requested!r}", where="--device", hint="use cuda, cuda:N or cpu")


def check_dtype(point: PointConfig) -> None:
    if point.device == "cpu" and point.dtype == "fp16":
        raise BadInputError(
            "fp16 on the CPU is slow and not supported by every layer of this pipeline",
            where="--dtype",
            hint="use --dtype fp32 (the CPU default) or --dtype bf16",
        )


def is_oom(exc: BaseException, torch: Any) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A preempted cloud instance gets SIGTERM: treat it like Ctrl-C so finished work is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def gather_local_facts(use_nvml: bool) -> tuple[Any, str | None]:
    """(HostFacts or None, note). A benchmark never fails because the facts could not be gathered."""
    from svdops.host.probe.gather import gather_facts
    from svdops.host.shell import LocalShell

    try:
        # This interpreter's packages are the ones the benchmark runs with, not python3's on PATH.
        return gather_facts(LocalShell(), python=sys.executable, use_nvml=use_nvml), None
    except Exception as exc:  # a probe bug must not cost a benchmark run
        return None, f"host facts not recorded: gathering failed: {type(exc).__name__}: {exc}"


def dense_peak_tflops(gpu_name: str | None, dtype: str) -> tuple[float | None, str]:
    """The GPU's dense tensor-core peak for this dtype (TFLOP/s) and where the figure comes from.

    No peak (so no MFU) for the CPU, for a GPU the knowledge base does not list, or for fp32,
    whose tensor-core rate depends on TF32 settings rather than on the card alone.
    """
    if not gpu_name:
        return None, "no GPU"
    from svdops.judge.knowledge import find_gpu_spec

    spec = find_gpu_spec(gpu_name)
    if spec is None:
        return None, f"{gpu_name} is not in svdops/judge/knowledge/gpus.yaml"
    peak = {"fp16": spec.fp16_tflops, "bf16": spec.bf16_tflops}.get(dtype)
    if not peak:
        return None, f"no dense {dtype} tensor peak for {spec.name} in svdops/judge/knowledge/gpus.yaml"
    return float(peak), f"svdops/judge/knowledge/gpus.yaml: {spec.name} {dtype} dense ({spec.source})"


def collect_versions(torch: Any, sampler: TelemetrySampler, facts: Any, device: str) -> Versions:
    import diffusers
    import transformers

    try:
        import accelerate

        accelerate_version: str | None = accelerate.__version__
    except ImportError:
        accelerate_version = None
    driver = sampler.driver_version
    if driver is None and facts is not None and facts.driver.userspace_version is not None:
        driver = str(facts.driver.userspace_version)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return Versions(
        svdops=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        torch=str(torch.__version__),
        torch_cuda=torch.version.cuda,
        cudnn=cudnn,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        accelerate=accelerate_version,
        driver=driver,
        gpu=torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
    )


def module_dtypes(pipe: Any) -> dict[str, dict[str, Any]]:
    """The dtype of every parameter and buffer of every module of the pipeline, by component and name."""
    return {name: {key: tensor.dtype for key, tensor in _tensors(module)} for name, module in _pipeline_modules(pipe)}


def restore_dtypes(pipe: Any, saved: dict[str, dict[str, Any]]) -> list[str]:
    """Cast back every tensor whose dtype changed since `module_dtypes`; what changed ("vae float32 -> float16").

    A call that fails halfway leaves what it cast: diffusers' SVD pipeline moves an fp16 VAE with
    `force_upcast` to fp32 for the encode and back after it, so an OOM in the encode leaves it in fp32,
    and the next call, seeing fp32, neither upcasts nor casts back (diffusers 0.42 then fails the
    decode on fp16 latents; older releases decoded in fp32, slower and larger, silently).
    """
    changed: list[str] = []
    for name, module in _pipeline_modules(pipe):
        before = saved.get(name, {})
        moves: set[tuple[str, str]] = set()
        for key, tensor in _tensors(module):
            dtype = before.get(key)
            if dtype is not None and tensor.dtype != dtype:
                moves.add((_dtype_name(tensor.dtype), _dtype_name(dtype)))
                tensor.data = tensor.data.to(dtype)
        changed += [f"{name} {old} -> {new}" for old, new in sorted(moves)]
    return changed


def _pipeline_modules(pipe: Any) -> list[tuple[str, Any]]:
    components = getattr(pipe, "components", None) or {}
    return [(name, module) for name, module in components.items() if hasattr(module, "named_parameters")]


def _tensors(module: Any) -> list[tuple[str, Any]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def nvml_device_id(device: str, torch: Any) -> int | str:
    """The NVML identity of a CUDA device: its UUID, since CUDA_VISIBLE_DEVICES renumbers indices."""
    if not device.startswith("cuda"):
        return 0
    index = int(device.partition(":")[2] or 0)
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return index
    visible = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    entry = visible[index] if index < len(visible) else None
    # a MIG device is `MIG-<uuid>` to NVML: under `GPU-` every telemetry sample was lost
    return nvml_identity(entry, str(uuid), getattr(props, "name", None), index)
