/* cuda_stub.c - stands in for the .cu files in kernels/ when the build had no nvcc. */
#include <stdio.h>
#include "../../kernels/kernels.h"
#include "backend/backend.h"
#include "backend/cuda.h"

int sdc_cuda_compiled(void) { return 0; }

int sdc_cuda_emulated(void) { return 0; }

int sdc_cuda_device_count(char *why, int why_len) {
    if (why && why_len > 0) snprintf(why, (size_t)why_len, "built without nvcc");
    return 0;
}

void sdc_cuda_device_name(char *name, int name_len) {
    if (name && name_len > 0) name[0] = '\0';
}

int sdc_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    if (free_bytes) *free_bytes = 0;
    if (total_bytes) *total_bytes = 0;
    return -1;
}

int sdc_cuda_sync(void) { return -1; }

sdc_status sdc_backend_cuda_create(int device, sdc_backend **out) {
    (void)device;
    *out = NULL;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "this sdc was built without nvcc: no CUDA backend");
}

/* The one launcher the tests call directly (the fragment-layout test); they
 * skip before calling it where there is no device. 1: cudaErrorInvalidValue. */
int sdc_fragment_check_cuda(float *d, const uint16_t *a, const uint16_t *b, const float *c, int mode, int bf16,
                            cudaStream_t s) {
    (void)d, (void)a, (void)b, (void)c, (void)mode, (void)bf16, (void)s;
    return 1;
}
