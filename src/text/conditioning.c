/* conditioning.c - weighted, chunked prompt conditioning (A1111 semantics). */
#include "text/conditioning.h"

#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "text/prompt.h"

/* mean of n floats, accumulated in double */
static double mean_of(const float *z, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += z[i];
    return s / (double)n;
}

/* Chunk k of p, its embeddings' vectors in place of their placeholders
 * (A1111's EmbeddingsWithFixes: as many as fit before the window's end). */
static sdc_status encode_chunk(sdc_ctx *ctx, const sdc_prompt *p, int chunk, float *z) {
    const sdc_prompt_chunk *c = &p->chunks[chunk];
    const sdc_text_config *t = &ctx->model->config.text;
    const int W = t->width, layers = t->layers_used - (ctx->params.clip_skip - 1);
    int pos[SDC_CLIP_CTX];
    const float *rows[SDC_CLIP_CTX];
    int n_rows = 0;
    for (int f = 0; f < p->n_fixes; f++) {
        const sdc_prompt_fix *fx = &p->fixes[f];
        if (fx->chunk != chunk) continue;
        const sdc_embedding *e = &ctx->emb->e[fx->emb];
        const int len = e->n_vecs < SDC_CLIP_CTX - fx->offset - 1 ? e->n_vecs : SDC_CLIP_CTX - fx->offset - 1;
        for (int v = 0; v < len; v++) {
            /* a later fix over the same position wins, as torch.cat in order does */
            int at = n_rows;
            for (int q = 0; q < n_rows; q++)
                if (pos[q] == fx->offset + 1 + v) at = q;
            pos[at] = fx->offset + 1 + v;
            rows[at] = e->vecs + (size_t)v * W;
            if (at == n_rows) n_rows++;
        }
    }
    SDC_TRY(sdc_text_encoder_run_with(ctx->te, c->ids, SDC_CLIP_CTX, layers, true, pos, rows, n_rows, z));
    bool weighted = false;
    for (int i = 0; i < SDC_CLIP_CTX; i++) weighted |= c->weights[i] != 1.0f;
    if (!weighted) return SDC_OK;
    /* z = z * w; z = z * (mean(z before) / mean(z after)) */
    const size_t n = (size_t)SDC_CLIP_CTX * W;
    const double before = mean_of(z, n);
    for (int i = 0; i < SDC_CLIP_CTX; i++)
        for (int j = 0; j < W; j++) z[(size_t)i * W + j] *= c->weights[i];
    const double after = mean_of(z, n);
    const float k = (float)(before / after);
    for (size_t i = 0; i < n; i++) z[i] *= k;
    return SDC_OK;
}

/* A copy of a cached conditioning, or false. */
static bool cache_get(sdc_ctx *ctx, const char *prompt, size_t one, float **out, int *n_chunks) {
    for (int i = 0; i < SDC_COND_CACHE; i++) {
        const sdc_cond_entry *e = &ctx->cond_cache[i];
        if (!e->prompt || strcmp(e->prompt, prompt) != 0) continue;
        float *z = malloc((size_t)e->chunks * one * sizeof(float));
        if (!z) return false;
        memcpy(z, e->z, (size_t)e->chunks * one * sizeof(float));
        *out = z;
        *n_chunks = e->chunks;
        ctx->cond_hits++;
        return true;
    }
    return false;
}

static void cache_put(sdc_ctx *ctx, const char *prompt, const float *z, int chunks, size_t one) {
    sdc_cond_entry *e = &ctx->cond_cache[ctx->cond_next];
    char *p = strdup(prompt);
    float *copy = malloc((size_t)chunks * one * sizeof(float));
    if (!p || !copy) {
        free(p), free(copy);
        return;
    }
    memcpy(copy, z, (size_t)chunks * one * sizeof(float));
    free(e->prompt), free(e->z);
    e->prompt = p;
    e->z = copy;
    e->chunks = chunks;
    ctx->cond_next = (ctx->cond_next + 1) % SDC_COND_CACHE;
}

void sdc_conditioning_cache_clear(sdc_ctx *ctx) {
    for (int i = 0; i < SDC_COND_CACHE; i++) {
        free(ctx->cond_cache[i].prompt), free(ctx->cond_cache[i].z);
        ctx->cond_cache[i].prompt = NULL;
        ctx->cond_cache[i].z = NULL;
    }
    ctx->cond_next = 0;
}

sdc_status sdc_encode_conditioning(sdc_ctx *ctx, const char *prompt, float **out, int *n_chunks) {
    *out = NULL;
    *n_chunks = 0;
    const size_t width = (size_t)ctx->model->config.text.width;
    if (cache_get(ctx, prompt, (size_t)SDC_CLIP_CTX * width, out, n_chunks)) return SDC_OK;
    const sdc_text_config *t = &ctx->model->config.text;
    if (t->max_pos < SDC_CLIP_CTX)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "text encoder has %d positions, expected %d", t->max_pos, SDC_CLIP_CTX);
    sdc_prompt p;
    SDC_TRY(sdc_prompt_tokenize_ti(ctx->tok, prompt, t->pad_id, ctx->emb, &p));
    const size_t one = (size_t)SDC_CLIP_CTX * t->width;
    float *z = malloc((size_t)p.n_chunks * one * sizeof(float));
    sdc_status st = z ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory for %d prompt chunks", p.n_chunks);
    for (int i = 0; st == SDC_OK && i < p.n_chunks; i++) st = encode_chunk(ctx, &p, i, z + (size_t)i * one);
    if (st == SDC_OK) {
        *out = z;
        *n_chunks = p.n_chunks;
        cache_put(ctx, prompt, z, p.n_chunks, one);
    } else {
        free(z);
    }
    sdc_prompt_free(&p);
    return st;
}

static sdc_status pad_to(sdc_ctx *ctx, float **z, int *n, int want) {
    if (*n >= want) return SDC_OK;
    const size_t one = (size_t)SDC_CLIP_CTX * ctx->model->config.text.width;
    float *empty = NULL;
    int ne = 0;
    SDC_TRY(sdc_encode_conditioning(ctx, "", &empty, &ne));
    float *nz = realloc(*z, (size_t)want * one * sizeof(float));
    if (!nz) {
        free(empty);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    for (int i = *n; i < want; i++) memcpy(nz + (size_t)i * one, empty, one * sizeof(float));
    free(empty);
    *z = nz;
    *n = want;
    return SDC_OK;
}

sdc_status sdc_conditioning_match(sdc_ctx *ctx, float **a, int *n_a, float **b, int *n_b) {
    SDC_TRY(pad_to(ctx, a, n_a, *n_b));
    return pad_to(ctx, b, n_b, *n_a);
}

char *sdc_ti_hashes(sdc_ctx *ctx, const char *const *prompts, int n) {
    if (!ctx->emb) return NULL;
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        sdc_prompt p;
        if (!prompts[i] || sdc_prompt_tokenize_ti(ctx->tok, prompts[i], ctx->model->config.text.pad_id, ctx->emb,
                                                  &p) != SDC_OK)
            continue;
        /* A1111's used_embeddings: each name once per prompt, in order */
        for (int f = 0; f < p.n_fixes; f++) {
            bool seen = false;
            for (int g = 0; g < f; g++) seen |= p.fixes[g].emb == p.fixes[f].emb;
            sdc_embedding *e = &ctx->emb->e[p.fixes[f].emb];
            if (seen || sdc_embedding_hash(e) != SDC_OK) continue;
            char item[400];
            size_t k = 0;
            for (const char *c = e->name; *c && k < 300; c++)
                if (*c != ':' && *c != ',') item[k++] = *c;
            snprintf(item + k, sizeof item - k, ": %s", e->hash);
            const size_t need = len + strlen(item) + 3;
            if (need > cap) {
                char *np = realloc(out, cap = 2 * need);
                if (!np) {
                    free(out);
                    sdc_prompt_free(&p);
                    return NULL;
                }
                out = np;
            }
            len += (size_t)sprintf(out + len, "%s%s", len ? ", " : "", item);
        }
        sdc_prompt_free(&p);
    }
    if (!len) {
        free(out);
        return NULL;
    }
    return out;
}
