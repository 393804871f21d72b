"""Checks for tools/sdc_layout.py.

    tools/.venv/bin/python tools/test_sdc_layout.py [--full] [--full-sd2] [--full-sdxl] [--keep DIR]

For tiny sd1 and tiny sd2 (and, with --full / --full-sd2, the full-size
SD 1.5 / SD 2.1 shapes; ~100 s and ~12 GB RAM each on 2 CPU cores):
  * diffusers' own single-file converters (convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
    convert_open_clip_checkpoint) turn our original-layout dict back into
    state dicts with the original key sets and bit-identical tensors;
  * write_single_file's file reads with safetensors.safe_open: F16 weights,
    I64 position_ids, F32 schedule buffers (matching diffusers' scheduler),
    and round-trips through the converters bit-identically in fp16;
  * write_diffusers_folder loads with from_pretrained (SD 2: one text layer
    fewer), and StableDiffusionPipeline.from_single_file(file, config=folder)
    gives the same weights as the folder;
  * a float32 forward pass of each random model is finite and non-trivial.
Also a 24-layer (narrow) OpenCLIP text tower checks that diffusers'
converter drops exactly the layer our diffusers folder drops.

SDXL (tiny): the same converter round trips (the U-Net's label_emb, text
encoder 1 under conditioner.embedders.0.transformer., text encoder 2 through
convert_open_clip_checkpoint with prefix conditioner.embedders.1.model.,
text_projection transposed back), the single file's dtypes and shapes, the
folder through from_pretrained, and StableDiffusionXLPipeline.from_single_file
(file, config=folder) giving the folder's weights and bit-identical latents.
Full-size SDXL is checked on the meta device (no memory): 2515 tensors as
SDXL base 1.0 has, the real shapes of label_emb, text_projection and
in_proj_weight, diffusers' model-type detection ("xl_base") and the
converter round trip of every key and shape.  --full-sdxl builds the real
thing in memory (~25 GB).

Prints one line per check; exits 1 on any failure.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from diffusers.utils import logging as _dlog  # noqa: E402

_dlog.disable_progress_bar()

import sdc_layout as L  # noqa: E402

FAILURES = []


def report(name, ok, detail=""):
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        FAILURES.append(name)


def compare(name, got, expected):
    """Key sets equal and every tensor bit-identical (same dtype and shape)."""
    gk, ek = set(got), set(expected)
    if gk != ek:
        missing = sorted(ek - gk)[:4]
        extra = sorted(gk - ek)[:4]
        report(name, False, f"key sets differ: missing {missing} extra {extra} "
                            f"({len(ek - gk)} missing, {len(gk - ek)} extra)")
        return
    bad = []
    for k in sorted(ek):
        a, b = got[k], expected[k]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            bad.append(f"{k} {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}")
    report(name, not bad, f"{len(ek)} tensors bit-identical" if not bad
           else f"{len(bad)} differ, e.g. {bad[:3]}")


def half(sd):
    return {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}


def sd1_expected_text(text_sd):
    out = dict(text_sd)
    out["text_model.embeddings.position_ids"] = torch.arange(
        text_sd["text_model.embeddings.position_embedding.weight"].shape[0]).unsqueeze(0)
    return out


def sd2_expected_text_from_converter(text_sd, nlayers):
    """diffusers' convert_open_clip_checkpoint skips resblocks.23 (hard-coded
    SD_2_TEXT_ENCODER_KEYS_TO_IGNORE) and the text_projection; so it drops
    the last layer exactly when the tower has 24 layers."""
    if nlayers == 24:
        return L.drop_last_text_layer(text_sd, nlayers)
    return dict(text_sd)


def check_converters(tag, orig, unet, vae, text, family, cast=None):
    """Run diffusers' converters over an original-layout dict."""
    conv = (lambda sd: half(sd)) if cast == "fp16" else (lambda sd: dict(sd))
    back = sfu.convert_ldm_unet_checkpoint(orig, dict(unet.config))
    compare(f"{tag} unet: convert_ldm_unet_checkpoint round trip", back, conv(unet.state_dict()))
    back = sfu.convert_ldm_vae_checkpoint(orig, dict(vae.config))
    compare(f"{tag} vae: convert_ldm_vae_checkpoint round trip", back, conv(vae.state_dict()))
    tsd = text.state_dict()
    if family == "sd1":
        back = sfu.convert_ldm_clip_checkpoint(orig)
        compare(f"{tag} text: convert_ldm_clip_checkpoint round trip (+position_ids)",
                back, conv(sd1_expected_text(tsd)))
    else:
        back = sfu.convert_open_clip_checkpoint(text, orig, prefix=L.OPENCLIP_PREFIX)
        nl = text.config.num_hidden_layers
        compare(f"{tag} text: convert_open_clip_checkpoint round trip ({nl} layers in, "
                f"{'last dropped' if nl == 24 else 'none dropped'})",
                back, conv(sd2_expected_text_from_converter(tsd, nl)))


def check_single_file(tag, path, unet, vae, text, family):
    size = os.path.getsize(path)
    orig_keys = set(L.original_state_dict(unet, vae, text, family).keys())
    extra_keys = set(L.schedule_buffers()) | set(L.ema_buffers())
    pid_key = L.CLIP_PREFIX + "text_model.embeddings.position_ids"
    problems = []
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
        if keys != orig_keys | extra_keys:
            problems.append(f"key set differs ({len(keys)} vs {len(orig_keys | extra_keys)})")
        if (meta or {}).get("format") != "pt":
            problems.append(f"metadata {meta}")
        counts = {}
        for k in keys:
            sl = f.get_slice(k)
            dt = sl.get_dtype()
            shape = sl.get_shape()
            counts[dt] = counts.get(dt, 0) + 1
            if k == pid_key:
                if dt != "I64" or shape != [1, text.config.max_position_embeddings]:
                    problems.append(f"{k} {dt} {shape}")
            elif k in L.schedule_buffers():
                if dt != "F32" or shape != [1000]:
                    problems.append(f"{k} {dt} {shape}")
            elif k == "model_ema.decay":
                if dt != "F32" or shape != []:
                    problems.append(f"{k} {dt} {shape}")
            elif k == "model_ema.num_updates":
                if dt != "I32" or shape != []:
                    problems.append(f"{k} {dt} {shape}")
            elif dt != "F16":
                problems.append(f"{k} {dt}")
        # schedule values versus diffusers' own scheduler (float32 math there)
        from diffusers import DDIMScheduler
        sch = DDIMScheduler.from_config(L.scheduler_config())
        ac = f.get_tensor("alphas_cumprod")
        betas = f.get_tensor("betas")
        if not torch.allclose(ac, sch.alphas_cumprod, rtol=1e-5, atol=1e-7):
            problems.append("alphas_cumprod differs from DDIMScheduler")
        if not torch.allclose(betas, sch.betas, rtol=1e-5, atol=1e-9):
            problems.append("betas differ from DDIMScheduler")
        if family == "sd2":
            tp = f.get_slice(L.OPENCLIP_PREFIX + "text_projection").get_shape()
            ls = f.get_slice(L.OPENCLIP_PREFIX + "logit_scale").get_shape()
            w = text.config.hidden_size
            if tp != [w, w] or ls != []:
                problems.append(f"text_projection {tp} logit_scale {ls}")
    report(f"{tag} single file: safe_open layout/dtypes", not problems,
           f"{len(keys)} tensors {dict(sorted(counts.items()))}, {size} bytes ({size / 2**20:.2f} MiB)"
           if not problems else "; ".join(problems[:6]))
    check_converters(f"{tag} single file (fp16)", load_file(path), unet, vae, text, family, cast="fp16")
    return size


def check_folder(tag, folder, single, unet, vae, text, family):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    u2 = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float16)
    v2 = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float16)
    t2 = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float16)
    s2 = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    compare(f"{tag} folder: unet from_pretrained", u2.state_dict(), half(unet.state_dict()))
    compare(f"{tag} folder: vae from_pretrained", v2.state_dict(), half(vae.state_dict()))
    exp_text, nl = L.diffusers_text_state_dict(text, family)
    want_nl = text.config.num_hidden_layers - (1 if family == "sd2" else 0)
    ok = t2.config.num_hidden_layers == want_nl == nl
    report(f"{tag} folder: text_encoder num_hidden_layers", ok,
           f"{t2.config.num_hidden_layers} (model has {text.config.num_hidden_layers})")
    compare(f"{tag} folder: text_encoder from_pretrained", t2.state_dict(), half(exp_text))
    sc = s2.config
    ok = (sc.num_train_timesteps == 1000 and sc.beta_schedule == "scaled_linear"
          and sc.beta_start == 0.00085 and sc.beta_end == 0.012 and sc.steps_offset == 1
          and sc.prediction_type == "epsilon" and not sc.set_alpha_to_one)
    report(f"{tag} folder: scheduler config", ok, type(s2).__name__)
    with open(os.path.join(folder, "model_index.json")) as fh:
        mi = json.load(fh)
    report(f"{tag} folder: model_index.json", mi.get("_class_name") == "StableDiffusionPipeline"
           and mi.get("unet") == ["diffusers", "UNet2DConditionModel"], mi.get("_class_name"))

    # end to end: diffusers reads our single file, configs from our folder
    if not os.path.isdir(os.path.join(folder, "tokenizer")):
        report(f"{tag} from_single_file(config=folder)", True, "skipped (no tokenizer writer)")
        return
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_single_file(
        single, config=folder, local_files_only=True, torch_dtype=torch.float16,
        safety_checker=None, requires_safety_checker=False)
    bad = []
    for name, a, b in (("unet", pipe.unet, u2), ("vae", pipe.vae, v2), ("text_encoder", pipe.text_encoder, t2)):
        sa, sb = a.state_dict(), b.state_dict()
        if set(sa) != set(sb) or any(not torch.equal(sa[k], sb[k]) for k in sb):
            bad.append(name)
    report(f"{tag} from_single_file(config=folder) equals folder", not bad,
           "unet, vae, text_encoder identical" if not bad else f"differ: {bad}")


@torch.no_grad()
def check_forward(tag, unet, vae, text):
    tc = text.config
    ids = torch.randint(0, tc.vocab_size, (1, tc.max_position_embeddings), generator=torch.Generator().manual_seed(1))
    h = text(ids).last_hidden_state
    ctx = torch.randn(1, tc.max_position_embeddings, unet.config.cross_attention_dim,
                      generator=torch.Generator().manual_seed(2))
    s = unet.config.sample_size
    x = torch.randn(1, unet.config.in_channels, s, s, generator=torch.Generator().manual_seed(3))
    eps = unet(x, 999, encoder_hidden_states=ctx).sample
    img = vae.decode(x).sample
    stats = {"text": h, "unet": eps, "vae.decode": img}
    ok = all(torch.isfinite(t).all() and t.abs().max() < 6e4 and 0.01 < t.std() < 100 for t in stats.values())
    report(f"{tag} forward (fp32) finite and non-trivial", bool(ok),
           ", ".join(f"{k} std {v.std():.3f} max {v.abs().max():.2f}" for k, v in stats.items()))


def tokenizer_writer_for(family):
    try:
        import clip_vocab
    except Exception:
        return None
    pad = "<|endoftext|>" if family == "sd1" else "!"
    return lambda d: clip_vocab.write_hf_tokenizer(d, pad_token=pad)


def run_family(family, size, workdir, timing=False):
    tag = f"{size} {family}"
    t0 = time.time()
    unet, vae, text = L.build_models(family, size, seed=1234)
    t_build = time.time() - t0
    if size == "tiny":
        check_forward(tag, unet, vae, text)
    orig = L.original_state_dict(unet, vae, text, family)
    check_converters(f"{tag} fp32", orig, unet, vae, text, family)
    del orig
    single = os.path.join(workdir, f"{size}_{family}.safetensors")
    t1 = time.time()
    L.write_single_file(single, unet, vae, text, family)
    t_write = time.time() - t1
    size_b = check_single_file(tag, single, unet, vae, text, family)
    folder = os.path.join(workdir, f"{size}_{family}")
    t2 = time.time()
    L.write_diffusers_folder(folder, unet, vae, text, family,
                             tokenizer_writer=tokenizer_writer_for(family))
    t_folder = time.time() - t2
    check_folder(tag, folder, single, unet, vae, text, family)
    if timing:
        print(f"[INFO] {tag}: build {t_build:.1f}s, write_single_file {t_write:.1f}s "
              f"({size_b / 2**20:.1f} MiB), write_diffusers_folder {t_folder:.1f}s, "
              f"total incl. checks {time.time() - t0:.1f}s", flush=True)


def check_sd2_layer_drop():
    """24-layer narrow OpenCLIP tower: diffusers' converter output equals the
    text encoder our diffusers folder stores (last layer dropped)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(7)
    cfg = dict(L.TEXT_CONFIGS[("sd2", "tiny")], num_hidden_layers=24)
    text = L.randomize_(CLIPTextModel(CLIPTextConfig(**cfg)))
    orig = L.clip_to_openclip_sd2(text.state_dict(), text.config)
    back = sfu.convert_open_clip_checkpoint(text, orig, prefix=L.OPENCLIP_PREFIX)
    exp, nl = L.diffusers_text_state_dict(text, "sd2")
    ok_nl = nl == 23
    compare("sd2 24-layer text: converter drop == write_diffusers_folder drop" + ("" if ok_nl else " (bad nl)"),
            back, exp)


def sdxl_expected_text1(text_sd):
    return sd1_expected_text(text_sd)


def check_sdxl_converters(tag, orig, unet, vae, te1, te2, cast=None, shapes_only=False):
    """diffusers' converters over an SDXL original-layout dict."""
    conv = (lambda sd: half(sd)) if cast == "fp16" else (lambda sd: dict(sd))
    cmp = compare_shapes if shapes_only else compare
    back = sfu.convert_ldm_unet_checkpoint(orig, dict(unet.config))
    cmp(f"{tag} unet: convert_ldm_unet_checkpoint round trip (label_emb -> add_embedding)",
        back, conv(unet.state_dict()))
    back = sfu.convert_ldm_vae_checkpoint(orig, dict(vae.config))
    cmp(f"{tag} vae: convert_ldm_vae_checkpoint round trip", back, conv(vae.state_dict()))
    back = sfu.convert_ldm_clip_checkpoint(orig)
    cmp(f"{tag} text 1: convert_ldm_clip_checkpoint round trip (+position_ids)",
        back, conv(sdxl_expected_text1(te1.state_dict())))
    back = sfu.convert_open_clip_checkpoint(te2, orig, prefix=L.SDXL_OPENCLIP_PREFIX)
    cmp(f"{tag} text 2: convert_open_clip_checkpoint round trip (text_projection transposed back)",
        back, conv(te2.state_dict()))


def compare_shapes(name, got, expected):
    """Key sets and shapes equal (meta tensors have no values)."""
    gk, ek = set(got), set(expected)
    bad = [k for k in ek & gk if tuple(got[k].shape) != tuple(expected[k].shape)]
    ok = gk == ek and not bad
    report(name + " [shapes]", ok, f"{len(ek)} tensors, keys and shapes equal" if ok
           else f"missing {sorted(ek - gk)[:3]} extra {sorted(gk - ek)[:3]} shape {bad[:3]}")


def check_sdxl_single_file(tag, path, unet, vae, te1, te2):
    orig_keys = set(L.original_state_dict(unet, vae, te1, "sdxl", te2).keys())
    pid_key = L.SDXL_CLIP_PREFIX + "text_model.embeddings.position_ids"
    w2, proj = te2.config.hidden_size, te2.config.projection_dim
    ucfg = unet.config
    want_shapes = {
        L.SDXL_OPENCLIP_PREFIX + "text_projection": [w2, proj],
        L.SDXL_OPENCLIP_PREFIX + "logit_scale": [],
        L.SDXL_OPENCLIP_PREFIX + "transformer.resblocks.0.attn.in_proj_weight": [3 * w2, w2],
        L.SDXL_OPENCLIP_PREFIX + "transformer.resblocks.0.attn.in_proj_bias": [3 * w2],
        L.UNET_PREFIX + "label_emb.0.0.weight": [4 * ucfg.block_out_channels[0],
                                                 ucfg.projection_class_embeddings_input_dim],
        L.UNET_PREFIX + "label_emb.0.2.weight": [4 * ucfg.block_out_channels[0]] * 2,
        pid_key: [1, te1.config.max_position_embeddings],
    }
    problems = []
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        if keys != orig_keys:
            problems.append(f"key set differs ({len(keys)} vs {len(orig_keys)})")
        counts = {}
        for k in keys:
            sl = f.get_slice(k)
            dt, shape = sl.get_dtype(), sl.get_shape()
            counts[dt] = counts.get(dt, 0) + 1
            if k in want_shapes and shape != want_shapes[k]:
                problems.append(f"{k} {shape} (want {want_shapes[k]})")
            if (dt != "I64") if k == pid_key else (dt != "F16"):
                problems.append(f"{k} {dt}")
        missing = [k for k in want_shapes if k not in keys]
        if missing:
            problems.append(f"missing {missing}")
    report(f"{tag} single file: safe_open layout/dtypes (no schedule buffers, no model_ema)", not problems,
           f"{len(keys)} tensors {dict(sorted(counts.items()))}, {os.path.getsize(path)} bytes"
           if not problems else "; ".join(problems[:6]))
    check_sdxl_converters(f"{tag} single file (fp16)", load_file(path), unet, vae, te1, te2, cast="fp16")


@torch.no_grad()
def check_sdxl_folder(tag, folder, single, unet, vae, te1, te2):
    from diffusers import StableDiffusionXLPipeline

    kw = dict(torch_dtype=torch.float32)
    pf = StableDiffusionXLPipeline.from_pretrained(folder, **kw)
    for name, model in (("unet", unet), ("vae", vae), ("text_encoder", te1), ("text_encoder_2", te2)):
        got = {k: v.half() for k, v in getattr(pf, name).state_dict().items()}
        compare(f"{tag} folder: {name} from_pretrained ({type(getattr(pf, name)).__name__})",
                got, half(model.state_dict()))
    sc = pf.scheduler.config
    ok = (type(pf.scheduler).__name__ == "EulerDiscreteScheduler" and sc.timestep_spacing == "leading"
          and sc.steps_offset == 1 and sc.beta_schedule == "scaled_linear" and sc.prediction_type == "epsilon")
    report(f"{tag} folder: scheduler", ok, type(pf.scheduler).__name__)
    ok = (pf.tokenizer.pad_token == "<|endoftext|>" and pf.tokenizer_2.pad_token == "!"
          and pf.tokenizer_2.pad_token_id == 0 and pf.config.force_zeros_for_empty_prompt)
    report(f"{tag} folder: tokenizers (pad <|endoftext|> / '!' = 0), force_zeros_for_empty_prompt", ok)
    ps = StableDiffusionXLPipeline.from_single_file(single, config=folder, local_files_only=True, **kw)
    bad = []
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(ps, name).state_dict(), getattr(pf, name).state_dict()
        if set(sa) != set(sb) or any(not torch.equal(sa[k], sb[k]) for k in sb):
            bad.append(name)
    report(f"{tag} from_single_file(config=folder) equals folder", not bad,
           "unet, vae, text_encoder, text_encoder_2 identical" if not bad else f"differ: {bad}")
    lat = []
    for pipe in (pf, ps):
        pipe.set_progress_bar_config(disable=True)
        g = torch.Generator().manual_seed(3)
        lat.append(pipe("a red circle", negative_prompt="blue", num_inference_steps=2, guidance_scale=5.0,
                        generator=g, output_type="latent").images)
    d = float((lat[0] - lat[1]).abs().max())
    report(f"{tag} from_single_file latents equal the folder's", d == 0.0 and bool(torch.isfinite(lat[0]).all()),
           f"max |diff| {d}, shape {tuple(lat[0].shape)}")


@torch.no_grad()
def check_sdxl_forward(tag, unet, vae, te1, te2):
    ids = torch.randint(0, 49408, (1, 77), generator=torch.Generator().manual_seed(1))
    o1 = te1(ids, output_hidden_states=True)
    o2 = te2(ids, output_hidden_states=True)
    ctx = torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], dim=-1)
    s = unet.config.sample_size
    x = torch.randn(1, 4, s, s, generator=torch.Generator().manual_seed(3))
    tid = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])
    eps = unet(x, 999, encoder_hidden_states=ctx,
               added_cond_kwargs={"text_embeds": o2.text_embeds, "time_ids": tid}).sample
    img = vae.decode(x).sample
    stats = {"context": ctx, "pooled": o2.text_embeds, "unet": eps, "vae.decode": img}
    ok = all(torch.isfinite(t).all() and t.abs().max() < 6e4 and 0.01 < t.std() < 100 for t in stats.values())
    report(f"{tag} forward (fp32) finite and non-trivial", bool(ok),
           ", ".join(f"{k} std {v.std():.3f}" for k, v in stats.items()))


def run_sdxl(size, workdir):
    tag = f"{size} sdxl"
    t0 = time.time()
    unet, vae, te1, te2 = L.build_models("sdxl", size, seed=1234)
    if size == "tiny":
        check_sdxl_forward(tag, unet, vae, te1, te2)
    orig = L.original_state_dict(unet, vae, te1, "sdxl", te2)
    check_sdxl_converters(f"{tag} fp32", orig, unet, vae, te1, te2)
    del orig
    single = os.path.join(workdir, f"{size}_sdxl.safetensors")
    L.write_single_file(single, unet, vae, te1, "sdxl", text_encoder_2=te2)
    check_sdxl_single_file(tag, single, unet, vae, te1, te2)
    folder = os.path.join(workdir, f"{size}_sdxl")
    L.write_diffusers_folder(folder, unet, vae, te1, "sdxl", text_encoder_2=te2,
                             tokenizer_writer=tokenizer_writer_for("sd1"),
                             tokenizer_2_writer=tokenizer_writer_for("sd2"))
    if tokenizer_writer_for("sd1") is None:
        report(f"{tag} folder checks", True, "skipped (no tokenizer writer)")
    else:
        check_sdxl_folder(tag, folder, single, unet, vae, te1, te2)
    print(f"[INFO] {tag}: {time.time() - t0:.1f}s", flush=True)


def check_sdxl_full_meta():
    """Full-size SDXL on the meta device: names and shapes only."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet, vae, te1, te2 = L.build_models("sdxl", "full", seed=0)
    orig = L.original_state_dict(unet, vae, te1, "sdxl", te2)
    parts = {}
    for k in orig:
        p = ".".join(k.split(".")[:3]) if k.startswith("conditioner.") else k.split(".")[0]
        parts[p] = parts.get(p, 0) + 1
    want = {"model": 1680, "first_stage_model": 248, "conditioner.embedders.0": 197,
            "conditioner.embedders.1": 390}
    report("full sdxl (meta): 2515 tensors as SDXL base 1.0", parts == want and len(orig) == 2515,
           f"{len(orig)} {parts}")
    shapes = {
        L.UNET_PREFIX + "label_emb.0.0.weight": (1280, 2816),
        L.UNET_PREFIX + "label_emb.0.2.weight": (1280, 1280),
        L.SDXL_OPENCLIP_PREFIX + "text_projection": (1280, 1280),
        L.SDXL_OPENCLIP_PREFIX + "transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
        L.SDXL_OPENCLIP_PREFIX + "positional_embedding": (77, 1280),
        L.SDXL_CLIP_PREFIX + "text_model.embeddings.position_ids": (1, 77),
        L.SDXL_CLIP_PREFIX + "text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072),
        L.UNET_PREFIX + "input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight": (1280, 2048),
        L.UNET_PREFIX + "middle_block.1.transformer_blocks.9.attn1.to_q.weight": (1280, 1280),
        L.UNET_PREFIX + "output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        L.UNET_PREFIX + "output_blocks.5.2.conv.weight": (640, 640, 3, 3),
        L.UNET_PREFIX + "input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
        L.UNET_PREFIX + "input_blocks.4.1.proj_in.weight": (640, 640),
        L.VAE_PREFIX + "decoder.mid.attn_1.q.weight": (512, 512, 1, 1),
    }
    bad = [f"{k} {tuple(orig[k].shape) if k in orig else None}" for k, v in shapes.items()
           if k not in orig or tuple(orig[k].shape) != v]
    report("full sdxl (meta): real shapes of label_emb, text_projection, in_proj, ...", not bad,
           f"{len(shapes)} keys checked" if not bad else "; ".join(bad[:4]))
    mt = sfu.infer_diffusers_model_type(orig)
    report("full sdxl (meta): diffusers detects xl_base", mt == "xl_base", mt)
    check_sdxl_converters("full sdxl (meta)", orig, unet, vae, te1, te2, shapes_only=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also check full-size SD 1.5 shapes (~2 GB file)")
    ap.add_argument("--full-sd2", action="store_true", help="also check full-size SD 2.1 shapes (~2.6 GB file)")
    ap.add_argument("--full-sdxl", action="store_true", help="also build full-size SDXL in memory (~7 GB file)")
    ap.add_argument("--keep", help="write into this directory and keep it")
    args = ap.parse_args()

    workdir = args.keep or tempfile.mkdtemp(prefix="sdc_layout_")
    os.makedirs(workdir, exist_ok=True)
    try:
        for family in ("sd1", "sd2"):
            run_family(family, "tiny", workdir, timing=True)
        check_sd2_layer_drop()
        run_sdxl("tiny", workdir)
        check_sdxl_full_meta()
        if args.full:
            run_family("sd1", "full", workdir, timing=True)
        if args.full_sd2:
            run_family("sd2", "full", workdir, timing=True)
        if args.full_sdxl:
            run_sdxl("full", workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) FAILED")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
