/* test_cuda_img2img.c - image to image and inpainting on the CUDA backend:
 * the encoder's moments, the first latents, a regular model's per-step
 * blend and an inpainting U-Net's 9-channel input (concat_channels), in
 * fp32 against the CPU backend and in fp16 against diffusers' references.
 * On the emulated device in make test (32x32 pixels, few steps) and on a
 * GPU where there is one. */
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
