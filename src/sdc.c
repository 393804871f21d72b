/* sdc.c - the public API: context, loading, prompt encoding. */
#include "sdc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/conditioning.h"
#include "context.h"
#include "plan.h"
#include "backend/cuda.h"
#include "text/token_text.h"


sdc_params sdc_params_default(void) {
    sdc_params p;
    memset(&p, 0, sizeof p);
    p.backend = SDC_BACKEND_AUTO;
    p.clip_skip = 1;
    return p;
}

/* The shipped vocabulary: ./weights/ or ../weights/ beside the executable. */
static const char *VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz";

static char *default_vocab_path(void) {
    const char *env = getenv("SDC_VOCAB");
    if (env && *env) return strdup(env);
    char exe[4096], cand[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(cand, sizeof cand, "%s/../weights/%s", exe, VOCAB_NAME);
        if (access(cand, R_OK) == 0) return strdup(cand);
    }
    snprintf(cand, sizeof cand, "weights/%s", VOCAB_NAME);
    return strdup(cand);
}

sdc_status sdc_tokenizer_open_default(const char *vocab_path, const char *hf_vocab,
                                      const char *hf_merges, sdc_tokenizer **out) {
    if (vocab_path) return sdc_tokenizer_load_bpe(vocab_path, out);
    if (hf_vocab && hf_merges) return sdc_tokenizer_load_hf(hf_vocab, hf_merges, out);
    char *p = default_vocab_path();
    if (!p) return sdc_fail(SDC_ERR_OOM, "out of memory");
    sdc_status st = sdc_tokenizer_load_bpe(p, out);
    free(p);
    return st;
}

const char *sdc_precision_name(sdc_precision p) {
    static const char *const names[] = {"auto", "fp32", "fp16", "bf16"};
    return (int)p >= 0 && (int)p < 4 ? names[p] : "?";
}

/* The weight (and activation) types of text encoder + U-Net and of the
 * VAE: AUTO is the backend's own choice, fp32 on the CPU; on CUDA fp16 for
 * text encoder and U-Net, and for the VAE fp32 when the rest is fp32, else
 * bf16 (fp32's range: SD 1.x/2.x VAE decoders overflow fp16 into NaN or
 * black images). The CPU backend keeps fp32 activations and has bf16 as
 * the products' precision (bf16[0] for text encoder and U-Net, bf16[1]
 * for the VAE), no fp16. */
static sdc_status weight_types(const sdc_params *p, sdc_backend *be, sdc_dtype *wt, sdc_dtype *vt, bool bf16[2]) {
    const sdc_precision ps[2] = {p->precision, p->vae_precision};
    const char *opt[2] = {"--precision", "--vae-precision"};
    sdc_dtype *out[2] = {wt, vt};
    const bool cpu = !strcmp(be->ops->name, "cpu");
    for (int i = 0; i < 2; i++) {
        switch (ps[i]) {
        case SDC_PRECISION_AUTO:
            *out[i] = cpu ? SDC_DT_F32 : i == 0 ? SDC_DT_F16 : *wt == SDC_DT_F32 ? SDC_DT_F32 : SDC_DT_BF16;
            break;
        case SDC_PRECISION_FP32: *out[i] = SDC_DT_F32; break;
        case SDC_PRECISION_FP16: *out[i] = SDC_DT_F16; break;
        case SDC_PRECISION_BF16: *out[i] = SDC_DT_BF16; break;
        default: return sdc_fail(SDC_ERR_ARG, "%s: unknown precision %d", opt[i], (int)ps[i]);
        }
        bf16[i] = cpu && *out[i] == SDC_DT_BF16;
        if (cpu && *out[i] == SDC_DT_F16)
            return sdc_fail(SDC_ERR_ARG, "%s fp16: the CPU backend computes in fp32 or bf16 (fp16 is for the CUDA "
                            "backend)", opt[i]);
        if (cpu) *out[i] = SDC_DT_F32; /* the activations' */
    }
    return SDC_OK;
}

/* Bytes the backend will hold for the tensors under prefix in f: matrices
 * and kernels in type t (t F32 on the CPU: as stored, F32 for types the
 * CPU does not keep), vectors fp32. */
static double component_bytes(const sdc_st_file *f, const char *prefix, sdc_dtype t, bool cpu) {
    double b = 0;
    const size_t n = prefix ? strlen(prefix) : 0;
    for (int i = 0; f && i < f->n_tensors; i++) {
        const sdc_st_tensor *x = &f->tensors[i];
        if ((n && strncmp(x->name, prefix, n) != 0) || !sdc_dtype_is_float(x->dtype)) continue;
        const bool half = cpu ? x->dtype == SDC_DT_F16 || x->dtype == SDC_DT_BF16 : t != SDC_DT_F32;
        b += (double)x->numel * (x->ndim >= 2 && half ? 2 : 4);
    }
    return b;
}

/* The weights must fit what the backend has free (the CPU: MemAvailable;
 * CUDA: the device's free memory): an SDXL U-Net in fp32 is 10 GB, and a
 * host that runs out mid-load is killed rather than told. Renders need
 * more on top (planned when they start). The CPU keeps weights as the
 * file stores them (wt and vt F32: its only activation type). */
sdc_status sdc_check_weights_fit(const sdc_model_files *m, bool cpu, sdc_dtype wt, sdc_dtype vt, size_t avail) {
    const double need = component_bytes(m->unet_file, m->unet_prefix, wt, cpu) +
                        component_bytes(m->text_file, m->text_prefix, wt, cpu) +
                        (m->text2_file ? component_bytes(m->text2_file, m->text2_prefix, wt, cpu) : 0) +
                        component_bytes(m->vae_file, m->vae_prefix, vt, cpu) + 256.0 * (1 << 20);
    if (need <= (double)avail) return SDC_OK;
    return sdc_fail(SDC_ERR_OOM, "%s: the %s model needs about %.1f GiB of %s for its weights in %s, and %.1f GiB "
                    "is available%s", m->path, sdc_family_name(m->config.family), need / 1073741824.0,
                    cpu ? "memory" : "GPU memory",
                    cpu ? "the file's types" : wt == SDC_DT_F32 ? "fp32" : wt == SDC_DT_F16 ? "fp16" : "bf16",
                    (double)avail / 1073741824.0,
                    cpu ? " (the CPU backend keeps the file's fp16, bf16 or fp32 weights)"
                        : "; close other programs using the GPU or try --backend cpu");
}

static sdc_status check_memory(const sdc_model_files *m, sdc_backend *be, sdc_dtype wt, sdc_dtype vt) {
    size_t avail = 0;
    if (!be->ops->available || !be->ops->available(be, &avail)) return SDC_OK;
    return sdc_check_weights_fit(m, !strcmp(be->ops->name, "cpu"), wt, vt, avail);
}

static sdc_status select_backend(const sdc_params *p, sdc_backend **out) {
    char why[256] = "";
    int n_dev = p->backend == SDC_BACKEND_CPU ? 0 : sdc_cuda_device_count(why, sizeof why);
    /* the emulated device (a test build) is used only when asked for */
    if (p->backend == SDC_BACKEND_AUTO && n_dev > 0 && sdc_cuda_emulated()) {
        snprintf(why, sizeof why, "the emulated CUDA device is used only with --backend cuda");
        n_dev = 0;
    }
    if (p->backend == SDC_BACKEND_CUDA && n_dev == 0)
        return sdc_fail(SDC_ERR_BACKEND, "--backend cuda: no CUDA device (%s)", why);
    if (n_dev > 0) return sdc_backend_cuda_create(0, out);
    if (p->backend == SDC_BACKEND_AUTO) sdc_notice("no CUDA device (%s); using the CPU backend", why);
    return sdc_backend_cpu_create(p->n_threads, out);
}

sdc_status sdc_load(const sdc_params *params, sdc_ctx **out) {
    *out = NULL;
    if (!params) return sdc_fail(SDC_ERR_ARG, "sdc_load: no parameters");
    if (params->clip_skip < 1)
        return sdc_fail(SDC_ERR_ARG, "clip skip %d: expected 1 (last layer) or more", params->clip_skip);
    sdc_ctx *c = calloc(1, sizeof *c);
    if (!c) return sdc_fail(SDC_ERR_OOM, "out of memory");
    c->params = *params;
    sdc_status st = sdc_model_open(params->model_path, &c->model);
    if (st == SDC_OK && params->vae_path) st = sdc_model_use_vae(c->model, params->vae_path);
    if (st == SDC_OK && params->clip_skip > c->model->config.text.layers_used)
        st = sdc_fail(SDC_ERR_ARG, "clip skip %d: the text encoder has only %d layers",
                      params->clip_skip, c->model->config.text.layers_used);
    if (st == SDC_OK)
        st = sdc_tokenizer_open_default(params->vocab_path, c->model->tokenizer_vocab,
                                        c->model->tokenizer_merges, &c->tok);
    if (st == SDC_OK && sdc_tokenizer_vocab_size(c->tok) > c->model->config.text.vocab)
        st = sdc_fail(SDC_ERR_FORMAT, "%s: the tokenizer has %d ids but the text encoder's token table only %d rows",
                      params->model_path, sdc_tokenizer_vocab_size(c->tok), c->model->config.text.vocab);
    if (st == SDC_OK && c->model->config.text2.width && sdc_tokenizer_vocab_size(c->tok) > c->model->config.text2.vocab)
        st = sdc_fail(SDC_ERR_FORMAT, "%s: the tokenizer has %d ids but the second text encoder's token table only %d "
                      "rows", params->model_path, sdc_tokenizer_vocab_size(c->tok), c->model->config.text2.vocab);
    if (st == SDC_OK && params->embeddings_dir && c->model->config.family == SDC_FAMILY_SDXL)
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "--embeddings-dir %s: textual-inversion embeddings for SDXL (clip_l and "
                      "clip_g vectors) are not supported yet; sdc reads SD 1.x and 2.x embeddings",
                      params->embeddings_dir);
    if (st == SDC_OK && params->embeddings_dir)
        st = sdc_embeddings_load(params->embeddings_dir, c->tok, c->model->config.text.width, &c->emb);
    if (st == SDC_OK) st = select_backend(params, &c->be);
    double t0 = sdc_now();
    sdc_dtype wt = SDC_DT_F32, vt = SDC_DT_F32;
    bool bf16[2] = {false, false};
    if (st == SDC_OK) st = weight_types(params, c->be, &wt, &vt, bf16);
    if (st == SDC_OK) c->be->weight_type = wt, c->be->products_bf16 = c->products_bf16 = bf16[0];
    if (st == SDC_OK) st = check_memory(c->model, c->be, wt, vt);
    if (st == SDC_OK) st = sdc_text_encoder_load(c->model, c->be, &c->te);
    if (st == SDC_OK && c->model->config.text2.width) st = sdc_text_encoder_load2(c->model, c->be, &c->te2);
    if (st == SDC_OK) st = sdc_unet_load(c->model, c->be, &c->unet);
    if (st == SDC_OK) c->be->weight_type = vt, c->be->products_bf16 = bf16[1];
    if (st == SDC_OK) st = sdc_vae_load(c->model, c->be, &c->vae);
    if (st == SDC_OK && params->taesd_path) { /* previews: in the U-Net's type (fp16 on CUDA, as A1111 runs it) */
        c->be->weight_type = wt, c->be->products_bf16 = bf16[0];
        st = sdc_taesd_load(params->taesd_path, c->model->config.vae.z_channels, c->be, &c->taesd);
    }
    if (st == SDC_OK) {
        const char *base = strrchr(params->model_path, '/');
        base = base && base[1] ? base + 1 : params->model_path;
        c->model_name = strdup(base);
        if (!c->model_name) st = sdc_fail(SDC_ERR_OOM, "out of memory");
        size_t len = c->model_name ? strlen(c->model_name) : 0;
        if (len > 12 && strcmp(c->model_name + len - 12, ".safetensors") == 0) c->model_name[len - 12] = '\0';
        if (len && c->model_name[strlen(c->model_name) - 1] == '/') c->model_name[strlen(c->model_name) - 1] = '\0';
    }
    c->seconds_load = sdc_now() - t0;
    if (st == SDC_OK) { /* what was copied is the backend's now; weights read in place use the files' views */
        sdc_st_drop_pages(c->model->single);
        sdc_st_drop_pages(c->model->unet_file);
        sdc_st_drop_pages(c->model->vae_file);
        sdc_st_drop_pages(c->model->text_file);
        sdc_st_drop_pages(c->model->text2_file);
    }
    if (st != SDC_OK) {
        sdc_free(c);
        return st;
    }
    *out = c;
    return SDC_OK;
}

/* weights a merge cannot rewrite exactly in place: half ones (rounding)
 * and those read in place from the file (read-only) */
static bool needs_own_fp32(const sdc_weight_set *s) {
    for (int i = 0; s && i < s->n_srcs; i++)
        if (s->srcs[i].w.type != SDC_DT_F32 || s->srcs[i].in_place) return true;
    return false;
}

/* The network *cur takes the reloaded *fresh's contents, keeping its own
 * weight sources (their addresses are out: the LoRA index, callers), each
 * now pointing at its fresh weight; *fresh gets the old contents, to be
 * freed. Both were loaded by the same code, so the sources line up. */
static void adopt(void *cur, void *fresh, size_t size, sdc_weight_set *cw, sdc_weight_set *fw) {
    for (int i = 0; i < cw->n_srcs && i < fw->n_srcs; i++) {
        cw->srcs[i].w = fw->srcs[i].w;
        cw->srcs[i].in_place = fw->srcs[i].in_place;
    }
    sdc_weight_src *srcs = cw->srcs;
    const int cap = cw->cap_srcs;
    cw->srcs = fw->srcs, cw->cap_srcs = fw->cap_srcs;
    fw->srcs = srcs, fw->cap_srcs = cap;
    unsigned char *a = cur, *b = fresh;
    for (size_t i = 0; i < size; i++) {
        const unsigned char t = a[i];
        a[i] = b[i], b[i] = t;
    }
}

sdc_status sdc_widen_for_merges(sdc_ctx *ctx) {
    sdc_backend *be = ctx->be;
    if (!be->weights_as_stored || ctx->widened) return SDC_OK;
    if (!needs_own_fp32(&ctx->te->weights) && !(ctx->te2 && needs_own_fp32(&ctx->te2->weights)) &&
        !needs_own_fp32(&ctx->unet->weights)) {
        ctx->widened = true;
        return SDC_OK;
    }
    const double t0 = sdc_now();
    sdc_plan_release(ctx); /* the U-Net's activations were bound to its arena */
    const sdc_dtype wt = be->weight_type;
    be->weights_as_stored = false;
    be->weight_type = SDC_DT_F32;
    be->products_bf16 = ctx->products_bf16;
    sdc_text_encoder *te = NULL, *te2 = NULL;
    sdc_unet *unet = NULL;
    sdc_status st = sdc_text_encoder_load(ctx->model, be, &te);
    if (st == SDC_OK && ctx->te2) st = sdc_text_encoder_load2(ctx->model, be, &te2);
    if (st == SDC_OK) st = sdc_unet_load(ctx->model, be, &unet);
    be->weights_as_stored = true;
    be->weight_type = wt;
    if (st != SDC_OK) {
        sdc_text_encoder_free(te), sdc_text_encoder_free(te2), sdc_unet_free(unet);
        return sdc_fail_context(st, "widening the weights to fp32 for a LoRA merge");
    }
    adopt(ctx->te, te, sizeof *te, &ctx->te->weights, &te->weights);
    sdc_text_encoder_free(te);
    if (te2) {
        adopt(ctx->te2, te2, sizeof *te2, &ctx->te2->weights, &te2->weights);
        sdc_text_encoder_free(te2);
    }
    adopt(ctx->unet, unet, sizeof *unet, &ctx->unet->weights, &unet->weights);
    sdc_unet_free(unet);
    ctx->widened = true;
    sdc_notice("LoRA: the text encoders and U-Net now keep fp32 weights, so that merges are exact (%.1f s)",
               sdc_now() - t0);
    return SDC_OK;
}

sdc_status sdc_tokenize(sdc_ctx *ctx, const char *prompt, int *ids, int n_ids, int *n_dropped) {
    if (!ctx || !prompt || !ids) return sdc_fail(SDC_ERR_ARG, "sdc_tokenize: NULL argument");
    return sdc_tokenizer_encode_padded(ctx->tok, prompt, ctx->model->config.text.pad_id, ids,
                                       n_ids, n_dropped);
}

int sdc_context_dim(const sdc_ctx *ctx) { return ctx->model->config.unet.context_dim; }

sdc_status sdc_encode_prompt(sdc_ctx *ctx, const char *prompt, float *out) {
    const sdc_text_config *t = &ctx->model->config.text;
    int ids[SDC_CLIP_CTX];
    if (t->max_pos < SDC_CLIP_CTX)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "text encoder has %d positions, expected %d",
                        t->max_pos, SDC_CLIP_CTX);
    SDC_TRY(sdc_tokenize(ctx, prompt, ids, SDC_CLIP_CTX, NULL));
    if (!ctx->te2) {
        int layers = t->layers_used - (ctx->params.clip_skip - 1);
        return sdc_text_encoder_run(ctx->te, ids, SDC_CLIP_CTX, layers, t->final_norm, out);
    }
    /* SDXL: both encoders side by side per token, each with its padding */
    sdc_text_encoder *te[2] = {ctx->te, ctx->te2};
    const int W = sdc_context_dim(ctx);
    float *part = malloc((size_t)SDC_CLIP_CTX * W * sizeof(float));
    if (!part) return sdc_fail(SDC_ERR_OOM, "out of memory");
    sdc_status st = SDC_OK;
    for (int e = 0, off = 0; st == SDC_OK && e < 2; off += te[e]->cfg.width, e++) {
        const sdc_text_config *c = &te[e]->cfg;
        st = sdc_tokenizer_encode_padded(ctx->tok, prompt, c->pad_id, ids, SDC_CLIP_CTX, NULL);
        if (st == SDC_OK) st = sdc_text_encoder_run(te[e], ids, SDC_CLIP_CTX, c->layers_used, c->final_norm, part);
        for (int k = 0; st == SDC_OK && k < SDC_CLIP_CTX; k++)
            memcpy(out + (size_t)k * W + off, part + (size_t)k * c->width, (size_t)c->width * sizeof(float));
    }
    free(part);
    return st;
}

const char *sdc_backend_name(const sdc_ctx *ctx) { return ctx->be->ops->name; }

size_t sdc_device_memory_peak(const sdc_ctx *ctx) {
    size_t peak = 0;
    if (ctx && ctx->be && ctx->be->ops->memory) ctx->be->ops->memory(ctx->be, NULL, &peak);
    return peak;
}

int sdc_native_size(const sdc_ctx *ctx) { return ctx->model->config.image_size; }

void sdc_free(sdc_ctx *ctx) {
    if (!ctx) return;
    sdc_plan_release(ctx);
    sdc_conditioning_cache_clear(ctx);
    sdc_lora_state_free(&ctx->lora);
    sdc_embeddings_free(ctx->emb);
    sdc_vae_free(ctx->vae);
    sdc_taesd_free(ctx->taesd);
    sdc_unet_free(ctx->unet);
    sdc_text_encoder_free(ctx->te);
    sdc_text_encoder_free(ctx->te2);
    free(ctx->model_name);
    sdc_tokenizer_free(ctx->tok);
    if (ctx->be) sdc_backend_destroy(ctx->be);
    sdc_model_close(ctx->model);
    free(ctx);
}
