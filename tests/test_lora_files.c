/* test_lora_files.c - LoRA and embedding inputs that are not the reference
 * formats' happy path: A1111's <lora:...> tag syntax, --lora arguments,
 * hostile or wrong LoRA files (each a clear error naming the file and the
 * key, the weights left as the checkpoint's), restoring the checkpoint's
 * weights bit for bit after a LoRA, and textual-inversion embeddings in
 * A1111's 75-token chunks. LoRA files here are written by the test on the
 * tiny SD 1.x model's own weight names and shapes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "context.h"
#include "lora_apply.h"
#include "text/conditioning.h"
#include "text/extra_networks.h"
#include "text/prompt.h"
#include "text/token_text.h"
#include "st_write.h"
#include "testutil.h"

#define MODEL FIXTURES "/tiny_sd1.safetensors"

/* ---- tags ---------------------------------------------------------------- */

static void parse_ok(const char *prompt, const char *text, int n, const char *name0, double te0, double unet0) {
    char *s = NULL;
    sdc_lora_ref *r = NULL;
    int nr = -1;
    cr_assert_eq(sdc_extra_networks_parse(prompt, &s, &r, &nr), SDC_OK, "%s: %s", prompt, sdc_last_error());
    cr_assert_str_eq(s, text, "%s", prompt);
    cr_assert_eq(nr, n, "%s: %d LoRAs", prompt, nr);
    if (n) {
        cr_assert_str_eq(r[0].name, name0);
        cr_assert(r[0].te == te0 && r[0].unet == unet0, "%s: te %g unet %g", prompt, r[0].te, r[0].unet);
    }
    free(s);
    sdc_lora_refs_free(r, nr);
}

static void parse_fails(const char *prompt, const char *why) {
    char *s = NULL;
    sdc_lora_ref *r = NULL;
    int nr = 0;
    cr_assert_eq(sdc_extra_networks_parse(prompt, &s, &r, &nr), SDC_ERR_ARG, "%s parsed", prompt);
    cr_assert(strstr(sdc_last_error(), why), "%s: %s", prompt, sdc_last_error());
    cr_assert_null(s);
}

Test(lora_tags, a1111_syntax) {
    parse_ok("a castle <lora:oil:0.8>, night", "a castle , night", 1, "oil", 0.8, 0.8);
    parse_ok("<lora:oil>", "", 1, "oil", 1.0, 1.0);
    parse_ok("<lora:oil:0.5:1.5> x", " x", 1, "oil", 0.5, 1.5);
    parse_ok("<lora:oil:te=0.25:unet=2>", "", 1, "oil", 0.25, 2.0);
    parse_ok("<lora:oil:0.5:unet=2>", "", 1, "oil", 0.5, 2.0);
    parse_ok("<lora:oil:te=0.3>", "", 1, "oil", 0.3, 0.3);  /* unet follows te, te= included */
    parse_ok("<lyco:oil: -1e-1 >", "", 1, "oil", -0.1, -0.1); /* float() strips whitespace */
    parse_ok("<lora:a:1><lora:b:2>", "", 2, "a", 1.0, 1.0);
    /* not tags: no word before ':', nothing after it, no '>' */
    parse_ok("a <b> <:x> <lora:> <lora:x", "a <b> <:x> <lora:> <lora:x", 0, NULL, 0, 0);
    /* [^>]+ runs over '<' and line breaks, as the regular expression does */
    parse_ok("<lora:a<b:1>", "", 1, "a<b", 1.0, 1.0);
    parse_fails("<hypernet:x:1>", "not <hypernet:...>");
    parse_fails("<lóra:x:1>", "not <lóra:...>"); /* \w is Unicode */
    parse_fails("<lora::1>", "no LoRA name");
    parse_fails("<lora:x:abc>", "\"abc\" is not a number");
    parse_fails("<lora:x:1_0>", "is not a number");
    parse_fails("<lora:x:inf>", "not finite");
    parse_fails("<lora:x:nan:1>", "not finite");
    parse_fails("<lora:x:1:2:3>", "dynamic dimension");
    parse_fails("<lora:x:dyn=4>", "dyn=");
    parse_fails("<lora:x:foo=1>", "unknown argument foo=");
}

Test(lora_tags, lora_arguments) {
    sdc_lora_ref r;
    cr_assert_eq(sdc_lora_ref_parse_arg("a.safetensors", &r), SDC_OK);
    cr_assert(!strcmp(r.name, "a.safetensors") && r.te == 1.0 && r.unet == 1.0);
    free(r.name);
    cr_assert_eq(sdc_lora_ref_parse_arg("d/a.safetensors:0.7", &r), SDC_OK);
    cr_assert(!strcmp(r.name, "d/a.safetensors") && r.te == 0.7 && r.unet == 0.7);
    free(r.name);
    cr_assert_eq(sdc_lora_ref_parse_arg("x:y.safetensors:0.25:1.5", &r), SDC_OK);
    cr_assert(!strcmp(r.name, "x:y.safetensors") && r.te == 0.25 && r.unet == 1.5, "%s %g %g", r.name, r.te, r.unet);
    free(r.name);
    cr_assert_eq(sdc_lora_ref_parse_arg(":0.5", &r), SDC_ERR_ARG);
    cr_assert_eq(sdc_lora_ref_parse_arg("a:inf", &r), SDC_ERR_ARG);
}

/* ---- files ---------------------------------------------------------------- */

typedef struct fixture {
    sdc_ctx *ctx;
    char *dir;
    const sdc_weight_src *q;     /* the first cross-attention to_k of the U-Net */
    const sdc_weight_src *conv;  /* the first res block's conv1 (3x3) */
    const sdc_weight_src *te_q;  /* text layer 0's q_proj */
} fixture;

static const sdc_weight_src *find_src(const sdc_weight_set *s, const char *part) {
    for (int i = 0; i < s->n_srcs; i++)
        if (strstr(s->srcs[i].name, part)) return &s->srcs[i];
    cr_assert_fail("no weight named like %s", part);
    return NULL;
}

static fixture setup(void) {
    fixture f = {0};
    f.dir = st_tmpdir();
    cr_assert(f.dir);
    sdc_params mp = sdc_params_default();
    mp.model_path = MODEL;
    mp.backend = SDC_BACKEND_CPU;
    mp.lora_dir = f.dir;
    cr_assert_eq(sdc_load(&mp, &f.ctx), SDC_OK, "%s", sdc_last_error());
    f.q = find_src(&f.ctx->unet->weights, "attn2.to_k.weight");
    f.conv = find_src(&f.ctx->unet->weights, "resnets.0.conv1.weight");
    f.te_q = find_src(&f.ctx->te->weights, "layers.0.self_attn.q_proj.weight");
    return f;
}

static void teardown(fixture *f) {
    sdc_free(f->ctx);
    st_rmtree(f->dir);
    free(f->dir);
}

/* a (rows, cols) tensor of small deterministic values */
static void add_mat(st_builder *b, const char *name, int64_t rows, int64_t cols, uint64_t seed) {
    float *v = test_random((size_t)(rows * cols), seed, 0.3f);
    const int64_t shape[2] = {rows, cols};
    cr_assert_eq(st_builder_add_f32(b, name, 2, shape, v), 0);
    free(v);
}

static void add_scalar(st_builder *b, const char *name, float v) {
    cr_assert_eq(st_builder_add_f32(b, name, 0, NULL, &v), 0);
}

/* kohya's key of a weight: lora_unet_ / lora_te_ + its module, '.' as '_' */
static void kohya_key(const char *prefix, const sdc_weight_src *s, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", prefix, s->name);
    out[strlen(out) - 7] = '\0'; /* ".weight" */
    for (char *c = out + strlen(prefix); *c; c++)
        if (*c == '.') *c = '_';
}

/* key.lora_down.weight (4, down_cols) and, unless up_rows is 0,
 * key.lora_up.weight (up_rows, 4): a rank-4 module, values from seed and
 * seed + 1 */
static void add_pair(st_builder *b, const char *key, int64_t down_cols, int64_t up_rows, uint64_t seed) {
    char n[600];
    snprintf(n, sizeof n, "%s.lora_down.weight", key);
    add_mat(b, n, 4, down_cols, seed);
    if (!up_rows) return;
    snprintf(n, sizeof n, "%s.lora_up.weight", key);
    add_mat(b, n, up_rows, 4, seed + 1);
}

/* the same on a weight of the model, under kohya's key */
static void add_kohya(st_builder *b, const char *prefix, const sdc_weight_src *s, int64_t down_cols, int64_t up_rows,
                      uint64_t seed) {
    char k[512];
    kohya_key(prefix, s, k, sizeof k);
    add_pair(b, k, down_cols, up_rows, seed);
}

static void write(st_builder *b, const fixture *f, const char *name) {
    char *p = st_path(f->dir, name);
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    st_builder_free(b);
}

/* A valid kohya LoRA on the cross-attention to_k and text layer 0's q_proj. */
static st_builder *good_lora(const fixture *f) {
    st_builder *b = st_builder_new();
    char k[512], n[600];
    add_kohya(b, "lora_unet_", f->q, f->q->cols, f->q->rows, 1);
    kohya_key("lora_unet_", f->q, k, sizeof k);
    snprintf(n, sizeof n, "%s.alpha", k);
    add_scalar(b, n, 2.0f);
    add_kohya(b, "lora_te_", f->te_q, f->te_q->cols, f->te_q->rows, 3);
    return b;
}

/* A render of the tests' size, steps and seed. */
static sdc_gen_params small(const char *prompt) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = prompt;
    g.width = g.height = 32;
    g.steps = 2;
    g.seed = 5;
    return g;
}

static sdc_image render(sdc_ctx *ctx, const char *prompt) {
    sdc_gen_params g = small(prompt);
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s: %s", prompt, sdc_last_error());
    return img;
}

static void same_image(const sdc_image *a, const sdc_image *b, bool want_same, const char *what) {
    const size_t n = (size_t)4 * (a->width / 8) * (a->height / 8);
    const bool same = !memcmp(a->latents, b->latents, n * sizeof(float));
    cr_assert(same == want_same, "%s: the latents %s", what, same ? "are the same" : "differ");
}

/* The prompt fails with an error containing `why`, and the weights are the
 * checkpoint's after it. */
static void fails(fixture *f, const char *prompt, const char *why, const sdc_image *base) {
    sdc_gen_params g = small(prompt);
    sdc_image img;
    cr_assert_neq(sdc_txt2img(f->ctx, &g, &img), SDC_OK, "%s rendered", prompt);
    cr_assert(strstr(sdc_last_error(), why), "%s: \"%s\" does not say \"%s\"", prompt, sdc_last_error(), why);
    fprintf(stderr, "%s -> %s\n", prompt, sdc_last_error());
    sdc_image again = render(f->ctx, "a red circle");
    same_image(&again, base, true, prompt);
    sdc_image_free(&again);
}

Test(lora_files, bad_files_are_clear_errors, .timeout = 120) {
    fixture f = setup();
    sdc_image base = render(f.ctx, "a red circle");
    char k[512], n[600];
    /* SDXL's text encoders */
    st_builder *b = st_builder_new();
    add_pair(b, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768, 1);
    write(b, &f, "xl.safetensors");
    fails(&f, "a red circle <lora:xl:1>", "a LoRA for SDXL", &base);
    /* no key of this model */
    b = st_builder_new();
    add_pair(b, "lora_unet_nothing_here", 16, 16, 1);
    write(b, &f, "none.safetensors");
    fails(&f, "a red circle <lora:none:1>", "no module of this LoRA names a weight", &base);
    /* one good module, one of no weight */
    b = good_lora(&f);
    add_pair(b, "lora_unet_nothing_here", 16, 16, 1);
    write(b, &f, "partial.safetensors");
    fails(&f, "a red circle <lora:partial:1>", "lora_unet_nothing_here names no weight", &base);
    /* a shape that does not fit (the rank disagrees; SD 2.x's context width) */
    b = st_builder_new();
    add_kohya(b, "lora_unet_", f.q, f.q->cols * 2, f.q->rows, 1);
    write(b, &f, "shape.safetensors");
    fails(&f, "a red circle <lora:shape:1>", "does not fit the model's", &base);
    /* a 3x3 convolution given a 1x1 down without lora_mid */
    b = st_builder_new();
    add_kohya(b, "lora_unet_", f.conv, f.conv->cols, f.conv->rows, 1);
    write(b, &f, "conv.safetensors");
    fails(&f, "a red circle <lora:conv:1>", "does not fit", &base);
    /* a module without its up half */
    b = st_builder_new();
    add_kohya(b, "lora_unet_", f.q, f.q->cols, 0, 1);
    write(b, &f, "half.safetensors");
    fails(&f, "a red circle <lora:half:1>", "has no lora_up", &base);
    /* tensors of no LoRA format; LoKr */
    b = good_lora(&f);
    add_mat(b, "lora_unet_x.weird", 2, 2, 1);
    write(b, &f, "weird.safetensors");
    fails(&f, "a red circle <lora:weird:1>", "lora_unet_x.weird is no part of a LoRA", &base);
    b = st_builder_new();
    add_mat(b, "lora_unet_x.lokr_w1", 2, 2, 1);
    write(b, &f, "lokr.safetensors");
    fails(&f, "a red circle <lora:lokr:1>", "LoKr", &base);
    /* an alpha that is not one number; integer tensors */
    b = good_lora(&f);
    kohya_key("lora_te_", f.te_q, k, sizeof k);
    snprintf(n, sizeof n, "%s.alpha", k);
    add_mat(b, n, 1, 2, 1);
    write(b, &f, "alpha.safetensors");
    fails(&f, "a red circle <lora:alpha:1>", "expected one float", &base);
    /* not a safetensors file; a pickle; no such name; a path as the name */
    char *p = st_path(f.dir, "junk.safetensors");
    cr_assert_eq(st_write_bytes(p, "not a safetensors file at all", 29), 0);
    free(p);
    fails(&f, "a red circle <lora:junk:1>", "junk.safetensors", &base);
    p = st_path(f.dir, "old.pt");
    cr_assert_eq(st_write_bytes(p, "\x80\x02}q\x00.", 6), 0);
    free(p);
    fails(&f, "a red circle <lora:old:1>", "pickle", &base);
    fails(&f, "a red circle <lora:missing:1>", "no missing.safetensors in", &base);
    fails(&f, "a red circle <lora:../x:1>", "without folder", &base);
    sdc_image_free(&base);
    teardown(&f);
}

Test(lora_files, switching_restores_the_checkpoint_bit_for_bit, .timeout = 120) {
    fixture f = setup();
    sdc_image base = render(f.ctx, "a red circle");
    write(good_lora(&f), &f, "good.safetensors");
    sdc_image with = render(f.ctx, "a red circle <lora:good:0.9>");
    same_image(&with, &base, false, "with the LoRA");
    cr_assert(strstr(with.infotext, "Lora hashes: \"good: "), "%s", with.infotext);
    cr_assert(strstr(with.infotext, "a red circle <lora:good:0.9>\n"), "the prompt keeps its tag: %s", with.infotext);
    cr_assert_eq(f.ctx->lora.switches, 1);
    cr_assert(with.seconds_lora > 0);
    /* back and forth: no drift */
    for (int i = 0; i < 3; i++) {
        sdc_image none = render(f.ctx, "a red circle");
        same_image(&none, &base, true, "the LoRA taken out");
        cr_assert(!strstr(none.infotext, "Lora hashes"), "%s", none.infotext);
        sdc_image_free(&none);
        sdc_image again = render(f.ctx, "a red circle <lora:good:0.9>");
        same_image(&again, &with, true, "the LoRA merged again");
        sdc_image_free(&again);
    }
    cr_assert_eq(f.ctx->lora.switches, 7);
    /* the same set again: no switch */
    sdc_image same = render(f.ctx, "a red circle, <lora:good:0.9>");
    cr_assert_eq(same.seconds_lora, 0.0);
    cr_assert_eq(f.ctx->lora.switches, 7);
    sdc_image_free(&same);
    /* a multiplier of 0 is no change; --lora's file gives the tag's image */
    sdc_image zero = render(f.ctx, "a red circle <lora:good:0>");
    same_image(&zero, &base, true, "multiplier 0");
    sdc_image_free(&zero);
    char *path = st_path(f.dir, "good.safetensors");
    sdc_lora l = {path, 0.9, 0.9};
    sdc_gen_params g = small("a red circle");
    g.loras = &l, g.n_loras = 1;
    sdc_image cli;
    cr_assert_eq(sdc_txt2img(f.ctx, &g, &cli), SDC_OK, "%s", sdc_last_error());
    same_image(&cli, &with, true, "--lora FILE:0.9");
    cr_assert(strstr(cli.infotext, "a red circle <lora:good:0.9>\n"), "%s", cli.infotext);
    sdc_image_free(&cli);
    free(path);
    /* jobs of one batch must share their LoRAs */
    sdc_gen_params two[2] = {sdc_gen_params_default(), sdc_gen_params_default()};
    for (int i = 0; i < 2; i++) two[i].width = two[i].height = 32, two[i].steps = 2;
    two[0].prompt = "a <lora:good:1>";
    two[1].prompt = "b";
    sdc_image out[2];
    cr_assert_eq(sdc_txt2img_batch(f.ctx, two, 2, out), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "other LoRAs"), "%s", sdc_last_error());
    sdc_image_free(&with);
    sdc_image_free(&base);
    teardown(&f);
}

/* ---- embeddings ------------------------------------------------------------- */

static void write_embedding(const char *dir, const char *file, const char *key, int n, int width, uint64_t seed) {
    st_builder *b = st_builder_new();
    float *v = test_random((size_t)n * width, seed, 0.5f);
    const int64_t shape[2] = {n, width};
    cr_assert_eq(st_builder_add_f32(b, key, 2, shape, v), 0);
    char *p = st_path(dir, file);
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p), free(v);
    st_builder_free(b);
}

Test(embeddings, chunks_as_a1111_counts_them, .timeout = 60) {
    char *dir = st_tmpdir();
    write_embedding(dir, "sdcthree.safetensors", "emb_params", 3, 16, 1);
    write_embedding(dir, "sdcwide.safetensors", "emb_params", 2, 768, 2); /* another family's width */
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_open_default(NULL, NULL, NULL, &tok), SDC_OK, "%s", sdc_last_error());
    sdc_embedding_db *db = NULL;
    cr_assert_eq(sdc_embeddings_load(dir, tok, 16, &db), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(db->n, 2);
    /* 73 words, then the 3-vector embedding: it does not fit (73 + 3 > 75),
     * so it starts the second chunk */
    char prompt[1024] = "";
    for (int i = 0; i < 73; i++) strcat(prompt, "cat ");
    strcat(prompt, "sdcthree dog");
    sdc_prompt p;
    cr_assert_eq(sdc_prompt_tokenize_ti(tok, prompt, 49407, db, &p), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(p.n_chunks, 2);
    cr_assert_eq(p.n_fixes, 1);
    cr_assert(p.fixes[0].chunk == 1 && p.fixes[0].offset == 0, "fix at chunk %d offset %d", p.fixes[0].chunk,
              p.fixes[0].offset);
    cr_assert(p.chunks[1].ids[1] == 0 && p.chunks[1].ids[2] == 0 && p.chunks[1].ids[3] == 0 &&
              p.chunks[1].ids[4] != 0, "three placeholders, then dog");
    cr_assert(p.chunks[0].ids[73] == p.chunks[0].ids[1] && p.chunks[0].ids[74] == 49407,
              "chunk 1 holds the 73 cats, padded");
    sdc_prompt_free(&p);
    /* 72 words: it fits at 72..74 */
    prompt[0] = '\0';
    for (int i = 0; i < 72; i++) strcat(prompt, "cat ");
    strcat(prompt, "(sdcthree:1.5)");
    cr_assert_eq(sdc_prompt_tokenize_ti(tok, prompt, 49407, db, &p), SDC_OK, "%s", sdc_last_error());
    cr_assert(p.n_chunks == 1 && p.n_fixes == 1 && p.fixes[0].offset == 72);
    cr_assert(p.chunks[0].weights[73] == 1.5f && p.chunks[0].weights[75] == 1.5f);
    sdc_prompt_free(&p);
    /* an unusable embedding is an error only where a prompt names it */
    cr_assert_eq(sdc_prompt_tokenize_ti(tok, "a sdcwide cat", 49407, db, &p), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "width 768") && strstr(sdc_last_error(), "16 wide"), "%s", sdc_last_error());
    cr_assert_eq(sdc_prompt_tokenize_ti(tok, "a wide cat", 49407, db, &p), SDC_OK);
    cr_assert_eq(p.n_fixes, 0);
    sdc_prompt_free(&p);
    sdc_embeddings_free(db);
    sdc_tokenizer_free(tok);
    st_rmtree(dir);
    free(dir);
}

Test(embeddings, bad_folder_and_files, .timeout = 60) {
    sdc_params mp = sdc_params_default();
    mp.model_path = MODEL;
    mp.backend = SDC_BACKEND_CPU;
    mp.embeddings_dir = "tests/fixtures/no-such-folder";
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_ERR_IO);
    cr_assert(strstr(sdc_last_error(), "no-such-folder"), "%s", sdc_last_error());
    char *dir = st_tmpdir();
    write_embedding(dir, "sdctwo.safetensors", "emb_params", 2, 16, 3);
    write_embedding(dir, "sdcmany.safetensors", "emb_params", 76, 16, 4);
    char *p = st_path(dir, "sdcpickle.pt");
    cr_assert_eq(st_write_bytes(p, "\x80\x02}q\x00.", 6), 0);
    free(p);
    st_builder *b = st_builder_new(); /* two tensors, neither emb_params */
    const int64_t shape[2] = {1, 16};
    float v[16] = {0};
    st_builder_add_f32(b, "a", 2, shape, v);
    st_builder_add_f32(b, "b", 2, shape, v);
    p = st_path(dir, "sdctwotensors.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    st_builder_free(b);
    mp.embeddings_dir = dir;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    static const struct { const char *prompt, *why; } bad[] = {
        {"a sdcmany", "76 vectors"},
        {"a sdcpickle", "pickle"},
        {"a sdctwotensors", "none is emb_params"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float *z = NULL;
        int n = 0;
        cr_assert_neq(sdc_encode_conditioning(ctx, bad[i].prompt, &z, &n), SDC_OK, "%s", bad[i].prompt);
        cr_assert(strstr(sdc_last_error(), bad[i].why), "%s: %s", bad[i].prompt, sdc_last_error());
    }
    /* the good one changes the conditioning at its two positions only */
    float *with = NULL, *without = NULL;
    int n1 = 0, n2 = 0;
    cr_assert_eq(sdc_encode_conditioning(ctx, "a sdctwo", &with, &n1), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_encode_conditioning(ctx, "a two", &without, &n2), SDC_OK);
    cr_assert(n1 == 1 && n2 == 1);
    cr_assert(memcmp(with, without, 2 * 16 * sizeof(float)) == 0, "BOS and 'a' come before it (causal)");
    cr_assert(memcmp(with + 2 * 16, without + 2 * 16, 16 * sizeof(float)) != 0);
    free(with), free(without);
    sdc_free(ctx);
    st_rmtree(dir);
    free(dir);
}

/* ---- diffusers' older key layouts ----------------------------------------- */

/* peft.safetensors rewritten: each tensor's name through `rename` (NULL:
 * left out), the bytes as they are. */
static void rewrite(const char *to, const char *(*rename)(const char *name, char *buf, size_t cap)) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(FIXTURES "/lora/peft.safetensors", &f), SDC_OK, "%s", sdc_last_error());
    st_builder *b = st_builder_new();
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        char buf[512];
        const char *n = rename(t->name, buf, sizeof buf);
        if (!n) continue;
        cr_assert_eq(st_builder_add(b, n, sdc_dtype_name(t->dtype), t->ndim, t->shape, t->data, t->nbytes), 0);
    }
    cr_assert_eq(st_builder_write(b, to), 0);
    st_builder_free(b);
    sdc_st_close(f);
}

/* s with its suffix `from` replaced by `to` into buf; NULL if s lacks it */
static const char *swap_suffix(const char *s, const char *from, const char *to, char *buf, size_t cap) {
    const size_t n = strlen(s), k = strlen(from);
    if (n < k || strcmp(s + n - k, from)) return NULL;
    snprintf(buf, cap, "%.*s%s", (int)(n - k), s, to);
    return buf;
}

/* convert_state_dict_to_diffusers: U-Net .lora.down/.up, text .lora_linear_layer.down/.up */
static const char *converted(const char *name, char *buf, size_t cap) {
    const bool te = !strncmp(name, "text_encoder.", 13);
    const char *r = swap_suffix(name, ".lora_A.weight", te ? ".lora_linear_layer.down.weight" : ".lora.down.weight",
                                buf, cap);
    return r ? r : swap_suffix(name, ".lora_B.weight", te ? ".lora_linear_layer.up.weight" : ".lora.up.weight", buf, cap);
}

/* the U-Net's attention projections only, PEFT's names */
static const char *attention_only(const char *name, char *buf, size_t cap) {
    if (strncmp(name, "unet.", 5) || !strstr(name, ".attn") || strstr(name, ".processor")) return NULL;
    snprintf(buf, cap, "%s", name);
    return buf;
}

/* the same as attention processors name them: no prefix, attn1.processor.to_q_lora.down.weight */
static const char *processors(const char *name, char *buf, size_t cap) {
    if (!attention_only(name, buf, cap)) return NULL;
    static const char *const mod[4] = {".to_q", ".to_k", ".to_v", ".to_out.0"}, *const proc[4] = {
        ".processor.to_q_lora", ".processor.to_k_lora", ".processor.to_v_lora", ".processor.to_out_lora"};
    for (int m = 0; m < 4; m++)
        for (int ab = 0; ab < 2; ab++) {
            char from[64], to[64];
            snprintf(from, sizeof from, "%s%s", mod[m], ab ? ".lora_B.weight" : ".lora_A.weight");
            snprintf(to, sizeof to, "%s%s", proc[m], ab ? ".up.weight" : ".down.weight");
            char tmp[512];
            if (swap_suffix(name + 5, from, to, tmp, sizeof tmp)) {
                snprintf(buf, cap, "%s", tmp);
                return buf;
            }
        }
    return NULL;
}

Test(lora_files, diffusers_older_layouts, .timeout = 120) {
    fixture f = setup();
    char *p = st_path(f.dir, "converted.safetensors");
    rewrite(p, converted);
    free(p);
    p = st_path(f.dir, "attn.safetensors");
    rewrite(p, attention_only);
    free(p);
    p = st_path(f.dir, "procs.safetensors");
    rewrite(p, processors);
    free(p);
    sdc_lora l = {FIXTURES "/lora/peft.safetensors", 0.9, 0.9};
    sdc_gen_params g = small("a red circle");
    g.loras = &l, g.n_loras = 1;
    sdc_image want;
    cr_assert_eq(sdc_txt2img(f.ctx, &g, &want), SDC_OK, "%s", sdc_last_error());
    sdc_image got = render(f.ctx, "a red circle <lora:converted:0.9>");
    same_image(&got, &want, true, "convert_state_dict_to_diffusers' names");
    sdc_image_free(&got);
    sdc_image attn = render(f.ctx, "a red circle <lora:attn:0.9>");
    sdc_image procs = render(f.ctx, "a red circle <lora:procs:0.9>");
    same_image(&procs, &attn, true, "attention processors' names");
    same_image(&attn, &want, false, "the attention subset");
    sdc_image_free(&attn), sdc_image_free(&procs), sdc_image_free(&want);
    teardown(&f);
}

/* NAME.safetensors in a subfolder of the LoRA folder is found, or a file
 * whose ss_output_name is NAME; two of one name are an error that names
 * both places. */
Test(lora_files, subfolders, .timeout = 60) {
    fixture f = setup();
    char *sub = st_path(f.dir, "styles"), *sub2 = st_path(f.dir, "more");
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(mkdir(sub2, 0755), 0);
    st_builder *b = good_lora(&f);
    char *p = st_path(sub, "deep.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    p = st_path(sub, "twice.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    p = st_path(sub2, "twice.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    st_builder_free(b);
    sdc_image img = render(f.ctx, "a red circle <lora:deep:1>");
    cr_assert(strstr(img.infotext, "Lora hashes: \"deep: "), "%s", img.infotext);
    /* by its alias, as A1111 writes tags: the same weights, the alias in the hashes */
    b = good_lora(&f);
    st_builder_meta(b, "ss_output_name", "Deep Style v2");
    p = st_path(sub, "deep_style_v2_000010.safetensors");
    cr_assert_eq(st_builder_write(b, p), 0);
    free(p);
    st_builder_free(b);
    sdc_image alias = render(f.ctx, "a red circle <lora:Deep Style v2:1>");
    same_image(&alias, &img, true, "the LoRA by its alias");
    cr_assert(strstr(alias.infotext, "Lora hashes: \"Deep Style v2: "), "%s", alias.infotext);
    sdc_image_free(&alias);
    sdc_image_free(&img);
    sdc_gen_params g = small("a red circle <lora:twice:1>");
    cr_assert_neq(sdc_txt2img(f.ctx, &g, &img), SDC_OK);
    cr_assert(strstr(sdc_last_error(), "2 files named twice.safetensors"), "%s", sdc_last_error());
    free(sub), free(sub2);
    teardown(&f);
}
