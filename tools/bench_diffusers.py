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
  per op, at the shapes of sdc's per-op table (bench/bench_ops.c): PyTorch's
    SDPA with each of its fused backends (FlashAttention-2, memory-efficient,
    cuDNN) for the attention rows, and torch's convolution (cuDNN,
    channels-last fp16) for the convolution rows

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


# (what, batch, heads, tq, tk, d, causal): bench_ops.c's attention rows
ATTN = [
    ("self-attn 4096 tokens, 8 x d40", 2, 8, 4096, 4096, 40, False),
    ("self-attn 1024 tokens, 8 x d80", 2, 8, 1024, 1024, 80, False),
    ("self-attn 256 tokens, 8 x d160", 2, 8, 256, 256, 160, False),
    ("cross-attn 4096 x 77, 8 x d40", 2, 8, 4096, 77, 40, False),
    ("cross-attn 1024 x 154, 8 x d80", 2, 8, 1024, 154, 80, False),
    ("text encoder 77, causal, 12 x d64", 2, 12, 77, 77, 64, True),
    ("VAE attn 4096 tokens, 1 x d512", 1, 1, 4096, 4096, 512, False),
]
# (what, n, h, w, cin, cout, k, stride, pad): its convolution rows
CONV = [
    ("conv 3x3 320->320 64x64", 2, 64, 64, 320, 320, 3, 1, 1),
    ("conv 3x3 640->640 32x32", 2, 32, 32, 640, 640, 3, 1, 1),
    ("conv 3x3 1280->1280 16x16", 2, 16, 16, 1280, 1280, 3, 1, 1),
    ("conv 3x3 1280->1280 8x8", 2, 8, 8, 1280, 1280, 3, 1, 1),
    ("conv 3x3 s2 320->320 64x64", 2, 64, 64, 320, 320, 3, 2, 1),
    ("conv 1x1 320->640 32x32", 2, 32, 32, 320, 640, 1, 1, 0),
    ("conv_in 3x3 4->320 64x64", 2, 64, 64, 4, 320, 3, 1, 1),
    ("VAE conv 3x3 512->512 64x64", 1, 64, 64, 512, 512, 3, 1, 1),
    ("VAE conv 3x3 256->256 256x256", 1, 256, 256, 256, 256, 3, 1, 1),
    ("VAE conv 3x3 128->128 512x512", 1, 512, 512, 128, 128, 3, 1, 1),
]


def ops(dev):
    """PyTorch's kernels at the per-op table's shapes, fp16."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    for what, b, h, tq, tk, d, causal in ATTN:
        q = torch.randn(b, h, tq, d, device=dev, dtype=torch.float16)
        k = torch.randn(b, h, tk, d, device=dev, dtype=torch.float16)
        v = torch.randn(b, h, tk, d, device=dev, dtype=torch.float16)
        cols = []
        for name, be in backends:
            try:
                with sdpa_kernel(be), torch.inference_mode():
                    ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), 20)
                cols.append(f"{name} {ms:.3f} ms")
            except RuntimeError:
                cols.append(f"{name} n/a")
        print(f"torch SDPA {what}: " + ", ".join(cols))
    torch.backends.cudnn.benchmark = True
    for what, n, hh, ww, cin, cout, k, stride, pad in CONV:
        x = torch.randn(n, cin, hh, ww, device=dev, dtype=torch.float16).to(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, k, k, device=dev, dtype=torch.float16).to(memory_format=torch.channels_last)
        bias = torch.randn(cout, device=dev, dtype=torch.float16)
        with torch.inference_mode():
            ms = timed(lambda: F.conv2d(x, w, bias, stride, pad), 20)
        print(f"torch conv2d (cuDNN, channels-last) {what}: {ms:.3f} ms")


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
    del vae
    torch.cuda.empty_cache()
    ops(dev)
    print(f"diffusers: done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
