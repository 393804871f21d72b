/* test_cuda_plan.c - planned memory (src/plan.h): a dry run of the
 * backend runs and allocates nothing and sizes the scratch; bound to a
 * plan, ops never allocate and an op the dry run missed fails naming itself;
 * a render's device memory is one arena, and a second render of the same
 * shape allocates nothing. CUDA tests run on the emulated device in
 * make test (sdc_tests_emu) and on a GPU where there is one; the dry run
 * and render tests run on the CPU backend too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/backend_profile.h"
#include "context.h"
#include "cuda_testutil.h"
#include "plan.h"
#include "testutil.h"

static float *download(sdc_backend *be, const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    cr_assert_eq(be->ops->download(be, h, d, n), SDC_OK, "%s", sdc_last_error());
    return h;
}

/* A 3x3 convolution with fp16 weights (its im2col block is scratch):
 * 1 x h x w x 8 -> 12 channels, padding 1. */
typedef struct conv_case {
    int h, w;
    float *x, *y;
} conv_case;

enum { CIN = 8, COUT = 12 };

static sdc_status conv(sdc_backend *be, conv_case *c, sdc_weight wt) {
    return be->ops->conv2d(be, SDC_F32(c->y), SDC_F32(c->x), wt, NULL, SDC_NO_BUF, 1, c->h, c->w, CIN, COUT, 3, 1, 1);
}

static conv_case conv_make(sdc_backend *be, int h, int w, uint64_t seed) {
    conv_case c = {h, w, NULL, NULL};
    float *x = test_random((size_t)h * w * CIN, seed, 1.0f);
    float *y = malloc((size_t)h * w * COUT * sizeof(float));
    for (size_t i = 0; i < (size_t)h * w * COUT; i++) y[i] = 7.0f; /* a sentinel: "nothing ran" */
    c.x = dev(be, x, (size_t)h * w * CIN);
    c.y = dev(be, y, (size_t)h * w * COUT);
    free(x), free(y);
    return c;
}

/* wtype: the weights' type (fp16 on CUDA, whose im2col then writes fp16
 * columns; fp32 on the CPU) */
static void dry_run_case(sdc_backend *be, sdc_dtype wtype) {
    cr_assert(be->ops->plan_begin && be->ops->plan_end && be->ops->scratch_bind, "the %s backend plans memory",
              be->ops->name);
    const size_t nw = (size_t)COUT * 9 * CIN;
    float *wh = test_random(nw, 3, 0.2f);
    void *wp = NULL;
    cr_assert_eq(be->ops->load_tensor(be, wtype, wh, SDC_DT_F32, nw, &wp), SDC_OK, "%s", sdc_last_error());
    const sdc_weight wt = {.p = wp, .type = wtype};
    conv_case small = conv_make(be, 5, 6, 1), big = conv_make(be, 10, 12, 2);
    const size_t n_small = (size_t)5 * 6 * COUT;

    /* the dry run: the op is checked and sized, nothing runs, nothing is
     * copied, an allocation is refused */
    const sdc_transfers t0 = be->transfers;
    const size_t a0 = be->allocations;
    cr_assert_eq(be->ops->plan_begin(be), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(conv(be, &small, wt), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->ops->conv2d(be, SDC_F32(small.y), SDC_F32(small.x), wt, NULL, SDC_NO_BUF, 1, 5, 6, CIN, COUT, 9, 1, 0), SDC_ERR_ARG,
                 "a dry run still checks the shapes");
    float *p = NULL;
    cr_assert_neq(be->ops->alloc(be, 16, &p), SDC_OK, "no allocation inside a dry run");
    cr_assert(strstr(sdc_last_error(), "dry run"), "%s", sdc_last_error());
    size_t bytes = 0;
    cr_assert_eq(be->ops->plan_end(be, &bytes), SDC_OK, "%s", sdc_last_error());
    /* im2col of 30 pixels x 72 columns (in fp16 at least), in 256-byte units */
    cr_assert(bytes >= (size_t)5 * 6 * 9 * CIN * 2 && bytes % 256 == 0, "scratch of %zu bytes", bytes);
    cr_assert_eq(be->allocations, a0, "the dry run allocated");
    cr_assert_eq(be->transfers.uploads, t0.uploads, "the dry run copied");
    float *y = download(be, small.y, n_small);
    for (size_t i = 0; i < n_small; i++) cr_assert_eq(y[i], 7.0f, "the dry run ran the convolution (y[%zu])", i);
    free(y);

    /* bound to the plan: the op runs without allocating */
    float *arena = NULL;
    cr_assert_eq(be->ops->alloc(be, bytes / sizeof(float), &arena), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->ops->scratch_bind(be, arena, bytes), SDC_OK, "%s", sdc_last_error());
    const size_t a1 = be->allocations;
    cr_assert_eq(conv(be, &small, wt), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->allocations, a1, "an op allocated with the plan bound");
    float *planned = download(be, small.y, n_small);
    /* an op needing more scratch than planned fails naming itself */
    cr_assert_neq(conv(be, &big, wt), SDC_OK, "a convolution the dry run did not see");
    cr_assert(strstr(sdc_last_error(), "conv2d") && strstr(sdc_last_error(), "memory plan"), "%s",
              sdc_last_error());
    cr_assert_eq(be->allocations, a1, "the failing op allocated");
    cr_assert_neq(be->ops->scratch_bind(be, arena, bytes - 256), SDC_OK, "less memory than the plan needs");

    /* unbound: scratch of its own again, grown on demand; the same result */
    cr_assert_eq(be->ops->scratch_bind(be, NULL, 0), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(conv(be, &big, wt), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(conv(be, &small, wt), SDC_OK, "%s", sdc_last_error());
    float *own = download(be, small.y, n_small);
    cr_assert_eq(memcmp(own, planned, n_small * sizeof(float)), 0, "planned scratch changed the result");
    float *yb = download(be, big.y, (size_t)10 * 12 * COUT);
    cr_assert_neq(yb[0], 7.0f, "the big convolution ran");
    free(own), free(planned), free(yb), free(wh);
    float *bufs[] = {small.x, small.y, big.x, big.y, arena};
    for (int i = 0; i < 5; i++) be->ops->free(be, bufs[i]);
    be->ops->free(be, wp);
    sdc_backend_destroy(be);
}

Test(plan, dry_run_sizes_scratch_and_runs_nothing_cuda) { dry_run_case(gpu_mem(0), SDC_DT_F16); }
Test(plan, dry_run_sizes_scratch_and_runs_nothing_cpu) { dry_run_case(test_cpu_backend(), SDC_DT_F32); }

static void render(sdc_ctx *ctx, const char *prompt, int size, uint64_t seed, step_probe *probe) {
    sdc_gen_params gp = sdc_gen_params_default();
    gp.prompt = prompt;
    gp.negative_prompt = "blurry";
    gp.width = gp.height = size;
    gp.steps = 4;
    gp.sampler = "euler_a"; /* noise uploaded every step */
    gp.seed = seed;
    gp.on_step = step_probe_record;
    gp.user = probe;
    sdc_image im;
    cr_assert_eq(sdc_txt2img(ctx, &gp, &im), SDC_OK, "%s", sdc_last_error());
    sdc_image_free(&im);
}

static size_t in_use(sdc_ctx *ctx) {
    size_t u = 0;
    if (ctx->be->ops->memory) ctx->be->ops->memory(ctx->be, &u, NULL);
    return u;
}

/* A render plans its memory once: after its first step nothing allocates
 * (decode included); the device memory it adds is exactly the plan's one
 * arena; a second render of the same shape (other prompts, so the text
 * encoder runs under the plan) allocates nothing at all; a new shape plans
 * anew. */
static void planned_render(sdc_backend_kind kind, int size, int size2) {
    sdc_ctx *ctx = tiny_ctx(kind, SDC_PRECISION_AUTO);
    const bool device = kind == SDC_BACKEND_CUDA;
    const size_t u0 = in_use(ctx);
    step_probe probe = {.be = ctx->be};
    render(ctx, "a red circle", size, 1, &probe);
    const size_t a1 = ctx->be->allocations;
    cr_assert_eq(a1, probe.allocs[1], "allocations after the first step of a render: %zu", a1 - probe.allocs[1]);
    const sdc_plan *pl = ctx->plan;
    cr_assert(pl && pl->arena && pl->batch == 2 && pl->images == 1, "the render's plan");
    cr_assert(pl->scratch_bytes > 0, "the dry run sized the backend's scratch");
    if (device) { /* (the CPU backend does not count its memory) */
        cr_assert_eq(in_use(ctx) - u0, pl->floats * sizeof(float),
                     "device memory added by the render: %zu bytes, the plan's arena %zu", in_use(ctx) - u0,
                     pl->floats * sizeof(float));
    }
    fprintf(stderr,
            "plan %s %dx%d: arena %.2f MiB (U-Net activations %.2f MiB and VAE %.2f MiB in the same bytes, "
            "U-Net state %.2f MiB, scratch %.2f MiB)\n",
            ctx->be->ops->name, size, size, pl->floats * 4 / 1048576.0, pl->unet.activations * 4 / 1048576.0,
            pl->vae.activations * 4 / 1048576.0, pl->unet.state * 4 / 1048576.0, pl->scratch_bytes / 1048576.0);

    render(ctx, "a blue square, on grass", size, 2, &probe);
    cr_assert_eq(ctx->be->allocations, a1, "a second render of the same shape allocated %zu times",
                 ctx->be->allocations - a1);
    cr_assert_eq(ctx->plan, pl, "the plan was kept");
    if (device) cr_assert_eq(in_use(ctx) - u0, pl->floats * sizeof(float));

    render(ctx, "a red circle", size2, 1, &probe);
    cr_assert_gt(ctx->be->allocations, a1, "a new shape plans anew");
    cr_assert_eq(ctx->plan->lh * sdc_vae_factor(&ctx->model->config.vae), size2);
    if (device) cr_assert_eq(in_use(ctx) - u0, ctx->plan->floats * sizeof(float), "the old plan was given back");
    sdc_free(ctx);
}

Test(plan, render_cpu, .timeout = 300) { planned_render(SDC_BACKEND_CPU, 32, 48); }

Test(plan, render_cuda, .timeout = 300) {
    need_device();
    if (small_shapes()) planned_render(SDC_BACKEND_CUDA, 16, 24);
    else planned_render(SDC_BACKEND_CUDA, 512, 768);
}

/* The profiler wraps the backend's ops table, and a dry run swaps in its
 * own and back: the wrapper must come back with it, or everything after
 * planning (the U-Net's convolutions) goes untimed. */
Test(plan, profiler_survives_planning, .timeout = 300) {
    need_device();
    sdc_ctx *ctx = tiny_ctx(SDC_BACKEND_CUDA, SDC_PRECISION_AUTO);
    const sdc_backend_ops *own = ctx->be->ops;
    sdc_backend_profile_enable(ctx->be);
    sdc_backend_profile_reset();
    step_probe probe = {.be = ctx->be};
    render(ctx, "a red circle", small_shapes() ? 16 : 512, 1, &probe);
    cr_assert_neq(ctx->be->ops, own, "the profiler's table is still in place after planning");
    cr_assert_gt(sdc_backend_profile_get()->calls[SDC_OP_CONV], 0, "the U-Net's convolutions were timed");
    sdc_backend_profile_disable(ctx->be);
    cr_assert_eq(ctx->be->ops, own);
    sdc_free(ctx);
}
