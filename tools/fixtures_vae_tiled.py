#!/usr/bin/env python3
"""Reference fixtures for the tiled VAE: diffusers' AutoencoderKL after
enable_tiling() (tiled_decode, _tiled_encode) on the tiny SD 1.x VAE of
tests/fixtures, in float64 from its fp16 weights (as the untiled VAE
references of make_fixtures.py), with a tile of 16 pixels (8 latent pixels;
the tiny VAE's factor is 2), so that a small input has several tiles and
partial ones at the edges.

    python tools/fixtures_vae_tiled.py [--out tests/fixtures]

Writes vae_tiled_tiny_sd1_ref.safetensors:
    z<i>        F32 (1, 4, h, w)      latents
    image<i>    F32 (1, 3, 2h, 2w)    vae.decode(z<i>).sample, tiled where diffusers tiles
    x<i>        F32 (1, 3, H, W)      images in [-1, 1]
    moments<i>  F32 (1, 8, H/2, W/2)  vae._encode(x<i>): quant_conv's output (mean,
                                      log-variance before DiagonalGaussianDistribution's clamp)
    __metadata__  tile (pixels), decode_shapes, encode_shapes (JSON)

The shapes: decode 23x13 latent (rows of tiles 8, 8, 8, 5 high; columns 8,
7 and 1 wide: a partial tile beside a smaller one), 8x9 (only the width is
over a tile: diffusers then splits the height too), 8x8 (a tile: not
tiled); encode 46x26 pixels (tiles 16, 16, 16, 10 high, 16, 14, 2 wide) and
16x16 (not tiled).
"""
import argparse
import json
import os

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

TILE = 16
DECODE_SHAPES = [(23, 13), (8, 9), (8, 8)]
ENCODE_SHAPES = [(46, 26), (16, 16)]


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    args = ap.parse_args()
    vae = AutoencoderKL.from_pretrained(os.path.join(args.out, "tiny_sd1_diffusers"), subfolder="vae")
    vae = vae.to(torch.float64).eval()
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    vae.enable_tiling()
    vae.tile_sample_min_size = TILE
    vae.tile_latent_min_size = TILE // f
    g = torch.Generator().manual_seed(9)
    tensors = {}
    for i, (h, w) in enumerate(DECODE_SHAPES):
        z = torch.randn(1, vae.config.latent_channels, h, w, generator=g, dtype=torch.float64)
        tensors[f"z{i}"] = z
        tensors[f"image{i}"] = vae.decode(z).sample
    for i, (H, W) in enumerate(ENCODE_SHAPES):
        x = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64) * 2 - 1
        tensors[f"x{i}"] = x
        tensors[f"moments{i}"] = vae._encode(x)
    path = os.path.join(args.out, "vae_tiled_tiny_sd1_ref.safetensors")
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, path,
              metadata={"tile": str(TILE), "decode_shapes": json.dumps(DECODE_SHAPES),
                        "encode_shapes": json.dumps(ENCODE_SHAPES)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
