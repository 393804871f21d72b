// runtime.cc - the CUDA runtime calls of sdc on the emulated device (see
// emu_runtime.h): memory with a fixed device size, copies that check the
// device side of every transfer, streams in issue order, events with host
// timestamps, stream capture and graph replay, sticky launch failures.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "emu/emu.h"

struct CUstream_st {
    bool capturing = false, invalidated = false;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::vector<std::function<cudaError_t()>> recorded;
};
struct CUevent_st {
    bool recorded = false;
    std::chrono::steady_clock::time_point at;
};
struct CUgraph_st {
    std::vector<std::function<cudaError_t()>> work;
};
struct CUgraphExec_st {
    std::vector<std::function<cudaError_t()>> work;
};

namespace sdc_emu {

namespace {

struct Device {
    std::mutex mu;
    std::map<uintptr_t, size_t> live; // start -> bytes
    std::set<CUstream_st *> streams;
    size_t used = 0, peak = 0;
    bool capture_global = false;      // a stream is being captured in global mode
    cudaError_t last = cudaSuccess;   // returned (and cleared) by cudaGetLastError
    cudaError_t sticky = cudaSuccess; // a launch failure: the context is lost
};

Device &dev() {
    static Device *d = new Device; // never destroyed: frees may come from atexit handlers
    return *d;
}

bool enabled() {
    const char *e = getenv("SDC_CUDA_EMU");
    return e && strcmp(e, "1") == 0;
}

size_t device_bytes() {
    const char *e = getenv("SDC_CUDA_EMU_MEM_MB");
    long long mb = 16384;
    if (e && *e) {
        char *end = NULL;
        long long v = strtoll(e, &end, 10);
        if (end && *end == '\0' && v > 0 && v <= (1LL << 30)) mb = v;
    }
    return (size_t)mb << 20;
}

// the error of a call, remembered for cudaGetLastError
cudaError_t ret(cudaError_t e) {
    if (e != cudaSuccess) dev().last = e;
    return e;
}

// usable device, no lost context
cudaError_t ready() {
    if (!enabled()) return cudaErrorNoDevice;
    return dev().sticky;
}

// live allocation containing [p, p + n), or none
bool inside(const void *p, size_t n) {
    Device &d = dev();
    const uintptr_t a = (uintptr_t)p;
    auto it = d.live.upper_bound(a);
    if (it == d.live.begin()) return false;
    --it;
    return a >= it->first && n <= it->second && a - it->first <= it->second - n;
}

// A call that a global-mode capture forbids: it invalidates the capture.
bool forbidden_in_capture(const char *call) {
    Device &d = dev();
    if (!d.capture_global) return false;
    fprintf(stderr, "sdc emulated device: %s while a stream is captured (global mode) invalidates the capture\n",
            call);
    for (CUstream_st *s : d.streams)
        if (s->capturing && s->mode == cudaStreamCaptureModeGlobal) s->invalidated = true;
    return true;
}

const char *kind_name(cudaMemcpyKind k) {
    switch (k) {
    case cudaMemcpyHostToHost: return "host to host";
    case cudaMemcpyHostToDevice: return "host to device";
    case cudaMemcpyDeviceToHost: return "device to host";
    case cudaMemcpyDeviceToDevice: return "device to device";
    default: return "default";
    }
}

// the device side(s) of a copy must lie in live allocations
cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    std::lock_guard<std::mutex> lock(dev().mu);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((int)kind < 0 || (int)kind > 4) return cudaErrorInvalidValue;
    if (dst_dev && !inside(dst, n)) {
        fprintf(stderr, "sdc emulated device: cudaMemcpy %s of %zu bytes: destination %p is not inside a device "
                        "allocation\n", kind_name(kind), n, dst);
        return cudaErrorInvalidValue;
    }
    if (src_dev && !inside(src, n)) {
        fprintf(stderr, "sdc emulated device: cudaMemcpy %s of %zu bytes: source %p is not inside a device "
                        "allocation\n", kind_name(kind), n, src);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

bool live_stream(cudaStream_t s) {
    if (!s) return true; // the legacy default stream
    std::lock_guard<std::mutex> lock(dev().mu);
    return dev().streams.count(s) != 0;
}

} // namespace

bool device_range(const void *p, size_t n) {
    std::lock_guard<std::mutex> lock(dev().mu);
    return inside(p, n);
}

void set_error(cudaError_t e) {
    dev().last = e;
    if (e == cudaErrorLaunchFailure) dev().sticky = e;
}

size_t peak_bytes() { return dev().peak; }

cudaError_t submit(cudaStream_t s, const char *what, std::function<cudaError_t()> work) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (!live_stream(s)) {
        fprintf(stderr, "sdc emulated device: %s on a stream that was destroyed or never created\n", what);
        return ret(cudaErrorInvalidResourceHandle);
    }
    if (s && s->capturing) {
        if (!s->invalidated) s->recorded.push_back(std::move(work));
        return cudaSuccess;
    }
    if (!s && dev().capture_global) {
        // the legacy stream synchronises with the captured one: not allowed
        forbidden_in_capture(what);
        return ret(cudaErrorStreamCaptureImplicit);
    }
    return ret(work());
}

} // namespace sdc_emu

using namespace sdc_emu;

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected (the emulated device is off: set SDC_CUDA_EMU=1)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated device: the kernel's report is above)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    Device &d = dev();
    cudaError_t e = d.sticky != cudaSuccess ? d.sticky : d.last;
    d.last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    Device &d = dev();
    return d.sticky != cudaSuccess ? d.sticky : d.last;
}

cudaError_t cudaGetDeviceCount(int *n) {
    if (!n) return ret(cudaErrorInvalidValue);
    *n = enabled() ? 1 : 0;
    return enabled() ? cudaSuccess : ret(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int d) {
    if (!enabled()) return ret(cudaErrorNoDevice);
    return d == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *d) {
    if (!d) return ret(cudaErrorInvalidValue);
    if (!enabled()) return ret(cudaErrorNoDevice);
    *d = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (!p) return ret(cudaErrorInvalidValue);
    if (!enabled()) return ret(cudaErrorNoDevice);
    if (d != 0) return ret(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "sdc emulated CUDA device (host CPU)");
    p->totalGlobalMem = device_bytes();
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->multiProcessorCount = 1;
    p->major = 9; // the instructions of sm_90: mma.sync, ldmatrix, cp.async
    p->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    Device &d = dev();
    std::lock_guard<std::mutex> lock(d.mu);
    const size_t total = device_bytes();
    if (free_b) *free_b = d.used < total ? total - d.used : 0;
    if (total_b) *total_b = total;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n) {
    if (!p) return ret(cudaErrorInvalidValue);
    *p = NULL;
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (forbidden_in_capture("cudaMalloc")) return ret(cudaErrorStreamCaptureUnsupported);
    if (n == 0) return cudaSuccess;
    Device &d = dev();
    std::lock_guard<std::mutex> lock(d.mu);
    if (n > device_bytes() - d.used || d.used > device_bytes()) return ret(cudaErrorMemoryAllocation);
    void *m = NULL;
    // 256-byte aligned as cudaMalloc's are; exactly n bytes, so that
    // AddressSanitizer sees a read one past the end
    if (posix_memalign(&m, 256, n) != 0) return ret(cudaErrorMemoryAllocation);
    memset(m, 0xa5, n); // device memory starts as garbage, not zeros
    d.live[(uintptr_t)m] = n;
    d.used += n;
    if (d.used > d.peak) d.peak = d.used;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    Device &d = dev();
    if (forbidden_in_capture("cudaFree")) return ret(cudaErrorStreamCaptureUnsupported);
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.live.find((uintptr_t)p);
    if (it == d.live.end()) {
        fprintf(stderr, "sdc emulated device: cudaFree(%p): not a live device allocation\n", p);
        return ret(cudaErrorInvalidDevicePointer);
    }
    d.used -= it->second;
    d.live.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n) {
    if (!p) return ret(cudaErrorInvalidValue);
    *p = NULL;
    if (forbidden_in_capture("cudaMallocHost")) return ret(cudaErrorStreamCaptureUnsupported);
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : ret(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p) {
    if (forbidden_in_capture("cudaFreeHost")) return ret(cudaErrorStreamCaptureUnsupported);
    free(p);
    return cudaSuccess;
}

static cudaError_t memcpy_on(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s,
                             const char *what) {
    if (n == 0) return ready() == cudaSuccess ? cudaSuccess : ret(ready());
    if (!dst || !src) return ret(cudaErrorInvalidValue);
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    e = check_copy(dst, src, n, kind);
    if (e != cudaSuccess) return ret(e);
    return submit(s, what, [=]() {
        memmove(dst, src, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    if (forbidden_in_capture("cudaMemcpy")) return ret(cudaErrorStreamCaptureImplicit);
    return memcpy_on(dst, src, n, kind, NULL, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    return memcpy_on(dst, src, n, kind, s, "cudaMemcpyAsync");
}

static cudaError_t memset_on(void *p, int v, size_t n, cudaStream_t s, const char *what) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (n == 0) return cudaSuccess;
    if (!device_range(p, n)) {
        fprintf(stderr, "sdc emulated device: %s of %zu bytes at %p: not inside a device allocation\n", what, n, p);
        return ret(cudaErrorInvalidValue);
    }
    return submit(s, what, [=]() {
        memset(p, v, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (forbidden_in_capture("cudaMemset")) return ret(cudaErrorStreamCaptureImplicit);
    return memset_on(p, v, n, NULL, "cudaMemset");
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) { return memset_on(p, v, n, s, "cudaMemsetAsync"); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    if (!s || flags > 1) return ret(cudaErrorInvalidValue);
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    *s = new CUstream_st;
    std::lock_guard<std::mutex> lock(dev().mu);
    dev().streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || !live_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    {
        std::lock_guard<std::mutex> lock(dev().mu);
        dev().streams.erase(s);
        if (s->capturing && s->mode == cudaStreamCaptureModeGlobal) dev().capture_global = false;
    }
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (!live_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    if (s && s->capturing) {
        s->invalidated = true;
        fprintf(stderr, "sdc emulated device: cudaStreamSynchronize on a stream being captured\n");
        return ret(cudaErrorStreamCaptureUnsupported);
    }
    if (forbidden_in_capture("cudaStreamSynchronize")) return ret(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess; // work ran when it was issued
}

cudaError_t cudaDeviceSynchronize(void) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (forbidden_in_capture("cudaDeviceSynchronize")) return ret(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}

cudaError_t cudaDeviceReset(void) {
    Device &d = dev();
    std::lock_guard<std::mutex> lock(d.mu);
    for (auto &a : d.live) free((void *)a.first);
    d.live.clear();
    d.used = 0;
    d.sticky = d.last = cudaSuccess;
    d.capture_global = false;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    if (!e) return ret(cudaErrorInvalidValue);
    cudaError_t r = ready();
    if (r != cudaSuccess) return ret(r);
    *e = new CUevent_st;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return ret(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return ret(cudaErrorInvalidResourceHandle);
    return submit(s, "cudaEventRecord", [=]() {
        e->recorded = true;
        e->at = std::chrono::steady_clock::now();
        return cudaSuccess;
    });
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return ret(cudaErrorInvalidResourceHandle);
    return ready() == cudaSuccess ? cudaSuccess : ret(ready());
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!ms || !a || !b) return ret(cudaErrorInvalidValue);
    if (!a->recorded || !b->recorded) return ret(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    if (!e || flags) return ret(cudaErrorInvalidValue);
    return submit(s, "cudaStreamWaitEvent", []() { return cudaSuccess; }); // one order: nothing to wait for
}

namespace sdc_emu {
// cudaFuncSetAttribute(MaxDynamicSharedMemorySize) per kernel, read by launch
std::map<const void *, int> &func_smem() {
    static std::map<const void *, int> *m = new std::map<const void *, int>;
    return *m;
}
} // namespace sdc_emu

cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute attr, int value) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (!fn || attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return ret(cudaErrorInvalidValue);
    if (value < 0 || value > (227 << 10)) return ret(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(dev().mu);
    func_smem()[fn] = value;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    cudaError_t e = ready();
    if (e != cudaSuccess) return ret(e);
    if (!s) return ret(cudaErrorStreamCaptureUnsupported); // the legacy stream cannot be captured
    if (!live_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    if (s->capturing) return ret(cudaErrorIllegalState);
    s->capturing = true;
    s->invalidated = false;
    s->mode = mode;
    s->recorded.clear();
    if (mode == cudaStreamCaptureModeGlobal) dev().capture_global = true;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    if (!g) return ret(cudaErrorInvalidValue);
    *g = NULL;
    if (!s || !live_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    if (!s->capturing) return ret(cudaErrorStreamCaptureUnmatched);
    s->capturing = false;
    if (s->mode == cudaStreamCaptureModeGlobal) dev().capture_global = false;
    if (s->invalidated) {
        s->recorded.clear();
        return ret(cudaErrorStreamCaptureInvalidated);
    }
    *g = new CUgraph_st;
    (*g)->work.swap(s->recorded);
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
    if (!st) return ret(cudaErrorInvalidValue);
    if (!live_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    *st = !s || !s->capturing ? cudaStreamCaptureStatusNone
          : s->invalidated    ? cudaStreamCaptureStatusInvalidated
                              : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    if (!exec || !g || flags) return ret(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st;
    (*exec)->work = g->work;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) return ret(cudaErrorInvalidResourceHandle);
    for (const auto &w : exec->work) {
        cudaError_t e = submit(s, "cudaGraphLaunch", w);
        if (e != cudaSuccess) return ret(e);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
