/* test_cuda_pipeline.c - the CUDA backend through whole renders: the
 * denoising loop's host copies, per-image guidance in a batch, the tiny
 * pipelines with half-precision weights against diffusers' float32
 * references, graph replay, and the fp32 pipeline against the CPU backend.
 * On the emulated device in make test (small sizes, few steps) and on a GPU
 * where there is one; each test states its tolerance. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda.h"
#include "context.h"
#include "model/safetensors.h"
#include "nets/unet.h"
#include "cuda_testutil.h"
#include "testutil.h"

/* The denoising loop keeps the latents on the device: in a 20-step render
 * the host sends the context and the first noise before the loop (and an
 * ancestral sampler's noise each step), and takes back the image and the
 * final latents after it; nothing else crosses during the steps. Counted
 * by the backend around every host <-> device copy. 16x16 pixels on the
 * emulated device (a 20-step render there is ~10 s), 512x512 on a GPU. */
Test(cuda, denoise_loop_transfers, .timeout = 300) {
    need_device();
    sdc_ctx *ctx = tiny_ctx(SDC_BACKEND_CUDA, SDC_PRECISION_AUTO);
    const char *samplers[] = {"dpmpp_2m", "euler_a"};
    for (int s = 0; s < 2; s++) {
        step_probe probe = {.be = ctx->be};
        const sdc_transfers start = ctx->be->transfers;
        sdc_gen_params gp = sdc_gen_params_default();
        gp.prompt = "a red circle";
        gp.width = gp.height = small_shapes() ? 16 : 512;
        gp.steps = 20;
        gp.sampler = samplers[s];
        gp.seed = 5;
        gp.on_step = step_probe_record;
        gp.user = &probe;
        sdc_image im;
        cr_assert_eq(sdc_txt2img(ctx, &gp, &im), SDC_OK, "%s", sdc_last_error());
        const sdc_transfers end = ctx->be->transfers;
        const bool ancestral = !strcmp(samplers[s], "euler_a");
        /* steps 2..20: nothing, or one upload of noise per step */
        cr_assert_eq(probe.at[20].uploads - probe.at[1].uploads, ancestral ? 19u : 0u, "%s: uploads within the loop",
                     samplers[s]);
        cr_assert_eq(probe.at[20].downloads - probe.at[1].downloads, 0u, "%s: downloads within the loop", samplers[s]);
        /* after the loop: the image and the latents back, nothing up */
        cr_assert_eq(end.uploads - probe.at[20].uploads, 0u, "%s: uploads after the loop", samplers[s]);
        cr_assert_eq(end.downloads - probe.at[20].downloads, 2u, "%s: downloads after the loop", samplers[s]);
        fprintf(stderr,
                "cuda denoise loop %s, 20 steps: before step 2 (text encoder, context, first noise) %zu up %zu down; "
                "steps 2-20 %zu up %zu down; after %zu up %zu down\n",
                samplers[s], probe.at[1].uploads - start.uploads, probe.at[1].downloads - start.downloads,
                probe.at[20].uploads - probe.at[1].uploads, probe.at[20].downloads - probe.at[1].downloads,
                end.uploads - probe.at[20].uploads, end.downloads - probe.at[20].downloads);
        sdc_image_free(&im);
    }
    sdc_free(ctx);
}

/* A batch of jobs with different guidance scales through the U-Net
 * together (per-image scale): on the CUDA backend each image is the CPU
 * backend's (8-bit pixels +-3), and the two images differ. */
Test(cuda, batch_with_per_image_guidance, .timeout = 300) {
    need_device();
    sdc_ctx *ctx[2];
    for (int b = 0; b < 2; b++)
        ctx[b] = tiny_ctx(b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU, SDC_PRECISION_FP32);
    sdc_gen_params jobs[2];
    const float scales[2] = {7.5f, 2.0f};
    for (int j = 0; j < 2; j++) {
        jobs[j] = sdc_gen_params_default();
        jobs[j].prompt = "a blue square";
        jobs[j].width = jobs[j].height = small_shapes() ? 16 : 64;
        jobs[j].steps = 3;
        jobs[j].sampler = "euler";
        jobs[j].seed = 11;
        jobs[j].cfg_scale = scales[j];
    }
    sdc_image im[2][2];
    for (int b = 0; b < 2; b++) cr_assert_eq(sdc_txt2img_batch(ctx[b], jobs, 2, im[b]), SDC_OK, "%s", sdc_last_error());
    const size_t nv = (size_t)jobs[0].width * jobs[0].height * 3;
    for (int j = 0; j < 2; j++) {
        int worst = 0;
        for (size_t k = 0; k < nv; k++) {
            int d = abs((int)im[0][j].rgb[k] - (int)im[1][j].rgb[k]);
            if (d > worst) worst = d;
        }
        cr_assert(worst <= 3, "job %d (cfg %g): GPU pixels differ from CPU by %d", j, (double)scales[j], worst);
    }
    cr_assert(memcmp(im[1][0].latents, im[1][1].latents, 4 * sizeof(float)) != 0,
              "two guidance scales gave the same latents");
    for (int b = 0; b < 2; b++) {
        sdc_image_free(&im[b][0]);
        sdc_image_free(&im[b][1]);
        sdc_free(ctx[b]);
    }
}

/* The tiny pipelines end to end in half precision (the U-Net's and the
 * VAE's weights and activations; the text encoder's weights, its
 * activations fp32) against diffusers' float32 pipeline (the references
 * test_pipeline.c holds the CPU to within 1e-3 and 2 levels): every
 * sampler, SD 1.x at 32x32 and 4 steps with guidance 7.5, which multiplies
 * the difference of the two halves 7.5 times. The U-Net and VAE alone are
 * within 1.3e-3 (fp16) and 1.4e-2 (bf16) of float64 (test_cuda_nets.c);
 * through the loop, stated tolerances with a margin over what the emulated
 * device measured with sdc's own kernels (fused attention, implicit-GEMM
 * convolution; with cuBLAS for both, 5.3e-3 / 2 and 5.0e-2 / 20): all
 * fp16, latents within 1e-2 relative (<= 5.6e-3 measured) and pixels
 * within 4 levels (2); fp16 with the default bf16 VAE, pixels within 6
 * (4); all bf16, 8e-2 (<= 3.7e-2) and 28 levels (13).
 * (With fp32 activations and half weights, before activations were typed,
 * these were 5e-3 / 3 levels and 6e-2 / 16 levels, measured 2.8e-3 / 1 and
 * 3.2e-2 / 11: rounding every activation to the half type costs up to
 * twice as much.) */
static void half_pipeline(sdc_precision prec, sdc_precision vae_prec, double lat_tol, int px_tol) {
    need_device();
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/pipeline_tiny_sd1_ref.safetensors", &ref), SDC_OK, "%s", sdc_last_error());
    sdc_ctx *ctx = tiny_ctx_vae(SDC_BACKEND_CUDA, prec, vae_prec);
    /* the references' cases: ddim, ddpm, euler, euler_a, dpmpp_2m (seeds 42 + case) */
    const int cases[5] = {0, 2, 3, 5, 6};
    const char *samplers[5] = {"ddim", "ddpm", "euler", "euler_a", "dpmpp_2m"};
    for (int i = 0; i < 5; i++) {
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = sdc_st_meta(ref, "prompt");
        g.negative_prompt = sdc_st_meta(ref, "negative");
        g.sampler = samplers[i];
        g.steps = 4;
        g.seed = 42 + (unsigned long long)cases[i];
        g.width = g.height = 32;
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
        char name[32];
        snprintf(name, sizeof name, "latents%d", cases[i]);
        size_t n;
        float *want = ref_tensor(ref, name, &n);
        const double e = max_rel_err(img.latents, want, n, NULL);
        snprintf(name, sizeof name, "image%d", cases[i]);
        const sdc_st_tensor *it = sdc_st_find(ref, name);
        cr_assert(it && (size_t)it->numel == (size_t)32 * 32 * 3);
        int worst = 0;
        for (size_t k = 0; k < (size_t)it->numel; k++) {
            int d = abs((int)img.rgb[k] - (int)((const unsigned char *)it->data)[k]);
            if (d > worst) worst = d;
        }
        fprintf(stderr, "cuda %s pipeline (VAE %s) %s: latents rel err %.2e, max pixel diff %d\n",
                sdc_precision_name(prec), sdc_precision_name(vae_prec), samplers[i], e, worst);
        cr_assert(e <= lat_tol, "%s %s: latents rel err %.3g > %.0e", sdc_precision_name(prec), samplers[i], e,
                  lat_tol);
        cr_assert(worst <= px_tol, "%s %s: pixels off by %d > %d", sdc_precision_name(prec), samplers[i], worst,
                  px_tol);
        free(want);
        sdc_image_free(&img);
    }
    sdc_free(ctx);
    sdc_st_close(ref);
}

Test(cuda, tiny_pipeline_fp16, .timeout = 600) { half_pipeline(SDC_PRECISION_FP16, SDC_PRECISION_FP16, 1e-2, 4); }
Test(cuda, tiny_pipeline_fp16_default_vae, .timeout = 600) {
    half_pipeline(SDC_PRECISION_FP16, SDC_PRECISION_AUTO, 1e-2, 6);
}
Test(cuda, tiny_pipeline_bf16, .timeout = 600) { half_pipeline(SDC_PRECISION_BF16, SDC_PRECISION_BF16, 8e-2, 28); }

/* A graph replay gives exactly what the same ops give run directly: the
 * U-Net body of the tiny model (fp16 weights) run directly, then recorded
 * and replayed twice on new inputs, against direct runs on those inputs
 * (bit for bit); and a whole render with graphs against one without
 * (SDC_NO_GRAPHS=1), latents bit for bit. Recording allocates nothing:
 * the device memory in use is the same before and after. */
Test(cuda, graph_replay_is_exact, .timeout = 300) {
    need_device();
    sdc_ctx *ctx = tiny_ctx(SDC_BACKEND_CUDA, SDC_PRECISION_AUTO);
    sdc_backend *be = ctx->be;
    const int B = 2, h = 8, w = 8, C = ctx->model->config.unet.in_channels, cd = sdc_context_dim(ctx);
    const size_t n = (size_t)B * h * w * C, nc = (size_t)B * 77 * cd;
    float *xs[3], *cx = test_random(nc, 41, 1.0f), *direct = malloc(n * sizeof(float));
    float *replay = malloc(n * sizeof(float)), *dx, *dout, *dctx = dev(be, cx, nc);
    for (int i = 0; i < 3; i++) xs[i] = test_random(n, 42 + (uint64_t)i, 1.0f);
    cr_assert_eq(be->ops->alloc(be, n, &dx), SDC_OK);
    cr_assert_eq(be->ops->alloc(be, n, &dout), SDC_OK);
    cr_assert_eq(sdc_unet_set_context(ctx->unet, dctx, B, 77), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->ops->upload(be, dx, xs[0], n), SDC_OK);
    cr_assert_eq(sdc_unet_run(ctx->unet, dx, B, h, w, 981.0, dout), SDC_OK, "%s", sdc_last_error());
    size_t used0, used1, peak;
    be->ops->memory(be, &used0, NULL);
    cr_assert_eq(be->ops->capture_begin(be), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_unet_body(ctx->unet, dx, B, h, w, dout), SDC_OK, "%s", sdc_last_error());
    void *graph = NULL;
    cr_assert_eq(be->ops->capture_end(be, &graph), SDC_OK, "%s", sdc_last_error());
    be->ops->memory(be, &used1, &peak);
    cr_assert_eq(used1, used0, "recording allocated %zu bytes", used1 - used0);
    cr_assert(peak >= used1 && used1 > 0, "memory in use %zu, peak %zu", used1, peak);
    for (int r = 1; r < 3; r++) {
        const double t = r == 1 ? 500.0 : 21.0;
        cr_assert_eq(be->ops->upload(be, dx, xs[r], n), SDC_OK);
        cr_assert_eq(sdc_unet_run(ctx->unet, dx, B, h, w, t, dout), SDC_OK);
        cr_assert_eq(be->ops->download(be, direct, dout, n), SDC_OK);
        cr_assert_eq(be->ops->upload(be, dout, xs[0], n), SDC_OK); /* the graph must overwrite it */
        cr_assert_eq(sdc_unet_prepare(ctx->unet, B, h, w, t), SDC_OK);
        cr_assert_eq(be->ops->graph_launch(be, graph), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(be->ops->download(be, replay, dout, n), SDC_OK);
        cr_assert(memcmp(direct, replay, n * sizeof(float)) == 0, "replay %d differs from the direct run", r);
    }
    be->ops->graph_free(be, graph);
    /* a render with and without graphs */
    sdc_gen_params gp = sdc_gen_params_default();
    gp.prompt = "a green triangle";
    gp.width = gp.height = 16;
    gp.steps = 4;
    gp.sampler = "dpmpp_2m";
    gp.seed = 9;
    sdc_image im[2];
    for (int k = 0; k < 2; k++) {
        setenv("SDC_NO_GRAPHS", k ? "1" : "0", 1);
        cr_assert_eq(sdc_txt2img(ctx, &gp, &im[k]), SDC_OK, "%s", sdc_last_error());
    }
    unsetenv("SDC_NO_GRAPHS");
    cr_assert(memcmp(im[0].latents, im[1].latents, (size_t)4 * 8 * 8 * sizeof(float)) == 0,
              "a render with graphs differs from one without");
    sdc_image_free(&im[0]), sdc_image_free(&im[1]);
    for (int i = 0; i < 3; i++) free(xs[i]);
    free(cx), free(direct), free(replay);
    be->ops->free(be, dx), be->ops->free(be, dout), be->ops->free(be, dctx);
    sdc_free(ctx);
}

/* The whole tiny pipeline on the CUDA backend against the CPU, every
 * sampler: latents within 2e-5 relative on the emulated device, 1e-4 on a
 * GPU (fp32 both, different summation orders in the convolutions and
 * attention, carried through the steps; 6 steps at 64x64 there) and 8-bit
 * pixels +-3. On the emulated device at 32x32 pixels (a
 * 16x16 latent, two U-Net levels) and 3 steps, enough for every sampler's
 * first, middle and last step and DPM++ 2M's second-order update: a step
 * there is seconds of fibre switches; on a GPU at 64x64 and 6 steps. */
Test(cuda, tiny_pipeline_matches_cpu, .timeout = 300) {
    need_device();
    const char *samplers[] = {"ddim", "ddpm", "euler", "euler_a", "dpmpp_2m"};
    sdc_ctx *ctx[2];
    for (int b = 0; b < 2; b++) /* the exact check; half precision below */
        ctx[b] = tiny_ctx(b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU, SDC_PRECISION_FP32);
    for (int s = 0; s < 5; s++) {
        sdc_gen_params gp = sdc_gen_params_default();
        gp.prompt = "a (red:1.2) circle";
        gp.width = gp.height = small_shapes() ? 32 : 64;
        gp.steps = small_shapes() ? 3 : 6;
        gp.sampler = samplers[s];
        gp.seed = 7;
        sdc_image im[2];
        for (int b = 0; b < 2; b++) cr_assert_eq(sdc_txt2img(ctx[b], &gp, &im[b]), SDC_OK, "%s", sdc_last_error());
        int worst = 0;
        const size_t px = (size_t)gp.width * gp.height;
        for (size_t k = 0; k < px * 3; k++) {
            int d = abs((int)im[0].rgb[k] - (int)im[1].rgb[k]);
            if (d > worst) worst = d;
        }
        /* the tiny VAE halves each side: 4 x (h/2) x (w/2) latents */
        size_t at;
        const double lat = max_rel_err(im[1].latents, im[0].latents, px, &at);
        const double lat_tol = small_shapes() ? 2e-5 : 1e-4;
        cr_assert(lat <= lat_tol, "%s: latents differ from the CPU's by %.3g > %.0e (relative)", samplers[s], lat,
                  lat_tol);
        cr_assert(worst <= 3, "%s: GPU pixels differ from CPU by %d", samplers[s], worst);
        fprintf(stderr, "cuda pipeline %s: latents rel err %.2e, max pixel diff %d\n", samplers[s], lat, worst);
        sdc_image_free(&im[0]);
        sdc_image_free(&im[1]);
    }
    sdc_free(ctx[0]);
    sdc_free(ctx[1]);
}
