/* test_vae_tiled.c - the tiled VAE (vae_tiled.c) against diffusers'
 * AutoencoderKL with enable_tiling() (tools/fixtures_vae_tiled.py: float64
 * from the fp16 weights of the tiny SD 1.x VAE, tiles of 16 pixels), fp32 on
 * the CPU backend; and the render's choice between tiled and untiled.
 *
 * Tolerance: normwise relative error <= 1e-4, as the untiled VAE's
 * (test_vae.c). Measured: decode 23x13 6.5e-07, 8x9 7.4e-07, 8x8 7.6e-07;
 * encode 46x26 7.5e-07, 16x16 5.7e-07. Blend weights reversed, blend_h left
 * out, the wrong rows or columns kept for the next tile, or tiling a latent
 * of exactly one tile each fail it by 0.4 or more. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "backend/backend.h"
#include "backend/backend_cpu.h"
#include "context.h"
#include "model/model.h"
#include "nets/vae_tiled.h"
#include "image/image.h"
#include "plan.h"
#include "st_write.h"
#include "testutil.h"

#define VAE_TOL 1e-4
#define REF FIXTURES "/vae_tiled_tiny_sd1_ref.safetensors"

typedef struct fixture {
    sdc_model_files *m;
    sdc_st_file *ref;
    sdc_backend *be;
    sdc_vae *v;
    int tile;
} fixture;

static fixture open_fixture(const char *model_path) {
    fixture x = {0};
    cr_assert_eq(sdc_model_open(model_path, &x.m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(REF, &x.ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &x.be), SDC_OK);
    cr_assert_eq(sdc_vae_load(x.m, x.be, &x.v), SDC_OK, "%s", sdc_last_error());
    x.tile = atoi(sdc_st_meta(x.ref, "tile"));
    cr_assert_eq(x.tile, 16);
    return x;
}

static void close_fixture(fixture *x) {
    sdc_vae_free(x->v);
    sdc_backend_destroy(x->be);
    sdc_st_close(x->ref);
    sdc_model_close(x->m);
}

/* Case i of the decoder (encoder): the reference's input through the tiled
 * call, its output against the reference's, NCHW. bufs: the tile buffers
 * (none: the call's own). */
static void tiled_case(fixture *x, bool decode, int i, sdc_vae_tile_bufs bufs) {
    char in_name[16], out_name[16];
    snprintf(in_name, sizeof in_name, decode ? "z%d" : "x%d", i);
    snprintf(out_name, sizeof out_name, decode ? "image%d" : "moments%d", i);
    const sdc_st_tensor *it = sdc_st_find(x->ref, in_name), *ot = sdc_st_find(x->ref, out_name);
    cr_assert(it && ot);
    const int ci = (int)it->shape[1], h = (int)it->shape[2], w = (int)it->shape[3];
    const int co = (int)ot->shape[1], oh = (int)ot->shape[2], ow = (int)ot->shape[3];
    size_t ni, no;
    float *in = ref_tensor(x->ref, in_name, &ni), *want = ref_tensor(x->ref, out_name, &no);
    float *ih = malloc(ni * sizeof(float)), *oh_ = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    sdc_nchw_to_nhwc(in, ih, 1, ci, h, w);
    const sdc_status st = decode ? sdc_vae_decode_tiled(x->v, x->tile, ih, h, w, oh_, bufs)
                                 : sdc_vae_encode_tiled(x->v, x->tile, ih, h, w, oh_, bufs);
    cr_assert_eq(st, SDC_OK, "%s", sdc_last_error());
    sdc_nhwc_to_nchw(oh_, got, 1, co, oh, ow);
    const double e = max_rel_err(got, want, no, NULL);
    if (!(e <= VAE_TOL)) print_mismatches(out_name, got, want, no, VAE_TOL, 5);
    cr_assert(e <= VAE_TOL, "tiled %s %dx%d: max rel err %.3g > %.0e", decode ? "decode" : "encode", h, w, e, VAE_TOL);
    fprintf(stderr, "vae tiled %s %dx%d (tile %d px, %s): max rel err %.2e\n", decode ? "decode" : "encode", h, w,
            x->tile, bufs.lat ? "caller's buffers" : "own buffers", e);
    free(in), free(want), free(ih), free(oh_), free(got);
}

static void all_cases(const char *model_path) {
    fixture x = open_fixture(model_path);
    for (int i = 0; i < 3; i++) tiled_case(&x, true, i, (sdc_vae_tile_bufs){0});
    for (int i = 0; i < 2; i++) tiled_case(&x, false, i, (sdc_vae_tile_bufs){0});
    close_fixture(&x);
}

Test(vae_tiled, sd1_single_file) { all_cases(FIXTURES "/tiny_sd1.safetensors"); }
Test(vae_tiled, sd1_diffusers) { all_cases(FIXTURES "/tiny_sd1_diffusers"); }

/* The caller's backend buffers, the VAE on the caller's memory (a plan's):
 * tile-sized, as sdc_vae_tiled_memory says, for every tile. */
Test(vae_tiled, callers_memory) {
    fixture x = open_fixture(FIXTURES "/tiny_sd1.safetensors");
    const int L = x.tile / sdc_vae_factor(&x.v->cfg), zc = x.v->cfg.z_channels;
    const sdc_net_memory m = sdc_vae_tiled_memory(x.v, x.tile, 23, 13);
    cr_assert_eq(m.activations, sdc_vae_memory(x.v, L, L).activations);
    float *act = NULL, *lat = NULL, *img = NULL;
    cr_assert_eq(x.be->ops->alloc(x.be, m.activations, &act), SDC_OK);
    cr_assert_eq(x.be->ops->alloc(x.be, (size_t)L * L * 2 * zc, &lat), SDC_OK);
    cr_assert_eq(x.be->ops->alloc(x.be, (size_t)x.tile * x.tile * 3, &img), SDC_OK);
    sdc_vae_use_memory(x.v, act, m);
    tiled_case(&x, true, 0, (sdc_vae_tile_bufs){lat, img});
    tiled_case(&x, false, 0, (sdc_vae_tile_bufs){lat, img});
    cr_assert(x.v->arena_ext && x.v->arena == act, "the VAE kept to the caller's memory");
    sdc_vae_use_memory(x.v, NULL, m);
    x.be->ops->free(x.be, act), x.be->ops->free(x.be, lat), x.be->ops->free(x.be, img);
    close_fixture(&x);
}

/* diffusers' trigger and the tile sizes that add up */
Test(vae_tiled, tile_rules) {
    const sdc_vae_config c = {.n_levels = 4}; /* factor 8 */
    cr_assert_eq(sdc_vae_tile_check(&c, 512), SDC_OK);
    cr_assert_eq(sdc_vae_tile_check(&c, 32), SDC_OK);
    cr_assert_eq(sdc_vae_tile_check(&c, 4096), SDC_OK);
    cr_assert_eq(sdc_vae_tile_check(&c, 40), SDC_ERR_ARG, "40 px: 5 latent pixels, a quarter is not whole");
    cr_assert(strstr(sdc_last_error(), "multiple of 32"), "%s", sdc_last_error());
    cr_assert_eq(sdc_vae_tile_check(&c, 0), SDC_ERR_ARG);
    cr_assert_eq(sdc_vae_tile_check(&c, -512), SDC_ERR_ARG);
    cr_assert_eq(sdc_vae_tile_check(&c, 4128), SDC_ERR_ARG);
    cr_assert_not(sdc_vae_tiles(&c, 512, 64, 64), "a latent of one tile is decoded whole");
    cr_assert(sdc_vae_tiles(&c, 512, 64, 65));
    cr_assert(sdc_vae_tiles(&c, 512, 65, 8));
}

/* Bad arguments are refused with a message, nothing run. */
Test(vae_tiled, bad_arguments) {
    fixture x = open_fixture(FIXTURES "/tiny_sd1.safetensors");
    float z[4 * 4 * 4] = {0}, img[8 * 8 * 3];
    cr_assert_eq(sdc_vae_decode_tiled(x.v, 12, z, 4, 4, img, (sdc_vae_tile_bufs){0}), SDC_ERR_ARG);
    cr_assert_eq(sdc_vae_decode_tiled(x.v, 16, z, 0, 4, img, (sdc_vae_tile_bufs){0}), SDC_ERR_ARG);
    cr_assert_eq(sdc_vae_decode_tiled(x.v, 16, z, 4, 4, img, (sdc_vae_tile_bufs){z, NULL}), SDC_ERR_ARG);
    cr_assert_eq(sdc_vae_encode_tiled(x.v, 16, img, 7, 8, z, (sdc_vae_tile_bufs){0}), SDC_ERR_ARG);
    close_fixture(&x);
}

/* ---- the render's choice ------------------------------------------------ */

/* what the backend says it has available, as a test sets it */
static size_t fake_avail;
static bool fake_available(sdc_backend *be, size_t *bytes) {
    (void)be;
    *bytes = fake_avail;
    return true;
}

/* A 64x64 render of the tiny model (latent 32x32) with 32-pixel tiles: its
 * pixels, and the plan's tile (0: untiled) and arena in bytes. */
static unsigned char *render(sdc_ctx *ctx, sdc_vae_tiling tiling, int *tile, size_t *arena) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle";
    g.width = g.height = 64;
    g.steps = 2;
    g.sampler = "euler";
    g.seed = 21;
    g.vae_tiling = tiling;
    g.vae_tile_size = 32;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    *tile = ctx->plan->tile;
    *arena = ctx->plan->floats * sizeof(float);
    unsigned char *rgb = img.rgb;
    img.rgb = NULL;
    cr_assert(!strstr(img.infotext, "til"), "tiling is not in the infotext: %s", img.infotext);
    sdc_image_free(&img);
    return rgb;
}

static int max_diff(const unsigned char *a, const unsigned char *b, size_t n) {
    int worst = 0;
    for (size_t i = 0; i < n; i++) worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
    return worst;
}

/* AUTO keeps the VAE whole while the untiled plan fits in what the backend
 * has available (this machine's memory; then that plan's size exactly),
 * and tiles when told a byte less: the same pixels as off, then as on. */
Test(vae_tiled, auto_tiles_when_memory_is_short, .timeout = 120) {
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    const size_t n = 64 * 64 * 3;
    int tile;
    size_t untiled, tiled, arena;
    unsigned char *off = render(ctx, SDC_VAE_TILING_OFF, &tile, &untiled);
    cr_assert_eq(tile, 0);
    unsigned char *on = render(ctx, SDC_VAE_TILING_ON, &tile, &tiled);
    cr_assert_eq(tile, 32);
    cr_assert_lt(tiled, untiled, "a tile's plan is smaller: %zu vs %zu bytes", tiled, untiled);
    cr_assert_gt(max_diff(off, on, n), 0, "tiling changes the pixels of this random VAE");
    unsigned char *a = render(ctx, SDC_VAE_TILING_AUTO, &tile, &arena);
    cr_assert_eq(tile, 0, "this machine has the memory for a 64x64 decode");
    cr_assert_eq(max_diff(a, off, n), 0);
    free(a);
    /* the backend's figure, injected */
    sdc_backend_ops ops = *ctx->be->ops;
    const sdc_backend_ops *own = ctx->be->ops;
    ops.available = fake_available;
    ctx->be->ops = &ops;
    const size_t figures[3] = {untiled, untiled - 1, 1};
    for (int k = 0; k < 3; k++) {
        fake_avail = figures[k];
        sdc_plan_release(ctx); /* a plan of the same shape would be kept */
        a = render(ctx, SDC_VAE_TILING_AUTO, &tile, &arena);
        cr_assert_eq(tile, k ? 32 : 0, "%zu bytes available for a plan of %zu", figures[k], untiled);
        cr_assert_eq(arena, k ? tiled : untiled);
        cr_assert_eq(max_diff(a, k ? on : off, n), 0, "%zu bytes available", figures[k]);
        free(a);
    }
    ctx->be->ops = own;
    fprintf(stderr, "vae tiled auto: 64x64 plans %zu bytes untiled, %zu tiled (32 px)\n", untiled, tiled);
    free(off), free(on);
    sdc_free(ctx);
}

/* Image to image encodes through the same tiles (the plan's buffers): a
 * 48x40 image with 16-pixel tiles every 12 is 4 x 4 tiles to encode, and
 * its 24x20 latent 4 x 4 tiles of 8 every 6 to decode; each tile one upload
 * and one download, where untiled the encode takes one of each and the
 * decode one download (plus, tiled, the latents' download first). */
Test(vae_tiled, img2img_encodes_in_tiles, .timeout = 120) {
    sdc_params mp = sdc_params_default();
    mp.model_path = FIXTURES "/tiny_sd1.safetensors";
    mp.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    unsigned char init[48 * 40 * 3];
    for (size_t i = 0; i < sizeof init; i++) init[i] = (unsigned char)(i * 37 % 251);
    unsigned char *px[2] = {NULL, NULL};
    sdc_transfers used[2];
    for (int k = -1; k < 2; k++) { /* -1: the prompts' encodings into the context's cache */
        const sdc_transfers t0 = ctx->be->transfers;
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = "a blue square";
        g.init_rgb = init, g.init_width = 48, g.init_height = 40;
        g.width = 48, g.height = 40;
        g.steps = 4, g.strength = 0.5, g.seed = 3;
        g.vae_tiling = k > 0 ? SDC_VAE_TILING_ON : SDC_VAE_TILING_OFF;
        g.vae_tile_size = 16;
        sdc_image img;
        cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(ctx->plan->tile, k > 0 ? 16 : 0);
        cr_assert(ctx->plan->encode);
        if (k >= 0) {
            used[k].uploads = ctx->be->transfers.uploads - t0.uploads;
            used[k].downloads = ctx->be->transfers.downloads - t0.downloads;
            px[k] = img.rgb;
            img.rgb = NULL;
        }
        sdc_image_free(&img);
    }
    cr_assert_eq(used[1].uploads - used[0].uploads, (16 - 1) + 16, "uploads %zu tiled, %zu not", used[1].uploads,
                 used[0].uploads);
    cr_assert_eq(used[1].downloads - used[0].downloads, (16 - 1) + (1 + 16 - 1), "downloads %zu tiled, %zu not",
                 used[1].downloads, used[0].downloads);
    cr_assert_gt(max_diff(px[0], px[1], sizeof init), 0);
    free(px[0]), free(px[1]);
    sdc_free(ctx);
}

/* The settings are checked before anything runs. */
Test(vae_tiled, settings_checked) {
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "x";
    cr_assert_eq(g.vae_tiling, SDC_VAE_TILING_AUTO, "auto by default");
    g.vae_tile_size = 12;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "VAE tile of 12 pixels"), "%s", sdc_last_error());
    g.vae_tile_size = 8192;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    g.vae_tile_size = 0;
    g.vae_tiling = (sdc_vae_tiling)7;
    cr_assert_eq(sdc_check_gen_params(NULL, &g), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "VAE tiling 7"), "%s", sdc_last_error());
}

/* The host's available memory: /proc/meminfo's MemAvailable, less under a
 * cgroup's limit; text that is not what the kernel writes says nothing. */
Test(vae_tiled, host_memory_figures) {
    size_t b = 0;
    cr_assert(sdc_meminfo_available("MemTotal:       24683664 kB\nMemFree:  1 kB\nMemAvailable:   23308408 kB\n", &b));
    cr_assert_eq(b, (size_t)23308408 * 1024);
    cr_assert_not(sdc_meminfo_available("MemTotal:       24683664 kB\n", &b));
    cr_assert_not(sdc_meminfo_available("MemAvailable: lots kB\n", &b));
    cr_assert_not(sdc_meminfo_available("MemAvailable: 12 MB\n", &b));
    cr_assert_not(sdc_meminfo_available("MemAvailable: 99999999999999999999999 kB\n", &b));
    cr_assert(sdc_cgroup_room("4294967296\n", "1073741824\n", &b));
    cr_assert_eq(b, (size_t)3 << 30);
    cr_assert(sdc_cgroup_room("max\n", "1073741824\n", &b));
    cr_assert_eq(b, SIZE_MAX);
    cr_assert(sdc_cgroup_room("100\n", "200\n", &b));
    cr_assert_eq(b, 0);
    cr_assert_not(sdc_cgroup_room("-5\n", "1\n", &b));
    cr_assert_not(sdc_cgroup_room("12x\n", "1\n", &b));
    cr_assert_not(sdc_cgroup_room("", "1\n", &b));
    sdc_backend *be = test_cpu_backend();
    cr_assert(be->ops->available && be->ops->available(be, &b), "this Linux machine says");
    cr_assert_gt(b, 0);
    sdc_backend_destroy(be);
}

/* The CLI's options: a forced tiling renders and says nothing of it in the
 * PNG's parameters; a tile size that is not pixels is a usage error (2),
 * one that is not a multiple of 8 an error before the model loads (1). */
static int run_sdc(const char *args, char *err, size_t cap) {
    char *dir = st_tmpdir(), *e = st_path(dir, "err"), cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>'%s'", sdc_cli_path(), args, e);
    const int rc = system(cmd);
    FILE *f = fopen(e, "rb");
    const size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = '\0';
    if (f) fclose(f);
    st_rmtree(dir);
    free(dir), free(e);
    cr_assert(WIFEXITED(rc), "sdc %s died from a signal", args);
    return WEXITSTATUS(rc);
}

Test(vae_tiled, cli_options, .timeout = 120) {
    char *dir = st_tmpdir(), *png = st_path(dir, "t.png"), args[4096], err[8192];
    const char *m = "txt2img -m " FIXTURES "/tiny_sd1.safetensors -p 'a red circle' --steps 1 --seed 1";
    snprintf(args, sizeof args, "%s -W 64 -H 48 --vae-tiling --vae-tile-size 16 -o '%s'", m, png);
    cr_assert_eq(run_sdc(args, err, sizeof err), 0, "%s", err);
    char *text = NULL;
    cr_assert_eq(sdc_png_read_parameters(png, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(!strstr(text, "til") && strstr(text, "Size: 64x48"), "%s", text);
    free(text);
    snprintf(args, sizeof args, "%s --vae-tile-size big -o '%s'", m, png);
    cr_assert_eq(run_sdc(args, err, sizeof err), 2);
    cr_assert(strstr(err, "--vae-tile-size big: expected pixels"), "%s", err);
    snprintf(args, sizeof args, "%s --vae-tile-size 20 -o '%s'", m, png);
    cr_assert_eq(run_sdc(args, err, sizeof err), 1);
    cr_assert(strstr(err, "VAE tile of 20 pixels"), "%s", err);
    snprintf(args, sizeof args, "%s -W 64 -H 48 --no-vae-tiling -o '%s'", m, png);
    cr_assert_eq(run_sdc(args, err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_sdc("txt2img --help", err, sizeof err), 0);
    st_rmtree(dir);
    free(dir), free(png);
}
