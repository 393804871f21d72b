/* token_text.c - ids back to text via the inverse of CLIP's bytes_to_unicode:
 * bytes 33-126, 161-172 and 174-255 stand for themselves; the other 68 bytes
 * map, in increasing order, to code points 256, 257, ... */
#include "text/token_text.h"

#include <string.h>

static bool printable_byte(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* byte for a code point of the byte-level alphabet, -1 if none */
static int cp_to_byte(uint32_t cp) {
    if (cp < 256) return printable_byte((int)cp) ? (int)cp : -1;
    uint32_t n = 0;
    for (int b = 0; b < 256; b++)
        if (!printable_byte(b) && 256 + n++ == cp) return b;
    return -1;
}

/* decode one UTF-8 code point from s; returns bytes consumed (0 at end) */
static int utf8_next(const unsigned char *s, uint32_t *cp) {
    if (!s[0]) return 0;
    if (s[0] < 0x80) return *cp = s[0], 1;
    if ((s[0] & 0xe0) == 0xc0 && s[1]) return *cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f), 2;
    if ((s[0] & 0xf0) == 0xe0 && s[1] && s[2])
        return *cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f), 3;
    *cp = 0xfffd;
    return 1;
}

void sdc_tokens_to_text(const sdc_tokenizer *tok, const int *ids, int n,
                        char *out, size_t cap) {
    size_t len = 0;
    if (!cap) return;
    for (int i = 0; i < n; i++) {
        if (ids[i] == SDC_CLIP_BOS || ids[i] == SDC_CLIP_EOS) continue;
        const char *piece = sdc_tokenizer_piece(tok, ids[i]);
        if (!piece) continue;
        size_t plen = strlen(piece);
        bool word_end = plen >= 4 && strcmp(piece + plen - 4, "</w>") == 0;
        if (word_end) plen -= 4;
        const unsigned char *s = (const unsigned char *)piece;
        /* "a , b" reads better as "a, b": no space before closing marks */
        if (plen > 0 && strchr(",.;:!?)]}%", piece[0]) && len > 0 && out[len - 1] == ' ') len--;
        size_t pos = 0;
        while (pos < plen) {
            uint32_t cp;
            int k = utf8_next(s + pos, &cp);
            if (!k) break;
            pos += (size_t)k;
            int b = cp_to_byte(cp);
            if (b >= 0 && len + 1 < cap) out[len++] = (char)b;
        }
        if (word_end && len + 1 < cap) out[len++] = ' ';
    }
    /* do not end inside a multi-byte character */
    size_t cut = len;
    while (cut > 0 && ((unsigned char)out[cut - 1] & 0xc0) == 0x80) cut--;
    if (cut > 0 && ((unsigned char)out[cut - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[cut - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (len - (cut - 1) < need) len = cut - 1;
    }
    while (len > 0 && out[len - 1] == ' ') len--;
    out[len] = '\0';
}
