// device.cu - CUDA device discovery for the backend selection.
#include "port.h"
#include <stdio.h>

#include "backend/cuda.h"

extern "C" int sdc_cuda_compiled(void) { return 1; }

extern "C" int sdc_cuda_emulated(void) { return SDC_EMULATED; }

extern "C" int sdc_cuda_device_count(char *why, int why_len) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n <= 0) {
        const char *msg = err == cudaErrorInsufficientDriver
                              ? "no NVIDIA driver, or one older than this build's CUDA runtime"
                          : err != cudaSuccess ? cudaGetErrorString(err)
                                               : "no CUDA device";
        if (why && why_len > 0) snprintf(why, (size_t)why_len, "%s", msg);
        cudaGetLastError(); // clear the sticky error state
        return 0;
    }
    return n;
}

extern "C" void sdc_cuda_device_name(char *name, int name_len) {
    if (!name || name_len <= 0) return;
    name[0] = '\0';
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(name, (size_t)name_len, "%s", prop.name);
}

extern "C" int sdc_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

extern "C" int sdc_cuda_sync(void) {
    if (cudaDeviceSynchronize() != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return 0;
}
