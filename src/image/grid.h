/* grid.h - comparison grids for `sdc compare`: a built-in bitmap font,
 * text drawing, the grid layout and canvas, the sampler and step lists the
 * command takes, and image distances (RMSE, PSNR).
 *
 * Layout of a grid of R rows (samplers) by C columns (step counts) of
 * W x H images, all in pixels:
 *
 *   s      = max(1, (min(W, H) + 128) / 256)   font scale (1 up to 383 px,
 *                                              2 for 384..639, ...)
 *   gap    = 2s                                margin and space between slots
 *   pad    = 2s                                space around each text line
 *   tw(n)  = 6s * n - s                        width of n characters
 *   text   = 9s                                height of a text line
 *   label  = max(tw(longest row label), tw(5)) + 2 pad     left column
 *   col    = max(W, tw(7) + 2 pad)                         one column
 *   head   = text + 2 pad                                  header row
 *   row    = H + text + 2 pad                  image, then its caption
 *   width  = gap + label + C (gap + col) + gap
 *   height = gap + head + R (gap + row) + gap
 *
 * Cell (r, c) is a white slot of col x row pixels at
 *   x = 2 gap + label + c (gap + col),  y = 2 gap + head + r (gap + row),
 * its image at (x + (col - W) / 2, y) and its caption (7 characters at
 * most) centred in the text line below the image. The header row holds
 * the step counts centred over their columns and "steps" right-aligned in
 * the corner; the left column holds the row labels, right-aligned and
 * centred on the image. The background is light grey, text near black. */
#ifndef SDC_GRID_H
#define SDC_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---- font ---------------------------------------------------------------- */

/* Glyphs are 5 x 9 pixels: rows 0..6 hold capitals and digits (the
 * baseline is below row 6), rows 7..8 descenders; each character advances
 * 6 pixels. Row bytes: bit 4 is the leftmost pixel. */
#define SDC_FONT_W 5
#define SDC_FONT_H 9
#define SDC_FONT_CAP 7
#define SDC_FONT_ADV 6

/* The 9 row bytes of ch (printable ASCII 32..126; anything else is '?'). */
const uint8_t *sdc_font_glyph(int ch);

/* Width in pixels of s drawn at `scale` (no trailing space): 6 scale n -
 * scale for n characters, 0 for "". Height of a line: 9 scale. */
int sdc_text_width(const char *s, int scale);
int sdc_text_height(int scale);

/* Draw s with its top-left corner at (x, y) into rgb (w x h x 3), each
 * font pixel a scale x scale square of `color`; clipped to the image. */
void sdc_draw_text(uint8_t *rgb, int w, int h, int x, int y, const char *s, int scale, const uint8_t color[3]);

/* ---- layout and canvas ------------------------------------------------------ */

typedef struct sdc_grid_layout {
    int rows, cols, cell_w, cell_h;
    int scale, gap, pad, text_h;
    int label_w, col_w, head_h, row_h;
    int width, height;
} sdc_grid_layout;

/* The layout above; SDC_ERR_ARG for empty or oversized grids (more than
 * 1 GiB of pixels or 65535 pixels a side). */
sdc_status sdc_grid_layout_make(int rows, int cols, int cell_w, int cell_h, const char *const *row_labels,
                                sdc_grid_layout *out);

/* Top-left corner of cell (r, c)'s image. */
void sdc_grid_image_origin(const sdc_grid_layout *l, int r, int c, int *x, int *y);

typedef struct sdc_grid {
    sdc_grid_layout l;
    uint8_t *rgb; /* l.width * l.height * 3 */
} sdc_grid;

/* A canvas with background, slots, header (col_labels) and row labels. */
sdc_status sdc_grid_new(const sdc_grid_layout *l, const char *const *row_labels, const char *const *col_labels,
                        sdc_grid *out);
/* Copy an image (cell_w x cell_h RGB) into cell (r, c) and write caption
 * (may be NULL) under it. */
void sdc_grid_put(sdc_grid *g, int r, int c, const uint8_t *rgb, const char *caption);
void sdc_grid_free(sdc_grid *g);

/* A caption of at most 7 characters for a time in seconds: "0.42 s",
 * "12.3 s", "123 s", "12345 s", "999 h" (buf >= 16 bytes). */
void sdc_grid_format_seconds(double seconds, char *buf, size_t cap);

/* ---- lists ----------------------------------------------------------------- */

#define SDC_COMPARE_MAX_STEPS 1000

/* A step list: comma-separated items, each a count N (1..1000) or a range
 * A-B (every count from A to B), A-B:S or A-B (+S) (every S-th: 5-50:5 =
 * 5,10,...,50; the sign of S is ignored, B need not be hit). Spaces around
 * items are allowed. The result is sorted ascending without duplicates.
 * At most `cap` counts (after expansion, before removing duplicates);
 * SDC_ERR_ARG with a message naming the item for anything else. */
sdc_status sdc_parse_step_list(const char *spec, int *out, int cap, int *n);

/* A sampler list: comma-separated names as sdc_sampler_parse takes them,
 * each at most once, at most `cap`. out[i] gets the sampler's index
 * (sdc_sampler_kind). */
sdc_status sdc_parse_sampler_list(const char *spec, int *out, int cap, int *n);

/* ---- distances ---------------------------------------------------------------- */

/* Root mean square difference of n bytes (8-bit pixel values). */
double sdc_rmse_u8(const uint8_t *a, const uint8_t *b, size_t n);
/* 20 log10(255 / rmse); INFINITY for rmse 0. */
double sdc_psnr_from_rmse(double rmse);

#endif
