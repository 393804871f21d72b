#!/usr/bin/env python3
"""Reference fixtures for image-to-image and inpainting: diffusers'
StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline (float32
on the CPU, one torch generator per case, as users run them) on the tiny
models of tests/fixtures, for every sampler.

    python tools/fixtures_img2img.py [--out tests/fixtures]

Writes
    img2img/init32.png, img2img/mask32.png    the input image and mask (PNG)
    tiny_inpaint_sd1.safetensors              a tiny 9-channel inpainting model
    tiny_inpaint_sd1_diffusers/               the same as a diffusers folder
    img2img_tiny_<family>_ref.safetensors     per case: final latents (F32
        NCHW) and the 8-bit image (U8 HWC); __metadata__ "cases" (JSON list of
        {mode, model, sampler, karras, eta, cfg, steps, seed, strength, width,
        height}), prompt, negative. mode is img2img or inpaint; model is the
        regular 4-channel file of the family or "inpaint9".

The pipelines are given the images at the output size, so their resize step
is the identity (sdc's own resizing is tested apart, against Pillow).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402
import sdc_layout  # noqa: E402

PROMPT = "a small red circle in the top left corner on a blue background"
NEGATIVE = "blurry, green"
SIZE = 32
INPAINT9_SEED = 1101

# (sampler, karras, eta, cfg, steps, seed, strength)
IMG2IMG_CASES = [
    ("ddim", False, 0.0, 7.5, 4, 60, 0.75),
    ("ddim", False, 0.0, 7.5, 4, 61, 1.0),
    ("ddim", False, 0.5, 7.5, 5, 62, 0.6),
    ("ddpm", False, 0.0, 7.5, 5, 63, 0.6),
    ("euler", False, 0.0, 7.5, 4, 64, 0.75),
    ("euler", True, 0.0, 7.5, 5, 65, 0.5),
    ("euler_a", False, 0.0, 7.5, 4, 66, 0.8),
    ("euler_a", False, 0.0, 1.0, 4, 67, 0.75),  # no unconditional pass
    ("dpmpp_2m", False, 0.0, 7.5, 5, 68, 0.7),
    ("dpmpp_2m", True, 0.0, 7.5, 4, 69, 1.0),
]
INPAINT_CASES = [
    ("ddim", False, 0.0, 7.5, 4, 70, 1.0),
    ("ddpm", False, 0.0, 7.5, 5, 71, 0.6),
    ("euler", True, 0.0, 7.5, 4, 72, 0.75),
    ("euler_a", False, 0.0, 7.5, 4, 73, 1.0),
    ("euler_a", False, 0.0, 1.0, 4, 74, 0.75),
    ("dpmpp_2m", False, 0.0, 7.5, 5, 75, 1.0),
    ("dpmpp_2m", True, 0.0, 7.5, 4, 76, 0.8),
]


def init_image():
    """A 32x32 picture with edges and gradients: a blue background, a red
    disc, a green bar, a diagonal ramp."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    img = np.zeros((SIZE, SIZE, 3))
    img[..., 0] = 40 + 3 * x
    img[..., 1] = 60 + 2 * y
    img[..., 2] = 200 - x - y
    disc = (x - 10) ** 2 + (y - 11) ** 2 < 36
    img[disc] = (230, 30, 40)
    img[22:27, 4:28] = (20, 200, 60)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def mask_image():
    """White = repaint: a rectangle over the disc's right half and a soft
    grey edge (values on both sides of 128, which the pipeline binarises)."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[4:20, 12:26] = 255
    m[4:20, 26:28] = (127, 128)
    return Image.fromarray(m, "L")


def schedulers():
    from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)
    return {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "euler": EulerDiscreteScheduler,
            "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}


@torch.no_grad()
def run_cases(pipe, mode, model, cases, image, mask, tensors, meta):
    classes = schedulers()
    base = dict(pipe.scheduler.config)
    for name, karras, eta, cfg, steps, seed, strength in cases:
        extra = {"use_karras_sigmas": True} if karras else {}
        pipe.scheduler = classes[name].from_config(base, **extra)
        g = torch.Generator("cpu").manual_seed(seed)
        kw = {"eta": eta} if name == "ddim" else {}
        if mode == "inpaint":
            kw["mask_image"] = mask
        lat = pipe(PROMPT, image=image, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, strength=strength,
                   num_inference_steps=steps, guidance_scale=cfg, generator=g, output_type="latent", **kw).images
        img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
        img = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        img = (img * 255).round().astype("uint8")
        i = len(meta)
        tensors[f"latents{i}"] = lat.float().contiguous()
        tensors[f"image{i}"] = torch.from_numpy(img[0]).contiguous()
        meta.append({"mode": mode, "model": model, "sampler": name, "karras": karras, "eta": eta, "cfg": cfg,
                     "steps": steps, "seed": seed, "strength": strength, "width": SIZE, "height": SIZE})


def load_pipe(cls, folder):
    pipe = cls.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None, feature_extractor=None,
                               requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def make_inpaint9(out, family, tmp):
    """A tiny inpainting model of a family: the tiny model's text encoder
    and VAE with a U-Net that takes 9 channels (latent, mask, masked-image
    latent). SD 1.x in both layouts; SD 2.x (epsilon, as the real
    512-inpainting model) as a single file, its diffusers folder for the
    reference pipeline in tmp."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    src = os.path.join(out, f"tiny_{family}_diffusers")
    vae = AutoencoderKL.from_pretrained(os.path.join(src, "vae"), torch_dtype=torch.float32).eval()
    te = CLIPTextModel.from_pretrained(os.path.join(src, "text_encoder"), torch_dtype=torch.float32).eval()
    ucfg, _, _ = sdc_layout.model_configs(family, "tiny")
    torch.manual_seed(INPAINT9_SEED + (family == "sd2"))
    unet = UNet2DConditionModel(**dict(ucfg, in_channels=9))
    sdc_layout.randomize_(unet)
    unet.eval()
    single = os.path.join(out, f"tiny_inpaint_{family}.safetensors")
    sdc_layout.write_single_file(single, unet, vae, te, family, dtype=torch.float16)
    heads = ucfg["attention_head_dim"]
    heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(ucfg["block_out_channels"])
    from safetensors.torch import load_file
    tensors = load_file(single)
    if family == "sd2":
        # the single file holds OpenCLIP's whole text tower, the last layer
        # that diffusers' folder drops included: the tiny sd2 model's own
        ref = load_file(os.path.join(out, "tiny_sd2.safetensors"))
        tensors = {k: v for k, v in tensors.items() if not k.startswith("cond_stage_model.")}
        tensors.update({k: v for k, v in ref.items() if k.startswith("cond_stage_model.")})
    meta = {"format": "pt", "sdc.text.heads": str(te.config.num_attention_heads),
            "sdc.unet.heads": ",".join(str(h) for h in heads), "sdc.unet.norm_groups": str(ucfg["norm_num_groups"]),
            "sdc.vae.norm_groups": str(vae.config.norm_num_groups)}
    if family == "sd2":  # random weights: say it rather than leave it to sdc's heuristic
        meta["sdc.prediction"] = "epsilon"
    save_file(tensors, single, metadata=meta)
    pad = "<|endoftext|>" if family == "sd1" else "!"  # OpenCLIP pads with id 0, as make_fixtures' sd2
    folder = os.path.join(out if family == "sd1" else tmp, f"tiny_inpaint_{family}_diffusers")
    sdc_layout.write_diffusers_folder(
        folder, unet, vae, te, family, dtype=torch.float16,
        tokenizer_writer=lambda d: clip_vocab.write_hf_tokenizer(d, pad_token=pad))
    if family != "sd1":
        # the folder's text tower as the tiny sd2 model's own (written from
        # the whole tower, the last layer dropped, as diffusers has it)
        for part in ("text_encoder", "tokenizer"):
            shutil.rmtree(os.path.join(folder, part))
            shutil.copytree(os.path.join(src, part), os.path.join(folder, part))
        return folder
    # the tokenizer's 2 MB vocabulary: a link to the tiny sd1 folder's copy
    for name in ("vocab.json", "merges.txt"):
        a = os.path.join(src, "tokenizer", name)
        b = os.path.join(folder, "tokenizer", name)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()
        os.remove(b)
        os.symlink(os.path.relpath(a, os.path.dirname(b)), b)
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    args = ap.parse_args()
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
    d = os.path.join(args.out, "img2img")
    os.makedirs(d, exist_ok=True)
    init_image().save(os.path.join(d, "init32.png"))
    mask_image().save(os.path.join(d, "mask32.png"))
    # what the pipelines get: the files as read back
    image = Image.open(os.path.join(d, "init32.png")).convert("RGB")
    mask = Image.open(os.path.join(d, "mask32.png"))
    tmp = tempfile.mkdtemp()
    for family in ("sd1", "sd2"):
        inpaint9 = make_inpaint9(args.out, family, tmp)
        folder = os.path.join(args.out, f"tiny_{family}_diffusers")
        tensors, meta = {}, []
        run_cases(load_pipe(StableDiffusionImg2ImgPipeline, folder), "img2img", "regular", IMG2IMG_CASES, image,
                  None, tensors, meta)
        run_cases(load_pipe(StableDiffusionInpaintPipeline, folder), "inpaint", "regular", INPAINT_CASES, image,
                  mask, tensors, meta)
        run_cases(load_pipe(StableDiffusionInpaintPipeline, inpaint9), "inpaint", "inpaint9", INPAINT_CASES,
                  image, mask, tensors, meta)
        save_file(tensors, os.path.join(args.out, f"img2img_tiny_{family}_ref.safetensors"),
                  metadata={"cases": json.dumps(meta), "prompt": PROMPT, "negative": NEGATIVE})
        print(f"wrote {len(meta)} image-to-image and inpainting cases for {family}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
