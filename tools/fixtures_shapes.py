#!/usr/bin/env python3
"""Fixtures for the shipped model's world (tools/shapes_dataset.py):

  tests/fixtures/shapes/eval_prompts.jsonl  the held-out prompts make eval
      renders, one JSON object per line with the truth (shape, colour, bg,
      position, size);
  tests/fixtures/shapes/truth.rgb.gz + truth.jsonl  dataset renders of
      single shapes on plain backgrounds (64x64x3 uint8 each, concatenated,
      gzip) with their attributes, on which the C analyser must be right.

    tools/.venv/bin/python tools/fixtures_shapes.py
"""
import gzip
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_dataset as ds  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "shapes")
N_TRUTH = 400


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "eval_prompts.jsonl"), "w") as f:
        for p in ds.eval_prompts():
            f.write(json.dumps(p) + "\n")
    rng = np.random.default_rng(1234)
    images, rows = [], []
    while len(rows) < N_TRUTH:
        s = ds.sample(rng, allow_held_out=True, two_shapes_p=0.0, gradient_p=0.0)
        shape, colour, pos, size = s["objects"][0]
        images.append(ds.render(s))
        rows.append({"shape": shape, "colour": colour, "bg": s["bg"], "position": pos, "size": size})
    with gzip.GzipFile(os.path.join(OUT, "truth.rgb.gz"), "wb", mtime=0) as f:
        f.write(np.stack(images).tobytes())
    with open(os.path.join(OUT, "truth.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{len(ds.eval_prompts())} eval prompts, {N_TRUTH} truth renders -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
