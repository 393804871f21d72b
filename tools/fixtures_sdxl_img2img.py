#!/usr/bin/env python3
"""Reference fixtures for SDXL image to image and inpainting: diffusers'
StableDiffusionXLImg2ImgPipeline and StableDiffusionXLInpaintPipeline
(float32 on the CPU, one torch generator per case, as users run them) on
the tiny SDXL model of tools/fixtures_sdxl.py, its regular 4-channel U-Net.

    python tools/fixtures_sdxl_img2img.py [--out tests/fixtures]

Needs tests/fixtures/tiny_sdxl_diffusers (tools/fixtures_sdxl.py). Both
pipelines are loaded from that folder with from_pretrained, so they get its
components and the defaults a base model's folder gives them:
requires_aesthetics_score False (the time ids are original size, crop,
target size, as in text to image; the refiner's aesthetic scores are not
used) and force_zeros_for_empty_prompt True (negative_prompt=None with
guidance: all-zero negative embeddings).

Writes
  sdxl_img2img_ref.safetensors   StableDiffusionXLImg2ImgPipeline cases
  sdxl_inpaint_ref.safetensors   StableDiffusionXLInpaintPipeline cases
each holding
  init_<W>x<H>   U8 [H, W, 3]   the init image the pipeline got (as a PIL
                                image of that size)
  mask_<W>x<H>   U8 [H, W]      the mask (inpainting only; a PIL "L" image,
                                white = repaint, with an edge of 127 and
                                one of 128 that the pipeline binarises)
  latents<i>     F32 [1, 4, H/8, W/8]  the pipeline's final latents
  image<i>       U8 [H, W, 3]   VAE decode of latents / 0.13025, as
                                tools/fixtures_sdxl.py decodes; it is the
                                pipeline's own 8-bit output (checked here,
                                bit for bit): with padding_mask_crop None
                                the inpainting pipeline returns the decoded
                                image as it is, nothing pasted back over the
                                unmasked part (and no watermark: the
                                pipelines are made with add_watermarker
                                False, which is also what they do where
                                invisible-watermark is not installed)
  __metadata__ "cases": JSON list of {mode, prompt, prompt_2, negative,
      negative_mode, sampler, karras, spacing, eta, cfg, steps, seed,
      strength, width, height, original_size, crop, target_size, init, mask,
      steps_run, timesteps, time_ids, denoising_start, denoising_end,
      padding_mask_crop}: every argument as the pipeline used it (its
      defaults filled in). original_size and target_size are [height,
      width], crop [top, left]; init and mask name the tensors above (mask
      null for img2img); negative is null where the pipeline got
      negative_prompt=None, and negative_mode says what that did ("text",
      "zeros" or "unused" at cfg 1, as tools/fixtures_sdxl.py); steps_run
      is int(steps * strength), the steps that ran, timesteps the U-Net's
      t at each and time_ids the add_time_ids of the first call (one row:
      with guidance both halves got the same, checked here).
      Also "scheduler_config" (the folder's EulerDiscreteScheduler config
      every sampler was made from), "vae_scaling_factor",
      "force_zeros_for_empty_prompt" and "requires_aesthetics_score".

What these pipelines do, at their defaults, that the cases rely on (diffusers
0.31; each is asserted or recorded below):
  * strength picks the steps as StableDiffusionImg2ImgPipeline does:
    denoising_start None gives init_timestep = min(int(steps * strength),
    steps), t_start = steps - init_timestep, the schedule from
    timesteps[t_start * order:] with scheduler.set_begin_index; the noise
    is added at timesteps[t_start]. denoising_end None runs them all.
  * img2img: the image is encoded by the VAE (retrieve_latents with a
    generator: latent_dist.sample(generator), one draw of normals), times
    the scaling factor (the VAE config's latents_mean/std are null), then
    noise (randn_tensor, the next draw) added by scheduler.add_noise, even
    at strength 1 (not pure noise, unlike inpainting). force_upcast only
    matters for a float16 VAE. The image is preprocessed at its own size
    (the img2img pipeline takes no height or width): rounded down to a
    multiple of 8, which these sizes are.
  * inpainting with a 4-channel U-Net: prepare_latents encodes the image
    (always: return_image_latents is in_channels == 4) then draws the
    noise; at strength 1 the latents are that noise times init_noise_sigma
    (is_strength_max), else image latents noised to the first timestep.
    prepare_mask_latents then encodes the masked image (init * (mask <
    0.5)), a third draw, though a 4-channel U-Net never uses it. The mask
    is binarised at 0.5 (>= 0.5 repaints) and brought to the latent size by
    F.interpolate (nearest). After each step the image latents, noised to
    the next timestep with the same noise (unnoised after the last), are
    kept outside the mask: (1 - m) * init + m * latents. The inpainting
    pipeline's default strength is 0.9999; the cases pass theirs.
  * the time ids default to the latents' size * 8, crop (0, 0); the
    negative half gets negative_original_size / negative_target_size =
    original / target size and, without aesthetics scores, the positive
    crop: the same row as the positive.
"""
import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_sdxl import NEGATIVE, PROMPT, PROMPT_2, decode, save_sorted, schedulers  # noqa: E402

# Each case: sampler, karras, spacing, eta, cfg, steps, seed, strength,
# negative (None: zeros with guidance), prompt_2, width, height and the size
# conditioning (None: the pipeline's defaults).
IMG2IMG_CASES = [
    dict(sampler="ddim", cfg=5.0, steps=4, seed=90, strength=0.75, negative=NEGATIVE),
    dict(sampler="euler", cfg=5.0, steps=5, seed=91, strength=0.6, negative=None),
    dict(sampler="euler_a", cfg=5.0, steps=4, seed=92, strength=1.0, negative=NEGATIVE),
    dict(sampler="dpmpp_2m", cfg=5.0, steps=5, seed=93, strength=0.6, negative=NEGATIVE),
    dict(sampler="dpmpp_2m", karras=True, cfg=5.0, steps=4, seed=94, strength=1.0, negative=None),
    # a second prompt and size conditioning
    dict(sampler="euler", cfg=5.0, steps=4, seed=95, strength=0.75, negative=NEGATIVE, prompt_2=PROMPT_2,
         original_size=(128, 96), crop=(16, 8), target_size=(64, 80)),
    # SDXL Turbo's image to image: no guidance, trailing spacing, 2 steps
    # at strength 0.5 (one runs)
    dict(sampler="euler_a", spacing="trailing", cfg=1.0, steps=2, seed=96, strength=0.5, negative=None),
    # not square: 96 wide, 64 high
    dict(sampler="euler", cfg=5.0, steps=4, seed=97, strength=0.75, negative=NEGATIVE, width=96, height=64),
]
INPAINT_CASES = [
    dict(sampler="ddim", cfg=5.0, steps=4, seed=100, strength=1.0, negative=NEGATIVE),
    # Euler at strength 1: pure noise times init_noise_sigma (not 1, as for
    # DDIM and DPM++)
    dict(sampler="euler", cfg=5.0, steps=4, seed=101, strength=1.0, negative=None),
    dict(sampler="euler_a", cfg=5.0, steps=5, seed=102, strength=0.6, negative=NEGATIVE),
    dict(sampler="dpmpp_2m", cfg=5.0, steps=4, seed=103, strength=1.0, negative=NEGATIVE),
    dict(sampler="euler_a", spacing="trailing", cfg=1.0, steps=2, seed=104, strength=0.5, negative=None),
    dict(sampler="dpmpp_2m", karras=True, cfg=5.0, steps=5, seed=105, strength=0.75, negative=None, width=96,
         height=64),
]


def init_image(w, h):
    """A picture with edges and gradients: a blue background with ramps, a
    red disc, a green bar."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 40 + 2 * x
    img[..., 1] = 60 + 2 * y
    img[..., 2] = 220 - x - y
    disc = (x - w * 0.3) ** 2 + (y - h * 0.35) ** 2 < (h * 0.2) ** 2
    img[disc] = (230, 30, 40)
    img[int(h * 0.7):int(h * 0.8), int(w * 0.1):int(w * 0.85)] = (20, 200, 60)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def mask_image(w, h):
    """White = repaint: a box over the disc's right half, its left and top
    edges off the 8-pixel grid; its right edge a column of 127 and its
    bottom edge a row of 128, both on pixels the nearest-neighbour
    reduction to the latent size picks (multiples of 8), so the latent mask
    shows the pipeline's binarisation at 0.5 on both sides: 127 keeps, 128
    repaints."""
    m = np.zeros((h, w), np.uint8)
    y0, x0 = int(h * 0.12), int(w * 0.34)
    y1, x1 = int(h * 0.6) // 8 * 8, int(w * 0.7) // 8 * 8
    m[y0:y1, x0:x1] = 255
    m[y0:y1 + 1, x1] = 127
    m[y1, x0:x1] = 128
    return m


def case_params(mode, c):
    """A case with every field filled in."""
    p = dict(mode=mode, prompt=PROMPT, prompt_2=None, negative=None, sampler=None, karras=False, spacing="leading",
             eta=0.0, cfg=None, steps=None, seed=None, strength=None, width=64, height=64, original_size=None,
             crop=(0, 0), target_size=None, denoising_start=None, denoising_end=None, padding_mask_crop=None)
    p.update(c)
    p["original_size"] = list(p["original_size"] or (p["height"], p["width"]))
    p["target_size"] = list(p["target_size"] or (p["height"], p["width"]))
    p["crop"] = list(p["crop"])
    p["init"] = f"init_{p['width']}x{p['height']}"
    p["mask"] = f"mask_{p['width']}x{p['height']}" if mode == "inpaint" else None
    p["negative_mode"] = "unused" if p["cfg"] <= 1.0 else "zeros" if p["negative"] is None else "text"
    p["steps_run"] = min(int(p["steps"] * p["strength"]), p["steps"])
    return p


def load_pipes(folder):
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline
    pipes = {}
    for mode, cls in (("img2img", StableDiffusionXLImg2ImgPipeline), ("inpaint", StableDiffusionXLInpaintPipeline)):
        pipe = cls.from_pretrained(folder, torch_dtype=torch.float32, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        assert pipe.config.requires_aesthetics_score is False and pipe.config.force_zeros_for_empty_prompt is True
        assert pipe.unet.config.in_channels == 4 and pipe.watermark is None
        pipes[mode] = pipe
    return pipes


@torch.no_grad()
def run_case(pipe, p, base_config, images):
    """One pipeline run: (final latents, the pipeline's own 8-bit image,
    the U-Net's timesteps, the first call's time ids)."""
    extra = {}
    if p["karras"]:
        extra["use_karras_sigmas"] = True
    if p["spacing"] != base_config.get("timestep_spacing"):
        extra["timestep_spacing"] = p["spacing"]
    pipe.scheduler = schedulers()[p["sampler"]].from_config(base_config, **extra)
    sc = pipe.scheduler.config
    assert sc.timestep_spacing == p["spacing"] and sc.steps_offset == 1, (sc.timestep_spacing, sc.steps_offset)
    assert bool(getattr(sc, "use_karras_sigmas", False)) == p["karras"]
    seen = {"t": []}

    def grab(module, args, kwargs):
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        seen["t"].append(float(t))
        if "time_ids" not in seen:
            seen["time_ids"] = kwargs["added_cond_kwargs"]["time_ids"].detach().clone()
            seen["batch"] = args[0].shape[0]

    last = {}

    def on_step(pipe_, i, t, kw):
        last["latents"] = kw["latents"].detach().clone()
        return kw

    kw = {"eta": p["eta"]} if p["sampler"] == "ddim" else {}
    if p["mode"] == "inpaint":
        kw.update(mask_image=Image.fromarray(images[p["mask"]].numpy(), "L"), height=p["height"], width=p["width"],
                  padding_mask_crop=p["padding_mask_crop"])
    hook = pipe.unet.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        g = torch.Generator("cpu").manual_seed(p["seed"])
        out = pipe(p["prompt"], prompt_2=p["prompt_2"], negative_prompt=p["negative"],
                   image=Image.fromarray(images[p["init"]].numpy(), "RGB"), strength=p["strength"],
                   num_inference_steps=p["steps"], guidance_scale=p["cfg"], generator=g,
                   denoising_start=p["denoising_start"], denoising_end=p["denoising_end"],
                   original_size=tuple(p["original_size"]), crops_coords_top_left=tuple(p["crop"]),
                   target_size=tuple(p["target_size"]), callback_on_step_end=on_step, output_type="pil", **kw)
    finally:
        hook.remove()
    assert len(seen["t"]) == p["steps_run"], (len(seen["t"]), p["steps_run"])
    assert seen["batch"] == (2 if p["cfg"] > 1.0 else 1)
    ids = seen["time_ids"]
    assert all(torch.equal(ids[0], r) for r in ids), ids  # the negative half's row is the positive's
    lat = last["latents"]
    assert lat.shape == (1, 4, p["height"] // 8, p["width"] // 8), lat.shape
    return lat, np.asarray(out.images[0]), seen["t"], ids[0].tolist()


def write(pipe, mode, cases, path):
    base = dict(pipe.scheduler.config)
    images, tensors, meta = {}, {}, []
    for c in cases:
        p = case_params(mode, c)
        if p["init"] not in images:
            images[p["init"]] = torch.from_numpy(init_image(p["width"], p["height"]))
        if p["mask"] and p["mask"] not in images:
            images[p["mask"]] = torch.from_numpy(mask_image(p["width"], p["height"]))
    if mode == "inpaint":  # the mask's soft edges, as the latent mask has them
        for name, m in images.items():
            if not name.startswith("mask_"):
                continue
            mp = pipe.mask_processor.preprocess(Image.fromarray(m.numpy(), "L"), height=m.shape[0], width=m.shape[1])
            lm = torch.nn.functional.interpolate(mp, size=(m.shape[0] // 8, m.shape[1] // 8))[0, 0]
            soft = m[::8, ::8]
            assert bool((lm[soft == 127] == 0).all()) and bool((lm[soft == 128] == 1).all()), name
            assert int((soft == 127).sum()) > 0 and int((soft == 128).sum()) > 0, name
    for i, c in enumerate(cases):
        p = case_params(mode, c)
        lat, own, ts, ids = run_case(pipe, p, base, images)
        img = decode(pipe.vae, lat)
        assert np.array_equal(img.numpy(), own), f"{mode} case {i}: the pipeline's own image is not the decode"
        assert ids == [float(v) for v in p["original_size"] + p["crop"] + p["target_size"]], (i, ids)
        assert 0 < int((img > 0).sum()) and int((img < 255).sum()) > 0, f"{mode} case {i}: saturated image"
        p["timesteps"], p["time_ids"] = ts, ids
        tensors[f"latents{i}"] = lat.float().contiguous()
        tensors[f"image{i}"] = img
        meta.append(p)
        print(f"{mode} {i}: {p['sampler']}{' karras' if p['karras'] else ''} {p['spacing']} cfg {p['cfg']} "
              f"strength {p['strength']} steps {p['steps']} (ran {p['steps_run']}: t {ts}) "
              f"{p['width']}x{p['height']} negative {p['negative_mode']}: latents std {lat.std():.3f}, "
              f"image mean {img.float().mean():.1f}")
    tensors.update({k: v.contiguous() for k, v in images.items()})
    md = {"cases": json.dumps(meta), "vae_scaling_factor": str(pipe.vae.config.scaling_factor),
          "scheduler_config": json.dumps({k: v for k, v in base.items() if not k.startswith("_")}, sort_keys=True),
          "force_zeros_for_empty_prompt": str(pipe.config.force_zeros_for_empty_prompt).lower(),
          "requires_aesthetics_score": str(pipe.config.requires_aesthetics_score).lower()}
    save_sorted(tensors, path, md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipes = load_pipes(os.path.join(args.out, "tiny_sdxl_diffusers"))
    write(pipes["img2img"], "img2img", IMG2IMG_CASES, os.path.join(args.out, "sdxl_img2img_ref.safetensors"))
    write(pipes["inpaint"], "inpaint", INPAINT_CASES, os.path.join(args.out, "sdxl_inpaint_ref.safetensors"))
    print(f"wrote {len(IMG2IMG_CASES)} SDXL image-to-image and {len(INPAINT_CASES)} inpainting cases in {args.out}")


if __name__ == "__main__":
    main()
