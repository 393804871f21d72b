/* cuda_testutil.h - what the CUDA tests share: which device they run on
 * and how they get a backend on it. */
#ifndef SDC_TESTS_CUDA_TESTUTIL_H
#define SDC_TESTS_CUDA_TESTUTIL_H

#include <stddef.h>

#include "backend/backend.h"
#include "sdc.h"

/* 1 on the emulated device (sdc_tests_emu) */
int emu(void);
/* 1 where the tests take small shapes: on the emulated device, and on a
 * GPU where SDC_TEST_SMALL=1 asks for them (make gpu-check's
 * compute-sanitizer runs, which slow every kernel down many times) */
int small_shapes(void);
/* Skips the test where there is no device (the emulated one is asked for
 * on the emulated build). */
void need_device(void);
/* The backend on device 0; on the emulated device, with a device memory of
 * mem_mb MiB (0: the default), which sets the backend's scratch blocks. */
sdc_backend *gpu_mem(int mem_mb);
/* A render's on_step callback (user: a step_probe) recording after each
 * step the backend's host copies and allocations so far, steps 1..20. */
typedef struct step_probe {
    sdc_backend *be;
    sdc_transfers at[21];
    size_t allocs[21];
} step_probe;
void step_probe_record(int step, int total, double seconds, void *user);
/* A context on the tiny test model (tests/fixtures/tiny_sd1.safetensors)
 * with this backend and precision (asserts it loads). */
sdc_ctx *tiny_ctx(sdc_backend_kind kind, sdc_precision precision);
/* the same with the VAE's precision chosen too */
sdc_ctx *tiny_ctx_vae(sdc_backend_kind kind, sdc_precision precision, sdc_precision vae_precision);
/* A device copy of n host floats (asserts on failure). */
float *dev(sdc_backend *g, const float *h, size_t n);

#endif
