/* text_encoder.c - CLIP text transformer on the backend interface. */
#include "nets/text_encoder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read tensor `name` (checked against the expected shape; d1 = 0 for a
 * vector) from f as fp32 into host memory dst, which holds cap floats. */
static sdc_status read_f32(const sdc_st_file *f, const char *name, int64_t d0,
                           int64_t d1, float *dst, size_t cap) {
    const sdc_st_tensor *t = sdc_st_find(f, name);
    if (!t) return sdc_fail(SDC_ERR_FORMAT, "%s: text encoder tensor %s is missing", f->path, name);
    int want_ndim = d1 ? 2 : 1;
    /* OpenCLIP stores some vectors as (1, n) in a few exports */
    bool ok = (t->ndim == want_ndim && t->shape[0] == d0 && (!d1 || t->shape[1] == d1)) ||
              (!d1 && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == d0);
    if (!ok) {
        char got[96] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        if (d1)
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s has shape (%s), expected (%lld, %lld)",
                            f->path, name, got, (long long)d0, (long long)d1);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s has shape (%s), expected (%lld)", f->path,
                        name, got, (long long)d0);
    }
    /* the shape matched what the configuration promises; the buffer was
     * sized from the same configuration, and this says so once more */
    if ((uint64_t)t->numel > cap)
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor %s has %lld elements, more than the %zu its buffer holds",
                        f->path, name, (long long)t->numel, cap);
    SDC_TRY(sdc_st_to_f32(f, t, dst));
    sdc_st_drop_tensor_pages(f, t); /* keep peak memory to the fp32 copy */
    return SDC_OK;
}

/* Loader state: a host staging buffer big enough for the largest tensor. */
typedef struct {
    const sdc_model_files *m;
    sdc_backend *be;
    float *stage;
    size_t cap;      /* floats in stage */
} loader;

static sdc_status load1(loader *L, float **dst, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static sdc_status load1(loader *L, float **dst, int64_t d0, int64_t d1, const char *fmt, ...) {
    char name[512], full[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", L->m->text_prefix, name);
    SDC_TRY(read_f32(L->m->text_file, full, d0, d1, L->stage, L->cap));
    return sdc_backend_upload_new(L->be, L->stage, (size_t)d0 * (size_t)(d1 ? d1 : 1), dst);
}

/* q, k, v stored apart (transformers naming): stack into one matrix. */
static sdc_status load_qkv_hf(loader *L, int l, int W, sdc_text_layer *ly) {
    static const char *const qkv[3] = {"q", "k", "v"};
    char name[640];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%stext_model.encoder.layers.%d.self_attn.%s_proj.weight",
                 L->m->text_prefix, l, qkv[i]);
        SDC_TRY(read_f32(L->m->text_file, name, W, W, L->stage + (size_t)i * W * W, L->cap - (size_t)i * W * W));
    }
    SDC_TRY(sdc_backend_upload_new(L->be, L->stage, (size_t)3 * W * W, &ly->qkv_w));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%stext_model.encoder.layers.%d.self_attn.%s_proj.bias",
                 L->m->text_prefix, l, qkv[i]);
        SDC_TRY(read_f32(L->m->text_file, name, W, 0, L->stage + (size_t)i * W, L->cap - (size_t)i * W));
    }
    return sdc_backend_upload_new(L->be, L->stage, (size_t)3 * W, &ly->qkv_b);
}

static sdc_status load_layer(loader *L, int l, const sdc_text_config *c, sdc_text_layer *ly) {
    const int W = c->width, F = c->ff;
    if (L->m->text_naming == SDC_TEXT_HF) {
        const char *p = "text_model.encoder.layers";
        SDC_TRY(load1(L, &ly->ln1_w, W, 0, "%s.%d.layer_norm1.weight", p, l));
        SDC_TRY(load1(L, &ly->ln1_b, W, 0, "%s.%d.layer_norm1.bias", p, l));
        SDC_TRY(load_qkv_hf(L, l, W, ly));
        SDC_TRY(load1(L, &ly->out_w, W, W, "%s.%d.self_attn.out_proj.weight", p, l));
        SDC_TRY(load1(L, &ly->out_b, W, 0, "%s.%d.self_attn.out_proj.bias", p, l));
        SDC_TRY(load1(L, &ly->ln2_w, W, 0, "%s.%d.layer_norm2.weight", p, l));
        SDC_TRY(load1(L, &ly->ln2_b, W, 0, "%s.%d.layer_norm2.bias", p, l));
        SDC_TRY(load1(L, &ly->fc1_w, F, W, "%s.%d.mlp.fc1.weight", p, l));
        SDC_TRY(load1(L, &ly->fc1_b, F, 0, "%s.%d.mlp.fc1.bias", p, l));
        SDC_TRY(load1(L, &ly->fc2_w, W, F, "%s.%d.mlp.fc2.weight", p, l));
        SDC_TRY(load1(L, &ly->fc2_b, W, 0, "%s.%d.mlp.fc2.bias", p, l));
    } else {
        const char *p = "transformer.resblocks";
        SDC_TRY(load1(L, &ly->ln1_w, W, 0, "%s.%d.ln_1.weight", p, l));
        SDC_TRY(load1(L, &ly->ln1_b, W, 0, "%s.%d.ln_1.bias", p, l));
        SDC_TRY(load1(L, &ly->qkv_w, 3 * W, W, "%s.%d.attn.in_proj_weight", p, l));
        SDC_TRY(load1(L, &ly->qkv_b, 3 * W, 0, "%s.%d.attn.in_proj_bias", p, l));
        SDC_TRY(load1(L, &ly->out_w, W, W, "%s.%d.attn.out_proj.weight", p, l));
        SDC_TRY(load1(L, &ly->out_b, W, 0, "%s.%d.attn.out_proj.bias", p, l));
        SDC_TRY(load1(L, &ly->ln2_w, W, 0, "%s.%d.ln_2.weight", p, l));
        SDC_TRY(load1(L, &ly->ln2_b, W, 0, "%s.%d.ln_2.bias", p, l));
        SDC_TRY(load1(L, &ly->fc1_w, F, W, "%s.%d.mlp.c_fc.weight", p, l));
        SDC_TRY(load1(L, &ly->fc1_b, F, 0, "%s.%d.mlp.c_fc.bias", p, l));
        SDC_TRY(load1(L, &ly->fc2_w, W, F, "%s.%d.mlp.c_proj.weight", p, l));
        SDC_TRY(load1(L, &ly->fc2_b, W, 0, "%s.%d.mlp.c_proj.bias", p, l));
    }
    return SDC_OK;
}

static sdc_status load_all(loader *L, sdc_text_encoder *te) {
    const sdc_text_config *c = &te->cfg;
    const int W = c->width;
    const bool hf = L->m->text_naming == SDC_TEXT_HF;
    SDC_TRY(load1(L, &te->tok_emb, c->vocab, W, "%s",
                  hf ? "text_model.embeddings.token_embedding.weight" : "token_embedding.weight"));
    SDC_TRY(load1(L, &te->pos_emb, c->max_pos, W, "%s",
                  hf ? "text_model.embeddings.position_embedding.weight" : "positional_embedding"));
    SDC_TRY(load1(L, &te->lnf_w, W, 0, "%s", hf ? "text_model.final_layer_norm.weight" : "ln_final.weight"));
    SDC_TRY(load1(L, &te->lnf_b, W, 0, "%s", hf ? "text_model.final_layer_norm.bias" : "ln_final.bias"));
    for (int l = 0; l < c->layers; l++) SDC_TRY(load_layer(L, l, c, &te->layers[l]));
    sdc_backend *be = L->be;
    const size_t T = (size_t)c->max_pos;
    SDC_TRY(be->ops->alloc(be, T * W, &te->x));
    SDC_TRY(be->ops->alloc(be, T * W, &te->h));
    SDC_TRY(be->ops->alloc(be, T * 3 * W, &te->qkv));
    SDC_TRY(be->ops->alloc(be, T * W, &te->attn));
    return be->ops->alloc(be, T * (size_t)c->ff, &te->mlp);
}

sdc_status sdc_text_encoder_load(const sdc_model_files *m, sdc_backend *be,
                                 sdc_text_encoder **out) {
    *out = NULL;
    sdc_text_encoder *te = calloc(1, sizeof *te);
    if (!te) return sdc_fail(SDC_ERR_OOM, "text encoder: out of memory");
    te->cfg = m->config.text;
    te->be = be;
    const sdc_text_config *c = &te->cfg;
    /* the largest tensor read: token or position table, MLP, stacked qkv
     * (sizes bounded by sdc_model_check, so none of these overflow) */
    const size_t W = (size_t)c->width;
    const size_t sizes[] = {(size_t)c->vocab * W, (size_t)c->max_pos * W, (size_t)c->ff * W, 3 * W * W};
    size_t big = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] > big) big = sizes[i];
    loader L = {.m = m, .be = be, .stage = malloc(big * sizeof(float)), .cap = big};
    te->layers = calloc((size_t)c->layers, sizeof *te->layers);
    sdc_status st = (L.stage && te->layers) ? load_all(&L, te)
                                            : sdc_fail(SDC_ERR_OOM, "text encoder: out of memory");
    free(L.stage);
    if (st != SDC_OK) {
        sdc_text_encoder_free(te);
        return st;
    }
    *out = te;
    return SDC_OK;
}

void sdc_text_encoder_free(sdc_text_encoder *te) {
    if (!te) return;
    sdc_backend *be = te->be;
    float **bufs[] = {&te->tok_emb, &te->pos_emb, &te->lnf_w, &te->lnf_b,
                      &te->x, &te->h, &te->qkv, &te->attn, &te->mlp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) be->ops->free(be, *bufs[i]);
    for (int l = 0; te->layers && l < te->cfg.layers; l++) {
        sdc_text_layer *ly = &te->layers[l];
        float *w[] = {ly->ln1_w, ly->ln1_b, ly->qkv_w, ly->qkv_b, ly->out_w, ly->out_b,
                      ly->ln2_w, ly->ln2_b, ly->fc1_w, ly->fc1_b, ly->fc2_w, ly->fc2_b};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (w[i]) be->ops->free(be, w[i]);
    }
    free(te->layers);
    free(te);
}

sdc_status sdc_text_encoder_run(sdc_text_encoder *te, const int *ids,
                                int n_tokens, int n_layers, bool final_norm,
                                float *out) {
    const sdc_text_config *c = &te->cfg;
    const sdc_backend_ops *op = te->be->ops;
    sdc_backend *be = te->be;
    const int T = n_tokens, W = c->width, H = c->heads;
    if (T < 1 || T > c->max_pos)
        return sdc_fail(SDC_ERR_ARG, "text encoder: %d tokens, expected 1..%d", T, c->max_pos);
    if (n_layers < 0 || n_layers > c->layers)
        return sdc_fail(SDC_ERR_ARG, "text encoder: %d layers requested, the model has %d",
                        n_layers, c->layers);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab)
            return sdc_fail(SDC_ERR_ARG, "text encoder: token id %d at position %d is outside "
                            "the vocabulary (0..%d)", ids[t], t, c->vocab - 1);
    SDC_TRY(op->embed(be, te->x, te->tok_emb, te->pos_emb, ids, T, W));
    for (int l = 0; l < n_layers; l++) {
        const sdc_text_layer *ly = &te->layers[l];
        /* x = x + out_proj(attention(ln1(x))) */
        SDC_TRY(op->layer_norm(be, te->h, te->x, ly->ln1_w, ly->ln1_b, T, W, c->eps));
        SDC_TRY(op->linear(be, te->qkv, te->h, ly->qkv_w, ly->qkv_b, T, W, 3 * W));
        SDC_TRY(op->attention(be, te->attn, te->qkv, te->qkv + W, te->qkv + 2 * W, 1, H, T, T,
                              W / H, 3 * W, 3 * W, true));
        SDC_TRY(op->linear(be, te->h, te->attn, ly->out_w, ly->out_b, T, W, W));
        SDC_TRY(op->add(be, te->x, te->x, te->h, (size_t)T * W));
        /* x = x + fc2(act(fc1(ln2(x)))) */
        SDC_TRY(op->layer_norm(be, te->h, te->x, ly->ln2_w, ly->ln2_b, T, W, c->eps));
        SDC_TRY(op->linear(be, te->mlp, te->h, ly->fc1_w, ly->fc1_b, T, W, c->ff));
        SDC_TRY(op->activation(be, te->mlp, te->mlp, (size_t)T * c->ff, c->act));
        SDC_TRY(op->linear(be, te->h, te->mlp, ly->fc2_w, ly->fc2_b, T, c->ff, W));
        SDC_TRY(op->add(be, te->x, te->x, te->h, (size_t)T * W));
    }
    if (final_norm) {
        SDC_TRY(op->layer_norm(be, te->h, te->x, te->lnf_w, te->lnf_b, T, W, c->eps));
        return op->download(be, out, te->h, (size_t)T * W);
    }
    return op->download(be, out, te->x, (size_t)T * W);
}
