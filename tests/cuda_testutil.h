/* cuda_testutil.h - what the CUDA tests share: which device they run on
 * and how they get a backend on it. */
#ifndef SDC_TESTS_CUDA_TESTUTIL_H
#define SDC_TESTS_CUDA_TESTUTIL_H

#include <stddef.h>

#include "backend/backend.h"

/* 1 on the emulated device (sdc_tests_emu): the tests take small shapes */
int emu(void);
/* Skips the test where there is no device (the emulated one is asked for
 * on the emulated build). */
void need_device(void);
/* The backend on device 0; on the emulated device, with a device memory of
 * mem_mb MiB (0: the default), which sets the backend's scratch blocks. */
sdc_backend *gpu_mem(int mem_mb);
/* A device copy of n host floats (asserts on failure). */
float *dev(sdc_backend *g, const float *h, size_t n);

#endif
