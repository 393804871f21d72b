/* test_cuda_vae_tiled.c - the tiled VAE (vae_tiled.c) on the CUDA backend
 * against the CPU backend's: the tiles of tools/fixtures_vae_tiled.py's
 * inputs (16-pixel tiles, partial ones at the edges) decoded and encoded,
 * and a render whose plan holds one tile's buffers and scratch on the
 * device. On the emulated device in make test, on a GPU where there is one.
 *
 * Tolerances (normwise relative, testutil's max_rel_err): fp32 1e-5 (the
 * same arithmetic in other summation orders), fp16 4e-3 (test_cuda_nets.c's
 * for the untiled VAE in fp16). Measured on the emulated device: decode
 * fp32 7.1e-07, fp16 1.1e-03; encode fp32 7.0e-07, fp16 1.3e-03. The render:
 * 8-bit pixels +-3, as test_cuda_pipeline.c's fp32 renders; measured 1. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "cuda_testutil.h"
#include "model/model.h"
#include "nets/vae_tiled.h"
#include "plan.h"
#include "testutil.h"

/* Decode (encode) the fixture's first input in tiles of 16 pixels on be:
 * the output, NHWC host, malloc'd; *n its floats. */
static float *tiled_on(sdc_backend *be, const sdc_st_file *ref, bool decode, size_t *n) {
    sdc_model_files *m = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(FIXTURES "/tiny_sd1.safetensors", &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *it = sdc_st_find(ref, decode ? "z0" : "x0"), *ot = sdc_st_find(ref, decode ? "image0" : "moments0");
    cr_assert(it && ot);
    const int c = (int)it->shape[1], h = (int)it->shape[2], w = (int)it->shape[3];
    size_t ni;
    float *in = ref_tensor(ref, decode ? "z0" : "x0", &ni), *ih = malloc(ni * sizeof(float));
    *n = (size_t)ot->numel;
    float *out = malloc(*n * sizeof(float));
    sdc_nchw_to_nhwc(in, ih, 1, c, h, w);
    const sdc_status st = decode ? sdc_vae_decode_tiled(v, 16, ih, h, w, out, (sdc_vae_tile_bufs){0})
                                 : sdc_vae_encode_tiled(v, 16, ih, h, w, out, (sdc_vae_tile_bufs){0});
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    free(in), free(ih);
    sdc_vae_free(v);
    sdc_model_close(m);
    return out;
}

Test(cuda_vae_tiled, decode_and_encode_match_cpu, .timeout = 600) {
    need_device();
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/vae_tiled_tiny_sd1_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    sdc_backend *cpu = test_cpu_backend();
    const sdc_dtype types[2] = {SDC_DT_F32, SDC_DT_F16};
    const double tol[2] = {1e-5, 4e-3};
    for (int d = 0; d < 2; d++) {
        size_t n;
        float *want = tiled_on(cpu, ref, d == 0, &n);
        for (int k = 0; k < 2; k++) {
            sdc_backend *g = gpu_mem(0);
            g->weight_type = types[k]; /* what sdc_load sets from --vae-precision */
            size_t ng;
            float *got = tiled_on(g, ref, d == 0, &ng);
            cr_assert_eq(ng, n);
            const double e = max_rel_err(got, want, n, NULL);
            if (!(e <= tol[k])) print_mismatches(d ? "moments" : "image", got, want, n, tol[k], 5);
            cr_assert(e <= tol[k], "tiled %s %s: max rel err %.3g > %.0e", d ? "encode" : "decode",
                      sdc_dtype_name(types[k]), e, tol[k]);
            fprintf(stderr, "cuda vae tiled %s %s vs cpu: max rel err %.2e\n", d ? "encode" : "decode",
                    sdc_dtype_name(types[k]), e);
            free(got);
            sdc_backend_destroy(g);
        }
        free(want);
    }
    sdc_backend_destroy(cpu);
    sdc_st_close(ref);
}

/* A render with the VAE forced into 16-pixel tiles: the plan holds one
 * tile's buffers and the VAE's memory for it (a second render of the shape
 * allocates nothing; a scratch the dry run did not see would fail the
 * decode, naming the op), and the pixels are the CPU's. */
Test(cuda_vae_tiled, tiled_render_matches_cpu, .timeout = 300) {
    need_device();
    sdc_ctx *ctx[2];
    sdc_image im[2];
    sdc_gen_params gp = sdc_gen_params_default();
    gp.prompt = "a red circle";
    gp.width = gp.height = 32;
    gp.steps = 2;
    gp.sampler = "euler";
    gp.seed = 4;
    gp.vae_tiling = SDC_VAE_TILING_ON;
    gp.vae_tile_size = 16;
    for (int b = 0; b < 2; b++) {
        ctx[b] = tiny_ctx(b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU, SDC_PRECISION_FP32);
        cr_assert_eq(sdc_txt2img(ctx[b], &gp, &im[b]), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(ctx[b]->plan->tile, 16);
        const size_t allocs = ctx[b]->be->allocations;
        sdc_image again;
        cr_assert_eq(sdc_txt2img(ctx[b], &gp, &again), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(ctx[b]->be->allocations, allocs, "%s: a planned tiled render allocated %zu times",
                     b ? "cuda" : "cpu", ctx[b]->be->allocations - allocs);
        sdc_image_free(&again);
    }
    int worst = 0;
    for (size_t k = 0; k < (size_t)gp.width * gp.height * 3; k++) {
        const int d = abs((int)im[0].rgb[k] - (int)im[1].rgb[k]);
        worst = d > worst ? d : worst;
    }
    cr_assert(worst <= 3, "tiled render: pixels differ by %d > 3", worst);
    fprintf(stderr, "cuda vae tiled render 32x32 (16 px tiles) vs cpu: max pixel diff %d\n", worst);
    for (int b = 0; b < 2; b++) {
        sdc_image_free(&im[b]);
        sdc_free(ctx[b]);
    }
}
