/* rng.h - a port of PyTorch's CPU generator, so that --seed S gives exactly
 * torch.randn(shape, generator=torch.Generator("cpu").manual_seed(S),
 * dtype=torch.float32): mt19937 seeded as torch seeds it, and torch's
 * normal sampling (the vectorised Box-Muller path for 16 or more values,
 * the scalar path below that). Successive calls continue the stream as
 * successive torch.randn calls on the same generator do. */
#ifndef SDC_RNG_H
#define SDC_RNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct sdc_rng {
    uint32_t mt[624];        /* mt19937 state */
    int index;               /* next word of state */
    uint64_t seed;
    bool has_next_double;    /* torch caches the second normal of a pair */
    double next_double;      /* (scalar path), as CPUGeneratorImpl does */
    bool has_next_float;     /* torch's float cache; randn(float32) never */
    float next_float;        /* uses it (its scalar path is in double) */
} sdc_rng;

/* torch's manual_seed(seed): mt19937 initialised from the low 32 bits
 * (seed and seed + 2^32 give the same stream; a negative Python seed is
 * its two's complement), the cached normal cleared. */
void sdc_rng_seed(sdc_rng *r, uint64_t seed);

/* Next 32 random bits (torch's random()). */
uint32_t sdc_rng_u32(sdc_rng *r);

/* Next 64 random bits (torch's random64()): two u32 draws, the first being
 * the high word. */
uint64_t sdc_rng_u64(sdc_rng *r);

/* n standard normals in float32, exactly as one torch.randn(n) call on the
 * CPU generator (a tensor of any shape with n elements, in its row-major
 * order). */
void sdc_rng_randn(sdc_rng *r, float *out, size_t n);

/* Which implementation of the vectorised path's arithmetic runs (all give
 * identical bits; this exists so tests can check that): AUTO uses the
 * inline FMA instruction where the CPU has it and libm's fmaf() otherwise,
 * PORTABLE always fmaf(). Process-wide; AUTO is the default. */
typedef enum {
    SDC_RNG_KERNEL_AUTO = 0,
    SDC_RNG_KERNEL_PORTABLE = 1
} sdc_rng_kernel;
void sdc_rng_set_kernel(sdc_rng_kernel k);

#endif
