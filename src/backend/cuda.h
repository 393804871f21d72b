/* cuda.h - what C code needs from the CUDA side (the .cu files in kernels/). With nvcc
 * absent at build time, src/backend/cuda_stub.c provides the same symbols. */
#ifndef SDC_CUDA_H
#define SDC_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when none or no driver. When it returns
 * 0, why[] (may be NULL) receives the runtime's reason. */
int sdc_cuda_device_count(char *why, int why_len);

/* Name of device 0 ("NVIDIA H100 ..."), "" if none. */
void sdc_cuda_device_name(char *name, int name_len);

/* Device 0's free and total memory in bytes; 0 on success, -1 if none. */
int sdc_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Wait for everything issued to device 0 on any stream (tests that call
 * launchers directly on the legacy stream, then read through a backend's
 * own): 0 on success, -1 if it failed or there is none. */
int sdc_cuda_sync(void);

/* 1 if the binary was built with nvcc (kernels linked in), 0 for the stub. */
int sdc_cuda_compiled(void);

/* 1 if the kernels are the host execution (kernels/emu/: a build for
 * tests, whose one device exists only with SDC_CUDA_EMU=1), else 0. */
int sdc_cuda_emulated(void);

#ifdef __cplusplus
}
#endif
#endif
