/* test_rng.c - sdc's port of torch's CPU generator (src/sampling/rng.c).
 *
 * tests/fixtures/rng_reference.safetensors (tools/fixtures_rng.py) holds
 * torch.randn outputs; each tensor's metadata entry
 * "seed=S calls=n0,n1,... out=k" says how to replay it: seed a fresh
 * generator, make the calls in order, compare call k. The comparison is on
 * the bit patterns: the port must be exact, not close. The mt19937 core is
 * pinned separately by std::mt19937's published outputs. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/rng.h"
#include "model/safetensors.h"

#define RNG_FIXTURE "tests/fixtures/rng_reference.safetensors"
#define MAX_CALLS 16

/* ---- mt19937 ------------------------------------------------------------ */

Test(rng, mt19937_default_seed) {
    /* std::mt19937 default-constructed (seed 5489). */
    static const uint32_t first[5] = {3499211612u, 581869302u, 3890346734u,
                                      3586334585u, 545404204u};
    sdc_rng r;
    sdc_rng_seed(&r, 5489);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sdc_rng_u32(&r), first[i], "output %d", i + 1);
    uint32_t v = 0;
    for (int i = 5; i < 10000; i++)
        v = sdc_rng_u32(&r);
    /* C++11 [rand.predef]: the 10000th output of mt19937 is 4123659995. */
    cr_assert_eq(v, 4123659995u, "10000th output %" PRIu32, v);
}

Test(rng, seed_uses_low_32_bits) {
    /* torch seeds mt19937 from seed & 0xffffffff but remembers all 64. */
    sdc_rng a, b;
    sdc_rng_seed(&a, 7);
    sdc_rng_seed(&b, (UINT64_C(1) << 32) + 7);
    cr_assert_eq(b.seed, (UINT64_C(1) << 32) + 7);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sdc_rng_u32(&a), sdc_rng_u32(&b));
}

Test(rng, u64_is_two_u32_high_first) {
    sdc_rng a, b;
    sdc_rng_seed(&a, 99);
    sdc_rng_seed(&b, 99);
    for (int i = 0; i < 700; i++) {
        uint64_t hi = sdc_rng_u32(&a);
        uint64_t lo = sdc_rng_u32(&a);
        cr_assert_eq(sdc_rng_u64(&b), (hi << 32) | lo);
    }
}

Test(rng, reseed_clears_cached_normal) {
    /* randn(1) leaves the pair's second normal cached; manual_seed drops it,
     * so the same seed starts over identically. */
    sdc_rng r;
    float a[3], b[3];
    sdc_rng_seed(&r, 5);
    sdc_rng_randn(&r, a, 1);
    cr_assert(r.has_next_double);
    sdc_rng_seed(&r, 5);
    cr_assert(!r.has_next_double);
    sdc_rng_randn(&r, b, 1);
    cr_assert_eq(memcmp(a, b, sizeof(float)), 0);
    sdc_rng_randn(&r, a + 1, 2);
    sdc_rng_seed(&r, 5);
    sdc_rng_randn(&r, b, 3);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
}

Test(rng, randn_zero_draws_nothing) {
    sdc_rng a, b;
    sdc_rng_seed(&a, 3);
    sdc_rng_seed(&b, 3);
    sdc_rng_randn(&a, NULL, 0);
    cr_assert_eq(sdc_rng_u32(&a), sdc_rng_u32(&b));
}

/* ---- torch reference ------------------------------------------------------ */

typedef struct {
    uint64_t seed;
    int n_calls;
    size_t calls[MAX_CALLS];
    int out;
} replay;

static void parse_replay(const char *name, const char *spec, replay *rp) {
    cr_assert(spec, "%s: no metadata entry", name);
    memset(rp, 0, sizeof *rp);
    const char *p = strstr(spec, "seed=");
    cr_assert(p, "%s: bad spec '%s'", name, spec);
    char *end;
    rp->seed = strtoull(p + 5, &end, 10);
    p = strstr(end, "calls=");
    cr_assert(p, "%s: bad spec '%s'", name, spec);
    p += 6;
    for (;;) {
        cr_assert_lt(rp->n_calls, MAX_CALLS, "%s: too many calls", name);
        rp->calls[rp->n_calls++] = (size_t)strtoull(p, &end, 10);
        cr_assert(end != p, "%s: bad spec '%s'", name, spec);
        if (*end != ',')
            break;
        p = end + 1;
    }
    p = strstr(end, "out=");
    cr_assert(p, "%s: bad spec '%s'", name, spec);
    rp->out = atoi(p + 4);
    cr_assert(rp->out >= 0 && rp->out < rp->n_calls, "%s: bad out", name);
}

/* Replay one fixture tensor; returns 1 when it matched bit for bit. */
static int check_tensor(const sdc_st_file *f, const sdc_st_tensor *t,
                        uint64_t *seeds_seen, int *n_seeds) {
    replay rp;
    parse_replay(t->name, sdc_st_meta(f, t->name), &rp);
    cr_assert_eq(t->dtype, SDC_DT_F32, "%s: not float32", t->name);
    cr_assert_eq((size_t)t->numel, rp.calls[rp.out], "%s: numel %" PRId64
                 " but call %d draws %zu", t->name, t->numel, rp.out,
                 rp.calls[rp.out]);
    int known = 0;
    for (int i = 0; i < *n_seeds; i++)
        known |= seeds_seen[i] == rp.seed;
    if (!known && *n_seeds < 64)
        seeds_seen[(*n_seeds)++] = rp.seed;

    sdc_rng r;
    sdc_rng_seed(&r, rp.seed);
    float *got = NULL;
    for (int c = 0; c <= rp.out; c++) {
        free(got);
        got = malloc((rp.calls[c] ? rp.calls[c] : 1) * sizeof *got);
        cr_assert(got);
        sdc_rng_randn(&r, got, rp.calls[c]);
    }
    const uint8_t *want = t->data;   /* little-endian f32, maybe unaligned */
    size_t n = rp.calls[rp.out];
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t wb, gb;
        memcpy(&wb, want + 4 * i, 4);
        memcpy(&gb, &got[i], 4);
        if (wb != gb) {
            float wf;
            memcpy(&wf, &wb, 4);
            cr_log_error("%s (seed %" PRIu64 ", call %d of %d, n=%zu): first "
                         "mismatch at %zu: got %.9g (0x%08" PRIx32 "), torch "
                         "%.9g (0x%08" PRIx32 ")", t->name, rp.seed,
                         rp.out + 1, rp.n_calls, n, i, (double)got[i], gb,
                         (double)wf, wb);
            ok = 0;
            break;
        }
    }
    free(got);
    return ok;
}

static void check_fixture(void) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(RNG_FIXTURE, &f), SDC_OK,
                 "cannot open %s (tools/fixtures_rng.py writes it)",
                 RNG_FIXTURE);
    uint64_t seeds[64];
    int n_seeds = 0, bad = 0;
    for (int i = 0; i < f->n_tensors; i++)
        bad += !check_tensor(f, &f->tensors[i], seeds, &n_seeds);
    int n = f->n_tensors;
    sdc_st_close(f);
    cr_assert_eq(bad, 0, "%d of %d fixture tensors differ from torch", bad, n);
    cr_assert_geq(n, 60, "only %d fixture tensors", n);
    cr_assert_geq(n_seeds, 5, "only %d seeds", n_seeds);
}

Test(rng, torch_randn_bit_exact) {
    sdc_rng_set_kernel(SDC_RNG_KERNEL_AUTO);
    check_fixture();
}

/* The portable kernel (libm fmaf) must agree with the inline-FMA one. */
Test(rng, torch_randn_bit_exact_portable_kernel) {
    sdc_rng_set_kernel(SDC_RNG_KERNEL_PORTABLE);
    check_fixture();
    sdc_rng_set_kernel(SDC_RNG_KERNEL_AUTO);
}

Test(rng, kernels_agree_on_a_large_draw) {
    const size_t n = 4 * 128 * 128 + 5;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    cr_assert(a && b);
    sdc_rng r;
    sdc_rng_set_kernel(SDC_RNG_KERNEL_PORTABLE);
    sdc_rng_seed(&r, 123456789);
    sdc_rng_randn(&r, a, n);
    sdc_rng_set_kernel(SDC_RNG_KERNEL_AUTO);
    sdc_rng_seed(&r, 123456789);
    sdc_rng_randn(&r, b, n);
    cr_assert_eq(memcmp(a, b, n * sizeof *a), 0);
    free(a);
    free(b);
}
