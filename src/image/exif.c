/* exif.c - the EXIF orientation (tag 0x0112 of the first IFD) read as
 * Pillow 11.0 reads it for ImageOps.exif_transpose, and the transposition.
 *
 * Pillow's reader (PIL/TiffImagePlugin.py, ImageFileDirectory_v2.load) is
 * lenient in particular ways, which sdc follows so that the same file turns
 * the same way:
 *   - every leading "Exif\0\0" is stripped; the TIFF header is one of
 *     "II*\0", "II\0*", "MM\0*", "MM*\0", "MM\0+" (classic 4-byte offsets);
 *     another header, or a block under 8 bytes, gives no tags (Pillow
 *     raises, which its JPEG reader catches when it looks for a DPI);
 *   - the entries are read in order; an entry of a type Pillow has no
 *     reader for is skipped; one whose data (over 4 bytes) lies past the
 *     end, or a block that ends inside an entry, ends the reading, and the
 *     tags read until then are kept; a later entry of the same tag
 *     replaces an earlier one; a count of 0 is skipped;
 *   - the value is the first of the entry's values (Pillow warns and takes
 *     it for a count over 1), compared with 2..8 as Python compares
 *     numbers: integer types, rationals whose quotient is exact (6/1,
 *     12/2), floats equal to an integer; a string or bytes never match.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/decode.h"

/* unsigned integer of `size` bytes (1, 2, 4 or 8) at p */
static uint64_t rd(const unsigned char *p, int size, bool be) {
    uint64_t v = 0;
    for (int i = 0; i < size; i++) v = v << 8 | p[be ? i : size - 1 - i];
    return v;
}

/* Bytes per value of a TIFF type Pillow 11 reads; 0 for the others. */
static unsigned type_size(unsigned type) {
    switch (type) {
    case 1: case 2: case 6: case 7: return 1;  /* BYTE ASCII SBYTE UNDEFINED */
    case 3: case 8: return 2;                  /* SHORT SSHORT */
    case 4: case 9: case 11: case 13: return 4; /* LONG SLONG FLOAT IFD */
    case 5: case 10: case 12: case 16: return 8; /* RATIONAL SRATIONAL DOUBLE LONG8 */
    default: return 0;
    }
}

/* The orientation the first value v of a tag of `type` gives: 1..8 when it
 * equals that integer in Python's comparison, else 0 (no transposition). */
static int orientation_value(unsigned type, const unsigned char *v, bool be) {
    double x = 0;
    switch (type) {
    case 3: case 4: case 13: case 16: {
        uint64_t u = rd(v, (int)type_size(type), be);
        return u <= 8 ? (int)u : 0;
    }
    case 6: x = (int8_t)v[0]; break;
    case 8: x = (int16_t)rd(v, 2, be); break;
    case 9: x = (int32_t)rd(v, 4, be); break;
    case 5: case 10: { /* IFDRational: a zero denominator is NaN */
        int64_t num = type == 5 ? (int64_t)rd(v, 4, be) : (int32_t)rd(v, 4, be);
        int64_t den = type == 5 ? (int64_t)rd(v + 4, 4, be) : (int32_t)rd(v + 4, 4, be);
        if (den == 0 || num % den) return 0;
        x = (double)(num / den);
        break;
    }
    case 11: {
        uint32_t u = (uint32_t)rd(v, 4, be);
        float f;
        memcpy(&f, &u, sizeof f);
        x = f;
        break;
    }
    case 12: {
        uint64_t u = rd(v, 8, be);
        memcpy(&x, &u, sizeof x);
        break;
    }
    default: return 0; /* bytes or a string: never equal to an int */
    }
    return x >= 1 && x <= 8 && x == floor(x) ? (int)x : 0;
}

int sdc_exif_orientation(const unsigned char *d, size_t n) {
    while (n >= 6 && !memcmp(d, "Exif\0\0", 6)) d += 6, n -= 6;
    if (n < 8) return 1;
    bool be;
    if (!memcmp(d, "MM\0*", 4) || !memcmp(d, "MM*\0", 4) || !memcmp(d, "MM\0+", 4))
        be = true;
    else if (!memcmp(d, "II*\0", 4) || !memcmp(d, "II\0*", 4))
        be = false;
    else
        return 1; /* not TIFF, or BigTIFF "II+\0", which Pillow fails on here */
    uint64_t off = rd(d + 4, 4, be);
    if (off > n || n - off < 2) return 1;
    unsigned count = (unsigned)rd(d + off, 2, be);
    off += 2;
    int orientation = 0;
    for (unsigned i = 0; i < count; i++, off += 12) {
        if (n - off < 12) break; /* the block ends inside the IFD */
        const unsigned char *e = d + off;
        unsigned tag = (unsigned)rd(e, 2, be), type = (unsigned)rd(e + 2, 2, be);
        if (!type_size(type)) continue; /* skipped, its data not looked at */
        uint64_t size = rd(e + 4, 4, be) * type_size(type); /* < 2^35 */
        const unsigned char *v = e + 8;
        if (size > 4) {
            uint64_t at = rd(e + 8, 4, be);
            if (at > n || n - at < size) break; /* Pillow: "Truncated File Read" */
            v = d + at;
        }
        if (size == 0) continue;
        if (tag == 0x0112) orientation = orientation_value(type, v, be);
    }
    return orientation >= 2 ? orientation : 1;
}

/* Where output pixel (x, y) comes from, for Pillow's transpose methods:
 * 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
 * 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (w, h: the source's size). */
static void source_of(int orientation, int x, int y, int w, int h, int *sx, int *sy) {
    switch (orientation) {
    case 2: *sx = w - 1 - x, *sy = y; break;
    case 3: *sx = w - 1 - x, *sy = h - 1 - y; break;
    case 4: *sx = x, *sy = h - 1 - y; break;
    case 5: *sx = y, *sy = x; break;
    case 6: *sx = y, *sy = h - 1 - x; break;
    case 7: *sx = w - 1 - y, *sy = h - 1 - x; break;
    case 8: *sx = w - 1 - y, *sy = x; break;
    default: *sx = x, *sy = y; break;
    }
}

sdc_status sdc_orient(const char *name, uint8_t **px, int *w, int *h, int c,
                      int orientation) {
    if (orientation < 2 || orientation > 8) return SDC_OK;
    int sw = *w, sh = *h;
    bool swap = orientation >= 5;
    int ow = swap ? sh : sw, oh = swap ? sw : sh;
    uint8_t *out = malloc((size_t)ow * (size_t)oh * (size_t)c); /* (oh, ow, c) */
    if (!out)
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory turning a %dx%d image",
                        name, sw, sh);
    const uint8_t *src = *px;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            source_of(orientation, x, y, sw, sh, &sx, &sy);
            memcpy(out + ((size_t)y * ow + x) * c, src + ((size_t)sy * sw + sx) * c,
                   (size_t)c);
        }
    }
    free(*px);
    *px = out;
    *w = ow;
    *h = oh;
    return SDC_OK;
}
