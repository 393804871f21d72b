/* pipeline.c - text to image: prompt -> context, noise -> denoising loop
 * with classifier-free guidance -> VAE decode -> 8-bit image. The same
 * steps, in the same order, as diffusers' StableDiffusionPipeline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditioning.h"
#include "context.h"
#include "image.h"
#include "rng.h"
#include "scheduler.h"

sdc_gen_params sdc_gen_params_default(void) {
    sdc_gen_params p;
    memset(&p, 0, sizeof p);
    p.width = p.height = 512;
    p.steps = 20;
    p.sampler = "ddim";
    p.cfg_scale = 7.5f;
    return p;
}

static sdc_status parse_spacing(const char *name, sdc_spacing *out) {
    if (!strcmp(name, "leading")) *out = SDC_SPACING_LEADING;
    else if (!strcmp(name, "trailing")) *out = SDC_SPACING_TRAILING;
    else if (!strcmp(name, "linspace")) *out = SDC_SPACING_LINSPACE;
    else return sdc_fail(SDC_ERR_ARG, "timestep spacing '%s': expected leading, trailing or linspace", name);
    return SDC_OK;
}

sdc_status sdc_check_gen_params(const sdc_ctx *ctx, const sdc_gen_params *p) {
    sdc_sampler_kind kind;
    if (!p || !p->prompt) return sdc_fail(SDC_ERR_ARG, "no prompt given");
    SDC_TRY(sdc_sampler_parse(p->sampler ? p->sampler : "ddim", &kind));
    if (p->steps < 1 || p->steps > 1000)
        return sdc_fail(SDC_ERR_ARG, "steps %d: expected 1 to 1000", p->steps);
    if (p->width < 8 || p->height < 8 || p->width % 8 || p->height % 8)
        return sdc_fail(SDC_ERR_ARG, "size %dx%d: width and height must be positive multiples of 8",
                        p->width, p->height);
    if (p->width > 4096 || p->height > 4096)
        return sdc_fail(SDC_ERR_ARG, "size %dx%d: at most 4096 pixels a side", p->width, p->height);
    sdc_spacing sp;
    if (p->spacing) SDC_TRY(parse_spacing(p->spacing, &sp));
    if (p->karras && !sdc_sampler_supports_karras(kind))
        return sdc_fail(SDC_ERR_ARG, "--karras: the %s sampler has no Karras sigmas (euler and dpmpp_2m do)",
                        sdc_sampler_name(kind));
    if (p->eta < 0.0f) return sdc_fail(SDC_ERR_ARG, "eta %g: expected 0 or more", (double)p->eta);
    if (p->eta > 0.0f && kind != SDC_SAMPLER_DDIM)
        return sdc_fail(SDC_ERR_ARG, "eta applies to the ddim sampler only (sampler is %s)", p->sampler);
    if (ctx) {
        int f = sdc_vae_factor(&ctx->model->config.vae);
        if (p->width % f || p->height % f)
            return sdc_fail(SDC_ERR_ARG, "size %dx%d: must be a multiple of %d for this model's VAE", p->width,
                            p->height, f);
    }
    return SDC_OK;
}

/* diffusers fills what scheduler_config.json leaves out with each
 * scheduler's own default: DDIM and DDPM space leading, Euler, Euler a and
 * DPM++ linspace. SD 1.x/2.x configs do not set it, so that is what
 * `Scheduler.from_config(pipe.scheduler.config)` gives. */
static sdc_schedule_config schedule_for(const sdc_ctx *ctx, const sdc_gen_params *p, sdc_sampler_kind kind) {
    sdc_schedule_config s = sdc_schedule_default();
    const char *sp = p->spacing ? p->spacing : ctx->model->config.sched.spacing;
    if (!sp || parse_spacing(sp, &s.spacing) != SDC_OK)
        s.spacing = kind == SDC_SAMPLER_DDIM || kind == SDC_SAMPLER_DDPM ? SDC_SPACING_LEADING : SDC_SPACING_LINSPACE;
    s.steps_offset = ctx->model->config.sched.steps_offset;
    s.karras = p->karras;
    s.eta = p->eta;
    s.prediction = ctx->model->config.unet.prediction == SDC_PRED_V ? SDC_PREDICT_V : SDC_PREDICT_EPSILON;
    return s;
}

static char *infotext(sdc_ctx *ctx, const sdc_gen_params *p, sdc_sampler_kind kind) {
    if (!ctx->model_hash[0]) {
        const char *file = ctx->model->single ? ctx->model->single->path : ctx->model->unet_file->path;
        if (sdc_file_sha256_short(file, ctx->model_hash) != SDC_OK) ctx->model_hash[0] = '\0';
    }
    char extra[256] = "";
    if (p->eta > 0.0f)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%sEta DDIM: %g", extra[0] ? ", " : "",
                 (double)p->eta);
    if (ctx->params.clip_skip > 1)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%sClip skip: %d", extra[0] ? ", " : "",
                 ctx->params.clip_skip);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%sVersion: sdc", extra[0] ? ", " : "");
    sdc_infotext t = {
        .prompt = p->prompt,
        .negative_prompt = p->negative_prompt,
        .steps = p->steps,
        .sampler = sdc_sampler_display_name(kind),
        .cfg_scale = p->cfg_scale,
        .seed = p->seed,
        .width = p->width,
        .height = p->height,
        .model_hash = ctx->model_hash[0] ? ctx->model_hash : NULL,
        .model_name = ctx->model_name,
        .extra = extra,
        .schedule_type = p->karras ? "Karras" : NULL,
    };
    return sdc_infotext_format(&t);
}

/* Buffers of one generation; freed together. */
typedef struct run {
    float *ctx;       /* (2, 77, width) uncond then cond, backend */
    float *x_host;    /* (n) latents NCHW, host */
    float *in_host;   /* (batch, 4, h, w) U-Net input NCHW, host */
    float *tmp_host;  /* (batch * n) NHWC staging, host */
    float *eps_host;  /* (batch * n) U-Net output NCHW, host */
    float *x_dev;     /* (batch, h, w, 4) backend */
    float *eps_dev;   /* (batch, h, w, 4) backend */
    float *img_dev;   /* (H, W, 3) backend */
    float *img_host;
    sdc_sampler *sampler;
    int tokens;       /* context tokens per image: 77 per prompt chunk */
} run;

static void run_free(sdc_ctx *ctx, run *r) {
    sdc_backend *be = ctx->be;
    float *dev[] = {r->ctx, r->x_dev, r->eps_dev, r->img_dev};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) be->ops->free(be, dev[i]);
    free(r->x_host), free(r->in_host), free(r->tmp_host), free(r->eps_host), free(r->img_host);
    sdc_sampler_free(r->sampler);
}

/* The U-Net context: [negative, positive] as diffusers batches them, each
 * n_chunks * 77 tokens (A1111 prompt syntax; both padded to the same count
 * with empty-prompt windows). */
static sdc_status encode_two(sdc_ctx *ctx, const sdc_gen_params *p, bool cfg, run *r) {
    const size_t one = (size_t)SDC_CLIP_CTX * sdc_context_dim(ctx);
    float *pos = NULL, *neg = NULL;
    int n_pos = 0, n_neg = 0;
    sdc_status st = sdc_encode_conditioning(ctx, p->prompt, &pos, &n_pos);
    if (st == SDC_OK && cfg)
        st = sdc_encode_conditioning(ctx, p->negative_prompt ? p->negative_prompt : "", &neg, &n_neg);
    if (st == SDC_OK && cfg) st = sdc_conditioning_match(ctx, &neg, &n_neg, &pos, &n_pos);
    float *host = st == SDC_OK ? malloc((cfg ? 2 : 1) * (size_t)n_pos * one * sizeof(float)) : NULL;
    if (st == SDC_OK && !host) st = sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) {
        if (cfg) memcpy(host, neg, (size_t)n_neg * one * sizeof(float));
        memcpy(host + (cfg ? (size_t)n_neg * one : 0), pos, (size_t)n_pos * one * sizeof(float));
        st = sdc_backend_upload_new(ctx->be, host, (cfg ? 2 : 1) * (size_t)n_pos * one, &r->ctx);
        r->tokens = n_pos * SDC_CLIP_CTX;
    }
    free(host), free(pos), free(neg);
    return st;
}

static sdc_status denoise(sdc_ctx *ctx, const sdc_gen_params *p, bool cfg, int lh, int lw, run *r,
                          sdc_rng *rng) {
    sdc_backend *be = ctx->be;
    const int C = ctx->model->config.unet.in_channels, B = cfg ? 2 : 1;
    const size_t n = (size_t)C * lh * lw;
    const int steps = sdc_sampler_steps(r->sampler);
    double t0 = sdc_now();
    for (int i = 0; i < steps; i++) {
        /* the same scaled input for both halves of the batch */
        sdc_sampler_scale_input(r->sampler, i, r->x_host, r->in_host, n);
        if (cfg) memcpy(r->in_host + n, r->in_host, n * sizeof(float));
        sdc_nchw_to_nhwc(r->in_host, r->tmp_host, B, C, lh, lw);
        SDC_TRY(be->ops->upload(be, r->x_dev, r->tmp_host, B * n));
        SDC_TRY(sdc_unet_forward(ctx->unet, r->x_dev, B, lh, lw, sdc_sampler_timestep(r->sampler, i), r->ctx,
                                 r->tokens, r->eps_dev));
        SDC_TRY(be->ops->download(be, r->tmp_host, r->eps_dev, B * n));
        sdc_nhwc_to_nchw(r->tmp_host, r->eps_host, B, C, lh, lw);
        if (cfg) { /* uncond + g * (cond - uncond), as diffusers computes it */
            const float g = p->cfg_scale;
            for (size_t k = 0; k < n; k++)
                r->eps_host[k] = r->eps_host[k] + g * (r->eps_host[n + k] - r->eps_host[k]);
        }
        SDC_TRY(sdc_sampler_step(r->sampler, i, r->eps_host, r->x_host, n, rng));
        if (p->on_step) p->on_step(i + 1, steps, sdc_now() - t0, p->user);
    }
    return SDC_OK;
}

static sdc_status generate(sdc_ctx *ctx, const sdc_gen_params *p, sdc_image *out, run *r, sdc_rng *rng) {
    const sdc_model_config *mc = &ctx->model->config;
    const int f = sdc_vae_factor(&mc->vae), lh = p->height / f, lw = p->width / f;
    const int C = mc->unet.in_channels;
    const size_t n = (size_t)C * lh * lw, npx = (size_t)p->width * p->height;
    const bool cfg = p->cfg_scale > 1.0f;
    sdc_sampler_kind kind;
    SDC_TRY(sdc_sampler_parse(p->sampler ? p->sampler : "ddim", &kind));
    sdc_schedule_config sc = schedule_for(ctx, p, kind);
    SDC_TRY(sdc_sampler_create(kind, &sc, p->steps, &r->sampler));

    double t0 = sdc_now();
    SDC_TRY(encode_two(ctx, p, cfg, r));
    out->seconds_encode = sdc_now() - t0;

    r->x_host = malloc(n * sizeof(float));
    r->in_host = malloc(2 * n * sizeof(float));
    r->tmp_host = malloc(2 * n * sizeof(float));
    r->eps_host = malloc(2 * n * sizeof(float));
    r->img_host = malloc(npx * 3 * sizeof(float));
    out->rgb = malloc(npx * 3);
    out->latents = malloc(n * sizeof(float));
    if (!r->x_host || !r->in_host || !r->tmp_host || !r->eps_host || !r->img_host || !out->rgb || !out->latents)
        return sdc_fail(SDC_ERR_OOM, "out of memory for a %dx%d image", p->width, p->height);
    SDC_TRY(ctx->be->ops->alloc(ctx->be, 2 * n, &r->x_dev));
    SDC_TRY(ctx->be->ops->alloc(ctx->be, 2 * n, &r->eps_dev));
    SDC_TRY(ctx->be->ops->alloc(ctx->be, npx * 3, &r->img_dev));

    /* initial noise: torch.randn((1, C, h, w), generator) * init_noise_sigma */
    sdc_rng_randn(rng, r->x_host, n);
    const float sigma0 = sdc_sampler_init_noise_sigma(r->sampler);
    for (size_t k = 0; k < n; k++) r->x_host[k] *= sigma0;

    t0 = sdc_now();
    SDC_TRY(denoise(ctx, p, cfg, lh, lw, r, rng));
    out->seconds_denoise = sdc_now() - t0;
    memcpy(out->latents, r->x_host, n * sizeof(float));

    /* decode latents / scale_factor */
    t0 = sdc_now();
    const float inv = 1.0f / mc->vae.scale_factor;
    for (size_t k = 0; k < n; k++) r->in_host[k] = r->x_host[k] * inv;
    sdc_nchw_to_nhwc(r->in_host, r->tmp_host, 1, C, lh, lw);
    SDC_TRY(ctx->be->ops->upload(ctx->be, r->x_dev, r->tmp_host, n));
    SDC_TRY(sdc_vae_decode(ctx->vae, r->x_dev, lh, lw, r->img_dev));
    SDC_TRY(ctx->be->ops->download(ctx->be, r->img_host, r->img_dev, npx * 3));
    sdc_image_to_u8(r->img_host, p->height, p->width, out->rgb);
    out->seconds_decode = sdc_now() - t0;
    out->width = p->width;
    out->height = p->height;
    out->infotext = infotext(ctx, p, kind);
    if (!out->infotext) return sdc_fail(SDC_ERR_OOM, "out of memory");
    return SDC_OK;
}

sdc_status sdc_txt2img(sdc_ctx *ctx, const sdc_gen_params *p, sdc_image *out) {
    memset(out, 0, sizeof *out);
    SDC_TRY(sdc_check_gen_params(ctx, p));
    sdc_rng rng;
    sdc_rng_seed(&rng, (uint64_t)p->seed);
    run r;
    memset(&r, 0, sizeof r);
    sdc_status st = generate(ctx, p, out, &r, &rng);
    run_free(ctx, &r);
    if (st != SDC_OK) sdc_image_free(out);
    return st;
}

void sdc_image_free(sdc_image *img) {
    if (!img) return;
    free(img->rgb);
    free(img->infotext);
    free(img->latents);
    memset(img, 0, sizeof *img);
}

sdc_status sdc_image_save_png(const sdc_image *img, const char *path) {
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "empty output path");
    return sdc_png_write(path, img->rgb, img->width, img->height, img->infotext);
}
