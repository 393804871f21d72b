/* rng.c - PyTorch's CPU generator (torch 2.5, CPUGeneratorImpl) and its
 * float32 normal sampling, reproduced bit for bit.
 *
 * Engine. mt19937 seeded with the low 32 bits of the 64-bit seed (torch's
 * at::mt19937 keeps the full seed for initial_seed() but initialises the
 * state from seed & 0xffffffff, so seeds S and S + 2^32 give the same
 * stream). random() is one tempered output; random64() is two, the first
 * being the high word.
 *
 * Uniforms. float: (random() & 0xffffff) * 2^-24 (the low 24 bits);
 * double: (random64() & (2^53 - 1)) * 2^-53. Both lie in [0, 1).
 *
 * randn, n < 16 (or the tail of nothing): the scalar path,
 * at::normal_distribution<double> per element: if the generator holds a
 * cached double normal, return it (and clear it); otherwise u1, u2 = two
 * double uniforms (in that order), r = sqrt(-2 log1p(-u2)),
 * theta = 2 pi u1, cache r sin(theta), return r cos(theta). Each value is
 * then v * 1.0 + 0.0 (std, mean) and rounded to float. The cache outlives
 * the call and is only cleared by reseeding; the vectorised path neither
 * reads nor writes it.
 *
 * randn, n >= 16: torch's normal_fill with the AVX2 kernel (what every
 * x86-64 build of torch runs on an AVX2 or AVX-512 CPU):
 *   1. fill all n outputs with float uniforms, in order;
 *   2. for each whole block of 16 at i = 0, 16, ...: the Box-Muller
 *      transform of 8 pairs, u1 = 1 - d[j], u2 = d[j + 8] (j < 8),
 *      d[j] = r cos(theta), d[j + 8] = r sin(theta), with
 *      r = sqrt(-2 * log(u1)) and theta = (float)(2 pi) * u2;
 *   3. if n % 16 != 0: draw 16 fresh float uniforms into d[n-16 .. n-1]
 *      (overwriting values already transformed) and transform that block.
 * So such a call consumes n + 16 words of the stream, a multiple of 16
 * consumes exactly n.
 * log and sincos are not libm's: they are the float polynomials of
 * avx_mathfun.h (Cephes logf / sinf / cosf as ported by J. Pommier), and
 * torch's compiler (GCC, -mfma, -ffp-contract=fast) fuses every
 * "a * b + c" whose product has no other use into one fused multiply-add.
 * Which pairs are fused changes the last bit of about 1 value in 5000,
 * so this file spells each fma out with fmaf() and keeps every other
 * product and sum separately rounded (the build's -std=c11 turns GCC's
 * contraction off; clang is told so by the pragma below). The kernel was
 * checked against torch for all 2^24 possible uniforms as u1 and as u2.
 *
 * Not reproduced: torch's builds without AVX2 (non-x86 CPUs, or
 * ATEN_CPU_CAPABILITY=default), whose n >= 16 path uses libm's logf/cosf/
 * sinf and so differs in the last bits of some values. */
#include "sampling/rng.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MT_N 624
#define MT_M 397

void sdc_rng_seed(sdc_rng *r, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->seed = seed;
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < MT_N; i++) {
        uint32_t p = r->mt[i - 1];
        r->mt[i] = 1812433253u * (p ^ (p >> 30)) + (uint32_t)i;
    }
    r->index = MT_N;   /* the first draw regenerates the state */
    r->has_next_double = false;
    r->has_next_float = false;
}

/* mt19937's "twist": the next 624 words of state. */
static void mt_twist(uint32_t *mt)
{
    int i;
    for (i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = mt[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u)
            v ^= 0x9908b0dfu;
        mt[i] = v;
    }
}

uint32_t sdc_rng_u32(sdc_rng *r)
{
    if (r->index >= MT_N) {
        mt_twist(r->mt);
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t sdc_rng_u64(sdc_rng *r)
{
    uint64_t hi = sdc_rng_u32(r);
    uint64_t lo = sdc_rng_u32(r);
    return (hi << 32) | lo;
}

static float uniform_f32(sdc_rng *r)
{
    return (float)(sdc_rng_u32(r) & 0xffffffu) * 0x1p-24f;
}

static double uniform_f64(sdc_rng *r)
{
    return (double)(sdc_rng_u64(r) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

/* ---- the scalar path: at::normal_distribution<double> ---------------- */

static float normal_scalar(sdc_rng *r)
{
    if (r->has_next_double) {
        r->has_next_double = false;
        return (float)(r->next_double * 1.0 + 0.0);
    }
    const double u1 = uniform_f64(r);
    const double u2 = uniform_f64(r);
    const double rad = sqrt(-2.0 * log1p(-u2));
    const double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_double = rad * sin(theta);
    r->has_next_double = true;
    return (float)(rad * cos(theta) * 1.0 + 0.0);
}

/* ---- the vectorised path: avx_mathfun's log and sincos, one lane ------ */

/* A constant as avx_mathfun.h spells it: a double literal stored in a
 * float (decimal -> double -> float, which is not always decimal -> float). */
#define K(v) ((float)(v))

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Cephes logf for x > 0 (here x is in [2^-24, 1]). */
#define LOG_BODY(FMA)                                                        \
    do {                                                                     \
        x = x > 0x1p-126f ? x : 0x1p-126f;  /* max(x, min_norm_pos) */       \
        uint32_t xb = f2u(x);                                                \
        float e = (float)((int32_t)(xb >> 23) - 127) + 1.0f;                 \
        x = u2f((xb & ~0x7f800000u) | 0x3f000000u);   /* mantissa in [.5,1) */ \
        const bool lt = x < K(0.707106781186547524);                         \
        const float tmp = lt ? x : 0.0f;                                     \
        x = x - 1.0f;                                                        \
        e = e - (lt ? 1.0f : 0.0f);                                          \
        x = x + tmp;                                                         \
        const float z = x * x;                                               \
        float y = K(7.0376836292E-2);                                        \
        y = FMA(y, x, K(-1.1514610310E-1));                                  \
        y = FMA(y, x, K(1.1676998740E-1));                                   \
        y = FMA(y, x, K(-1.2420140846E-1));                                  \
        y = FMA(y, x, K(1.4249322787E-1));                                   \
        y = FMA(y, x, K(-1.6668057665E-1));                                  \
        y = FMA(y, x, K(2.0000714765E-1));                                   \
        y = FMA(y, x, K(-2.4999993993E-1));                                  \
        y = FMA(y, x, K(3.3333331174E-1));                                   \
        y = y * x;                                                           \
        y = FMA(y, z, e * K(-2.12194440e-4));                                \
        y = FMA(z, -0.5f, y);                                                \
        x = x + y;                                                           \
        x = FMA(e, K(0.693359375), x);                                       \
        logv = x;                                                            \
    } while (0)

/* Cephes sinf/cosf together for x in [0, 2 pi). */
#define SINCOS_BODY(FMA)                                                     \
    do {                                                                     \
        uint32_t sign_sin = f2u(x) & 0x80000000u;                            \
        x = fabsf(x);                                                        \
        float y = x * K(1.27323954473516);             /* 4 / pi */          \
        int32_t j = (int32_t)y;                      /* truncation */        \
        j = (j + 1) & ~1;                                                    \
        y = (float)j;                                                        \
        const uint32_t swap_sin = ((uint32_t)j & 4u) << 29;                  \
        const bool poly_cos = (j & 2) == 0;   /* cos polynomial -> cos */    \
        x = FMA(y, K(-0.78515625), x);                                       \
        x = FMA(y, K(-2.4187564849853515625e-4), x);                         \
        x = FMA(y, K(-3.77489497744594108e-8), x);                           \
        const uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;           \
        sign_sin ^= swap_sin;                                                \
        const float z = x * x;                                               \
        float yc = K(2.443315711809948E-005);                                \
        yc = FMA(yc, z, K(-1.388731625493765E-003));                         \
        yc = FMA(yc, z, K(4.166664568298827E-002));                          \
        yc = yc * z;                                                         \
        yc = FMA(yc, z, -(z * 0.5f));                                        \
        yc = yc + 1.0f;                                                      \
        float ys = K(-1.9515295891E-4);                                      \
        ys = FMA(ys, z, K(8.3321608736E-3));                                 \
        ys = FMA(ys, z, K(-1.6666654611E-1));                                \
        ys = ys * z;                                                         \
        ys = FMA(ys, x, x);                                                  \
        const float s = poly_cos ? ys : yc;                                  \
        const float c = poly_cos ? yc : ys;                                  \
        sinv = u2f(f2u(s) ^ sign_sin);                                       \
        cosv = u2f(f2u(c) ^ sign_cos);                                       \
    } while (0)

/* One block of 16: uniforms in, normals out (std 1, mean 0; the final
 * fmadd(n, std, mean) is n + 0.0f, which turns -0 into +0). */
#define FILL16_BODY(FMA)                                                     \
    do {                                                                     \
        for (int k = 0; k < 8; k++) {                                        \
            float logv, sinv, cosv, x;                                       \
            x = 1.0f - d[k];                                                 \
            LOG_BODY(FMA);                                                   \
            const float radius = sqrtf(-2.0f * logv);                        \
            x = K(2.0 * 3.14159265358979323846) * d[k + 8];                  \
            SINCOS_BODY(FMA);                                                \
            d[k] = radius * cosv + 0.0f;                                     \
            d[k + 8] = radius * sinv + 0.0f;                                 \
        }                                                                    \
    } while (0)

/* Portable version: fmaf() is exact by the C standard (glibc picks the
 * hardware instruction through an ifunc where there is one). */
static void fill_blocks_generic(float *d, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++, d += 16)
        FILL16_BODY(fmaf);
}

#if (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
#define SDC_RNG_FMA_CLONE 1
/* Same arithmetic with the FMA instruction inlined (the build targets
 * x86-64-v2, which has none); chosen at run time. */
__attribute__((target("fma")))
static void fill_blocks_fma(float *d, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++, d += 16)
        FILL16_BODY(__builtin_fmaf);
}
#endif

static sdc_rng_kernel kernel_choice = SDC_RNG_KERNEL_AUTO;

void sdc_rng_set_kernel(sdc_rng_kernel k)
{
    kernel_choice = k;
}

static void fill_blocks(float *d, size_t nblocks)
{
#ifdef SDC_RNG_FMA_CLONE
    if (kernel_choice == SDC_RNG_KERNEL_AUTO) {
        __builtin_cpu_init();   /* cheap once done; needed only before main */
        if (__builtin_cpu_supports("fma")) {
            fill_blocks_fma(d, nblocks);
            return;
        }
    }
#endif
    fill_blocks_generic(d, nblocks);
}

void sdc_rng_randn(sdc_rng *r, float *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = normal_scalar(r);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_f32(r);
    fill_blocks(out, n / 16);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++)
            tail[i] = uniform_f32(r);
        fill_blocks(tail, 1);
    }
}
