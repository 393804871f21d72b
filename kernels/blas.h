// blas.h - cuBLAS on the GPU; on the host execution, the same calls computed
// by the CPU's BLAS (kernels/emu/blas.cc).
#ifndef SDC_BLAS_H
#define SDC_BLAS_H

#include "port.h"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#else
#include "emu/emu_blas.h"
#endif

#endif
