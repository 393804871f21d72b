/* vae_tiled.c - the VAE in overlapping tiles with diffusers' blending
 * (vae_tiled.h). Each tile goes through sdc_vae_decode or
 * sdc_vae_encode_moments on tile-sized backend buffers; the blending is
 * done on the host, a tile at a time. */
#include "nets/vae_tiled.h"

#include <stdlib.h>
#include <string.h>

static int imin(int a, int b) { return a < b ? a : b; }

sdc_status sdc_vae_tile_check(const sdc_vae_config *c, int tile_px) {
    const int q = 4 * sdc_vae_factor(c);
    if (tile_px < q || tile_px > SDC_VAE_TILE_MAX || tile_px % q)
        return sdc_fail(SDC_ERR_ARG, "VAE tile of %d pixels: expected a multiple of %d (4 times the VAE's factor %d, "
                        "so that a quarter of a tile is whole latent pixels) from %d to %d", tile_px, q, q / 4, q,
                        SDC_VAE_TILE_MAX);
    return SDC_OK;
}

bool sdc_vae_tiles(const sdc_vae_config *c, int tile_px, int h, int w) {
    const int L = tile_px / sdc_vae_factor(c);
    return h > L || w > L;
}

sdc_net_memory sdc_vae_tiled_memory(const sdc_vae *v, int tile_px, int h, int w) {
    const int L = tile_px / sdc_vae_factor(&v->cfg);
    return sdc_vae_memory(v, imin(L, h), imin(L, w));
}

/* One tiled pass. Sizes in input pixels (tile, step) and output pixels
 * (blend, limit); the output is the input times num / den (f / 1 for the
 * decoder, 1 / f for the encoder). The host buffers hold one tile. */
typedef struct tiler {
    sdc_vae *v;
    sdc_vae_tile_bufs b;
    bool decode;
    int in_h, in_w, in_c, out_c;
    int num, den;
    int tile, step;      /* a tile's side and the step between tiles: diffusers' overlap_size */
    int blend, limit;    /* blend_extent and row_limit */
    int tile_out, cols;  /* a tile's output side; tiles in a row */
    const float *src;    /* (in_h, in_w, in_c) the whole input */
    float *dst;          /* (out_h, out_w, out_c) the whole output */
    float *in;           /* (tile, tile, in_c) a tile's input */
    float *out;          /* (tile_out, tile_out, out_c) its output, blended in place */
    float *above;        /* (cols, blend, tile_out, out_c): per column, the last rows of the tile
                          * above, blended; above_n of them */
    float *left;         /* (tile_out, blend, out_c): the last columns of the tile to the left,
                          * blended; left_n of them */
    int above_n, left_n;
} tiler;

static int out_size(const tiler *t, int in) { return (int)((long long)in * t->num / t->den); }

/* The input's th x tw tile at (i0, j0) through the VAE into t->out. */
static sdc_status run_tile(tiler *t, int i0, int j0, int th, int tw) {
    sdc_backend *be = t->v->be;
    const size_t row = (size_t)tw * t->in_c, n_out = (size_t)out_size(t, th) * out_size(t, tw) * t->out_c;
    for (int y = 0; y < th; y++)
        memcpy(t->in + (size_t)y * row, t->src + ((size_t)(i0 + y) * t->in_w + j0) * t->in_c, row * sizeof(float));
    if (t->decode) {
        SDC_TRY(be->ops->upload(be, t->b.lat, t->in, (size_t)th * row));
        SDC_TRY(sdc_vae_decode(t->v, t->b.lat, th, tw, t->b.img));
        return be->ops->download(be, t->out, t->b.img, n_out);
    }
    SDC_TRY(be->ops->upload(be, t->b.img, t->in, (size_t)th * row));
    SDC_TRY(sdc_vae_encode_moments(t->v, t->b.img, th, tw, t->b.lat));
    return be->ops->download(be, t->out, t->b.lat, n_out);
}

/* diffusers' blend weights: a * (1 - y / e) + b * (y / e), each weight a
 * Python float that torch rounds to the tensor's float32 */
static float mix(float a, float b, int y, int e) {
    const double r = (double)y / e;
    return a * (float)(1.0 - r) + b * (float)r;
}

/* blend_v: the tile's (oh, ow) first rows with the last rows of the one
 * above (a: the kept n of its rows, each ow wide) */
static void blend_v(const tiler *t, const float *a, int n, int oh, int ow) {
    const int e = imin(imin(n, oh), t->blend);
    const size_t row = (size_t)ow * t->out_c;
    for (int y = 0; y < e; y++) {
        const float *ar = a + (size_t)(n - e + y) * row;
        float *br = t->out + (size_t)y * row;
        for (size_t k = 0; k < row; k++) br[k] = mix(ar[k], br[k], y, e);
    }
}

/* blend_h: the tile's first columns with the last columns of the one to
 * its left (a: (oh, blend, C), its kept n columns first in each row) */
static void blend_h(const tiler *t, const float *a, int n, int oh, int ow) {
    const int e = imin(imin(n, ow), t->blend), C = t->out_c;
    for (int y = 0; y < oh; y++) {
        const float *ar = a + (size_t)y * t->blend * C;
        float *br = t->out + (size_t)y * ow * C;
        for (int x = 0; x < e; x++)
            for (int c = 0; c < C; c++) br[x * C + c] = mix(ar[(n - e + x) * C + c], br[x * C + c], x, e);
    }
}

/* After blending: keep the tile's last rows for the tile below and its
 * last columns for the tile to the right; its first `limit` rows and
 * columns go to the output at (oi, oj). */
static void keep_and_place(tiler *t, int col, int oh, int ow, int oi, int oj) {
    const int C = t->out_c, out_w = out_size(t, t->in_w);
    const size_t row = (size_t)ow * C;
    t->above_n = imin(oh, t->blend);
    float *ab = t->above + (size_t)col * t->blend * t->tile_out * C;
    memcpy(ab, t->out + (size_t)(oh - t->above_n) * row, (size_t)t->above_n * row * sizeof(float));
    t->left_n = imin(ow, t->blend);
    for (int y = 0; y < oh; y++)
        memcpy(t->left + (size_t)y * t->blend * C, t->out + (size_t)y * row + (size_t)(ow - t->left_n) * C,
               (size_t)t->left_n * C * sizeof(float));
    const int rows = imin(oh, t->limit), cols = imin(ow, t->limit);
    for (int y = 0; y < rows; y++)
        memcpy(t->dst + ((size_t)(oi + y) * out_w + oj) * C, t->out + (size_t)y * row, (size_t)cols * C * sizeof(float));
}

/* diffusers' loops: tiles row by row, each blended with the (blended)
 * tile above, then with the (blended) tile to its left. */
static sdc_status tile_all(tiler *t) {
    for (int ti = 0, i0 = 0; i0 < t->in_h; ti++, i0 += t->step) {
        const int th = imin(t->tile, t->in_h - i0), oh = out_size(t, th);
        const int above_n = t->above_n; /* the row above's, before this row replaces them */
        for (int tj = 0, j0 = 0; j0 < t->in_w; tj++, j0 += t->step) {
            const int tw = imin(t->tile, t->in_w - j0), ow = out_size(t, tw);
            SDC_TRY(run_tile(t, i0, j0, th, tw));
            if (ti > 0) blend_v(t, t->above + (size_t)tj * t->blend * t->tile_out * t->out_c, above_n, oh, ow);
            if (tj > 0) blend_h(t, t->left, t->left_n, oh, ow);
            keep_and_place(t, tj, oh, ow, ti * t->limit, tj * t->limit);
        }
    }
    return SDC_OK;
}

/* Input no larger than a tile: diffusers runs it untiled. */
static sdc_status run_whole(tiler *t) {
    SDC_TRY(run_tile(t, 0, 0, t->in_h, t->in_w));
    memcpy(t->dst, t->out, (size_t)out_size(t, t->in_h) * out_size(t, t->in_w) * t->out_c * sizeof(float));
    return SDC_OK;
}

/* The host buffers of one pass. */
static sdc_status host_bufs(tiler *t) {
    const size_t to = (size_t)t->tile_out, C = (size_t)t->out_c;
    t->in = malloc((size_t)t->tile * t->tile * t->in_c * sizeof(float));
    t->out = malloc(to * to * C * sizeof(float));
    t->above = malloc((size_t)t->cols * t->blend * to * C * sizeof(float));
    t->left = malloc(to * t->blend * C * sizeof(float));
    if (!t->in || !t->out || !t->above || !t->left)
        return sdc_fail(SDC_ERR_OOM, "out of memory for the VAE's tiles (%d pixels a side)", t->tile);
    return SDC_OK;
}

/* Backend memory for a call the caller gave none: the tile's buffers, and
 * the VAE's activations for its largest tile unless it has the caller's
 * (a render's plan). *own is what to free after. */
static sdc_status own_memory(tiler *t, int tile_px, int h, int w, float **own) {
    sdc_vae *v = t->v;
    const int L = tile_px / sdc_vae_factor(&v->cfg), th = imin(L, h), tw = imin(L, w), f = sdc_vae_factor(&v->cfg);
    const sdc_net_memory m = v->arena_ext ? (sdc_net_memory){0, 0} : sdc_vae_tiled_memory(v, tile_px, h, w);
    const size_t lat = ((size_t)th * tw * 2 * v->cfg.z_channels + 63) & ~(size_t)63;
    const size_t img = (size_t)th * f * tw * f * 3;
    SDC_TRY(v->be->ops->alloc(v->be, m.activations + lat + img, own));
    if (m.activations) sdc_vae_use_memory(v, *own, m);
    t->b.lat = *own + m.activations;
    t->b.img = t->b.lat + lat;
    return SDC_OK;
}

/* The pass's geometry from the tile, then the pass: tiled where diffusers
 * tiles, else the whole input as one tile. (h, w): the latent's size. */
static sdc_status run(tiler *t, int tile_px, int h, int w) {
    sdc_vae *v = t->v;
    const int f = sdc_vae_factor(&v->cfg);
    SDC_TRY(sdc_vae_tile_check(&v->cfg, tile_px));
    if (!t->b.lat != !t->b.img) return sdc_fail(SDC_ERR_ARG, "vae tiles: give both tile buffers or neither");
    const bool tiled = sdc_vae_tiles(&v->cfg, tile_px, h, w);
    /* tile and step in input pixels, blend and limit in output pixels: for
     * a tile a multiple of 4 these are diffusers' int(tile * 0.75),
     * int(tile_out * 0.25) and tile_out - blend exactly */
    t->tile = t->decode ? tile_px / f : tile_px;
    t->tile_out = out_size(t, t->tile);
    t->step = t->tile * 3 / 4;
    t->blend = t->tile_out / 4;
    t->limit = t->tile_out - t->blend;
    t->cols = tiled ? SDC_CEIL_DIV(t->in_w, t->step) : 1;
    float *own = NULL;
    const bool had_memory = v->arena_ext;
    sdc_status st = t->b.lat ? SDC_OK : own_memory(t, tile_px, h, w, &own);
    if (st == SDC_OK) st = host_bufs(t);
    if (st == SDC_OK) st = tiled ? tile_all(t) : run_whole(t);
    if (own) {
        if (!had_memory) sdc_vae_use_memory(v, NULL, (sdc_net_memory){0, 0});
        v->be->ops->free(v->be, own);
    }
    free(t->in), free(t->out), free(t->above), free(t->left);
    return st;
}

/* sides beyond this are refused before any size arithmetic */
#define MAX_SIDE 65536

sdc_status sdc_vae_decode_tiled(sdc_vae *v, int tile_px, const float *z, int h, int w, float *image,
                                sdc_vae_tile_bufs bufs) {
    const int f = sdc_vae_factor(&v->cfg);
    if (!z || !image || h < 1 || w < 1 || h > MAX_SIDE / f || w > MAX_SIDE / f)
        return sdc_fail(SDC_ERR_ARG, "vae tiled decode: bad latent %dx%d", w, h);
    tiler t = {.v = v, .b = bufs, .decode = true, .in_h = h, .in_w = w, .in_c = v->cfg.z_channels, .out_c = 3,
               .num = f, .den = 1, .src = z, .dst = image};
    return run(&t, tile_px, h, w);
}

sdc_status sdc_vae_encode_tiled(sdc_vae *v, int tile_px, const float *image, int H, int W, float *moments,
                                sdc_vae_tile_bufs bufs) {
    const int f = sdc_vae_factor(&v->cfg);
    if (!v->enc) return sdc_fail(SDC_ERR_UNSUPPORTED, "this model's VAE has no encoder");
    if (!image || !moments || H < f || W < f || H % f || W % f || H > MAX_SIDE || W > MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "vae tiled encode: %dx%d is not a multiple of %d up to %d", W, H, f, MAX_SIDE);
    tiler t = {.v = v, .b = bufs, .decode = false, .in_h = H, .in_w = W, .in_c = 3, .out_c = 2 * v->cfg.z_channels,
               .num = 1, .den = f, .src = image, .dst = moments};
    return run(&t, tile_px, H / f, W / f);
}
