/* plan.c - one arena per render shape, sized by a dry run (plan.h). */
#include "plan.h"

#include <stdlib.h>

#include "context.h"
#include "nets/taesd.h"
#include "nets/vae_tiled.h"

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; } /* floats: 256 bytes */

/* The arena back; the networks and the backend to memory of their own. */
static void arena_free(sdc_ctx *ctx, sdc_plan *p) {
    sdc_backend *be = ctx->be;
    if (be->ops->sync) be->ops->sync(be); /* nothing queued may still use it */
    sdc_unet_use_memory(ctx->unet, NULL, NULL, p->unet, 0, 0);
    sdc_vae_use_memory(ctx->vae, NULL, p->vae);
    if (ctx->taesd) sdc_taesd_use_memory(ctx->taesd, NULL, p->taesd);
    if (be->ops->scratch_bind) be->ops->scratch_bind(be, NULL, 0);
    if (p->arena) be->ops->free(be, p->arena);
    p->arena = NULL;
    p->scratch_bytes = 0;
}

void sdc_plan_release(sdc_ctx *ctx) {
    sdc_plan *p = ctx->plan;
    if (!p) return;
    arena_free(ctx, p);
    free(p);
    ctx->plan = NULL;
}

/* The arena's layout: the shared region, the U-Net's state, the loop's
 * buffers; the floats they take (the scratch goes behind them). With
 * `base` the buffers are carved from it and the U-Net and VAE given
 * their parts. */
static size_t layout(sdc_ctx *ctx, sdc_plan *p, float *base) {
    const sdc_model_config *mc = &ctx->model->config;
    const int C = mc->vae.z_channels, Cin = mc->unet.in_channels, f = sdc_vae_factor(&mc->vae);
    const size_t px = (size_t)p->lh * p->lw, n = (size_t)C * px;
    const int ih = p->tile && p->tile < p->lh * f ? p->tile : p->lh * f; /* tiled: one tile's pixels */
    const int iw = p->tile && p->tile < p->lw * f ? p->tile : p->lw * f;
    const size_t npx = (size_t)ih * iw;
    size_t shared = p->unet.activations > p->vae.activations ? p->unet.activations : p->vae.activations;
    if (p->taesd.activations > shared) shared = p->taesd.activations;
    shared = up64(shared);
    const size_t pv = ctx->taesd ? px * SDC_TAESD_SCALE * SDC_TAESD_SCALE * 3 : 0;
    float **bufs[] = {&p->ctx, &p->x, &p->in, &p->eps, &p->noise, &p->x0[0], &p->x0[1], &p->z, &p->img, &p->mom,
                      &p->cond, &p->pv_z, &p->pv_rgb};
    const size_t sizes[] = {(size_t)p->batch * p->tokens * sdc_context_dim(ctx), (size_t)p->images * n,
                            (size_t)p->batch * Cin * px, (size_t)p->batch * n, (size_t)p->images * n,
                            (size_t)p->images * n, (size_t)p->images * n, n, npx * 3, p->encode ? 2 * n : 0,
                            (size_t)p->images * (Cin - C) * px, pv ? n : 0, pv};
    size_t off = shared + up64(p->unet.state);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *bufs[i] = sizes[i] ? base + off : NULL;
        off += up64(sizes[i]);
    }
    if (base) {
        sdc_unet_use_memory(ctx->unet, base, base + shared, p->unet, p->batch, p->tokens);
        sdc_vae_use_memory(ctx->vae, base, p->vae);
        if (ctx->taesd) sdc_taesd_use_memory(ctx->taesd, base, p->taesd);
    }
    return off;
}

/* The dry run: the ops of one render with this shape (a prompt window
 * through the text encoder, the first upload, the context's keys and
 * values, the schedule's time embeddings, one U-Net step, one decode)
 * issued to the backend in its planning mode, which records the scratch
 * and staging they need and runs none of them. The guidance and sampler
 * ops take no scratch. */
static sdc_status dry_run(sdc_ctx *ctx, sdc_plan *p, size_t *scratch_bytes) {
    sdc_backend *be = ctx->be;
    const int C = ctx->model->config.vae.z_channels, f = sdc_vae_factor(&ctx->model->config.vae);
    const size_t n = (size_t)C * p->lh * p->lw;
    const int L = p->tile / f, vh = p->tile && L < p->lh ? L : p->lh, vw = p->tile && L < p->lw ? L : p->lw;
    double *ts = calloc((size_t)p->steps, sizeof *ts);
    if (!ts) return sdc_fail(SDC_ERR_OOM, "out of memory");
    sdc_status st = be->ops->plan_begin(be);
    if (st != SDC_OK) {
        free(ts);
        return st;
    }
    int ids[SDC_CLIP_CTX] = {0}; /* a later job's prompts are encoded while this plan holds */
    st = sdc_text_encoder_run(ctx->te, ids, SDC_CLIP_CTX, ctx->te->cfg.layers, true, NULL);
    if (st == SDC_OK && ctx->te2) { /* SDXL: the second encoder, its pooled output too */
        float *pooled = malloc((size_t)ctx->te2->cfg.proj * sizeof *pooled);
        st = pooled ? sdc_text_encoder_run_pooled(ctx->te2, ids, SDC_CLIP_CTX, ctx->te2->cfg.layers_used, false, NULL,
                                                  NULL, 0, NULL, 0, pooled)
                    : sdc_fail(SDC_ERR_OOM, "out of memory");
        free(pooled);
    }
    if (st == SDC_OK) st = be->ops->upload_async(be, p->x, NULL, (size_t)p->images * n);
    if (st == SDC_OK) st = sdc_unet_set_context(ctx->unet, p->ctx, p->batch, p->tokens);
    if (st == SDC_OK && ctx->model->config.unet.add_in_dim) { /* nothing is read from these in a dry run */
        const sdc_unet_config *u = &ctx->model->config.unet;
        float *zp = calloc((size_t)p->batch * (size_t)u->add_in_dim, sizeof *zp);
        double *zt = calloc((size_t)p->batch * (size_t)u->n_time_ids, sizeof *zt);
        st = zp && zt ? sdc_unet_set_added(ctx->unet, zp, zt, p->batch) : sdc_fail(SDC_ERR_OOM, "out of memory");
        free(zp), free(zt);
    }
    if (st == SDC_OK) st = sdc_unet_set_schedule(ctx->unet, p->batch, p->lh, p->lw, ts, p->steps);
    if (st == SDC_OK) st = sdc_unet_prepare_step(ctx->unet, p->batch, p->lh, p->lw, 0);
    if (st == SDC_OK) st = sdc_unet_body(ctx->unet, p->in, p->batch, p->lh, p->lw, p->eps);
    /* the VAE's largest tile, or the whole latent */
    if (st == SDC_OK) st = sdc_vae_decode(ctx->vae, p->z, vh, vw, p->img);
    if (st == SDC_OK && p->encode) st = sdc_vae_encode_moments(ctx->vae, p->img, vh * f, vw * f, p->mom);
    if (st == SDC_OK && ctx->taesd) st = sdc_taesd_decode(ctx->taesd, p->pv_z, p->lh, p->lw, p->pv_rgb);
    free(ts);
    sdc_status end = be->ops->plan_end(be, scratch_bytes);
    return st != SDC_OK ? st : end;
}

/* The arena for p's shape with the VAE as p->tile says: allocated and
 * laid out, the scratch sized by a dry run on that layout, then the arena
 * again with the scratch behind the same layout. */
static sdc_status build(sdc_ctx *ctx, sdc_plan *p) {
    sdc_backend *be = ctx->be;
    p->vae = p->tile ? sdc_vae_tiled_memory(ctx->vae, p->tile, p->lh, p->lw) : sdc_vae_memory(ctx->vae, p->lh, p->lw);
    const size_t body = layout(ctx, p, NULL);
    sdc_status st = be->ops->alloc(be, body, &p->arena);
    if (st == SDC_OK) layout(ctx, p, p->arena);
    if (st == SDC_OK && be->ops->plan_begin) st = dry_run(ctx, p, &p->scratch_bytes);
    if (st == SDC_OK && p->scratch_bytes) {
        sdc_unet_use_memory(ctx->unet, NULL, NULL, p->unet, 0, 0);
        sdc_vae_use_memory(ctx->vae, NULL, p->vae);
        if (ctx->taesd) sdc_taesd_use_memory(ctx->taesd, NULL, p->taesd);
        be->ops->free(be, p->arena);
        p->arena = NULL;
        st = be->ops->alloc(be, body + p->scratch_bytes / sizeof(float), &p->arena);
        if (st == SDC_OK) {
            layout(ctx, p, p->arena);
            st = be->ops->scratch_bind(be, p->arena + body, p->scratch_bytes);
        }
    }
    p->floats = body + p->scratch_bytes / sizeof(float);
    return st;
}

/* AUTO: the plan with the VAE untiled, kept unless it is larger than the
 * memory the backend says it has available (measured with no arena held)
 * or cannot be allocated; then the plan with the VAE tiled. A backend that
 * cannot say is taken at its word that the untiled arena was allocated. */
static sdc_status build_auto(sdc_ctx *ctx, sdc_plan *p, int tile_px) {
    sdc_backend *be = ctx->be;
    size_t avail = 0;
    const bool known = be->ops->available && be->ops->available(be, &avail);
    p->tile = 0;
    p->vae = sdc_vae_memory(ctx->vae, p->lh, p->lw);
    size_t need = layout(ctx, p, NULL) * sizeof(float); /* before the scratch is known */
    if (!known || need <= avail) {
        const sdc_status st = build(ctx, p);
        if (st != SDC_OK && st != SDC_ERR_OOM) return st;
        need = st == SDC_OK ? p->floats * sizeof(float) : SIZE_MAX;
        if (st == SDC_OK && (!known || need <= avail)) return SDC_OK;
        arena_free(ctx, p);
    }
    if (need == SIZE_MAX)
        sdc_notice("the VAE decodes in tiles of %d pixels: its untiled plan could not be allocated", tile_px);
    else
        sdc_notice("the VAE decodes in tiles of %d pixels: untiled, the render would plan %.0f MiB, more than the "
                   "%.0f MiB available", tile_px, need / 1048576.0, avail / 1048576.0);
    p->tile = tile_px;
    return build(ctx, p);
}

sdc_status sdc_plan_render(sdc_ctx *ctx, int batch, int images, int lh, int lw, int tokens, int steps,
                           bool encode, sdc_vae_tiling tiling, int tile_px, const sdc_plan **out) {
    sdc_plan *p = ctx->plan;
    if (p && p->batch == batch && p->images == images && p->lh == lh && p->lw == lw && p->tokens == tokens &&
        p->steps == steps && p->encode == encode && p->tiling == tiling && p->tile_size == tile_px) {
        *out = p;
        return SDC_OK;
    }
    sdc_plan_release(ctx);
    p = calloc(1, sizeof *p);
    if (!p) return sdc_fail(SDC_ERR_OOM, "out of memory");
    ctx->plan = p;
    p->batch = batch, p->images = images, p->lh = lh, p->lw = lw, p->tokens = tokens, p->steps = steps;
    p->encode = encode;
    p->tiling = tiling, p->tile_size = tile_px;
    p->unet = sdc_unet_memory(ctx->unet, batch, lh, lw, tokens, steps);
    if (ctx->taesd) p->taesd = sdc_taesd_memory(ctx->taesd, lh, lw);
    const sdc_vae_config *vc = &ctx->model->config.vae;
    /* diffusers tiles only a latent larger than a tile */
    const bool can_tile = tiling != SDC_VAE_TILING_OFF && sdc_vae_tile_check(vc, tile_px) == SDC_OK &&
                          sdc_vae_tiles(vc, tile_px, lh, lw);
    p->tile = can_tile && tiling == SDC_VAE_TILING_ON ? tile_px : 0;
    const sdc_status st = can_tile && tiling == SDC_VAE_TILING_AUTO ? build_auto(ctx, p, tile_px) : build(ctx, p);
    if (st != SDC_OK) {
        sdc_plan_release(ctx);
        return st;
    }
    *out = p;
    return SDC_OK;
}
