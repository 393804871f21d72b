"""Checks for tools/sdc_layout.py.

    tools/.venv/bin/python tools/test_sdc_layout.py [--full] [--full-sd2] [--keep DIR]

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also check full-size SD 1.5 shapes (~2 GB file)")
    ap.add_argument("--full-sd2", action="store_true", help="also check full-size SD 2.1 shapes (~2.6 GB file)")
    ap.add_argument("--keep", help="write into this directory and keep it")
    args = ap.parse_args()

    workdir = args.keep or tempfile.mkdtemp(prefix="sdc_layout_")
    os.makedirs(workdir, exist_ok=True)
    try:
        for family in L.FAMILIES:
            run_family(family, "tiny", workdir, timing=True)
        check_sd2_layer_drop()
        if args.full:
            run_family("sd1", "full", workdir, timing=True)
        if args.full_sd2:
            run_family("sd2", "full", workdir, timing=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) FAILED")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
