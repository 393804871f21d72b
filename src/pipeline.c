/* pipeline.c - text to image: prompt -> context, noise -> denoising loop
 * with classifier-free guidance -> VAE decode -> 8-bit image. The same
 * steps, in the same order, as diffusers' StableDiffusionPipeline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/conditioning.h"
#include "context.h"
#include "plan.h"
#include "model/safetensors.h"
#include "image/image.h"
#include "sampling/rng.h"
#include "sampling/scheduler.h"

sdc_gen_params sdc_gen_params_default(void) {
    sdc_gen_params p;
    memset(&p, 0, sizeof p);
    p.width = p.height = 0; /* the model's native size */
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
    int w = p->width, h = p->height; /* 0: the model's size, known once it is loaded */
    if (w == 0) w = ctx ? sdc_native_size(ctx) : 8;
    if (h == 0) h = ctx ? sdc_native_size(ctx) : 8;
    if (w < 8 || h < 8 || w % 8 || h % 8)
        return sdc_fail(SDC_ERR_ARG, "size %dx%d: width and height must be positive multiples of 8 (or 0: the "
                        "model's own size)", p->width, p->height);
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
        if (w % f || h % f)
            return sdc_fail(SDC_ERR_ARG, "size %dx%d: must be a multiple of %d for this model's VAE", w, h, f);
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

/* One image of a batch: its own generator, sampler (multistep samplers
 * keep history) and latents, so a batch gives what single runs give. */
typedef struct job {
    const sdc_gen_params *p;
    sdc_image *out;
    sdc_rng rng;
    sdc_sampler_kind kind;
    sdc_sampler *sampler;
    float *pos, *neg;   /* host conditioning, (chunks * 77, width) each */
    int chunks;         /* after matching negative and positive */
    float *x;           /* (C, h, w) NCHW, host: the first noise, then the final latents */
} job;

/* A group of jobs run through the U-Net together. Everything the loop
 * touches lives in backend memory, in the render's plan (plan.h: these
 * point into its arena): the host sends the context and the first noise
 * (and an ancestral sampler's noise each step) and gets the images back.
 * Latents are NHWC there, as the U-Net takes them. */
typedef struct group_bufs {
    float *ctx;       /* (B, tokens, width): negatives then positives */
    float *x;         /* (m, h, w, C) latents */
    float *in;        /* (B, h, w, C) U-Net input: the scaled latents, twice with guidance */
    float *eps;       /* (B, h, w, C) U-Net output, then guided */
    float *noise;     /* (m, h, w, C) an ancestral step's noise */
    float *x0[2];     /* (m, h, w, C) DPM++'s data predictions, this step's and the last */
    float *host;      /* host staging, (B * max(n, context)) floats */
    float *host2;     /* (n) */
    void *graph;      /* the U-Net's body as a backend graph, replayed each step */
    bool graphs;      /* the backend records graphs and SDC_NO_GRAPHS is not 1 */
} group_bufs;

static void job_free(job *j) {
    free(j->pos), free(j->neg), free(j->x);
    sdc_sampler_free(j->sampler);
}

static void group_free(sdc_ctx *ctx, group_bufs *g) {
    if (g->graph) ctx->be->ops->graph_free(ctx->be, g->graph);
    free(g->host), free(g->host2);
}

/* The job's conditioning: A1111 prompt syntax, the negative padded with
 * empty-prompt windows to the positive's count (or the other way). */
static sdc_status job_encode(sdc_ctx *ctx, job *j, bool cfg) {
    const sdc_gen_params *p = j->p;
    int n_pos = 0, n_neg = 0;
    SDC_TRY(sdc_encode_conditioning(ctx, p->prompt, &j->pos, &n_pos));
    if (cfg) {
        SDC_TRY(sdc_encode_conditioning(ctx, p->negative_prompt ? p->negative_prompt : "", &j->neg, &n_neg));
        SDC_TRY(sdc_conditioning_match(ctx, &j->neg, &n_neg, &j->pos, &n_pos));
    }
    j->chunks = n_pos;
    return SDC_OK;
}

static sdc_status job_start(sdc_ctx *ctx, job *j, size_t n) {
    const sdc_gen_params *p = j->p;
    SDC_TRY(sdc_sampler_parse(p->sampler ? p->sampler : "ddim", &j->kind));
    sdc_schedule_config sc = schedule_for(ctx, p, j->kind);
    SDC_TRY(sdc_sampler_create(j->kind, &sc, p->steps, &j->sampler));
    sdc_rng_seed(&j->rng, (uint64_t)p->seed);
    j->x = malloc(n * sizeof(float));
    if (!j->x) return sdc_fail(SDC_ERR_OOM, "out of memory");
    /* initial noise: torch.randn((1, C, h, w), generator) * init_noise_sigma */
    sdc_rng_randn(&j->rng, j->x, n);
    const float sigma0 = sdc_sampler_init_noise_sigma(j->sampler);
    for (size_t k = 0; k < n; k++) j->x[k] *= sigma0;
    return SDC_OK;
}

/* The U-Net's body for step i. Where the backend has graphs (CUDA), step 0
 * runs it directly, which also grows every scratch buffer to its size;
 * step 1 records it as a graph, and every later step replays that: one
 * launch instead of hundreds. SDC_NO_GRAPHS=1 runs every step directly. */
static sdc_status unet_body(sdc_ctx *ctx, group_bufs *g, int B, int lh, int lw, int i) {
    sdc_backend *be = ctx->be;
    if (i == 0 || !g->graphs)
        return sdc_unet_body(ctx->unet, g->in, B, lh, lw, g->eps);
    if (!g->graph) {
        SDC_TRY(be->ops->capture_begin(be));
        sdc_status st = sdc_unet_body(ctx->unet, g->in, B, lh, lw, g->eps);
        void *graph = NULL;
        sdc_status end = be->ops->capture_end(be, &graph);
        if (st != SDC_OK) {
            if (graph) be->ops->graph_free(be, graph);
            return st;
        }
        SDC_TRY(end);
        g->graph = graph;
    }
    return be->ops->graph_launch(be, g->graph);
}

/* m jobs with the same settings and context length through the U-Net as
 * one batch: [uncond_0 .. uncond_m-1, cond_0 .. cond_m-1] with guidance.
 * The host computes each step's scalars; the backend does the rest. */
static sdc_status denoise_group(sdc_ctx *ctx, job **js, int m, bool cfg, int lh, int lw, group_bufs *g) {
    sdc_backend *be = ctx->be;
    const sdc_backend_ops *op = be->ops;
    const int C = ctx->model->config.unet.in_channels, B = cfg ? 2 * m : m;
    const size_t n = (size_t)C * lh * lw, one = (size_t)js[0]->chunks * SDC_CLIP_CTX * sdc_context_dim(ctx);
    const int tokens = js[0]->chunks * SDC_CLIP_CTX;
    sdc_step_plan plan;
    const bool dpm = js[0]->kind == SDC_SAMPLER_DPMPP_2M;
    const int steps = sdc_sampler_steps(js[0]->sampler);
    /* every buffer from here to the decoded image: laid out once per shape */
    const sdc_plan *pl = NULL;
    SDC_TRY(sdc_plan_render(ctx, B, m, lh, lw, tokens, steps, &pl));
    g->ctx = pl->ctx, g->x = pl->x, g->in = pl->in, g->eps = pl->eps, g->noise = pl->noise;
    g->x0[0] = pl->x0[0], g->x0[1] = pl->x0[1];
    g->host = malloc((size_t)B * (n > one ? n : one) * sizeof(float));
    g->host2 = malloc(n * sizeof(float));
    if (!g->host || !g->host2) return sdc_fail(SDC_ERR_OOM, "out of memory");
    /* the context, once: the U-Net keeps its cross-attention keys and values */
    for (int j = 0; j < m; j++) {
        if (cfg) memcpy(g->host + (size_t)j * one, js[j]->neg, one * sizeof(float));
        memcpy(g->host + (size_t)(cfg ? m + j : j) * one, js[j]->pos, one * sizeof(float));
    }
    SDC_TRY(op->upload(be, g->ctx, g->host, (size_t)B * one));
    SDC_TRY(sdc_unet_set_context(ctx->unet, g->ctx, B, tokens));
    /* the first noise, NHWC */
    for (int j = 0; j < m; j++) sdc_nchw_to_nhwc(js[j]->x, g->host + (size_t)j * n, 1, C, lh, lw);
    SDC_TRY(op->upload_async(be, g->x, g->host, (size_t)m * n));
    const sdc_gen_params *p0 = js[0]->p;
    const char *no_graphs = getenv("SDC_NO_GRAPHS");
    g->graphs = op->capture_begin && !(no_graphs && !strcmp(no_graphs, "1"));
    /* the time embeddings of the whole schedule, once */
    double *ts = malloc((size_t)steps * sizeof *ts);
    if (!ts) return sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int i = 0; i < steps; i++) ts[i] = sdc_sampler_timestep(js[0]->sampler, i);
    sdc_status st_sched = sdc_unet_set_schedule(ctx->unet, B, lh, lw, ts, steps);
    free(ts);
    SDC_TRY(st_sched);
    double t0 = sdc_now();
    for (int i = 0; i < steps; i++) {
        for (int j = 0; j < m; j++) { /* the same scaled input for both halves */
            float d;
            float *xj = g->x + (size_t)j * n, *in = g->in + (size_t)j * n;
            if (sdc_sampler_input_divisor(js[j]->sampler, i, &d)) SDC_TRY(op->scale(be, in, xj, d, true, n));
            else SDC_TRY(op->copy(be, SDC_F32(in), SDC_F32(xj), n));
            if (cfg) SDC_TRY(op->copy(be, SDC_F32(g->in + (size_t)(m + j) * n), SDC_F32(in), n));
        }
        SDC_TRY(sdc_unet_prepare_step(ctx->unet, B, lh, lw, i));
        SDC_TRY(unet_body(ctx, g, B, lh, lw, i));
        bool noise = false;
        for (int j = 0; j < m; j++) {
            float *e = g->eps + (size_t)j * n, *xj = g->x + (size_t)j * n;
            if (cfg) /* uncond + g * (cond - uncond), as diffusers computes it */
                SDC_TRY(op->guidance(be, e, e, g->eps + (size_t)(m + j) * n, js[j]->p->cfg_scale, n));
            SDC_TRY(sdc_sampler_plan(js[j]->sampler, i, &plan));
            SDC_TRY(op->latent_update(be, &plan.update, xj, e, dpm ? g->x0[0] + (size_t)j * n : NULL,
                                      dpm ? g->x0[1] + (size_t)j * n : NULL, n));
            if (plan.noise) { /* drawn in NCHW order, as torch draws it */
                sdc_rng_randn(&js[j]->rng, g->host2, n);
                sdc_nchw_to_nhwc(g->host2, g->host + (size_t)j * n, 1, C, lh, lw);
                noise = true;
            }
        }
        if (noise) {
            SDC_TRY(op->upload_async(be, g->noise, g->host, (size_t)m * n));
            SDC_TRY(op->axpy(be, g->x, plan.noise_scale, g->noise, (size_t)m * n));
        }
        if (dpm) {
            float *t = g->x0[0];
            g->x0[0] = g->x0[1], g->x0[1] = t;
        }
        if (p0->on_step) p0->on_step(i + 1, steps, sdc_now() - t0, p0->user);
        if (p0->should_stop && i + 1 < steps && p0->should_stop(i + 1, steps, p0->user)) break;
    }
    /* the steps are queued on an asynchronous backend: wait for them, so
     * the denoise time is the steps' own */
    return op->sync ? op->sync(be) : SDC_OK;
}

/* A network that overflowed its half type leaves inf or NaN behind, which
 * would become a black or noisy image: an error saying which network and
 * what to try instead (in fp32 the model itself is at fault). */
static sdc_status not_finite(const char *net, const char *what, sdc_dtype act, const char *option) {
    if (act == SDC_DT_F32)
        return sdc_fail(SDC_ERR_BACKEND, "the %s gave non-finite %s in F32: the model's weights overflow", net, what);
    return sdc_fail(SDC_ERR_BACKEND, "the %s gave non-finite %s: it overflowed %s; try %s bf16 or fp32", net, what,
                    sdc_dtype_name(act), option);
}

static sdc_status check_finite(const sdc_ctx *ctx, const float *lat, size_t n, const float *img, size_t m) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(lat[i])) return not_finite("U-Net", "latents", ctx->unet->act, "--precision");
    for (size_t i = 0; i < m; i++)
        if (!isfinite(img[i])) return not_finite("VAE decoder", "pixels", ctx->vae->act, "--vae-precision");
    return SDC_OK;
}

/* latents / scale_factor -> VAE -> 8-bit image, one image at a time; the
 * final latents come back with the image (sdc_image.latents). */
static sdc_status job_decode(sdc_ctx *ctx, job *j, const float *x_dev, int lh, int lw) {
    const sdc_model_config *mc = &ctx->model->config;
    const sdc_gen_params *p = j->p;
    const int C = mc->unet.in_channels;
    const size_t n = (size_t)C * lh * lw, npx = (size_t)p->width * p->height;
    sdc_backend *be = ctx->be;
    sdc_image *out = j->out;
    float *img = malloc(npx * 3 * sizeof(float)), *lat = malloc(n * sizeof(float));
    float *z_dev = ctx->plan->z, *img_dev = ctx->plan->img; /* the render's plan */
    out->rgb = malloc(npx * 3);
    out->latents = malloc(n * sizeof(float));
    sdc_status st = (img && lat && out->rgb && out->latents)
                        ? SDC_OK
                        : sdc_fail(SDC_ERR_OOM, "out of memory for a %dx%d image", p->width, p->height);
    if (st == SDC_OK) st = be->ops->scale(be, z_dev, x_dev, 1.0f / mc->vae.scale_factor, false, n);
    if (st == SDC_OK) st = sdc_vae_decode(ctx->vae, z_dev, lh, lw, img_dev);
    if (st == SDC_OK) st = be->ops->download(be, img, img_dev, npx * 3);
    if (st == SDC_OK) st = be->ops->download(be, lat, x_dev, n);
    if (st == SDC_OK) st = check_finite(ctx, lat, n, img, npx * 3);
    if (st == SDC_OK) {
        sdc_nhwc_to_nchw(lat, out->latents, 1, C, lh, lw);
        sdc_image_to_u8(img, p->height, p->width, out->rgb);
        out->width = p->width;
        out->height = p->height;
        out->infotext = infotext(ctx, p, j->kind);
        if (!out->infotext) st = sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    free(img), free(lat);
    return st;
}

static bool same_run(const sdc_gen_params *a, const sdc_gen_params *b) {
    const char *sa = a->sampler ? a->sampler : "ddim", *sb = b->sampler ? b->sampler : "ddim";
    const char *pa = a->spacing ? a->spacing : "", *pb = b->spacing ? b->spacing : "";
    return a->width == b->width && a->height == b->height && a->steps == b->steps && !strcmp(sa, sb) &&
           a->karras == b->karras && !strcmp(pa, pb) && a->eta == b->eta;
}

static sdc_status batch(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_image *out, job *js) {
    if (n < 1 || n > 4096) return sdc_fail(SDC_ERR_ARG, "batch of %d jobs: expected 1 to 4096", n);
    const sdc_model_config *mc = &ctx->model->config;
    const int f = sdc_vae_factor(&mc->vae), lh = jobs[0].height / f, lw = jobs[0].width / f;
    const size_t nl = (size_t)mc->unet.in_channels * lh * lw;
    for (int i = 0; i < n; i++) {
        SDC_TRY(sdc_check_gen_params(ctx, &jobs[i]));
        if (!same_run(&jobs[0], &jobs[i]))
            return sdc_fail(SDC_ERR_ARG, "batch job %d: size, steps, sampler, Karras, spacing and eta must "
                            "match job 0's", i);
        js[i].p = &jobs[i];
        js[i].out = &out[i];
    }
    double t0 = sdc_now();
    for (int i = 0; i < n; i++) {
        SDC_TRY(job_encode(ctx, &js[i], jobs[i].cfg_scale > 1.0f));
        SDC_TRY(job_start(ctx, &js[i], nl));
    }
    const double t_encode = (sdc_now() - t0) / n;
    /* run together the jobs that share guidance on/off and context length */
    job **grp = malloc((size_t)n * sizeof *grp);
    bool *done = calloc((size_t)n, sizeof *done);
    sdc_status st = grp && done ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int i = 0; st == SDC_OK && i < n; i++) {
        if (done[i]) continue;
        const bool cfg = jobs[i].cfg_scale > 1.0f;
        int m = 0;
        for (int k = i; k < n; k++)
            if (!done[k] && (jobs[k].cfg_scale > 1.0f) == cfg && js[k].chunks == js[i].chunks) {
                grp[m++] = &js[k];
                done[k] = true;
            }
        group_bufs g;
        memset(&g, 0, sizeof g);
        t0 = sdc_now();
        st = denoise_group(ctx, grp, m, cfg, lh, lw, &g);
        const double t_denoise = (sdc_now() - t0) / m;
        for (int k = 0; st == SDC_OK && k < m; k++) {
            t0 = sdc_now();
            st = job_decode(ctx, grp[k], g.x + (size_t)k * nl, lh, lw);
            grp[k]->out->seconds_encode = t_encode;
            grp[k]->out->seconds_denoise = t_denoise;
            grp[k]->out->seconds_decode = sdc_now() - t0;
        }
        group_free(ctx, &g);
    }
    free(grp), free(done);
    return st;
}

sdc_status sdc_txt2img_batch(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_image *out) {
    if (!ctx || !jobs || !out || n < 1) return sdc_fail(SDC_ERR_ARG, "sdc_txt2img_batch: bad arguments");
    memset(out, 0, (size_t)n * sizeof *out);
    job *js = calloc((size_t)n, sizeof *js);
    sdc_gen_params *ps = malloc((size_t)n * sizeof *ps);
    if (!js || !ps) {
        free(js);
        free(ps);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < n; i++) { /* 0 x 0: the model's own size */
        ps[i] = jobs[i];
        if (!ps[i].width) ps[i].width = sdc_native_size(ctx);
        if (!ps[i].height) ps[i].height = sdc_native_size(ctx);
    }
    sdc_status st = batch(ctx, ps, n, out, js);
    for (int i = 0; i < n; i++) job_free(&js[i]);
    free(js);
    free(ps);
    if (st != SDC_OK)
        for (int i = 0; i < n; i++) sdc_image_free(&out[i]);
    return st;
}

sdc_status sdc_txt2img(sdc_ctx *ctx, const sdc_gen_params *p, sdc_image *out) {
    return sdc_txt2img_batch(ctx, p, 1, out);
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
