/* test_weights.c - the one weight loader (src/model/weights.c) stages each
 * tensor in the file's own type. A checkpoint whose tensors are the same
 * values in other types must load to the same weights: the tiny SD 1.x
 * model rewritten with every other F16 tensor widened to F32 (exact), so
 * that stacked tensors (q, k, v) mix types, renders bit for bit what the
 * all-F16 file renders on the CPU; and the file rewritten in BF16 loads
 * and renders finite images (its values are rounded, so not the same). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "model/safetensors.h"
#include "nets/text_encoder.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "sdc.h"
#include "st_write.h"
#include "testutil.h"

/* src rewritten to dst: F16 tensors whose index % every == 0 (every 0:
 * none) widened to F32, or all F16 tensors narrowed to BF16 (bf16 true). */
static void rewrite(const char *src, const char *dst, int every, bool bf16) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(src, &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    int k = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        if (t->dtype != SDC_DT_F16) {
            cr_assert_eq(st_builder_add(b, t->name, sdc_dtype_name(t->dtype), t->ndim, t->shape, t->data, t->nbytes), 0);
            continue;
        }
        const uint16_t *h = t->data;
        const size_t n = (size_t)t->numel;
        if (bf16) {
            uint16_t *o = malloc(n * 2);
            for (size_t j = 0; j < n; j++) o[j] = sdc_f32_to_bf16(sdc_f16_to_f32(h[j]));
            cr_assert_eq(st_builder_add(b, t->name, "BF16", t->ndim, t->shape, o, n * 2), 0);
            free(o);
        } else if (every && k++ % every == 0) {
            float *o = malloc(n * 4);
            for (size_t j = 0; j < n; j++) o[j] = sdc_f16_to_f32(h[j]);
            cr_assert_eq(st_builder_add(b, t->name, "F32", t->ndim, t->shape, o, n * 4), 0);
            free(o);
        } else {
            cr_assert_eq(st_builder_add(b, t->name, "F16", t->ndim, t->shape, t->data, t->nbytes), 0);
        }
    }
    for (int i = 0; i < f->n_meta; i++) st_builder_meta(b, f->meta_keys[i], f->meta_values[i]);
    cr_assert_eq(st_builder_write(b, dst), 0);
    st_builder_free(b);
    sdc_st_close(f);
}

/* prompt NULL: "a red circle"; in_place: whether the CPU must have read
 * the matrices and kernels in place from the file (1), copied them all
 * (0), or either (-1) */
static void render_with(const char *model, const char *prompt, int in_place, sdc_image *out) {
    sdc_params p = sdc_params_default();
    p.model_path = model;
    p.backend = SDC_BACKEND_CPU;
    p.lora_dir = FIXTURES "/lora";
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&p, &ctx), SDC_OK, "%s: %s", model, sdc_last_error());
    const sdc_weight_set *sets[3] = {&ctx->te->weights, &ctx->unet->weights, &ctx->vae->weights};
    for (int i = 0; i < 3 && in_place >= 0; i++) {
        cr_assert_eq(sets[i]->in_place_bytes > 0, in_place == 1, "%s: network %d: %zu bytes read in place", model, i,
                     sets[i]->in_place_bytes);
        int kernels = 0;
        for (int j = 0; j < sets[i]->n_srcs; j++) {
            const sdc_weight_src *w = &sets[i]->srcs[j];
            if (w->k == 3 && in_place == 1) /* every 3x3 kernel, in PyTorch's layout */
                cr_assert(w->in_place && w->w.pt_taps == 9, "%s: %s copied", model, w->name);
            if (w->k == 3) kernels++;
            if (in_place == 0) cr_assert(!w->in_place && w->w.pt_taps == 0, "%s: %s read in place", model, w->name);
        }
        cr_assert(i == 0 || kernels > 0, "no 3x3 kernels in network %d", i);
    }
    /* the token embedding: rows read from the file's view, or a copy */
    if (in_place >= 0)
        cr_assert_eq(ctx->te->weights.n_host, in_place ? 0 : 1, "%s: %d host tables copied", model,
                     ctx->te->weights.n_host);
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = prompt ? prompt : "a red circle";
    g.negative_prompt = "blue";
    g.width = g.height = 32;
    g.steps = 2;
    g.sampler = "dpmpp_2m";
    g.seed = 3;
    cr_assert_eq(sdc_txt2img(ctx, &g, out), SDC_OK, "%s", sdc_last_error());
    sdc_free(ctx);
}

static void render(const char *model, sdc_image *out) { render_with(model, NULL, -1, out); }

Test(weights, file_types_load_the_same, .timeout = 120) {
    char *dir = st_tmpdir(), *mixed = st_path(dir, "mixed.safetensors"), *bf = st_path(dir, "bf16.safetensors");
    rewrite(FIXTURES "/tiny_sd1.safetensors", mixed, 2, false);
    rewrite(FIXTURES "/tiny_sd1.safetensors", bf, 0, true);
    sdc_image a, b, c;
    render(FIXTURES "/tiny_sd1.safetensors", &a);
    render(mixed, &b);
    render(bf, &c);
    const size_t nl = (size_t)4 * 16 * 16, npx = (size_t)32 * 32 * 3;
    cr_assert(memcmp(a.latents, b.latents, nl * sizeof(float)) == 0, "F16 and mixed F16/F32 files render differently");
    cr_assert(memcmp(a.rgb, b.rgb, npx) == 0);
    for (size_t i = 0; i < nl; i++) cr_assert(isfinite(c.latents[i]), "BF16 file: latent %zu is %g", i, c.latents[i]);
    cr_assert(memcmp(a.latents, c.latents, nl * sizeof(float)) != 0, "BF16 rounding changed nothing: not loaded?");
    sdc_image_free(&a), sdc_image_free(&b), sdc_image_free(&c);
    st_rmtree(dir);
    free(dir), free(mixed), free(bf);
}

/* The CPU reads fp16, bf16 and fp32 matrices and kernels in place from
 * the file's mapping (kernels in PyTorch's layout, turned as they are
 * widened), and the text encoder's token embedding a row at a time;
 * SDC_NO_MMAP=1 copies them as before. Both render bit for
 * bit the same: the products see the same fp32 values in the same order.
 * A LoRA on weights read in place reloads them into memory of their own
 * first (the mapping is read-only), and its merge is the same too. */
static void in_place_case(const char *model) {
    const char *lora = "a red circle <lora:kohya:0.8>";
    const size_t nl = (size_t)4 * 16 * 16, npx = (size_t)32 * 32 * 3;
    sdc_image a, b, la, lb;
    render_with(model, NULL, 1, &a);
    render_with(model, lora, 1, &la);
    setenv("SDC_NO_MMAP", "1", 1);
    render_with(model, NULL, 0, &b);
    render_with(model, lora, 0, &lb);
    unsetenv("SDC_NO_MMAP");
    cr_assert(memcmp(a.latents, b.latents, nl * sizeof(float)) == 0, "%s: in place and copied render differently",
              model);
    cr_assert(memcmp(a.rgb, b.rgb, npx) == 0);
    cr_assert(memcmp(la.latents, lb.latents, nl * sizeof(float)) == 0, "%s: the LoRA renders differently", model);
    cr_assert(memcmp(a.latents, la.latents, nl * sizeof(float)) != 0, "%s: the LoRA changed nothing", model);
    sdc_image_free(&a), sdc_image_free(&b), sdc_image_free(&la), sdc_image_free(&lb);
}

Test(weights, read_in_place, .timeout = 240) {
    char *dir = st_tmpdir(), *f32 = st_path(dir, "f32.safetensors"), *bf = st_path(dir, "bf16.safetensors");
    rewrite(FIXTURES "/tiny_sd1.safetensors", f32, 1, false);
    rewrite(FIXTURES "/tiny_sd1.safetensors", bf, 0, true);
    in_place_case(FIXTURES "/tiny_sd1.safetensors");
    in_place_case(f32);
    in_place_case(bf);
    st_rmtree(dir);
    free(dir), free(f32), free(bf);
}

/* A host table reads its rows exactly as the file's values widened to
 * fp32, in each type the loader keeps (F16, BF16, F32) and in one it
 * converts at load (F64). Values: a spread of bit patterns, subnormals
 * and both signs included. */
Test(weights, host_table_rows) {
    enum { ROWS = 37, COLS = 24 };
    const int64_t shape[2] = {ROWS, COLS};
    uint16_t h[ROWS * COLS], bf[ROWS * COLS];
    float f[ROWS * COLS];
    double d[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) {
        h[i] = (uint16_t)(i * 71 + 3); /* fp16 patterns up to 0xf6... (both signs), subnormals included; */
        if ((h[i] & 0x7c00) == 0x7c00) h[i] ^= 0x4000; /* no inf or NaN: exponent 31 becomes 15 */
        bf[i] = (uint16_t)(0x3f80 + i * 13 - 200 + (i % 2 ? 0x8000 : 0));
        f[i] = sdc_f16_to_f32(h[i]) * 3.0f;
        d[i] = (double)f[i] / 7.0;
    }
    char *dir = st_tmpdir(), *path = st_path(dir, "tables.safetensors");
    st_builder *b = st_builder_new();
    cr_assert_eq(st_builder_add(b, "f16", "F16", 2, shape, h, sizeof h), 0);
    cr_assert_eq(st_builder_add(b, "bf16", "BF16", 2, shape, bf, sizeof bf), 0);
    cr_assert_eq(st_builder_add(b, "f32", "F32", 2, shape, f, sizeof f), 0);
    cr_assert_eq(st_builder_add(b, "f64", "F64", 2, shape, d, sizeof d), 0);
    cr_assert_eq(st_builder_write(b, path), 0);
    st_builder_free(b);
    sdc_st_file *file = NULL;
    cr_assert_eq(sdc_st_open(path, &file), SDC_OK, "%s", sdc_last_error());
    sdc_backend *be = test_cpu_backend();
    sdc_weight_set set = {0};
    sdc_loader L;
    sdc_loader_init_file(&L, file, "tables", be, &set);
    const char *names[4] = {"f16", "bf16", "f32", "f64"};
    const sdc_dtype kept[4] = {SDC_DT_F16, SDC_DT_BF16, SDC_DT_F32, SDC_DT_F32};
    float row[COLS];
    for (int k = 0; k < 4; k++) {
        sdc_host_table t;
        cr_assert_eq(sdc_load_host_table(&L, &t, ROWS, COLS, names[k]), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(t.type, kept[k], "%s kept as %d", names[k], t.type);
        for (int r = 0; r < ROWS; r++) {
            sdc_host_table_row(&t, r, row);
            for (int c = 0; c < COLS; c++) {
                const int i = r * COLS + c;
                const float want = k == 0 ? sdc_f16_to_f32(h[i]) : k == 1 ? sdc_bf16_to_f32(bf[i]) : k == 2 ? f[i]
                                                                                                       : (float)d[i];
                cr_assert(memcmp(&row[c], &want, sizeof want) == 0, "%s[%d][%d]: %a, expected %a", names[k], r, c,
                          (double)row[c], (double)want);
            }
        }
    }
    sdc_host_table t;
    cr_assert_neq(sdc_load_host_table(&L, &t, ROWS + 1, COLS, "f16"), SDC_OK, "a table of another shape is refused");
    cr_assert(strstr(sdc_last_error(), "f16") && strstr(sdc_last_error(), "expected (38, 24)"), "%s", sdc_last_error());
    cr_assert_eq(set.n_host, 4, "the loader over one file copies its tables");
    sdc_loader_done(&L);
    sdc_weight_set_free(&set, be);
    sdc_backend_destroy(be);
    sdc_st_close(file);
    st_rmtree(dir);
    free(dir), free(path);
}
