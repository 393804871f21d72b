// planted.cu - the self-test of the emulated device: kernels written as
// sdc's are (port.h, SDC_LAUNCH), each in a correct form and with one bug
// planted, and a check that the emulation reports every planted bug the way
// the suite or the sanitizer build would meet it. Run one case per process:
//   emu_selftest CASE   (SDC_CUDA_EMU=1 is set by the program itself)
// Exit 0: the correct kernels give the right answer / the runtime behaves
// (case "correct", "runtime"); for a planted case, exit 3 with "caught: ..."
// when the emulation or the comparison caught the bug, 0 with "MISSED"
// when it went through. Out-of-bounds reads are caught by AddressSanitizer
// (emu_selftest_asan), which aborts the process with its own report, and
// races on shared memory by ThreadSanitizer (emu_selftest_tsan), which
// reports each data race and exits 66.
// tests/emu/selftest.sh runs every case and checks each outcome.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port.h"

#define TILE 16

enum Bug { NONE, OFF_BY_ONE_TILE, MISSING_SYNC, DIVERGENT_BARRIER, OOB_READ };

// C (m x n) = A (m x k) B (k x n), row-major, 16x16 tiles in shared memory:
// the classic tiled product, with the planted bugs switched in by `bug`.
__global__ void tiled_matmul(float *c, const float *a, const float *b, int m, int n, int k, int bug) {
    __shared__ float sa[TILE][TILE + 1];
    __shared__ float sb[TILE][TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    // the number of k tiles: rounded up; the planted bug rounds down and
    // drops the last, partial tile
    const int tiles = bug == OFF_BY_ONE_TILE ? k / TILE : (k + TILE - 1) / TILE;
    float acc = 0.0f;
    for (int t = 0; t < tiles; t++) {
        const int ka = t * TILE + tx, kb = t * TILE + ty;
        sa[ty][tx] = row < m && ka < k ? a[(size_t)row * k + ka] : 0.0f;
        sb[ty][tx] = kb < k && col < n ? b[(size_t)kb * n + col] : 0.0f;
        if (bug == DIVERGENT_BARRIER) {
            if (tx < TILE / 2) __syncthreads(); // only half the block arrives here
            else __syncthreads();
        } else if (bug != MISSING_SYNC) {
            __syncthreads();
        }
        for (int j = 0; j < TILE; j++) acc += sa[ty][j] * sb[j][tx];
        __syncthreads();
    }
    if (row < m && col < n) c[(size_t)row * n + col] = acc;
}

// y[i] = x[i] + x[i + 1] for i < n - 1 and y[n - 1] = x[n - 1]; the planted
// bug drops the guard and reads x[n]
__global__ void pair_sum(float *y, const float *x, int n, int bug) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    y[i] = x[i] + (i + 1 < n || bug == OOB_READ ? x[i + 1] : 0.0f);
}

// D = A B + C with A's fragments built per the PTX ISA's table; swap: the
// planted bug exchanges groupID and thread-in-group for A's rows and columns
__global__ void mma_direct(float *d, const uint16_t *a, const uint16_t *b, const float *c, int swap) {
    const int lane = sdc_lane();
    const int g = swap ? lane % 8 : lane / 4, t = swap ? lane / 8 : lane % 4;
    const int gb = lane / 4, tb = lane % 4;
    uint32_t ra[4], rb[2];
    float rc[4], rd[4];
    for (int r = 0; r < 4; r++) {
        const int row = g + 8 * (r % 2), col = 2 * t + 8 * (r / 2);
        ra[r] = (uint32_t)a[row * 16 + col] | ((uint32_t)a[row * 16 + col + 1] << 16);
    }
    for (int r = 0; r < 2; r++) {
        const int k = 2 * tb + 8 * r;
        rb[r] = (uint32_t)b[k * 8 + gb] | ((uint32_t)b[(k + 1) * 8 + gb] << 16);
    }
    for (int i = 0; i < 4; i++) rc[i] = c[(gb + 8 * (i / 2)) * 8 + 2 * tb + i % 2];
    sdc_mma_m16n8k16_bf16(rd, ra, rb, rc);
    for (int i = 0; i < 4; i++) d[(gb + 8 * (i / 2)) * 8 + 2 * tb + i % 2] = rd[i];
}

// y[i] = x[i - 1] (y[0] = 0) through shared memory; the planted bug leaves
// out the barrier between the store and the load. Threads that run in order
// still read what the thread before them stored, so the answer is right and
// only the race detector (the ThreadSanitizer build) sees the bug.
__global__ void shift_right(float *y, const float *x, int bug) {
    __shared__ float s[64];
    const int i = threadIdx.x;
    s[i] = x[i];
    if (!bug) __syncthreads();
    y[i] = i ? s[i - 1] : 0.0f;
}

// a warp sum by shuffles; the planted bug lets lanes 16..31 leave first
__global__ void warp_sum(float *y, const float *x, int bug) {
    float v = x[threadIdx.x];
    if (bug && threadIdx.x >= 16) return;
    for (int o = 16; o > 0; o >>= 1) v += sdc_shfl_xor(0xffffffffu, v, o);
    if (threadIdx.x == 0) y[0] = v;
}

#define CHECK(call)                                                                                            \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess) {                                                                               \
            printf("%s: %s (%s)\n", #call, cudaGetErrorName(e_), cudaGetErrorString(e_));                     \
            return e_;                                                                                         \
        }                                                                                                      \
    } while (0)

static float *upload(const float *h, size_t n) {
    float *d = NULL;
    if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) return NULL;
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

static float rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) % 2001u) / 1000.0f - 1.0f;
}

// the tiled product of 37x41 by 41x29 (no dimension a multiple of the tile)
// against a host loop; returns the launch error or the worst error in *err
static cudaError_t run_matmul(int bug, double *err) {
    const int m = 37, k = 41, n = 29;
    float ha[m * k], hb[k * n], hc[m * n], want[m * n];
    unsigned s = 7;
    for (float &v : ha) v = rnd(&s);
    for (float &v : hb) v = rnd(&s);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int q = 0; q < k; q++) acc += (double)ha[i * k + q] * hb[q * n + j];
            want[i * n + j] = (float)acc;
        }
    float *da = upload(ha, m * k), *db = upload(hb, k * n), *dc = NULL;
    CHECK(cudaMalloc(&dc, sizeof hc));
    // two launches, so that stale shared memory is the other product's
    for (int rep = 0; rep < 2; rep++) {
        if (rep == 1) {
            for (float &v : ha) v = -v;
            for (float &v : want) v = -v;
            CHECK(cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice));
        }
        CHECK(SDC_LAUNCH(tiled_matmul, dim3((n + TILE - 1) / TILE, (m + TILE - 1) / TILE), dim3(TILE, TILE), 0,
                         (cudaStream_t)NULL, dc, da, db, m, n, k, bug));
        CHECK(cudaMemcpy(hc, dc, sizeof hc, cudaMemcpyDeviceToHost));
    }
    *err = 0;
    for (int i = 0; i < m * n; i++) *err = fmax(*err, fabs((double)hc[i] - want[i]));
    cudaFree(da), cudaFree(db), cudaFree(dc);
    return cudaSuccess;
}

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static cudaError_t run_mma(int swap, int *wrong) {
    uint16_t ha[256], hb[128];
    float fa[256], fb[128], hc[128], hd[128];
    unsigned s = 11;
    for (int i = 0; i < 256; i++) fa[i] = (float)((int)(rnd(&s) * 8)), ha[i] = bf16(fa[i]);
    for (int i = 0; i < 128; i++) fb[i] = (float)((int)(rnd(&s) * 8)), hb[i] = bf16(fb[i]);
    for (int i = 0; i < 128; i++) hc[i] = (float)((int)(rnd(&s) * 50));
    uint16_t *da = NULL, *db = NULL;
    float *dc = upload(hc, 128), *dd = NULL;
    CHECK(cudaMalloc(&da, sizeof ha));
    CHECK(cudaMalloc(&db, sizeof hb));
    CHECK(cudaMalloc(&dd, sizeof hd));
    CHECK(cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice));
    CHECK(SDC_LAUNCH(mma_direct, 1, 32, 0, (cudaStream_t)NULL, dd, da, db, dc, swap));
    CHECK(cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost));
    *wrong = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float want = hc[i * 8 + j];
            for (int q = 0; q < 16; q++) want += fa[i * 16 + q] * fb[q * 8 + j];
            if (hd[i * 8 + j] != want) ++*wrong;
        }
    cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
    return cudaSuccess;
}

static cudaError_t run_pair_sum(int bug) {
    const int n = 100;
    float h[n], y[n];
    for (int i = 0; i < n; i++) h[i] = (float)i;
    float *dx = upload(h, n), *dy = NULL;
    CHECK(cudaMalloc(&dy, sizeof y));
    CHECK(SDC_LAUNCH(pair_sum, 1, 128, 0, (cudaStream_t)NULL, dy, dx, n, bug));
    CHECK(cudaMemcpy(y, dy, sizeof y, cudaMemcpyDeviceToHost));
    cudaFree(dx), cudaFree(dy);
    return cudaSuccess;
}

static cudaError_t run_warp_sum(int bug, float *got) {
    float h[32];
    for (int i = 0; i < 32; i++) h[i] = (float)i;
    float *dx = upload(h, 32), *dy = NULL;
    CHECK(cudaMalloc(&dy, sizeof(float)));
    CHECK(SDC_LAUNCH(warp_sum, 1, 32, 0, (cudaStream_t)NULL, dy, dx, bug));
    CHECK(cudaMemcpy(got, dy, sizeof(float), cudaMemcpyDeviceToHost));
    cudaFree(dx), cudaFree(dy);
    return cudaSuccess;
}

static cudaError_t run_shift(int bug, int *wrong) {
    float h[64], y[64];
    for (int i = 0; i < 64; i++) h[i] = (float)(i + 1);
    float *dx = upload(h, 64), *dy = NULL;
    CHECK(cudaMalloc(&dy, sizeof y));
    CHECK(SDC_LAUNCH(shift_right, 1, 64, 0, (cudaStream_t)NULL, dy, dx, bug));
    CHECK(cudaMemcpy(y, dy, sizeof y, cudaMemcpyDeviceToHost));
    *wrong = 0;
    for (int i = 0; i < 64; i++) *wrong += y[i] != (float)i;
    cudaFree(dx), cudaFree(dy);
    return cudaSuccess;
}

// The runtime calls the backends use and the ones to come: out of memory at
// the configured device size, invalid launches, stream capture and replay,
// the sticky error after a failed launch. 0 when all behave.
static int runtime_checks(void) {
    int bad = 0;
#define EXPECT(cond, ...)                                                                                      \
    do {                                                                                                       \
        if (!(cond)) {                                                                                         \
            printf("runtime: " __VA_ARGS__);                                                                   \
            printf("\n");                                                                                      \
            bad++;                                                                                             \
        }                                                                                                      \
    } while (0)
    size_t free_b = 0, total_b = 0;
    EXPECT(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b == ((size_t)64 << 20),
           "cudaMemGetInfo total %zu, want 64 MiB (SDC_CUDA_EMU_MEM_MB=64)", total_b);
    void *p = NULL, *q = NULL;
    EXPECT(cudaMalloc(&p, (size_t)48 << 20) == cudaSuccess, "48 MiB of 64 not allocated");
    EXPECT(cudaMalloc(&q, (size_t)32 << 20) == cudaErrorMemoryAllocation, "32 more MiB did not run out of memory");
    EXPECT(cudaGetLastError() == cudaErrorMemoryAllocation, "cudaGetLastError after the failed cudaMalloc");
    EXPECT(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not clear");
    EXPECT(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && free_b == ((size_t)16 << 20),
           "free %zu after 48 MiB, want 16 MiB", free_b);
    EXPECT(cudaMemcpy((char *)p + ((size_t)48 << 20) - 8, p, 16, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue,
           "a copy past the end of an allocation was not refused");
    cudaGetLastError();
    cudaFree(p);
    float one = 1.0f, *d = upload(&one, 1), got = 0;
    EXPECT(SDC_LAUNCH(warp_sum, 1, 2048, 0, (cudaStream_t)NULL, d, d, 0) == cudaErrorInvalidConfiguration,
           "a 2048-thread block was launched");
    cudaGetLastError();
    // a launch captured on a stream runs only when its graph is launched,
    // and again at every launch (emulated device memory is host memory, so
    // the host reads it directly while the capture is open)
    cudaStream_t s;
    EXPECT(cudaStreamCreate(&s) == cudaSuccess, "cudaStreamCreate");
    float h[32];
    for (int i = 0; i < 32; i++) h[i] = 1.0f;
    float *dx = upload(h, 32), *dy = NULL;
    cudaMalloc(&dy, sizeof(float));
    cudaMemset(dy, 0, sizeof(float));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess, "cudaStreamBeginCapture");
    EXPECT(SDC_LAUNCH(warp_sum, 1, 32, 0, s, dy, dx, 0) == cudaSuccess, "launch while capturing");
    EXPECT(*dy == 0.0f, "a captured launch ran at capture time");
    EXPECT(cudaStreamEndCapture(s, &graph) == cudaSuccess, "cudaStreamEndCapture");
    EXPECT(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "cudaGraphInstantiate");
    EXPECT(*dy == 0.0f, "the captured launch ran before its graph");
    for (int rep = 0; rep < 2; rep++) {
        cudaMemset(dy, 0, sizeof(float));
        EXPECT(cudaGraphLaunch(exec, s) == cudaSuccess && cudaStreamSynchronize(s) == cudaSuccess,
               "cudaGraphLaunch");
        cudaMemcpy(&got, dy, sizeof got, cudaMemcpyDeviceToHost);
        EXPECT(got == 32.0f, "replay %d of the graph gave %g, want 32", rep, got);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    // a synchronous copy during a global-mode capture is refused and
    // invalidates the capture, as on a GPU
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess, "cudaStreamBeginCapture");
    EXPECT(cudaMemcpy(&got, dy, sizeof got, cudaMemcpyDeviceToHost) != cudaSuccess,
           "cudaMemcpy during a global capture was allowed");
    EXPECT(cudaStreamEndCapture(s, &graph) != cudaSuccess, "an invalidated capture ended as a graph");
    cudaGetLastError();
    cudaStreamDestroy(s);
    // after a failed launch every call fails, as a lost GPU context does
    EXPECT(SDC_LAUNCH(warp_sum, 1, 32, 0, (cudaStream_t)NULL, dy, dx, 1) == cudaErrorLaunchFailure,
           "the divergent shuffle did not fail its launch");
    EXPECT(cudaMemcpy(&got, dy, sizeof got, cudaMemcpyDeviceToHost) == cudaErrorLaunchFailure,
           "a copy after a failed launch did not fail");
    return bad;
}

// fp16/bf16 conversions as cuda_fp16.h / cuda_bf16.h make them (round to
// nearest even); the fp16 values are IEEE binary16's (Python's struct 'e'
// gives the same bits). 0 when all hold.
static int conversion_checks(void) {
    const struct {
        float f;
        uint16_t h;
    } f16[] = {{1.0f / 3.0f, 0x3555}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00},
               {-1e6f, 0xfc00},       {5.9604645e-8f, 0x0001}, {2.9802322e-8f, 0x0000}, {4.4703484e-8f, 0x0001},
               {6.1035156e-5f, 0x0400}, {0.1f, 0x2e66}, {-2.5f, 0xc100}, {1e-8f, 0x0000},
               {1.00048828125f, 0x3c00}, {1.00146484375f, 0x3c02}, {-0.0f, 0x8000}};
    int bad = 0;
    for (const auto &c : f16) {
        const uint16_t got = __half_as_ushort(__float2half(c.f));
        if (got != c.h) printf("conversions: __float2half(%.9g) = 0x%04x, want 0x%04x\n", (double)c.f, got, c.h), bad++;
    }
    if (!(__half_as_ushort(__float2half(NAN)) & 0x3ff) || (__half_as_ushort(__float2half(NAN)) & 0x7c00) != 0x7c00)
        printf("conversions: __float2half(NaN) is not a NaN\n"), bad++;
    // every binary16 value goes to float and back unchanged (NaNs stay NaNs)
    for (unsigned u = 0; u < 65536; u++) {
        const __half h = __ushort_as_half((unsigned short)u);
        const float f = __half2float(h);
        const uint16_t back = __half_as_ushort(__float2half(f));
        const bool nan = (u & 0x7c00) == 0x7c00 && (u & 0x3ff);
        if (nan ? !(f != f) : back != u) {
            if (bad++ < 4) printf("conversions: half 0x%04x -> %.9g -> 0x%04x\n", u, (double)f, back);
        }
    }
    const struct {
        float f;
        uint16_t b;
    } bf[] = {{1.0f / 3.0f, 0x3eab}, {1.00390625f, 0x3f80}, {1.01171875f, 0x3f82}, {-2.5f, 0xc020}, {3.4e38f, 0x7f80}};
    for (const auto &c : bf) {
        const uint16_t got = __bfloat16_as_ushort(__float2bfloat16(c.f));
        if (got != c.b)
            printf("conversions: __float2bfloat16(%.9g) = 0x%04x, want 0x%04x\n", (double)c.f, got, c.b), bad++;
    }
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: emu_selftest correct|conversions|runtime|off_by_one_tile|swapped_lanes|missing_sync|"
                        "racy_shift|divergent_barrier|divergent_shuffle|oob_read\n");
        return 2;
    }
    setenv("SDC_CUDA_EMU", "1", 1);
    const char *c = argv[1];
    double err = 0;
    int wrong = 0;
    if (!strcmp(c, "correct")) {
        float got = 0;
        if (run_matmul(NONE, &err) || err > 1e-5) return printf("tiled_matmul: error %g\n", err), 1;
        if (run_mma(0, &wrong) || wrong) return printf("mma_direct: %d wrong\n", wrong), 1;
        if (run_pair_sum(NONE)) return 1;
        if (run_warp_sum(0, &got) || got != 496.0f) return printf("warp_sum: %g\n", got), 1;
        if (run_shift(0, &wrong) || wrong) return printf("shift_right: %d wrong\n", wrong), 1;
        printf("correct kernels: right answers\n");
        return 0;
    }
    if (!strcmp(c, "conversions")) {
        int bad = conversion_checks();
        if (!bad) printf("conversions: fp16 and bf16 as CUDA rounds them\n");
        return bad ? 1 : 0;
    }
    if (!strcmp(c, "runtime")) {
        setenv("SDC_CUDA_EMU_MEM_MB", "64", 1);
        int bad = runtime_checks();
        if (!bad) printf("runtime: every check held\n");
        return bad ? 1 : 0;
    }
    cudaError_t e = cudaSuccess;
    if (!strcmp(c, "off_by_one_tile") || !strcmp(c, "missing_sync")) {
        e = run_matmul(c[0] == 'o' ? OFF_BY_ONE_TILE : MISSING_SYNC, &err);
        if (!e && err > 1e-5) return printf("caught: tiled_matmul differs from the host product by %g\n", err), 3;
    } else if (!strcmp(c, "swapped_lanes")) {
        e = run_mma(1, &wrong);
        if (!e && wrong) return printf("caught: mma_direct: %d of 128 elements of D wrong\n", wrong), 3;
    } else if (!strcmp(c, "racy_shift")) {
        e = run_shift(1, &wrong);
        if (!e && wrong) return printf("caught: shift_right: %d of 64 wrong\n", wrong), 3;
    } else if (!strcmp(c, "divergent_barrier")) {
        e = run_matmul(DIVERGENT_BARRIER, &err);
    } else if (!strcmp(c, "divergent_shuffle")) {
        float got = 0;
        e = run_warp_sum(1, &got);
    } else if (!strcmp(c, "oob_read")) {
        e = run_pair_sum(OOB_READ);
    } else {
        fprintf(stderr, "emu_selftest: unknown case '%s'\n", c);
        return 2;
    }
    if (e == cudaErrorLaunchFailure) return printf("caught: the launch failed (the report is above)\n"), 3;
    printf("MISSED: %s ran to the end unreported (%s)\n", c, cudaGetErrorName(e));
    return 0;
}
