/* model.h - a Stable Diffusion model on disk: which files, which layout,
 * which family, and the configuration derived from tensor names and shapes
 * (plus config.json where the diffusers layout has one). Whatever the
 * layout, the result is one sdc_model_config. */
#ifndef SDC_MODEL_H
#define SDC_MODEL_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "model/safetensors.h"

/* Limits on what a model file may say, far above any real SD 1.x, 2.x or
 * SDXL model (real values in brackets), so that every size computed from a
 * file is bounded before anything is allocated. docs/DETAILS.md lists them. */
#define SDC_MAX_LEVELS 8                /* U-Net and VAE levels [3-4] */
#define SDC_LIMIT_DIM (1 << 24)         /* any dimension of a tensor in a model file [49408] */
#define SDC_LIMIT_RES_BLOCKS 16         /* res blocks per level [2] */
#define SDC_LIMIT_CHANNELS 16384        /* channels of any U-Net or VAE level [1280] */
#define SDC_LIMIT_IO_CHANNELS 64        /* U-Net input/output and latent channels [4, 9 inpainting] */
#define SDC_LIMIT_HEADS 256             /* attention heads [8-20] */
#define SDC_LIMIT_ATTN_DEPTH 64         /* transformer blocks per attention [1, 10 SDXL] */
#define SDC_LIMIT_CONTEXT 16384         /* U-Net cross-attention width [768, 1024, 2048 SDXL] */
#define SDC_LIMIT_TIME_EMBED 65536      /* time embedding width [1280] */
#define SDC_LIMIT_GROUPS 1024           /* group-norm groups [32] */
#define SDC_LIMIT_TEXT_VOCAB 1048576    /* token embedding rows [49408] */
#define SDC_LIMIT_TEXT_WIDTH 16384      /* text encoder width [768, 1024, 1280] */
#define SDC_LIMIT_TEXT_FF 65536         /* text encoder MLP width [3072, 4096, 5120] */
#define SDC_LIMIT_TEXT_LAYERS 128       /* text encoder layers [12, 23-24, 32] */
#define SDC_LIMIT_TEXT_POS 4096         /* position embeddings, at least 77 [77] */
#define SDC_LIMIT_IMAGE 4096            /* pixels a side, native or asked for [512, 768, 1024] */
/* Skip connections of a U-Net: conv_in, each res block, each downsampler. */
#define SDC_MAX_SKIPS (1 + SDC_MAX_LEVELS * (SDC_LIMIT_RES_BLOCKS + 1))

typedef enum sdc_family {
    SDC_FAMILY_UNKNOWN = 0,
    SDC_FAMILY_SD1,  /* CLIP ViT-L/14 text encoder (transformers naming) */
    SDC_FAMILY_SD2,  /* OpenCLIP ViT-H text encoder, penultimate layer */
    SDC_FAMILY_SDXL, /* CLIP ViT-L and OpenCLIP ViT-bigG, penultimate layers concatenated,
                      * the pooled bigG output and size conditioning added to the time embedding */
} sdc_family;

typedef enum sdc_layout {
    SDC_LAYOUT_SINGLE_FILE = 0, /* model.diffusion_model.*, first_stage_model.*, cond_stage_model.* */
    SDC_LAYOUT_DIFFUSERS,       /* folder: unet/, vae/, text_encoder/, tokenizer/ */
} sdc_layout;

typedef enum sdc_text_naming {
    SDC_TEXT_HF = 0,   /* text_model.encoder.layers.N.self_attn.q_proj ... */
    SDC_TEXT_OPENCLIP, /* transformer.resblocks.N.attn.in_proj_weight ... */
} sdc_text_naming;

typedef enum sdc_prediction {
    SDC_PRED_EPSILON = 0,
    SDC_PRED_V,
} sdc_prediction;

typedef struct sdc_text_config {
    int vocab;        /* token embedding rows (49408) */
    int width;        /* hidden size (768 ViT-L, 1024 ViT-H) */
    int layers;       /* transformer layers stored in the file */
    int heads;        /* attention heads (width / 64 for real models) */
    int ff;           /* MLP hidden size (4 * width) */
    int max_pos;      /* position embeddings (77) */
    sdc_act act;      /* quick_gelu (SD 1.x) or gelu (SD 2.x) */
    float eps;        /* layer-norm epsilon (1e-5) */
    int layers_used;  /* layers run for the U-Net context at clip skip 1 */
    int pad_id;       /* padding token: 49407 (SD 1.x) or 0 (SD 2.x) */
    bool final_norm;  /* the U-Net context after the final layer norm (SD 1.x, 2.x) or not (SDXL) */
    int proj;         /* text_projection's output (SDXL's second encoder: 1280); 0: none */
    const char *heads_source;        /* where heads came from, for messages */
} sdc_text_config;

typedef struct sdc_unet_config {
    int in_channels, out_channels;   /* 4, 4 */
    int model_channels;              /* 320 */
    int n_levels;                    /* 4 */
    int channels[SDC_MAX_LEVELS];    /* per level: 320 640 1280 1280 */
    int num_res_blocks;              /* 2 */
    int attn_depth[SDC_MAX_LEVELS];  /* transformer blocks per attention at this level, 0 = none */
    int heads[SDC_MAX_LEVELS];       /* attention heads per level */
    int context_dim;                 /* 768 (SD 1.x) or 1024 (SD 2.x) */
    bool linear_proj;                /* proj_in/out are linear (SD 2.x) or 1x1 conv (SD 1.x) */
    int time_embed_dim;              /* 4 * model_channels */
    int norm_groups;                 /* group norm groups (32) */
    /* SDXL's added embedding (add_embedding / label_emb.0): its input is
     * the pooled text embedding and n_time_ids size values, each through a
     * add_time_dim-wide Fourier embedding; 0: none (SD 1.x, 2.x) */
    int add_in_dim;                  /* 2816 = 1280 + 6 * 256 */
    int add_time_dim;                /* 256 */
    int n_time_ids;                  /* 6: original size, crop top-left, target size */
    sdc_prediction prediction;
    const char *prediction_source;   /* "scheduler_config.json", "heuristic", ... */
    const char *heads_source;        /* where heads and norm_groups came from, for messages */
    const char *groups_source;
} sdc_unet_config;

typedef struct sdc_vae_config {
    int channels;                    /* base channels (128) */
    int n_levels;                    /* 4 */
    int channels_mult[SDC_MAX_LEVELS]; /* 1 2 4 4 */
    int num_res_blocks;              /* 2 (the decoder has one more per level) */
    int z_channels;                  /* latent channels (4) */
    bool has_encoder;
    int norm_groups;                 /* group norm groups (32) */
    float scale_factor;              /* 0.18215 */
    int out_channels;                /* image channels of decoder.conv_out (3) */
    const char *groups_source;
} sdc_vae_config;

/* What a diffusers scheduler_config.json says (single files say nothing). */
typedef struct sdc_sched_hint {
    const char *spacing;             /* "leading", "trailing", "linspace" or NULL: each sampler's default */
    int steps_offset;                /* 1 */
} sdc_sched_hint;

typedef struct sdc_model_config {
    sdc_family family;
    sdc_layout layout;
    sdc_text_config text;
    sdc_text_config text2;           /* SDXL's second text encoder; width 0: none */
    sdc_unet_config unet;
    sdc_vae_config vae;
    sdc_sched_hint sched;
    int image_size;                  /* native side in pixels: 512 (768 for v-prediction SD 2.x,
                                      * 1024 for SDXL), or the file's __metadata__ sdc.image_size */
    bool zero_empty_negative;        /* SDXL: an empty negative prompt is zeros, not encoded
                                      * (model_index.json force_zeros_for_empty_prompt, true by default) */
} sdc_model_config;

/* Where each component's tensors are and how they are named. */
typedef struct sdc_model_files {
    char *path;                 /* what the user gave */
    sdc_layout layout;
    sdc_st_file *single;        /* single-file layout: the one file */
    sdc_st_file *unet_file;     /* the file holding each component ... */
    sdc_st_file *vae_file;
    sdc_st_file *text_file;
    const char *unet_prefix;    /* ... and the prefix of its names */
    const char *vae_prefix;
    const char *text_prefix;
    bool unet_diffusers_names;  /* down_blocks.* (diffusers) or input_blocks.* (original) */
    bool vae_diffusers_names;
    sdc_text_naming text_naming;
    sdc_st_file *text2_file;    /* SDXL's second text encoder, or NULL */
    const char *text2_prefix;
    sdc_text_naming text2_naming;
    sdc_st_file *vae_own;       /* single-file layout with --vae: the VAE's own file (vae_file), else NULL */
    char *tokenizer_vocab;      /* diffusers tokenizer/vocab.json, or NULL */
    char *tokenizer_merges;     /* diffusers tokenizer/merges.txt, or NULL */
    sdc_model_config config;
} sdc_model_files;

/* Open a single .safetensors checkpoint or a diffusers folder, recognise
 * the layout and family and derive the configuration. An unrecognised file
 * is an SDC_ERR_UNSUPPORTED error naming the expected tensors it lacks. */
sdc_status sdc_model_open(const char *path, sdc_model_files **out);
void sdc_model_close(sdc_model_files *m);

/* A VAE from a file of its own (--vae: diffusers' AutoencoderKL names or
 * the original ones, bare or under first_stage_model.) in place of the
 * model's: its configuration from its tensors, the model's latent scale and
 * group count; one of another latent shape is an SDC_ERR_UNSUPPORTED
 * error. */
sdc_status sdc_model_use_vae(sdc_model_files *m, const char *path);

const char *sdc_family_name(sdc_family f);
const char *sdc_layout_name(sdc_layout l);

/* Print family, configuration and a tensor summary (for `sdc inspect`). */
void sdc_model_print(const sdc_model_files *m, FILE *fp);

/* Every value of m->config within the limits above, and the components
 * agreeing with each other (text width = U-Net context width, U-Net
 * channels = latent channels, group counts dividing the channels they
 * split, heads dividing widths); with a diffusers folder, each config.json
 * value that describes a shape agreeing with the tensors. Called by
 * sdc_model_open (model_check.c). */
sdc_status sdc_model_check(const sdc_model_files *m, const cJSON *unet_cfg, const cJSON *vae_cfg,
                           const cJSON *text_cfg, const cJSON *text2_cfg);

/* Shared by model.c and model_sdxl.c (internal). */
const sdc_st_tensor *sdc_model_findf(const sdc_st_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* root/sub/ one of names (the first that exists), opened; a pickle .bin
 * alone or nothing is an error naming the folder. */
sdc_status sdc_model_open_component(const char *root, const char *sub, const char *const *names, sdc_st_file **out);
/* A text encoder's shape from its tensors: vocab, width, layers, ff,
 * max_pos, default heads and eps (file, prefix and naming as given). */
sdc_status sdc_model_text_shape(const sdc_st_file *f, const char *prefix, sdc_text_naming naming,
                                sdc_text_config *c);
/* SDXL (model_sdxl.c): a single file with conditioner.embedders.* is
 * recognised (true in *is_sdxl; the refiner refused by name); a diffusers
 * folder's text_encoder_2 opened; the second encoder's and the added
 * embedding's configuration read. */
sdc_status sdc_sdxl_recognise_single(sdc_model_files *m, bool *is_sdxl);
sdc_status sdc_sdxl_open_diffusers(sdc_model_files *m, const cJSON *model_index);
sdc_status sdc_sdxl_configure(sdc_model_files *m, const cJSON *unet_cfg, const cJSON *text2_cfg);

/* Heads of a text encoder of this width when the file does not say:
 * CLIP and OpenCLIP use 64-wide heads. */
int sdc_text_default_heads(int width);

#endif
