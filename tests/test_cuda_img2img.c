/* test_cuda_img2img.c - image to image and inpainting on the CUDA backend:
 * the encoder's moments, the first latents, a regular model's per-step
 * blend and an inpainting U-Net's 9-channel input (concat_channels), in
 * fp32 against the CPU backend and in fp16 against diffusers' references;
 * SDXL's image to image and inpainting (its added embedding beside the
 * encoder's sample and the per-step blend) in fp32 against both. On the
 * emulated device in make test (32x32 and 64x64 pixels, few steps) and on
 * a GPU where there is one. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda.h"
#include "cuda_testutil.h"
#include "image/image.h"
#include "sdc.h"
#include "testutil.h"

static sdc_ctx *load(const char *path, sdc_backend_kind kind, sdc_precision prec) {
    sdc_params p = sdc_params_default();
    p.model_path = path;
    p.backend = kind;
    p.precision = prec;
    p.vae_precision = prec;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&p, &ctx), SDC_OK, "%s", sdc_last_error());
    return ctx;
}

typedef struct inputs {
    unsigned char *rgb, *mask;
    int w, h;
} inputs;

static inputs read_inputs(void) {
    inputs in = {0};
    unsigned char *m = NULL;
    int mw, mh;
    cr_assert_eq(sdc_image_read_rgb(FIXTURES "/img2img/init32.png", &in.rgb, &in.w, &in.h), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_eq(sdc_image_read_rgb(FIXTURES "/img2img/mask32.png", &m, &mw, &mh), SDC_OK, "%s", sdc_last_error());
    in.mask = malloc((size_t)mw * mh);
    for (int i = 0; i < mw * mh; i++) in.mask[i] = m[3 * i];
    free(m);
    return in;
}

static int max_px_diff(const sdc_image *a, const sdc_image *b) {
    int worst = 0;
    for (size_t k = 0; k < (size_t)a->width * a->height * 3; k++) {
        int d = abs((int)a->rgb[k] - (int)b->rgb[k]);
        if (d > worst) worst = d;
    }
    return worst;
}

/* fp32 on the device against the CPU backend: the same arithmetic up to
 * the order of sums, as tiny_pipeline_matches_cpu (latents within 2e-5
 * relative over 3 steps, pixels +-3): img2img with Euler a (noise drawn
 * each step after the encoder's sample), a regular model's inpainting with
 * DPM++ 2M (the blend each step), the 9-channel model with DDIM. */
Test(cuda, img2img_and_inpainting_match_cpu, .timeout = 600) {
    need_device();
    inputs in = read_inputs();
    const char *models[3] = {FIXTURES "/tiny_sd1.safetensors", FIXTURES "/tiny_sd1.safetensors",
                             FIXTURES "/tiny_inpaint_sd1.safetensors"};
    const char *samplers[3] = {"euler_a", "dpmpp_2m", "ddim"};
    const bool masked[3] = {false, true, true};
    for (int c = 0; c < 3; c++) {
        sdc_ctx *ctx[2];
        for (int b = 0; b < 2; b++) ctx[b] = load(models[c], b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU, SDC_PRECISION_FP32);
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = "a red circle";
        g.width = g.height = 32;
        g.steps = 4;
        g.strength = 0.75;
        g.sampler = samplers[c];
        g.seed = 21;
        g.init_rgb = in.rgb, g.init_width = in.w, g.init_height = in.h;
        if (masked[c]) g.mask = in.mask, g.mask_width = in.w, g.mask_height = in.h;
        sdc_image im[2];
        for (int b = 0; b < 2; b++) cr_assert_eq(sdc_txt2img(ctx[b], &g, &im[b]), SDC_OK, "%s", sdc_last_error());
        const double lat = max_rel_err(im[1].latents, im[0].latents, (size_t)4 * 16 * 16, NULL);
        const int px = max_px_diff(&im[0], &im[1]);
        cr_assert(lat <= 2e-5, "%s %s: latents differ from the CPU's by %.3g > 2e-5", models[c], samplers[c], lat);
        cr_assert(px <= 3, "%s %s: pixels differ from the CPU's by %d", models[c], samplers[c], px);
        fprintf(stderr, "cuda %s %s %s: latents rel err %.2e, max pixel diff %d\n", models[c],
                masked[c] ? "inpaint" : "img2img", samplers[c], lat, px);
        for (int b = 0; b < 2; b++) {
            sdc_image_free(&im[b]);
            sdc_free(ctx[b]);
        }
    }
    free(in.rgb), free(in.mask);
}

static const char *jstr(const cJSON *c, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(c, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jpair(const cJSON *c, const char *k, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(c, k), i)->valueint;
}

/* SDXL in fp32 on the device: an image-to-image case (Euler a at strength
 * 1 with a text negative: the encoder's sample, then noise drawn every
 * step) and an inpainting case (DPM++ 2M Karras, 96x64, the zeros of an
 * empty negative: the blend each step) of tools/fixtures_sdxl_img2img.py,
 * against the CPU backend as above (2e-5, 3 levels) and against diffusers'
 * StableDiffusionXLImg2ImgPipeline / StableDiffusionXLInpaintPipeline at
 * the CPU's own bounds (test_sdxl_img2img.c: 1e-3, 2 levels). */
Test(cuda, sdxl_img2img_and_inpainting, .timeout = 600) {
    need_device();
    const char *refs[2] = {FIXTURES "/sdxl_img2img_ref.safetensors", FIXTURES "/sdxl_inpaint_ref.safetensors"};
    const int which[2] = {2, 5};
    sdc_ctx *ctx[2];
    for (int b = 0; b < 2; b++)
        ctx[b] = load(FIXTURES "/tiny_sdxl.safetensors", b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU, SDC_PRECISION_FP32);
    for (int r = 0; r < 2; r++) {
        sdc_st_file *ref = NULL;
        cr_assert_eq(sdc_st_open(refs[r], &ref), SDC_OK, "%s", sdc_last_error());
        cJSON *cases = cJSON_Parse(sdc_st_meta(ref, "cases"));
        const cJSON *c = cJSON_GetArrayItem(cases, which[r]);
        cr_assert(c);
        const int W = cJSON_GetObjectItem(c, "width")->valueint, H = cJSON_GetObjectItem(c, "height")->valueint;
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = jstr(c, "prompt");
        g.prompt_2 = jstr(c, "prompt_2");
        g.negative_prompt = jstr(c, "negative"); /* null: zeros, as diffusers' None */
        g.sampler = jstr(c, "sampler");
        g.spacing = jstr(c, "spacing");
        g.karras = cJSON_IsTrue(cJSON_GetObjectItem(c, "karras"));
        g.cfg_scale = (float)cJSON_GetObjectItem(c, "cfg")->valuedouble;
        g.steps = cJSON_GetObjectItem(c, "steps")->valueint;
        g.seed = (unsigned long long)cJSON_GetObjectItem(c, "seed")->valuedouble;
        g.strength = cJSON_GetObjectItem(c, "strength")->valuedouble;
        g.width = W, g.height = H;
        g.original_height = jpair(c, "original_size", 0), g.original_width = jpair(c, "original_size", 1);
        g.crop_top = jpair(c, "crop", 0), g.crop_left = jpair(c, "crop", 1);
        g.target_height = jpair(c, "target_size", 0), g.target_width = jpair(c, "target_size", 1);
        const sdc_st_tensor *init = sdc_st_find(ref, jstr(c, "init"));
        cr_assert(init && init->dtype == SDC_DT_U8 && (size_t)init->numel == (size_t)W * H * 3);
        g.init_rgb = init->data, g.init_width = W, g.init_height = H;
        if (jstr(c, "mask")) {
            const sdc_st_tensor *mask = sdc_st_find(ref, jstr(c, "mask"));
            cr_assert(mask && mask->dtype == SDC_DT_U8 && (size_t)mask->numel == (size_t)W * H);
            g.mask = mask->data, g.mask_width = W, g.mask_height = H;
        }
        sdc_image im[2];
        for (int b = 0; b < 2; b++) cr_assert_eq(sdc_txt2img(ctx[b], &g, &im[b]), SDC_OK, "%s", sdc_last_error());
        const size_t n = (size_t)4 * (H / 8) * (W / 8);
        const double lat = max_rel_err(im[1].latents, im[0].latents, n, NULL);
        const int px = max_px_diff(&im[0], &im[1]);
        char name[32];
        snprintf(name, sizeof name, "latents%d", which[r]);
        size_t nr;
        float *want = ref_tensor(ref, name, &nr);
        cr_assert_eq(nr, n);
        const double e = max_rel_err(im[1].latents, want, n, NULL);
        snprintf(name, sizeof name, "image%d", which[r]);
        const sdc_st_tensor *it = sdc_st_find(ref, name);
        cr_assert(it && it->dtype == SDC_DT_U8 && (size_t)it->numel == (size_t)W * H * 3);
        const sdc_image want_img = {.width = W, .height = H, .rgb = (unsigned char *)it->data};
        const int pe = max_px_diff(&im[1], &want_img);
        fprintf(stderr, "cuda sdxl %s %s: latents rel err %.2e against the CPU's, %.2e against diffusers'; max pixel "
                "diff %d, %d\n", jstr(c, "mode"), g.sampler, lat, e, px, pe);
        cr_assert(lat <= 2e-5, "sdxl %s: latents differ from the CPU's by %.3g > 2e-5", jstr(c, "mode"), lat);
        cr_assert(px <= 3, "sdxl %s: pixels differ from the CPU's by %d", jstr(c, "mode"), px);
        cr_assert(e <= 1e-3, "sdxl %s: latents differ from diffusers' by %.3g > 1e-3", jstr(c, "mode"), e);
        cr_assert(pe <= 2, "sdxl %s: pixels differ from diffusers' by %d > 2", jstr(c, "mode"), pe);
        free(want);
        for (int b = 0; b < 2; b++) sdc_image_free(&im[b]);
        cJSON_Delete(cases);
        sdc_st_close(ref);
    }
    for (int b = 0; b < 2; b++) sdc_free(ctx[b]);
}
