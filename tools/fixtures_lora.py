#!/usr/bin/env python3
"""Reference fixtures for LoRA networks and textual-inversion embeddings on
the tiny models of tests/fixtures: the network files in the formats users
find (kohya sd-scripts, LyCORIS, diffusers / PEFT), and what
AUTOMATIC1111's <lora:NAME:TE_W:UNET_W> prompt tags and embedding names do
with them, computed by diffusers and by merging the weights.

    python tools/fixtures_lora.py [--out tests/fixtures]

Writes, under lora/ (the network's or embedding's name is the file's stem):
    kohya.safetensors       kohya LoRA for tiny SD 1.x, F16: lora_unet_<diffusers
        module, '.' -> '_'>.{lora_down.weight, lora_up.weight, alpha} on every
        transformer module (attn1/attn2 to_q/to_k/to_v/to_out_0, ff_net_0_proj,
        ff_net_2, proj_in/proj_out as 1x1 convs), lora_te_text_model_encoder_
        layers_N_{self_attn_{q,k,v,out}_proj, mlp_fc1, mlp_fc2}; alpha a 0-dim
        F16 tensor, rank 4, alpha varying per U-Net module
    kohya_ldm.safetensors   the same tensors, U-Net modules under the original
        (LDM) names: lora_unet_input_blocks_1_1_..., middle_block_1_...,
        output_blocks_N_1_...
    locon.safetensors       kohya LoCon, F32: kohya's modules plus the U-Net
        resnets' conv1/conv2 (3x3: down [4, cin, 3, 3], up [cout, 4, 1, 1]),
        conv_shortcut (1x1), time_emb_proj, downsamplers_0_conv,
        upsamplers_0_conv; three rank-2 modules without alpha (scale 1)
    locon_mid.safetensors   LyCORIS LoCon with Tucker, BF16: 3x3 convs as
        lora_down [r, cin, 1, 1], lora_mid [r, r, 3, 3], lora_up [cout, r, 1, 1]
    loha.safetensors        LyCORIS LoHa, F32: hada_w1_a [out, r], hada_w1_b
        [r, in*k*k], hada_w2_a, hada_w2_b, alpha on the attention (attn1/attn2),
        text and two 3x3 conv modules; three more 3x3 convs in the CP form:
        hada_t1/hada_t2 [r, r, 3, 3], hada_w1_a/hada_w2_a [r, out],
        hada_w1_b/hada_w2_b [r, in]
    peft.safetensors        diffusers / PEFT LoRA as save_lora_weights writes it
        (written by diffusers and peft): unet.<module>.lora_A.weight [r, in(,k,k)]
        / lora_B.weight [out, r(,1,1)] on attention, proj_in/proj_out (1x1) and
        two 3x3 convs, text_encoder.<module>.lora_{A,B}.weight, no alpha (scale 1)
    kohya_sd2.safetensors   kohya LoRA for tiny SD 2.x, F16 with F32 alphas:
        the transformer modules (linear proj_in/proj_out) and the text layers of
        the diffusers text encoder (0 and 1)
    sdcstyle.safetensors    embedding, emb_params [2, 16] F32 (two vectors)
    sdcthing.safetensors    embedding, string_to_param.* [1, 16] F16
and lora_tiny_ref.safetensors: per case i latents<i> (F32 NCHW, the
pipeline's final latents), image<i> (U8 HWC), cond<i> (F32 [77, width], the
prompt's conditioning with that case's text-encoder LoRA); __metadata__
"cases" (JSON list of {family, prompt (with its <lora:...> tags), negative,
sampler, karras, eta, cfg, steps, seed, width, height, loras [{name, te,
unet}], embeddings [names], reference}).

The semantics are AUTOMATIC1111's: the tags are cut out of the prompt
(re.sub(r"<(\\w+):([^>]+)>", "", prompt)); each module's weight becomes
W + multiplier * scale * delta, scale = alpha / rank (rank: lora_down's or
hada_w1_b's first dimension), 1 without alpha; text-encoder modules take
TE_W, U-Net modules UNET_W (UNET_W = TE_W when absent). delta: LoRA
up @ down reshaped to the weight; LoCon with lora_mid einsum('n m k l, i n,
m j -> i j k l', mid, up, down); LoHa (w1a @ w1b) * (w2a @ w2b), or with
hada_t1/t2 the CP form einsum('p q k l, p o, q i -> o i k l', t, wa, wb).
An embedding's vectors replace the prompt's tokens of its name.

reference "diffusers": the stored result is diffusers' (load_lora_weights,
set_adapters with per-component weights, load_textual_inversion), asserted
to agree with this script's own merge of the weights in float64 (and its
PEFT layers' scales and deltas checked module by module against the file).
reference "merge": diffusers 0.31 cannot load the format (LyCORIS LoHa and
LoCon with lora_mid), so the merged-weights result is the reference (the
lora_mid deltas are checked against running the three convs in turn).
diffusers 0.31 reads LDM-named kohya files only when given the U-Net's
config (load_lora_weights(..., unet_config=...)), and it has two quirks the
files are shaped around: a module without alpha gets the most common alpha
of its model part, not its rank, so in locon.safetensors the alpha-less
modules have rank 2 and the U-Net's most common alpha is 2; and it keys the
text encoder's self_attn alphas by the layer (one pattern for q/k/v/out
that matches none of them), so every self_attn module of a file has the text
encoder's most common alpha.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import struct
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdc_layout  # noqa: E402

PROMPT = "a small red circle in the top left corner on a blue background"
TI_PROMPT = "a photo of sdcstyle, a red sdcthing on a blue background"
NEGATIVE = "blurry, green"
SIZE = 32
TAG = re.compile(r"<(\w+):([^>]+)>")

# (prompt as the user writes it, family, sampler, karras, eta, cfg, steps, seed)
CASES = [
    (PROMPT + " <lora:kohya:0.8>", "sd1", "ddim", False, 0.0, 7.5, 4, 300),
    (PROMPT + " <lora:kohya:0.5:1.3>", "sd1", "euler_a", False, 0.0, 7.5, 4, 301),
    (PROMPT + " <lora:locon:1.0>", "sd1", "dpmpp_2m", False, 0.0, 7.5, 4, 302),
    ("a small red circle <lora:locon_mid:0.7> in the top left corner on a blue background", "sd1", "ddim", False,
     0.0, 7.5, 5, 303),
    ("<lora:loha:1> " + PROMPT, "sd1", "euler_a", False, 0.0, 7.5, 4, 304),
    (PROMPT + " <lora:peft:0.9>", "sd1", "dpmpp_2m", True, 0.0, 7.5, 4, 305),
    (PROMPT + " <lora:kohya:0.6> <lora:loha:0.5>", "sd1", "ddim", False, 0.0, 7.5, 4, 306),
    (PROMPT + " <lora:kohya_ldm:0.8>", "sd1", "ddim", False, 0.0, 7.5, 4, 300),  # = case 0
    (PROMPT + " <lora:kohya_sd2:1.0>", "sd2", "dpmpp_2m", False, 0.0, 7.5, 4, 307),
    (TI_PROMPT, "sd1", "euler_a", False, 0.0, 7.5, 4, 308),
    (TI_PROMPT + " <lora:kohya:0.8>", "sd1", "ddim", False, 0.0, 7.5, 4, 309),
]
EMBEDDINGS = ("sdcstyle", "sdcthing")
DIFFUSERS_LOADS = {"kohya", "kohya_ldm", "locon", "peft", "kohya_sd2"}

# the suffixes of a network module's tensors' names (none ends another)
PARTS = (".lora_down.weight", ".lora_up.weight", ".lora_mid.weight", ".lora_A.weight", ".lora_B.weight",
         ".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1", ".hada_t2", ".alpha")


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------

ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8",
             torch.int64: "I64", torch.int32: "I32"}


def save_sorted(path, tensors, metadata=None):
    """A safetensors file with its header in sorted order: the package
    orders __metadata__ by hash, this gives the same bytes every run."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)
    os.replace(path + ".part", path)


def load_pipe(family, out):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(
        os.path.join(out, f"tiny_{family}_diffusers"), torch_dtype=torch.float32, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def layers(model):
    """{module name: module} of a model's Linear and Conv2d layers."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}


def transformer_modules(unet):
    return [n for n in layers(unet) if ".attentions." in n]


def resnet_modules(unet):
    return [n for n in layers(unet) if ".resnets." in n or ".downsamplers." in n or ".upsamplers." in n]


def text_modules(te):
    return [n for n in layers(te) if ".encoder.layers." in n]


def is_3x3(m):
    return isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)


def kohya_key(part, module):
    return ("lora_unet_" if part == "unet" else "lora_te_") + module.replace(".", "_")


def ldm_names(unet):
    """{diffusers U-Net module: original (LDM) module}, from sdc_layout's
    conversion of the '<module>.weight' keys."""
    sd = {k: k for k in unet.state_dict()}
    orig = sdc_layout.unet_to_original(sd, unet.config)
    out = {}
    for ok, dk in orig.items():
        if dk.endswith(".weight"):
            out[dk[:-len(".weight")]] = ok[len(sdc_layout.UNET_PREFIX):-len(".weight")]
    return out


class Gen:
    """Seeded normal tensors."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, *shape, std=0.3):
        return torch.randn(*shape, generator=self.g) * std


def lora_tensors(gen, m, rank, std, tucker=False):
    """(down, up[, mid]) for a Linear / Conv2d as kohya / LyCORIS write them."""
    if isinstance(m, torch.nn.Linear):
        return gen(rank, m.in_features, std=std), gen(m.out_features, rank, std=std)
    cout, cin, kh, kw = m.weight.shape
    up = gen(cout, rank, 1, 1, std=std)
    if tucker and kh > 1:
        return gen(rank, cin, 1, 1, std=std), up, gen(rank, rank, kh, kw, std=std / 3)
    return gen(rank, cin, kh, kw, std=std / (kh * kw) ** 0.5), up


def put_lora(sd, key, tensors, alpha, dtype, alpha_dtype=None):
    names = ("lora_down.weight", "lora_up.weight", "lora_mid.weight")
    for name, t in zip(names, tensors):
        sd[f"{key}.{name}"] = t.to(dtype)
    if alpha is not None:
        sd[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=alpha_dtype or dtype)


def kohya_meta(module, dim, alpha, base="sd_v1", args=None):
    meta = {"ss_network_module": module, "ss_network_dim": str(dim), "ss_network_alpha": str(alpha),
            "ss_base_model_version": base, "ss_v2": str(base == "sd_v2")}
    if args:
        meta["ss_network_args"] = json.dumps(args)
    return meta


def te_alpha(module, self_attn):
    """Text-encoder alphas: every self_attn module the same (diffusers 0.31
    reads no per-module self_attn alpha), the MLP ones varying."""
    if ".self_attn." in module:
        return self_attn
    return 3.0 if module.endswith("fc1") else 1.0


def write_kohya(pipe, d):
    gen = Gen(1001)
    sd, ldm = {}, {}
    unet_alphas = (2.0, 3.0, 1.0, 1.5)
    for i, n in enumerate(transformer_modules(pipe.unet)):
        put_lora(sd, kohya_key("unet", n), lora_tensors(gen, layers(pipe.unet)[n], 4, 0.3), unet_alphas[i % 4],
                 torch.float16)
    for n in text_modules(pipe.text_encoder):
        put_lora(sd, kohya_key("te", n), lora_tensors(gen, layers(pipe.text_encoder)[n], 4, 0.3),
                 te_alpha(n, 2.0), torch.float16)
    meta = kohya_meta("networks.lora", 4, 2.0)
    save_sorted(os.path.join(d, "kohya.safetensors"), sd, meta)
    # the same tensors under the LDM module names
    names = {kohya_key("unet", k): "lora_unet_" + v.replace(".", "_") for k, v in ldm_names(pipe.unet).items()}
    for k, v in sd.items():
        mod, _, rest = k.partition(".")
        ldm[names.get(mod, mod) + "." + rest] = v
    assert len(ldm) == len(sd)
    save_sorted(os.path.join(d, "kohya_ldm.safetensors"), ldm, meta)


def write_locon(pipe, d):
    gen = Gen(1002)
    sd = {}
    mods = layers(pipe.unet)
    # without alpha (scale 1): rank 2, the most common alpha (see above)
    no_alpha = {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", "mid_block.resnets.0.time_emb_proj",
                "up_blocks.1.resnets.0.conv_shortcut"}
    lin_alphas = (2.0, 3.0, 1.0)
    for i, n in enumerate(transformer_modules(pipe.unet) + resnet_modules(pipe.unet)):
        m = mods[n]
        if n in no_alpha:
            rank, alpha = 2, None
        elif is_3x3(m):  # kohya's conv_dim / conv_alpha
            rank, alpha = 4, 2.0
        else:
            rank, alpha = 4, lin_alphas[i % 3]
        put_lora(sd, kohya_key("unet", n), lora_tensors(gen, m, rank, 0.3), alpha, torch.float32)
    for n in text_modules(pipe.text_encoder):
        put_lora(sd, kohya_key("te", n), lora_tensors(gen, layers(pipe.text_encoder)[n], 4, 0.3),
                 te_alpha(n, 2.0), torch.float32)
    meta = kohya_meta("networks.lora", 4, 2.0, args={"conv_dim": "4", "conv_alpha": "2"})
    save_sorted(os.path.join(d, "locon.safetensors"), sd, meta)


def write_locon_mid(pipe, d):
    gen = Gen(1003)
    sd = {}
    mods = layers(pipe.unet)
    alphas = (2.0, 3.0, 1.0)
    for i, n in enumerate(transformer_modules(pipe.unet) + resnet_modules(pipe.unet)):
        put_lora(sd, kohya_key("unet", n), lora_tensors(gen, mods[n], 4, 0.3, tucker=True), alphas[i % 3],
                 torch.bfloat16)
    for i, n in enumerate(text_modules(pipe.text_encoder)):
        put_lora(sd, kohya_key("te", n), lora_tensors(gen, layers(pipe.text_encoder)[n], 4, 0.3), alphas[i % 3],
                 torch.bfloat16)
    meta = kohya_meta("lycoris.kohya", 4, 2.0,
                      args={"algo": "locon", "conv_dim": "4", "conv_alpha": "2", "use_tucker": "True"})
    save_sorted(os.path.join(d, "locon_mid.safetensors"), sd, meta)


LOHA_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.downsamplers.0.conv", "mid_block.resnets.0.conv2",
              "up_blocks.0.upsamplers.0.conv", "up_blocks.1.resnets.1.conv1")
LOHA_CP = ("down_blocks.0.resnets.0.conv1", "mid_block.resnets.0.conv2", "up_blocks.1.resnets.1.conv1")


def write_loha(pipe, d):
    gen = Gen(1004)
    sd = {}
    rank, std = 4, 0.45
    alphas = (4.0, 2.0, 3.0)
    mods = {**{("unet", n): m for n, m in layers(pipe.unet).items()},
            **{("te", n): m for n, m in layers(pipe.text_encoder).items()}}
    names = [("unet", n) for n in transformer_modules(pipe.unet) if ".attn" in n]
    names += [("unet", n) for n in LOHA_CONVS]
    names += [("te", n) for n in text_modules(pipe.text_encoder)]
    for i, (part, n) in enumerate(names):
        m = mods[(part, n)]
        key = kohya_key(part, n)
        out_f = m.weight.shape[0]
        in_f = m.weight.shape[1]
        k = m.weight[0, 0].numel() if m.weight.ndim == 4 else 1
        for j in (1, 2):
            if n in LOHA_CP:
                sd[f"{key}.hada_t{j}"] = gen(rank, rank, 3, 3, std=std / 3)
                sd[f"{key}.hada_w{j}_a"] = gen(rank, out_f, std=std)
                sd[f"{key}.hada_w{j}_b"] = gen(rank, in_f, std=std)
            else:
                sd[f"{key}.hada_w{j}_a"] = gen(out_f, rank, std=std)
                sd[f"{key}.hada_w{j}_b"] = gen(rank, in_f * k, std=std / k ** 0.5)
        alpha = 2.0 if part == "te" and ".self_attn." in n else alphas[i % 3]
        sd[f"{key}.alpha"] = torch.tensor(alpha)
    meta = kohya_meta("lycoris.kohya", rank, 4.0,
                      args={"algo": "loha", "conv_dim": "4", "conv_alpha": "4", "use_tucker": "True"})
    save_sorted(os.path.join(d, "loha.safetensors"), sd, meta)


def write_peft(out, d):
    """Adapters added by peft, filled with seeded values, saved by diffusers."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    pipe = load_pipe("sd1", out)
    gen = Gen(1005)
    # attention, the 1x1 proj_in/proj_out and two 3x3 convs
    unet_cfg = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                          target_modules=r".*(\.to_[qkv]|\.to_out\.0|\.proj_in|\.proj_out|"
                                         r"down_blocks\.0\.resnets\.0\.conv1|up_blocks\.1\.resnets\.1\.conv2)")
    te_cfg = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    pipe.unet.add_adapter(unet_cfg)
    pipe.text_encoder.add_adapter(te_cfg)
    with torch.no_grad():
        for model in (pipe.unet, pipe.text_encoder):
            for name, p in sorted(model.named_parameters()):
                if ".lora_A." in name:
                    k = p[0, 0].numel() if p.ndim == 4 else 1
                    p.copy_(gen(*p.shape, std=0.3 / k ** 0.5))
                elif ".lora_B." in name:
                    p.copy_(gen(*p.shape, std=0.3))
    StableDiffusionPipeline.save_lora_weights(
        d, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        text_encoder_lora_layers=get_peft_model_state_dict(pipe.text_encoder), weight_name="peft.safetensors")


def write_kohya_sd2(pipe, d):
    gen = Gen(1006)
    sd = {}
    alphas = (2.0, 3.0, 1.0)
    for i, n in enumerate(transformer_modules(pipe.unet)):
        put_lora(sd, kohya_key("unet", n), lora_tensors(gen, layers(pipe.unet)[n], 4, 0.35), alphas[i % 3],
                 torch.float16, torch.float32)
    for n in text_modules(pipe.text_encoder):
        put_lora(sd, kohya_key("te", n), lora_tensors(gen, layers(pipe.text_encoder)[n], 4, 0.35),
                 te_alpha(n, 2.0), torch.float16, torch.float32)
    save_sorted(os.path.join(d, "kohya_sd2.safetensors"), sd, kohya_meta("networks.lora", 4, 2.0, base="sd_v2"))


def write_embeddings(d, width):
    gen = Gen(1007)
    save_sorted(os.path.join(d, "sdcstyle.safetensors"), {"emb_params": gen(2, width, std=0.4)})
    save_sorted(os.path.join(d, "sdcthing.safetensors"),
                {"string_to_param.*": gen(1, width, std=0.4).to(torch.float16)})


# ---------------------------------------------------------------------------
# AUTOMATIC1111's semantics, implemented here
# ---------------------------------------------------------------------------

def parse_prompt(prompt):
    """(prompt without the tags, [(name, te, unet)]) as AUTOMATIC1111."""
    loras = []
    for kind, args in TAG.findall(prompt):
        if kind != "lora":
            continue
        items = args.split(":")
        te = float(items[1]) if len(items) > 1 else 1.0
        unet = float(items[2]) if len(items) > 2 else te
        loras.append((items[0], te, unet))
    return TAG.sub("", prompt), loras


def module_table(pipe):
    """{network module name: (part, model module)} for every naming a file
    may use: kohya (diffusers or LDM U-Net names), PEFT."""
    table = {}
    for n in layers(pipe.unet):
        table[kohya_key("unet", n)] = ("unet", n)
        table["unet." + n] = ("unet", n)
    for n, o in ldm_names(pipe.unet).items():
        if n in layers(pipe.unet):
            table["lora_unet_" + o.replace(".", "_")] = ("unet", n)
    for n in text_modules(pipe.text_encoder):
        table[kohya_key("te", n)] = ("te", n)
        table["text_encoder." + n] = ("te", n)
    return table


def read_network(path, pipe):
    """{(part, module): (delta * scale in float64 shaped as the weight,
    scale)} of a network file."""
    groups = collections.defaultdict(dict)
    for key, t in load_file(path).items():
        part = next(p for p in PARTS if key.endswith(p))
        groups[key[:-len(part)]][part[1:]] = t.to(torch.float64)
    table = module_table(pipe)
    models = {"unet": layers(pipe.unet), "te": layers(pipe.text_encoder)}
    out = {}
    for name, w in groups.items():
        part, mod = table[name]
        shape = models[part][mod].weight.shape
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
            up2, down2 = up.reshape(up.shape[0], -1), down.reshape(rank, -1)
            if "lora_mid.weight" in w:
                delta = torch.einsum("nmkl,in,mj->ijkl", w["lora_mid.weight"], up2, down2)
            else:
                delta = up2 @ down2
            delta = delta.reshape(shape)
        scale = w["alpha"].item() / rank if "alpha" in w else 1.0
        out[(part, mod)] = (delta * scale, scale)
    return out


@torch.no_grad()
def merge(pipe, nets):
    """W = W + sum(multiplier * scale * delta), in float64, back to float32."""
    models = {"unet": layers(pipe.unet), "te": layers(pipe.text_encoder)}
    total = {}
    for net, te, unet in nets:
        for (part, mod), (delta, _) in net.items():
            mult = te if part == "te" else unet
            total[(part, mod)] = total.get((part, mod), 0) + mult * delta
    for (part, mod), delta in total.items():
        w = models[part][mod].weight
        w.copy_((w.double() + delta).float())


@torch.no_grad()
def check_tucker(path, pipe, net):
    """A lora_mid module's merged delta against running its three convs
    (1x1 down, the weight's own kernel / stride / padding for mid, 1x1 up)."""
    tensors = load_file(path)
    table = module_table(pipe)
    gen = torch.Generator().manual_seed(7)
    worst, count = 0.0, 0
    for key in tensors:
        if not key.endswith(".lora_mid.weight"):
            continue
        name = key[:-len(".lora_mid.weight")]
        part, mod = table[name]
        m = layers(pipe.unet)[mod]
        down, mid, up = (tensors[f"{name}.lora_{p}.weight"].double() for p in ("down", "mid", "up"))
        x = torch.randn(1, m.in_channels, 8, 8, generator=gen, dtype=torch.float64)
        y = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, down), mid, stride=m.stride, padding=m.padding)
        y = torch.nn.functional.conv2d(y, up)
        delta, scale = net[(part, mod)]
        ref = torch.nn.functional.conv2d(x, delta / scale, stride=m.stride, padding=m.padding)
        worst = max(worst, rel(y, ref))
        count += 1
    assert count and worst < 1e-12, worst
    return count, worst


def embedding_vectors(d, name):
    t = next(iter(load_file(os.path.join(d, name + ".safetensors")).values()))
    return t.reshape(-1, t.shape[-1]).float()


@torch.no_grad()
def encode_with_embeddings(pipe, prompt, vectors):
    """The prompt's conditioning with each embedding's name's tokens replaced
    by its vectors (AUTOMATIC1111's textual inversion)."""
    tok = pipe.tokenizer
    ids = tok(prompt).input_ids
    rows = {}  # position -> vector
    out_ids, i = [], 0
    name_ids = {name: tok(name, add_special_tokens=False).input_ids for name in vectors}
    while i < len(ids):
        for name, nid in name_ids.items():
            if ids[i:i + len(nid)] == nid:
                for v in vectors[name]:
                    rows[len(out_ids)] = v
                    out_ids.append(tok.pad_token_id)
                i += len(nid)
                break
        else:
            out_ids.append(ids[i])
            i += 1
    assert len(out_ids) <= tok.model_max_length
    out_ids += [tok.pad_token_id] * (tok.model_max_length - len(out_ids))
    emb = pipe.text_encoder.text_model.embeddings.token_embedding

    def hook(_mod, _inp, out):
        out = out.clone()
        for pos, v in rows.items():
            out[0, pos] = v
        return out

    h = emb.register_forward_hook(hook)
    try:
        cond = pipe.text_encoder(torch.tensor([out_ids]))[0]
    finally:
        h.remove()
    return cond


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def schedulers():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler
    return {"ddim": DDIMScheduler, "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}


@torch.no_grad()
def generate(pipe, case, text, prompt_embeds=None):
    _, _, sampler, karras, eta, cfg, steps, seed = case
    extra = {"use_karras_sigmas": True} if karras else {}
    pipe.scheduler = schedulers()[sampler].from_config(pipe.scheduler.config, **extra)
    kw = {"eta": eta} if sampler == "ddim" else {}
    if prompt_embeds is None:
        kw["prompt"] = text
        cond = pipe.encode_prompt(text, "cpu", 1, False)[0]
    else:
        kw["prompt_embeds"] = cond = prompt_embeds
    g = torch.Generator("cpu").manual_seed(seed)
    lat = pipe(negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=steps, guidance_scale=cfg,
               generator=g, output_type="latent", **kw).images
    img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
    img = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    img = (img * 255).round().astype("uint8")
    return lat.float().contiguous(), torch.from_numpy(img[0]).contiguous(), cond[0].float().contiguous()


def check_peft_layers(pipe, loras, nets):
    """diffusers' PEFT layers against this script's reading of the files:
    the same modules, scale = multiplier * alpha / rank, the same delta."""
    from peft.tuners.lora import LoraLayer
    worst = 0.0
    for name, te, unet in loras:
        want = nets[name]
        seen = set()
        for part, model in (("unet", pipe.unet), ("te", pipe.text_encoder)):
            mult = te if part == "te" else unet
            for mod, layer in model.named_modules():
                if not isinstance(layer, LoraLayer) or name not in layer.scaling:
                    continue
                seen.add((part, mod))
                delta, scale = want[(part, mod)]
                got = layer.scaling[name]
                assert abs(got - mult * scale) <= 1e-6 * abs(mult * scale), (name, mod, got, mult * scale)
                a = layer.lora_A[name].weight.double()
                b = layer.lora_B[name].weight.double()
                prod = (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).reshape(delta.shape) * scale
                worst = max(worst, ((prod - delta).abs().max() / delta.abs().max()).item())
        missing = set(want) - seen
        assert not missing, (name, sorted(missing)[:4])
    assert worst < 1e-6, worst
    return worst


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def a1111_lora_hash(path):
    """AUTOMATIC1111's short hash of a .safetensors LoRA (network.py): the
    metadata's sshs_model_hash, else the "addnet" hash (hashes.py's
    addnet_hash_safetensors: SHA-256 of the file after its header), its first
    12 hex digits."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        sshs = header.get("__metadata__", {}).get("sshs_model_hash")
        if sshs:
            return sshs[:12]
        return hashlib.sha256(f.read()).hexdigest()[:12]


def a1111_ti_hash(path):
    """An embedding's short hash (textual_inversion.py): the SHA-256 of the
    whole file, 12 hex digits."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = os.path.join(args.out, "lora")
    os.makedirs(d, exist_ok=True)

    sd1 = load_pipe("sd1", args.out)
    sd2 = load_pipe("sd2", args.out)
    write_kohya(sd1, d)
    write_locon(sd1, d)
    write_locon_mid(sd1, d)
    write_loha(sd1, d)
    write_peft(args.out, d)
    write_kohya_sd2(sd2, d)
    write_embeddings(d, sd1.text_encoder.config.hidden_size)
    for name in sorted(os.listdir(d)):
        print(f"lora/{name}: {os.path.getsize(os.path.join(d, name))} bytes")

    # the embeddings' names are whole BPE words: the same ids alone and in
    # the prompt
    tok = sd1.tokenizer
    prompt_ids = tok(TI_PROMPT, add_special_tokens=False).input_ids
    for name in EMBEDDINGS:
        nid = tok(name, add_special_tokens=False).input_ids
        found = [i for i in range(len(prompt_ids)) if prompt_ids[i:i + len(nid)] == nid]
        print(f"embedding {name}: ids {nid}, at prompt token {found}")
        assert len(found) == 1

    nets = {"sd1": {}, "sd2": {}}
    for stem in ("kohya", "kohya_ldm", "locon", "locon_mid", "loha", "peft"):
        nets["sd1"][stem] = read_network(os.path.join(d, stem + ".safetensors"), sd1)
    nets["sd2"]["kohya_sd2"] = read_network(os.path.join(d, "kohya_sd2.safetensors"), sd2)
    vectors = {name: embedding_vectors(d, name) for name in EMBEDDINGS}
    count, worst = check_tucker(os.path.join(d, "locon_mid.safetensors"), sd1, nets["sd1"]["locon_mid"])
    print(f"locon_mid: {count} lora_mid modules' merged deltas vs their convs run in turn: {worst:.1e}")

    tensors, meta = {}, []
    for i, case in enumerate(CASES):
        prompt, family = case[0], case[1]
        text, loras = parse_prompt(prompt)
        embs = sorted((name for name in EMBEDDINGS if name in text), key=text.index)  # prompt order

        # this script's merge (and embedding substitution)
        pipe = load_pipe(family, args.out)
        merge(pipe, [(nets[family][name], te, unet) for name, te, unet in loras])
        embeds = encode_with_embeddings(pipe, text, vectors) if embs else None
        m_lat, m_img, m_cond = generate(pipe, case, text, embeds)

        # the same without the networks and embeddings: how much they change
        base = load_pipe(family, args.out)
        b_img = generate(base, case, text)[1]
        change = (m_img.float() - b_img.float()).abs().mean().item()

        reference = "diffusers" if all(name in DIFFUSERS_LOADS for name, _, _ in loras) else "merge"
        note = ""
        if reference == "diffusers":
            pipe = load_pipe(family, args.out)
            for name, te, unet in loras:
                kw = {"unet_config": pipe.unet.config} if name == "kohya_ldm" else {}
                pipe.load_lora_weights(d, weight_name=name + ".safetensors", adapter_name=name, **kw)
            if loras:
                pipe.set_adapters([n for n, _, _ in loras],
                                  adapter_weights=[{"text_encoder": te, "unet": unet} for _, te, unet in loras])
                check_peft_layers(pipe, loras, nets[family])
            for name in embs:
                pipe.load_textual_inversion(os.path.join(d, name + ".safetensors"), token=name)
            lat, img, cond = generate(pipe, case, text)
            note = f", merge vs diffusers: latents {rel(m_lat, lat):.2e}, cond {rel(m_cond, cond):.2e}"
            assert rel(m_lat, lat) < 1e-3 and rel(m_cond, cond) < 1e-4, note
        else:
            lat, img, cond = m_lat, m_img, m_cond
        tensors[f"latents{i}"] = lat
        tensors[f"image{i}"] = img
        tensors[f"cond{i}"] = cond
        meta.append({"family": family, "prompt": prompt, "negative": NEGATIVE, "sampler": case[2],
                     "karras": case[3], "eta": case[4], "cfg": case[5], "steps": case[6], "seed": case[7],
                     "width": SIZE, "height": SIZE, "loras": [{"name": n, "te": te, "unet": u} for n, te, u in loras],
                     "embeddings": embs, "reference": reference,
                     # the infotext's values as A1111 writes them (one entry per name)
                     "lora_hashes": ", ".join(dict.fromkeys(
                         f"{n}: {a1111_lora_hash(os.path.join(d, n + '.safetensors'))}" for n, _, _ in loras)),
                     "ti_hashes": ", ".join(f"{n}: {a1111_ti_hash(os.path.join(d, n + '.safetensors'))}"
                                            for n in embs)})
        print(f"case {i}: {prompt!r}: reference {reference}{note}; image change {change:.1f}")
        assert change > 3.0

    same = (tensors["latents7"] - tensors["latents0"]).abs().max().item()
    print(f"kohya_ldm (case 7) vs kohya (case 0): max latent difference {same:.3g}")
    assert same <= 1e-6
    save_sorted(os.path.join(args.out, "lora_tiny_ref.safetensors"), tensors,
                {"cases": json.dumps(meta), "prompt": PROMPT, "negative": NEGATIVE})
    print(f"wrote {len(meta)} LoRA / embedding cases")


if __name__ == "__main__":
    main()
