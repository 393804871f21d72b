/* mask_ops.c - AUTOMATIC1111's mask blur (OpenCV 4.10's 8-bit GaussianBlur)
 * and inpainting fill (Pillow 11's GaussianBlur, premultiplied alpha and
 * alpha_composite); see mask_ops.h. Both are integer pipelines once their
 * kernels are made, so each step is ported with its exact rounding. */
#include "image/mask_ops.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static sdc_status check_size(const char *what, int w, int h) {
    if (w < 1 || h < 1 || w > SDC_MASK_MAX_SIDE || h > SDC_MASK_MAX_SIDE)
        return sdc_fail(SDC_ERR_ARG, "%s: size %dx%d, expected 1 to %d pixels a side", what, w, h, SDC_MASK_MAX_SIDE);
    return SDC_OK;
}

/* ---- OpenCV: the bit-exact Gaussian kernel ------------------------------ */

static double from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* softfloat's round to nearest, ties to even (cvRound of a softdouble and
 * f64_roundToInt); exact, as x - floor(x) is. */
static double round_even(double x) {
    const double f = floor(x), d = x - f;
    if (d > 0.5 || (d == 0.5 && fmod(f, 2.0) != 0.0)) return f + 1.0;
    return f;
}

/* OpenCV's softdouble exp (core/src/softfloat.cpp f64_exp): 2^(n/64) from
 * a table times a degree-5 polynomial. Not libm's exp: its last bits
 * differ, and they can move a kernel tap by one. Every operation is an
 * IEEE double one, as softfloat's are (strict C11: no fused multiply-add). */
static double cv_exp(double x) {
    static const uint64_t tab[64] = {
        0x3ff0000000000000, 0x3ff02c9a3e778061, 0x3ff059b0d3158574, 0x3ff0874518759bc8, 0x3ff0b5586cf9890f,
        0x3ff0e3ec32d3d1a2, 0x3ff11301d0125b51, 0x3ff1429aaea92de0, 0x3ff172b83c7d517b, 0x3ff1a35beb6fcb75,
        0x3ff1d4873168b9aa, 0x3ff2063b88628cd6, 0x3ff2387a6e756238, 0x3ff26b4565e27cdd, 0x3ff29e9df51fdee1,
        0x3ff2d285a6e4030b, 0x3ff306fe0a31b715, 0x3ff33c08b26416ff, 0x3ff371a7373aa9cb, 0x3ff3a7db34e59ff7,
        0x3ff3dea64c123422, 0x3ff4160a21f72e2a, 0x3ff44e086061892d, 0x3ff486a2b5c13cd0, 0x3ff4bfdad5362a27,
        0x3ff4f9b2769d2ca7, 0x3ff5342b569d4f82, 0x3ff56f4736b527da, 0x3ff5ab07dd485429, 0x3ff5e76f15ad2148,
        0x3ff6247eb03a5585, 0x3ff6623882552225, 0x3ff6a09e667f3bcd, 0x3ff6dfb23c651a2f, 0x3ff71f75e8ec5f74,
        0x3ff75feb564267c9, 0x3ff7a11473eb0187, 0x3ff7e2f336cf4e62, 0x3ff82589994cce13, 0x3ff868d99b4492ed,
        0x3ff8ace5422aa0db, 0x3ff8f1ae99157736, 0x3ff93737b0cdc5e5, 0x3ff97d829fde4e50, 0x3ff9c49182a3f090,
        0x3ffa0c667b5de565, 0x3ffa5503b23e255d, 0x3ffa9e6b5579fdbf, 0x3ffae89f995ad3ad, 0x3ffb33a2b84f15fb,
        0x3ffb7f76f2fb5e47, 0x3ffbcc1e904bc1d2, 0x3ffc199bdd85529c, 0x3ffc67f12e57d14b, 0x3ffcb720dcef9069,
        0x3ffd072d4a07897c, 0x3ffd5818dcfba487, 0x3ffda9e603db3285, 0x3ffdfc97337b9b5f, 0x3ffe502ee78b3ff6,
        0x3ffea4afa2a490da, 0x3ffefa1bee615a27, 0x3fff50765b6e4540, 0x3fffa7c1819e90d8,
    }; /* 2^(i/64) */
    const double c0 = from_bits(0x3f83ce0f3e46f431); /* EXPPOLY_32F_A0, folded out of the polynomial */
    const double a5 = 1.0 / c0, a4 = from_bits(0x3fe62e42fefa39f1) / c0, a3 = from_bits(0x3fcebfbdff82a45a) / c0,
                 a2 = from_bits(0x3fac6b08d81fec75) / c0, a1 = from_bits(0x3f83b2a72b4f3cd3) / c0,
                 a0 = from_bits(0x3f55e7aa1566c2a4) / c0;
    const double prescale = from_bits(0x3ff71547652b82fe) * 64.0; /* 64 / ln 2 */
    const double max_val = 3000.0 * 64.0;
    if (isnan(x)) return x;
    if (isinf(x)) return x > 0 ? x : 0.0;
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    double x0 = (int)((u >> 52) & 0x7ff) > 1023 + 10 ? (signbit(x) ? -max_val : max_val) : x * prescale;
    const int val0 = (int)round_even(x0);
    const int q = val0 >= 0 ? val0 / 64 : -((-val0 + 63) / 64); /* val0 >> 6, rounding down */
    int t = q + 1023;
    t = t < 0 ? 0 : t > 2047 ? 2047 : t;
    const double buf = from_bits((uint64_t)t << 52); /* 2^q */
    x0 = (x0 - round_even(x0)) * (1.0 / 64.0);
    return buf * c0 * from_bits(tab[val0 - q * 64]) * (((((a0 * x0 + a1) * x0 + a2) * x0 + a3) * x0 + a4) * x0 + a5);
}

/* 2 * int(2.5 * blur + 0.5) + 1 is 5 * blur + 1 or + 2 */
#define KSIZE_MAX (5 * SDC_MASK_BLUR_MAX + 2)

/* getGaussianKernelBitExact then getGaussianKernelFixedPoint_ED with 8
 * fraction bits (ufixedpoint16): k (n) sums to exactly 256. n is odd. */
static void gauss_kernel_q8(int n, double sigma, uint16_t *k) {
    double vals[KSIZE_MAX / 2 + 1];
    const double scale2 = -0.125 / (sigma * sigma); /* x below is twice the offset */
    const int n2 = (n - 1) / 2;
    double sum = 0.0;
    for (int i = 0, x = 1 - n; i < n2; i++, x += 2) {
        vals[i] = cv_exp((double)(x * x) * scale2);
        sum += vals[i];
    }
    sum *= 2.0;
    sum += 1.0;
    const double mul1 = 1.0 / sum;
    /* to fixed point, carrying each tap's rounding error into the next */
    double err = 0.0;
    int total = 0;
    for (int i = 0; i < n2; i++) {
        const double adj = vals[i] * mul1 * 256.0 + err;
        const double v = round_even(adj);
        err = adj - v;
        k[i] = k[n - 1 - i] = (uint16_t)v;
        total += (int)v;
    }
    k[n2] = (uint16_t)(256 - 2 * total);
}

/* BORDER_REFLECT_101 (borderInterpolate): ... 2 1 | 0 1 2 ... n-1 | n-2 ...,
 * periodic with period 2 (n - 1). */
static int reflect101(int p, int n) {
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    p %= period;
    if (p < 0) p += period;
    return p < n ? p : period - p;
}

/* OpenCV's rounding of the 1-D result: the fixed-point sum (8 fraction
 * bits; the other axis's kernel is [1.0]) to 8 bits, half up. The sum is at
 * most 256 * 255, so no saturation ever happens. */
static uint8_t q8_to_u8(uint32_t s) {
    const uint32_t v = (s + 128) >> 8;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* One direction of the blur over n samples of each of `lines` lines:
 * sample i of line l is m[l * line_step + i * step]. */
static sdc_status blur_1d(uint8_t *m, int lines, size_t line_step, int n, size_t step, int blur) {
    const int ksize = 2 * (int)(2.5 * blur + 0.5) + 1, r = ksize / 2;
    uint16_t k[KSIZE_MAX];
    gauss_kernel_q8(ksize, (double)blur, k);
    int *idx = malloc((size_t)(n + 2 * r) * sizeof(int)); /* (n + 2r) source sample of each tap position */
    uint8_t *line = malloc((size_t)n);
    if (!idx || !line) {
        free(idx), free(line);
        return sdc_fail(SDC_ERR_OOM, "mask blur: out of memory for a line of %d pixels", n);
    }
    for (int i = 0; i < n + 2 * r; i++) idx[i] = reflect101(i - r, n);
    for (int l = 0; l < lines; l++) {
        uint8_t *p = m + (size_t)l * line_step;
        for (int i = 0; i < n; i++) line[i] = p[(size_t)i * step];
        for (int i = 0; i < n; i++) {
            uint32_t s = 0;
            for (int t = 0; t < ksize; t++) s += (uint32_t)k[t] * line[idx[i + t]];
            p[(size_t)i * step] = q8_to_u8(s);
        }
    }
    free(idx), free(line);
    return SDC_OK;
}

sdc_status sdc_mask_blur(uint8_t *m, int w, int h, int blur_x, int blur_y) {
    if (!m) return sdc_fail(SDC_ERR_ARG, "mask blur: no mask (NULL)");
    SDC_TRY(check_size("mask blur", w, h));
    if (blur_x > SDC_MASK_BLUR_MAX || blur_y > SDC_MASK_BLUR_MAX)
        return sdc_fail(SDC_ERR_ARG, "mask blur %d x %d: expected at most %d", blur_x, blur_y, SDC_MASK_BLUR_MAX);
    /* cv2.GaussianBlur leaves a 1-pixel side alone (its kernel becomes 1) */
    if (blur_x > 0 && w > 1) SDC_TRY(blur_1d(m, h, (size_t)w, w, 1, blur_x));
    if (blur_y > 0 && h > 1) SDC_TRY(blur_1d(m, w, 1, h, (size_t)w, blur_y));
    return SDC_OK;
}

/* ---- Pillow: RGBa, box blur, alpha composite ---------------------------- */

/* Pillow's DIV255: a / 255 rounded, for a <= 255 * 255 */
static uint8_t div255(uint32_t a) {
    const uint32_t t = a + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* ImagingLineBoxBlur32: one line of n 4-byte pixels, in -> out. The sums
 * are unsigned 32-bit and wrap as Pillow's do; the window is radius pixels
 * each side plus fw/2^24 of the next pixel on each side, and the line's end
 * pixels stand in for everything beyond them. */
static void box_line(const uint8_t *in, uint8_t *out, int n, int radius, uint32_t ww, uint32_t fw) {
    const int lastx = n - 1;
    const int edge_a = radius + 1 < n ? radius + 1 : n, edge_b = n - radius - 1 > 0 ? n - radius - 1 : 0;
    for (int c = 0; c < 4; c++) {
        const uint8_t *p = in + c;
        /* the sum for pixel -1: pixel 0 radius + 1 times, then 0 .. radius - 1 */
        uint32_t acc = (uint32_t)(p[0] * (radius + 1));
        for (int x = 0; x < edge_a - 1; x++) acc += p[4 * x];
        acc += (uint32_t)(p[4 * lastx] * (radius - edge_a + 1));
        /* Pillow's three loops (two orders of edge_a and edge_b) come down to
         * these indices: the pixel leaving the window (also the far one on
         * the left), the one entering, and the far one on the right */
        for (int x = 0; x < n; x++) {
            const int sub = x < edge_a ? 0 : x - radius - 1;
            const int add = x < edge_b ? x + radius : lastx;
            const int far = x < edge_b ? x + radius + 1 : lastx;
            acc += (uint32_t)((int)p[4 * add] - (int)p[4 * sub]);
            const uint32_t bulk = acc * ww + (uint32_t)(p[4 * sub] + p[4 * far]) * fw;
            out[4 * x + c] = (uint8_t)((bulk + (1u << 23)) >> 24);
        }
    }
}

/* ImagingHorizontalBoxBlur over `lines` lines of n pixels; pixel i of line
 * l is at img + 4 * (l * line_step + i * step). */
static void box_pass(uint8_t *img, int lines, size_t line_step, int n, size_t step, float fr, uint8_t *buf) {
    const int radius = (int)fr;
    const uint32_t ww = (uint32_t)((float)(1u << 24) / (fr * 2 + 1)); /* float division, as Pillow */
    const uint32_t fw = ((1u << 24) - (uint32_t)(radius * 2 + 1) * ww) / 2;
    uint8_t *in = buf, *out = buf + (size_t)4 * n;
    for (int l = 0; l < lines; l++) {
        uint8_t *p = img + 4 * (size_t)l * line_step;
        for (int i = 0; i < n; i++) memcpy(in + 4 * i, p + 4 * (size_t)i * step, 4);
        box_line(in, out, n, radius, ww, fw);
        for (int i = 0; i < n; i++) memcpy(p + 4 * (size_t)i * step, out + 4 * i, 4);
    }
}

/* _gaussian_blur_radius: the extended box radius whose `passes` box blurs
 * have the Gaussian's variance (Gwosdek et al. 2011), in float as Pillow. */
static float extended_radius(float radius, int passes) {
    const float sigma2 = radius * radius / passes;
    const float big_l = (float)sqrt(12.0 * sigma2 + 1.0);
    const float l = (float)floor((big_l - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

/* ImagingGaussianBlur (3 passes) on img (h, w, 4): rows, then columns. */
static void gaussian_blur(uint8_t *img, int w, int h, float radius, uint8_t *buf) {
    const float r = extended_radius(radius, 3);
    if (r == 0) return;
    for (int i = 0; i < 3; i++) box_pass(img, h, (size_t)w, w, 1, r, buf);
    for (int i = 0; i < 3; i++) box_pass(img, w, 1, h, (size_t)w, r, buf);
}

/* RGBa -> RGBA (rgba2rgbA): colour * 255 / alpha, truncated, capped */
static void unpremultiply(uint8_t *px, size_t n) {
    for (size_t i = 0; i < n; i++, px += 4) {
        const unsigned a = px[3];
        if (a == 255 || a == 0) continue;
        for (int c = 0; c < 3; c++) {
            const unsigned v = 255u * px[c] / a;
            px[c] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

/* ImagingAlphaComposite of src over dst, into dst (both RGBA, n pixels):
 * 7 extra fraction bits and Pillow's divide-by-255 shifts. */
static void alpha_composite(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++, dst += 4, src += 4) {
        if (src[3] == 0) continue;
        const uint32_t blend = (uint32_t)dst[3] * (255u - src[3]);
        const uint32_t outa255 = src[3] * 255u + blend;
        const uint32_t coef1 = src[3] * 255u * 255u * 128u / outa255;
        const uint32_t coef2 = 255u * 128u - coef1;
        for (int c = 0; c < 3; c++) {
            const uint32_t t = src[c] * coef1 + dst[c] * coef2 + (0x80u << 7);
            dst[c] = (uint8_t)((((t >> 8) + t) >> 8) >> 7);
        }
        dst[3] = (uint8_t)((((outa255 + 0x80) >> 8) + outa255 + 0x80) >> 8);
    }
}

sdc_status sdc_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h) {
    if (!rgb || !mask) return sdc_fail(SDC_ERR_ARG, "inpaint fill: no %s (NULL)", rgb ? "mask" : "image");
    SDC_TRY(check_size("inpaint fill", w, h));
    static const struct {
        float radius;
        int repeats;
    } layers[] = {{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}}; /* masking.fill's list */
    const size_t npx = (size_t)w * h;
    const int side = w > h ? w : h;
    uint8_t *masked = malloc(npx * 4), *blurred = malloc(npx * 4), *acc = calloc(npx, 4);
    uint8_t *buf = malloc((size_t)8 * side);
    if (!masked || !blurred || !acc || !buf) {
        free(masked), free(blurred), free(acc), free(buf);
        return sdc_fail(SDC_ERR_OOM, "inpaint fill: out of memory for a %dx%d image", w, h);
    }
    /* image.convert("RGBA").convert("RGBa") is (r, g, b, 255): premultiplying
     * by 255 changes nothing. Pasted onto transparent black through
     * invert(mask): BLEND(255 - m, 0, v) = DIV255(v * (255 - m)). */
    for (size_t i = 0; i < npx; i++) {
        const uint32_t a = 255u - mask[i];
        for (int c = 0; c < 3; c++) masked[4 * i + c] = div255(rgb[3 * i + c] * a);
        masked[4 * i + 3] = div255(255u * a);
    }
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        memcpy(blurred, masked, npx * 4);
        if (layers[l].radius != 0) gaussian_blur(blurred, w, h, layers[l].radius, buf); /* radius 0: a copy */
        unpremultiply(blurred, npx);
        for (int r = 0; r < layers[l].repeats; r++) alpha_composite(acc, blurred, npx);
    }
    for (size_t i = 0; i < npx; i++) memcpy(rgb + 3 * i, acc + 4 * i, 3); /* convert("RGB") drops alpha */
    free(masked), free(blurred), free(acc), free(buf);
    return SDC_OK;
}
