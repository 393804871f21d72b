#!/usr/bin/env python3
"""Reference fixtures for sdc's tests, made with the PyTorch reference stack
(torch, transformers, diffusers; pinned in tools/requirements.txt).

    python tools/make_fixtures.py --out tests/fixtures          # tiny, committed
    python tools/make_fixtures.py --full --out build/fixtures-full  # on demand

For each family (sd1: CLIP ViT-L/14 style, sd2: OpenCLIP ViT-H style) it
writes a random-weight checkpoint in the single-file layout (fp16) and, for
the tiny size, the same weights as a diffusers folder; then the reference
text-encoder outputs, computed in float64 from the fp16-rounded weights:

    te_<family>_ref.safetensors
      ids            I64 (P, 77)     token ids (transformers CLIPTokenizer)
      last           F32 (P, 77, W)  last_hidden_state (after final LN)
      penultimate    F32 (P, 77, W)  hidden_states[-2] (before final LN)
      context        F32 (P, 77, W)  what SD feeds the U-Net at clip skip 1
      context_skip2  F32 (P, 77, W)  ... at clip skip 2
      __metadata__   prompts (JSON list), family, layers
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402
import sdc_layout  # noqa: E402

PAD_TOKEN = {"sd1": "<|endoftext|>", "sd2": "!"}
SEED = {("sd1", "tiny"): 1001, ("sd2", "tiny"): 1002, ("sd1", "full"): 2001, ("sd2", "full"): 2002}

PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "",
    "masterpiece, best quality, (highly detailed:1.2), portrait of a woman in a red dress, "
    "golden hour, 85mm, bokeh, trending on artstation",
    # more than 75 tokens: truncated, the end must not matter
    "a very long prompt " + ", ".join(f"detail number {i}" for i in range(40)),
    "Café crème & croissants — “morning light”, 東京",
]


def tokenizer_for(family, tmp):
    d = os.path.join(tmp, f"tok_{family}")
    clip_vocab.write_hf_tokenizer(d, pad_token=PAD_TOKEN[family])
    tok = CLIPTokenizer.from_pretrained(d)
    assert tok.fix_text is not None, "ftfy must be installed for the reference tokenizer"
    return tok


def add_metadata(path, extra):
    """Re-save a safetensors file with extra __metadata__ entries."""
    tensors = load_file(path)
    save_file(tensors, path, metadata=dict({"format": "pt"}, **extra))


def share_tokenizer_files(out, folder):
    """vocab.json and merges.txt are the same 2 MB for every family: later
    folders link to the first one's copy (relative symlinks) to keep the
    committed fixtures small. Each folder keeps its own tokenizer_config."""
    first = os.path.join(out, "tiny_sd1_diffusers", "tokenizer")
    mine = os.path.join(folder, "tokenizer")
    if os.path.samefile(first, mine):
        return
    for name in ("vocab.json", "merges.txt"):
        a, b = os.path.join(first, name), os.path.join(mine, name)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), f"{name} differs between families"
        os.remove(b)
        os.symlink(os.path.relpath(a, mine), b)


@torch.no_grad()
def text_reference(text_encoder, tok, family, path):
    te = text_encoder.to(torch.float16).to(torch.float64).eval()
    enc = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    ids = enc.input_ids
    # transformers builds its causal mask in the default dtype
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = te(input_ids=ids, output_hidden_states=True)
    finally:
        torch.set_default_dtype(default)
    final_ln = te.text_model.final_layer_norm
    last = out.last_hidden_state
    pen = out.hidden_states[-2]
    if family == "sd1":  # the last layer; clip skip 2 = penultimate + final LN
        context, skip2 = last, final_ln(pen)
    else:  # SD 2.x: penultimate OpenCLIP layer (+ ln_final); skip 2 goes one further
        context, skip2 = final_ln(pen), final_ln(out.hidden_states[-3])
    tensors = {
        "ids": ids.to(torch.int64).contiguous(),
        "last": last.float().contiguous(),
        "penultimate": pen.float().contiguous(),
        "context": context.float().contiguous(),
        "context_skip2": skip2.float().contiguous(),
    }
    meta = {"prompts": json.dumps(PROMPTS, ensure_ascii=False), "family": family,
            "layers": str(te.config.num_hidden_layers)}
    save_file(tensors, path, metadata=meta)


def f64_copy(model):
    """The fp16-rounded weights (what the checkpoint stores) in float64."""
    import copy
    return copy.deepcopy(model).to(torch.float16).to(torch.float64).eval()


@torch.no_grad()
def unet_reference(unet, family, size, path):
    """U-Net outputs for random latents, a timestep and a random context,
    NCHW as diffusers has them; one even and one odd latent size (the odd
    one exercises upsampling to the skip connection's size)."""
    u = f64_copy(unet)
    g = torch.Generator().manual_seed(7)
    ctx_dim = unet.config.cross_attention_dim
    tensors, meta = {}, {"family": family, "size": size}
    shapes = {"tiny": [(8, 8), (7, 9)], "full": [(16, 16), (9, 11)]}[size]
    context = torch.randn(2, 77, ctx_dim, generator=g, dtype=torch.float64)
    tensors["context"] = context.float()
    for i, (h, w) in enumerate(shapes):
        x = torch.randn(2, 4, h, w, generator=g, dtype=torch.float64)
        t = [999, 421][i]
        y = u(x, t, encoder_hidden_states=context).sample
        tensors[f"x{i}"], tensors[f"out{i}"] = x.float(), y.float()
        meta[f"t{i}"] = str(t)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)


@torch.no_grad()
def vae_reference(vae, family, size, path):
    """VAE decoder (post_quant_conv + decoder) on random latents, NCHW."""
    v = f64_copy(vae)
    g = torch.Generator().manual_seed(8)
    h, w = {"tiny": (8, 6), "full": (16, 12)}[size]
    z = torch.randn(1, 4, h, w, generator=g, dtype=torch.float64)
    img = v.decode(z).sample
    # the encoder, for image-to-image: the mean of the latent distribution
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    x = torch.rand(1, 3, h * f, w * f, generator=g, dtype=torch.float64) * 2 - 1
    mean = v.encode(x).latent_dist.mean
    save_file({"z": z.float().contiguous(), "image": img.float().contiguous(),
               "x": x.float().contiguous(), "mean": mean.float().contiguous()}, path,
              metadata={"family": family, "size": size})


PIPELINE_CASES = [
    # sampler, karras, eta, cfg, steps, seed
    ("ddim", False, 0.0, 7.5, 4, 42),
    ("ddim", False, 0.5, 7.5, 4, 43),
    ("ddpm", False, 0.0, 7.5, 4, 44),
    ("euler", False, 0.0, 7.5, 4, 45),
    ("euler", True, 0.0, 7.5, 4, 46),
    ("euler_a", False, 0.0, 7.5, 4, 47),
    ("dpmpp_2m", False, 0.0, 7.5, 4, 48),
    ("dpmpp_2m", True, 0.0, 7.5, 4, 49),
    ("euler_a", False, 0.0, 1.0, 4, 50),   # guidance 1: no unconditional pass
]
PIPELINE_PROMPT = "a small red circle in the top left corner on a blue background"
PIPELINE_NEGATIVE = "blurry, green"


@torch.no_grad()
def pipeline_reference(folder, family, path, size_px=32):
    """Whole StableDiffusionPipeline runs (float32, as users run it on the
    CPU) for each sampler: final latents and the 8-bit image."""
    from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                           StableDiffusionPipeline)
    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "euler": EulerDiscreteScheduler,
               "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = dict(pipe.scheduler.config)
    tensors, cases = {}, []
    for i, (name, karras, eta, cfg, steps, seed) in enumerate(PIPELINE_CASES):
        extra = {"use_karras_sigmas": True} if karras else {}
        pipe.scheduler = classes[name].from_config(base, **extra)
        g = torch.Generator("cpu").manual_seed(seed)
        kw = {"eta": eta} if name == "ddim" else {}
        lat = pipe(PIPELINE_PROMPT, negative_prompt=PIPELINE_NEGATIVE, height=size_px, width=size_px,
                   num_inference_steps=steps, guidance_scale=cfg, generator=g, output_type="latent", **kw).images
        img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
        img = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        img = (img * 255).round().astype("uint8")
        tensors[f"latents{i}"] = lat.float().contiguous()
        tensors[f"image{i}"] = torch.from_numpy(img).contiguous()
        cases.append({"sampler": name, "karras": karras, "eta": eta, "cfg": cfg, "steps": steps, "seed": seed,
                      "width": size_px, "height": size_px})
    meta = {"cases": json.dumps(cases), "prompt": PIPELINE_PROMPT, "negative": PIPELINE_NEGATIVE}
    save_file(tensors, path, metadata=meta)


CONDITIONING_PROMPTS = [
    "a (red:1.4) circle on a [blue] background",
    "((masterpiece)), best quality, (portrait:1.2) of a [[woman]] in a (red dress:0.8)",
    "a castle BREAK on a hill, (sunset:1.3)",
    # 2 and 4 chunks, with the comma backtrack
    ", ".join(f"(detail {i}:1.{i % 5})" if i % 3 == 0 else f"plain detail {i}" for i in range(40)),
    " ".join(f"word{i}" for i in range(220)),
]


@torch.no_grad()
def conditioning_reference(text_encoder, family, path):
    """A1111's conditioning for weighted and long prompts: each 77-token
    window encoded alone (clip skip 1), scaled by its weights and renormalised
    to its mean (process_tokens), windows concatenated; float64 from the
    fp16-rounded weights."""
    import fixtures_prompts as fp
    te = f64_copy(text_encoder)
    tok = fp.make_tokenizer()
    comma = tok.get_vocab()[",</w>"]
    tensors = {}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for i, prompt in enumerate(CONDITIONING_PROMPTS):
            frags = fp.parse_attention(prompt)
            ids_of = tok([t for t, _ in frags], truncation=False, add_special_tokens=False)["input_ids"]
            zs = []
            for ids, w in fp.tokenize_line(frags, ids_of, comma):
                if family == "sd2":
                    ids = fp.pad_sd2(ids)
                out = te(input_ids=torch.tensor([ids]), output_hidden_states=True)
                z = out.last_hidden_state if family == "sd1" else \
                    te.text_model.final_layer_norm(out.hidden_states[-2])
                mult = torch.tensor(np.float32(w), dtype=torch.float64).reshape(1, 77, 1)
                before = z.mean()
                z = z * mult
                z = z * (before / z.mean())
                zs.append(z[0])
            tensors[f"cond{i}"] = torch.cat(zs).float().contiguous()
    finally:
        torch.set_default_dtype(default)
    save_file(tensors, path, metadata={"prompts": json.dumps(CONDITIONING_PROMPTS), "family": family})


def make(family, size, out, tmp):
    torch.manual_seed(SEED[(family, size)])
    unet, vae, te = sdc_layout.build_models(family, size, SEED[(family, size)])
    tok = tokenizer_for(family, tmp)
    single = os.path.join(out, f"{size}_{family}.safetensors")
    sdc_layout.write_single_file(single, unet, vae, te, family, dtype=torch.float16)
    if size == "tiny":
        # Real SD files do not say their head counts or norm groups; sdc derives them from
        # the family (8 heads / 64-wide heads, 32 groups). Tiny models say it here.
        ucfg = unet.config
        heads = ucfg.num_attention_heads or ucfg.attention_head_dim
        n_levels = len(ucfg.block_out_channels)
        heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * n_levels
        add_metadata(single, {"sdc.text.heads": str(te.config.num_attention_heads),
                              "sdc.unet.heads": ",".join(str(h) for h in heads),
                              "sdc.unet.norm_groups": str(ucfg.norm_num_groups),
                              "sdc.vae.norm_groups": str(vae.config.norm_num_groups)})
        folder = os.path.join(out, f"{size}_{family}_diffusers")
        sdc_layout.write_diffusers_folder(
            folder, unet, vae, te, family, dtype=torch.float16,
            tokenizer_writer=lambda d: clip_vocab.write_hf_tokenizer(d, pad_token=PAD_TOKEN[family]))
        share_tokenizer_files(out, folder)
    text_reference(te, tok, family, os.path.join(out, f"te_{size}_{family}_ref.safetensors"))
    unet_reference(unet, family, size, os.path.join(out, f"unet_{size}_{family}_ref.safetensors"))
    if size == "tiny":
        pipeline_reference(folder, family, os.path.join(out, f"pipeline_{size}_{family}_ref.safetensors"))
        conditioning_reference(te, family, os.path.join(out, f"cond_{size}_{family}_ref.safetensors"))
    vae_reference(vae, family, size, os.path.join(out, f"vae_{size}_{family}_ref.safetensors"))
    print(f"wrote {size} {family} fixtures in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--full", action="store_true", help="full-size SD 1.5 / 2.1 shapes")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    size = "full" if args.full else "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("sd1", "sd2"):
            make(family, size, args.out, tmp)


if __name__ == "__main__":
    main()
