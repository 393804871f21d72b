/* test_cuda_preview.c - live previews on the CUDA backend: TAESD's decoder
 * against the CPU backend's, and a render with previews: its image is the
 * one without, bit for bit, and only the preview steps copy anything to the
 * host. On the emulated device in make test, on a GPU where there is one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "context.h"
#include "cuda_testutil.h"
#include "nets/taesd.h"
#include "testutil.h"

#define TAESD_FILE FIXTURES "/preview/taesd_tiny.safetensors"

/* decode the reference latent (5 x 6, NHWC) on be with weights of type t:
 * (40, 48, 3) host floats */
static float *decode_on(sdc_backend *be, sdc_dtype t, const float *z) {
    be->weight_type = t; /* what sdc_load sets from --precision */
    sdc_taesd *d = NULL;
    cr_assert_eq(sdc_taesd_load(TAESD_FILE, 4, be, &d), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(d->act, t);
    const size_t n = (size_t)5 * 6 * 4, m = (size_t)40 * 48 * 3;
    float *dz = NULL, *dy = NULL, *y = malloc(m * sizeof(float));
    cr_assert_eq(sdc_backend_upload_new(be, z, n, &dz), SDC_OK);
    cr_assert_eq(be->ops->alloc(be, m, &dy), SDC_OK);
    cr_assert_eq(sdc_taesd_decode(d, dz, 5, 6, dy), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->ops->download(be, y, dy, m), SDC_OK);
    be->ops->free(be, dz), be->ops->free(be, dy);
    sdc_taesd_free(d);
    return y;
}

/* Tolerances (normwise relative, against the CPU's fp32): fp32 1e-5
 * (measured 6.8e-7 on the emulated device: the convolutions sum in another
 * order), fp16 4e-3 and bf16 3e-2 as the other networks (measured 1.7e-3,
 * 1.9e-2: 31 convolutions in a row, each output rounded to the type). */
Test(cuda_preview, taesd_matches_cpu) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/preview/preview_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    size_t n;
    float *z = ref_tensor(ref, "taesd_z", &n), *zh = malloc(n * sizeof(float));
    sdc_nchw_to_nhwc(z, zh, 1, 4, 5, 6);
    float *want = decode_on(c, SDC_DT_F32, zh);
    const sdc_dtype types[3] = {SDC_DT_F32, SDC_DT_F16, SDC_DT_BF16};
    const double tol[3] = {1e-5, 4e-3, 3e-2};
    const size_t m = (size_t)40 * 48 * 3;
    for (int i = 0; i < 3; i++) {
        float *got = decode_on(g, types[i], zh);
        const double e = max_rel_err(got, want, m, NULL);
        fprintf(stderr, "cuda preview taesd %s: max rel err %.2e\n", sdc_dtype_name(types[i]), e);
        if (!(e <= tol[i])) print_mismatches("taesd", got, want, m, tol[i], 5);
        cr_assert(e <= tol[i], "TAESD %s on CUDA: max rel err %.3g > %.0e", sdc_dtype_name(types[i]), e, tol[i]);
        free(got);
    }
    free(z), free(zh), free(want);
    sdc_st_close(ref);
    sdc_backend_destroy(g), sdc_backend_destroy(c);
}

typedef struct probe {
    step_probe steps; /* first: step_probe_record reads it as one */
    int previews;
} probe;

static void count_preview(int step, int steps, const unsigned char *rgb, int w, int h, void *user) {
    (void)step, (void)steps, (void)rgb, (void)w, (void)h;
    ((probe *)user)->previews++;
}

/* 20 steps, previews every 5th: the image is the one without previews,
 * bit for bit. Within steps 2..20 the loop copies nothing (test_cuda_pipeline.c);
 * with previews, each of steps 5, 10, 15, 20 takes back the latents and
 * the model output (2 downloads), and TAESD's sends its x0 and takes back
 * the pixels (1 up, 1 down more); nothing is allocated. */
Test(cuda_preview, render_unchanged_copies_on_preview_steps_only, .timeout = 300) {
    need_device();
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CUDA;
    mp.taesd_path = TAESD_FILE;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_image img[3];
    for (int r = 0; r < 3; r++) {
        probe p = {.steps = {.be = ctx->be}};
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = "a red circle";
        g.width = g.height = small_shapes() ? 16 : 512;
        g.steps = 20;
        g.sampler = "euler_a";
        g.seed = 11;
        g.on_step = step_probe_record;
        g.on_preview = r ? count_preview : NULL;
        g.preview = r == 2 ? SDC_PREVIEW_TAESD : SDC_PREVIEW_CHEAP;
        g.preview_every = 5;
        g.user = &p;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img[r]), SDC_OK, "%s", sdc_last_error());
        const step_probe *s = &p.steps;
        const size_t down = s->at[20].downloads - s->at[1].downloads, up = s->at[20].uploads - s->at[1].uploads;
        fprintf(stderr, "cuda preview %s: steps 2-20 %zu up, %zu down, %zu allocations\n",
                r == 0 ? "none" : r == 1 ? "cheap" : "taesd", up, down, s->allocs[20] - s->allocs[1]);
        cr_assert_eq(p.previews, r ? 4 : 0);
        cr_assert_eq(down, r == 0 ? 0u : r == 1 ? 8u : 12u, "downloads within the loop: %zu", down);
        cr_assert_eq(up, 19u + (r == 2 ? 4u : 0u), "uploads within the loop (euler_a's noise each step): %zu", up);
        cr_assert_eq(s->allocs[20], s->allocs[1], "allocations within the loop");
        if (r) {
            const size_t nl = (size_t)4 * (g.height / 2) * (g.width / 2);
            cr_assert_eq(memcmp(img[r].latents, img[0].latents, nl * sizeof(float)), 0, "previews changed the latents");
            cr_assert_eq(memcmp(img[r].rgb, img[0].rgb, (size_t)g.width * g.height * 3), 0, "... the pixels");
        }
    }
    for (int r = 0; r < 3; r++) sdc_image_free(&img[r]);
    sdc_free(ctx);
}
