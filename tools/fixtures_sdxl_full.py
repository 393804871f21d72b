#!/usr/bin/env python3
"""A full-size SDXL-shaped checkpoint with random weights, for make
test-full (detection, one U-Net evaluation's shape) and make bench (the
SDXL CPU section):

    python tools/fixtures_sdxl_full.py --out build/fixtures-full

Writes full_sdxl.safetensors: SDXL base 1.0's shapes (tools/sdc_layout.py's
"sdxl" family, "full" size) in Stability's single-file layout, F16, about
6.9 GB, and nothing in __metadata__ but "format": like a real
sd_xl_base_1.0.safetensors, everything sdc needs must come from the tensors.

Memory: the four networks are built directly in float16 (about 7 GB) and
the file is written tensor by tensor (safetensors' save_file would first
copy every tensor into one more buffer), so the peak stays near 8 GB.
"""
import argparse
import json
import os
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdc_layout  # noqa: E402

SEED = 2003
DTYPES = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64", torch.int32: "I32"}


def build_half():
    """sdc_layout.build_models("sdxl", "full"), built in float16 from the
    start (the same configurations and the same kind of random weights)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        with torch.no_grad():
            return sdc_layout.build_models("sdxl", "full", SEED)
    finally:
        torch.set_default_dtype(default)


def write_streaming(path, tensors):
    """A safetensors file written one tensor at a time (names sorted, as
    save_file orders them)."""
    names = sorted(tensors)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for n in names:
        t = tensors[n]
        size = t.numel() * t.element_size()
        header[n] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + size]}
        off += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for n in names:
            t = tensors[n].detach().contiguous()
            f.write(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    os.replace(tmp, path)
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    unet, vae, te1, te2 = build_half()
    print(f"built the SDXL-shaped networks in float16 in {time.time() - t0:.0f} s")
    sd = sdc_layout.original_state_dict(unet, vae, te1, "sdxl", te2)
    for k, v in sd.items():
        if v.is_floating_point() and v.dtype != torch.float16:
            sd[k] = v.to(torch.float16)
    path = os.path.join(args.out, "full_sdxl.safetensors")
    n = write_streaming(path, sd)
    params = sum(p.numel() for m in (unet, vae, te1, te2) for p in m.parameters())
    print(f"wrote {path}: {len(sd)} tensors, {n / 2**30:.2f} GiB, {params / 1e9:.2f} G parameters, "
          f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
