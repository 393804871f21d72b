/* test_model.c - checkpoint layouts, family detection, the derived config,
 * and clear errors for files that are not what sdc expects. Expected
 * configs are those tools/sdc_layout.py builds the fixtures from. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "model/model.h"
#include "st_write.h"
#include "testutil.h"

static sdc_model_files *open_ok(const char *path) {
    sdc_model_files *m = NULL;
    cr_assert_eq(sdc_model_open(path, &m), SDC_OK, "%s: %s", path, sdc_last_error());
    return m;
}

/* tiny configs (tools/sdc_layout.py): text 16 wide, 2 heads, 3 layers (the
 * SD 2.x diffusers copy 2), MLP 32; U-Net levels 16 32, 1 res block;
 * VAE 16 x (1 2), 1 res block, 4 latent channels. */
static void expect_tiny(const sdc_model_files *m, sdc_family fam, sdc_layout lay) {
    const sdc_model_config *c = &m->config;
    bool sd2 = fam == SDC_FAMILY_SD2, single = lay == SDC_LAYOUT_SINGLE_FILE;
    cr_assert_eq(c->family, fam, "family %s", sdc_family_name(c->family));
    cr_assert_eq(c->layout, lay);
    cr_assert_eq(c->text.vocab, 49408);
    cr_assert_eq(c->text.width, 16);
    cr_assert_eq(c->text.heads, 2);
    cr_assert_eq(c->text.ff, 32);
    cr_assert_eq(c->text.max_pos, 77);
    cr_assert_eq(c->text.layers, sd2 && !single ? 2 : 3);
    cr_assert_eq(c->text.layers_used, 2 + (!sd2));
    cr_assert_eq(c->text.act, sd2 ? SDC_ACT_GELU : SDC_ACT_QUICK_GELU);
    cr_assert_eq(c->text.pad_id, sd2 ? 0 : 49407);
    cr_assert_eq(m->text_naming, sd2 && single ? SDC_TEXT_OPENCLIP : SDC_TEXT_HF);
    const sdc_unet_config *u = &c->unet;
    cr_assert_eq(u->in_channels, 4);
    cr_assert_eq(u->out_channels, 4);
    cr_assert_eq(u->model_channels, 16);
    cr_assert_eq(u->n_levels, 2);
    cr_assert_eq(u->channels[0], 16);
    cr_assert_eq(u->channels[1], 32);
    cr_assert_eq(u->num_res_blocks, 1);
    cr_assert_eq(u->attn_depth[0], 1);
    cr_assert_eq(u->attn_depth[1], sd2 ? 1 : 0);
    cr_assert_eq(u->heads[0], 2);
    cr_assert_eq(u->heads[1], sd2 ? 4 : 2);
    cr_assert_eq(u->context_dim, 16);
    cr_assert_eq(u->linear_proj, sd2);
    cr_assert_eq(u->time_embed_dim, 64);
    const sdc_vae_config *v = &c->vae;
    cr_assert_eq(v->channels, 16);
    cr_assert_eq(v->n_levels, 2);
    cr_assert_eq(v->channels_mult[0], 1);
    cr_assert_eq(v->channels_mult[1], 2);
    cr_assert_eq(v->num_res_blocks, 1);
    cr_assert_eq(v->z_channels, 4);
    cr_assert(v->has_encoder);
    cr_assert_float_eq(v->scale_factor, 0.18215f, 1e-7f);
    /* native size: a single file says nothing (SD's 512); a diffusers
     * folder's unet sample_size 8 x the VAE's factor 2 */
    cr_assert_eq(c->image_size, lay == SDC_LAYOUT_SINGLE_FILE ? 512 : 16);
}

Test(model, sd1_single_file) {
    sdc_model_files *m = open_ok(FIXTURES "/tiny_sd1.safetensors");
    expect_tiny(m, SDC_FAMILY_SD1, SDC_LAYOUT_SINGLE_FILE);
    cr_assert_eq(m->config.unet.prediction, SDC_PRED_EPSILON);
    sdc_model_close(m);
}

Test(model, sd1_diffusers) {
    sdc_model_files *m = open_ok(FIXTURES "/tiny_sd1_diffusers");
    expect_tiny(m, SDC_FAMILY_SD1, SDC_LAYOUT_DIFFUSERS);
    cr_assert(m->tokenizer_vocab && strstr(m->tokenizer_vocab, "tokenizer/vocab.json"));
    cr_assert_str_eq(m->config.unet.prediction_source, "scheduler/scheduler_config.json");
    sdc_model_close(m);
}

Test(model, sd2_single_file) {
    sdc_model_files *m = open_ok(FIXTURES "/tiny_sd2.safetensors");
    expect_tiny(m, SDC_FAMILY_SD2, SDC_LAYOUT_SINGLE_FILE);
    sdc_model_close(m);
}

Test(model, sd2_diffusers) {
    sdc_model_files *m = open_ok(FIXTURES "/tiny_sd2_diffusers");
    expect_tiny(m, SDC_FAMILY_SD2, SDC_LAYOUT_DIFFUSERS);
    sdc_model_close(m);
}

Test(model, default_text_heads) {
    cr_assert_eq(sdc_text_default_heads(768), 12);  /* CLIP ViT-L/14 */
    cr_assert_eq(sdc_text_default_heads(1024), 16); /* OpenCLIP ViT-H */
}

/* ---- bad input: a clear error naming the file, never a crash -------------- */

static char *g_dir;

static void setup(void) { g_dir = st_tmpdir(); cr_assert(g_dir); }
static void teardown(void) {
    st_rmtree(g_dir);
    free(g_dir);
}

static void expect_error(const char *path, sdc_status code, const char *needle) {
    sdc_model_files *m = NULL;
    sdc_status st = sdc_model_open(path, &m);
    cr_assert_eq(st, code, "%s: status %d, expected %d (%s)", path, st, code, sdc_last_error());
    cr_assert_null(m);
    cr_assert(strstr(sdc_last_error(), path), "message does not name the file: %s", sdc_last_error());
    if (needle)
        cr_assert(strstr(sdc_last_error(), needle), "message lacks '%s': %s", needle, sdc_last_error());
}

/* The CLI too: non-zero exit, the message on stderr, no crash (a signal). */
static void expect_cli_error(const char *path) {
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' >/dev/null 2>&1", sdc_cli_path(), path);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "sdc inspect %s died from a signal", path);
    cr_assert_eq(WEXITSTATUS(rc), 1, "sdc inspect %s exited %d", path, WEXITSTATUS(rc));
}

static char *copy_prefix(const char *src, const char *name, long cut) {
    FILE *f = fopen(src, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (cut > 0) n -= cut;
    char *buf = malloc((size_t)n);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    char *p = st_path(g_dir, name);
    cr_assert_eq(st_write_bytes(p, buf, (size_t)n), 0);
    free(buf);
    return p;
}

TestSuite(model_errors, .init = setup, .fini = teardown);

Test(model_errors, truncated_checkpoint) {
    char *p = copy_prefix(FIXTURES "/tiny_sd1.safetensors", "cut.safetensors", 1000);
    expect_error(p, SDC_ERR_FORMAT, NULL);
    expect_cli_error(p);
    free(p);
}

Test(model_errors, header_length_past_end) {
    char *p = st_path(g_dir, "hdr.safetensors");
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    cr_assert_eq(st_write_raw_len(p, 1u << 20, h, strlen(h), "\0\0\0\0", 4), 0);
    expect_error(p, SDC_ERR_FORMAT, NULL);
    expect_cli_error(p);
    free(p);
}

Test(model_errors, overlapping_tensors) {
    char *p = st_path(g_dir, "overlap.safetensors");
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    char data[12] = {0};
    cr_assert_eq(st_write_raw(p, h, data, sizeof data), 0);
    expect_error(p, SDC_ERR_FORMAT, NULL);
    expect_cli_error(p);
    free(p);
}

Test(model_errors, wrong_byte_size) {
    char *p = st_path(g_dir, "size.safetensors");
    const char *h = "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    char data[8] = {0};
    cr_assert_eq(st_write_raw(p, h, data, sizeof data), 0);
    expect_error(p, SDC_ERR_FORMAT, "w");
    expect_cli_error(p);
    free(p);
}

Test(model_errors, header_not_json) {
    char *p = st_path(g_dir, "json.safetensors");
    cr_assert_eq(st_write_raw(p, "{\"w\": {dtype: F32 oops", "", 0), 0);
    expect_error(p, SDC_ERR_FORMAT, NULL);
    expect_cli_error(p);
    free(p);
}

Test(model_errors, not_safetensors) {
    char *p = st_path(g_dir, "notes.txt");
    const char *text = "These are my notes about Stable Diffusion, not a model file.\n";
    cr_assert_eq(st_write_bytes(p, text, strlen(text)), 0);
    expect_error(p, SDC_ERR_FORMAT, NULL);
    expect_cli_error(p);
    free(p);
}

Test(model_errors, other_model) {
    char *p = st_path(g_dir, "bert.safetensors");
    st_builder *b = st_builder_new();
    float w[8] = {0};
    int64_t shape[2] = {2, 4};
    st_builder_add_f32(b, "bert.embeddings.word_embeddings.weight", 2, shape, w);
    st_builder_add_f32(b, "bert.encoder.layer.0.attention.self.query.weight", 2, shape, w);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    expect_error(p, SDC_ERR_UNSUPPORTED, "model.diffusion_model.input_blocks.0.0.weight");
    cr_assert(strstr(sdc_last_error(), "cond_stage_model."), "%s", sdc_last_error());
    expect_cli_error(p);
    free(p);
}

Test(model_errors, sdxl_named) {
    char *p = st_path(g_dir, "sdxl.safetensors");
    st_builder *b = st_builder_new();
    float w[4] = {0};
    int64_t shape[1] = {4};
    st_builder_add_f32(b, "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias", 1, shape, w);
    st_builder_add_f32(b, "model.diffusion_model.input_blocks.0.0.bias", 1, shape, w);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    expect_error(p, SDC_ERR_UNSUPPORTED, "SDXL");
    free(p);
}

Test(model_errors, missing_path_and_empty_folder) {
    char *p = st_path(g_dir, "nope.safetensors");
    expect_error(p, SDC_ERR_IO, NULL);
    expect_cli_error(p);
    free(p);
    expect_error(g_dir, SDC_ERR_UNSUPPORTED, "unet");
}

/* ---- full size (make test-full) ------------------------------------------ */

Test(full, inspect_sd15_shaped, .timeout = 300) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    sdc_model_files *m = open_ok(FIXTURES_FULL "/full_sd1.safetensors");
    const sdc_model_config *c = &m->config;
    cr_assert_eq(c->family, SDC_FAMILY_SD1);
    cr_assert_eq(c->text.width, 768);
    cr_assert_eq(c->text.layers, 12);
    cr_assert_eq(c->text.heads, 12);
    cr_assert_eq(c->text.ff, 3072);
    cr_assert_eq(c->text.layers_used, 12);
    cr_assert_eq(c->text.act, SDC_ACT_QUICK_GELU);
    const int ch[4] = {320, 640, 1280, 1280}, depth[4] = {1, 1, 1, 0};
    cr_assert_eq(c->unet.n_levels, 4);
    for (int l = 0; l < 4; l++) {
        cr_assert_eq(c->unet.channels[l], ch[l]);
        cr_assert_eq(c->unet.attn_depth[l], depth[l]);
        cr_assert_eq(c->unet.heads[l], 8);
    }
    cr_assert_eq(c->unet.num_res_blocks, 2);
    cr_assert_eq(c->unet.context_dim, 768);
    cr_assert(!c->unet.linear_proj);
    cr_assert_eq(c->unet.time_embed_dim, 1280);
    cr_assert_eq(c->vae.channels, 128);
    const int mult[4] = {1, 2, 4, 4};
    for (int l = 0; l < 4; l++) cr_assert_eq(c->vae.channels_mult[l], mult[l]);
    cr_assert_eq(c->vae.num_res_blocks, 2);
    /* what real SD 1.5 files carry beside the weights */
    const sdc_st_tensor *pos = sdc_st_find(m->single, "cond_stage_model.transformer.text_model.embeddings.position_ids");
    cr_assert(pos && pos->dtype == SDC_DT_I64);
    cr_assert(sdc_st_find(m->single, "alphas_cumprod"));
    cr_assert_eq(sdc_st_find(m->single, "model.diffusion_model.out.2.weight")->dtype, SDC_DT_F16);
    sdc_model_close(m);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' inspect %s/full_sd1.safetensors > /dev/null", sdc_cli_path(), FIXTURES_FULL);
    int rc = system(cmd);
    cr_assert_eq(rc, 0);
}

Test(full, inspect_sd21_shaped, .timeout = 300) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    sdc_model_files *m = open_ok(FIXTURES_FULL "/full_sd2.safetensors");
    const sdc_model_config *c = &m->config;
    cr_assert_eq(c->family, SDC_FAMILY_SD2);
    cr_assert_eq(c->text.width, 1024);
    cr_assert_eq(c->text.layers, 24);
    cr_assert_eq(c->text.heads, 16);
    cr_assert_eq(c->text.layers_used, 23);
    cr_assert_eq(c->text.act, SDC_ACT_GELU);
    const int heads[4] = {5, 10, 20, 20};
    for (int l = 0; l < 4; l++) cr_assert_eq(c->unet.heads[l], heads[l]);
    cr_assert_eq(c->unet.context_dim, 1024);
    cr_assert(c->unet.linear_proj);
    sdc_model_close(m);
}
