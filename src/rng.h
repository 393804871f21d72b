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
    bool has_next_float;
    float next_float;
} sdc_rng;

void sdc_rng_seed(sdc_rng *r, uint64_t seed);

/* Next 32 random bits (torch's random()). */
uint32_t sdc_rng_u32(sdc_rng *r);

/* n standard normals in float32, exactly as one torch.randn(n) call on the
 * CPU generator (a tensor of any shape with n elements, in its row-major
 * order). */
void sdc_rng_randn(sdc_rng *r, float *out, size_t n);

#endif
