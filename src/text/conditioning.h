/* conditioning.h - prompt text to the U-Net's context as AUTOMATIC1111
 * builds it: emphasis weights, 75-token chunks (77-token windows) encoded
 * one by one and concatenated along the sequence, BREAK. */
#ifndef SDC_CONDITIONING_H
#define SDC_CONDITIONING_H

#include "sdc.h"

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
