/* lora.h - LoRA files matched to a model's weights, and the changes they
 * make to them, by AUTOMATIC1111's formulas (extensions-builtin/Lora:
 * network.py, network_lora.py, network_hada.py, lyco_helpers.py).
 *
 * Formats (.safetensors only), one module per weight:
 *   kohya LoRA / LoCon   <key>.lora_down.weight (r, in[, k, k]), .lora_up.weight (out, r[, 1, 1]),
 *                        .lora_mid.weight (r, r, k, k) (LyCORIS' Tucker form), .alpha
 *   LyCORIS LoHa         .hada_w1_a (out, r), .hada_w1_b (r, in*k*k), .hada_w2_a, .hada_w2_b, .alpha;
 *                        or with .hada_t1 / .hada_t2 (r, r, k, k): .hada_w*_a (r, out), .hada_w*_b (r, in)
 *   diffusers / PEFT     <key>.lora_A.weight (r, in[, k, k]) = down, .lora_B.weight = up, no alpha;
 *                        diffusers' older .lora.down/.lora.up, .lora_linear_layer.down/up and
 *                        attention processors' .processor.to_q_lora.down/up the same
 * Keys: kohya's lora_unet_<module> with '.' as '_' in diffusers' naming or
 * the original (LDM) one, lora_te_<module> in transformers' CLIP naming
 * (OpenCLIP's in_proj rows for q, k, v on SD 2.x files), or PEFT's
 * unet.<module> and text_encoder.<module>. SDXL: lora_te1_ (the first
 * encoder) and lora_te2_ (the second, in transformers' names whichever
 * layout the model keeps it in: q, k, v are thirds of OpenCLIP's in_proj,
 * mlp.fc1 / fc2 its c_fc / c_proj), PEFT's text_encoder. and
 * text_encoder_2.; the U-Net's as above (add_embedding is label_emb.0 in
 * the original names). lora_te_ names no SDXL encoder (A1111 matches it to
 * none), nor do lora_te1_ / lora_te2_ an SD 1.x / 2.x one.
 *
 *   delta = up.reshape(out, -1) @ down.reshape(r, -1)       (LoRA, LoCon)
 *         = einsum('n m k l, i n, m j -> i j k l', mid, up, down)   (lora_mid)
 *         = (w1a @ w1b) * (w2a @ w2b)                        (LoHa)
 *   W    += multiplier * scale * delta,  scale = alpha / r (r = rows of lora_down or hada_w1_b),
 *           the file's .scale where it has one, 1 without alpha
 * multiplier: the tag's te weight for text-encoder modules (both of SDXL's),
 * unet for the U-Net's. */
#ifndef SDC_LORA_H
#define SDC_LORA_H

#include "model/weights.h"

/* A weight a LoRA module may change: rows [row0, row0 + rows) of src (the
 * q, k or v third of OpenCLIP's in_proj; else all of src's rows). */
typedef struct sdc_lora_target {
    const sdc_weight_src *src;
    int row0, rows;
    bool te;        /* text encoder (its multiplier), else U-Net */
} sdc_lora_target;

/* Every name a LoRA file may give each target of a model, sorted. */
typedef struct sdc_lora_index sdc_lora_index;

/* text2: SDXL's second text encoder's weights; NULL for SD 1.x / 2.x (an
 * error where the family says otherwise). */
sdc_status sdc_lora_index_build2(const sdc_model_files *m, const sdc_weight_set *text, const sdc_weight_set *text2,
                                 const sdc_weight_set *unet, sdc_lora_index **out);
/* The same for a model with one text encoder (SD 1.x / 2.x). */
sdc_status sdc_lora_index_build(const sdc_model_files *m, const sdc_weight_set *text, const sdc_weight_set *unet,
                                sdc_lora_index **out);
void sdc_lora_index_free(sdc_lora_index *ix);

typedef enum sdc_lora_kind { SDC_LORA_PLAIN = 0, SDC_LORA_LOHA } sdc_lora_kind;

typedef struct sdc_lora_module {
    const char *key;                    /* the file's name of the module (points into a tensor name's copy) */
    sdc_lora_target target;
    sdc_lora_kind kind;
    const sdc_st_tensor *up, *down, *mid;              /* PLAIN (mid may be NULL) */
    const sdc_st_tensor *w1a, *w1b, *w2a, *w2b, *t1, *t2; /* LOHA (t1, t2 may be NULL) */
    int rank;
    double scale;                       /* alpha / rank, .scale, or 1 */
} sdc_lora_module;

typedef struct sdc_lora_file {
    char *path;
    sdc_st_file *f;
    sdc_lora_module *mods;
    int n_mods;
    char **keys;                        /* the modules' keys (owned) */
    int n_te, n_unet;                   /* modules of each network */
    char hash[13];                      /* A1111's short hash; "" until sdc_lora_file_hash */
} sdc_lora_file;

/* Open, validate and match every module of a LoRA file: a tensor that is
 * no part of a format above, a module whose key names no weight of this
 * model, a shape that does not fit its weight, a file whose modules match
 * nothing (another family: SDXL's lora_te1_ / lora_te2_ keys on SD 1.x /
 * 2.x, lora_te_ on SDXL are named as such) are SDC_ERR_FORMAT /
 * SDC_ERR_UNSUPPORTED errors naming the file and the key. */
sdc_status sdc_lora_open(const char *path, const sdc_lora_index *ix, sdc_lora_file **out);
void sdc_lora_close(sdc_lora_file *l);

/* w[target rows, cols * k * k] (fp32, PyTorch's layout of the target's
 * rows) += s * delta of mod. */
sdc_status sdc_lora_add_delta(const sdc_lora_file *l, const sdc_lora_module *mod, double s, float *w);

/* AUTOMATIC1111's short hash of a LoRA file, its first 12 hex digits: the
 * metadata's sshs_model_hash if there is one, else the "addnet" hash, the
 * SHA-256 of the file after its header. Cached in l->hash. */
sdc_status sdc_lora_file_hash(sdc_lora_file *l);

#endif
