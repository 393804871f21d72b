/* image_load.c - init images and masks from PNG and JPEG files or memory,
 * as diffusers and AUTOMATIC1111 read them through Pillow (image_load.h).
 *
 * The file is read whole (at most 256 MiB) and told apart by its first
 * bytes. A PNG's structure is checked by sdc itself first (stb_image
 * checks neither CRCs nor the chunk order), its size bounded from IHDR,
 * and only then decoded by stb_image; a JPEG goes to image_jpeg.c. Then
 * the mask rule, then the EXIF orientation (exif.c). */
#include "image/image_load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "image/decode.h"

/* stb_image (the decoder): PNG only, from memory, static. Not its JPEG
 * decoder: stb_image 2.27's (Debian 12's libstb-dev) writes past its Huffman
 * tables for a DHT segment whose code counts add up to more than 256
 * (fuzz_png found it in seconds); JPEG goes to libjpeg-turbo instead. STBI_MAX_DIMENSIONS makes stb
 * refuse anything larger than our limit as well. This stb version declares
 * stbi_set_unpremultiply_on_load_thread without defining it, which GCC
 * reports at the end of the file, so -Wunused-function stays off for the
 * rest of this file (not popped), as in tests/test_image.c. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS SDC_IMAGE_MAX_SIDE
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

static const unsigned char PNG_SIG[8] = {137, 80, 78, 71, 13, 10, 26, 10};
#define PNG_CHUNK_MAX 0x7fffffffu

static uint32_t get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* -------------------------------------------------------- reading pixels */

#define IMAGE_FILE_MAX ((size_t)256 << 20)

/* The whole file, at most IMAGE_FILE_MAX bytes; *data malloc'd. */
static sdc_status read_whole(const char *path, unsigned char **data, size_t *n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > IMAGE_FILE_MAX) {
        close(fd);
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the file is %llu bytes; image "
                        "files of more than %zu MiB are not read", path,
                        (unsigned long long)sb.st_size, IMAGE_FILE_MAX >> 20);
    }
    size_t cap = (size_t)sb.st_size, len = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        close(fd);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for %zu bytes", path, cap);
    }
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return sdc_fail(SDC_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break; /* the file shrank: what is there is checked */
        len += (size_t)r;
    }
    close(fd);
    *data = buf;
    *n = len;
    return SDC_OK;
}

/* What png_check_frame learns on its way through the chunks. */
typedef struct png_frame {
    uint32_t w, h;           /* from IHDR */
    int color, depth;        /* IHDR's colour type and bit depth */
    size_t plte_at;          /* offset of the PLTE chunk (its length field), 0: none */
    uint32_t plte_len;
    size_t exif_at;          /* offset of the last eXIf chunk's data, 0: none */
    uint32_t exif_len;
} png_frame;

/* The structure of a PNG in memory (stb_image does not check CRCs or the
 * chunk order): see image.h. */
static sdc_status png_check_frame(const char *path, const unsigned char *b, size_t n,
                                  png_frame *f) {
    memset(f, 0, sizeof *f);
    if (n < 8 || memcmp(b, PNG_SIG, 8))
        return sdc_fail(SDC_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    size_t off = 8;
    int color = -1;
    bool plte = false, idat = false, idat_ended = false;
    for (int k = 0;; k++) {
        if (n - off < 12)
            return sdc_fail(SDC_ERR_FORMAT, "%s: truncated PNG: %s at byte %zu",
                            path, k ? "no IEND chunk (the file ends)" :
                            "no IHDR chunk", off);
        uint32_t len = get_be32(b + off);
        char type[5];
        memcpy(type, b + off + 4, 4);
        type[4] = '\0';
        for (int i = 0; i < 4; i++) {
            unsigned char c = (unsigned char)type[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: invalid chunk type "
                                "at byte %zu", path, off);
        }
        if (len > PNG_CHUNK_MAX || len > n - off - 12)
            return sdc_fail(SDC_ERR_FORMAT, "%s: %s PNG: chunk %s at byte %zu has "
                            "length %u, past the end of the file (%zu bytes)", path,
                            len > PNG_CHUNK_MAX ? "corrupt" : "truncated", type, off,
                            len, n);
        const unsigned char *d = b + off + 8;
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + off + 4, len + 4);
        if (crc != get_be32(d + len))
            return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: CRC mismatch in chunk "
                            "%s at byte %zu (stored %08x, computed %08x)", path, type,
                            off, get_be32(d + len), crc);
        if (k == 0) {
            if (strcmp(type, "IHDR") || len != 13)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: the first chunk is "
                                "%s (length %u), not IHDR (length 13)", path, type, len);
            f->w = get_be32(d);
            f->h = get_be32(d + 4);
            int depth = f->depth = d[8];
            color = f->color = d[9];
            /* PNG 1.2, table 11.1: the bit depths each colour type allows */
            bool depth_ok =
                (color == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 ||
                                depth == 16)) ||
                (color == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
                ((color == 2 || color == 4 || color == 6) && (depth == 8 || depth == 16));
            if (!f->w || !f->h || f->w > 0x7fffffffu || f->h > 0x7fffffffu)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: IHDR size %ux%u "
                                "(expected 1 to 2^31-1 a side)", path, f->w, f->h);
            if (!depth_ok)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: IHDR colour type %d "
                                "with bit depth %d (expected grey 1/2/4/8/16, RGB "
                                "8/16, palette 1/2/4/8, grey+alpha 8/16, RGBA 8/16)",
                                path, color, depth);
            if (d[10] != 0 || d[11] != 0 || d[12] > 1)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: IHDR compression "
                                "%d, filter %d, interlace %d (expected 0, 0, 0 or 1)",
                                path, d[10], d[11], d[12]);
        } else if (!strcmp(type, "IHDR")) {
            return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: a second IHDR chunk at "
                            "byte %zu", path, off);
        } else if (!strcmp(type, "PLTE")) {
            if (idat || plte || len == 0 || len % 3 || len > 768)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: PLTE chunk at byte %zu "
                                "(length %u; expected one, before the image data, 3 to "
                                "768 bytes in threes)", path, off, len);
            plte = true;
            f->plte_at = off;
            f->plte_len = len;
        } else if (!strcmp(type, "IDAT")) {
            if (idat_ended)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: the IDAT chunks are "
                                "not consecutive (another at byte %zu)", path, off);
            if (color == 3 && !plte)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: a palette image "
                                "without a PLTE chunk before its data", path);
            idat = true;
        } else if (!strcmp(type, "IEND")) {
            if (!idat)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: no IDAT chunk (no "
                                "image data)", path);
            if (len != 0 || off + 12 != n)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: %s after the IEND "
                                "chunk at byte %zu", path,
                                len ? "IEND with data" : "data", off);
            return SDC_OK;
        } else {
            if (!strcmp(type, "eXIf")) f->exif_at = off + 8, f->exif_len = len;
            if (idat) idat_ended = true;
        }
        if (type[0] >= 'A' && type[0] <= 'Z' && k > 0 && strcmp(type, "PLTE") &&
            strcmp(type, "IDAT"))
            return sdc_fail(SDC_ERR_FORMAT, "%s: unsupported PNG: critical chunk %s at "
                            "byte %zu", path, type, off);
        off += 12 + (size_t)len;
    }
}


/* ------------------------------------------------------------ PNG pixels */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A copy of the PNG whose PLTE has all 256 entries, the missing ones black:
 * Pillow reads an index past the end of the palette as black, where
 * stb_image would read its own uninitialised palette memory. */
static sdc_status pad_palette(const char *name, const unsigned char *b, size_t n,
                              const png_frame *f, unsigned char **out, size_t *out_n) {
    size_t at = f->plte_at, old = 12 + (size_t)f->plte_len, add = 768 - f->plte_len;
    unsigned char *c = malloc(n + add);
    if (!c) return sdc_fail(SDC_ERR_OOM, "%s: out of memory for %zu bytes", name, n + add);
    memcpy(c, b, at);
    unsigned char *p = c + at; /* the new chunk: length, type, 768 bytes, CRC */
    put_be32(p, 768);
    memcpy(p + 4, "PLTE", 4);
    memcpy(p + 8, b + at + 8, f->plte_len);
    memset(p + 8 + f->plte_len, 0, add);
    put_be32(p + 8 + 768, (uint32_t)crc32(0L, p + 4, 4 + 768));
    memcpy(p + 12 + 768, b + at + old, n - at - old);
    *out = c;
    *out_n = n + add;
    return SDC_OK;
}

/* stb_image's decode of a checked PNG to (h, w, c) 8-bit samples as Pillow
 * has them: 16-bit grey clamped to 255 (Pillow's "I;16" converted to "L"
 * or "RGB"), other 16-bit samples reduced to their high byte (stb's
 * reduction and Pillow's ";16B" modes agree). */
static sdc_status png_pixels(const char *name, const unsigned char *b, size_t n,
                             const png_frame *f, int c, uint8_t **px, int *x, int *y) {
    bool grey16 = f->color == 0 && f->depth == 16;
    stbi_us *g = NULL; /* (h, w) 16-bit grey */
    if (grey16)
        g = stbi_load_16_from_memory(b, (int)n, x, y, &(int){0}, 1);
    else
        *px = stbi_load_from_memory(b, (int)n, x, y, &(int){0}, c);
    if (grey16 ? !g : !*px)
        return sdc_fail(SDC_ERR_FORMAT, "%s: cannot decode the %ux%u PNG image (%s)", name,
                        f->w, f->h, stbi_failure_reason());
    if (!grey16) return SDC_OK;
    size_t npx = (size_t)*x * (size_t)*y;
    *px = malloc(npx * (size_t)c);
    for (size_t i = 0; *px && i < npx; i++)
        memset(*px + i * c, g[i] > 255 ? 255 : g[i], (size_t)c);
    stbi_image_free(g);
    if (!*px) return sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %dx%d image", name, *x, *y);
    return SDC_OK;
}

/* A PNG to decoded pixels; alpha: keep it where Pillow's mode is RGBA
 * (colour type 6, and 16-bit grey+alpha, which Pillow opens as RGBA). */
static sdc_status png_decode(const char *name, const unsigned char *b, size_t n, bool alpha,
                             sdc_decoded *out) {
    png_frame f;
    SDC_TRY(png_check_frame(name, b, n, &f));
    if (f.w > SDC_IMAGE_MAX_SIDE || f.h > SDC_IMAGE_MAX_SIDE)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the image is %ux%u pixels; at most "
                        "%dx%d are read", name, f.w, f.h, SDC_IMAGE_MAX_SIDE,
                        SDC_IMAGE_MAX_SIDE);
    const unsigned char *src = b;
    size_t src_n = n;
    unsigned char *padded = NULL;
    if (f.color == 3 && f.plte_len < 768) {
        SDC_TRY(pad_palette(name, b, n, &f, &padded, &src_n));
        src = padded;
    }
    int c = alpha && (f.color == 6 || (f.color == 4 && f.depth == 16)) ? 4 : 3;
    int x = 0, y = 0;
    uint8_t *px = NULL;
    sdc_status st = png_pixels(name, src, src_n, &f, c, &px, &x, &y);
    free(padded);
    if (st != SDC_OK) return st;
    if ((uint32_t)x != f.w || (uint32_t)y != f.h) {
        free(px);
        return sdc_fail(SDC_ERR_FORMAT, "%s: the PNG image decodes to %dx%d, its header "
                        "says %ux%u", name, x, y, f.w, f.h);
    }
    out->px = px;
    out->w = x;
    out->h = y;
    out->c = c;
    out->orientation = f.exif_at ? sdc_exif_orientation(b + f.exif_at, f.exif_len) : 1;
    return SDC_OK;
}

/* ------------------------------------------------------- images and masks */

/* PNG or JPEG, told apart by their first bytes as Pillow tells them. */
static sdc_status decode_any(const char *name, const unsigned char *b, size_t n, bool alpha,
                             sdc_decoded *d) {
    memset(d, 0, sizeof *d);
    if (n >= 8 && !memcmp(b, PNG_SIG, 8)) return png_decode(name, b, n, alpha, d);
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return sdc_jpeg_decode(name, b, n, d);
    char magic[3 * 8] = ""; /* "xx xx ... xx" */
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(magic + 3 * i - (i > 0), sizeof magic - 3 * i + (i > 0), "%s%02x",
                 i ? " " : "", b[i]);
    return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: not a PNG or JPEG image (%s%s)", name,
                    n ? "the file starts with " : "the file is empty", magic);
}

/* create_binary_mask(image, round=True): px (npx, c) to m (npx). */
static void to_mask(const uint8_t *px, size_t npx, int c, uint8_t *m) {
    bool alpha = false;
    for (size_t i = 0; c == 4 && i < npx && !alpha; i++) alpha = px[i * 4 + 3] != 255;
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *p = px + i * c;
        m[i] = alpha ? (p[3] > 128 ? 255 : 0) /* Pillow's convert("L"): */
                     : (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
}

/* n bytes of PNG or JPEG to (h, w, 3) RGB or, for a mask, (h, w). */
static sdc_status load(const char *name, const unsigned char *b, size_t n, bool mask,
                       uint8_t **out, int *w, int *h) {
    sdc_decoded d;
    SDC_TRY(decode_any(name, b, n, mask, &d));
    uint8_t *px = d.px;
    if (mask) {
        size_t npx = (size_t)d.w * (size_t)d.h;
        px = malloc(npx);
        if (px) to_mask(d.px, npx, d.c, px);
        free(d.px);
        if (!px) return sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %dx%d mask", name, d.w, d.h);
    }
    sdc_status st = sdc_orient(name, &px, &d.w, &d.h, mask ? 1 : 3, d.orientation);
    if (st != SDC_OK) {
        free(px);
        return st;
    }
    *out = px;
    *w = d.w;
    *h = d.h;
    return SDC_OK;
}

/* Outputs to NULL/0 first, so every failure leaves them so. */
static sdc_status clear_outputs(const char *fn, uint8_t **px, int *w, int *h) {
    if (px) *px = NULL;
    if (w) *w = 0;
    if (h) *h = 0;
    if (!px || !w || !h) return sdc_fail(SDC_ERR_ARG, "%s: NULL output", fn);
    return SDC_OK;
}

static sdc_status load_file(const char *fn, const char *path, bool mask, uint8_t **px,
                            int *w, int *h) {
    SDC_TRY(clear_outputs(fn, px, w, h));
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "image: empty file name");
    unsigned char *buf = NULL;
    size_t n = 0;
    SDC_TRY(read_whole(path, &buf, &n));
    sdc_status st = load(path, buf, n, mask, px, w, h);
    free(buf);
    return st;
}

static sdc_status load_mem(const char *fn, const char *name, const void *data, size_t n,
                           bool mask, uint8_t **px, int *w, int *h) {
    SDC_TRY(clear_outputs(fn, px, w, h));
    if (!name) name = "image";
    if (!data && n) return sdc_fail(SDC_ERR_ARG, "%s: NULL data of %zu bytes", name, n);
    if (n > IMAGE_FILE_MAX)
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: %zu bytes; images of more than %zu MiB "
                        "are not read", name, n, IMAGE_FILE_MAX >> 20);
    return load(name, data ? data : "", n, mask, px, w, h);
}

sdc_status sdc_image_load(const char *path, uint8_t **rgb, int *w, int *h) {
    return load_file("sdc_image_load", path, false, rgb, w, h);
}

sdc_status sdc_mask_load(const char *path, uint8_t **m, int *w, int *h) {
    return load_file("sdc_mask_load", path, true, m, w, h);
}

sdc_status sdc_image_load_mem(const char *name, const void *data, size_t n, uint8_t **rgb,
                              int *w, int *h) {
    return load_mem("sdc_image_load_mem", name, data, n, false, rgb, w, h);
}

sdc_status sdc_mask_load_mem(const char *name, const void *data, size_t n, uint8_t **m,
                             int *w, int *h) {
    return load_mem("sdc_mask_load_mem", name, data, n, true, m, w, h);
}

sdc_status sdc_image_read_rgb(const char *path, uint8_t **rgb, int *w, int *h) {
    return load_file("sdc_image_read_rgb", path, false, rgb, w, h);
}
