/* resize.c - Pillow 11's LANCZOS and BICUBIC resampling of 8-bit images
 * (src/libImaging/Resample.c), and AUTOMATIC1111's resize modes on top of
 * it (see resize.h).
 *
 * Pillow resamples in two passes, horizontal then vertical. Each output
 * pixel of a pass is a weighted sum of a run of input pixels; the weights
 * are computed in double, normalised to sum 1, then rounded to fixed point
 * with 22 fraction bits; the horizontal result is rounded to 8 bits before
 * the vertical pass reads it. Every step here is that arithmetic in that
 * order, so the bytes match Pillow's.
 *
 * Any window of a resize's output can be computed on its own (each output
 * pixel depends only on its own coordinates), which lets "crop and resize"
 * compute just the part of the scaled image that stays on the canvas: a
 * 1x8192 image cropped to 8192x8192 never makes the 67-million-row
 * intermediate A1111 would. */
#include "image/resize.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Pillow's PRECISION_BITS (32 - 8 - 2): 8 bits of value and two for the
 * filter's overshoot above 1 and below 0 stay inside an int. */
#define PRECISION_BITS 22
#define SDC_PI 3.14159265358979323846 /* M_PI, which strict C11 does not define */

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * SDC_PI;
    return sin(x) / x;
}

/* Pillow's lanczos_filter: sinc windowed by sinc(x / 3), three lobes */
static double lanczos(double x) {
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

/* Pillow's bicubic_filter: Keys' cubic convolution with a = -0.5 */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    double (*fn)(double x);
    double support; /* fn is 0 outside (-support, support) */
} filter;

static const filter FILTERS[] = {[SDC_RESAMPLE_LANCZOS] = {lanczos, 3.0}, [SDC_RESAMPLE_BICUBIC] = {bicubic, 2.0}};

/* Pillow's clip8 (a lookup of ss >> 22 that is 0 below and 255 above) */
static uint8_t clip8(int64_t ss) {
    if (ss < 0) return 0;
    const int64_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* The taps of one pass for n consecutive outputs: output j reads the
 * inputs first[j] .. first[j] + count[j] - 1 with weights k[j * ksize ..]. */
typedef struct {
    int ksize;
    int *first, *count; /* (n) */
    int32_t *k;         /* (n, ksize), PRECISION_BITS fraction bits */
} taps;

static void taps_free(taps *t) {
    free(t->first), free(t->count), free(t->k);
    memset(t, 0, sizeof *t);
}

/* Weights of one output centred at `center` (input pixels), normalised;
 * w has room for ksize. Returns the first input; *count is set. */
static int taps_one(const filter *f, double center, double support, double filterscale, int in_size, int ksize,
                    double *w, int *count) {
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5); /* Pillow rounds by truncation, as here */
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax < 0) xmax = 0; /* cannot happen for a box inside the image; kept so no loop runs wild */
    if (xmax > ksize) xmax = ksize;
    for (int x = 0; x < xmax; x++) {
        const double v = f->fn((x + xmin - center + 0.5) * ss);
        w[x] = v;
        ww += v;
    }
    for (int x = 0; x < xmax; x++)
        if (ww != 0.0) w[x] /= ww;
    *count = xmax;
    return xmin;
}

/* Pillow's precompute_coeffs and normalize_coeffs_8bpc, for the outputs
 * o0 .. o0 + n - 1 of the source span in0..in1 (of in_size pixels) resampled
 * to out_size pixels. in0 and in1 are floats, and their difference is taken
 * in float, as Pillow does. */
static sdc_status taps_make(const filter *f, int in_size, float in0, float in1, int out_size, int o0, int n,
                            taps *t) {
    const double scale = (double)(in1 - in0) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = f->support * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    memset(t, 0, sizeof *t);
    t->ksize = ksize;
    t->first = malloc((size_t)n * sizeof(int));
    t->count = malloc((size_t)n * sizeof(int));
    t->k = calloc((size_t)n * ksize, sizeof(int32_t));
    double *w = malloc((size_t)ksize * sizeof(double));
    if (!t->first || !t->count || !t->k || !w) {
        free(w);
        taps_free(t);
        return sdc_fail(SDC_ERR_OOM, "resize: out of memory for %d x %d filter taps", n, ksize);
    }
    for (int j = 0; j < n; j++) {
        const double center = in0 + (o0 + j + 0.5) * scale;
        t->first[j] = taps_one(f, center, support, filterscale, in_size, ksize, w, &t->count[j]);
        int32_t *k = t->k + (size_t)j * ksize;
        for (int x = 0; x < t->count[j]; x++) /* round half away from zero */
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
    }
    free(w);
    return SDC_OK;
}

/* Horizontal pass over one row: out (n, ch) from the row `in` (., ch). */
static void pass_h(const uint8_t *in, int ch, const taps *t, int n, uint8_t *out) {
    for (int j = 0; j < n; j++) {
        const int32_t *k = t->k + (size_t)j * t->ksize;
        const uint8_t *p = in + (size_t)t->first[j] * ch;
        for (int c = 0; c < ch; c++) {
            int64_t ss = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < t->count[j]; x++) ss += (int64_t)p[(size_t)x * ch + c] * k[x];
            out[(size_t)j * ch + c] = clip8(ss);
        }
    }
}

/* Vertical pass for output row j: out (w, ch) from rows of `in` (stride
 * bytes apart; row r of in is input row r + row0). */
static void pass_v(const uint8_t *in, size_t stride, int row0, int w, int ch, const taps *t, int j, uint8_t *out) {
    const int32_t *k = t->k + (size_t)j * t->ksize;
    const uint8_t *p = in + (size_t)(t->first[j] - row0) * stride;
    for (int i = 0; i < w * ch; i++) {
        int64_t ss = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < t->count[j]; y++) ss += (int64_t)p[(size_t)y * stride + i] * k[y];
        out[i] = clip8(ss);
    }
}

/* Pillow's ImagingResampleInner, restricted to the window (x0, y0, w, h)
 * of the (ow, oh) result: dst is (h, w, ch). A pass is skipped exactly when
 * Pillow skips it (same size and the whole span); the horizontal pass runs
 * over just the source rows the vertical one reads. */
static sdc_status resample(const filter *f, const uint8_t *src, int sw, int sh, int ch, const float box[4], int ow,
                           int oh, int x0, int y0, int w, int h, uint8_t *dst) {
    const bool need_h = ow != sw || box[0] != 0.0f || box[2] != (float)ow;
    const bool need_v = oh != sh || box[1] != 0.0f || box[3] != (float)oh;
    taps th, tv;
    SDC_TRY(taps_make(f, sw, box[0], box[2], ow, x0, w, &th));
    sdc_status st = taps_make(f, sh, box[1], box[3], oh, y0, h, &tv);
    if (st != SDC_OK) {
        taps_free(&th);
        return st;
    }
    /* source rows [row0, row1) that reach the output */
    const int row0 = need_v ? tv.first[0] : y0;
    const int row1 = need_v ? tv.first[h - 1] + tv.count[h - 1] : y0 + h;
    /* mid: what the vertical pass reads, row r = source row row0 + r */
    uint8_t *tmp = NULL;
    const uint8_t *mid;
    size_t stride;
    if (need_h) {
        tmp = malloc((size_t)(row1 > row0 ? row1 - row0 : 1) * w * ch);
        if (!tmp) st = sdc_fail(SDC_ERR_OOM, "resize: out of memory for %d rows of %d pixels", row1 - row0, w);
        for (int y = row0; st == SDC_OK && y < row1; y++)
            pass_h(src + (size_t)y * sw * ch, ch, &th, w, tmp + (size_t)(y - row0) * w * ch);
        mid = tmp, stride = (size_t)w * ch;
    } else { /* the same width and span: the source's own columns */
        mid = src + (size_t)row0 * sw * ch + (size_t)x0 * ch, stride = (size_t)sw * ch;
    }
    for (int j = 0; st == SDC_OK && j < h; j++) {
        if (need_v)
            pass_v(mid, stride, row0, w, ch, &tv, j, dst + (size_t)j * w * ch);
        else
            memcpy(dst + (size_t)j * w * ch, mid + (size_t)j * stride, (size_t)w * ch);
    }
    free(tmp);
    taps_free(&th), taps_free(&tv);
    return st;
}

static sdc_status check_image(const char *what, const uint8_t *p, int w, int h, int ch) {
    if (!p) return sdc_fail(SDC_ERR_ARG, "%s: no pixels (NULL)", what);
    if (ch != 1 && ch != 3) return sdc_fail(SDC_ERR_ARG, "%s: %d channels, expected 1 (L) or 3 (RGB)", what, ch);
    if (w < 1 || h < 1 || w > SDC_RESIZE_MAX_SIDE || h > SDC_RESIZE_MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "%s: size %dx%d, expected 1 to %d pixels a side", what, w, h,
                        SDC_RESIZE_MAX_SIDE);
    return SDC_OK;
}

static sdc_status check_out(const char *what, uint8_t **dst, int dw, int dh) {
    if (!dst) return sdc_fail(SDC_ERR_ARG, "%s: no place for the result (NULL)", what);
    *dst = NULL;
    if (dw < 1 || dh < 1 || dw > SDC_RESIZE_MAX_SIDE || dh > SDC_RESIZE_MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "%s: output size %dx%d, expected 1 to %d pixels a side", what, dw, dh,
                        SDC_RESIZE_MAX_SIDE);
    return SDC_OK;
}

/* Pillow's checks on a box (_imaging.c _resize), and finite numbers. */
static sdc_status check_box(const float b[4], int sw, int sh) {
    for (int i = 0; i < 4; i++)
        if (!isfinite(b[i])) return sdc_fail(SDC_ERR_ARG, "resize: box coordinate %d is not a finite number", i);
    if (b[0] < 0 || b[1] < 0)
        return sdc_fail(SDC_ERR_ARG, "resize: box (%g, %g, %g, %g) starts left of or above the image", (double)b[0],
                        (double)b[1], (double)b[2], (double)b[3]);
    if (b[2] > sw || b[3] > sh)
        return sdc_fail(SDC_ERR_ARG, "resize: box (%g, %g, %g, %g) reaches past the %dx%d image", (double)b[0],
                        (double)b[1], (double)b[2], (double)b[3], sw, sh);
    if (b[2] - b[0] < 0 || b[3] - b[1] < 0)
        return sdc_fail(SDC_ERR_ARG, "resize: box (%g, %g, %g, %g) has its right or bottom edge before its left or top",
                        (double)b[0], (double)b[1], (double)b[2], (double)b[3]);
    return SDC_OK;
}

sdc_status sdc_image_resample(sdc_resample filter, const uint8_t *src, int sw, int sh, int ch, const float *box,
                              uint8_t **dst, int dw, int dh) {
    SDC_TRY(check_out("resize", dst, dw, dh));
    if (filter != SDC_RESAMPLE_LANCZOS && filter != SDC_RESAMPLE_BICUBIC)
        return sdc_fail(SDC_ERR_ARG, "resize: filter %d, expected LANCZOS (%d) or BICUBIC (%d)", (int)filter,
                        SDC_RESAMPLE_LANCZOS, SDC_RESAMPLE_BICUBIC);
    SDC_TRY(check_image("resize", src, sw, sh, ch));
    float b[4] = {0.0f, 0.0f, (float)sw, (float)sh};
    if (box) {
        SDC_TRY(check_box(box, sw, sh));
        memcpy(b, box, sizeof b);
    }
    uint8_t *out = malloc((size_t)dw * dh * ch);
    if (!out) return sdc_fail(SDC_ERR_OOM, "resize: out of memory for a %dx%d image", dw, dh);
    /* Pillow crops instead of resampling when the box is whole pixels of
     * the output's size (the same size without a box: a copy) */
    if (b[0] - (int)b[0] == 0 && b[2] - b[0] == dw && b[1] - (int)b[1] == 0 && b[3] - b[1] == dh) {
        const int bx = (int)b[0], by = (int)b[1];
        for (int y = 0; y < dh; y++)
            memcpy(out + (size_t)y * dw * ch, src + ((size_t)(by + y) * sw + bx) * ch, (size_t)dw * ch);
        *dst = out;
        return SDC_OK;
    }
    sdc_status st = resample(&FILTERS[filter], src, sw, sh, ch, b, dw, dh, 0, 0, dw, dh, out);
    if (st != SDC_OK) {
        free(out);
        return st;
    }
    *dst = out;
    return SDC_OK;
}

sdc_status sdc_image_resize(const uint8_t *src, int sw, int sh, int ch, const float *box, uint8_t **dst, int dw,
                            int dh) {
    return sdc_image_resample(SDC_RESAMPLE_LANCZOS, src, sw, sh, ch, box, dst, dw, dh);
}

/* ---- AUTOMATIC1111's modes ---------------------------------------------- */

/* Pillow's paste of img (ih, iw, ch) at (ox, oy) on canvas (chh, cw, ch),
 * clipped to the canvas (ImagingPaste). */
static void paste(uint8_t *canvas, int cw, int chh, int ch, const uint8_t *img, int iw, int ih, int ox, int oy) {
    int sx = 0, sy = 0, w = iw, h = ih;
    if (ox < 0) w += ox, sx = -ox, ox = 0;
    if (ox + w > cw) w = cw - ox;
    if (oy < 0) h += oy, sy = -oy, oy = 0;
    if (oy + h > chh) h = chh - oy;
    if (w <= 0 || h <= 0) return;
    for (int y = 0; y < h; y++)
        memcpy(canvas + ((size_t)(oy + y) * cw + ox) * ch, img + ((size_t)(sy + y) * iw + sx) * ch, (size_t)w * ch);
}

/* Crop and resize: scaled to cover (rw, rh), pasted at (dw / 2 - rw / 2,
 * dh / 2 - rh / 2) <= 0 on the canvas, which it covers; so the canvas is
 * the window of the scaled image that starts at (rw / 2 - dw / 2,
 * rh / 2 - dh / 2). */
static sdc_status crop_and_resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *out, int dw, int dh) {
    const double ratio = (double)dw / dh, src_ratio = (double)sw / sh;
    const int64_t rw = ratio > src_ratio ? dw : (int64_t)sw * dh / sh; /* Python's //, operands >= 0 */
    const int64_t rh = ratio <= src_ratio ? dh : (int64_t)sh * dw / sw;
    const float box[4] = {0.0f, 0.0f, (float)sw, (float)sh};
    return resample(&FILTERS[SDC_RESAMPLE_LANCZOS], src, sw, sh, ch, box, (int)rw, (int)rh, (int)(rw / 2 - dw / 2),
                    (int)(rh / 2 - dh / 2), dw, dh, out);
}

/* One bar of resize and fill: `resized` (rh, rw) resampled from the
 * zero-thickness box b to (bw, bh), pasted at (ox, oy). A1111 passes no
 * filter here, so it is Pillow's default, BICUBIC. */
static sdc_status fill_bar(const uint8_t *resized, int rw, int rh, int ch, const float b[4], int bw, int bh,
                           uint8_t *out, int dw, int dh, int ox, int oy) {
    uint8_t *bar = NULL;
    SDC_TRY(sdc_image_resample(SDC_RESAMPLE_BICUBIC, resized, rw, rh, ch, b, &bar, bw, bh));
    paste(out, dw, dh, ch, bar, bw, bh, ox, oy);
    free(bar);
    return SDC_OK;
}

/* The bars A1111 paints beside the fitted image: resize(..., box=(0, 0,
 * width, 0)) and its three siblings. */
static sdc_status fill_bars(const uint8_t *resized, int rw, int rh, int ch, uint8_t *out, int dw, int dh,
                            bool rows) {
    if (rows) { /* bars above and below, rw == dw */
        const int fill = dh / 2 - rh / 2;
        if (fill < 1) return SDC_OK; /* Pillow would refuse a 0-row image here */
        const float top[4] = {0.0f, 0.0f, (float)dw, 0.0f}, bottom[4] = {0.0f, (float)rh, (float)dw, (float)rh};
        SDC_TRY(fill_bar(resized, rw, rh, ch, top, dw, fill, out, dw, dh, 0, 0));
        return fill_bar(resized, rw, rh, ch, bottom, dw, fill, out, dw, dh, 0, fill + rh);
    }
    const int fill = dw / 2 - rw / 2; /* bars left and right, rh == dh */
    if (fill < 1) return SDC_OK;
    const float left[4] = {0.0f, 0.0f, 0.0f, (float)dh}, right[4] = {(float)rw, 0.0f, (float)rw, (float)dh};
    SDC_TRY(fill_bar(resized, rw, rh, ch, left, fill, dh, out, dw, dh, 0, 0));
    return fill_bar(resized, rw, rh, ch, right, fill, dh, out, dw, dh, fill + rw, 0);
}

/* Resize and fill: scaled to fit (rw, rh), centred on black, bars filled. */
static sdc_status resize_and_fill(const uint8_t *src, int sw, int sh, int ch, uint8_t *out, int dw, int dh) {
    const double ratio = (double)dw / dh, src_ratio = (double)sw / sh;
    const int64_t rw = ratio < src_ratio ? dw : (int64_t)sw * dh / sh;
    const int64_t rh = ratio >= src_ratio ? dh : (int64_t)sh * dw / sw;
    if (rw < 1 || rh < 1)
        return sdc_fail(SDC_ERR_ARG,
                        "resize and fill: the %dx%d image fitted into %dx%d would be %lldx%lld pixels (A1111 fails "
                        "here too); use another resize mode",
                        sw, sh, dw, dh, (long long)rw, (long long)rh);
    uint8_t *resized = NULL;
    SDC_TRY(sdc_image_resize(src, sw, sh, ch, NULL, &resized, (int)rw, (int)rh));
    memset(out, 0, (size_t)dw * dh * ch);
    paste(out, dw, dh, ch, resized, (int)rw, (int)rh, dw / 2 - (int)rw / 2, dh / 2 - (int)rh / 2);
    sdc_status st = SDC_OK;
    if (ratio != src_ratio) st = fill_bars(resized, (int)rw, (int)rh, ch, out, dw, dh, ratio < src_ratio);
    free(resized);
    return st;
}

sdc_status sdc_image_resize_mode(int mode, const uint8_t *src, int sw, int sh, int channels, uint8_t **dst, int dw,
                                 int dh) {
    SDC_TRY(check_out("resize", dst, dw, dh));
    SDC_TRY(check_image("resize", src, sw, sh, channels));
    if (mode == 0) return sdc_image_resize(src, sw, sh, channels, NULL, dst, dw, dh);
    if (mode != 1 && mode != 2)
        return sdc_fail(SDC_ERR_ARG, "resize mode %d: expected 0 (just resize), 1 (crop and resize) or 2 (resize "
                        "and fill)", mode);
    uint8_t *out = malloc((size_t)dw * dh * channels);
    if (!out) return sdc_fail(SDC_ERR_OOM, "resize: out of memory for a %dx%d image", dw, dh);
    sdc_status st = mode == 1 ? crop_and_resize(src, sw, sh, channels, out, dw, dh)
                              : resize_and_fill(src, sw, sh, channels, out, dw, dh);
    if (st != SDC_OK) {
        free(out);
        return st;
    }
    *dst = out;
    return SDC_OK;
}
