/* base64.c - base64 for sdc serve's images: RFC 4648's alphabet with
 * padding, decoded strictly (untrusted input: any other byte, a bad
 * padding or a length that is not a multiple of 4 is refused). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "server/server.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *srv_b64_encode(const unsigned char *d, size_t n) {
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = B64[v >> 18], *o++ = B64[v >> 12 & 63], *o++ = B64[v >> 6 & 63], *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        const uint32_t v = (uint32_t)d[i] << 16;
        *o++ = B64[v >> 18], *o++ = B64[v >> 12 & 63], *o++ = '=', *o++ = '=';
    } else if (n - i == 2) {
        const uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        *o++ = B64[v >> 18], *o++ = B64[v >> 12 & 63], *o++ = B64[v >> 6 & 63], *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int val(unsigned char c) {
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

unsigned char *srv_b64_decode(const char *text, size_t *n) {
    *n = 0;
    if (!text) return NULL;
    /* a data URL's prefix, as A1111 accepts it */
    if (!strncmp(text, "data:", 5)) {
        const char *comma = strchr(text, ',');
        if (!comma || !strstr(text, ";base64,") || strstr(text, ";base64,") + 7 != comma) return NULL;
        text = comma + 1;
    }
    const size_t len = strlen(text);
    if (len == 0 || len % 4) return NULL;
    size_t pad = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    unsigned char *out = malloc(len / 4 * 3);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        const bool last = i + 4 == len;
        int v[4];
        for (int k = 0; k < 4; k++) {
            const unsigned char c = (unsigned char)text[i + k];
            v[k] = c == '=' && last && k >= 4 - (int)pad ? 0 : val(c);
            if (v[k] < 0) {
                free(out);
                return NULL;
            }
        }
        const uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (!last || pad < 2) out[o++] = (unsigned char)(w >> 8);
        if (!last || pad < 1) out[o++] = (unsigned char)w;
        /* the bits a padded quantum drops must be zero (canonical form) */
        if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
            free(out);
            return NULL;
        }
    }
    *n = o;
    return out;
}

char *srv_image_b64(const sdc_image *im) {
    unsigned char *png = NULL;
    size_t n = 0;
    if (sdc_png_encode("image", im->rgb, im->width, im->height, im->infotext, &png, &n) != SDC_OK) return NULL;
    char *b64 = srv_b64_encode(png, n);
    free(png);
    return b64;
}
