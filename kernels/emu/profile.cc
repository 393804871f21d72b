// profile.cc - SDC_CUDA_EMU_PROFILE=1: per kernel counts of the emulated
// device, printed at exit (see profile.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "emu/profile.h"

namespace sdc_emu {

thread_local Counters counters;

namespace {

struct Row {
    unsigned long long launches = 0, blocks = 0, threads = 0;
    Counters c = {};
    double seconds = 0;
};

struct Profile {
    std::mutex mu;
    std::map<std::string, Row> rows;
};

const double MMA_FLOPS = 2.0 * 16 * 8 * 16; // one m16n8k16
const double H100_TFLOPS = 495e12, H100_BYTES = 3.35e12;

void print(Profile *p) {
    fprintf(stderr, "%-24s %8s %9s %11s %12s %10s %10s %6s %10s %8s %10s %10s\n", "emulated kernel", "launches",
            "blocks", "threads", "switches", "mma", "ldmatrix", "waves", "cp.async B", "host s", "H100 mma", "H100 cp");
    for (auto &kv : p->rows) {
        const Row &r = kv.second;
        const double waves = r.c.ldmatrix ? (double)r.c.wavefronts / (double)r.c.ldmatrix : 0.0;
        fprintf(stderr, "%-24s %8llu %9llu %11llu %12llu %10llu %10llu %6.2f %10llu %8.3f %8.1fus %8.1fus\n",
                kv.first.c_str(), r.launches, r.blocks, r.threads, r.c.resumes, r.c.mma, r.c.ldmatrix, waves,
                r.c.cp_bytes, r.seconds, (double)r.c.mma * MMA_FLOPS / H100_TFLOPS * 1e6,
                (double)r.c.cp_bytes / H100_BYTES * 1e6);
    }
}

Profile *profile() {
    static Profile *p = [] {
        const char *e = getenv("SDC_CUDA_EMU_PROFILE");
        if (!e || strcmp(e, "1") != 0) return (Profile *)NULL;
        atexit([] { print(profile()); });
        return new Profile; // never destroyed: printed at exit
    }();
    return p;
}

} // namespace

cudaError_t profiled(const char *name, dim3 grid, dim3 block, const std::function<cudaError_t()> &run) {
    Profile *p = profile();
    if (!p) return run();
    const Counters c0 = counters;
    const auto t0 = std::chrono::steady_clock::now();
    const cudaError_t rc = run();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(p->mu);
    Row &r = p->rows[name];
    const unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
    r.launches++;
    r.blocks += nb;
    r.threads += nb * block.x * block.y * block.z;
    r.c.resumes += counters.resumes - c0.resumes;
    r.c.mma += counters.mma - c0.mma;
    r.c.ldmatrix += counters.ldmatrix - c0.ldmatrix;
    r.c.wavefronts += counters.wavefronts - c0.wavefronts;
    r.c.cp_bytes += counters.cp_bytes - c0.cp_bytes;
    r.seconds += sec;
    return rc;
}

} // namespace sdc_emu
