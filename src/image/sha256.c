/* sha256.c - SHA-256 (FIPS 180-4) and AUTOMATIC1111's "AutoV2" model hash.
 *
 * Two block functions compute the same thing: a portable C one, and one
 * with the x86 SHA extensions (SHA-NI), chosen at run time by cpuid when the
 * CPU has them (about 4-5x faster; a 4 GB checkpoint hashes in a couple of
 * seconds when it is in the page cache). Files are streamed in 4 MiB reads,
 * so memory use does not depend on the file size.
 */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SDC_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SDC_SHA_X86 0
#endif

#define SHA_READ_CHUNK ((size_t)4 << 20)

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* ------------------------------------------------------------- portable */

static inline uint32_t rotr32(uint32_t x, unsigned n) {
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void blocks_portable(uint32_t st[8], const uint8_t *p, size_t nblocks) {
    uint32_t w[64];
    for (; nblocks; nblocks--, p += 64) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^
                          (w[t - 15] >> 3);
            uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^
                          (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
        uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + K256[t] + w[t];
            uint32_t S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
    }
}

/* --------------------------------------------------------------- SHA-NI */

#if SDC_SHA_X86
/* The SHA extensions keep the state as two vectors, ABEF and CDGH (most
 * significant dword first). Message groups G_k = W[4k..4k+3] follow
 *   G_k = msg2(msg1(G_{k-4}, G_{k-3}) + alignr(G_{k-1}, G_{k-2}, 4), G_{k-1})
 * and every group drives four rounds (two rnds2 of two rounds each). */
__attribute__((target("sha,sse4.1,ssse3"))) static void
blocks_shani(uint32_t st[8], const uint8_t *p, size_t nblocks) {
    const __m128i bswap =
        _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i s0 = _mm_loadu_si128((const __m128i *)(const void *)&st[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)(const void *)&st[4]);
    __m128i tmp = _mm_shuffle_epi32(s0, 0xB1);  /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);           /* EFGH */
    s0 = _mm_alignr_epi8(tmp, s1, 8);           /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);        /* CDGH */

    for (; nblocks; nblocks--, p += 64) {
        __m128i abef = s0, cdgh = s1, m[4], msg;
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
            if (k < 4) {
                m[k] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)),
                    bswap);
            } else {
                __m128i x = _mm_sha256msg1_epu32(m[k & 3], m[(k + 1) & 3]);
                x = _mm_add_epi32(
                    x, _mm_alignr_epi8(m[(k + 3) & 3], m[(k + 2) & 3], 4));
                m[k & 3] = _mm_sha256msg2_epu32(x, m[(k + 3) & 3]);
            }
            msg = _mm_add_epi32(
                m[k & 3],
                _mm_loadu_si128((const __m128i *)(const void *)&K256[4 * k]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }

    tmp = _mm_shuffle_epi32(s0, 0x1B);   /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);    /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xF0); /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)(void *)&st[0], s0);
    _mm_storeu_si128((__m128i *)(void *)&st[4], s1);
}

static bool cpu_has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return ssse3 && sse41 && ((b >> 29) & 1);
}
#endif

/* -1: not yet probed; 0: portable; 1: SHA-NI. Probing is idempotent, so a
 * race between threads only repeats it. */
static int g_use_hw = -1;
static bool g_allow_hw = true;

static bool use_hw(void) {
    int v = __atomic_load_n(&g_use_hw, __ATOMIC_RELAXED);
    if (v < 0) {
#if SDC_SHA_X86
        v = g_allow_hw && cpu_has_shani();
#else
        v = 0;
#endif
        __atomic_store_n(&g_use_hw, v, __ATOMIC_RELAXED);
    }
    return v == 1;
}

bool sdc_sha256_use_hw(bool enable) {
    g_allow_hw = enable;
    __atomic_store_n(&g_use_hw, -1, __ATOMIC_RELAXED);
    return use_hw();
}

static void blocks(uint32_t st[8], const uint8_t *p, size_t nblocks) {
    if (!nblocks) return;
#if SDC_SHA_X86
    if (use_hw()) {
        blocks_shani(st, p, nblocks);
        return;
    }
#endif
    blocks_portable(st, p, nblocks);
}

/* ------------------------------------------------------------ streaming */

void sdc_sha256_init(sdc_sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(c->state, iv, sizeof iv);
    c->total = 0;
    c->fill = 0;
}

void sdc_sha256_update(sdc_sha256_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->total += n;
    if (c->fill) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < 64) return;
        blocks(c->state, c->buf, 1);
        c->fill = 0;
    }
    size_t nb = n / 64;
    blocks(c->state, p, nb);
    p += nb * 64;
    n -= nb * 64;
    if (n) {
        memcpy(c->buf, p, n);
        c->fill = n;
    }
}

void sdc_sha256_final(sdc_sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->total * 8;
    size_t f = c->fill;
    c->buf[f++] = 0x80;
    if (f > 56) {
        memset(c->buf + f, 0, 64 - f);
        blocks(c->state, c->buf, 1);
        f = 0;
    }
    memset(c->buf + f, 0, 56 - f);
    for (int i = 0; i < 8; i++) c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    blocks(c->state, c->buf, 1);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->state[i];
    }
    memset(c, 0, sizeof *c);
}

void sdc_sha256(const void *data, size_t n, uint8_t out[32]) {
    sdc_sha256_ctx c;
    sdc_sha256_init(&c);
    sdc_sha256_update(&c, data, n);
    sdc_sha256_final(&c, out);
}

void sdc_sha256_hex(const uint8_t digest[32], char out[65]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

/* ------------------------------------------------------------------ files */

sdc_status sdc_file_sha256(const char *path, uint8_t out[32]) {
    if (!path || !*path) return sdc_fail(SDC_ERR_ARG, "sha256: empty path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: is a directory, not a file", path);
    }
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    /* 64-byte alignment keeps the block loads aligned (not required). */
    uint8_t *buf = aligned_alloc(64, SHA_READ_CHUNK);
    if (!buf) {
        close(fd);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %zu-byte read "
                        "buffer", path, SHA_READ_CHUNK);
    }
    sdc_sha256_ctx c;
    sdc_sha256_init(&c);
    for (;;) {
        size_t have = 0;
        /* Fill the whole buffer (short reads happen on pipes and some file
         * systems) so only the last update has a partial block. */
        while (have < SHA_READ_CHUNK) {
            ssize_t r = read(fd, buf + have, SHA_READ_CHUNK - have);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                int e = errno;
                free(buf);
                close(fd);
                return sdc_fail(SDC_ERR_IO, "%s: read error after %llu bytes: "
                                "%s", path,
                                (unsigned long long)(c.total + have),
                                strerror(e));
            }
            if (r == 0) break;
            have += (size_t)r;
        }
        sdc_sha256_update(&c, buf, have);
        if (have < SHA_READ_CHUNK) break;
    }
    free(buf);
    close(fd);
    sdc_sha256_final(&c, out);
    return SDC_OK;
}

sdc_status sdc_file_sha256_short(const char *path, char out[11]) {
    uint8_t d[32];
    char hex[65];
    out[0] = '\0';
    SDC_TRY(sdc_file_sha256(path, d));
    sdc_sha256_hex(d, hex);
    memcpy(out, hex, 10);
    out[10] = '\0';
    return SDC_OK;
}
