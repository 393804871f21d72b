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

#include "backend/backend.h"
#include "context.h"
#include "model/model.h"
#include "nets/vae_tiled.h"
#include "plan.h"
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
