/* eval_shapes.c - `make eval`: how well the shipped model draws what its
 * prompts say, measured by the analyser of its world (eval/shapes.c).
 *
 *   sdc_eval MODEL [options]          render each prompt of the held-out
 *                                     list with several seeds, analyse, score
 *   sdc_eval --images F.rgb.gz --truth F.jsonl
 *                                     analyse given 64x64 images instead
 *
 * Prints accuracy per attribute (background colour, shape colour, shape
 * kind, position, all four) and per shape kind; exits 1 when an accuracy
 * is below its --min-* threshold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "image/image.h"
#include "sdc.h"
#include "shapes.h"

static void usage(void) {
    fprintf(stderr,
            "usage: sdc_eval MODEL [options]\n"
            "       sdc_eval --images F.rgb.gz --truth F.jsonl\n"
            "  --prompts F        held-out prompts, JSON Lines with the truth\n"
            "                     (default tests/fixtures/shapes/eval_prompts.jsonl)\n"
            "  --seeds N          seeds 1..N per prompt (default 4)\n"
            "  --steps N          sampler steps (default 20)\n"
            "  --sampler NAME     default dpmpp_2m\n"
            "  --cfg X            guidance scale (default 5)\n"
            "  --sheet PNG        also write every image in one sheet (a row per prompt;\n"
            "                     a green frame when all four attributes are right, red if not)\n"
            "  --min-bg P --min-colour P --min-kind P --min-position P\n"
            "                     fail (exit 1) below these accuracies, in percent\n"
            "  -v                 print each wrong image's reading\n");
}

typedef struct {
    sdc_shapes_score total, per_kind[SDC_SHAPES_NKINDS];
    int verbose;
} tally;

static void score(tally *t, const sdc_shapes_item *it, const uint8_t *rgb, int w, int h, int seed) {
    sdc_shapes_result r;
    sdc_shapes_analyse(rgb, w, h, &r);
    sdc_shapes_score_add(&t->total, it, &r);
    sdc_shapes_score_add(&t->per_kind[it->kind], it, &r);
    bool ok = r.bg == it->bg && r.colour == it->colour && r.kind == it->kind && r.position == it->position;
    if (t->verbose && !ok)
        printf("  wrong: \"%s\" seed %d -> %s %s on %s at %s\n", it->prompt ? it->prompt : "(image)", seed,
               r.colour >= 0 ? sdc_shapes_colour_names[r.colour] : "-",
               r.kind >= 0 ? sdc_shapes_kind_names[r.kind] : "no shape", sdc_shapes_colour_names[r.bg],
               r.position >= 0 ? sdc_shapes_position_names[r.position] : "-");
}

static double pct(int a, int n) { return n ? 100.0 * a / n : 0.0; }

static void print_table(const tally *t) {
    const sdc_shapes_score *s = &t->total;
    printf("\n%-18s %9s %8s\n", "attribute", "right", "accuracy");
    printf("%-18s %4d/%-4d %7.1f%%\n", "background colour", s->bg, s->n, pct(s->bg, s->n));
    printf("%-18s %4d/%-4d %7.1f%%\n", "shape colour", s->colour, s->n, pct(s->colour, s->n));
    printf("%-18s %4d/%-4d %7.1f%%\n", "shape kind", s->kind, s->n, pct(s->kind, s->n));
    printf("%-18s %4d/%-4d %7.1f%%\n", "position", s->position, s->n, pct(s->position, s->n));
    printf("%-18s %4d/%-4d %7.1f%%\n", "all four", s->all, s->n, pct(s->all, s->n));
    printf("\n%-10s %6s %7s %7s %7s %7s %7s\n", "kind", "images", "bg", "colour", "kind", "pos", "all");
    for (int k = 0; k < SDC_SHAPES_NKINDS; k++) {
        const sdc_shapes_score *q = &t->per_kind[k];
        if (!q->n) continue;
        printf("%-10s %6d %6.1f%% %6.1f%% %6.1f%% %6.1f%% %6.1f%%\n", sdc_shapes_kind_names[k], q->n, pct(q->bg, q->n),
               pct(q->colour, q->n), pct(q->kind, q->n), pct(q->position, q->n), pct(q->all, q->n));
    }
}

static int analyse_files(const char *images, const char *truth, tally *t) {
    sdc_shapes_item *items;
    int n;
    if (sdc_shapes_items_load(truth, &items, &n) != SDC_OK) {
        fprintf(stderr, "sdc_eval: %s\n", sdc_last_error());
        return 1;
    }
    gzFile g = gzopen(images, "rb");
    if (!g) {
        fprintf(stderr, "sdc_eval: cannot open %s\n", images);
        sdc_shapes_items_free(items, n);
        return 1;
    }
    uint8_t px[64 * 64 * 3];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (gzread(g, px, sizeof px) != (int)sizeof px) {
            fprintf(stderr, "sdc_eval: %s holds fewer than the %d images of %s (64x64x3 each)\n", images, n, truth);
            rc = 1;
            break;
        }
        score(t, &items[i], px, 64, 64, 0);
    }
    gzclose(g);
    sdc_shapes_items_free(items, n);
    return rc;
}

/* Copy a w x h image into the sheet at cell (r, c) with a 2-pixel frame. */
static void sheet_put(uint8_t *sheet, int sw, int r, int c, const uint8_t *img, int w, int h, bool ok) {
    const int cw = w + 6, ch = h + 6, x0 = c * cw, y0 = r * ch;
    const uint8_t frame[3] = {ok ? 40 : 220, ok ? 180 : 40, 40};
    for (int y = 1; y < ch - 1; y++)
        for (int x = 1; x < cw - 1; x++) {
            uint8_t *d = sheet + ((size_t)(y0 + y) * sw + x0 + x) * 3;
            bool inner = x >= 3 && y >= 3 && x < 3 + w && y < 3 + h;
            memcpy(d, inner ? img + ((size_t)(y - 3) * w + (x - 3)) * 3 : frame, 3);
        }
}

int main(int argc, char **argv) {
    const char *model = NULL, *prompts = "tests/fixtures/shapes/eval_prompts.jsonl", *sheet_path = NULL;
    const char *images = NULL, *truth = NULL;
    int seeds = 4, steps = 20;
    float cfg = 5.0f, min[4] = {0, 0, 0, 0};
    const char *sampler = "dpmpp_2m";
    tally t = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
        if (OPT("--prompts")) prompts = v;
        else if (OPT("--seeds")) seeds = atoi(v);
        else if (OPT("--steps")) steps = atoi(v);
        else if (OPT("--sampler")) sampler = v;
        else if (OPT("--cfg")) cfg = strtof(v, NULL);
        else if (OPT("--sheet")) sheet_path = v;
        else if (OPT("--images")) images = v;
        else if (OPT("--truth")) truth = v;
        else if (OPT("--min-bg")) min[0] = strtof(v, NULL);
        else if (OPT("--min-colour")) min[1] = strtof(v, NULL);
        else if (OPT("--min-kind")) min[2] = strtof(v, NULL);
        else if (OPT("--min-position")) min[3] = strtof(v, NULL);
        else if (!strcmp(a, "-v")) t.verbose = 1;
        else if (a[0] != '-' && !model) model = a;
        else {
            usage();
            return 2;
        }
#undef OPT
    }
    if (images || truth) {
        if (!images || !truth) {
            usage();
            return 2;
        }
        if (analyse_files(images, truth, &t)) return 1;
    } else {
        if (!model || seeds < 1 || seeds > 64 || steps < 1) {
            usage();
            return 2;
        }
        sdc_shapes_item *items;
        int n;
        if (sdc_shapes_items_load(prompts, &items, &n) != SDC_OK) {
            fprintf(stderr, "sdc_eval: %s\n", sdc_last_error());
            return 1;
        }
        for (int i = 0; i < n; i++)
            if (!items[i].prompt) {
                fprintf(stderr, "sdc_eval: %s: item %d has no \"prompt\"\n", prompts, i + 1);
                return 1;
            }
        sdc_params mp = sdc_params_default();
        mp.model_path = model;
        sdc_ctx *ctx;
        if (sdc_load(&mp, &ctx) != SDC_OK) {
            fprintf(stderr, "sdc_eval: %s\n", sdc_last_error());
            return 1;
        }
        const int side = sdc_native_size(ctx), cw = side + 6;
        uint8_t *sheet = sheet_path ? calloc((size_t)cw * seeds * cw * n * 3, 1) : NULL;
        sdc_gen_params *g = calloc((size_t)seeds, sizeof *g);
        sdc_image *img = calloc((size_t)seeds, sizeof *img);
        if (!g || !img || (sheet_path && !sheet)) {
            fprintf(stderr, "sdc_eval: out of memory\n");
            return 1;
        }
        printf("%s: %d prompts x %d seeds, %s %d steps, cfg %g, %dx%d\n", model, n, seeds, sampler, steps,
               (double)cfg, side, side);
        double t0 = sdc_now();
        for (int i = 0; i < n; i++) {
            for (int s = 0; s < seeds; s++) {
                g[s] = sdc_gen_params_default();
                g[s].prompt = items[i].prompt;
                g[s].steps = steps;
                g[s].sampler = sampler;
                g[s].cfg_scale = cfg;
                g[s].seed = (unsigned long long)(s + 1);
            }
            if (sdc_txt2img_batch(ctx, g, seeds, img) != SDC_OK) {
                fprintf(stderr, "sdc_eval: \"%s\": %s\n", items[i].prompt, sdc_last_error());
                return 1;
            }
            for (int s = 0; s < seeds; s++) {
                sdc_shapes_score before = t.total;
                score(&t, &items[i], img[s].rgb, img[s].width, img[s].height, s + 1);
                if (sheet) sheet_put(sheet, cw * seeds, i, s, img[s].rgb, side, side, t.total.all > before.all);
                sdc_image_free(&img[s]);
            }
        }
        printf("%d images in %.1f s\n", n * seeds, sdc_now() - t0);
        if (sheet && sdc_png_write(sheet_path, sheet, cw * seeds, cw * n, NULL) != SDC_OK)
            fprintf(stderr, "sdc_eval: %s\n", sdc_last_error());
        else if (sheet)
            printf("sheet: %s\n", sheet_path);
        free(sheet);
        free(g);
        free(img);
        sdc_free(ctx);
        sdc_shapes_items_free(items, n);
    }
    print_table(&t);
    const sdc_shapes_score *s = &t.total;
    const int got[4] = {s->bg, s->colour, s->kind, s->position};
    const char *names[4] = {"background colour", "shape colour", "shape kind", "position"};
    int rc = 0;
    for (int k = 0; k < 4; k++)
        if (min[k] > 0 && pct(got[k], s->n) < min[k]) {
            printf("FAIL: %s %.1f%% is below %.0f%%\n", names[k], pct(got[k], s->n), (double)min[k]);
            rc = 1;
        }
    if (rc == 0 && (min[0] > 0 || min[1] > 0 || min[2] > 0 || min[3] > 0)) printf("PASS: every threshold met\n");
    return rc;
}
