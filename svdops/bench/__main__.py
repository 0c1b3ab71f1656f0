"""`python -m svdops.bench ...`: the bench command without the rest of the CLI (used by benchmarks/gpu_bench.sh)."""

from svdops.cli.bench import bench

if __name__ == "__main__":
    bench(prog_name="python -m svdops.bench")
