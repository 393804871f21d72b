/* grid.c - comparison grids for `sdc compare` (see grid.h): the bitmap
 * font, text drawing, grid layout and canvas, step and sampler lists, RMSE
 * and PSNR. */
#include "image/grid.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/scheduler.h"

/* ---- font ---------------------------------------------------------------- */

/* Printable ASCII 32..126, 9 rows each (bit 4 = leftmost pixel); rows 7
 * and 8 are below the baseline (descenders of g j p q y, the comma's tail,
 * the underscore). Drawn for this project; no two glyphs but space are
 * alike (tests/test_compare.c checks). */
static const uint8_t FONT[95][SDC_FONT_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* '!' */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00}, /* '#' */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* '%' */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '\'' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08, 0x00}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* '2' */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* '?' */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00, 0x00}, /* '@' */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00}, /* 'X' */
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x00, 0x00}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00}, /* '[' */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00}, /* ']' */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* 'b' */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* 'c' */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* 'd' */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 'f' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'h' */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* 'k' */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 'l' */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'n' */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 'o' */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'r' */
    {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00}, /* 's' */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'y' */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* '~' */
};

const uint8_t *sdc_font_glyph(int ch) {
    if (ch < 32 || ch > 126) ch = '?';
    return FONT[ch - 32];
}

int sdc_text_width(const char *s, int scale) {
    size_t n = s ? strlen(s) : 0;
    return n ? (int)n * SDC_FONT_ADV * scale - scale : 0;
}

int sdc_text_height(int scale) { return SDC_FONT_H * scale; }

void sdc_draw_text(uint8_t *rgb, int w, int h, int x, int y, const char *s, int scale, const uint8_t color[3]) {
    for (; s && *s; s++, x += SDC_FONT_ADV * scale) {
        const uint8_t *gl = sdc_font_glyph((unsigned char)*s);
        for (int r = 0; r < SDC_FONT_H; r++) {
            for (int c = 0; c < SDC_FONT_W; c++) {
                if (!(gl[r] & (0x10 >> c))) continue;
                for (int dy = 0; dy < scale; dy++) {
                    int py = y + r * scale + dy;
                    if (py < 0 || py >= h) continue;
                    for (int dx = 0; dx < scale; dx++) {
                        int px = x + c * scale + dx;
                        if (px < 0 || px >= w) continue;
                        uint8_t *p = rgb + ((size_t)py * (size_t)w + (size_t)px) * 3;
                        p[0] = color[0], p[1] = color[1], p[2] = color[2];
                    }
                }
            }
        }
    }
}

/* ---- layout and canvas ------------------------------------------------------ */

static const uint8_t BACKGROUND[3] = {232, 232, 232}, SLOT[3] = {255, 255, 255}, INK[3] = {24, 24, 24};

sdc_status sdc_grid_layout_make(int rows, int cols, int cell_w, int cell_h, const char *const *row_labels,
                                sdc_grid_layout *out) {
    if (rows < 1 || cols < 1 || cell_w < 1 || cell_h < 1)
        return sdc_fail(SDC_ERR_ARG, "grid of %d x %d cells of %dx%d pixels: nothing to draw", rows, cols, cell_w,
                        cell_h);
    sdc_grid_layout l;
    memset(&l, 0, sizeof l);
    l.rows = rows, l.cols = cols, l.cell_w = cell_w, l.cell_h = cell_h;
    int m = cell_w < cell_h ? cell_w : cell_h;
    l.scale = (m + 128) / 256;
    if (l.scale < 1) l.scale = 1;
    l.gap = 2 * l.scale;
    l.pad = 2 * l.scale;
    l.text_h = sdc_text_height(l.scale);
    int lw = sdc_text_width("steps", l.scale);
    for (int r = 0; r < rows; r++) {
        int t = sdc_text_width(row_labels ? row_labels[r] : NULL, l.scale);
        if (t > lw) lw = t;
    }
    l.label_w = lw + 2 * l.pad;
    int cap_w = 7 * SDC_FONT_ADV * l.scale - l.scale + 2 * l.pad;
    l.col_w = cell_w > cap_w ? cell_w : cap_w;
    l.head_h = l.text_h + 2 * l.pad;
    l.row_h = cell_h + l.text_h + 2 * l.pad;
    long long gw = 2LL * l.gap + l.label_w + (long long)cols * (l.gap + l.col_w);
    long long gh = 2LL * l.gap + l.head_h + (long long)rows * (l.gap + l.row_h);
    if (gw > 65535 || gh > 65535 || gw * gh * 3 > (1LL << 30))
        return sdc_fail(SDC_ERR_ARG,
                        "the grid would be %lldx%lld pixels, too large (at most 65535 a side and 1 GiB); "
                        "use fewer cells or a smaller size", gw, gh);
    l.width = (int)gw, l.height = (int)gh;
    *out = l;
    return SDC_OK;
}

void sdc_grid_image_origin(const sdc_grid_layout *l, int r, int c, int *x, int *y) {
    *x = 2 * l->gap + l->label_w + c * (l->gap + l->col_w) + (l->col_w - l->cell_w) / 2;
    *y = 2 * l->gap + l->head_h + r * (l->gap + l->row_h);
}

static void fill_rect(sdc_grid *g, int x, int y, int w, int h, const uint8_t color[3]) {
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) {
            uint8_t *p = g->rgb + ((size_t)j * (size_t)g->l.width + (size_t)i) * 3;
            p[0] = color[0], p[1] = color[1], p[2] = color[2];
        }
}

static void text(sdc_grid *g, int x, int y, const char *s) {
    sdc_draw_text(g->rgb, g->l.width, g->l.height, x, y, s, g->l.scale, INK);
}

sdc_status sdc_grid_new(const sdc_grid_layout *l, const char *const *row_labels, const char *const *col_labels,
                        sdc_grid *out) {
    memset(out, 0, sizeof *out);
    out->l = *l;
    SDC_MALLOC(out->rgb, (size_t)l->width * (size_t)l->height * 3);
    fill_rect(out, 0, 0, l->width, l->height, BACKGROUND);
    const int s = l->scale, x0 = 2 * l->gap + l->label_w, ty = l->gap + l->pad;
    /* corner: "steps", right-aligned over the labels */
    text(out, l->gap + l->label_w - l->pad - sdc_text_width("steps", s), ty, "steps");
    for (int c = 0; c < l->cols; c++) {
        int cx = x0 + c * (l->gap + l->col_w);
        const char *t = col_labels ? col_labels[c] : NULL;
        text(out, cx + (l->col_w - sdc_text_width(t, s)) / 2, ty, t);
    }
    for (int r = 0; r < l->rows; r++) {
        int ix, iy;
        sdc_grid_image_origin(l, r, 0, &ix, &iy);
        for (int c = 0; c < l->cols; c++) fill_rect(out, x0 + c * (l->gap + l->col_w), iy, l->col_w, l->row_h, SLOT);
        const char *t = row_labels ? row_labels[r] : NULL;
        int lx = l->gap + l->label_w - l->pad - sdc_text_width(t, s);
        text(out, lx, iy + (l->cell_h - SDC_FONT_CAP * s) / 2, t);
    }
    return SDC_OK;
}

void sdc_grid_put(sdc_grid *g, int r, int c, const uint8_t *rgb, const char *caption) {
    const sdc_grid_layout *l = &g->l;
    int x, y;
    sdc_grid_image_origin(l, r, c, &x, &y);
    for (int j = 0; j < l->cell_h; j++)
        memcpy(g->rgb + ((size_t)(y + j) * (size_t)l->width + (size_t)x) * 3, rgb + (size_t)j * (size_t)l->cell_w * 3,
               (size_t)l->cell_w * 3);
    if (caption) {
        int sx = 2 * l->gap + l->label_w + c * (l->gap + l->col_w);
        text(g, sx + (l->col_w - sdc_text_width(caption, l->scale)) / 2, y + l->cell_h + l->pad, caption);
    }
}

void sdc_grid_free(sdc_grid *g) {
    if (!g) return;
    free(g->rgb);
    g->rgb = NULL;
}

void sdc_grid_format_seconds(double t, char *buf, size_t cap) {
    if (!(t >= 0)) t = 0;
    if (t < 9.995) snprintf(buf, cap, "%.2f s", t);
    else if (t < 99.95) snprintf(buf, cap, "%.1f s", t);
    else if (t < 99999.5) snprintf(buf, cap, "%.0f s", t);
    else if (t < 999.5 * 3600) snprintf(buf, cap, "%.0f h", t / 3600);
    else snprintf(buf, cap, "long");
}

/* ---- lists ----------------------------------------------------------------- */

/* A whole number at *p (digits only, at most 1000000); advances *p. */
static bool take_number(const char **p, int *v) {
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) return false;
    long n = 0;
    while (isdigit((unsigned char)*s)) {
        n = n * 10 + (*s++ - '0');
        if (n > 1000000) return false;
    }
    *v = (int)n;
    *p = s;
    return true;
}

static void skip_spaces(const char **p) {
    while (**p == ' ' || **p == '\t') (*p)++;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static sdc_status bad_item(const char *item, size_t len, const char *why) {
    return sdc_fail(SDC_ERR_ARG, "step list item \"%.*s\": %s", (int)len, item, why);
}

/* One item (not NUL-terminated: [item, item + len)); appends to out. */
static sdc_status parse_step_item(const char *item, size_t len, int *out, int cap, int *n) {
    char buf[64];
    const char *form = "expected a step count (1 to 1000) or a range like 5-50, 5-50:5 or 5-50 (+5)";
    if (len == 0) return sdc_fail(SDC_ERR_ARG, "step list: empty item (two commas in a row, or a comma at an end?)");
    if (len >= sizeof buf) return bad_item(item, len, form);
    memcpy(buf, item, len);
    buf[len] = '\0';
    const char *p = buf;
    int a, b, step = 1;
    if (*p == '-') {
        int v;
        const char *q = p + 1;
        if (take_number(&q, &v) && !*q) return bad_item(item, len, "steps must be 1 or more");
        return bad_item(item, len, form);
    }
    if (!take_number(&p, &a)) return bad_item(item, len, form);
    skip_spaces(&p);
    if (!*p) {
        b = a;
    } else {
        if (*p != '-') return bad_item(item, len, form);
        p++;
        skip_spaces(&p);
        if (!take_number(&p, &b)) return bad_item(item, len, form);
        skip_spaces(&p);
        if (*p == ':') {
            p++;
            skip_spaces(&p);
            if (*p == '+' || *p == '-') p++;
            if (!take_number(&p, &step)) return bad_item(item, len, form);
            skip_spaces(&p);
        } else if (*p == '(') {
            p++;
            skip_spaces(&p);
            if (*p == '+' || *p == '-') p++;
            if (!take_number(&p, &step)) return bad_item(item, len, form);
            skip_spaces(&p);
            if (*p++ != ')') return bad_item(item, len, form);
            skip_spaces(&p);
        }
        if (*p) return bad_item(item, len, form);
        if (step < 1) return bad_item(item, len, "the increment must be 1 or more");
    }
    if (a < 1 || b < 1) return bad_item(item, len, "steps must be 1 or more");
    if (a > SDC_COMPARE_MAX_STEPS || b > SDC_COMPARE_MAX_STEPS)
        return bad_item(item, len, "steps must be at most 1000");
    const int dir = b >= a ? 1 : -1;
    for (int v = a; dir > 0 ? v <= b : v >= b; v += dir * step) {
        if (*n >= cap) return sdc_fail(SDC_ERR_ARG, "step list: more than %d step counts", cap);
        out[(*n)++] = v;
    }
    return SDC_OK;
}

sdc_status sdc_parse_step_list(const char *spec, int *out, int cap, int *n) {
    *n = 0;
    const char *p = spec ? spec : "";
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return sdc_fail(SDC_ERR_ARG, "step list: empty (give counts like 5,10,20 or a range like 5-50:5)");
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        SDC_TRY(parse_step_item(s, (size_t)(e - s), out, cap, n));
        if (!comma) break;
        p = comma + 1;
    }
    qsort(out, (size_t)*n, sizeof *out, cmp_int);
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (k == 0 || out[i] != out[k - 1]) out[k++] = out[i];
    *n = k;
    return SDC_OK;
}

sdc_status sdc_parse_sampler_list(const char *spec, int *out, int cap, int *n) {
    *n = 0;
    const char *p = spec ? spec : "";
    char name[32];
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if (s == e) {
            if (!comma && *n == 0)
                return sdc_fail(SDC_ERR_ARG, "sampler list: empty (choose from ddim, ddpm, euler, euler_a, dpmpp_2m)");
            return sdc_fail(SDC_ERR_ARG, "sampler list: empty item (two commas in a row, or a comma at an end?)");
        }
        if ((size_t)(e - s) >= sizeof name)
            return sdc_fail(SDC_ERR_ARG, "unknown sampler \"%.*s\" (choose one of: ddim, ddpm, euler, euler_a, dpmpp_2m)",
                            (int)(e - s), s);
        memcpy(name, s, (size_t)(e - s));
        name[e - s] = '\0';
        sdc_sampler_kind k;
        SDC_TRY(sdc_sampler_parse(name, &k));
        for (int i = 0; i < *n; i++)
            if (out[i] == (int)k) return sdc_fail(SDC_ERR_ARG, "sampler list: %s is listed twice", name);
        if (*n >= cap) return sdc_fail(SDC_ERR_ARG, "sampler list: more than %d samplers", cap);
        out[(*n)++] = (int)k;
        if (!comma) break;
        p = comma + 1;
    }
    return SDC_OK;
}

/* ---- distances ---------------------------------------------------------------- */

double sdc_rmse_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n == 0) return 0.0;
    unsigned long long sq = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        sq += (unsigned long long)(d * d);
    }
    return sqrt((double)sq / (double)n);
}

double sdc_psnr_from_rmse(double rmse) {
    if (rmse <= 0.0) return INFINITY;
    return 20.0 * log10(255.0 / rmse);
}
