"""What `--price` means everywhere: US dollars per GPU-hour for a GPU model of the table.

`svdops plan` prices the cards it predicts with it and `svdops report` prices measured runs with it
(a run's hour costs its GPU's price times the GPUs it used). A machine you rent or own as a whole is
priced by host instead, with the report's own `--host-price`: a different flag for a different meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from svdops.errors import BadInputError
from svdops.judge import knowledge as kb

PRICE_METAVAR = "GPU=USD_PER_GPU_HOUR"


def parse_gpu_prices(items: Iterable[str]) -> dict[str, float]:
    """`('L40S=0.99', 'NVIDIA H100 80GB HBM3=2.1')` -> {'L40S': 0.99, 'H100 SXM': 2.1}: table names, so an
    nvidia-smi name and the table's own name price the same card."""
    prices: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        spec = kb.find_gpu_spec(name.strip()) if sep else None
        if spec is None:
            raise BadInputError(f"cannot read price {item!r}", where="--price",
                                hint=f"use {PRICE_METAVAR} with a GPU from the table, e.g. --price 'L40S=0.99'"
                                     " (`svdops plan` lists them); price a whole host with --host-price")
        try:
            price = float(value)
        except ValueError as exc:
            raise BadInputError(f"{item!r}: {value!r} is not a number", where="--price") from exc
        if not price >= 0 or price == float("inf"):
            raise BadInputError(f"{item!r}: a price must be a finite number >= 0", where="--price")
        prices[spec.name] = price
    return prices


def gpu_price(gpu_name: str | None, prices: Mapping[str, float]) -> float | None:
    """The price of one hour of this GPU (any name the table knows it by), or None when it has none."""
    if not gpu_name or not prices:
        return None
    spec = kb.find_gpu_spec(gpu_name)
    return prices.get(spec.name) if spec is not None else None
