/* image_load.c - PNG files read for their pixels (image-to-image input).
 *
 * The file is read whole (at most 256 MiB), its PNG structure checked by
 * sdc itself (stb_image checks neither CRCs nor the chunk order), its size
 * bounded from IHDR, and only then decoded by stb_image. */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

/* stb_image (the decoder) for sdc_image_read_rgb: PNG only, from memory,
 * static. Not JPEG: stb_image 2.27's JPEG decoder (Debian 12's libstb-dev)
 * writes past its Huffman tables for a DHT segment whose code counts add up
 * to more than 256 (fuzz_png found it in seconds), and the PNG path is the
 * one whose input sdc checks itself first. STBI_MAX_DIMENSIONS makes stb
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

/* The structure of a PNG in memory (stb_image does not check CRCs or the
 * chunk order): see image.h. *w, *h from IHDR. */
static sdc_status png_check_frame(const char *path, const unsigned char *b, size_t n,
                                  uint32_t *w, uint32_t *h) {
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
            *w = get_be32(d);
            *h = get_be32(d + 4);
            int depth = d[8];
            color = d[9];
            /* PNG 1.2, table 11.1: the bit depths each colour type allows */
            bool depth_ok =
                (color == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 ||
                                depth == 16)) ||
                (color == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
                ((color == 2 || color == 4 || color == 6) && (depth == 8 || depth == 16));
            if (!*w || !*h || *w > 0x7fffffffu || *h > 0x7fffffffu)
                return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: IHDR size %ux%u "
                                "(expected 1 to 2^31-1 a side)", path, *w, *h);
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
        } else if (idat) {
            idat_ended = true;
        }
        if (type[0] >= 'A' && type[0] <= 'Z' && k > 0 && strcmp(type, "PLTE") &&
            strcmp(type, "IDAT"))
            return sdc_fail(SDC_ERR_FORMAT, "%s: unsupported PNG: critical chunk %s at "
                            "byte %zu", path, type, off);
        off += 12 + (size_t)len;
    }
}

sdc_status sdc_image_read_rgb(const char *path, uint8_t **rgb, int *w, int *h) {
    if (rgb) *rgb = NULL;
    if (w) *w = 0;
    if (h) *h = 0;
    if (!rgb || !w || !h)
        return sdc_fail(SDC_ERR_ARG, "sdc_image_read_rgb: NULL output");
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "image: empty file name");
    unsigned char *buf = NULL;
    size_t n = 0;
    SDC_TRY(read_whole(path, &buf, &n));
    sdc_status st = SDC_OK;
    int iw = 0, ih = 0, comp = 0;
    if (n >= 8 && !memcmp(buf, PNG_SIG, 8)) {
        uint32_t pw = 0, ph = 0;
        st = png_check_frame(path, buf, n, &pw, &ph);
        if (st == SDC_OK && (pw > SDC_IMAGE_MAX_SIDE || ph > SDC_IMAGE_MAX_SIDE))
            st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the image is %ux%u pixels; at most "
                          "%dx%d are read", path, pw, ph, SDC_IMAGE_MAX_SIDE,
                          SDC_IMAGE_MAX_SIDE);
    } else if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) {
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: a JPEG image; sdc reads PNG only "
                      "(convert it, e.g. with ImageMagick: convert IN.jpg OUT.png)", path);
    } else {
        char magic[3 * 8 + 1] = "";
        for (size_t i = 0; i < n && i < 8; i++)
            snprintf(magic + 3 * i, sizeof magic - 3 * i, "%s%02x", i ? " " : "", buf[i]);
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: not a PNG image (%s%s)", path,
                      n ? "the file starts with " : "the file is empty", magic);
    }
    if (st == SDC_OK && n > INT_MAX)
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the file is too large to decode", path);
    if (st == SDC_OK && !stbi_info_from_memory(buf, (int)n, &iw, &ih, &comp))
        st = sdc_fail(SDC_ERR_FORMAT, "%s: cannot read the PNG header (%s)", path,
                      stbi_failure_reason());
    if (st == SDC_OK && (iw < 1 || ih < 1 || iw > SDC_IMAGE_MAX_SIDE ||
                         ih > SDC_IMAGE_MAX_SIDE))
        st = sdc_fail(SDC_ERR_UNSUPPORTED, "%s: the image is %dx%d pixels; at most %dx%d "
                      "are read", path, iw, ih, SDC_IMAGE_MAX_SIDE, SDC_IMAGE_MAX_SIDE);
    unsigned char *px = NULL;
    int x = 0, y = 0;
    if (st == SDC_OK) {
        px = stbi_load_from_memory(buf, (int)n, &x, &y, &comp, 3);
        if (!px)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: cannot decode the %dx%d PNG image (%s)",
                          path, iw, ih, stbi_failure_reason());
        else if (x != iw || y != ih)
            st = sdc_fail(SDC_ERR_FORMAT, "%s: the PNG image decodes to %dx%d, its header "
                          "says %dx%d", path, x, y, iw, ih);
    }
    free(buf);
    if (st != SDC_OK) {
        if (px) stbi_image_free(px);
        return st;
    }
    /* stb's buffer comes from malloc (STBI_MALLOC), so free() releases it */
    *rgb = px;
    *w = x;
    *h = y;
    return SDC_OK;
}
