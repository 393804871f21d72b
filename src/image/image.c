/* image.c - decoded images to 8-bit RGB and PNG files with AUTOMATIC1111's
 * "parameters" text, written atomically (the A1111 infotext itself is
 * formatted in infotext.c).
 *
 * PNG encoding is stb_image_write's (the system header from libstb-dev,
 * compiled here with static linkage) with zlib doing the deflate at level 6
 * (STBIW_ZLIB_COMPRESS), which is faster and smaller than stb's own. The
 * text chunk is spliced in right after IHDR, as PIL writes it for A1111:
 *   tEXt: "parameters" NUL latin-1-text
 *   iTXt: "parameters" NUL 0 0 NUL NUL utf-8-text  (uncompressed, no
 *         language tag or translated keyword) when the text is not Latin-1.
 */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

/* ------------------------------------------------------- stb_image_write */

static unsigned char *sdc_stbiw_zlib(unsigned char *data, int len, int *out_len,
                                     int quality) {
    (void)quality;
    if (len < 0) return NULL;
    uLongf cap = compressBound((uLong)len);
    unsigned char *out = malloc(cap);
    if (!out) return NULL;
    if (compress2(out, &cap, data, (uLong)len, 6) != Z_OK || cap > INT_MAX) {
        free(out);
        return NULL;
    }
    *out_len = (int)cap;
    return out;
}

#define STBIW_ZLIB_COMPRESS sdc_stbiw_zlib
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------- to u8 */

void sdc_image_to_u8(const float *x, int h, int w, uint8_t *rgb) {
    size_t n = (size_t)h * (size_t)w * 3;
    for (size_t i = 0; i < n; i++) {
        /* Separate float32 operations, rounded one by one as torch and
         * numpy run them (-std=c11 implies -ffp-contract=off; a fused
         * x * 0.5 + 0.5 would round the same, the product being exact). */
        float c = x[i] / 2.0f + 0.5f;
        if (c != c) { /* NaN: numpy's astype(uint8) is undefined; we say 0 */
            rgb[i] = 0;
            continue;
        }
        if (c < 0.0f) c = 0.0f;
        if (c > 1.0f) c = 1.0f;
        rgb[i] = (uint8_t)nearbyintf(c * 255.0f); /* half to even */
    }
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decode one UTF-8 sequence at s (n bytes left); strict (no overlongs, no
 * surrogates, <= U+10FFFF). Returns its length, 0 if invalid. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* ------------------------------------------------------------ PNG chunks */

static const unsigned char PNG_SIG[8] = {137, 80, 78, 71, 13, 10, 26, 10};
#define PNG_CHUNK_MAX 0x7fffffffu
#define PNG_TEXT_MAX ((size_t)16 << 20) /* largest text chunk we read, and
                                          * the most a compressed one may
                                          * inflate to (a prompt is KBs) */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* The full "parameters" chunk (length, type, data, CRC) for text; *out is
 * malloc'd. SDC_ERR_ARG if the text is not UTF-8. */
static sdc_status text_chunk(const char *path, const char *text,
                             unsigned char **out, size_t *out_len) {
    static const char key[] = "parameters";
    const size_t klen = sizeof key - 1;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), nlatin = 0;
    bool latin1 = true;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_next(s + i, n - i, &cp);
        if (!l)
            return sdc_fail(SDC_ERR_ARG, "%s: the PNG parameters text is not "
                            "valid UTF-8 (byte %zu)", path, i);
        if (cp > 0xFF) latin1 = false;
        nlatin++;
        i += l;
    }
    size_t dlen = latin1 ? klen + 1 + nlatin : klen + 5 + n;
    if (dlen > PNG_CHUNK_MAX)
        return sdc_fail(SDC_ERR_ARG, "%s: the PNG parameters text is too long "
                        "(%zu bytes)", path, n);
    unsigned char *c;
    SDC_MALLOC(c, dlen + 12);
    put_be32(c, (uint32_t)dlen);
    memcpy(c + 4, latin1 ? "tEXt" : "iTXt", 4);
    unsigned char *d = c + 8;
    memcpy(d, key, klen);
    d += klen;
    *d++ = 0;
    if (latin1) {
        for (size_t i = 0; i < n;) {
            uint32_t cp = 0; /* validated above: every step decodes */
            i += utf8_next(s + i, n - i, &cp);
            *d++ = (unsigned char)cp;
        }
    } else {
        *d++ = 0; /* compression flag: uncompressed */
        *d++ = 0; /* compression method */
        *d++ = 0; /* empty language tag */
        *d++ = 0; /* empty translated keyword */
        memcpy(d, s, n);
        d += n;
    }
    put_be32(d, (uint32_t)crc32(0L, c + 4, (uInt)(dlen + 4)));
    *out = c;
    *out_len = dlen + 12;
    return SDC_OK;
}

/* ----------------------------------------------------------- PNG writing */

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The process umask, without changing it (umask() would, racing threads). */
static mode_t current_umask(void) {
    mode_t m = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return m;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned v;
        if (sscanf(line, "Umask: %o", &v) == 1) {
            m = (mode_t)(v & 0777);
            break;
        }
    }
    fclose(f);
    return m;
}

/* Directory part of path ("." if none), malloc'd; NULL on OOM. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static void fsync_dir(const char *path) {
    char *d = dir_of(path);
    if (!d) return;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(d);
}

sdc_status sdc_png_encode(const char *name, const uint8_t *rgb, int w, int h,
                          const char *parameters, unsigned char **out,
                          size_t *out_len) {
    const char *path = name ? name : "PNG";
    *out = NULL;
    *out_len = 0;
    if (!rgb || w <= 0 || h <= 0)
        return sdc_fail(SDC_ERR_ARG, "%s: bad image for PNG: %dx%d%s", path,
                        w, h, rgb ? "" : " without pixels");
    if ((uint64_t)w * (uint64_t)h * 3 + (uint64_t)h > (uint64_t)INT_MAX / 2)
        return sdc_fail(SDC_ERR_ARG, "%s: image too large for PNG output: "
                        "%dx%d", path, w, h);

    unsigned char *chunk = NULL;
    size_t chunk_len = 0;
    if (parameters) SDC_TRY(text_chunk(path, parameters, &chunk, &chunk_len));

    int png_len = 0;
    unsigned char *png = stbi_write_png_to_mem(rgb, w * 3, w, h, 3, &png_len);
    if (!png) {
        free(chunk);
        return sdc_fail(SDC_ERR_OOM, "%s: PNG encoding failed (out of memory "
                        "for a %dx%d image)", path, w, h);
    }
    /* signature, then IHDR: length 13, type, 13 bytes, CRC = 33 bytes */
    const size_t ihdr_end = 8 + 8 + 13 + 4;
    if ((size_t)png_len < ihdr_end || memcmp(png, PNG_SIG, 8) ||
        get_be32(png + 8) != 13 || memcmp(png + 12, "IHDR", 4)) {
        free(png);
        free(chunk);
        return sdc_fail(SDC_ERR_BACKEND, "%s: the PNG encoder produced no "
                        "IHDR chunk", path);
    }
    /* the text chunk right after IHDR */
    const size_t total = (size_t)png_len + chunk_len;
    unsigned char *all = malloc(total);
    if (!all) {
        free(png);
        free(chunk);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %zu-byte PNG",
                        path, total);
    }
    memcpy(all, png, ihdr_end);
    if (chunk) memcpy(all + ihdr_end, chunk, chunk_len);
    memcpy(all + ihdr_end + chunk_len, png + ihdr_end,
           (size_t)png_len - ihdr_end);
    free(png);
    free(chunk);
    *out = all;
    *out_len = total;
    return SDC_OK;
}

sdc_status sdc_png_write(const char *path, const uint8_t *rgb, int w, int h,
                         const char *parameters) {
    if (!path || !*path)
        return sdc_fail(SDC_ERR_ARG, "PNG output: empty file name");
    unsigned char *png = NULL;
    size_t png_len = 0;
    SDC_TRY(sdc_png_encode(path, rgb, w, h, parameters, &png, &png_len));

    size_t plen = strlen(path);
    /* "path.XXXXXX.tmp"; when that name is too long for the file system,
     * ".sdc.XXXXXX.tmp" in the same folder. */
    char *tmp = malloc(plen + sizeof ".sdc.XXXXXX.tmp");
    if (!tmp) {
        free(png);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX.tmp", sizeof ".XXXXXX.tmp");

    sdc_status st = SDC_OK;
    int fd = mkstemps(tmp, 4);
    if (fd < 0 && errno == ENAMETOOLONG) {
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
        memcpy(tmp + dl, ".sdc.XXXXXX.tmp", sizeof ".sdc.XXXXXX.tmp");
        fd = mkstemps(tmp, 4);
    }
    if (fd < 0) {
        int e = errno;
        char *d = dir_of(path);
        if (e == ENOENT || e == ENOTDIR)
            st = sdc_fail(SDC_ERR_IO, "%s: cannot write: folder '%s' does not "
                          "exist", path, d ? d : "?");
        else
            st = sdc_fail(SDC_ERR_IO, "%s: cannot create a file in folder "
                          "'%s': %s", path, d ? d : "?", strerror(e));
        free(d);
        free(tmp);
        free(png);
        return st;
    }

    const char *step = "write";
    if (fchmod(fd, 0666 & ~current_umask()) != 0) {
        step = "set permissions of";
    } else if (write_all(fd, png, png_len) == 0) {
        step = "flush";
        if (fsync(fd) == 0) step = NULL;
    }
    int e = errno;
    if (close(fd) != 0 && !step) {
        e = errno;
        step = "close";
    }
    if (!step && rename(tmp, path) != 0) {
        e = errno;
        step = "rename the temporary file onto";
    }
    if (step) {
        st = sdc_fail(SDC_ERR_IO, "%s: cannot %s the file: %s", path, step,
                      strerror(e));
        unlink(tmp);
    } else {
        fsync_dir(path);
    }
    free(tmp);
    free(png);
    return st;
}

/* ----------------------------------------------------------- PNG reading */

/* Inflate a zlib stream (zTXt, compressed iTXt); *out malloc'd. */
static sdc_status inflate_text(const char *path, const unsigned char *in,
                               size_t n, unsigned char **out, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return sdc_fail(SDC_ERR_OOM, "%s: zlib init failed", path);
    size_t cap = n * 4 + 256, len = 0;
    unsigned char *buf = malloc(cap);
    int r = Z_OK;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    while (buf) {
        z.next_out = buf + len;
        z.avail_out = (uInt)(cap - len);
        r = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (r != Z_OK) break;
        if (z.avail_out == 0) {
            if (cap >= PNG_TEXT_MAX) {
                r = Z_MEM_ERROR;
                break;
            }
            cap = cap * 2 < PNG_TEXT_MAX ? cap * 2 : PNG_TEXT_MAX;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        } else if (z.avail_in == 0) {
            r = Z_DATA_ERROR; /* input ended inside the stream */
            break;
        }
    }
    inflateEnd(&z);
    if (!buf) return sdc_fail(SDC_ERR_OOM, "%s: out of memory inflating text",
                              path);
    if (r == Z_MEM_ERROR) {
        free(buf);
        return sdc_fail(SDC_ERR_FORMAT, "%s: a compressed text chunk inflates "
                        "to more than %zu MiB", path, PNG_TEXT_MAX >> 20);
    }
    if (r != Z_STREAM_END) {
        free(buf);
        return sdc_fail(SDC_ERR_FORMAT, "%s: corrupt compressed text chunk",
                        path);
    }
    *out = buf;
    *out_len = len;
    return SDC_OK;
}

/* Latin-1 bytes to a fresh NUL-terminated UTF-8 string. */
static char *latin1_to_utf8(const unsigned char *s, size_t n) {
    char *o = malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            *p++ = (char)s[i];
        } else {
            *p++ = (char)(0xC0 | s[i] >> 6);
            *p++ = (char)(0x80 | (s[i] & 0x3F));
        }
    }
    *p = '\0';
    return o;
}

/* The "parameters" text of one tEXt/zTXt/iTXt chunk (d, n) at byte off,
 * or *out NULL when the keyword is another. The text may not hold a NUL
 * byte (it could not be returned whole), and iTXt text must be UTF-8. */
static sdc_status parse_text(const char *path, const char *type, uint64_t off,
                             const unsigned char *d, size_t n, char **out) {
    *out = NULL;
    if (n == 0) return SDC_OK; /* an empty chunk: no keyword (and d may be NULL) */
    const unsigned char *nul = memchr(d, 0, n);
    if (!nul) return SDC_OK; /* no keyword terminator: not ours, skip */
    if ((size_t)(nul - d) != 10 || memcmp(d, "parameters", 10)) return SDC_OK;
    const unsigned char *p = nul + 1, *end = d + n;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    if (!strcmp(type, "tEXt")) {
        if (memchr(p, 0, (size_t)(end - p)))
            return sdc_fail(SDC_ERR_FORMAT, "%s: the tEXt chunk at byte %llu "
                            "holds a NUL byte in its parameters text", path,
                            (unsigned long long)off);
        *out = latin1_to_utf8(p, (size_t)(end - p));
    } else if (!strcmp(type, "zTXt")) {
        if (p >= end || *p != 0)
            return sdc_fail(SDC_ERR_FORMAT, "%s: zTXt chunk with an unknown "
                            "compression method", path);
        SDC_TRY(inflate_text(path, p + 1, (size_t)(end - p - 1), &raw,
                             &raw_len));
        if (memchr(raw, 0, raw_len)) {
            free(raw);
            return sdc_fail(SDC_ERR_FORMAT, "%s: the zTXt chunk at byte %llu "
                            "holds a NUL byte in its parameters text", path,
                            (unsigned long long)off);
        }
        *out = latin1_to_utf8(raw, raw_len);
        free(raw);
    } else { /* iTXt: flag, method, language NUL, translated keyword NUL */
        if (end - p < 2)
            return sdc_fail(SDC_ERR_FORMAT, "%s: truncated iTXt chunk", path);
        int flag = p[0], method = p[1];
        p += 2;
        for (int k = 0; k < 2; k++) {
            const unsigned char *z = memchr(p, 0, (size_t)(end - p));
            if (!z)
                return sdc_fail(SDC_ERR_FORMAT, "%s: truncated iTXt chunk",
                                path);
            p = z + 1;
        }
        if (flag > 1 || (flag == 1 && method != 0))
            return sdc_fail(SDC_ERR_FORMAT, "%s: iTXt chunk with an unknown "
                            "compression (flag %d, method %d)", path, flag,
                            method);
        if (flag == 1) {
            SDC_TRY(inflate_text(path, p, (size_t)(end - p), &raw, &raw_len));
            p = raw;
            end = raw + raw_len;
        }
        size_t len = (size_t)(end - p);
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t l = utf8_next(p + i, len - i, &cp);
            if (!l || !cp) {
                free(raw);
                return sdc_fail(SDC_ERR_FORMAT, "%s: the iTXt chunk at byte %llu: "
                                "%s at byte %zu of its parameters text (iTXt text is "
                                "UTF-8)", path, (unsigned long long)off,
                                l ? "a NUL byte" : "invalid UTF-8", i + 1);
            }
            i += l;
        }
        *out = malloc(len + 1);
        if (*out) {
            memcpy(*out, p, len);
            (*out)[len] = '\0';
        }
        free(raw);
    }
    if (!*out) return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    return SDC_OK;
}

static bool read_exact(FILE *f, void *buf, size_t n) {
    return fread(buf, 1, n, f) == n;
}

/* The parameters text of the PNG open as f, named path in errors, fsize
 * bytes long (UINT64_MAX: not known); f is closed. */
static sdc_status read_parameters(FILE *f, const char *path, uint64_t fsize,
                                  char **out) {
    unsigned char hdr[8], crcb[4];
    unsigned char *data = NULL;
    size_t data_cap = 0;
    char *found = NULL;
    sdc_status st = SDC_OK;
    uint64_t off = 8;
    int nchunks = 0;

    if (!read_exact(f, hdr, 8) || memcmp(hdr, PNG_SIG, 8)) {
        st = sdc_fail(SDC_ERR_FORMAT, "%s: not a PNG file (bad signature)",
                      path);
        goto done;
    }
    for (;; nchunks++) {
        if (!read_exact(f, hdr, 8)) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: truncated PNG: no IEND chunk "
                          "(file ends at byte %llu)", path,
                          (unsigned long long)off);
            goto done;
        }
        uint32_t len = get_be32(hdr);
        char type[5];
        memcpy(type, hdr + 4, 4);
        type[4] = '\0';
        for (int i = 0; i < 4; i++) {
            unsigned char c = hdr[4 + i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
                st = sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: invalid chunk "
                              "type at byte %llu", path,
                              (unsigned long long)off);
                goto done;
            }
        }
        if (len > PNG_CHUNK_MAX) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: chunk %s at byte "
                          "%llu has length %u (> 2^31-1)", path, type,
                          (unsigned long long)off, len);
            goto done;
        }
        if (nchunks == 0 && (strcmp(type, "IHDR") || len != 13)) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: the first chunk is "
                          "%s (length %u), not IHDR (length 13)", path, type,
                          len);
            goto done;
        }
        /* nothing is allocated for a chunk the file cannot hold */
        if (fsize != UINT64_MAX && off + 12 + (uint64_t)len > fsize) goto truncated;
        bool is_text = !strcmp(type, "tEXt") || !strcmp(type, "zTXt") ||
                       !strcmp(type, "iTXt");
        bool keep = is_text && !found && len <= PNG_TEXT_MAX;
        uLong crc = crc32(0L, hdr + 4, 4);
        if (keep && len > data_cap) {
            unsigned char *nd = realloc(data, len);
            if (!nd) {
                st = sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %u-byte "
                              "chunk", path, len);
                goto done;
            }
            data = nd;
            data_cap = len;
        }
        if (keep) {
            if (!read_exact(f, data, len)) goto truncated;
            if (len) crc = crc32(crc, data, len); /* zlib: a NULL buffer resets the CRC */
        } else { /* stream through the CRC without keeping the data */
            unsigned char buf[65536];
            for (uint32_t left = len; left;) {
                uint32_t take = left < sizeof buf ? left : (uint32_t)sizeof buf;
                if (!read_exact(f, buf, take)) goto truncated;
                crc = crc32(crc, buf, take);
                left -= take;
            }
        }
        if (!read_exact(f, crcb, 4)) goto truncated;
        if (get_be32(crcb) != (uint32_t)crc) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: corrupt PNG: CRC mismatch in "
                          "chunk %s at byte %llu (stored %08x, computed %08x)",
                          path, type, (unsigned long long)off,
                          get_be32(crcb), (unsigned)crc);
            goto done;
        }
        if (keep) {
            st = parse_text(path, type, off, data, len, &found);
            if (st != SDC_OK) goto done;
        }
        off += 12 + (uint64_t)len;
        if (!strcmp(type, "IEND")) break;
    }
    goto done;
truncated:
    st = sdc_fail(SDC_ERR_FORMAT, "%s: truncated PNG: a chunk at byte %llu "
                  "runs past the end of the file", path,
                  (unsigned long long)off);
done:
    fclose(f);
    free(data);
    if (st != SDC_OK) {
        free(found);
        return st;
    }
    *out = found;
    return SDC_OK;
}

sdc_status sdc_png_read_parameters(const char *path, char **out) {
    if (!out) return sdc_fail(SDC_ERR_ARG, "sdc_png_read_parameters: no out");
    *out = NULL;
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "PNG: empty file name");
    FILE *f = fopen(path, "rb");
    if (!f)
        return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path,
                        strerror(errno));
    struct stat sb;
    uint64_t fsize = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)
                         ? (uint64_t)sb.st_size : UINT64_MAX;
    return read_parameters(f, path, fsize, out);
}

sdc_status sdc_png_parameters_mem(const char *name, const void *png, size_t n,
                                  char **out) {
    if (!out) return sdc_fail(SDC_ERR_ARG, "sdc_png_parameters_mem: no out");
    *out = NULL;
    const char *what = name ? name : "PNG";
    if (!png || !n)
        return sdc_fail(SDC_ERR_FORMAT, "%s: not a PNG (no data)", what);
    FILE *f = fmemopen((void *)png, n, "rb");
    if (!f)
        return sdc_fail(SDC_ERR_OOM, "%s: cannot read %zu bytes: %s", what, n,
                        strerror(errno));
    return read_parameters(f, what, (uint64_t)n, out);
}
