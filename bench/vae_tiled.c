/* vae_tiled.c - the tiled VAE decode (src/nets/vae_tiled.h) beside the
 * untiled one on the CPU backend: the planned memory of each, their times,
 * how far apart their pixels are (8-bit, 0..255: max and mean), and the
 * step between neighbouring pixels across the tiles' seams against the
 * rest of the image (a seam that shows is a larger step there).
 *
 *   vae_tiled_bench MODEL SIZE [--tile PX] [--untiled] [--image PNG]
 *                   [--seed N] [--out PREFIX]
 *
 * The latent is SIZE/f a side: with --image, the PNG resized (bilinear) to
 * SIZE x SIZE and encoded (the mean of its latent distribution), so a
 * trained VAE decodes a picture; else normals / the scale factor (a random
 * VAE decodes noise either way). --untiled also decodes it whole and
 * compares; without it only the tiled decode runs (for peak memory, under
 * /usr/bin/time -v). --out writes PREFIX-tiled.png (and -untiled.png,
 * -diff.png: the difference times 8). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend/backend.h"
#include "image/image.h"
#include "model/model.h"
#include "nets/vae_tiled.h"
#include "sampling/rng.h"

static double gib(double bytes) { return bytes / 1073741824.0; }

/* The planned memory of one decode of an h x w latent on the CPU backend:
 * the VAE's activations, the latent and image buffers, and the scratch a
 * dry run finds; the arena is allocated but never touched (the dry run
 * computes nothing), so it costs address space only. */
static sdc_status planned(sdc_backend *be, sdc_vae *v, int h, int w, size_t *act, size_t *scratch) {
    const int f = sdc_vae_factor(&v->cfg);
    const sdc_net_memory m = sdc_vae_memory(v, h, w);
    const size_t nz = ((size_t)h * w * v->cfg.z_channels + 63) & ~(size_t)63, ni = (size_t)h * f * w * f * 3;
    float *arena = NULL;
    SDC_TRY(be->ops->alloc(be, m.activations + nz + ni, &arena));
    sdc_vae_use_memory(v, arena, m);
    sdc_status st = be->ops->plan_begin(be);
    if (st == SDC_OK) {
        st = sdc_vae_decode(v, arena + m.activations, h, w, arena + m.activations + nz);
        const sdc_status end = be->ops->plan_end(be, scratch);
        st = st != SDC_OK ? st : end;
    }
    sdc_vae_use_memory(v, NULL, m);
    be->ops->free(be, arena);
    *act = (m.activations + nz + ni) * sizeof(float);
    return st;
}

/* rgb (sh, sw) -> x (n, n, 3) in [-1, 1], bilinear, pixel centres aligned */
static void resize_to(const uint8_t *rgb, int sh, int sw, int n, float *x) {
    for (int y = 0; y < n; y++)
        for (int xx = 0; xx < n; xx++) {
            const double fy = fmax(0, (y + 0.5) * sh / n - 0.5), fx = fmax(0, (xx + 0.5) * sw / n - 0.5);
            const int y0 = (int)fy, x0 = (int)fx, y1 = y0 + 1 < sh ? y0 + 1 : y0, x1 = x0 + 1 < sw ? x0 + 1 : x0;
            const double ay = fy - y0, ax = fx - x0;
            for (int c = 0; c < 3; c++) {
                const double v = (1 - ay) * ((1 - ax) * rgb[(y0 * sw + x0) * 3 + c] + ax * rgb[(y0 * sw + x1) * 3 + c]) +
                                 ay * ((1 - ax) * rgb[(y1 * sw + x0) * 3 + c] + ax * rgb[(y1 * sw + x1) * 3 + c]);
                x[((size_t)y * n + xx) * 3 + c] = (float)(v / 127.5 - 1.0);
            }
        }
}

/* z (h, w, C) malloc'd: the picture's latent mean (encoded whole), or
 * normals / the scale factor */
static sdc_status make_latent(sdc_vae *v, const char *png, int size, uint64_t seed, float **z) {
    const int f = sdc_vae_factor(&v->cfg), C = v->cfg.z_channels;
    const size_t px = (size_t)(size / f) * (size / f);
    *z = malloc(px * C * sizeof(float));
    if (!*z) return sdc_fail(SDC_ERR_OOM, "out of memory");
    if (!png) {
        sdc_rng r;
        sdc_rng_seed(&r, seed);
        sdc_rng_randn(&r, *z, px * C);
        for (size_t i = 0; i < px * C; i++) (*z)[i] /= v->cfg.scale_factor;
        return SDC_OK;
    }
    uint8_t *rgb = NULL;
    int sw = 0, sh = 0;
    SDC_TRY(sdc_image_read_rgb(png, &rgb, &sw, &sh));
    float *x = malloc((size_t)size * size * 3 * sizeof(float)), *mom = malloc(px * 2 * C * sizeof(float));
    sdc_status st = x && mom ? SDC_OK : sdc_fail(SDC_ERR_OOM, "out of memory");
    if (st == SDC_OK) {
        resize_to(rgb, sh, sw, size, x);
        /* a tile as large as the largest image: the untiled encode */
        st = sdc_vae_encode_tiled(v, SDC_VAE_TILE_MAX, x, size, size, mom, (sdc_vae_tile_bufs){0});
    }
    for (size_t p = 0; st == SDC_OK && p < px; p++) memcpy(*z + p * C, mom + p * 2 * C, C * sizeof(float));
    free(rgb), free(x), free(mom);
    return st;
}

/* mean |step| between neighbouring pixels where one tile's part of the
 * image meets the next's (a column or row at k limit: the blend begins)
 * or the blend ends (k limit + blend), against all other neighbours;
 * horizontal and vertical */
static void steps(const uint8_t *a, int n, int limit, int blend, double *at_seams, double *rest) {
    double ss = 0, sr = 0;
    size_t ns = 0, nr = 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
            for (int d = 0; d < 2; d++) {
                const int y2 = y + d, x2 = x + !d;
                if (y2 >= n || x2 >= n) continue;
                const int at = d ? y2 : x2; /* the coordinate the step crosses into */
                const bool seam = at >= limit && (at % limit == 0 || at % limit == blend);
                for (int c = 0; c < 3; c++) {
                    const double s = fabs((double)a[((size_t)y * n + x) * 3 + c] - a[((size_t)y2 * n + x2) * 3 + c]);
                    if (seam) ss += s, ns++;
                    else sr += s, nr++;
                }
            }
    *at_seams = ns ? ss / ns : 0;
    *rest = nr ? sr / nr : 0;
}

static void write_png(const char *prefix, const char *what, const uint8_t *rgb, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s-%s.png", prefix, what);
    if (sdc_png_write(path, rgb, n, n, NULL) != SDC_OK) fprintf(stderr, "vae_tiled_bench: %s\n", sdc_last_error());
}

/* this process's CPU seconds (all threads): on a machine shared with
 * others the wall time says more about them than about sdc */
static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double peak_rss_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return gib(ru.ru_maxrss * 1024.0);
}

typedef struct opts {
    const char *model, *image, *out;
    int size, tile;
    bool untiled;
    unsigned long long seed;
} opts;

static int usage(void) {
    fprintf(stderr, "usage: vae_tiled_bench MODEL SIZE [--tile PX] [--untiled] [--image PNG] [--seed N] "
                    "[--out PREFIX]\n");
    return 2;
}

static int parse(int argc, char **argv, opts *o) {
    if (argc < 3) return usage();
    *o = (opts){.model = argv[1], .size = atoi(argv[2]), .tile = SDC_VAE_TILE_DEFAULT, .seed = 1};
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--untiled")) o->untiled = true;
        else if (!strcmp(a, "--tile") && v) o->tile = atoi(argv[++i]);
        else if (!strcmp(a, "--image") && v) o->image = argv[++i];
        else if (!strcmp(a, "--seed") && v) o->seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--out") && v) o->out = argv[++i];
        else return usage();
    }
    return o->size >= 8 && o->size <= 8192 && o->size % 8 == 0 ? 0 : usage();
}

/* the tiled decode, then (--untiled) the whole one and their differences */
static sdc_status bench(sdc_backend *be, sdc_vae *v, const opts *o) {
    const int f = sdc_vae_factor(&v->cfg), h = o->size / f, n = o->size, L = o->tile / f;
    const size_t npx = (size_t)n * n;
    size_t act[2], scr[2];
    SDC_TRY(planned(be, v, h, h, &act[0], &scr[0]));
    SDC_TRY(planned(be, v, L < h ? L : h, L < h ? L : h, &act[1], &scr[1]));
    printf("planned decode memory at %dx%d: untiled %.2f GiB (activations and buffers %.2f, scratch %.2f); "
           "tiled (%d px tiles) %.2f GiB (%.2f + %.2f)\n", n, n, gib(act[0] + scr[0]), gib(act[0]), gib(scr[0]),
           o->tile, gib(act[1] + scr[1]), gib(act[1]), gib(scr[1]));
    size_t avail = 0;
    if (be->ops->available && be->ops->available(be, &avail)) printf("host memory available now: %.2f GiB\n", gib(avail));
    float *z = NULL, *img[2] = {malloc(npx * 3 * sizeof(float)), malloc(npx * 3 * sizeof(float))};
    uint8_t *rgb[2] = {malloc(npx * 3), malloc(npx * 3)};
    if (!img[0] || !img[1] || !rgb[0] || !rgb[1]) return sdc_fail(SDC_ERR_OOM, "out of memory");
    double t0 = sdc_now();
    SDC_TRY(make_latent(v, o->image, n, o->seed, &z));
    if (o->image) printf("latent: %s encoded at %dx%d (%.1f s)\n", o->image, n, n, sdc_now() - t0);
    t0 = sdc_now();
    double c0 = cpu_seconds();
    SDC_TRY(sdc_vae_decode_tiled(v, o->tile, z, h, h, img[1], (sdc_vae_tile_bufs){0}));
    printf("tiled decode %dx%d, %d px tiles: %.1f s (%.1f CPU s), peak RSS so far %.2f GiB\n", n, n, o->tile,
           sdc_now() - t0, cpu_seconds() - c0, peak_rss_gib());
    sdc_image_to_u8(img[1], n, n, rgb[1]);
    if (o->out) write_png(o->out, "tiled", rgb[1], n);
    if (o->untiled) {
        t0 = sdc_now();
        c0 = cpu_seconds();
        /* a tile as large as the image: diffusers' untiled decode */
        SDC_TRY(sdc_vae_decode_tiled(v, SDC_VAE_TILE_MAX, z, h, h, img[0], (sdc_vae_tile_bufs){0}));
        printf("untiled decode %dx%d: %.1f s (%.1f CPU s), peak RSS so far %.2f GiB\n", n, n, sdc_now() - t0,
               cpu_seconds() - c0, peak_rss_gib());
        sdc_image_to_u8(img[0], n, n, rgb[0]);
        int worst = 0;
        double sum = 0, fworst = 0;
        for (size_t i = 0; i < npx * 3; i++) {
            const int d = abs(rgb[0][i] - rgb[1][i]);
            worst = d > worst ? d : worst;
            sum += d;
            fworst = fmax(fworst, fabs((double)img[0][i] - img[1][i]) * 127.5);
        }
        printf("tiled vs untiled, 8-bit pixels: max |diff| %d, mean |diff| %.3f (float output x 127.5: max %.2f)\n",
               worst, sum / (npx * 3), fworst);
        const int limit = o->tile * 3 / 4, blend = o->tile / 4;
        double band[2], rest[2];
        for (int k = 0; k < 2; k++) steps(rgb[k], n, limit, blend, &band[k], &rest[k]);
        printf("mean |step| between neighbouring pixels: across the tiles' seams (where a blend begins or ends) "
               "%.3f tiled, %.3f untiled; elsewhere %.3f tiled, %.3f untiled\n", band[1], band[0], rest[1], rest[0]);
        if (o->out) {
            write_png(o->out, "untiled", rgb[0], n);
            for (size_t i = 0; i < npx * 3; i++) {
                const int d = 8 * abs(rgb[0][i] - rgb[1][i]);
                rgb[0][i] = (uint8_t)(d > 255 ? 255 : d);
            }
            write_png(o->out, "diff", rgb[0], n);
        }
    }
    free(z), free(img[0]), free(img[1]), free(rgb[0]), free(rgb[1]);
    return SDC_OK;
}

int main(int argc, char **argv) {
    opts o;
    if (parse(argc, argv, &o)) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0); /* each figure as it comes: runs take minutes */
    sdc_model_files *m = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL;
    sdc_status st = sdc_model_open(o.model, &m);
    if (st == SDC_OK) st = sdc_backend_cpu_create(0, &be);
    if (st == SDC_OK) st = sdc_vae_load(m, be, &v);
    if (st == SDC_OK) st = sdc_vae_tile_check(&v->cfg, o.tile);
    if (st == SDC_OK && o.size % sdc_vae_factor(&v->cfg)) st = sdc_fail(SDC_ERR_ARG, "size %d", o.size);
    if (st == SDC_OK) {
        printf("%s: VAE factor %d, %d base channels; CPU backend, fp32\n", o.model, sdc_vae_factor(&v->cfg),
               v->cfg.channels);
        st = bench(be, v, &o);
    }
    if (st != SDC_OK) fprintf(stderr, "vae_tiled_bench: %s\n", sdc_last_error());
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_model_close(m);
    return st == SDC_OK ? 0 : 1;
}
