#!/usr/bin/env python3
"""Reference fixtures for LoRAs on SDXL: small random networks for the tiny
SDXL model (tools/fixtures_sdxl.py's, both text encoders and the U-Net) in
the formats SDXL LoRAs come in, and what AUTOMATIC1111's
<lora:NAME:TE_W:UNET_W> tags do with them, computed by diffusers'
StableDiffusionXLPipeline (float32, CPU generator) and by merging the
weights.

    python tools/fixtures_lora_sdxl.py [--out tests/fixtures]

Needs tests/fixtures/tiny_sdxl_diffusers (tools/fixtures_sdxl.py) and
tools/fixtures_lora.py's helpers. Writes, under lora/ (each a few tens
of KB: every fifth or seventh of the U-Net's transformer modules, chosen so
that every kind of module and every block naming is there):
    xl_kohya.safetensors    kohya sd-scripts' SDXL LoRA, F16: U-Net
        transformer modules under the original (LDM) names as sd-scripts
        writes them (lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_
        to_q, lora_unet_middle_block_1_..., lora_unet_output_blocks_N_1_...),
        both text encoders in transformers' names: lora_te1_text_model_
        encoder_layers_N_{self_attn_{q,k,v,out}_proj, mlp_fc1, mlp_fc2} and
        the same under lora_te2_ (every layer's); rank 4, alpha varying per
        U-Net module
    xl_kohya_diffusers.safetensors  the same tensors, the U-Net's modules in
        diffusers' names (lora_unet_down_blocks_1_attentions_0_...)
    xl_locon.safetensors    kohya LoCon, F16 with F32 alphas: transformer
        modules and every other of the resnets' modules under the original
        names (in_layers_2, out_layers_3 3x3, skip_connection 1x1,
        emb_layers_1, the downsamplers' op and the upsamplers' conv), both
        encoders; three rank-2 modules without alpha (scale 1)
    xl_peft.safetensors     diffusers / PEFT LoRA as
        StableDiffusionXLPipeline.save_lora_weights writes it (peft's
        adapters, seeded values): unet.<module>.lora_{A,B}.weight on three
        attentions (a down, the mid and an up block's: to_q/k/v/out,
        proj_in/proj_out), two 3x3 convs, time_embedding.linear_1 and
        add_embedding.linear_2; text_encoder.* and text_encoder_2.* on
        every encoder layer's linear; no alpha (scale 1)
    xl_loha.safetensors     LyCORIS LoHa, F32, original names: attention
        modules, every fifth encoder module, 3x3 convs (two in the CP form
        with hada_t1/hada_t2), label_emb_0_0 and time_embed_2 (the added
        and the time embeddings' linears)
and lora_sdxl_tiny_ref.safetensors: per case i latents<i> (F32 NCHW, the
pipeline's final latents), image<i> (U8 HWC), cond<i> / neg_cond<i> (F32
[77, 10], the prompt_embeds the U-Net got for the prompt and for the
negative prompt, with that case's LoRAs) and pooled<i> / neg_pooled<i> (F32
[5]); __metadata__ "cases" (JSON list of fixtures_sdxl.case_params' fields
with prompt = the prompt as the user writes it (with its tags), text = the
prompt the pipeline got (tags cut out), loras [{name, te, unet}],
reference, lora_hashes).

The semantics are tools/fixtures_lora.py's (A1111's): the tags are cut out
of the prompt; W += multiplier * alpha / rank * delta; the tag's te weight
for both text encoders' modules, unet for the U-Net's. The second encoder's
modules are named in transformers' names whatever the model's layout (an
SDXL single file keeps it in OpenCLIP's: q, k, v are thirds of in_proj).

reference "diffusers": the stored result is diffusers'
(load_lora_weights, set_adapters with {"text_encoder": te,
"text_encoder_2": te, "unet": unet} per LoRA), asserted to agree with this
script's merge of the weights in float64 (latents within 1e-3, the
conditioning and pooled output within 1e-4) and its PEFT layers' scales
and deltas checked module by module against the files. reference "merge":
diffusers 0.31 reads no LoHa, so the merged weights' result is the
reference. diffusers' quirks that tools/fixtures_lora.py describes hold
here per text encoder: every self_attn module of an encoder has its most
common alpha, and a module without alpha gets its part's most common alpha,
so the alpha-less modules have rank 2 and the U-Net's most common alpha is
2. diffusers reads LDM-named SDXL kohya files by itself (SDXL's
load_lora_weights passes the U-Net's config), and xl_kohya_diffusers is
asserted to give case 0's latents there.

The cases (CASES): 48x40 (latents 6 x 5), cfg 5 with the negative prompt
given, the folder's scheduler config ("leading" spacing) for each sampler;
each LoRA alone, te and unet weights apart, and two LoRAs together.
"""
import argparse
import collections
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures_lora as fl  # noqa: E402
import fixtures_sdxl as fx  # noqa: E402

PROMPT = fl.PROMPT
NEGATIVE = fl.NEGATIVE
WIDTH, HEIGHT = 48, 40  # latents 6 x 5: the U-Net's odd sizes too

# (prompt as the user writes it, sampler, karras, steps, seed); cfg 5 with
# the negative prompt given
CASES = [
    (PROMPT + " <lora:xl_kohya:0.8>", "euler", False, 4, 400),
    (PROMPT + " <lora:xl_kohya:0.5:1.3>", "dpmpp_2m", False, 4, 401),
    (PROMPT + " <lora:xl_locon:1.0>", "euler_a", False, 4, 402),
    (PROMPT + " <lora:xl_peft:0.9>", "ddim", False, 4, 403),
    ("<lora:xl_loha:1> " + PROMPT, "euler", False, 4, 404),
    (PROMPT + " <lora:xl_kohya:0.6> <lora:xl_peft:0.5>", "dpmpp_2m", True, 5, 405),
]
DIFFUSERS_LOADS = {"xl_kohya", "xl_kohya_diffusers", "xl_locon", "xl_peft"}
TEXT_PARTS = (("te1", "lora_te1_", "text_encoder."), ("te2", "lora_te2_", "text_encoder_2."))


def load_pipe(out):
    return fx.load_pipe(os.path.join(out, "tiny_sdxl_diffusers"))


def models(pipe):
    """{part: {module name: Linear / Conv2d}} of the three networks."""
    return {"unet": fl.layers(pipe.unet), "te1": fl.layers(pipe.text_encoder), "te2": fl.layers(pipe.text_encoder_2)}


def text_keys(pipe):
    """[(part, kohya key, module)] of both encoders' layer modules."""
    out = []
    for (part, prefix, _), model in zip(TEXT_PARTS, (pipe.text_encoder, pipe.text_encoder_2)):
        out += [(part, prefix + n.replace(".", "_"), n) for n in fl.text_modules(model)]
    return out


def unet_key(n, ldm):
    """kohya's key of a U-Net module: its original (LDM) name as sd-scripts
    writes SDXL's, or diffusers'."""
    return "lora_unet_" + (ldm[n] if ldm is not None else n).replace(".", "_")


def every(names, n, keep=()):
    """Every n-th name and those in keep: files of tens of KB. n is chosen
    so that consecutive blocks give different modules, and covers() checks
    that every kind of module and every block naming is still there."""
    return [x for i, x in enumerate(names) if i % n == 0 or x in keep]


def covers(names, kinds):
    missing = [k for k in kinds if not any(k in x for x in names)]
    assert not missing, missing


UNET_KINDS = ("down_blocks.", "mid_block.", "up_blocks.", "transformer_blocks.1.", "proj_in", "proj_out",
              "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
              "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
RESNET_KINDS = ("conv1", "conv2", "time_emb_proj", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv")


def transformer_subset(pipe, keep=()):
    names = every(fl.transformer_modules(pipe.unet), 5, keep)
    covers(names, UNET_KINDS)
    return names


def write_kohya(pipe, d):
    gen = fl.Gen(2001)
    unet = fl.layers(pipe.unet)
    ldm = fl.ldm_names(pipe.unet)
    by_module = {}
    unet_alphas = (2.0, 3.0, 1.0, 1.5)
    for i, n in enumerate(transformer_subset(pipe)):
        by_module[("unet", n)] = (fl.lora_tensors(gen, unet[n], 4, 0.3), unet_alphas[i % 4])
    mods = models(pipe)
    for part, _, n in text_keys(pipe):
        by_module[(part, n)] = (fl.lora_tensors(gen, mods[part][n], 4, 0.3), fl.te_alpha(n, 2.0))
    meta = fl.kohya_meta("networks.lora", 4, 2.0, base="sdxl_base_v1-0")
    text = {(part, n): key for part, key, n in text_keys(pipe)}
    for stem, names in (("xl_kohya", ldm), ("xl_kohya_diffusers", None)):
        sd = {}
        for (part, n), (tensors, alpha) in by_module.items():
            key = unet_key(n, names) if part == "unet" else text[(part, n)]
            fl.put_lora(sd, key, tensors, alpha, torch.float16)
        fl.save_sorted(os.path.join(d, stem + ".safetensors"), sd, meta)


def write_locon(pipe, d):
    gen = fl.Gen(2002)
    sd = {}
    unet = fl.layers(pipe.unet)
    ldm = fl.ldm_names(pipe.unet)
    no_alpha = {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", "mid_block.resnets.0.time_emb_proj",
                "up_blocks.1.resnets.0.conv_shortcut"}
    lin_alphas = (2.0, 3.0, 1.0)
    resnets = every(fl.resnet_modules(pipe.unet), 2, no_alpha)
    covers(resnets, RESNET_KINDS)
    for i, n in enumerate(transformer_subset(pipe, no_alpha) + resnets):
        m = unet[n]
        if n in no_alpha:
            rank, alpha = 2, None
        elif fl.is_3x3(m):
            rank, alpha = 4, 2.0
        else:
            rank, alpha = 4, lin_alphas[i % 3]
        fl.put_lora(sd, unet_key(n, ldm), fl.lora_tensors(gen, m, rank, 0.3), alpha, torch.float16, torch.float32)
    mods = models(pipe)
    for part, key, n in text_keys(pipe):
        fl.put_lora(sd, key, fl.lora_tensors(gen, mods[part][n], 4, 0.3), fl.te_alpha(n, 2.0), torch.float16,
                    torch.float32)
    # the resnets' modules as sd-scripts names them
    covers(list(sd), ("_in_layers_2.", "_out_layers_3.", "_emb_layers_1.", "_skip_connection.", "_0_op.",
                      "_2_conv.", "lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_"))
    meta = fl.kohya_meta("networks.lora", 4, 2.0, base="sdxl_base_v1-0",
                         args={"conv_dim": "4", "conv_alpha": "2"})
    fl.save_sorted(os.path.join(d, "xl_locon.safetensors"), sd, meta)


# three of the attentions (one of each block kind), two 3x3 convs, the time
# and the added embeddings' linears
PEFT_UNET = (r"(down_blocks\.1\.attentions\.0|mid_block\.attentions\.0|up_blocks\.1\.attentions\.2)\..*"
             r"(\.to_[qkv]|\.to_out\.0|proj_in|proj_out)|down_blocks\.0\.resnets\.0\.conv1|"
             r"up_blocks\.1\.resnets\.1\.conv2|time_embedding\.linear_1|add_embedding\.linear_2")


def write_peft(out, d):
    """Adapters added by peft, filled with seeded values, saved by diffusers."""
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    pipe = load_pipe(out)
    gen = fl.Gen(2005)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=PEFT_UNET))
    te_targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    pipe.text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=te_targets))
    pipe.text_encoder_2.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                               target_modules=te_targets))
    with torch.no_grad():
        for model in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
            for name, p in sorted(model.named_parameters()):
                if ".lora_A." in name:
                    k = p[0, 0].numel() if p.ndim == 4 else 1
                    p.copy_(gen(*p.shape, std=0.3 / k ** 0.5))
                elif ".lora_B." in name:
                    p.copy_(gen(*p.shape, std=0.3))
    StableDiffusionXLPipeline.save_lora_weights(
        d, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        text_encoder_lora_layers=get_peft_model_state_dict(pipe.text_encoder),
        text_encoder_2_lora_layers=get_peft_model_state_dict(pipe.text_encoder_2),
        weight_name="xl_peft.safetensors")
    # rewritten with a sorted header: the same bytes every run
    path = os.path.join(d, "xl_peft.safetensors")
    sd = load_file(path)
    assert any(k.startswith("unet.add_embedding.linear_2.") for k in sd), sorted(sd)[:4]
    assert any(k.startswith("text_encoder_2.") for k in sd)
    fl.save_sorted(path, sd)


LOHA_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.downsamplers.0.conv", "mid_block.resnets.0.conv2",
              "up_blocks.0.upsamplers.0.conv", "up_blocks.2.resnets.1.conv1")
LOHA_CP = ("mid_block.resnets.0.conv2", "up_blocks.2.resnets.1.conv1")
LOHA_EMB = ("add_embedding.linear_1", "time_embedding.linear_2")


def write_loha(pipe, d):
    gen = fl.Gen(2004)
    sd = {}
    rank, std = 4, 0.45
    alphas = (4.0, 2.0, 3.0)
    mods = models(pipe)
    ldm = fl.ldm_names(pipe.unet)
    names = [("unet", unet_key(n, ldm), n) for n in every(fl.transformer_modules(pipe.unet), 7) if ".attn" in n]
    names += [("unet", unet_key(n, ldm), n) for n in LOHA_CONVS + LOHA_EMB]
    text = every(text_keys(pipe), 5)
    covers([n for _, _, n in text], ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))
    covers([p for p, _, _ in text], ("te1", "te2"))
    names += text
    for i, (part, key, n) in enumerate(names):
        m = mods[part][n]
        out_f, in_f = m.weight.shape[0], m.weight.shape[1]
        k = m.weight[0, 0].numel() if m.weight.ndim == 4 else 1
        for j in (1, 2):
            if n in LOHA_CP:
                sd[f"{key}.hada_t{j}"] = gen(rank, rank, 3, 3, std=std / 3)
                sd[f"{key}.hada_w{j}_a"] = gen(rank, out_f, std=std)
                sd[f"{key}.hada_w{j}_b"] = gen(rank, in_f, std=std)
            else:
                sd[f"{key}.hada_w{j}_a"] = gen(out_f, rank, std=std)
                sd[f"{key}.hada_w{j}_b"] = gen(rank, in_f * k, std=std / k ** 0.5)
        sd[f"{key}.alpha"] = torch.tensor(alphas[i % 3])
    assert "lora_unet_label_emb_0_0.alpha" in sd and "lora_unet_time_embed_2.alpha" in sd
    meta = fl.kohya_meta("lycoris.kohya", rank, 4.0, base="sdxl_base_v1-0",
                         args={"algo": "loha", "conv_dim": "4", "conv_alpha": "4", "use_tucker": "True"})
    fl.save_sorted(os.path.join(d, "xl_loha.safetensors"), sd, meta)


# ---------------------------------------------------------------------------
# A1111's semantics, implemented here
# ---------------------------------------------------------------------------

def module_table(pipe):
    """{network module name: (part, model module)} for every naming a file
    may use."""
    table = {}
    unet = fl.layers(pipe.unet)
    for n in unet:
        table["lora_unet_" + n.replace(".", "_")] = ("unet", n)
        table["unet." + n] = ("unet", n)
    for n, o in fl.ldm_names(pipe.unet).items():
        if n in unet:
            table["lora_unet_" + o.replace(".", "_")] = ("unet", n)
    for (part, _, peft), model in zip(TEXT_PARTS, (pipe.text_encoder, pipe.text_encoder_2)):
        for n in fl.text_modules(model):
            table[peft + n] = (part, n)
    for part, key, n in text_keys(pipe):
        table[key] = (part, n)
    return table


def read_network(path, pipe):
    """{(part, module): (delta * scale in float64 shaped as the weight,
    scale)} of a network file."""
    groups = collections.defaultdict(dict)
    for key, t in load_file(path).items():
        part = next(p for p in fl.PARTS if key.endswith(p))
        groups[key[:-len(part)]][part[1:]] = t.to(torch.float64)
    table = module_table(pipe)
    mods = models(pipe)
    out = {}
    for name, w in groups.items():
        part, mod = table[name]
        shape = mods[part][mod].weight.shape
        if "hada_w1_a" in w:
            rank = w["hada_w1_b"].shape[0]
            halves = []
            for j in (1, 2):
                wa, wb = w[f"hada_w{j}_a"], w[f"hada_w{j}_b"]
                if f"hada_t{j}" in w:  # CP: wa [r, out], wb [r, in]
                    halves.append(torch.einsum("pqkl,po,qi->oikl", w[f"hada_t{j}"], wa, wb))
                else:
                    halves.append(wa.reshape(wa.shape[0], -1) @ wb.reshape(wb.shape[0], -1))
            delta = halves[0].reshape(shape) * halves[1].reshape(shape)
        else:
            up = w.get("lora_up.weight", w.get("lora_B.weight"))
            down = w.get("lora_down.weight", w.get("lora_A.weight"))
            rank = down.shape[0]
            delta = (up.reshape(up.shape[0], -1) @ down.reshape(rank, -1)).reshape(shape)
        scale = w["alpha"].item() / rank if "alpha" in w else 1.0
        out[(part, mod)] = (delta * scale, scale)
    return out


@torch.no_grad()
def merge(pipe, nets):
    """W = W + sum(multiplier * scale * delta), in float64, back to float32."""
    mods = models(pipe)
    total = {}
    for net, te, unet in nets:
        for (part, mod), (delta, _) in net.items():
            mult = unet if part == "unet" else te
            total[(part, mod)] = total.get((part, mod), 0) + mult * delta
    for (part, mod), delta in total.items():
        w = mods[part][mod].weight
        w.copy_((w.double() + delta).float())


def check_peft_layers(pipe, loras, nets):
    """diffusers' PEFT layers against this script's reading of the files:
    the same modules, scale = multiplier * alpha / rank, the same delta."""
    from peft.tuners.lora import LoraLayer
    worst = 0.0
    for name, te, unet in loras:
        want = nets[name]
        seen = set()
        for part, model in (("unet", pipe.unet), ("te1", pipe.text_encoder), ("te2", pipe.text_encoder_2)):
            mult = unet if part == "unet" else te
            for mod, layer in model.named_modules():
                if not isinstance(layer, LoraLayer) or name not in layer.scaling:
                    continue
                seen.add((part, mod))
                delta, scale = want[(part, mod)]
                got = layer.scaling[name]
                assert abs(got - mult * scale) <= 1e-6 * abs(mult * scale), (name, part, mod, got, mult * scale)
                a = layer.lora_A[name].weight.double()
                b = layer.lora_B[name].weight.double()
                prod = (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).reshape(delta.shape) * scale
                worst = max(worst, ((prod - delta).abs().max() / delta.abs().max()).item())
        missing = set(want) - seen
        assert not missing, (name, sorted(missing)[:4])
    assert worst < 1e-6, worst
    return worst


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def params(case):
    prompt, sampler, karras, steps, seed = case
    text, loras = fl.parse_prompt(prompt)
    p = fx.case_params(dict(prompt=text, negative=NEGATIVE, sampler=sampler, karras=karras, cfg=5.0, steps=steps,
                            seed=seed, width=WIDTH, height=HEIGHT))
    assert p["negative_mode"] == "text"
    return p, loras


def render(pipe, p):
    """(latents, image, {cond, pooled, neg_cond, neg_pooled}) of one run
    (pipe from fresh())."""
    lat, seen = fx.run_case(pipe, p, pipe.sdc_base)
    out = {"cond": seen["ctx"][1], "pooled": seen["pooled"][1], "neg_cond": seen["ctx"][0],
           "neg_pooled": seen["pooled"][0]}
    return lat.float().contiguous(), fx.decode(pipe.vae, lat), {k: v.float().contiguous() for k, v in out.items()}


def fresh(out):
    pipe = load_pipe(out)
    pipe.sdc_base = dict(pipe.scheduler.config)  # the folder's scheduler: every case's sampler is made from it
    return pipe


def diffusers_pipe(out, d, loras, nets):
    pipe = fresh(out)
    for name, _, _ in loras:
        pipe.load_lora_weights(d, weight_name=name + ".safetensors", adapter_name=name)
    pipe.set_adapters([n for n, _, _ in loras],
                      adapter_weights=[{"text_encoder": te, "text_encoder_2": te, "unet": unet}
                                       for _, te, unet in loras])
    check_peft_layers(pipe, loras, nets)
    return pipe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = os.path.join(args.out, "lora")
    os.makedirs(d, exist_ok=True)

    base = fresh(args.out)
    write_kohya(base, d)
    write_locon(base, d)
    write_peft(args.out, d)
    write_loha(base, d)
    stems = ("xl_kohya", "xl_kohya_diffusers", "xl_locon", "xl_peft", "xl_loha")
    for stem in stems:
        print(f"lora/{stem}.safetensors: {os.path.getsize(os.path.join(d, stem + '.safetensors'))} bytes")
    nets = {stem: read_network(os.path.join(d, stem + ".safetensors"), base) for stem in stems}

    tensors, meta = {}, []
    for i, case in enumerate(CASES):
        p, loras = params(case)
        # this script's merge
        pipe = fresh(args.out)
        merge(pipe, [(nets[name], te, unet) for name, te, unet in loras])
        m_lat, m_img, m_cond = render(pipe, p)
        # without the networks: how much they change
        b_img = render(fresh(args.out), p)[1]
        change = (m_img.float() - b_img.float()).abs().mean().item()

        reference = "diffusers" if all(name in DIFFUSERS_LOADS for name, _, _ in loras) else "merge"
        note = ""
        if reference == "diffusers":
            lat, img, cond = render(diffusers_pipe(args.out, d, loras, nets), p)
            errs = {k: fl.rel(m_cond[k], cond[k]) for k in cond}
            note = f", merge vs diffusers: latents {fl.rel(m_lat, lat):.2e}, " + \
                ", ".join(f"{k} {e:.2e}" for k, e in errs.items())
            assert fl.rel(m_lat, lat) < 1e-3 and max(errs.values()) < 1e-4, note
        else:
            lat, img, cond = m_lat, m_img, m_cond
        tensors[f"latents{i}"] = lat
        tensors[f"image{i}"] = img
        for k, v in cond.items():
            tensors[f"{k}{i}"] = v
        p = dict(p, text=p["prompt"], prompt=case[0], loras=[{"name": n, "te": te, "unet": u} for n, te, u in loras],
                 reference=reference,
                 lora_hashes=", ".join(dict.fromkeys(
                     f"{n}: {fl.a1111_lora_hash(os.path.join(d, n + '.safetensors'))}" for n, _, _ in loras)))
        meta.append(p)
        print(f"case {i}: {case[0]!r}: reference {reference}{note}; image change {change:.1f}")
        assert change > 3.0

    # the U-Net's modules in diffusers' names: diffusers' result of xl_kohya
    p, loras = params(CASES[0])
    loras = [("xl_kohya_diffusers", te, unet) for _, te, unet in loras]
    lat = render(diffusers_pipe(args.out, d, loras, nets), p)[0]
    same = (lat - tensors["latents0"]).abs().max().item()
    print(f"xl_kohya_diffusers vs xl_kohya (case 0) in diffusers: max latent difference {same:.3g}")
    assert same <= 1e-6

    fx.save_sorted({k: v.contiguous() for k, v in tensors.items()},
                   os.path.join(args.out, "lora_sdxl_tiny_ref.safetensors"),
                   {"cases": json.dumps(meta), "prompt": PROMPT, "negative": NEGATIVE})
    print(f"wrote {len(meta)} SDXL LoRA cases")


if __name__ == "__main__":
    main()
