"""sdc_layout.py - write random-weight Stable Diffusion models in both layouts.

The C program (sdc) reads two on-disk layouts:

  * the diffusers folder layout (unet/, vae/, text_encoder/, scheduler/,
    tokenizer/, model_index.json), and
  * the original single-file layout of the CompVis / Stability LDM
    checkpoints (model.diffusion_model.*, first_stage_model.*,
    cond_stage_model.*, plus the DDPM schedule buffers and model_ema.*).

This module builds diffusers / transformers models with random weights and
writes them in either layout, so test fixtures need no downloads.

Public API
----------
  unet_to_original(unet_state_dict, unet_config)      -> {model.diffusion_model.*}
  vae_to_original(vae_state_dict, vae_config)         -> {first_stage_model.*}
  clip_to_original_sd1(text_state_dict)               -> {cond_stage_model.transformer.*}
  clip_to_openclip_sd2(text_state_dict, text_config)  -> {cond_stage_model.model.*}
  clip_to_original_sdxl(text_state_dict)             -> {conditioner.embedders.0.transformer.*}
  clip_to_openclip_sdxl(text2_state_dict, text2_config) -> {conditioner.embedders.1.model.*}
  schedule_buffers(num_train_timesteps, beta_start, beta_end) -> {betas, alphas_cumprod, ...}
  write_single_file(path, unet, vae, text_encoder, family, dtype, extras, text_encoder_2)
  write_diffusers_folder(path, unet, vae, text_encoder, family, dtype, ...)
  build_models(family, size, seed) -> (unet, vae, text_encoder[, text_encoder_2])

Families: "sd1" (SD 1.x: CLIP ViT-L/14 text encoder, conv proj_in, a fixed
number of heads), "sd2" (SD 2.x: OpenCLIP ViT-H text encoder, linear
proj_in, a fixed head width) and "sdxl" (SDXL base 1.0: two text encoders,
CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 with its projection, the U-Net's
added "text_time" embedding).  Sizes: "full" (the real SD 1.5 / SD 2.1 /
SDXL base 1.0 shapes) and "tiny" (below).  For "sdxl", model_configs and
build_models return four items (the second text encoder last).

Tiny configurations (exact numbers)
-----------------------------------
UNet (both families): sample_size 8, in/out channels 4,
  block_out_channels (16, 32), layers_per_block 1, norm_num_groups 4,
  cross_attention_dim 16, time embedding 64 (= 4 * 16).
  sd1: down ("CrossAttnDownBlock2D", "DownBlock2D"),
       up   ("UpBlock2D", "CrossAttnUpBlock2D")       -- attention at level 0
       only, like SD 1.x has none at its deepest level;
       attention_head_dim 2 (diffusers' legacy name: 2 heads at every level,
       head width 8 / 16), conv 1x1 proj_in/proj_out.
  sd2: down ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
       up   ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D") -- attention at both
       levels, so the deepest up block has attention AND an upsampler
       (output_blocks.N.2.conv);
       attention_head_dim (2, 4) (heads per level => head width 8 at every
       level, the SD 2.x "num_head_channels" style; real SD 2.x uses 64),
       use_linear_projection True (Linear proj_in/proj_out),
       upcast_attention True (as SD 2.1).
  Mid block: UNetMidBlock2DCrossAttn (1 transformer; heads = last level's).
VAE (both): block_out_channels (16, 32), layers_per_block 1,
  norm_num_groups 4, latent_channels 4, sample_size 16 (latent 8x8),
  scaling_factor 0.18215.
Text encoder (both): vocab 49408, 77 positions, hidden 16, 2 heads,
  3 layers, intermediate 32; sd1 quick_gelu, sd2 gelu.  For sd2 the
  diffusers folder gets the first 2 layers only (see below); the single
  file keeps all 3 (OpenCLIP layout, plus text_projection [16, 16] and
  logit_scale).
The 49408 x 16 token embedding (1.58 MB in fp16) dominates a tiny file;
the sizes are kept this small so the committed fixtures stay small.

Tiny SDXL (the same structure as SDXL base, scaled down; the two 49408-row
token embeddings dominate, hence the narrow text encoders):
  UNet: sample_size 8, block_out_channels (4, 8, 12), layers_per_block 2,
    down ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D") -- no
    attention at the first level, as SDXL;
    transformer_layers_per_block (1, 1, 2) (the mid block takes the last
    level's depth, 2); attention_head_dim (1, 2, 3) = heads per level, head
    width 4; norm_num_groups 2; use_linear_projection True;
    cross_attention_dim 10 (= 4 + 6, the two encoders' widths);
    addition_embed_type "text_time", addition_time_embed_dim 8,
    projection_class_embeddings_input_dim 53 (= 6 * 8 + 5); time embedding
    16 (= 4 * 4).
  VAE: 4 levels (8x down, as the real VAE): block_out_channels
    (4, 4, 8, 8), layers_per_block 1, norm_num_groups 2, sample_size 64,
    scaling_factor 0.13025.
  Text encoder 1 (CLIP ViT-L style): hidden 4, 2 heads, 3 layers,
    intermediate 16, quick_gelu.
  Text encoder 2 (OpenCLIP bigG style, CLIPTextModelWithProjection):
    hidden 6, 2 heads, 3 layers, intermediate 24, gelu, projection_dim 5.

Layout notes
------------
* UNet: input_blocks.0.0 = conv_in; then per level, per layer
  input_blocks.k = [ResBlock (.0), SpatialTransformer (.1) if attention];
  after every level but the last, input_blocks.k.0.op = downsampler conv.
  middle_block.0/1/2 = resnet / transformer / resnet.  output_blocks
  follow diffusers' up_blocks in order (layers_per_block + 1 per level),
  the upsampler sits at .1.conv (no attention) or .2.conv (attention).
  ResBlock: norm1 -> in_layers.0, conv1 -> in_layers.2,
  time_emb_proj -> emb_layers.1, norm2 -> out_layers.0, conv2 ->
  out_layers.3, conv_shortcut -> skip_connection.  Transformer sub-keys
  are identical in both layouts.  time_embed.0/.2, out.0 (GroupNorm),
  out.2 (conv).
* VAE: the decoder's original up.{i} is diffusers' up_blocks.{n-1-i}
  (reversed), resnets are block.{j}, conv_shortcut -> nin_shortcut,
  mid.block_1 / mid.attn_1 / mid.block_2, conv_norm_out -> norm_out, and
  the attention q/k/v/proj_out are 1x1 conv weights [C, C, 1, 1].
* SD 1.x text: the transformers keys under cond_stage_model.transformer.,
  plus text_model.embeddings.position_ids int64 [1, 77] (transformers no
  longer has it in its state dict; real SD 1.x files carry it).
* SD 2.x text: OpenCLIP names; attn.in_proj_weight = cat(q, k, v) along
  dim 0.  SD 2.x conditions on the penultimate layer, so diffusers'
  text_encoder has num_hidden_layers - 1 layers (23 of 24); the single
  file keeps all of them.
* SDXL (Stability's sgm checkpoints): the U-Net as above plus
  add_embedding.linear_1/linear_2 -> label_emb.0.0 / label_emb.0.2;
  text encoder 1 under conditioner.embedders.0.transformer.text_model.*
  (all layers, plus position_ids int64 [1, 77]); text encoder 2 in the
  OpenCLIP names under conditioner.embedders.1.model. (all layers;
  text_projection [width, projection_dim] = the transformers Linear
  weight transposed, since OpenCLIP computes x @ text_projection;
  logit_scale); the VAE under first_stage_model.  No schedule buffers and
  no model_ema.* (SDXL base has none).  Both diffusers text encoders keep
  all their layers: the pipeline takes hidden_states[-2] of each.
* Schedule buffers (DDPM.register_schedule) are top-level keys stored as
  float32; model_ema.decay is float32 [], model_ema.num_updates int32 []
  (LitEma's buffers).
"""

import copy
import json
import math
import os

import torch

try:  # diffusers version string for the config files
    import diffusers as _diffusers

    _DIFFUSERS_VERSION = _diffusers.__version__
except Exception:  # pragma: no cover
    _DIFFUSERS_VERSION = "0.31.0"

FAMILIES = ("sd1", "sd2", "sdxl")
SIZES = ("tiny", "full")

# ---------------------------------------------------------------------------
# Model configurations
# ---------------------------------------------------------------------------

UNET_CONFIGS = {
    ("sd1", "full"): dict(  # SD 1.5
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
        use_linear_projection=False,
    ),
    ("sd2", "full"): dict(  # SD 2.1 (768-v)
        sample_size=96,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        norm_num_groups=32,
        use_linear_projection=True,
        upcast_attention=True,
    ),
    ("sd1", "tiny"): dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
        use_linear_projection=False,
    ),
    ("sd2", "tiny"): dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=(2, 4),
        norm_num_groups=4,
        use_linear_projection=True,
        upcast_attention=True,
    ),
    ("sdxl", "full"): dict(  # SDXL base 1.0
        sample_size=128,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        cross_attention_dim=2048,
        attention_head_dim=(5, 10, 20),
        norm_num_groups=32,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    ),
    ("sdxl", "tiny"): dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(4, 8, 12),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=10,
        attention_head_dim=(1, 2, 3),
        norm_num_groups=2,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=53,
    ),
}

_VAE_FULL = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    scaling_factor=0.18215,
)

_VAE_TINY = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    block_out_channels=(16, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=16,
    scaling_factor=0.18215,
)

VAE_CONFIGS = {
    ("sd1", "full"): dict(_VAE_FULL, sample_size=512),
    ("sd2", "full"): dict(_VAE_FULL, sample_size=768),
    ("sd1", "tiny"): dict(_VAE_TINY),
    ("sd2", "tiny"): dict(_VAE_TINY),
    ("sdxl", "full"): dict(_VAE_FULL, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
    ("sdxl", "tiny"): dict(
        _VAE_TINY,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        norm_num_groups=2,
        sample_size=64,
        scaling_factor=0.13025,
        force_upcast=True,
    ),
}

# bos/eos/pad ids as in the text_encoder/config.json of the real SD repos
# (legacy values; only the pooled output would depend on them).
_TEXT_COMMON = dict(
    vocab_size=49408,
    max_position_embeddings=77,
    layer_norm_eps=1e-5,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

TEXT_CONFIGS = {
    ("sd1", "full"): dict(  # CLIP ViT-L/14 text tower
        _TEXT_COMMON,
        hidden_size=768,
        intermediate_size=3072,
        num_attention_heads=12,
        num_hidden_layers=12,
        hidden_act="quick_gelu",
        projection_dim=768,
    ),
    ("sd2", "full"): dict(  # OpenCLIP ViT-H/14 text tower, all 24 layers
        _TEXT_COMMON,
        hidden_size=1024,
        intermediate_size=4096,
        num_attention_heads=16,
        num_hidden_layers=24,
        hidden_act="gelu",
        projection_dim=512,
    ),
    ("sd1", "tiny"): dict(
        _TEXT_COMMON,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=3,
        hidden_act="quick_gelu",
        projection_dim=16,
    ),
    ("sd2", "tiny"): dict(
        _TEXT_COMMON,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=3,
        hidden_act="gelu",
        projection_dim=16,
    ),
    # SDXL text encoder 1: CLIP ViT-L/14, as SD 1.x (all 12 layers are
    # stored; SDXL conditions on the penultimate one)
    ("sdxl", "full"): dict(
        _TEXT_COMMON,
        hidden_size=768,
        intermediate_size=3072,
        num_attention_heads=12,
        num_hidden_layers=12,
        hidden_act="quick_gelu",
        projection_dim=768,
    ),
    ("sdxl", "tiny"): dict(
        _TEXT_COMMON,
        hidden_size=4,
        intermediate_size=16,
        num_attention_heads=2,
        num_hidden_layers=3,
        hidden_act="quick_gelu",
        projection_dim=4,
    ),
}

# SDXL text encoder 2 (CLIPTextModelWithProjection): OpenCLIP ViT-bigG/14's
# text tower with its projection, config values as SDXL base 1.0's
# text_encoder_2/config.json (legacy eos_token_id 2: transformers pools at
# the argmax of the ids, i.e. at the first <|endoftext|>).
TEXT2_CONFIGS = {
    ("sdxl", "full"): dict(
        _TEXT_COMMON,
        hidden_size=1280,
        intermediate_size=5120,
        num_attention_heads=20,
        num_hidden_layers=32,
        hidden_act="gelu",
        projection_dim=1280,
    ),
    ("sdxl", "tiny"): dict(
        _TEXT_COMMON,
        hidden_size=6,
        intermediate_size=24,
        num_attention_heads=2,
        num_hidden_layers=3,
        hidden_act="gelu",
        projection_dim=5,
    ),
}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPENCLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."

# Value written for OpenCLIP's logit_scale (trained CLIP models end at
# ln(100); the value is unused by Stable Diffusion).
OPENCLIP_LOGIT_SCALE = math.log(100.0)
EMA_DECAY = 0.9999
EMA_NUM_UPDATES = 0


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _cfg_get(config, name, default=None):
    """Read a field from a dict, a FrozenDict or a transformers config."""
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def _per_level(value, n):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} per-level values, got {value!r}")
        return list(value)
    return [value] * n


def _rename_by_prefix(state_dict, prefix_map, sub_rename=None, what="state dict"):
    """Rename every key of state_dict through prefix_map.

    prefix_map: {source prefix (ending in '.'): (target prefix, kind)}.
    sub_rename: {kind: [(old, new), ...]} applied to the key's remainder
    (exact first-component matches, so 'norm1' does not hit 'norm1x').
    Every key must match exactly one longest prefix, otherwise KeyError.
    """
    sub_rename = sub_rename or {}
    # longest prefixes first so that e.g. "mid_block.attentions.0." wins
    prefixes = sorted(prefix_map, key=len, reverse=True)
    out = {}
    for key, value in state_dict.items():
        for p in prefixes:
            if key.startswith(p):
                target, kind = prefix_map[p]
                rest = key[len(p):]
                for old, new in sub_rename.get(kind, ()):
                    if rest == old or rest.startswith(old + "."):
                        rest = new + rest[len(old):]
                        break
                out[target + rest] = value
                break
        else:
            raise KeyError(f"{what}: no mapping for key {key!r}")
    if len(out) != len(state_dict):
        raise RuntimeError(f"{what}: key collision while renaming")
    return out


# ---------------------------------------------------------------------------
# UNet
# ---------------------------------------------------------------------------

_UNET_RESNET_RENAMES = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]


def _has_prefix(keys, prefix):
    return any(k.startswith(prefix) for k in keys)


def unet_to_original(unet_state_dict, unet_config):
    """diffusers UNet2DConditionModel state dict -> model.diffusion_model.* dict.

    The block layout comes from the config (block_out_channels,
    layers_per_block, down/up_block_types); whether a level has attention
    is read from the block types and checked against the keys present.
    """
    keys = list(unet_state_dict.keys())
    down_types = list(_cfg_get(unet_config, "down_block_types"))
    up_types = list(_cfg_get(unet_config, "up_block_types"))
    n = len(down_types)
    if len(up_types) != n or len(_cfg_get(unet_config, "block_out_channels")) != n:
        raise ValueError("down/up block types and block_out_channels differ in length")
    lpb = _per_level(_cfg_get(unet_config, "layers_per_block"), n)

    pm = {
        "conv_in.": ("input_blocks.0.0.", "plain"),
        "time_embedding.linear_1.": ("time_embed.0.", "plain"),
        "time_embedding.linear_2.": ("time_embed.2.", "plain"),
        "conv_norm_out.": ("out.0.", "plain"),
        "conv_out.": ("out.2.", "plain"),
    }
    # SDXL's added embedding (pooled text + size/crop Fourier features):
    # Stability's label_emb = Sequential(Sequential(Linear, SiLU, Linear))
    if _has_prefix(keys, "add_embedding."):
        pm["add_embedding.linear_1."] = ("label_emb.0.0.", "plain")
        pm["add_embedding.linear_2."] = ("label_emb.0.2.", "plain")

    # input blocks
    idx = 1
    for level in range(n):
        attn = "CrossAttn" in down_types[level]
        if attn != _has_prefix(keys, f"down_blocks.{level}.attentions."):
            raise ValueError(f"down block {level}: type {down_types[level]} disagrees with the weights")
        for j in range(lpb[level]):
            pm[f"down_blocks.{level}.resnets.{j}."] = (f"input_blocks.{idx}.0.", "res")
            if attn:
                pm[f"down_blocks.{level}.attentions.{j}."] = (f"input_blocks.{idx}.1.", "plain")
            idx += 1
        if _has_prefix(keys, f"down_blocks.{level}.downsamplers.0."):
            pm[f"down_blocks.{level}.downsamplers.0.conv."] = (f"input_blocks.{idx}.0.op.", "plain")
            idx += 1

    # middle block
    if _has_prefix(keys, "mid_block.attentions.0."):
        pm["mid_block.resnets.0."] = ("middle_block.0.", "res")
        pm["mid_block.attentions.0."] = ("middle_block.1.", "plain")
        pm["mid_block.resnets.1."] = ("middle_block.2.", "res")
    elif _has_prefix(keys, "mid_block."):
        pm["mid_block.resnets.0."] = ("middle_block.0.", "res")
        pm["mid_block.resnets.1."] = ("middle_block.1.", "res")

    # output blocks: diffusers up_blocks in order, level n-1-b
    idx = 0
    for b in range(n):
        attn = "CrossAttn" in up_types[b]
        if attn != _has_prefix(keys, f"up_blocks.{b}.attentions."):
            raise ValueError(f"up block {b}: type {up_types[b]} disagrees with the weights")
        nlayers = lpb[n - 1 - b] + 1
        for j in range(nlayers):
            pm[f"up_blocks.{b}.resnets.{j}."] = (f"output_blocks.{idx}.0.", "res")
            if attn:
                pm[f"up_blocks.{b}.attentions.{j}."] = (f"output_blocks.{idx}.1.", "plain")
            if j == nlayers - 1 and _has_prefix(keys, f"up_blocks.{b}.upsamplers.0."):
                slot = 2 if attn else 1
                pm[f"up_blocks.{b}.upsamplers.0.conv."] = (f"output_blocks.{idx}.{slot}.conv.", "plain")
            idx += 1

    renamed = _rename_by_prefix(
        unet_state_dict, pm, {"res": _UNET_RESNET_RENAMES}, what="unet_to_original"
    )
    return {UNET_PREFIX + k: v for k, v in renamed.items()}


# ---------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------

_VAE_RESNET_RENAMES = [("conv_shortcut", "nin_shortcut")]
_VAE_ATTN_RENAMES = [
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
]


def vae_to_original(vae_state_dict, vae_config):
    """diffusers AutoencoderKL state dict -> first_stage_model.* dict."""
    n = len(_cfg_get(vae_config, "block_out_channels"))
    lpb = _cfg_get(vae_config, "layers_per_block")
    keys = list(vae_state_dict.keys())

    pm = {
        "quant_conv.": ("quant_conv.", "plain"),
        "post_quant_conv.": ("post_quant_conv.", "plain"),
    }
    for part in ("encoder", "decoder"):
        pm[f"{part}.conv_in."] = (f"{part}.conv_in.", "plain")
        pm[f"{part}.conv_out."] = (f"{part}.conv_out.", "plain")
        pm[f"{part}.conv_norm_out."] = (f"{part}.norm_out.", "plain")
        pm[f"{part}.mid_block.resnets.0."] = (f"{part}.mid.block_1.", "res")
        pm[f"{part}.mid_block.resnets.1."] = (f"{part}.mid.block_2.", "res")
        pm[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", "attn")
    for i in range(n):
        for j in range(lpb):
            pm[f"encoder.down_blocks.{i}.resnets.{j}."] = (f"encoder.down.{i}.block.{j}.", "res")
        if _has_prefix(keys, f"encoder.down_blocks.{i}.downsamplers.0."):
            pm[f"encoder.down_blocks.{i}.downsamplers.0.conv."] = (f"encoder.down.{i}.downsample.conv.", "plain")
        o = n - 1 - i  # original index of diffusers' up_blocks.{i}
        for j in range(lpb + 1):
            pm[f"decoder.up_blocks.{i}.resnets.{j}."] = (f"decoder.up.{o}.block.{j}.", "res")
        if _has_prefix(keys, f"decoder.up_blocks.{i}.upsamplers.0."):
            pm[f"decoder.up_blocks.{i}.upsamplers.0.conv."] = (f"decoder.up.{o}.upsample.conv.", "plain")

    renamed = _rename_by_prefix(
        vae_state_dict,
        pm,
        {"res": _VAE_RESNET_RENAMES, "attn": _VAE_ATTN_RENAMES},
        what="vae_to_original",
    )
    out = {}
    for k, v in renamed.items():
        if ".mid.attn_1." in k and k.endswith(".weight") and v.ndim == 2:
            v = v.reshape(v.shape[0], v.shape[1], 1, 1)  # linear -> 1x1 conv
        out[VAE_PREFIX + k] = v
    return out


# ---------------------------------------------------------------------------
# Text encoders
# ---------------------------------------------------------------------------


def clip_to_original_sd1(text_state_dict, prefix=CLIP_PREFIX):
    """transformers CLIPTextModel -> cond_stage_model.transformer.text_model.*"""
    out = {}
    for k, v in text_state_dict.items():
        if not k.startswith("text_model."):
            raise KeyError(f"clip_to_original_sd1: unexpected key {k!r}")
        out[prefix + k] = v
    pos = text_state_dict["text_model.embeddings.position_embedding.weight"]
    pid_key = prefix + "text_model.embeddings.position_ids"
    out[pid_key] = torch.arange(pos.shape[0], dtype=torch.int64).unsqueeze(0)
    return out


def clip_to_original_sdxl(text_state_dict):
    """SDXL text encoder 1 (transformers CLIPTextModel, all layers) ->
    conditioner.embedders.0.transformer.text_model.* (+ position_ids)."""
    return clip_to_original_sd1(text_state_dict, prefix=SDXL_CLIP_PREFIX)


_OPENCLIP_LAYER_RENAMES = [
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("self_attn.out_proj.", "attn.out_proj."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
]


def _openclip_tower(sd, nlayers, what):
    """The OpenCLIP names of a transformers CLIP text tower (no projection):
    (dict without prefix, set of the source keys used)."""
    out = {
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
    }
    used = {"text_model.embeddings.token_embedding.weight",
            "text_model.embeddings.position_embedding.weight"}
    for i in range(nlayers):
        src = f"text_model.encoder.layers.{i}."
        dst = f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            parts = [sd[f"{src}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(parts, dim=0)
            used.update(f"{src}self_attn.{p}_proj.{kind}" for p in ("q", "k", "v"))
        for old, new in _OPENCLIP_LAYER_RENAMES:
            for kind in ("weight", "bias"):
                out[f"{dst}{new}{kind}"] = sd[f"{src}{old}{kind}"]
                used.add(f"{src}{old}{kind}")
    for kind in ("weight", "bias"):
        out[f"ln_final.{kind}"] = sd[f"text_model.final_layer_norm.{kind}"]
        used.add(f"text_model.final_layer_norm.{kind}")
    if any(k.startswith(f"text_model.encoder.layers.{nlayers}.") for k in sd):
        raise KeyError(f"{what}: the state dict has more than {nlayers} layers")
    return out, used


def clip_to_openclip_sd2(text_state_dict, text_config, text_projection=None,
                         logit_scale=OPENCLIP_LOGIT_SCALE, projection_seed=0):
    """transformers CLIPTextModel (all layers) -> cond_stage_model.model.*

    text_projection: [width, width] tensor; by default deterministic random
    noise (std width**-0.5) from projection_seed.  SD never uses it.
    """
    width = _cfg_get(text_config, "hidden_size")
    nlayers = _cfg_get(text_config, "num_hidden_layers")
    sd = text_state_dict
    ref = sd["text_model.embeddings.token_embedding.weight"]
    out, used = _openclip_tower(sd, nlayers, "clip_to_openclip_sd2")
    leftover = set(sd.keys()) - used
    if leftover:
        raise KeyError(f"clip_to_openclip_sd2: unmapped keys {sorted(leftover)[:5]}")
    if text_projection is None:
        g = torch.Generator().manual_seed(projection_seed)
        text_projection = torch.randn(width, width, generator=g) * width ** -0.5
    out["text_projection"] = text_projection.to(ref.dtype)
    out["logit_scale"] = torch.tensor(float(logit_scale), dtype=ref.dtype)
    return {OPENCLIP_PREFIX + k: v for k, v in out.items()}


def clip_to_openclip_sdxl(text2_state_dict, text2_config, logit_scale=OPENCLIP_LOGIT_SCALE):
    """SDXL text encoder 2 (transformers CLIPTextModelWithProjection, all
    layers) -> conditioner.embedders.1.model.*

    text_projection is stored [width, projection_dim]: the transposed
    weight of transformers' bias-free Linear (OpenCLIP: pooled @ proj).
    """
    nlayers = _cfg_get(text2_config, "num_hidden_layers")
    sd = text2_state_dict
    out, used = _openclip_tower(sd, nlayers, "clip_to_openclip_sdxl")
    proj = sd["text_projection.weight"]  # [projection_dim, width]
    used.add("text_projection.weight")
    leftover = set(sd.keys()) - used
    if leftover:
        raise KeyError(f"clip_to_openclip_sdxl: unmapped keys {sorted(leftover)[:5]}")
    out["text_projection"] = proj.t().contiguous()
    out["logit_scale"] = torch.tensor(float(logit_scale), dtype=proj.dtype)
    return {SDXL_OPENCLIP_PREFIX + k: v for k, v in out.items()}


def drop_last_text_layer(text_state_dict, num_hidden_layers):
    """State dict of the first num_hidden_layers - 1 layers (SD 2 diffusers copy)."""
    last = f"text_model.encoder.layers.{num_hidden_layers - 1}."
    return {k: v for k, v in text_state_dict.items() if not k.startswith(last)}


# ---------------------------------------------------------------------------
# Schedule buffers (LDM DDPM.register_schedule) and LitEma buffers
# ---------------------------------------------------------------------------


def schedule_buffers(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012):
    """The DDPM buffers an LDM checkpoint carries, float32, computed in float64
    like register_schedule (scaled_linear betas, v_posterior 0)."""
    t = torch.float64
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=t) ** 2
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, dim=0)
    ac_prev = torch.cat([torch.ones(1, dtype=t), ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    bufs = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": torch.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": torch.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": torch.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": torch.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": torch.sqrt(1.0 / ac - 1.0),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": torch.log(torch.clamp(post_var, min=1e-20)),
        "posterior_mean_coef1": betas * torch.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * torch.sqrt(alphas) / (1.0 - ac),
    }
    return {k: v.to(torch.float32) for k, v in bufs.items()}


def ema_buffers(decay=EMA_DECAY, num_updates=EMA_NUM_UPDATES):
    return {
        "model_ema.decay": torch.tensor(decay, dtype=torch.float32),
        "model_ema.num_updates": torch.tensor(num_updates, dtype=torch.int32),
    }


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def _check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def _finish(tensors, dtype):
    """Cast floating tensors to dtype (integer ones untouched), make every
    tensor contiguous and owning its own storage."""
    out = {}
    for k, v in tensors.items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()
    return out


def _check_text2(family, text_encoder_2):
    if (family == "sdxl") != (text_encoder_2 is not None):
        raise ValueError("text_encoder_2 is required for sdxl and only for sdxl")


def original_state_dict(unet, vae, text_encoder, family, text_encoder_2=None):
    """Assemble the original-layout dict (model dtypes, no casting)."""
    _check_family(family)
    _check_text2(family, text_encoder_2)
    sd = {}
    sd.update(unet_to_original(unet.state_dict(), unet.config))
    sd.update(vae_to_original(vae.state_dict(), vae.config))
    if family == "sd1":
        sd.update(clip_to_original_sd1(text_encoder.state_dict()))
    elif family == "sd2":
        sd.update(clip_to_openclip_sd2(text_encoder.state_dict(), text_encoder.config))
    else:
        sd.update(clip_to_original_sdxl(text_encoder.state_dict()))
        sd.update(clip_to_openclip_sdxl(text_encoder_2.state_dict(), text_encoder_2.config))
    return sd


def write_single_file(path, unet, vae, text_encoder, family, dtype=torch.float16, extras=None,
                      text_encoder_2=None):
    """Write an LDM single-file checkpoint (safetensors).

    Model weights are cast to dtype; position_ids stays int64; the schedule
    buffers and model_ema.decay (extras) stay float32, num_updates int32.
    extras defaults to True for sd1 / sd2 and False for sdxl (Stability's
    SDXL files carry neither).  text_encoder_2: SDXL's second encoder.
    Returns the number of tensors written.
    """
    from safetensors.torch import save_file

    if extras is None:
        extras = family != "sdxl"
    tensors = _finish(original_state_dict(unet, vae, text_encoder, family, text_encoder_2), dtype)
    if extras:
        tensors.update(_finish(schedule_buffers(), None))
        tensors.update(_finish(ema_buffers(), None))
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    save_file(tensors, path, metadata={"format": "pt"})
    return len(tensors)


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def scheduler_config(prediction_type="epsilon"):
    """DDIMScheduler config as the SD repos ship it."""
    return {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": prediction_type,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
    }


def scheduler_config_sdxl():
    """EulerDiscreteScheduler config as SDXL base 1.0 ships it."""
    return {
        "_class_name": "EulerDiscreteScheduler",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "interpolation_type": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "sample_max_value": 1.0,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
        "use_karras_sigmas": False,
    }


def model_index_sdxl():
    return {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "force_zeros_for_empty_prompt": True,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def model_index():
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def diffusers_text_state_dict(text_encoder, family):
    """The text encoder weights as the diffusers folder stores them and the
    matching num_hidden_layers (SD 2: the last layer dropped)."""
    sd = text_encoder.state_dict()
    nl = text_encoder.config.num_hidden_layers
    if family == "sd2":
        sd = drop_last_text_layer(sd, nl)
        nl -= 1
    return sd, nl


def _write_text_encoder(d, state_dict, config, num_hidden_layers, architecture, dtype):
    from safetensors.torch import save_file

    os.makedirs(d, exist_ok=True)
    tcfg = copy.deepcopy(config)
    tcfg.num_hidden_layers = num_hidden_layers
    tcfg.architectures = [architecture]
    tcfg.torch_dtype = _dtype_name(dtype)
    tcfg.save_pretrained(d)
    cfg_path = os.path.join(d, "config.json")
    with open(cfg_path) as f:  # drop transformers' private bookkeeping keys
        tjson = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    _write_json(cfg_path, tjson)
    save_file(_finish(state_dict, dtype), os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})


def write_diffusers_folder(path, unet, vae, text_encoder, family, dtype=torch.float16,
                           prediction_type="epsilon", tokenizer_writer=None,
                           text_encoder_2=None, tokenizer_2_writer=None):
    """Write a diffusers StableDiffusionPipeline (sd1 / sd2) or
    StableDiffusionXLPipeline (sdxl) folder.

    tokenizer_writer: optional callable(out_dir) that fills path/tokenizer/
    (the directory is created before the call); tokenizer_2_writer the
    same for SDXL's tokenizer_2/ (SDXL pads it with "!").
    text_encoder_2: SDXL's CLIPTextModelWithProjection (all layers kept).
    """
    from safetensors.torch import save_file

    _check_family(family)
    _check_text2(family, text_encoder_2)
    os.makedirs(path, exist_ok=True)

    for sub, model in (("unet", unet), ("vae", vae)):
        d = os.path.join(path, sub)
        os.makedirs(d, exist_ok=True)
        cfg = dict(model.config)
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
               if not k.startswith("_")}
        cfg["_class_name"] = type(model).__name__
        cfg["_diffusers_version"] = _DIFFUSERS_VERSION
        _write_json(os.path.join(d, "config.json"), cfg)
        save_file(_finish(model.state_dict(), dtype),
                  os.path.join(d, "diffusion_pytorch_model.safetensors"),
                  metadata={"format": "pt"})

    sd, nl = diffusers_text_state_dict(text_encoder, family)
    _write_text_encoder(os.path.join(path, "text_encoder"), sd, text_encoder.config, nl,
                        "CLIPTextModel", dtype)
    if text_encoder_2 is not None:
        _write_text_encoder(os.path.join(path, "text_encoder_2"), text_encoder_2.state_dict(),
                            text_encoder_2.config, text_encoder_2.config.num_hidden_layers,
                            "CLIPTextModelWithProjection", dtype)

    d = os.path.join(path, "scheduler")
    os.makedirs(d, exist_ok=True)
    sched = scheduler_config_sdxl() if family == "sdxl" else scheduler_config(prediction_type)
    if family == "sdxl":
        sched["prediction_type"] = prediction_type
    _write_json(os.path.join(d, "scheduler_config.json"), sched)

    for sub, writer in (("tokenizer", tokenizer_writer), ("tokenizer_2", tokenizer_2_writer)):
        if writer is not None:
            d = os.path.join(path, sub)
            os.makedirs(d, exist_ok=True)
            writer(d)

    _write_json(os.path.join(path, "model_index.json"),
                model_index_sdxl() if family == "sdxl" else model_index())


# ---------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------


@torch.no_grad()
def randomize_(model):
    """Re-initialise every parameter with normal noise (uses the global RNG).

    1-D '*.weight' (norm scales): 1 + 0.1 N;  1-D biases: 0.05 N;
    embeddings: 0.02 N;  matrices / convs: N / sqrt(fan_in), so activations
    stay O(1) and no output is trivially zero (the convs diffusers
    zero-initialises become non-zero too).
    """
    for name, p in model.named_parameters():
        if p.ndim <= 1:
            if name.endswith("weight"):
                p.normal_(0.0, 0.1).add_(1.0)
            else:
                p.normal_(0.0, 0.05)
        elif "embedding" in name:
            p.normal_(0.0, 0.02)
        else:
            fan_in = p[0].numel()
            p.normal_(0.0, 1.0 / math.sqrt(fan_in))
    return model


def model_configs(family, size):
    """(unet, vae, text) config dicts; for sdxl (unet, vae, text, text2)."""
    _check_family(family)
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    cfgs = (dict(UNET_CONFIGS[(family, size)]),
            dict(VAE_CONFIGS[(family, size)]),
            dict(TEXT_CONFIGS[(family, size)]))
    if family == "sdxl":
        cfgs += (dict(TEXT2_CONFIGS[(family, size)]),)
    return cfgs


def build_models(family, size, seed=0):
    """(unet, vae, text_encoder) in float32 with random weights; for sdxl
    (unet, vae, text_encoder, text_encoder_2), the last a
    CLIPTextModelWithProjection.

    text_encoder has the full OpenCLIP depth for sd2 (write_diffusers_folder
    drops the last layer)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfgs = model_configs(family, size)
    ucfg, vcfg, tcfg = cfgs[:3]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**ucfg)
    vae = AutoencoderKL(**vcfg)
    models = [unet, vae, CLIPTextModel(CLIPTextConfig(**tcfg))]
    if family == "sdxl":
        models.append(CLIPTextModelWithProjection(CLIPTextConfig(**cfgs[3])))
    for m in models:
        randomize_(m)
        m.eval()
    return tuple(models)
