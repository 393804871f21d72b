/* test_preview.c - live previews: the cheap projection and TAESD's decoder
 * against tools/fixtures_preview.py (AUTOMATIC1111's code and taesd.py's
 * Decoder in PyTorch), hostile TAESD files, the x0 estimate, and that
 * previews leave the image unchanged bit for bit. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "nets/taesd.h"
#include "preview.h"
#include "sdc.h"
#include "st_write.h"
#include "testutil.h"

#define PV FIXTURES "/preview"
#define TAESD_F16 PV "/taesd_tiny.safetensors"
#define TAESD_F32 PV "/taesd_tiny_f32.safetensors"
#define REF PV "/preview_ref.safetensors"

/* TAESD's decoder on the CPU against taesd.py's in float64 on the same
 * weights: normwise relative error at most 1e-5 (measured 3.7e-7: fp32
 * sums of at most 72 products, through 31 convolutions). */
#define TAESD_TOL 1e-5

/* a, b: n bytes; the largest difference and how many differ */
static int u8_diff(const unsigned char *a, const unsigned char *b, size_t n, int *count) {
    int worst = 0;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d) (*count)++;
        if (d > worst) worst = d;
    }
    return worst;
}

/* The cheap projection and its 8-bit conversion as A1111's torch code:
 * every byte equal (measured: 189 of 189; the sums of 4 products round
 * alike, and no value lies on a truncation boundary). */
Test(preview, cheap_matches_a1111) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(REF, &ref), SDC_OK, "%s", sdc_last_error());
    size_t n;
    float *x0 = ref_tensor(ref, "cheap_x0", &n), *nhwc = malloc(n * sizeof(float));
    const sdc_st_tensor *want = sdc_st_find(ref, "cheap_rgb");
    cr_assert(want && want->dtype == SDC_DT_U8 && want->numel == 7 * 9 * 3);
    sdc_nchw_to_nhwc(x0, nhwc, 1, 4, 7, 9);
    unsigned char rgb[7 * 9 * 3];
    sdc_preview_cheap(nhwc, 7, 9, false, rgb);
    int count, worst = u8_diff(rgb, want->data, sizeof rgb, &count);
    fprintf(stderr, "preview cheap: %d of %zu bytes differ, by at most %d\n", count, sizeof rgb, worst);
    cr_assert_eq(worst, 0, "cheap preview: %d bytes differ from A1111's, by up to %d", count, worst);
    /* SDXL's latent space has coefficients of its own */
    unsigned char xl[7 * 9 * 3];
    const sdc_st_tensor *want_xl = sdc_st_find(ref, "cheap_rgb_xl");
    cr_assert(want_xl && want_xl->dtype == SDC_DT_U8 && want_xl->numel == 7 * 9 * 3);
    sdc_preview_cheap(nhwc, 7, 9, true, xl);
    worst = u8_diff(xl, want_xl->data, sizeof xl, &count);
    cr_assert_eq(worst, 0, "SDXL cheap preview: %d bytes differ from A1111's, by up to %d", count, worst);
    cr_assert_neq(memcmp(xl, rgb, sizeof xl), 0);
    /* the corners clamp: white at (0, 0), black at (6, 8) */
    cr_assert(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255);
    cr_assert(rgb[sizeof rgb - 3] == 0 && rgb[sizeof rgb - 2] == 0 && rgb[sizeof rgb - 1] == 0);
    free(x0), free(nhwc);
    sdc_st_close(ref);
}

/* the tiny decoder's output for the reference latent: (40, 48, 3) NHWC host */
static float *taesd_run(const char *path, sdc_backend *be, int *oh, int *ow) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(REF, &ref), SDC_OK, "%s", sdc_last_error());
    sdc_taesd *t = NULL;
    cr_assert_eq(sdc_taesd_load(path, 4, be, &t), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(t->c, 8, "the width is read from the file");
    size_t n;
    float *z = ref_tensor(ref, "taesd_z", &n), *zh = malloc(n * sizeof(float));
    sdc_nchw_to_nhwc(z, zh, 1, 4, 5, 6);
    const size_t m = (size_t)40 * 48 * 3;
    float *dz = NULL, *dy = NULL, *y = malloc(m * sizeof(float));
    cr_assert_eq(be->ops->alloc(be, n, &dz), SDC_OK);
    cr_assert_eq(be->ops->alloc(be, m, &dy), SDC_OK);
    cr_assert_eq(be->ops->upload(be, dz, zh, n), SDC_OK);
    cr_assert_eq(sdc_taesd_decode(t, dz, 5, 6, dy), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(be->ops->download(be, y, dy, m), SDC_OK);
    be->ops->free(be, dz), be->ops->free(be, dy);
    sdc_taesd_free(t);
    free(z), free(zh);
    sdc_st_close(ref);
    *oh = 40, *ow = 48;
    return y;
}

Test(preview, taesd_matches_pytorch) {
    sdc_backend *be = test_cpu_backend();
    int h, w;
    float *y = taesd_run(TAESD_F16, be, &h, &w), *y32 = taesd_run(TAESD_F32, be, &h, &w);
    const size_t m = (size_t)h * w * 3;
    cr_assert_eq(memcmp(y, y32, m * sizeof(float)), 0, "the F16 and F32 files hold the same values");
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(REF, &ref), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *rt = sdc_st_find(ref, "taesd_out");
    cr_assert(rt && rt->dtype == SDC_DT_F64 && (size_t)rt->numel == m);
    double *want = malloc(m * sizeof(double));
    const double *src = rt->data; /* (1, 3, h, w) NCHW */
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < (size_t)h * w; p++) want[p * 3 + c] = src[(size_t)c * h * w + p];
    size_t worst;
    const double e = max_rel_err_f64(y, want, m, &worst);
    fprintf(stderr, "preview taesd: max rel err %.2e (worst at %zu: %.7f vs %.7f)\n", e, worst, (double)y[worst],
            want[worst]);
    check_close_f64(TAESD_TOL, "taesd decoder", y, want, m);
    /* A1111's 8-bit conversion of it; the reference converted torch's
     * float32 output, ours: truncation may differ by 1 where a value lies
     * within float32 rounding of a boundary (measured: 0 of 5760) */
    const sdc_st_tensor *u8 = sdc_st_find(ref, "taesd_rgb");
    cr_assert(u8 && u8->dtype == SDC_DT_U8 && (size_t)u8->numel == m);
    unsigned char *rgb = malloc(m);
    sdc_preview_taesd_u8(y, m, rgb);
    int count, d = u8_diff(rgb, u8->data, m, &count);
    fprintf(stderr, "preview taesd 8-bit: %d of %zu bytes differ, by at most %d\n", count, m, d);
    cr_assert(d <= 1 && count <= 3, "TAESD 8-bit: %d bytes differ, by up to %d", count, d);
    free(rgb), free(want), free(y), free(y32);
    sdc_st_close(ref);
    sdc_backend_destroy(be);
}

/* ------------------------------------------------- hostile TAESD files */

/* taesd_tiny.safetensors rewritten with one change */
typedef struct variant {
    const char *drop;       /* left out */
    const char *rename, *to; /* this tensor under that name */
    const char *reshape;    /* this tensor with shape[0..ndim) (its bytes as they are) */
    int ndim;
    int64_t shape[4];
    const char *bf16;       /* this tensor stored as BF16 */
    const char *extra;      /* one more tensor, 8 values */
} variant;

static char *write_variant(const char *dir, const char *name, const variant *v) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(TAESD_F16, &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        if (v->drop && !strcmp(t->name, v->drop)) continue;
        const char *nm = v->rename && !strcmp(t->name, v->rename) ? v->to : t->name;
        if (v->reshape && !strcmp(t->name, v->reshape)) {
            cr_assert_eq(st_builder_add(b, nm, "F16", v->ndim, v->shape, t->data, t->nbytes), 0);
        } else if (v->bf16 && !strcmp(t->name, v->bf16)) {
            float *x = malloc((size_t)t->numel * sizeof(float));
            cr_assert_eq(sdc_st_to_f32(f, t, x), SDC_OK);
            cr_assert_eq(st_builder_add_bf16(b, nm, t->ndim, t->shape, x), 0);
            free(x);
        } else {
            cr_assert_eq(st_builder_add(b, nm, "F16", t->ndim, t->shape, t->data, t->nbytes), 0);
        }
    }
    if (v->extra) {
        const float x[8] = {0};
        const int64_t s[1] = {8};
        cr_assert_eq(st_builder_add_f32(b, v->extra, 1, s, x), 0);
    }
    char *path = st_path(dir, name);
    cr_assert_eq(st_builder_write(b, path), 0);
    st_builder_free(b);
    sdc_st_close(f);
    return path;
}

/* the file is refused with `code`, the message naming it and each of want[] */
static void refused(sdc_backend *be, const char *path, int z, sdc_status code, const char *const *want, int n) {
    sdc_taesd *t = NULL;
    const sdc_status st = sdc_taesd_load(path, z, be, &t);
    const char *msg = sdc_last_error();
    cr_assert_eq(st, code, "%s: status %d, expected %d (%s)", path, st, code, msg);
    cr_assert_null(t);
    cr_assert(strstr(msg, path), "the message names the file: %s", msg);
    for (int i = 0; i < n; i++) cr_assert(strstr(msg, want[i]), "'%s' not in: %s", want[i], msg);
}

Test(preview, taesd_hostile_files) {
    sdc_backend *be = test_cpu_backend();
    char *dir = st_tmpdir();
    static const variant cases[] = {
        {.reshape = "8.conv.2.weight", .ndim = 4, .shape = {8, 8, 9, 1}},
        {.drop = "12.weight"},
        {.extra = "7.bias"},
        {.bf16 = "19.bias"},
        {.rename = "1.weight", .to = "0.weight"},
        {.rename = "1.weight", .to = "decoder.layers.0.weight"},
        {.reshape = "1.weight", .ndim = 3, .shape = {8, 4, 9}},
    };
    static const char *const want[][3] = {
        {"tensor 8.conv.2.weight", "shape (8, 8, 9, 1)", "expected (8, 8, 3, 3)"},
        {"tensor 12.weight is missing", "", ""},
        {"tensor 7.bias is not part of madebyollin/taesd's decoder", "", ""},
        {"tensor 19.bias is BF16", "expected F16 or F32", ""},
        {"1.weight is missing", "encoder", ""},
        {"1.weight is missing", "AutoencoderTiny", ""},
        {"1.weight has shape (8, 4, 9)", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        char *path = write_variant(dir, name, &cases[i]);
        refused(be, path, 4, SDC_ERR_FORMAT, want[i], 3);
        free(path);
    }
    /* a decoder for other latents, a file that is not safetensors, none */
    const char *const z16[1] = {"latent channels"};
    refused(be, TAESD_F16, 16, SDC_ERR_UNSUPPORTED, z16, 1);
    char *text = st_path(dir, "notes.safetensors");
    cr_assert_eq(st_write_bytes(text, "hello, not a model\n", 19), 0);
    sdc_taesd *t = NULL;
    cr_assert_neq(sdc_taesd_load(text, 4, be, &t), SDC_OK);
    cr_assert(strstr(sdc_last_error(), text), "%s", sdc_last_error());
    cr_assert_eq(sdc_taesd_load("", 4, be, &t), SDC_ERR_ARG);
    /* through sdc_load: the model loads, then the TAESD file is refused by name */
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    mp.taesd_path = text;
    sdc_ctx *ctx = NULL;
    cr_assert_neq(sdc_load(&mp, &ctx), SDC_OK);
    cr_assert_null(ctx);
    cr_assert(strstr(sdc_last_error(), text), "%s", sdc_last_error());
    st_rmtree(dir);
    free(text), free(dir);
    sdc_backend_destroy(be);
}

/* ------------------------------------------------- previews in a render */

typedef struct pv_probe {
    int every, calls, last_step, steps, w, h, bad;
    unsigned char *last; /* the last preview's pixels */
} pv_probe;

static void record(int step, int steps, const unsigned char *rgb, int w, int h, void *user) {
    pv_probe *p = user;
    if (step < 1 || step > steps || step % p->every || step <= p->last_step) p->bad++;
    p->calls++;
    p->last_step = step, p->steps = steps, p->w = w, p->h = h;
    p->last = realloc(p->last, (size_t)w * h * 3);
    memcpy(p->last, rgb, (size_t)w * h * 3);
}

static sdc_ctx *load(const char *model, const char *taesd) {
    sdc_params mp = sdc_params_default();
    mp.model_path = model;
    mp.backend = SDC_BACKEND_CPU;
    mp.taesd_path = taesd;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    return ctx;
}

typedef struct run_case {
    const char *sampler;
    bool karras;
    float eta, cfg;
    int steps;
} run_case;

static sdc_gen_params gen(const run_case *c, unsigned long long seed) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a small red circle on a blue background";
    g.negative_prompt = "green";
    g.width = 32, g.height = 24;
    g.sampler = c->sampler, g.karras = c->karras, g.eta = c->eta, g.cfg_scale = c->cfg, g.steps = c->steps;
    g.seed = seed;
    return g;
}

static void same_image(const sdc_image *a, const sdc_image *b, size_t nl, const char *what) {
    cr_assert_eq(a->width, b->width);
    cr_assert_eq(a->height, b->height);
    cr_assert_eq(memcmp(a->latents, b->latents, nl * sizeof(float)), 0, "%s: the latents changed", what);
    cr_assert_eq(memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3), 0, "%s: the pixels changed", what);
    cr_assert_str_eq(a->infotext, b->infotext, "%s", what);
}

/* Every sampler (the ones that add noise too), with and without guidance,
 * SD 1.x and SD 2.x (v-prediction): the image with cheap previews at every
 * step, and with TAESD's every second step (the decoder loaded, so the
 * render's memory is planned with it), is the image without, bit for bit;
 * the previews come when asked, at their sizes. */
Test(preview, result_unchanged, .timeout = 300) {
    static const run_case cases[] = {
        {"ddim", false, 0.0f, 7.5f, 4}, {"ddim", false, 0.5f, 7.5f, 4}, {"ddpm", false, 0.0f, 7.5f, 5},
        {"euler", false, 0.0f, 7.5f, 4}, {"euler", true, 0.0f, 1.0f, 4}, {"euler_a", false, 0.0f, 7.5f, 5},
        {"dpmpp_2m", false, 0.0f, 7.5f, 5}, {"dpmpp_2m", true, 0.0f, 7.5f, 4},
    };
    const char *models[2] = {FIXTURES "/tiny_sd1.safetensors", FIXTURES "/tiny_sd2.safetensors"};
    for (int m = 0; m < 2; m++) {
        sdc_ctx *plain = load(models[m], NULL), *with = load(models[m], TAESD_F16);
        const size_t nl = (size_t)4 * 12 * 16; /* the tiny VAE's factor is 2 */
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            if (m == 1 && i % 2) continue; /* SD 2.x: every other case */
            const run_case *c = &cases[i];
            sdc_gen_params g = gen(c, 40 + i);
            sdc_image ref, cheap, taesd;
            cr_assert_eq(sdc_txt2img(plain, &g, &ref), SDC_OK, "%s", sdc_last_error());
            pv_probe pc = {.every = 1}, pt = {.every = 2};
            g.on_preview = record, g.user = &pc;
            cr_assert_eq(sdc_txt2img(with, &g, &cheap), SDC_OK, "%s", sdc_last_error());
            g.preview = SDC_PREVIEW_TAESD, g.preview_every = 2, g.user = &pt;
            cr_assert_eq(sdc_txt2img(with, &g, &taesd), SDC_OK, "%s", sdc_last_error());
            char what[64];
            snprintf(what, sizeof what, "%s %s%s eta %g cfg %g", models[m], c->sampler, c->karras ? " karras" : "",
                     (double)c->eta, (double)c->cfg);
            same_image(&cheap, &ref, nl, what);
            same_image(&taesd, &ref, nl, what);
            cr_assert(!pc.bad && !pt.bad, "%s: a preview at a step not asked for", what);
            cr_assert_eq(pc.calls, c->steps, "%s: %d cheap previews", what, pc.calls);
            cr_assert_eq(pt.calls, c->steps / 2, "%s: %d TAESD previews", what, pt.calls);
            cr_assert(pc.w == 32 && pc.h == 24 && pt.w == 32 && pt.h == 24, "%s: sizes %dx%d, %dx%d (the image's)",
                      what, pc.w, pc.h, pt.w, pt.h);
            sdc_image_free(&ref), sdc_image_free(&cheap), sdc_image_free(&taesd);
            free(pc.last), free(pt.last);
        }
        sdc_free(plain), sdc_free(with);
    }
}

/* A batch: each job previews through its own callback; the images are
 * the batch's without previews. */
Test(preview, batch_jobs_preview_each, .timeout = 300) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors", TAESD_F32);
    const run_case c = {"euler_a", false, 0.0f, 7.0f, 4};
    sdc_gen_params g[2] = {gen(&c, 5), gen(&c, 6)};
    g[1].prompt = "a green square";
    sdc_image ref[2], got[2];
    cr_assert_eq(sdc_txt2img_batch(ctx, g, 2, ref), SDC_OK, "%s", sdc_last_error());
    pv_probe p[2] = {{.every = 1}, {.every = 3}};
    for (int i = 0; i < 2; i++) g[i].on_preview = record, g[i].user = &p[i];
    g[1].preview = SDC_PREVIEW_TAESD, g[1].preview_every = 3;
    cr_assert_eq(sdc_txt2img_batch(ctx, g, 2, got), SDC_OK, "%s", sdc_last_error());
    for (int i = 0; i < 2; i++) {
        same_image(&got[i], &ref[i], (size_t)4 * 12 * 16, "batch");
        sdc_image_free(&ref[i]), sdc_image_free(&got[i]);
        free(p[i].last);
    }
    cr_assert(p[0].calls == 4 && p[1].calls == 1 && !p[0].bad && !p[1].bad, "calls %d, %d", p[0].calls, p[1].calls);
    cr_assert(p[0].w == 32 && p[1].w == 32, "the image's width");
    sdc_free(ctx);
}

/* The estimate is x0: at the last step of Euler and DPM++ 2M (sigma to 0)
 * the update lands on it, so the last preview is the cheap projection of
 * the final latents. Tolerance: 1 level on at most 2 bytes of 576, for a
 * last rounding of the update (measured: equal). Previewing x instead of
 * x0 fails it (x is still sigma_last * eps away). */
Test(preview, last_estimate_is_the_result, .timeout = 300) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors", NULL);
    const run_case cases[2] = {{"euler", false, 0.0f, 7.5f, 4}, {"dpmpp_2m", false, 0.0f, 7.5f, 4}};
    for (int i = 0; i < 2; i++) {
        sdc_gen_params g = gen(&cases[i], 77);
        pv_probe p = {.every = 1};
        g.on_preview = record, g.user = &p;
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
        float nhwc[4 * 12 * 16];
        unsigned char want[12 * 16 * 3], got[12 * 16 * 3];
        sdc_nchw_to_nhwc(img.latents, nhwc, 1, 4, 12, 16);
        sdc_preview_cheap(nhwc, 12, 16, false, want);
        cr_assert(p.w == 32 && p.h == 24);
        for (int y = 0; y < 24; y++) /* each latent pixel is 2 x 2 image pixels (the tiny VAE's factor) */
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) {
                    const unsigned char v = p.last[(y * 32 + x) * 3 + c];
                    if (y % 2 == 0 && x % 2 == 0) got[((y / 2) * 16 + x / 2) * 3 + c] = v;
                    else cr_assert_eq(v, p.last[((y & ~1) * 32 + (x & ~1)) * 3 + c], "not a 2 x 2 block at %d,%d", x, y);
                }
        int count, d = u8_diff(got, want, sizeof want, &count);
        fprintf(stderr, "preview %s: last estimate vs the result, %d bytes differ, by at most %d\n",
                cases[i].sampler, count, d);
        cr_assert(d <= 1 && count <= 2, "%s: the last preview differs from the result in %d bytes, by up to %d",
                  cases[i].sampler, count, d);
        sdc_image_free(&img);
        free(p.last);
    }
    sdc_free(ctx);
}

/* An SDXL render previews with SDXL's coefficients: the last Euler
 * estimate is the final latents (as above), each latent pixel an 8 x 8
 * block of the tiny SDXL model's image. Tolerance as above. */
Test(preview, sdxl_coefficients, .timeout = 300) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sdxl.safetensors", NULL);
    const run_case c = {"euler", false, 0.0f, 5.0f, 3};
    sdc_gen_params g = gen(&c, 9);
    g.width = 64, g.height = 48;
    pv_probe p = {.every = 1};
    g.on_preview = record, g.user = &p;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    cr_assert(p.w == 64 && p.h == 48);
    float nhwc[4 * 6 * 8];
    unsigned char want[6 * 8 * 3], got[6 * 8 * 3];
    sdc_nchw_to_nhwc(img.latents, nhwc, 1, 4, 6, 8);
    sdc_preview_cheap(nhwc, 6, 8, true, want);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) memcpy(got + (y * 8 + x) * 3, p.last + ((y * 8) * 64 + x * 8) * 3, 3);
    int count, d = u8_diff(got, want, sizeof want, &count);
    cr_assert(d <= 1 && count <= 2, "the last SDXL preview differs in %d bytes, by up to %d", count, d);
    sdc_preview_cheap(nhwc, 6, 8, false, want);
    d = u8_diff(got, want, sizeof want, &count);
    cr_assert(d > 1, "an SDXL preview made with SD 1.x's coefficients would look the same?");
    sdc_image_free(&img);
    free(p.last);
    sdc_free(ctx);
}

Test(preview, settings_checked) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors", NULL);
    const run_case c = {"ddim", false, 0.0f, 7.5f, 2};
    sdc_gen_params g = gen(&c, 1);
    pv_probe p = {.every = 1};
    g.preview_every = 0; /* not looked at without on_preview */
    cr_assert_eq(sdc_check_gen_params(ctx, &g), SDC_OK, "%s", sdc_last_error());
    g.on_preview = record, g.user = &p;
    cr_assert_eq(sdc_check_gen_params(ctx, &g), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "preview every 0 steps"), "%s", sdc_last_error());
    g.preview_every = 1001;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    g.preview_every = 1;
    g.preview = (sdc_preview_method)7;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    g.preview = SDC_PREVIEW_TAESD;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_OK, "without a model: nothing to say yet");
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "no TAESD decoder was loaded"), "%s", sdc_last_error());
    cr_assert_eq(p.calls, 0);
    sdc_free(ctx);
}
