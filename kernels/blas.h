// blas.h - cuBLAS and cuBLASLt on the GPU; on the host execution, the same
// calls computed by the CPU's BLAS (kernels/emu/blas.cc, blaslt.cc).
#ifndef SDC_BLAS_H
#define SDC_BLAS_H

#include "port.h"

#if defined(__CUDACC__)
#include <cublasLt.h>
#include <cublas_v2.h>
#else
#include "emu/emu_blas.h"
#include "emu/emu_blaslt.h"
#endif

#endif
