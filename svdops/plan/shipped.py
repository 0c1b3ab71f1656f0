"""The stage counts shipped in svdops/data/plan_anchors.json, and how to regenerate them.

Counting the SVD-XT UNet takes seconds and needs torch; `svdops plan` for the shipped scenarios
needs neither, because the counts at their shapes (and at every decode chunk the fit search may
try) ship with the package. A test recounts them and compares, so they cannot drift from the
counter. Regenerate after changing a model config or the counter:

    python -m svdops.plan.shipped svdops/data/plan_anchors.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from svdops.plan.counting import count_key, count_stage

# SVD-XT / SVD at 576x1024: latents 72x128, guidance on (UNet batch 2), one video per call.
# Decode chunks 1..8 cover every chunk and remainder the fit search tries for 14 and 25 frames.
SHIPPED_SHAPES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("svd-xt", "unet", (2, 25, 72, 128)),
    ("svd-xt", "unet", (2, 14, 72, 128)),
    ("svd-xt", "unet-ffchunk", (2, 25, 72, 128)),
    ("svd-xt", "unet-ffchunk", (2, 14, 72, 128)),
    *(("svd-xt", "decode", (n, 72, 128)) for n in range(1, 9)),
    ("svd-xt", "encode", (1, 576, 1024)),
    ("svd-xt", "clip", (1, 224, 224)),
)


def recount() -> dict[str, dict[str, object]]:
    return {count_key(m, s, shape): count_stage(m, s, shape).to_json() for m, s, shape in SHIPPED_SHAPES}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m svdops.plan.shipped svdops/data/plan_anchors.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    document = json.loads(path.read_text(encoding="utf-8"))
    document["counts"] = recount()
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
