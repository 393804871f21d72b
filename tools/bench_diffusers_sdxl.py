#!/usr/bin/env python3
"""The diffusers column of make bench's SDXL section (make bench-sdxl): the
figures bench/bench_sdxl.c gives for sdc, on the same CPU in the same run
(or, --device cuda, on the same GPU: the U-Net in fp16, the VAE in fp32 as
SDXL's force_upcast asks, times by CUDA events after a warm-up, and the
U-Net step's peak device memory).

diffusers' UNet2DConditionModel and AutoencoderKL with SDXL base 1.0's
configuration (tools/sdc_layout.py) and their own random initialisation
(speed does not depend on the values), float32 on the CPU (what diffusers
runs there), PyTorch's SDPA attention (diffusers' default), all cores:

  U-Net step with guidance: batch 2, SIZE/8 latents, 77 tokens of 2048,
    pooled text and time ids, after a warm-up call at 256x256
  VAE decode at SIZE x SIZE (float32: SDXL's VAE asks for force_upcast)
  peak RSS of the process

Prints `diffusers <what>: <value>` lines.

  python3 tools/bench_diffusers_sdxl.py [--size PX] [--device cpu|cuda]
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


def timed(fn, dev):
    if dev == "cpu":
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    fn()  # warm-up (kernel selection)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0


@torch.no_grad()
def unet_step(unet, px, dev, dtype):
    lat = px // 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, lat, lat, generator=g).to(dev, dtype)
    ctx = torch.zeros(2, 77, 2048, device=dev, dtype=dtype)
    added = {"text_embeds": torch.zeros(2, 1280, device=dev, dtype=dtype),
             "time_ids": torch.tensor([[px, px, 0, 0, px, px]] * 2, dtype=dtype, device=dev)}
    return timed(lambda: unet(x, 500, encoder_hidden_states=ctx, added_cond_kwargs=added), dev)


@torch.no_grad()
def vae_decode(vae, px, dev):
    z = torch.zeros(1, 4, px // 8, px // 8, device=dev)
    return timed(lambda: vae.decode(z), dev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    dev = args.device
    dtype = torch.float16 if dev == "cuda" else torch.float32
    torch.set_num_threads(os.cpu_count() or 1)
    ucfg, vcfg, _, _ = sdc_layout.model_configs("sdxl", "full")
    t0 = time.perf_counter()
    unet = UNet2DConditionModel(**ucfg).eval().to(dev, dtype)
    vae = AutoencoderKL(**vcfg).eval().to(dev)
    print(f"diffusers build (random init, U-Net {str(dtype)[6:]}, VAE float32): {time.perf_counter() - t0:.1f} s")
    where = torch.cuda.get_device_name() if dev == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"diffusers torch {torch.__version__}, {where}")
    warm = unet_step(unet, 256, dev, dtype)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step = unet_step(unet, args.size, dev, dtype)
    print(f"diffusers U-Net step, CFG batch 2, {args.size}x{args.size}: {step:.3f} s (warm-up at 256x256 {warm:.3f} s)")
    if dev == "cuda":
        print(f"diffusers U-Net step peak device memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"diffusers VAE decode {args.size}x{args.size}: {vae_decode(vae, args.size, dev):.3f} s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"diffusers peak RSS (whole run): {rss:.2f} GiB")


if __name__ == "__main__":
    main()
