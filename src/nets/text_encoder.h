/* text_encoder.h - the CLIP text transformer (SD 1.x CLIP ViT-L/14, SD 2.x
 * OpenCLIP ViT-H) on the backend interface. Pre-LN blocks, causal mask,
 * quick_gelu or gelu MLP, final layer norm. Matches transformers'
 * CLIPTextModel. */
#ifndef SDC_TEXT_ENCODER_H
#define SDC_TEXT_ENCODER_H

#include "model/weights.h"

typedef struct sdc_text_layer {
    float *ln1_w, *ln1_b;  /* (width) layer_norm1 / ln_1 */
    sdc_weight qkv_w;          /* (3 * width, width): q, k, v rows stacked */
    float *qkv_b;          /* (3 * width) */
    sdc_weight out_w; float *out_b;  /* (width, width), (width) self_attn.out_proj */
    float *ln2_w, *ln2_b;  /* (width) layer_norm2 / ln_2 */
    sdc_weight fc1_w; float *fc1_b;  /* (ff, width), (ff) mlp.fc1 / mlp.c_fc */
    sdc_weight fc2_w; float *fc2_b;  /* (width, ff), (width) mlp.fc2 / mlp.c_proj */
} sdc_text_layer;

typedef struct sdc_text_encoder {
    sdc_text_config cfg;
    sdc_text_naming naming; /* transformers' or OpenCLIP's tensor names */
    sdc_backend *be;        /* not owned */
    sdc_weight_set weights;  /* every weight buffer below */
    sdc_host_table tok_emb; /* (vocab, width) on the host, in the file's type */
    float *pos_emb;         /* (max_pos, width) */
    float *lnf_w, *lnf_b;   /* (width) final_layer_norm / ln_final */
    sdc_text_layer *layers; /* (cfg.layers) */
    sdc_weight proj_w;      /* (cfg.proj, width) text_projection, no bias; .p NULL without */
    /* activations for up to max_pos tokens, backend memory, of type act
     * (fp32: see text_encoder.c) */
    sdc_dtype act;
    sdc_buf x;              /* (tokens, width) residual stream */
    sdc_buf h;              /* (tokens, width) */
    sdc_buf qkv;            /* (tokens, 3 * width) */
    sdc_buf attn;           /* (tokens, width) */
    sdc_buf mlp;            /* (tokens, ff) */
    sdc_buf pooled;         /* (cfg.proj) */
    float *rows;            /* (max_pos, width) host: the prompt's token embeddings, fp32 */
} sdc_text_encoder;

/* Load the text encoder's weights from an open model (matrices in the
 * backend's weight type, the rest fp32). */
sdc_status sdc_text_encoder_load(const sdc_model_files *m, sdc_backend *be,
                                 sdc_text_encoder **out);
/* SDXL's second text encoder (config.text2, with its projection). */
sdc_status sdc_text_encoder_load2(const sdc_model_files *m, sdc_backend *be, sdc_text_encoder **out);
void sdc_text_encoder_free(sdc_text_encoder *te);

/* Run the first n_layers layers on ids[n_tokens] and write the hidden state
 * (n_tokens, width) to host memory `out`, after the final layer norm when
 * final_norm is set. n_layers = cfg.layers_used gives the U-Net context. */
sdc_status sdc_text_encoder_run(sdc_text_encoder *te, const int *ids,
                                int n_tokens, int n_layers, bool final_norm,
                                float *out);

/* The same with the token embeddings of some positions replaced (textual
 * inversion): position pos[i] takes rows[i] (width floats, host memory)
 * instead of its token's row, before the position embedding is added. */
sdc_status sdc_text_encoder_run_with(sdc_text_encoder *te, const int *ids, int n_tokens, int n_layers,
                                     bool final_norm, const int *pos, const float *const *rows, int n_rows,
                                     float *out);

/* The same, and (pooled != NULL) the pooled output as SDXL takes it:
 * every layer run, the final layer norm, the hidden state at token
 * pool_at projected by text_projection, (cfg.proj) floats to host memory
 * `pooled`. out may be NULL. */
sdc_status sdc_text_encoder_run_pooled(sdc_text_encoder *te, const int *ids, int n_tokens, int n_layers,
                                       bool final_norm, const int *pos, const float *const *rows, int n_rows,
                                       float *out, int pool_at, float *pooled);

#endif
