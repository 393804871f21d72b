/* test_cuda.c - CUDA presence. Every CUDA test skips with a visible
 * "SKIP: no CUDA device" line on machines without one. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "cuda.h"

Test(cuda, built_with_nvcc) {
#ifdef SDC_HAVE_CUDA
    cr_assert_eq(sdc_cuda_compiled(), 1, "built with nvcc, but the CUDA objects are not linked");
#else
    cr_assert_eq(sdc_cuda_compiled(), 0);
#endif
}

Test(cuda, device_probe) {
    char why[256] = "";
    int n = sdc_cuda_device_count(why, sizeof why);
    if (n == 0) {
        fprintf(stderr, "SKIP: no CUDA device (%s)\n", why);
        cr_skip_test("SKIP: no CUDA device (%s)", why);
    }
    char name[256];
    sdc_cuda_device_name(name, sizeof name);
    cr_assert(name[0], "device 0 has no name");
    fprintf(stderr, "cuda: %d device(s), device 0: %s\n", n, name);
}
