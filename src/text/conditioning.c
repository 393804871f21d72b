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

/* Chunk k of p through encoder te (ctx->te or ctx->te2) into z (77,
 * te's width): its embeddings' vectors in place of their placeholders
 * (A1111's EmbeddingsWithFixes: as many as fit before the window's end),
 * then A1111's emphasis. With `pooled`, also the encoder's pooled output
 * at the chunk's first EOS (argmax of the ids, as SDXL takes it). */
static sdc_status encode_chunk(sdc_ctx *ctx, sdc_text_encoder *te, const sdc_prompt *p, int chunk, float *z,
                               float *pooled) {
    const sdc_prompt_chunk *c = &p->chunks[chunk];
    const sdc_text_config *t = &te->cfg;
    /* clip skip: A1111's CLIP_stop_at_last_layers; SDXL's conditioning
     * ignores it, as A1111 does by default (sdxl_clip_l_skip off) */
    const int skip = ctx->te2 ? 0 : ctx->params.clip_skip - 1;
    const int W = t->width, layers = t->layers_used - skip;
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
    int eos = 0;
    for (int i = 1; i < SDC_CLIP_CTX; i++)
        if (c->ids[i] > c->ids[eos]) eos = i;
    SDC_TRY(sdc_text_encoder_run_pooled(te, c->ids, SDC_CLIP_CTX, layers, t->final_norm, pos, rows, n_rows, z, eos,
                                        pooled));
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

static bool same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static size_t pooled_width(const sdc_ctx *ctx) { return ctx->te2 ? (size_t)ctx->te2->cfg.proj : 0; }

/* A copy of a cached conditioning, or false. */
static bool cache_get(sdc_ctx *ctx, const char *prompt, const char *prompt_2, size_t one, sdc_cond *out) {
    const size_t pw = pooled_width(ctx);
    for (int i = 0; i < SDC_COND_CACHE; i++) {
        const sdc_cond_entry *e = &ctx->cond_cache[i];
        if (!e->prompt || strcmp(e->prompt, prompt) != 0 || !same_text(e->prompt_2, prompt_2)) continue;
        float *z = malloc((size_t)e->chunks * one * sizeof(float));
        float *pooled = pw ? malloc(pw * sizeof(float)) : NULL;
        if (!z || (pw && !pooled)) {
            free(z), free(pooled);
            return false;
        }
        memcpy(z, e->z, (size_t)e->chunks * one * sizeof(float));
        if (pw) memcpy(pooled, e->pooled, pw * sizeof(float));
        out->z = z;
        out->chunks = e->chunks;
        out->pooled = pooled;
        ctx->cond_hits++;
        return true;
    }
    return false;
}

static void cache_put(sdc_ctx *ctx, const char *prompt, const char *prompt_2, const sdc_cond *c, size_t one) {
    sdc_cond_entry *e = &ctx->cond_cache[ctx->cond_next];
    const size_t pw = pooled_width(ctx);
    char *p = strdup(prompt), *p2 = prompt_2 ? strdup(prompt_2) : NULL;
    float *copy = malloc((size_t)c->chunks * one * sizeof(float));
    float *pooled = pw ? malloc(pw * sizeof(float)) : NULL;
    if (!p || (prompt_2 && !p2) || !copy || (pw && !pooled)) {
        free(p), free(p2), free(copy), free(pooled);
        return;
    }
    memcpy(copy, c->z, (size_t)c->chunks * one * sizeof(float));
    if (pw) memcpy(pooled, c->pooled, pw * sizeof(float));
    free(e->prompt), free(e->prompt_2), free(e->z), free(e->pooled);
    e->prompt = p;
    e->prompt_2 = p2;
    e->z = copy;
    e->chunks = c->chunks;
    e->pooled = pooled;
    ctx->cond_next = (ctx->cond_next + 1) % SDC_COND_CACHE;
}

void sdc_conditioning_cache_clear(sdc_ctx *ctx) {
    for (int i = 0; i < SDC_COND_CACHE; i++) {
        sdc_cond_entry *e = &ctx->cond_cache[i];
        free(e->prompt), free(e->prompt_2), free(e->z), free(e->pooled);
        e->prompt = e->prompt_2 = NULL;
        e->z = e->pooled = NULL;
    }
    ctx->cond_next = 0;
}

void sdc_cond_free(sdc_cond *c) {
    free(c->z), free(c->pooled);
    c->z = c->pooled = NULL;
    c->chunks = 0;
}

/* SDXL: each chunk through both encoders, each with its own emphasis,
 * side by side per token ([CLIP ViT-L | OpenCLIP bigG]); prompt_2 (when
 * given) is the second encoder's text, and the one with fewer chunks is
 * padded with the encoding of "" (A1111 pads a shorter conditioning so).
 * The pooled output is the second encoder's, of its first chunk, as
 * A1111 takes it. */
static sdc_status encode_xl(sdc_ctx *ctx, const char *prompt, const char *prompt_2, sdc_cond *out) {
    sdc_text_encoder *te[2] = {ctx->te, ctx->te2};
    const char *text[2] = {prompt, prompt_2 ? prompt_2 : prompt};
    const int W1 = te[0]->cfg.width, W2 = te[1]->cfg.width, W = W1 + W2;
    sdc_prompt p[2], empty[2];
    memset(p, 0, sizeof p), memset(empty, 0, sizeof empty);
    sdc_status st = SDC_OK;
    for (int e = 0; st == SDC_OK && e < 2; e++) st = sdc_prompt_tokenize(ctx->tok, text[e], te[e]->cfg.pad_id, &p[e]);
    for (int e = 0; st == SDC_OK && e < 2; e++) st = sdc_prompt_tokenize(ctx->tok, "", te[e]->cfg.pad_id, &empty[e]);
    const int n = p[0].n_chunks > p[1].n_chunks ? p[0].n_chunks : p[1].n_chunks;
    float *z = NULL, *pooled = NULL, *part = NULL;
    if (st == SDC_OK) {
        z = malloc((size_t)n * SDC_CLIP_CTX * W * sizeof(float));
        pooled = malloc((size_t)te[1]->cfg.proj * sizeof(float));
        part = malloc((size_t)SDC_CLIP_CTX * (W1 > W2 ? W1 : W2) * sizeof(float));
        if (!z || !pooled || !part) st = sdc_fail(SDC_ERR_OOM, "out of memory for %d prompt chunks", n);
    }
    for (int i = 0; st == SDC_OK && i < n; i++)
        for (int e = 0; st == SDC_OK && e < 2; e++) {
            const bool own = i < p[e].n_chunks;
            st = encode_chunk(ctx, te[e], own ? &p[e] : &empty[e], own ? i : 0, part,
                              e == 1 && i == 0 ? pooled : NULL);
            const int We = te[e]->cfg.width;
            for (int k = 0; st == SDC_OK && k < SDC_CLIP_CTX; k++)
                memcpy(z + ((size_t)i * SDC_CLIP_CTX + k) * W + (e ? W1 : 0), part + (size_t)k * We,
                       (size_t)We * sizeof(float));
        }
    for (int e = 0; e < 2; e++) sdc_prompt_free(&p[e]), sdc_prompt_free(&empty[e]);
    free(part);
    if (st != SDC_OK) {
        free(z), free(pooled);
        return st;
    }
    out->z = z;
    out->chunks = n;
    out->pooled = pooled;
    return SDC_OK;
}

sdc_status sdc_encode_cond(sdc_ctx *ctx, const char *prompt, const char *prompt_2, sdc_cond *out) {
    memset(out, 0, sizeof *out);
    const size_t width = (size_t)sdc_context_dim(ctx), one = (size_t)SDC_CLIP_CTX * width;
    if (!ctx->te2) prompt_2 = NULL;
    if (cache_get(ctx, prompt, prompt_2, one, out)) return SDC_OK;
    const sdc_text_config *t = &ctx->model->config.text;
    if (t->max_pos < SDC_CLIP_CTX || (ctx->te2 && ctx->te2->cfg.max_pos < SDC_CLIP_CTX))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "text encoder has %d positions, expected %d", t->max_pos, SDC_CLIP_CTX);
    if (ctx->te2) {
        SDC_TRY(encode_xl(ctx, prompt, prompt_2, out));
        cache_put(ctx, prompt, prompt_2, out, one);
        return SDC_OK;
    }
    sdc_prompt p;
    SDC_TRY(sdc_prompt_tokenize_ti(ctx->tok, prompt, t->pad_id, ctx->emb, &p));
    float *z = malloc((size_t)p.n_chunks * one * sizeof(float));
    sdc_status st = z ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory for %d prompt chunks", p.n_chunks);
    for (int i = 0; st == SDC_OK && i < p.n_chunks; i++) st = encode_chunk(ctx, ctx->te, &p, i, z + (size_t)i * one, NULL);
    if (st == SDC_OK) {
        out->z = z;
        out->chunks = p.n_chunks;
        cache_put(ctx, prompt, NULL, out, one);
    } else {
        free(z);
    }
    sdc_prompt_free(&p);
    return st;
}

sdc_status sdc_encode_conditioning(sdc_ctx *ctx, const char *prompt, float **out, int *n_chunks) {
    sdc_cond c;
    *out = NULL;
    *n_chunks = 0;
    SDC_TRY(sdc_encode_cond(ctx, prompt, NULL, &c));
    free(c.pooled);
    *out = c.z;
    *n_chunks = c.chunks;
    return SDC_OK;
}

sdc_status sdc_cond_zeros(sdc_ctx *ctx, int chunks, sdc_cond *out) {
    memset(out, 0, sizeof *out);
    const size_t pw = pooled_width(ctx);
    out->z = calloc((size_t)chunks * SDC_CLIP_CTX * sdc_context_dim(ctx), sizeof(float));
    out->pooled = pw ? calloc(pw, sizeof(float)) : NULL;
    if (!out->z || (pw && !out->pooled)) {
        sdc_cond_free(out);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    out->chunks = chunks;
    return SDC_OK;
}

/* *z of *n chunks padded to `want` with the encoding of "" (or zeros) */
static sdc_status pad_to(sdc_ctx *ctx, float **z, int *n, int want, bool zeros) {
    if (*n >= want) return SDC_OK;
    const size_t one = (size_t)SDC_CLIP_CTX * sdc_context_dim(ctx);
    sdc_cond empty = {0};
    if (!zeros) SDC_TRY(sdc_encode_cond(ctx, "", NULL, &empty));
    float *nz = realloc(*z, (size_t)want * one * sizeof(float));
    if (!nz) {
        sdc_cond_free(&empty);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    for (int i = *n; i < want; i++) {
        if (zeros) memset(nz + (size_t)i * one, 0, one * sizeof(float));
        else memcpy(nz + (size_t)i * one, empty.z, one * sizeof(float));
    }
    sdc_cond_free(&empty);
    *z = nz;
    *n = want;
    return SDC_OK;
}

sdc_status sdc_conditioning_match(sdc_ctx *ctx, float **a, int *n_a, float **b, int *n_b) {
    SDC_TRY(pad_to(ctx, a, n_a, *n_b, false));
    return pad_to(ctx, b, n_b, *n_a, false);
}

sdc_status sdc_cond_match(sdc_ctx *ctx, sdc_cond *a, bool a_zeros, sdc_cond *b) {
    SDC_TRY(pad_to(ctx, &a->z, &a->chunks, b->chunks, a_zeros));
    return pad_to(ctx, &b->z, &b->chunks, a->chunks, false);
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
