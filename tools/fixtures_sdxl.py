#!/usr/bin/env python3
"""Reference fixtures for SDXL: a tiny random-weight SDXL-shaped model in
both layouts and diffusers' StableDiffusionXLPipeline on it (float32 on the
CPU, one torch generator per case, as users run it).

    python tools/fixtures_sdxl.py [--out tests/fixtures]

Needs tests/fixtures/tiny_sd1_diffusers/tokenizer (tools/make_fixtures.py):
the SDXL folder's two tokenizers link to its vocab.json and merges.txt.

Writes
  tiny_sdxl.safetensors        the model in Stability's single-file layout
      (F16; sdc_layout.py's "sdxl" family, tiny size): model.diffusion_model.*
      (label_emb.0.0 / label_emb.0.2 = the added embedding), first_stage_model.*,
      conditioner.embedders.0.transformer.text_model.* (+ position_ids I64),
      conditioner.embedders.1.model.* (OpenCLIP names, text_projection
      [width, projection_dim], logit_scale).  __metadata__: sdc.text.heads,
      sdc.text2.heads, sdc.unet.heads (per level), sdc.unet.norm_groups,
      sdc.vae.norm_groups, sdc.unet.addition_time_embed_dim (real SDXL files
      say none of this; the tiny model has no standard values).
  tiny_sdxl_diffusers/         the same weights as a diffusers folder
      (text_encoder, text_encoder_2 = CLIPTextModelWithProjection, tokenizer
      padded with <|endoftext|>, tokenizer_2 padded with "!", unet, vae,
      scheduler = SDXL's EulerDiscreteScheduler config, F16)
  sdxl_tiny_ref.safetensors    per case i:
      latents<i>   F32 [1, 4, H/8, W/8]  the pipeline's final latents
      image<i>     U8  [H, W, 3]         VAE decode of latents / 0.13025
      cond<i>      F32 [77, 10]          prompt_embeds the U-Net got
                                         (penultimate hidden states of
                                         encoder 1 (4) and encoder 2 (6))
      pooled<i>    F32 [5]               pooled_prompt_embeds (encoder 2's
                                         projected output at its EOS token)
      time_ids<i>  F32 [6]               add_time_ids: original (h, w),
                                         crop (top, left), target (h, w)
      neg_cond<i>, neg_pooled<i>         the same for the negative side, in
                                         the cases with guidance (cfg > 1)
      __metadata__ "cases": JSON list of {prompt, prompt_2, negative,
      negative_mode, sampler, karras, spacing, eta, cfg, steps, seed, width,
      height, original_size, crop, target_size}; original_size and
      target_size are [height, width], crop [top, left], all as the
      pipeline used them (its defaults filled in).  negative is null when the
      pipeline got negative_prompt=None; negative_mode says what it did:
      "text" (encoded), "empty_text" (negative_prompt="" encoded like any
      text), "zeros" (None with force_zeros_for_empty_prompt: all-zero
      prompt and pooled embeddings) or "unused" (cfg 1: no unconditional
      pass).  prompt_2 is null when the pipeline got none (it then uses
      prompt for encoder 2).  Also "scheduler_config" (JSON: the folder's
      EulerDiscreteScheduler config every sampler was made from, with
      timestep_spacing "leading" and steps_offset 1; a case's karras and
      spacing override it), "vae_scaling_factor", and
      "force_zeros_for_empty_prompt".
  te_tiny_sdxl_ref.safetensors the two text encoders alone, float64 from the
      F16 weights, for PROMPTS (metadata "prompts"):
      ids1 I64 [P, 77] (tokenizer, pad <|endoftext|>), ids2 I64 [P, 77]
      (tokenizer_2, pad "!" = id 0), pen1 F32 [P, 77, 4] / pen2 F32
      [P, 77, 6] (hidden_states[-2]: the penultimate layer's output, no
      final LayerNorm), last2 F32 [P, 77, 6] (last layer + final LayerNorm),
      pooled2 F32 [P, 5] (last2 at argmax(ids2) @ text_projection)
  unet_tiny_sdxl_ref.safetensors  the U-Net alone, float64 from the F16
      weights: context F32 [2, 77, 10], text_embeds F32 [2, 5], time_ids F32
      [2, 6], x<i> / out<i> F32 NCHW at 8x8 and 7x9 latents, metadata t<i>
  cond_tiny_sdxl_ref.safetensors  AUTOMATIC1111's SDXL conditioning of
      weighted, long and BREAK prompts (metadata "prompts": JSON list of
      [prompt, prompt_2 or null]), float64 from the F16 weights: each
      77-token window (A1111's chunking, tools/fixtures_prompts.py) through
      both encoders (the second padded with 0 after the first EOS), each
      encoder's penultimate layer scaled by the window's weights and
      renormalised to its own mean (process_tokens per embedder), the two
      side by side per token, windows concatenated: cond<i> F32 [77 n, 10];
      pooled<i> F32 [5], the second encoder's first window at its first EOS
      (last layer, final LayerNorm, text_projection; weights do not touch
      it). With prompt_2, the encoder with fewer windows gets the encoding
      of "" for the rest.
  vae_tiny_sdxl_ref.safetensors   the VAE decoder alone (post_quant_conv +
      decoder, no scaling), float64 from the F16 weights: z F32 [1, 4, 4, 6],
      image F32 [1, 3, 32, 48]

The single file is checked against the folder: diffusers'
StableDiffusionXLPipeline.from_single_file(file, config=folder) must load
the same weights and give the same latents for every case.
"""
import argparse
import copy
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
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402
import sdc_layout  # noqa: E402

MODEL_SEED = 1301
PROMPT = "a small red circle in the top left corner on a blue background"
PROMPT_2 = "a watercolor painting of a lighthouse at dusk"
NEGATIVE = "blurry, green"
NATIVE = 64  # tiny sample_size 8 x the VAE's factor 8
PROMPTS = [
    PROMPT,
    "",
    # more than 75 tokens: truncated, EOS at position 76
    "a very long prompt " + ", ".join(f"detail number {i}" for i in range(40)),
]

# Each case: sampler, karras, spacing, eta, cfg, steps, seed, negative
# (None, a string, or "" explicitly), prompt_2, width, height, and the
# size conditioning (None: the pipeline's defaults).
CASES = [
    dict(sampler="euler", cfg=5.0, steps=4, seed=80, negative=NEGATIVE),
    dict(sampler="ddim", cfg=5.0, steps=4, seed=81, negative=None),
    dict(sampler="euler_a", cfg=5.0, steps=4, seed=82, negative=""),
    dict(sampler="dpmpp_2m", karras=True, cfg=5.0, steps=5, seed=83, negative=NEGATIVE),
    dict(sampler="dpmpp_2m", cfg=5.0, steps=4, seed=84, negative=NEGATIVE, prompt_2=PROMPT_2),
    dict(sampler="euler", cfg=5.0, steps=4, seed=85, negative=NEGATIVE,
         original_size=(128, 96), crop=(16, 8), target_size=(64, 80)),
    # SDXL Turbo style: no guidance, trailing spacing
    dict(sampler="euler_a", spacing="trailing", cfg=1.0, steps=1, seed=86, negative=None),
    dict(sampler="euler_a", spacing="trailing", cfg=1.0, steps=2, seed=87, negative=None),
    # another size: 96 wide, 64 high (latent 8 x 12)
    dict(sampler="euler", cfg=5.0, steps=4, seed=88, negative=NEGATIVE, width=96, height=64),
    # odd latent (6 x 10): the U-Net upsamples to the skip connections' size
    dict(sampler="euler_a", cfg=5.0, steps=3, seed=89, negative=None, width=80, height=48),
]


def save_sorted(tensors, path, metadata=None):
    """save_file with the __metadata__ entries in sorted order: safetensors
    writes them in hash-map order, which changes from run to run, so the
    same tensors and metadata would give different bytes."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        text = raw.decode("utf-8")
        pad = len(text) - len(text.rstrip(" "))
        head = json.loads(text)
        if "__metadata__" in head:
            head["__metadata__"] = dict(sorted(head["__metadata__"].items()))
        out = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b" " * pad
        if len(out) != n:
            raise RuntimeError(f"{path}: header re-serialisation changed its length")
        f.seek(8)
        f.write(out)


def case_params(c):
    """A case with every field filled in."""
    p = dict(prompt=PROMPT, prompt_2=None, negative=None, sampler=None, karras=False, spacing="leading",
             eta=0.0, cfg=None, steps=None, seed=None, width=NATIVE, height=NATIVE,
             original_size=None, crop=(0, 0), target_size=None)
    p.update(c)
    p["original_size"] = list(p["original_size"] or (p["height"], p["width"]))
    p["target_size"] = list(p["target_size"] or (p["height"], p["width"]))
    p["crop"] = list(p["crop"])
    if p["cfg"] <= 1.0:
        p["negative_mode"] = "unused"
    elif p["negative"] is None:
        p["negative_mode"] = "zeros"
    elif p["negative"] == "":
        p["negative_mode"] = "empty_text"
    else:
        p["negative_mode"] = "text"
    return p


def schedulers():
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler)
    return {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler,
            "dpmpp_2m": DPMSolverMultistepScheduler}


def link_vocab(out, folder):
    """vocab.json and merges.txt of both tokenizers: relative links to the
    tiny SD 1.x folder's copies (the same 1.4 MB for every CLIP tokenizer)."""
    src = os.path.join(out, "tiny_sd1_diffusers", "tokenizer")
    for sub in ("tokenizer", "tokenizer_2"):
        d = os.path.join(folder, sub)
        for name in ("vocab.json", "merges.txt"):
            a, b = os.path.join(src, name), os.path.join(d, name)
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), f"{name} differs from the tiny SD 1.x folder's"
            os.remove(b)
            os.symlink(os.path.relpath(a, d), b)


def write_models(out):
    unet, vae, te1, te2 = sdc_layout.build_models("sdxl", "tiny", MODEL_SEED)
    single = os.path.join(out, "tiny_sdxl.safetensors")
    sdc_layout.write_single_file(single, unet, vae, te1, "sdxl", dtype=torch.float16, text_encoder_2=te2)
    ucfg = unet.config
    tensors = load_file(single)
    meta = {"format": "pt",
            "sdc.text.heads": str(te1.config.num_attention_heads),
            "sdc.text2.heads": str(te2.config.num_attention_heads),
            "sdc.unet.heads": ",".join(str(h) for h in ucfg.attention_head_dim),
            "sdc.unet.norm_groups": str(ucfg.norm_num_groups),
            "sdc.vae.norm_groups": str(vae.config.norm_num_groups),
            "sdc.unet.addition_time_embed_dim": str(ucfg.addition_time_embed_dim)}
    save_sorted(tensors, single, meta)
    folder = os.path.join(out, "tiny_sdxl_diffusers")
    sdc_layout.write_diffusers_folder(
        folder, unet, vae, te1, "sdxl", dtype=torch.float16, text_encoder_2=te2,
        tokenizer_writer=lambda d: clip_vocab.write_hf_tokenizer(d, pad_token="<|endoftext|>"),
        tokenizer_2_writer=lambda d: clip_vocab.write_hf_tokenizer(d, pad_token="!"))
    link_vocab(out, folder)
    return single, folder, (unet, vae, te1, te2)


def load_pipe(folder, single=None):
    from diffusers import StableDiffusionXLPipeline
    if single is None:
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    else:
        pipe = StableDiffusionXLPipeline.from_single_file(single, config=folder, local_files_only=True,
                                                          torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def run_case(pipe, p, base_config):
    """One pipeline run: (final latents, U-Net inputs of the first call)."""
    extra = {}
    if p["karras"]:
        extra["use_karras_sigmas"] = True
    if p["spacing"] != base_config.get("timestep_spacing"):
        extra["timestep_spacing"] = p["spacing"]
    pipe.scheduler = schedulers()[p["sampler"]].from_config(base_config, **extra)
    sc = pipe.scheduler.config
    assert sc.timestep_spacing == p["spacing"] and sc.steps_offset == 1, (sc.timestep_spacing, sc.steps_offset)
    assert bool(getattr(sc, "use_karras_sigmas", False)) == p["karras"]
    seen = {}

    def grab(module, args, kwargs):
        if not seen:
            seen["ctx"] = kwargs["encoder_hidden_states"].detach().clone()
            seen["pooled"] = kwargs["added_cond_kwargs"]["text_embeds"].detach().clone()
            seen["time_ids"] = kwargs["added_cond_kwargs"]["time_ids"].detach().clone()

    hook = pipe.unet.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        kw = {"eta": p["eta"]} if p["sampler"] == "ddim" else {}
        g = torch.Generator("cpu").manual_seed(p["seed"])
        lat = pipe(p["prompt"], prompt_2=p["prompt_2"], negative_prompt=p["negative"],
                   width=p["width"], height=p["height"], num_inference_steps=p["steps"],
                   guidance_scale=p["cfg"], generator=g, output_type="latent",
                   original_size=tuple(p["original_size"]), crops_coords_top_left=tuple(p["crop"]),
                   target_size=tuple(p["target_size"]), **kw).images
    finally:
        hook.remove()
    return lat, seen


@torch.no_grad()
def decode(vae, lat):
    img = vae.decode(lat / vae.config.scaling_factor).sample
    img = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return torch.from_numpy((img * 255).round().astype("uint8")[0]).contiguous()


def pipeline_reference(folder, single, path):
    pipe = load_pipe(folder)
    base = dict(pipe.scheduler.config)
    tensors, cases, lats = {}, [], []
    for i, c in enumerate(CASES):
        p = case_params(c)
        lat, seen = run_case(pipe, p, base)
        cfg_on = p["cfg"] > 1.0
        assert seen["ctx"].shape[0] == (2 if cfg_on else 1)
        tensors[f"latents{i}"] = lat.float().contiguous()
        tensors[f"image{i}"] = decode(pipe.vae, lat)
        tensors[f"cond{i}"] = seen["ctx"][-1].float().contiguous()
        tensors[f"pooled{i}"] = seen["pooled"][-1].float().contiguous()
        tensors[f"time_ids{i}"] = seen["time_ids"][-1].float().contiguous()
        want = p["original_size"] + p["crop"] + p["target_size"]
        assert tensors[f"time_ids{i}"].tolist() == [float(v) for v in want], (i, tensors[f"time_ids{i}"])
        if cfg_on:
            tensors[f"neg_cond{i}"] = seen["ctx"][0].float().contiguous()
            tensors[f"neg_pooled{i}"] = seen["pooled"][0].float().contiguous()
            assert torch.equal(seen["time_ids"][0], seen["time_ids"][-1])
            zero = not tensors[f"neg_cond{i}"].any() and not tensors[f"neg_pooled{i}"].any()
            assert zero == (p["negative_mode"] == "zeros"), (i, p["negative_mode"])
        img = tensors[f"image{i}"]
        assert 0 < int((img > 0).sum()) and int((img < 255).sum()) > 0, f"case {i}: saturated image"
        cases.append(p)
        lats.append(lat)
        print(f"case {i}: {p['sampler']}{' karras' if p['karras'] else ''} {p['spacing']} cfg {p['cfg']} "
              f"steps {p['steps']} {p['width']}x{p['height']} negative {p['negative_mode']}: latents std "
              f"{lat.std():.3f}, image mean {img.float().mean():.1f}")
    meta = {"cases": json.dumps(cases), "vae_scaling_factor": str(pipe.vae.config.scaling_factor),
            "scheduler_config": json.dumps({k: v for k, v in base.items() if not k.startswith("_")},
                                           sort_keys=True),
            "force_zeros_for_empty_prompt": str(pipe.config.force_zeros_for_empty_prompt).lower()}
    save_sorted(tensors, path, meta)

    # the single file, read by diffusers with the folder's configs: the same
    # weights and the same latents
    sf = load_pipe(folder, single)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(pipe, name).state_dict(), getattr(sf, name).state_dict()
        assert set(a) == set(b), name
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        assert not bad, f"{name}: {len(bad)} tensors differ, e.g. {bad[:3]}"
    base_sf = dict(sf.scheduler.config)
    worst = 0.0
    for i, c in enumerate(CASES):
        lat, _ = run_case(sf, case_params(c), base_sf)
        worst = max(worst, float((lat - lats[i]).abs().max()))
    assert worst == 0.0, f"from_single_file latents differ by {worst}"
    print(f"from_single_file(config=folder): identical weights, latents of all {len(CASES)} cases bit-identical")


def f64_copy(model):
    """The F16-rounded weights (what the files store) in float64."""
    return copy.deepcopy(model).to(torch.float16).to(torch.float64).eval()


@torch.no_grad()
def text_reference(folder, te1, te2, path):
    from transformers import CLIPTokenizer
    tok1 = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    tok2 = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer_2"))
    ids1 = tok1(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ids2 = tok2(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    a, b = f64_copy(te1), f64_copy(te2)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # transformers builds its causal mask in it
    try:
        o1 = a(input_ids=ids1, output_hidden_states=True)
        o2 = b(input_ids=ids2, output_hidden_states=True)
    finally:
        torch.set_default_dtype(default)
    eos = ids2.argmax(dim=-1)
    pooled = o2.last_hidden_state[torch.arange(len(PROMPTS)), eos] @ b.text_projection.weight.t()
    assert torch.allclose(pooled, o2.text_embeds, rtol=0, atol=1e-12)
    tensors = {"ids1": ids1.to(torch.int64), "ids2": ids2.to(torch.int64),
               "pen1": o1.hidden_states[-2].float(), "pen2": o2.hidden_states[-2].float(),
               "last2": o2.last_hidden_state.float(), "pooled2": o2.text_embeds.float()}
    save_sorted({k: v.contiguous() for k, v in tensors.items()}, path,
                {"prompts": json.dumps(PROMPTS, ensure_ascii=False)})


# A1111-syntax prompts (make_fixtures.py's CONDITIONING_PROMPTS for SD 1.x
# and 2.x) and two with a second prompt of another window count.
COND_PROMPTS = [
    ["a (red:1.4) circle on a [blue] background", None],
    ["((masterpiece)), best quality, (portrait:1.2) of a [[woman]] in a (red dress:0.8)", None],
    ["a castle BREAK on a hill, (sunset:1.3)", None],
    [", ".join(f"(detail {i}:1.{i % 5})" if i % 3 == 0 else f"plain detail {i}" for i in range(40)), None],
    [" ".join(f"word{i}" for i in range(220)), None],
    ["a (lighthouse:1.2) BREAK at dusk BREAK over the sea", "a watercolor painting"],
    ["a cat", "an (oil painting:1.1) BREAK of a cat on a sofa"],
]


@torch.no_grad()
def conditioning_reference(te1, te2, path):
    import fixtures_prompts as fp
    a, b = f64_copy(te1), f64_copy(te2)
    tok = fp.make_tokenizer()
    comma = tok.get_vocab()[",</w>"]

    def windows(text, pad2):
        frags = fp.parse_attention(text)
        ids_of = tok([t for t, _ in frags], truncation=False, add_special_tokens=False)["input_ids"]
        return [(fp.pad_sd2(ids) if pad2 else ids, w) for ids, w in fp.tokenize_line(frags, ids_of, comma)]

    def encode(model, ids, w):
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        z = out.hidden_states[-2]
        mult = torch.tensor(np.float32(w), dtype=torch.float64).reshape(1, 77, 1)
        before = z.mean()
        z = z * mult
        return (z * (before / z.mean()))[0], out

    tensors = {}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for i, (prompt, prompt_2) in enumerate(COND_PROMPTS):
            w1, w2 = windows(prompt, False), windows(prompt_2 or prompt, True)
            e1, e2 = windows("", False)[0], windows("", True)[0]
            n = max(len(w1), len(w2))
            zs, pooled = [], None
            for k in range(n):
                z1, _ = encode(a, *(w1[k] if k < len(w1) else e1))
                ids2, m2 = w2[k] if k < len(w2) else e2
                z2, out2 = encode(b, ids2, m2)
                if k == 0:
                    eos = int(torch.tensor(ids2).argmax())
                    pooled = out2.text_embeds[0]
                    assert torch.allclose(pooled, out2.last_hidden_state[0, eos] @ b.text_projection.weight.t())
                zs.append(torch.cat([z1, z2], dim=-1))
            tensors[f"cond{i}"] = torch.cat(zs).float().contiguous()
            tensors[f"pooled{i}"] = pooled.float().contiguous()
    finally:
        torch.set_default_dtype(default)
    save_sorted(tensors, path, {"prompts": json.dumps(COND_PROMPTS, ensure_ascii=False)})


@torch.no_grad()
def unet_reference(unet, path):
    u = f64_copy(unet)
    g = torch.Generator().manual_seed(17)
    cfg = unet.config
    proj = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    context = torch.randn(2, 77, cfg.cross_attention_dim, generator=g, dtype=torch.float64)
    text_embeds = torch.randn(2, proj, generator=g, dtype=torch.float64)
    time_ids = torch.tensor([[64, 64, 0, 0, 64, 64], [128, 96, 16, 8, 64, 80]], dtype=torch.float64)
    tensors = {"context": context, "text_embeds": text_embeds, "time_ids": time_ids}
    meta = {}
    for i, (h, w) in enumerate([(8, 8), (7, 9)]):
        x = torch.randn(2, 4, h, w, generator=g, dtype=torch.float64)
        t = [999, 421][i]
        y = u(x, t, encoder_hidden_states=context,
              added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        tensors[f"x{i}"], tensors[f"out{i}"] = x, y
        meta[f"t{i}"] = str(t)
    save_sorted({k: v.float().contiguous() for k, v in tensors.items()}, path, meta)


@torch.no_grad()
def vae_reference(vae, path):
    v = f64_copy(vae)
    g = torch.Generator().manual_seed(18)
    z = torch.randn(1, 4, 4, 6, generator=g, dtype=torch.float64)
    img = v.decode(z).sample
    save_sorted({"z": z.float().contiguous(), "image": img.float().contiguous()}, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    ap.add_argument("--only-conditioning", action="store_true",
                    help="write cond_tiny_sdxl_ref.safetensors alone (the models are rebuilt, not written)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.only_conditioning:
        _, _, te1, te2 = sdc_layout.build_models("sdxl", "tiny", MODEL_SEED)
        conditioning_reference(te1, te2, os.path.join(args.out, "cond_tiny_sdxl_ref.safetensors"))
        return
    single, folder, (unet, vae, te1, te2) = write_models(args.out)
    pipeline_reference(folder, single, os.path.join(args.out, "sdxl_tiny_ref.safetensors"))
    text_reference(folder, te1, te2, os.path.join(args.out, "te_tiny_sdxl_ref.safetensors"))
    unet_reference(unet, os.path.join(args.out, "unet_tiny_sdxl_ref.safetensors"))
    vae_reference(vae, os.path.join(args.out, "vae_tiny_sdxl_ref.safetensors"))
    conditioning_reference(te1, te2, os.path.join(args.out, "cond_tiny_sdxl_ref.safetensors"))
    print(f"wrote the tiny SDXL fixtures in {args.out}")


if __name__ == "__main__":
    main()
