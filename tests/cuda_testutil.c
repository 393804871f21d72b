/* cuda_testutil.c - see cuda_testutil.h. */
#include "cuda_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda.h"

int emu(void) { return sdc_cuda_emulated(); }

void need_device(void) {
    if (emu()) setenv("SDC_CUDA_EMU", "1", 0);
    char why[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "SKIP: no CUDA device (%s)\n", why);
        cr_skip_test("SKIP: no CUDA device (%s)", why);
    }
}

sdc_backend *gpu_mem(int mem_mb) {
    if (emu()) {
        setenv("SDC_CUDA_EMU", "1", 0);
        char v[32];
        snprintf(v, sizeof v, "%d", mem_mb ? mem_mb : 16384);
        setenv("SDC_CUDA_EMU_MEM_MB", v, 1);
    }
    need_device();
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cuda_create(0, &be), SDC_OK, "%s", sdc_last_error());
    return be;
}

float *dev(sdc_backend *g, const float *h, size_t n) {
    float *d = NULL;
    cr_assert_eq(sdc_backend_upload_new(g, h, n, &d), SDC_OK, "%s", sdc_last_error());
    return d;
}
