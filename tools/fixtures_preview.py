#!/usr/bin/env python3
"""Reference fixtures for live previews: AUTOMATIC1111's cheap latent-to-RGB
projection and madebyollin/taesd's decoder, with A1111's conversion of each
to 8 bits.

    python tools/fixtures_preview.py [--out tests/fixtures]

Writes, under <out>/preview/:
    taesd_tiny.safetensors      a tiny random TAESD decoder (8 channels where
                                the public weights have 64), F16, with
                                taesd_decoder.safetensors's key names
    taesd_tiny_f32.safetensors  the same values in F32
    preview_ref.safetensors
        cheap_x0   F32 (1, 4, 7, 9)   an x0 estimate (NCHW), some values far
                                      enough out to clamp
        cheap_rgb  U8  (7, 9, 3)      A1111's single_sample_to_image of its
                                      cheap_approximation (HWC)
        cheap_rgb_xl U8 (7, 9, 3)     the same with its SDXL coefficients
        taesd_z    F32 (1, 4, 5, 6)   a latent for the tiny decoder
        taesd_out  F64 (1, 3, 40, 48) Decoder(taesd_z) in float64 on the
                                      file's weights (taesd.py's Decoder,
                                      written out below)
        taesd_rgb  U8  (40, 48, 3)    A1111's conversion of the float32 output

The Decoder is checked here against diffusers' AutoencoderTiny (the same
network under other names: its layers.k is taesd's k + 1, and it returns
2 y - 1), so the architecture is not only this file's reading of taesd.py.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

WIDTH = 8          # the public weights' 64, smaller
LATENT = 4
SEED = 2024

# taesd.py's Decoder as nn.Sequential indices: which index holds what
BLOCKS = [3, 4, 5, 8, 9, 10, 13, 14, 15, 18]
UPCONVS = [7, 12, 17]  # 3x3 convs without bias, after each 2x upsample


def conv(n_in, n_out, **kw):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def decoder(c=WIDTH, z=LATENT):
    """madebyollin/taesd's Decoder(latent_channels=z) with c for its 64."""
    return nn.Sequential(
        Clamp(), conv(z, c), nn.ReLU(),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), conv(c, 3),
    )


@torch.no_grad()
def random_decoder():
    """He-normal weights (the activations keep their size through 20
    layers), small biases, the last conv scaled so the output spreads over
    [0, 1] and a little past it (both clamps of the 8-bit conversion are
    used). Rounded to fp16, the type the public file is in."""
    torch.manual_seed(SEED)
    d = decoder()
    for m in d.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            m.weight.normal_(0, (2.0 / fan_in) ** 0.5 * 0.7)
            if m.bias is not None:
                m.bias.uniform_(-0.1, 0.1)
    z = example_latent()
    y = d(z)
    last, s = d[19], 0.3 / y.std()
    mean = y.mean(dim=(0, 2, 3)) - last.bias  # the product's own mean per channel
    last.weight.mul_(s)
    last.bias.copy_(torch.tensor([0.5, 0.45, 0.55]) - s * mean)
    for p in d.parameters():
        p.copy_(p.half().float())
    return d.double().eval()


def example_latent():
    g = torch.Generator().manual_seed(SEED + 1)
    z = torch.randn(1, LATENT, 5, 6, generator=g, dtype=torch.float32) * 1.2
    z[0, 0, 0, 0] = 7.5  # past Clamp's knee
    z[0, 3, 4, 5] = -9.0
    return z


@torch.no_grad()
def check_against_diffusers(d, z):
    """diffusers' AutoencoderTiny decoder with the same weights: its output
    is 2 y - 1 of taesd's y."""
    from diffusers import AutoencoderTiny
    ae = AutoencoderTiny(decoder_block_out_channels=(WIDTH,) * 4, encoder_block_out_channels=(WIDTH,) * 4,
                         latent_channels=LATENT).double().eval()
    sd = {f"decoder.layers.{int(k.split('.', 1)[0]) - 1}.{k.split('.', 1)[1]}": v
          for k, v in d.state_dict().items()}
    missing, unexpected = ae.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("encoder.") for k in missing), missing
    want = d(z.double()) * 2 - 1
    got = ae.decoder(z.double())
    err = (got - want).abs().max().item()
    assert err < 1e-12, f"diffusers' AutoencoderTiny disagrees with taesd.py's Decoder by {err}"


def a1111_to_u8(x):
    """modules/sd_samplers_common.py single_sample_to_image: x (3, H, W) in
    about [-1, 1] -> x * 0.5 + 0.5, clamped to [0, 1], 255. * (H, W, 3),
    then .to(torch.uint8) (truncation), in float32."""
    x = x.float() * 0.5 + 0.5
    x = torch.clamp(x, min=0.0, max=1.0)
    x = 255. * x.permute(1, 2, 0)
    return x.to(dtype=torch.uint8)


def cheap_approximation(sample, sdxl=False):
    """modules/sd_vae_approx.py cheap_approximation: SD 1.x / 2.x, or its
    is_sdxl branch"""
    coefs = torch.tensor([
        [0.3448, 0.4168, 0.4395],
        [-0.1953, -0.0290, 0.0250],
        [0.1074, 0.0886, -0.0163],
        [-0.3730, -0.2499, -0.2088],
    ] if sdxl else [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ])
    return torch.einsum("lxy,lr -> rxy", sample, coefs)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    args = ap.parse_args()
    out = os.path.join(args.out, "preview")
    os.makedirs(out, exist_ok=True)

    d = random_decoder()
    z = example_latent()
    check_against_diffusers(d, z)
    state = {k: v.contiguous() for k, v in d.state_dict().items()}
    save_file({k: v.half() for k, v in state.items()}, os.path.join(out, "taesd_tiny.safetensors"))
    save_file({k: v.float() for k, v in state.items()}, os.path.join(out, "taesd_tiny_f32.safetensors"))

    y64 = d(z.double())
    y32 = d.float()(z)  # what A1111 converts (it runs the decoder in its own dtype)
    taesd_rgb = a1111_to_u8((y32 * 2 - 1)[0])

    g = torch.Generator().manual_seed(SEED + 2)
    x0 = torch.randn(1, 4, 7, 9, generator=g, dtype=torch.float32) * 1.5
    x0[0, :, 0, 0] = torch.tensor([6.0, 5.0, -4.0, -6.0])   # clamps at 1
    x0[0, :, 6, 8] = torch.tensor([-6.0, -5.0, 4.0, 6.0])   # and at 0
    cheap_rgb = a1111_to_u8(cheap_approximation(x0[0]))
    cheap_rgb_xl = a1111_to_u8(cheap_approximation(x0[0], sdxl=True))

    ref = {
        "cheap_x0": x0.contiguous(),
        "cheap_rgb": cheap_rgb.contiguous(),
        "cheap_rgb_xl": cheap_rgb_xl.contiguous(),
        "taesd_z": z.contiguous(),
        "taesd_out": y64.contiguous(),
        "taesd_rgb": taesd_rgb.contiguous(),
    }
    save_file(ref, os.path.join(out, "preview_ref.safetensors"),
              metadata={"width": str(WIDTH), "seed": str(SEED)})
    lo, hi = y32.min().item(), y32.max().item()
    clamped = ((y32 < 0) | (y32 > 1)).float().mean().item()
    print(f"preview fixtures in {out}: TAESD output in [{lo:.3f}, {hi:.3f}], {100 * clamped:.1f}% clamped; "
          f"cheap image {tuple(cheap_rgb.shape)}")


if __name__ == "__main__":
    main()
