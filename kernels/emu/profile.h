// profile.h - what the emulated device counts per launch, and the table
// SDC_CUDA_EMU_PROFILE=1 prints at exit (profile.cc): per kernel its
// launches, blocks, threads, fibre switches, warp mma instructions,
// ldmatrix instructions and the shared-memory wavefronts they take (8 rows
// of 16 bytes per matrix: one wavefront when the rows fall in distinct
// banks, more for each conflict), bytes moved by cp.async, host seconds,
// and the time the mma and cp.async counts imply on an H100/H200 (mma.sync
// fp16 at 495 TFLOP/s, HBM at 3.35 TB/s), so a kernel's design can be
// judged before a GPU is lent. Bank conflicts are computed from the host
// addresses of the rows, which match a GPU's where the shared array is
// 128-byte aligned.
#ifndef SDC_EMU_PROFILE_H
#define SDC_EMU_PROFILE_H

#include <functional>

#include "emu/emu_runtime.h"

namespace sdc_emu {

struct Counters {
    unsigned long long resumes;     // fibre switches into a thread
    unsigned long long mma;         // warp-wide mma.m16n8k16
    unsigned long long ldmatrix;    // warp-wide ldmatrix matrices (x4 counts 4)
    unsigned long long wavefronts;  // shared-memory wavefronts of those
    unsigned long long cp_bytes;    // bytes copied by cp.async
};
extern thread_local Counters counters;

// run() the launch; with SDC_CUDA_EMU_PROFILE=1 add its counts and time to
// the kernel's row
cudaError_t profiled(const char *name, dim3 grid, dim3 block, const std::function<cudaError_t()> &run);

} // namespace sdc_emu

#endif
