/* contact_sheet.c - build/sdc_sheet: render a list of prompts with one
 * model and tile the images into a single labelled contact-sheet PNG.
 *
 *   sdc_sheet MODEL PROMPTS.txt OUT.png [options]
 *
 * PROMPTS.txt holds one prompt per line (blank lines and lines starting
 * with '#' are skipped; at most 256 prompts). Each cell of the sheet is
 * one image at the model's native size, enlarged --scale times (nearest
 * neighbour), with its prompt word-wrapped under it in the bitmap font of
 * src/image/grid.h (4 lines at most, the last ending in "..." when cut). Cells
 * are laid out --cols to a row, 6 px apart, on a light grey background.
 * The PNG's "parameters" text records the settings. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image/grid.h"
#include "image/image.h"
#include "sdc.h"

#define MAX_PROMPTS 256
#define LINES 4  /* text lines under each image */
#define GAP 6    /* between cells and around the border */
#define PAD 4    /* between the image and its text, and below the text */
#define LEAD 2   /* extra space between text lines */

static void usage(void) {
    fprintf(stderr, "usage: sdc_sheet MODEL PROMPTS.txt OUT.png [options]\n"
                    "  --seed N        seed of every image (default 1)\n"
                    "  --steps N       sampler steps, 1..1000 (default 20)\n"
                    "  --sampler NAME  ddim, ddpm, euler, euler_a, dpmpp_2m (default dpmpp_2m)\n"
                    "  --cfg X         guidance scale (default 5)\n"
                    "  --scale K       enlarge each image K times, 1..16 (default 2)\n"
                    "  --cols C        cells per row, 1..64 (default 4)\n"
                    "PROMPTS.txt: one prompt per line; blank lines and '#' lines are skipped.\n");
}

/* A whole decimal integer in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

/* Read the prompts of path into p[] (malloc'd strings); -1 on error. */
static int read_prompts(const char *path, char **p) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sdc_sheet: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0;
    const char *err = NULL;
    while (!err && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        for (char *t = line; (t = strchr(t, '\t'));) *t = ' '; /* the font has no tab */
        if (line[strspn(line, " ")] == 0 || line[0] == '#') continue;
        if (n == MAX_PROMPTS) err = "more than 256 prompts";
        else if (!(p[n] = strdup(line))) err = "out of memory";
        else n++;
    }
    if (!err && ferror(f)) err = strerror(errno);
    if (!err && n == 0) err = "no prompts";
    free(line);
    fclose(f);
    if (!err) return n;
    fprintf(stderr, "sdc_sheet: %s: %s\n", path, err);
    for (int i = 0; i < n; i++) free(p[i]);
    return -1;
}

/* Word-wrap s into at most LINES lines of at most maxc characters (line[i]
 * holds maxc + 1 bytes), breaking at spaces, or inside a word longer than
 * a line. When the text needs more lines, the last one ends in "...". */
static int wrap(const char *s, int maxc, char **line) {
    int n = 0;
    for (; n < LINES; n++) {
        s += strspn(s, " ");
        if (!*s) break;
        int take = (int)strlen(s), len;
        if (take > maxc) {
            for (take = maxc; take > 0 && s[take] != ' '; take--) {}
            if (take == 0) take = maxc;
        }
        for (len = take; len > 0 && s[len - 1] == ' '; len--) {}
        memcpy(line[n], s, (size_t)len);
        line[n][len] = 0;
        s += take;
    }
    if (n == LINES && s[strspn(s, " ")]) {
        char *l = line[LINES - 1];
        int keep = (int)strlen(l);
        if (keep > maxc - 3) keep = maxc > 3 ? maxc - 3 : 0;
        while (keep > 0 && l[keep - 1] == ' ') keep--;
        snprintf(l + keep, (size_t)(maxc - keep + 1), "...");
    }
    return n;
}

int main(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL}, *sampler = "dpmpp_2m";
    int npos = 0, steps = 20, scale = 2, cols = 4;
    unsigned long long seed = 1;
    float cfg = 5.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int ok = 1, opt = a[0] == '-' && a[1];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!opt && npos < 3) {
            pos[npos++] = a;
            continue;
        } else if (!v) ok = 0;
        else if (!strcmp(a, "--steps")) ok = parse_int(v, 1, 1000, &steps);
        else if (!strcmp(a, "--scale")) ok = parse_int(v, 1, 16, &scale);
        else if (!strcmp(a, "--cols")) ok = parse_int(v, 1, 64, &cols);
        else if (!strcmp(a, "--sampler")) sampler = v;
        else if (!strcmp(a, "--seed")) {
            errno = 0;
            seed = strtoull(v, &end, 10);
            ok = !errno && end != v && !*end && v[0] != '-';
        } else if (!strcmp(a, "--cfg")) {
            cfg = strtof(v, &end);
            ok = end != v && !*end && isfinite(cfg);
        } else v = NULL, ok = 0; /* unknown option, or a 4th operand */
        if (!ok) {
            fprintf(stderr, "sdc_sheet: bad argument: %s%s%s\n", a, v ? " " : "", v ? v : "");
            usage();
            return 2;
        }
        i++;
    }
    if (npos != 3) {
        usage();
        return 2;
    }
    const char *model = pos[0], *out = pos[2];
    char *prompts[MAX_PROMPTS];
    int n = read_prompts(pos[1], prompts);
    if (n < 0) return 1;

    int rc = 1;
    sdc_ctx *ctx = NULL;
    uint8_t *sheet = NULL;
    char *text = NULL, *lines[LINES] = {NULL};
    sdc_params mp = sdc_params_default();
    mp.model_path = model;
    if (sdc_load(&mp, &ctx) != SDC_OK) {
        fprintf(stderr, "sdc_sheet: %s\n", sdc_last_error());
        goto done;
    }
    /* Layout: every cell is cw x ch, image on top, LINES text lines below. */
    const int side = sdc_native_size(ctx), cw = side * scale, line_h = sdc_text_height(1) + LEAD;
    const int ch = cw + PAD + LINES * line_h + PAD, rows = (n + cols - 1) / cols, ncol = n < cols ? n : cols;
    const long long sw = GAP + (long long)ncol * (cw + GAP), sh = GAP + (long long)rows * (ch + GAP);
    if (sw > 65535 || sh > 65535 || sw * sh * 3 > (1LL << 30)) {
        fprintf(stderr, "sdc_sheet: the sheet would be %lldx%lld pixels, too large (lower --scale or --cols)\n",
                sw, sh);
        goto done;
    }
    const int maxc = (cw + 1) / SDC_FONT_ADV; /* sdc_text_width of maxc chars <= cw */
    sheet = malloc((size_t)(sw * sh * 3));
    text = malloc(512 + strlen(model) + strlen(sampler));
    int oom = !sheet || !text;
    for (int l = 0; l < LINES; l++) oom |= !(lines[l] = malloc((size_t)maxc + 1));
    if (oom) {
        fprintf(stderr, "sdc_sheet: out of memory\n");
        goto done;
    }
    memset(sheet, 235, (size_t)(sw * sh * 3));
    const uint8_t ink[3] = {20, 20, 20};
    const double t0 = sdc_now();
    for (int i = 0; i < n; i++) {
        sdc_gen_params g = sdc_gen_params_default();
        g.prompt = prompts[i];
        g.steps = steps;
        g.sampler = sampler;
        g.cfg_scale = cfg;
        g.seed = seed;
        sdc_image img;
        if (sdc_txt2img(ctx, &g, &img) != SDC_OK) {
            fprintf(stderr, "sdc_sheet: prompt %d: %s\n", i + 1, sdc_last_error());
            goto done;
        }
        if (img.width != side || img.height != side) {
            fprintf(stderr, "sdc_sheet: prompt %d: got a %dx%d image, expected %dx%d\n", i + 1, img.width,
                    img.height, side, side);
            sdc_image_free(&img);
            goto done;
        }
        const int x0 = GAP + (i % cols) * (cw + GAP), y0 = GAP + (i / cols) * (ch + GAP);
        for (int y = 0; y < cw; y++)
            for (int x = 0; x < cw; x++)
                memcpy(sheet + ((size_t)(y0 + y) * (size_t)sw + (size_t)(x0 + x)) * 3,
                       img.rgb + ((size_t)(y / scale) * (size_t)side + (size_t)(x / scale)) * 3, 3);
        sdc_image_free(&img);
        const int nl = wrap(prompts[i], maxc, lines);
        for (int l = 0; l < nl; l++)
            sdc_draw_text(sheet, (int)sw, (int)sh, x0, y0 + cw + PAD + l * line_h, lines[l], 1, ink);
    }
    const double secs = sdc_now() - t0;
    sprintf(text, "sdc_sheet: %d prompts, seed %llu, %d steps, %s, cfg %g, model %s", n, seed, steps, sampler,
            (double)cfg, model);
    if (sdc_png_write(out, sheet, (int)sw, (int)sh, text) != SDC_OK) {
        fprintf(stderr, "sdc_sheet: %s\n", sdc_last_error());
        goto done;
    }
    fprintf(stderr, "sdc_sheet: wrote %s (%lldx%lld), %d prompts in %.1f s\n", out, sw, sh, n, secs);
    rc = 0;
done:
    for (int l = 0; l < LINES; l++) free(lines[l]);
    free(text);
    free(sheet);
    if (ctx) sdc_free(ctx);
    for (int i = 0; i < n; i++) free(prompts[i]);
    return rc;
}
