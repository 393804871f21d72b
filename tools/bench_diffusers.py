#!/usr/bin/env python3
"""The diffusers column of `make gpu-check`: the same SD 1.5 shapes as sdc's
CUDA benchmark (bench/bench_cuda.c), on the same GPU, in the same run.

diffusers' UNet2DConditionModel and AutoencoderKL with SD 1.5's
configuration (tools/sdc_layout.py) and random weights (speed does not
depend on the values), fp16, PyTorch's SDPA attention (diffusers' default
AttnProcessor2_0). Timed with CUDA events after a warm-up:

  U-Net step at 512x512 with guidance: batch 2, 64x64 latents, 77 tokens
  VAE decode at 512x512: fp16, and fp32 (what diffusers' SD pipeline does:
    the SD VAE's config asks for force_upcast)
  peak device memory of the U-Net step (torch.cuda.max_memory_allocated)

Prints one line per figure, `diffusers <what>: <value>`, which
tools/gpu_check.sh copies into its results table.

  python3 tools/bench_diffusers.py [--steps N]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdc_layout  # noqa: E402


def timed(fn, n, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n  # ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20, help="timed U-Net steps")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("diffusers: SKIP: no CUDA device")
        return 0
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name(0)}")

    t0 = time.time()
    unet = UNet2DConditionModel(**sdc_layout.UNET_CONFIGS[("sd1", "full")]).to(dev, torch.float16).eval()
    x = torch.randn(2, 4, 64, 64, device=dev, dtype=torch.float16)
    ctx = torch.randn(2, 77, 768, device=dev, dtype=torch.float16)
    t = torch.tensor([500.0, 500.0], device=dev)
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        ms = timed(lambda: unet(x, t, encoder_hidden_states=ctx).sample, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**20
    print(f"diffusers U-Net step, CFG batch 2, 512x512 (fp16, SDPA): {ms:.2f} ms ({1000.0 / ms:.1f} it/s)")
    print(f"diffusers peak device memory, U-Net step: {peak:.0f} MiB")
    del unet
    torch.cuda.empty_cache()

    vae = AutoencoderKL(**sdc_layout.VAE_CONFIGS[("sd1", "full")]).to(dev).eval()
    z = torch.randn(1, 4, 64, 64, device=dev)
    with torch.inference_mode():
        ms32 = timed(lambda: vae.decode(z).sample, 5, warm=1)
        vae = vae.to(torch.float16)
        z16 = z.to(torch.float16)
        ms16 = timed(lambda: vae.decode(z16).sample, 5, warm=1)
    print(f"diffusers VAE decode 512x512: {ms32:.2f} ms fp32 (its SD default), {ms16:.2f} ms fp16")
    print(f"diffusers: done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
