#!/usr/bin/env python3
"""The diffusers column of make bench's SDXL section (make bench-sdxl): the
figures bench/bench_sdxl.c gives for sdc, on the same CPU in the same run.

diffusers' UNet2DConditionModel and AutoencoderKL with SDXL base 1.0's
configuration (tools/sdc_layout.py) and their own random initialisation
(speed does not depend on the values), float32 on the CPU (what diffusers
runs there), PyTorch's SDPA attention (diffusers' default), all cores:

  U-Net step with guidance: batch 2, SIZE/8 latents, 77 tokens of 2048,
    pooled text and time ids, after a warm-up call at 256x256
  VAE decode at SIZE x SIZE (float32: SDXL's VAE asks for force_upcast)
  peak RSS of the process

Prints `diffusers <what>: <value>` lines.

  python3 tools/bench_diffusers_sdxl.py [--size PX]
"""
import argparse
import os
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdc_layout  # noqa: E402


@torch.no_grad()
def unet_step(unet, px):
    lat = px // 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, lat, lat, generator=g)
    ctx = torch.zeros(2, 77, 2048)
    added = {"text_embeds": torch.zeros(2, 1280),
             "time_ids": torch.tensor([[px, px, 0, 0, px, px]] * 2, dtype=torch.float32)}
    t0 = time.perf_counter()
    unet(x, 500, encoder_hidden_states=ctx, added_cond_kwargs=added)
    return time.perf_counter() - t0


@torch.no_grad()
def vae_decode(vae, px):
    z = torch.zeros(1, 4, px // 8, px // 8)
    t0 = time.perf_counter()
    vae.decode(z)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    torch.set_num_threads(os.cpu_count() or 1)
    ucfg, vcfg, _, _ = sdc_layout.model_configs("sdxl", "full")
    t0 = time.perf_counter()
    unet = UNet2DConditionModel(**ucfg).eval()
    vae = AutoencoderKL(**vcfg).eval()
    print(f"diffusers build (random init, fp32): {time.perf_counter() - t0:.1f} s")
    print(f"diffusers torch {torch.__version__}, {torch.get_num_threads()} threads")
    warm = unet_step(unet, 256)
    step = unet_step(unet, args.size)
    print(f"diffusers U-Net step, CFG batch 2, {args.size}x{args.size}: {step:.1f} s (warm-up at 256x256 {warm:.1f} s)")
    print(f"diffusers VAE decode {args.size}x{args.size}: {vae_decode(vae, args.size):.1f} s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"diffusers peak RSS (whole run): {rss:.2f} GiB")


if __name__ == "__main__":
    main()
