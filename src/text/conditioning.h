/* conditioning.h - prompt text to the U-Net's context as AUTOMATIC1111
 * builds it: emphasis weights, 75-token chunks (77-token windows) encoded
 * one by one and concatenated along the sequence, BREAK. */
#ifndef SDC_CONDITIONING_H
#define SDC_CONDITIONING_H

#include "sdc.h"

/* A prompt's conditioning: the U-Net's context and, for SDXL, the pooled
 * text embedding (malloc'd; sdc_cond_free). */
typedef struct sdc_cond {
    float *z;       /* (chunks * 77, context_dim) */
    int chunks;     /* >= 1 */
    float *pooled;  /* SDXL: (pooled width, 1280), the second encoder's projected output; else NULL */
} sdc_cond;

/* The conditioning of prompt (and, for SDXL, prompt_2 for the second
 * encoder; NULL: prompt). SD 1.x / 2.x: as sdc_encode_conditioning. SDXL:
 * each 77-token window through both encoders (penultimate layers, no
 * final layer norm; each its own emphasis), concatenated per token. */
sdc_status sdc_encode_cond(sdc_ctx *ctx, const char *prompt, const char *prompt_2, sdc_cond *out);
/* All zeros, `chunks` windows (SDXL's empty negative prompt). */
sdc_status sdc_cond_zeros(sdc_ctx *ctx, int chunks, sdc_cond *out);
/* Both to the same window count: a's with zeros when a_zeros, else both
 * with the encoding of "". */
sdc_status sdc_cond_match(sdc_ctx *ctx, sdc_cond *a, bool a_zeros, sdc_cond *b);
void sdc_cond_free(sdc_cond *c);

/* *out (malloc'd) = (n_chunks * 77, context_dim) floats; *n_chunks >= 1.
 * A chunk with weights is scaled token by token and renormalised to its
 * original mean (A1111's process_tokens); a plain prompt of up to 75 tokens
 * gives exactly sdc_encode_prompt's result. */
sdc_status sdc_encode_conditioning(sdc_ctx *ctx, const char *prompt, float **out, int *n_chunks);

/* Encodings are cached per context (the last 16 prompts: batch lists
 * repeat prompts and negatives); this empties the cache. */
void sdc_conditioning_cache_clear(sdc_ctx *ctx);

/* Append empty-prompt windows to the shorter of two conditionings so both
 * have max(n_a, n_b) chunks (A1111 pads the negative, or the positive,
 * with the encoding of ""). Reallocates *a or *b. */
sdc_status sdc_conditioning_match(sdc_ctx *ctx, float **a, int *n_a, float **b, int *n_b);

/* A1111's "TI hashes" value for prompts[0..n) (the positive, then the
 * negative): "name: hash" of each embedding each uses, in prompt order;
 * NULL when none (malloc'd). */
char *sdc_ti_hashes(sdc_ctx *ctx, const char *const *prompts, int n);

#endif
