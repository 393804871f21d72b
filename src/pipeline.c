/* pipeline.c - text to image: prompt -> context, noise -> denoising loop
 * with classifier-free guidance -> VAE decode -> 8-bit image. The same
 * steps, in the same order, as diffusers' StableDiffusionPipeline. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/conditioning.h"
#include "context.h"
#include "init_image.h"
#include "lora_apply.h"
#include "plan.h"
#include "preview.h"
#include "nets/vae_tiled.h"
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
    p.strength = 0.75;
    p.inpaint_fill = 1;
    p.inpaint_full_res_padding = 32;
    p.preview_every = 1;
    return p;
}

static sdc_status parse_spacing(const char *name, sdc_spacing *out) {
    if (!strcmp(name, "leading")) *out = SDC_SPACING_LEADING;
    else if (!strcmp(name, "trailing")) *out = SDC_SPACING_TRAILING;
    else if (!strcmp(name, "linspace")) *out = SDC_SPACING_LINSPACE;
    else return sdc_fail(SDC_ERR_ARG, "timestep spacing '%s': expected leading, trailing or linspace", name);
    return SDC_OK;
}

/* Image to image and inpainting settings (sdc_init_inputs_make checks the
 * images themselves). */
static sdc_status check_init(const sdc_ctx *ctx, const sdc_gen_params *p) {
    if (!p->init_rgb) return sdc_fail(SDC_ERR_ARG, "a mask without an init image: inpainting needs both");
    if (!(p->strength > 0.0) || p->strength > 1.0)
        return sdc_fail(SDC_ERR_ARG, "strength %g: expected more than 0 and at most 1", p->strength);
    if (sdc_sampler_first_step(p->steps, p->strength, p->a1111_steps) < 0)
        return sdc_fail(SDC_ERR_ARG, "strength %g of %d steps runs no step (int(steps * strength) is 0): raise "
                        "the strength or the steps", p->strength, p->steps);
    if (p->resize_mode < 0 || p->resize_mode > 2)
        return sdc_fail(SDC_ERR_ARG, "resize mode %d: expected 0 (just resize), 1 (crop and resize) or 2 "
                        "(resize and fill)", p->resize_mode);
    if (p->init_width < 1 || p->init_height < 1 || p->init_width > SDC_INIT_MAX_SIDE ||
        p->init_height > SDC_INIT_MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "init image %dx%d: expected 1 to %d pixels a side", p->init_width,
                        p->init_height, SDC_INIT_MAX_SIDE);
    if (p->mask && (p->mask_width < 1 || p->mask_height < 1 || p->mask_width > SDC_INIT_MAX_SIDE ||
                    p->mask_height > SDC_INIT_MAX_SIDE))
        return sdc_fail(SDC_ERR_ARG, "mask %dx%d: expected 1 to %d pixels a side", p->mask_width, p->mask_height,
                        SDC_INIT_MAX_SIDE);
    if (p->mask_blur < 0 || p->mask_blur > 64)
        return sdc_fail(SDC_ERR_ARG, "mask blur %d: expected 0 to 64 pixels", p->mask_blur);
    if (p->inpaint_fill < 0 || p->inpaint_fill > 3)
        return sdc_fail(SDC_ERR_ARG, "inpaint fill %d: expected 0 (fill), 1 (original), 2 (latent noise) or 3 "
                        "(latent nothing)", p->inpaint_fill);
    if (p->inpaint_full_res_padding < 0 || p->inpaint_full_res_padding > 1024)
        return sdc_fail(SDC_ERR_ARG, "only-masked padding %d: expected 0 to 1024 pixels",
                        p->inpaint_full_res_padding);
    if (ctx && !ctx->vae->enc)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "image to image needs the VAE's encoder, and this model's file has "
                        "none");
    return SDC_OK;
}

/* The VAE tiling's settings; the tile's multiple once the model is known. */
static int vae_tile(const sdc_gen_params *p) { return p->vae_tile_size ? p->vae_tile_size : SDC_VAE_TILE_DEFAULT; }

static sdc_status check_tiling(const sdc_ctx *ctx, const sdc_gen_params *p) {
    if (p->vae_tiling < SDC_VAE_TILING_AUTO || p->vae_tiling > SDC_VAE_TILING_ON)
        return sdc_fail(SDC_ERR_ARG, "VAE tiling %d: expected auto (0), off (1) or on (2)", (int)p->vae_tiling);
    if (p->vae_tile_size && (p->vae_tile_size < 8 || p->vae_tile_size > SDC_VAE_TILE_MAX || p->vae_tile_size % 8))
        return sdc_fail(SDC_ERR_ARG, "VAE tile of %d pixels: expected a multiple of 8 from 8 to %d (or 0: %d)",
                        p->vae_tile_size, SDC_VAE_TILE_MAX, SDC_VAE_TILE_DEFAULT);
    if (ctx && (p->vae_tile_size || p->vae_tiling == SDC_VAE_TILING_ON))
        return sdc_vae_tile_check(&ctx->model->config.vae, vae_tile(p));
    return SDC_OK;
}

/* SDXL's options: on an SDXL model only; sizes within reason. */
static sdc_status check_sdxl(const sdc_ctx *ctx, const sdc_gen_params *p) {
    const int v[6] = {p->original_width, p->original_height, p->crop_left, p->crop_top, p->target_width,
                      p->target_height};
    static const char *const name[6] = {"original width", "original height", "crop left", "crop top",
                                        "target width", "target height"};
    bool any = p->prompt_2 || p->negative_prompt_2 || p->encode_empty_negative;
    for (int i = 0; i < 6; i++) {
        if (v[i] < 0 || v[i] > 4 * SDC_LIMIT_IMAGE)
            return sdc_fail(SDC_ERR_ARG, "%s %d: expected 0 (the default) to %d pixels", name[i], v[i],
                            4 * SDC_LIMIT_IMAGE);
        any |= v[i] != 0;
    }
    if ((p->original_width > 0) != (p->original_height > 0) || (p->target_width > 0) != (p->target_height > 0))
        return sdc_fail(SDC_ERR_ARG, "an original or target size needs both its width and its height");
    if (any && ctx && ctx->model->config.family != SDC_FAMILY_SDXL)
        return sdc_fail(SDC_ERR_ARG, "a second prompt, size conditioning and --encode-empty-negative are for SDXL "
                        "models; this is an %s model", sdc_family_name(ctx->model->config.family));
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
    if (p->init_rgb || p->mask) SDC_TRY(check_init(ctx, p));
    SDC_TRY(check_sdxl(ctx, p));
    SDC_TRY(sdc_preview_check(ctx, p));
    SDC_TRY(check_tiling(ctx, p));
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

/* printf onto a growing string; false when out of memory */
static bool str_addf(char **s, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool str_addf(char **s, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *np = n >= 0 ? realloc(*s, *len + (size_t)n + 1) : NULL;
    if (!np) return false;
    va_start(ap, fmt);
    vsnprintf(np + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *s = np;
    *len += (size_t)n;
    return true;
}

/* A1111's quote() of an infotext value: JSON when it has ',', ':' or a
 * line break (the hashes lists always do). */
static bool str_add_quoted(char **s, size_t *len, const char *v) {
    bool ok = str_addf(s, len, "\"");
    for (const unsigned char *c = (const unsigned char *)v; ok && *c; c++) {
        const char *esc = *c == '"' ? "\\\"" : *c == '\\' ? "\\\\" : *c == '\n' ? "\\n" : *c == '\r' ? "\\r"
                        : *c == '\t' ? "\\t" : *c == '\b' ? "\\b" : *c == '\f' ? "\\f" : NULL;
        ok = esc ? str_addf(s, len, "%s", esc) : *c < 0x20 ? str_addf(s, len, "\\u%04x", *c) : str_addf(s, len, "%c", *c);
    }
    return ok && str_addf(s, len, "\"");
}

/* info_prompt: the prompt as the user wrote it (tags kept, --lora files
 * added as tags); loras: A1111's Lora hashes value or NULL. */
static char *infotext(sdc_ctx *ctx, const sdc_gen_params *p, sdc_sampler_kind kind, const char *info_prompt,
                      const char *loras) {
    if (!ctx->model_hash[0]) {
        const char *file = ctx->model->single ? ctx->model->single->path : ctx->model->unet_file->path;
        if (sdc_file_sha256_short(file, ctx->model_hash) != SDC_OK) ctx->model_hash[0] = '\0';
    }
    const char *vae = ctx->params.vae_path, *vae_name = NULL;
    if (vae) {
        vae_name = strrchr(vae, '/') ? strrchr(vae, '/') + 1 : vae;
        if (!ctx->vae_hash[0] && sdc_file_sha256_short(vae, ctx->vae_hash) != SDC_OK) ctx->vae_hash[0] = '\0';
    }
    char *extra = NULL;
    size_t len = 0;
    bool ok = str_addf(&extra, &len, "%s", "");
#define SEP (len ? ", " : "")
    if (ok && p->eta > 0.0f) ok = str_addf(&extra, &len, "%sEta DDIM: %g", SEP, (double)p->eta);
    if (ok && p->init_rgb) { /* the strength as Python prints it: 0.6, 1.0 */
        char num[40];
        sdc_py_float_repr(p->strength, false, num, sizeof num);
        ok = str_addf(&extra, &len, "%sDenoising strength: %s", SEP, num);
    }
    if (ok && ctx->params.clip_skip > 1) ok = str_addf(&extra, &len, "%sClip skip: %d", SEP, ctx->params.clip_skip);
    if (ok && p->mask && p->mask_blur > 0) ok = str_addf(&extra, &len, "%sMask blur: %d", SEP, p->mask_blur);
    static const char *const FILL[] = {"fill", "original", "latent noise", "latent nothing"};
    if (ok && p->mask && p->inpaint_fill != 1 && p->inpaint_fill >= 0 && p->inpaint_fill <= 3)
        ok = str_addf(&extra, &len, "%sMasked content: %s", SEP, FILL[p->inpaint_fill]);
    if (ok && p->mask && p->inpaint_full_res)
        ok = str_addf(&extra, &len, "%sInpaint area: Only masked, Masked area padding: %d", SEP,
                      p->inpaint_full_res_padding);
    if (ok && loras) ok = str_addf(&extra, &len, "%sLora hashes: ", SEP) && str_add_quoted(&extra, &len, loras);
    const char *prompts[2] = {p->prompt, p->negative_prompt};
    char *ti = sdc_ti_hashes(ctx, prompts, 2);
    if (ok && ti) ok = str_addf(&extra, &len, "%sTI hashes: ", SEP) && str_add_quoted(&extra, &len, ti);
    free(ti);
    if (ok) ok = str_addf(&extra, &len, "%sVersion: sdc", SEP);
#undef SEP
    if (!ok) {
        free(extra);
        return NULL;
    }
    sdc_infotext t = {
        .prompt = info_prompt,
        .negative_prompt = p->negative_prompt,
        .steps = p->steps,
        .sampler = sdc_sampler_display_name(kind),
        .cfg_scale = p->cfg_scale,
        .seed = p->seed,
        .width = p->width,
        .height = p->height,
        .model_hash = ctx->model_hash[0] ? ctx->model_hash : NULL,
        .model_name = ctx->model_name,
        .vae_hash = ctx->vae_hash[0] ? ctx->vae_hash : NULL,
        .vae_name = vae_name,
        .extra = extra,
        .schedule_type = p->karras ? "Karras" : NULL,
    };
    char *r = sdc_infotext_format(&t);
    free(extra);
    return r;
}

/* One image of a batch: its own generator, sampler (multistep samplers
 * keep history) and latents, so a batch gives what single runs give. */
typedef struct job {
    const sdc_gen_params *p;        /* its prompt without <lora:...> tags */
    const char *info_prompt;        /* the prompt the infotext gives */
    const char *lora_hashes;        /* "name: hash, ..." or NULL */
    sdc_image *out;
    sdc_rng rng;
    sdc_sampler_kind kind;
    sdc_sampler *sampler;
    sdc_cond pos, neg;  /* host conditioning, (chunks * 77, width) each (+ SDXL's pooled) */
    int chunks;         /* after matching negative and positive */
    double time_ids[6]; /* SDXL: original (h, w), crop (top, left), target (h, w) */
    float *x;           /* (C, h, w) NCHW, host: the first noise, then the final latents */
    /* image to image and inpainting */
    sdc_init_inputs in; /* the init image and mask at the output size */
    int first;          /* the first step that runs (0 without an init image) */
    float *keep;        /* (h, w, C) a regular model's inpainting: the image's latents, kept outside the mask */
    float *keep_noise;  /* (h, w, C) the first noise, which re-noises `keep` to each step's level */
    float *lmask;       /* (h, w) the latent mask, 0 or 1 */
    float *cond;        /* (h, w, Cin - C) an inpainting U-Net's extra input: the mask, the masked image's latents */
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
    sdc_cond_free(&j->pos), sdc_cond_free(&j->neg), free(j->x);
    free(j->keep), free(j->keep_noise), free(j->lmask), free(j->cond);
    sdc_init_inputs_free(&j->in);
    sdc_sampler_free(j->sampler);
}

static void group_free(sdc_ctx *ctx, group_bufs *g) {
    if (g->graph) ctx->be->ops->graph_free(ctx->be, g->graph);
    free(g->host), free(g->host2);
}

/* The job's conditioning: A1111 prompt syntax, the negative padded with
 * empty-prompt windows to the positive's count (or the other way). SDXL:
 * an empty negative is zeros (force_zeros_for_empty_prompt), padded with
 * zeros; the size conditioning's defaults filled in. */
static sdc_status job_encode(sdc_ctx *ctx, job *j, bool cfg) {
    const sdc_gen_params *p = j->p;
    SDC_TRY(sdc_encode_cond(ctx, p->prompt, p->prompt_2, &j->pos));
    if (cfg) {
        const char *neg = p->negative_prompt ? p->negative_prompt : "";
        const char *neg2 = p->negative_prompt_2;
        const bool zeros = ctx->te2 && ctx->model->config.zero_empty_negative && !p->encode_empty_negative &&
                           !*neg && (!neg2 || !*neg2);
        if (zeros) SDC_TRY(sdc_cond_zeros(ctx, 1, &j->neg));
        else SDC_TRY(sdc_encode_cond(ctx, neg, neg2, &j->neg));
        SDC_TRY(sdc_cond_match(ctx, &j->neg, zeros, &j->pos));
    }
    j->chunks = j->pos.chunks;
    const double v[6] = {p->original_height, p->original_width, p->crop_top, p->crop_left, p->target_height,
                         p->target_width};
    const double dflt[6] = {p->height, p->width, 0, 0, p->height, p->width};
    for (int i = 0; i < 6; i++) j->time_ids[i] = v[i] > 0 ? v[i] : dflt[i];
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
    if (p->init_rgb) { /* the noise comes after the image's latents (job_init_latents) */
        j->first = sdc_sampler_first_step(p->steps, p->strength, p->a1111_steps);
        sdc_sampler_begin(j->sampler, j->first);
        return sdc_init_inputs_make(p, p->width, p->height, &j->in);
    }
    /* initial noise: torch.randn((1, C, h, w), generator) * init_noise_sigma */
    sdc_rng_randn(&j->rng, j->x, n);
    const float sigma0 = sdc_sampler_init_noise_sigma(j->sampler);
    for (size_t k = 0; k < n; k++) j->x[k] *= sigma0;
    return SDC_OK;
}

static sdc_status not_finite(const char *net, const char *what, sdc_dtype act, const char *option);

/* pixels (H, W, 3) host -> the VAE's encoder in the render's plan -> a
 * sample of the latent distribution with the job's generator (the draw
 * diffusers' retrieve_latents makes), times the scale factor: out (C, h, w)
 * NCHW host. mom: 2n floats of host scratch, eps: n. */
static sdc_status encode_sample(sdc_ctx *ctx, const sdc_plan *pl, job *j, const float *pixels, int lh, int lw,
                                float *mom, float *eps, float *out) {
    sdc_backend *be = ctx->be;
    const sdc_vae_config *vc = &ctx->model->config.vae;
    const int C = vc->z_channels, f = sdc_vae_factor(vc);
    const size_t n = (size_t)C * lh * lw;
    if (pl->tile) { /* tile by tile through the plan's tile buffers */
        SDC_TRY(sdc_vae_encode_tiled(ctx->vae, pl->tile, pixels, lh * f, lw * f, mom,
                                     (sdc_vae_tile_bufs){pl->mom, pl->img}));
    } else {
        SDC_TRY(be->ops->upload(be, pl->img, pixels, (size_t)lh * f * lw * f * 3));
        SDC_TRY(sdc_vae_encode_moments(ctx->vae, pl->img, lh * f, lw * f, pl->mom));
        SDC_TRY(be->ops->download(be, mom, pl->mom, 2 * n));
    }
    for (size_t i = 0; i < 2 * n; i++)
        if (!isfinite(mom[i])) return not_finite("VAE encoder", "latents", ctx->vae->act, "--vae-precision");
    sdc_rng_randn(&j->rng, eps, n);
    sdc_latent_sample(mom, eps, C, lh, lw, vc->scale_factor, out);
    return SDC_OK;
}

/* The first latents of an image-to-image or inpainting job, drawn from its
 * generator in the order diffusers' pipelines draw: the image's latent
 * sample (img2img; inpainting unless an inpainting U-Net starts from pure
 * noise), the noise, then the masked image's sample (inpainting). A
 * regular model's inpainting keeps the image's latents and the noise for
 * the steps; an inpainting U-Net gets the mask and the masked image's
 * latents as input (with no mask, AUTOMATIC1111's: all masked, a grey
 * image). j->x (NCHW) gets the latents the first step starts from. */
static sdc_status job_init_latents(sdc_ctx *ctx, const sdc_plan *pl, job *j, int lh, int lw) {
    const sdc_gen_params *p = j->p;
    const sdc_model_config *mc = &ctx->model->config;
    const int C = mc->vae.z_channels, Cin = mc->unet.in_channels, f = sdc_vae_factor(&mc->vae);
    const bool inpaint9 = Cin == 2 * C + 1, init = j->in.image != NULL, mask = j->in.mask != NULL;
    if (!init && !inpaint9) return SDC_OK;
    const size_t px = (size_t)lh * lw, n = (size_t)C * px, npx = px * f * f;
    float *mom = malloc(2 * n * sizeof(float)), *eps = malloc(n * sizeof(float));
    float *lat = malloc(n * sizeof(float)), *noise = malloc(n * sizeof(float)), *mlat = malloc(n * sizeof(float));
    float *grey = NULL;
    j->lmask = malloc(px * sizeof(float));
    sdc_status st = mom && eps && lat && noise && mlat && j->lmask ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK && init) {
        const bool strength_max = p->strength == 1.0;
        if (mask) sdc_mask_to_latent(j->in.mask, p->height, p->width, j->lmask, lh, lw);
        if (!mask || !inpaint9 || !strength_max) st = encode_sample(ctx, pl, j, j->in.image, lh, lw, mom, eps, lat);
        if (st == SDC_OK && mask && (p->inpaint_fill == 2 || p->inpaint_fill == 3)) {
            /* AUTOMATIC1111's masked content: latent noise (normals from the
             * job's generator) or latent nothing (zeros) inside the mask */
            if (p->inpaint_fill == 2) sdc_rng_randn(&j->rng, eps, n);
            for (int c = 0; c < C; c++)
                for (size_t k = 0; k < px; k++)
                    if (j->lmask[k] > 0.5f) lat[(size_t)c * px + k] = p->inpaint_fill == 2 ? eps[(size_t)c * px + k] : 0;
        }
        if (st == SDC_OK) {
            sdc_rng_randn(&j->rng, noise, n);
            if (mask && strength_max) /* the inpainting pipeline starts from pure noise at strength 1 */
                for (size_t i = 0; i < n; i++) j->x[i] = noise[i] * sdc_sampler_init_noise_sigma(j->sampler);
            else
                st = sdc_sampler_add_noise(j->sampler, j->first, lat, noise, j->x, n);
        }
        if (st == SDC_OK && mask && !inpaint9) {
            j->keep = malloc(n * sizeof(float));
            j->keep_noise = malloc(n * sizeof(float));
            if (!j->keep || !j->keep_noise) st = sdc_fail(SDC_ERR_OOM, "out of memory");
            if (st == SDC_OK) {
                sdc_nchw_to_nhwc(lat, j->keep, 1, C, lh, lw);
                sdc_nchw_to_nhwc(noise, j->keep_noise, 1, C, lh, lw);
            }
        }
        /* prepare_mask_latents encodes the masked image whatever the U-Net */
        if (st == SDC_OK && mask) st = encode_sample(ctx, pl, j, j->in.masked, lh, lw, mom, eps, mlat);
    }
    if (st == SDC_OK && inpaint9 && !mask) { /* all masked: a grey image (0 in [-1, 1]) */
        grey = calloc(npx * 3, sizeof(float));
        st = grey ? encode_sample(ctx, pl, j, grey, lh, lw, mom, eps, mlat) : sdc_fail(SDC_ERR_OOM, "out of memory");
        for (size_t i = 0; st == SDC_OK && i < px; i++) j->lmask[i] = 1.0f;
    }
    if (st == SDC_OK && inpaint9) { /* (h, w, 1 + C): the mask, then the masked image's latents */
        j->cond = malloc(px * (size_t)(Cin - C) * sizeof(float));
        if (!j->cond) st = sdc_fail(SDC_ERR_OOM, "out of memory");
        for (size_t i = 0; st == SDC_OK && i < px; i++) {
            j->cond[i * (Cin - C)] = j->lmask[i];
            for (int c = 0; c < C; c++) j->cond[i * (Cin - C) + 1 + c] = mlat[(size_t)c * px + i];
        }
    }
    free(mom), free(eps), free(lat), free(noise), free(mlat), free(grey);
    return st;
}

/* A regular model's inpainting after step i: the image's latents, noised to
 * the next step's level (as they are after the last), outside the mask:
 * x = (1 - m) keep_i + m x, on the host (the latents are small). */
static sdc_status keep_unmasked(sdc_ctx *ctx, job *j, float *x_dev, int i, int lh, int lw, float *tmp, float *tmp2) {
    sdc_backend *be = ctx->be;
    const int C = ctx->model->config.vae.z_channels, steps = sdc_sampler_steps(j->sampler);
    const size_t px = (size_t)lh * lw, n = (size_t)C * px;
    SDC_TRY(be->ops->download(be, tmp, x_dev, n));
    if (i < steps - 1) SDC_TRY(sdc_sampler_add_noise(j->sampler, i + 1, j->keep, j->keep_noise, tmp2, n));
    else memcpy(tmp2, j->keep, n * sizeof(float));
    for (size_t k = 0; k < px; k++) {
        const float m = j->lmask[k];
        for (int c = 0; c < C; c++) tmp[k * C + c] = (1.0f - m) * tmp2[k * C + c] + m * tmp[k * C + c];
    }
    return be->ops->upload(be, x_dev, tmp, n);
}

/* The U-Net's body for step i. Where the backend has graphs (CUDA), the first step
 * runs it directly, which also grows every scratch buffer to its size;
 * step 1 records it as a graph, and every later step replays that: one
 * launch instead of hundreds. SDC_NO_GRAPHS=1 runs every step directly. */
static sdc_status unet_body(sdc_ctx *ctx, group_bufs *g, int B, int lh, int lw, int i, int first) {
    sdc_backend *be = ctx->be;
    if (i == first || !g->graphs)
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

/* SDXL: each row's pooled text embedding and size conditioning, in the
 * context's row order (host: staging of at least B * pooled width floats) */
static sdc_status set_added(sdc_ctx *ctx, job **js, int m, bool cfg, float *host) {
    const int P = ctx->te2->cfg.proj, B = cfg ? 2 * m : m;
    double *t = malloc((size_t)B * 6 * sizeof *t);
    if (!t) return sdc_fail(SDC_ERR_OOM, "out of memory");
    for (int j = 0; j < m; j++)
        for (int half = 0; half < (cfg ? 2 : 1); half++) {
            const int row = cfg && half == 1 ? m + j : j;
            const sdc_cond *c = cfg && half == 0 ? &js[j]->neg : &js[j]->pos;
            memcpy(host + (size_t)row * P, c->pooled, (size_t)P * sizeof(float));
            memcpy(t + (size_t)row * 6, js[j]->time_ids, 6 * sizeof(double));
        }
    sdc_status st = sdc_unet_set_added(ctx->unet, host, t, B);
    free(t);
    return st;
}

/* m jobs with the same settings and context length through the U-Net as
 * one batch: [uncond_0 .. uncond_m-1, cond_0 .. cond_m-1] with guidance.
 * The host computes each step's scalars; the backend does the rest. */
static sdc_status denoise_group(sdc_ctx *ctx, job **js, int m, bool cfg, int lh, int lw, group_bufs *g) {
    sdc_backend *be = ctx->be;
    const sdc_backend_ops *op = be->ops;
    const int C = ctx->model->config.vae.z_channels, Cin = ctx->model->config.unet.in_channels, B = cfg ? 2 * m : m;
    const size_t px = (size_t)lh * lw, n = (size_t)C * px, nin = (size_t)Cin * px;
    const size_t one = (size_t)js[0]->chunks * SDC_CLIP_CTX * sdc_context_dim(ctx);
    const int first = js[0]->first; /* the group's jobs share their steps and strength */
    const int tokens = js[0]->chunks * SDC_CLIP_CTX;
    sdc_step_plan plan;
    const bool dpm = js[0]->kind == SDC_SAMPLER_DPMPP_2M;
    const int steps = sdc_sampler_steps(js[0]->sampler);
    /* every buffer from here to the decoded image: laid out once per shape */
    const sdc_plan *pl = NULL;
    bool encode = Cin != C;
    for (int j = 0; j < m; j++) encode = encode || js[j]->in.image;
    SDC_TRY(sdc_plan_render(ctx, B, m, lh, lw, tokens, steps, encode, js[0]->p->vae_tiling, vae_tile(js[0]->p), &pl));
    g->ctx = pl->ctx, g->x = pl->x, g->in = pl->in, g->eps = pl->eps, g->noise = pl->noise;
    g->x0[0] = pl->x0[0], g->x0[1] = pl->x0[1];
    g->host = malloc((size_t)B * (nin > one ? nin : one) * sizeof(float));
    g->host2 = malloc(n * sizeof(float));
    if (!g->host || !g->host2) return sdc_fail(SDC_ERR_OOM, "out of memory");
    /* image to image: the first latents from the encoded images; an
     * inpainting U-Net's extra input, uploaded once */
    for (int j = 0; j < m; j++) {
        SDC_TRY(job_init_latents(ctx, pl, js[j], lh, lw));
        if (js[j]->cond) SDC_TRY(op->upload(be, pl->cond + (size_t)j * (nin - n), js[j]->cond, nin - n));
    }
    /* the context, once: the U-Net keeps its cross-attention keys and values */
    for (int j = 0; j < m; j++) {
        if (cfg) memcpy(g->host + (size_t)j * one, js[j]->neg.z, one * sizeof(float));
        memcpy(g->host + (size_t)(cfg ? m + j : j) * one, js[j]->pos.z, one * sizeof(float));
    }
    SDC_TRY(op->upload(be, g->ctx, g->host, (size_t)B * one));
    SDC_TRY(sdc_unet_set_context(ctx->unet, g->ctx, B, tokens));
    if (ctx->model->config.unet.add_in_dim) SDC_TRY(set_added(ctx, js, m, cfg, g->host));
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
    for (int i = first; i < steps; i++) {
        for (int j = 0; j < m; j++) { /* the same scaled input for both halves */
            float d;
            float *xj = g->x + (size_t)j * n, *in = g->in + (size_t)j * nin;
            /* an inpainting U-Net: the scaled latents (through the output
             * buffer, free until the U-Net runs), then its extra channels */
            float *sc = Cin != C ? g->eps + (size_t)j * n : in;
            if (sdc_sampler_input_divisor(js[j]->sampler, i, &d)) SDC_TRY(op->scale(be, sc, xj, d, true, n));
            else SDC_TRY(op->copy(be, SDC_F32(sc), SDC_F32(xj), n));
            if (Cin != C)
                SDC_TRY(op->concat_channels(be, SDC_F32(in), SDC_F32(sc), SDC_F32(pl->cond + (size_t)j * (nin - n)),
                                            px, C, Cin - C));
            if (cfg) SDC_TRY(op->copy(be, SDC_F32(g->in + (size_t)(m + j) * nin), SDC_F32(in), nin));
        }
        SDC_TRY(sdc_unet_prepare_step(ctx->unet, B, lh, lw, i));
        SDC_TRY(unet_body(ctx, g, B, lh, lw, i, first));
        bool noise = false;
        for (int j = 0; j < m; j++) {
            float *e = g->eps + (size_t)j * n, *xj = g->x + (size_t)j * n;
            if (cfg) /* uncond + g * (cond - uncond), as diffusers computes it */
                SDC_TRY(op->guidance(be, e, e, g->eps + (size_t)(m + j) * n, js[j]->p->cfg_scale, n));
            SDC_TRY(sdc_sampler_plan(js[j]->sampler, i, &plan));
            if (sdc_preview_due(js[j]->p, i + 1 - first)) /* before the update overwrites x */
                SDC_TRY(sdc_preview_emit(ctx, pl, js[j]->p, &plan.update, xj, e, lh, lw, i + 1 - first, steps - first));
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
        for (int j = 0; j < m; j++)
            if (js[j]->keep) SDC_TRY(keep_unmasked(ctx, js[j], g->x + (size_t)j * n, i, lh, lw, g->host, g->host2));
        if (dpm) {
            float *t = g->x0[0];
            g->x0[0] = g->x0[1], g->x0[1] = t;
        }
        /* progress counts the steps that run */
        if (p0->on_step) p0->on_step(i + 1 - first, steps - first, sdc_now() - t0, p0->user);
        if (p0->should_stop && i + 1 < steps && p0->should_stop(i + 1 - first, steps - first, p0->user)) break;
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
    const int C = mc->vae.z_channels;
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
    if (st == SDC_OK && ctx->plan->tile) { /* z to the host, then tile by tile through the plan's buffers */
        st = be->ops->download(be, lat, z_dev, n);
        if (st == SDC_OK)
            st = sdc_vae_decode_tiled(ctx->vae, ctx->plan->tile, lat, lh, lw, img, (sdc_vae_tile_bufs){z_dev, img_dev});
    } else if (st == SDC_OK) {
        st = sdc_vae_decode(ctx->vae, z_dev, lh, lw, img_dev);
        if (st == SDC_OK) st = be->ops->download(be, img, img_dev, npx * 3);
    }
    if (st == SDC_OK) st = be->ops->download(be, lat, x_dev, n);
    if (st == SDC_OK) st = check_finite(ctx, lat, n, img, npx * 3);
    if (st == SDC_OK) {
        sdc_nhwc_to_nchw(lat, out->latents, 1, C, lh, lw);
        sdc_image_to_u8(img, p->height, p->width, out->rgb);
        out->width = p->width;
        out->height = p->height;
        out->infotext = infotext(ctx, p, j->kind, j->info_prompt ? j->info_prompt : p->prompt, j->lora_hashes);
        if (!out->infotext) st = sdc_fail(SDC_ERR_OOM, "out of memory");
        if (st == SDC_OK) st = sdc_init_finish(&j->in, out);
    }
    free(img), free(lat);
    return st;
}

static bool same_run(const sdc_gen_params *a, const sdc_gen_params *b) {
    const char *sa = a->sampler ? a->sampler : "ddim", *sb = b->sampler ? b->sampler : "ddim";
    const char *pa = a->spacing ? a->spacing : "", *pb = b->spacing ? b->spacing : "";
    return a->width == b->width && a->height == b->height && a->steps == b->steps && !strcmp(sa, sb) &&
           a->karras == b->karras && !strcmp(pa, pb) && a->eta == b->eta && !a->init_rgb == !b->init_rgb &&
           (!a->init_rgb || (a->strength == b->strength && a->a1111_steps == b->a1111_steps));
}

static sdc_status batch(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_image *out, job *js) {
    const sdc_model_config *mc = &ctx->model->config;
    const int f = sdc_vae_factor(&mc->vae), lh = jobs[0].height / f, lw = jobs[0].width / f;
    const size_t nl = (size_t)mc->vae.z_channels * lh * lw;
    for (int i = 0; i < n; i++) { /* checked by sdc_txt2img_batch */
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

/* The prompt an infotext gives: as written, with each of p's --lora files
 * as a tag A1111 reads (malloc'd). */
static char *info_prompt(const sdc_gen_params *p, const sdc_lora_use *uses, int n_uses) {
    char *s = NULL;
    size_t len = 0;
    bool ok = str_addf(&s, &len, "%s", p->prompt ? p->prompt : "");
    for (int i = n_uses - p->n_loras; ok && i < n_uses; i++) {
        char te[40], unet[40];
        sdc_py_float_repr(uses[i].te, false, te, sizeof te);
        sdc_py_float_repr(uses[i].unet, false, unet, sizeof unet);
        ok = uses[i].te == uses[i].unet ? str_addf(&s, &len, "%s<lora:%s:%s>", len ? " " : "", uses[i].mention, te)
                                        : str_addf(&s, &len, "%s<lora:%s:%s:%s>", len ? " " : "", uses[i].mention, te,
                                                   unet);
    }
    if (!ok) free(s);
    return ok ? s : NULL;
}

/* Each job's LoRAs (all the same: one set of weights serves the batch),
 * merged; prompts without their tags in ps, infotext prompts in js. */
static sdc_status prepare_loras(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_gen_params *ps, job *js,
                                char **stripped, char **info, char **hashes) {
    sdc_lora_use *first = NULL;
    int n_first = 0;
    sdc_status st = SDC_OK;
    for (int i = 0; st == SDC_OK && i < n; i++) {
        sdc_lora_use *u = NULL;
        int nu = 0;
        st = sdc_job_loras(ctx, &jobs[i], &stripped[i], &u, &nu);
        if (st == SDC_OK && i > 0 && !sdc_lora_uses_equal(first, n_first, u, nu))
            st = sdc_fail(SDC_ERR_ARG, "batch job %d asks for other LoRAs (or multipliers) than job 0: jobs that run "
                          "together share their weights", i);
        if (st == SDC_OK) {
            ps[i].prompt = stripped[i];
            if (!(info[i] = info_prompt(&jobs[i], u, nu))) st = sdc_fail(SDC_ERR_OOM, "out of memory");
            js[i].info_prompt = info[i];
        }
        if (i == 0 && st == SDC_OK) first = u, n_first = nu;
        else sdc_lora_uses_free(u, nu);
    }
    const int switches = ctx->lora.switches;
    if (st == SDC_OK) st = sdc_lora_apply(ctx, first, n_first);
    if (st == SDC_OK && ctx->lora.switches != switches)
        for (int i = 0; i < n; i++) js[i].out->seconds_lora = ctx->lora.seconds_switch;
    if (st == SDC_OK && n_first) {
        *hashes = sdc_lora_hashes(ctx);
        for (int i = 0; i < n; i++) js[i].lora_hashes = *hashes;
    }
    sdc_lora_uses_free(first, n_first);
    return st;
}

sdc_status sdc_txt2img_batch(sdc_ctx *ctx, const sdc_gen_params *jobs, int n, sdc_image *out) {
    if (!ctx || !jobs || !out) return sdc_fail(SDC_ERR_ARG, "sdc_txt2img_batch: bad arguments");
    if (n < 1 || n > 4096) return sdc_fail(SDC_ERR_ARG, "batch of %d jobs: expected 1 to 4096", n);
    memset(out, 0, (size_t)n * sizeof *out);
    job *js = calloc((size_t)n, sizeof *js);
    sdc_gen_params *ps = malloc((size_t)n * sizeof *ps);
    char **strs = calloc(2 * (size_t)n, sizeof *strs);
    char *hashes = NULL;
    if (!js || !ps || !strs) {
        free(js);
        free(ps);
        free(strs);
        return sdc_fail(SDC_ERR_OOM, "out of memory");
    }
    const int f = sdc_vae_factor(&ctx->model->config.vae);
    for (int i = 0; i < n; i++) { /* 0 x 0: the init image's size (down to the VAE's multiple), else the model's */
        ps[i] = jobs[i];
        const bool init = ps[i].init_rgb && ps[i].init_width >= f && ps[i].init_height >= f;
        if (!ps[i].width) ps[i].width = init ? ps[i].init_width / f * f : sdc_native_size(ctx);
        if (!ps[i].height) ps[i].height = init ? ps[i].init_height / f * f : sdc_native_size(ctx);
    }
    sdc_status st = SDC_OK;
    for (int i = 0; st == SDC_OK && i < n; i++) { /* before any LoRA is merged for them */
        js[i].out = &out[i];
        st = sdc_check_gen_params(ctx, &ps[i]);
        if (st == SDC_OK && !same_run(&ps[0], &ps[i]))
            st = sdc_fail(SDC_ERR_ARG, "batch job %d: size, steps, sampler, Karras, spacing, eta and (with init "
                          "images) strength must match job 0's", i);
    }
    if (st == SDC_OK) st = prepare_loras(ctx, jobs, n, ps, js, strs, strs + n, &hashes);
    if (st == SDC_OK) st = batch(ctx, ps, n, out, js);
    for (int i = 0; i < n; i++) job_free(&js[i]);
    for (int i = 0; i < 2 * n; i++) free(strs[i]);
    free(strs);
    free(hashes);
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
