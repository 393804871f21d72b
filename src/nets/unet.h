/* unet.h - the SD 1.x / 2.x U-Net (UNet2DConditionModel) on the backend
 * interface. Activations are NHWC; names follow diffusers' keys. */
#ifndef SDC_UNET_H
#define SDC_UNET_H

#include "nets/resnet.h"

typedef struct sdc_tblock {      /* BasicTransformerBlock */
    float *norm1_w, *norm1_b;    /* (c) */
    sdc_weight qkv_w;                /* (3c, c): attn1 to_q, to_k, to_v stacked, no bias */
    sdc_weight out1_w; float *out1_b;      /* (c, c), (c) attn1.to_out.0 */
    float *norm2_w, *norm2_b;
    sdc_weight q2_w;                 /* (c, c) attn2.to_q */
    sdc_weight kv2_w;                /* (2c, context_dim): attn2 to_k, to_v stacked */
    sdc_weight out2_w; float *out2_b;
    float *norm3_w, *norm3_b;
    sdc_weight ff1_w; float *ff1_b;        /* (8c, c), (8c): GEGLU projection ff.net.0.proj */
    sdc_weight ff2_w; float *ff2_b;        /* (c, 4c), (c): ff.net.2 */
} sdc_tblock;

typedef struct sdc_transformer { /* Transformer2DModel */
    int c, heads, depth;
    float *norm_w, *norm_b;      /* (c) group norm, eps 1e-6 */
    sdc_weight proj_in_w; float *proj_in_b;   /* (c, c) 1x1 conv or linear */
    sdc_weight proj_out_w; float *proj_out_b;
    sdc_tblock *blocks;          /* (depth) */
} sdc_transformer;

typedef struct sdc_unet_level {
    int n_res;                   /* res blocks in this block */
    sdc_resnet *res;             /* (n_res) */
    sdc_transformer *attn;       /* (n_res) or NULL */
    sdc_weight sample_w; float *sample_b;  /* down: stride-2 conv; up: conv after 2x upsample; .p NULL if none */
} sdc_unet_level;

typedef struct sdc_unet {
    sdc_unet_config cfg;
    sdc_backend *be;             /* not owned */
    sdc_weight_set weights;
    sdc_weight time_w1; float *time_b1;    /* (temb, c0), (temb) time_embedding.linear_1 */
    sdc_weight time_w2; float *time_b2;    /* (temb, temb) linear_2 */
    sdc_weight add_w1; float *add_b1;      /* SDXL: (temb, add_in), (temb) add_embedding.linear_1 */
    sdc_weight add_w2; float *add_b2;      /* (temb, temb) add_embedding.linear_2 */
    sdc_weight conv_in_w; float *conv_in_b;   /* (c0, 3, 3, in), (c0) */
    sdc_unet_level down[SDC_MAX_LEVELS], up[SDC_MAX_LEVELS]; /* up[l]: level l, run deepest first */
    sdc_resnet mid_res[2];
    sdc_transformer mid_attn;
    float *norm_out_w, *norm_out_b; /* (c0) conv_norm_out */
    sdc_weight conv_out_w; float *conv_out_b; /* (out, 3, 3, c0), (out) */
    /* the activations' element type: the weights' (F32 on the CPU; F16,
     * BF16 or F32 on CUDA). Inputs and outputs of the entry points below
     * are fp32 whatever it is, converted on the way in and out. */
    sdc_dtype act;
    /* activations, sized for the last (batch, h, w), carved from one arena:
     * the caller's (sdc_unet_use_memory) while it is large enough, else
     * the U-Net's own */
    int st_batch, st_h, st_w;
    float *arena;
    size_t arena_cap;            /* floats */
    bool arena_ext;              /* the caller's memory, not freed here */
    sdc_buf buf[5];              /* work buffers, `work` elements each */
    size_t work;
    sdc_buf skips;               /* all skip connections, back to back */
    sdc_buf temb;                /* (batch, time_embed_dim): silu(time embedding) */
    sdc_buf temb_proj;           /* (batch, max channels) */
    sdc_buf tsin;                /* (batch, c0) sinusoidal embedding */
    sdc_buf temb_tmp;            /* (batch, time_embed_dim) */
    /* cross-attention k, v of the context, every block's back to back in the
     * order a forward runs them: (batch, tokens, 2c) each; then, for
     * activations other than fp32, the context in their type */
    float *kv;
    size_t kv_cap;               /* floats */
    bool kv_ext;
    int kv_batch, kv_tokens;
    /* SDXL: the added embedding of the batch's rows (pooled text, size
     * conditioning), (batch, temb) in the activations' type, in the same
     * region after the context (sdc_unet_set_added) */
    sdc_buf add_emb;
    int add_batch;
    size_t kv_cursor;            /* the next block's offset during a forward */
    /* the time embedding of every step of a schedule: (steps, batch, temb) */
    float *temb_table;
    size_t temb_cap;             /* floats */
    bool temb_ext;
    size_t temb_steps, temb_batch;
    double flops;                /* floating-point operations of the last forward */
} sdc_unet;

sdc_status sdc_unet_load(const sdc_model_files *m, sdc_backend *be, sdc_unet **out);
void sdc_unet_free(sdc_unet *u);

/* The text context of the next forwards, (batch, tokens, context_dim) fp32
 * in backend memory: every cross-attention's keys and values are computed
 * here, once for a job, and kept (the context may be freed after). */
sdc_status sdc_unet_set_context(sdc_unet *u, const float *context, int batch, int tokens);

/* SDXL: the added embedding of the next forwards, after set_context and
 * before set_schedule / prepare: pooled (batch, pooled width) and
 * time_ids (batch, n_time_ids: original height, width, crop top, left,
 * target height, width), host memory; embedded as diffusers'
 * add_time_proj (a Fourier embedding per id) and add_embedding do, and
 * added to every step's time embedding. */
sdc_status sdc_unet_set_added(sdc_unet *u, const float *pooled, const double *time_ids, int batch);

/* eps (or v) = unet(x, t, context of sdc_unet_set_context): x and out are
 * (batch, h, w, in/out channels) fp32 in backend memory; the same timestep t for
 * the whole batch (an argument: nothing is copied to the backend). */
sdc_status sdc_unet_run(sdc_unet *u, const float *x, int batch, int h, int w, double t, float *out);

/* sdc_unet_run in two parts, for a backend that records the second as a
 * graph: prepare sizes the state for (batch, h, w) and computes the time
 * embedding of t (t is an op's argument, so this part is issued each step,
 * outside the graph); body is the rest, the same ops on the same buffers
 * at every step. */
sdc_status sdc_unet_prepare(sdc_unet *u, int batch, int h, int w, double t);
sdc_status sdc_unet_body(sdc_unet *u, const float *x, int batch, int h, int w, float *out);

/* The time embeddings of a whole schedule (t[0..steps)), computed once for a
 * job with the ops prepare uses, so they are the same values; then
 * prepare_step(i) is prepare(t[i]) as one copy within backend memory. */
sdc_status sdc_unet_set_schedule(sdc_unet *u, int batch, int h, int w, const double *t, int steps);
sdc_status sdc_unet_prepare_step(sdc_unet *u, int batch, int h, int w, int step);

/* Planned memory. What the U-Net needs for a batch at h x w with a
 * context of `tokens` and a schedule of `steps`, in floats: activations
 * (rewritten by every forward: free for other work between forwards) and
 * state (the context's keys and values and the schedule's time embeddings,
 * kept from sdc_unet_set_context / _set_schedule to the job's last step). */
sdc_net_memory sdc_unet_memory(sdc_unet *u, int batch, int h, int w, int tokens, int steps);
/* Regions of the caller's backend memory, of those sizes (256-byte
 * aligned), for the U-Net to use instead of its own; NULL: its own again.
 * Drops the context and schedule set so far. A shape that does not fit
 * falls back to the U-Net's own memory. */
void sdc_unet_use_memory(sdc_unet *u, float *activations, float *state, sdc_net_memory m, int batch, int tokens);
/* Both in one call: set the context, then run. */
sdc_status sdc_unet_forward(sdc_unet *u, const float *x, int batch, int h, int w, double t,
                            const float *context, int tokens, float *out);

#endif
