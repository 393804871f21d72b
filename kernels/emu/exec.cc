// exec.cc - how a kernel launch runs on the host (see emu.h): blocks one
// after another, the threads of a block as fibers switched at
// barriers, warp operations and exit; warp collectives computed once all
// lanes of the mask arrive; the checks that turn a hang or a silent wrong
// answer on a GPU into a reported launch failure.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "emu/emu.h"
#include "emu/profile.h"

#if defined(__SANITIZE_ADDRESS__)
#define SDC_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SDC_EMU_ASAN 1
#endif
#endif
#ifdef SDC_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

// SDC_EMU_TSAN (the self-test's ThreadSanitizer build: the kernels are
// instrumented, this file is not): every emulated thread is a TSan fibre,
// switched without synchronisation, so that only what orders threads on a
// GPU orders them here: the start and end of a block, __syncthreads(),
// __syncwarp(). A shared-memory access that two threads make between two
// barriers, one of them a write, is then reported as a data race.
#ifdef SDC_EMU_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_read_range(void *addr, unsigned long size);
extern "C" void __tsan_write_range(void *addr, unsigned long size);
#define TSAN(...) __VA_ARGS__
#else
#define TSAN(...)
#endif

namespace sdc_emu {

// --- fiber contexts -------------------------------------------------------
// On x86-64 a switch saves the callee-saved registers on the old stack and
// loads them from the new one (no system call: ucontext's swapcontext saves
// the signal mask with one, which made switches cost more than the work);
// elsewhere ucontext. The SSE and x87 control words are not switched: every
// fiber runs with the launching thread's, and no kernel changes them
// (fnstcw/fldcw were most of a switch's cost).
#if defined(__x86_64__)
#define SDC_EMU_FAST_SWITCH 1
extern "C" void sdc_emu_switch(void **save_sp, void *load_sp);
__asm__(".text\n"
        ".p2align 4\n"
        ".type sdc_emu_switch,@function\n"
        "sdc_emu_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size sdc_emu_switch,.-sdc_emu_switch\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
#endif

struct Context {
#ifdef SDC_EMU_FAST_SWITCH
    void *sp = nullptr;
#else
    ucontext_t uc;
#endif
    void *stack = nullptr;
    size_t stack_size = 0;
};

// getcontext returns twice; kept out of its callers' loops
__attribute__((noinline)) static void ctx_make(Context *c, unsigned char *stack, size_t size, void (*fn)()) {
    c->stack = stack;
    c->stack_size = size;
#ifdef SDC_EMU_FAST_SWITCH
    // top: a zero return address for fn, fn for sdc_emu_switch's ret, then
    // the six callee-saved registers it pops
    uint64_t *top = (uint64_t *)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    uint64_t *sp = top - 2 - 6;
    memset(sp, 0, 6 * sizeof *sp);
    top[-1] = 0;
    top[-2] = (uint64_t)(uintptr_t)fn;
    c->sp = sp;
#else
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, fn, 0);
#endif
}

static inline void ctx_switch(Context *from, Context *to) {
#ifdef SDC_EMU_FAST_SWITCH
    sdc_emu_switch(&from->sp, to->sp);
#else
    swapcontext(&from->uc, &to->uc);
#endif
}

enum State { READY, AT_BARRIER, AT_WARP, DONE };

struct Copy {
    void *dst;
    const void *src;
    size_t n;
};

struct Thread {
    Context ctx;
    uint3 idx;
    int linear, warp, lane;
    State state;
    const char *file;
    int line;
    std::vector<Copy> pending;       // issued cp.async, oldest first
    std::vector<size_t> group_end;   // committed groups: end index in pending
    unsigned char in[SLOT], out[SLOT];
    void *tsan;                      // its TSan fibre (SDC_EMU_TSAN)
};

struct Warp {
    unsigned arrived;  // lanes waiting at the current collective
    unsigned mask;     // its mask
    const char *op, *file;
    int line;
    collective_fn fn;
    size_t out_n;
    unsigned gen;      // __syncwarp rounds, and their TSan sync objects
    char sync[2];
};

struct Block {
    const char *kernel;
    uint3 idx;
    dim3 dim, grid;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    std::vector<unsigned char> dyn;
    int at_barrier, done;
    const char *bar_file;
    int bar_line;
    std::string error;
    Context sched;
    const std::function<void()> *body;
    // SDC_EMU_TSAN: the scheduler's fibre; sync objects for the block's start
    // and end and for its barriers (two in turn: a thread may release the
    // next barrier before another has acquired this one)
    void *tsan_sched;
    char sync_start, sync_done, sync_bar[2];
    unsigned bar_gen = 0;
};

thread_local Thread *cur_thread;
thread_local Block *cur_block;

// Fiber stacks, reused from launch to launch, each with a guard page below.
struct Stacks {
    std::vector<unsigned char *> base;
    size_t size = 0;
    ~Stacks() {
        for (unsigned char *b : base) munmap(b, size + (size_t)getpagesize());
    }
};
static thread_local Stacks stacks;

static size_t stack_size() {
#ifdef SDC_EMU_ASAN
    return (size_t)1 << 20;
#else
    return (size_t)256 << 10;
#endif
}

static unsigned char *stack_for(size_t i) {
    if (stacks.size == 0) stacks.size = stack_size();
    while (stacks.base.size() <= i) {
        size_t page = (size_t)getpagesize();
        void *p = mmap(NULL, stacks.size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        mprotect(p, page, PROT_NONE);
        stacks.base.push_back((unsigned char *)p);
    }
    return stacks.base[i] + getpagesize();
}

const uint3 &thread_idx() { return cur_thread->idx; }
const uint3 &block_idx() { return cur_block->idx; }
const dim3 &block_dim() { return cur_block->dim; }
const dim3 &grid_dim() { return cur_block->grid; }
void *dynamic_shared() { return cur_block->dyn.empty() ? NULL : cur_block->dyn.data(); }

static void fail(const char *fmt, ...) {
    Block *b = cur_block;
    if (!b->error.empty()) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char where[640];
    if (cur_thread)
        snprintf(where, sizeof where, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s", b->kernel, b->idx.x,
                 b->idx.y, b->idx.z, cur_thread->idx.x, cur_thread->idx.y, cur_thread->idx.z, msg);
    else
        snprintf(where, sizeof where, "kernel %s, block (%u,%u,%u): %s", b->kernel, b->idx.x, b->idx.y, b->idx.z,
                 msg);
    b->error = where;
}

// The next thread after t (in order, wrapping) that can run, or none.
static Thread *next_ready(Block *b, Thread *t) {
    const size_t n = b->threads.size();
    for (size_t k = 1; k <= n; k++) {
        Thread *u = &b->threads[(t->linear + k) % n];
        if (u->state == READY) return u;
    }
    return NULL;
}

// The running fiber stops (at a barrier, a warp operation or its end) and
// switches straight to the next thread that can run, in thread order, so a
// round of a barrier costs one switch per thread; to the scheduler only when
// none can (every thread has exited, or they wait for each other) or a check
// failed.
static void yield(State s) {
    Thread *t = cur_thread;
    Block *b = cur_block;
    t->state = s;
    Thread *u = b->error.empty() ? next_ready(b, t) : NULL;
    Context *to = u ? &u->ctx : &b->sched;
#ifdef SDC_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(s == DONE ? NULL : &fake, u ? u->ctx.stack : NULL, u ? u->ctx.stack_size : 0);
#endif
    if (u) counters.resumes++;
    cur_thread = u;
    TSAN(__tsan_switch_to_fiber(u ? u->tsan : b->tsan_sched, __tsan_switch_to_fiber_no_sync));
    ctx_switch(&t->ctx, to);
    cur_thread = t;
#ifdef SDC_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void finish_copies(Thread *t, size_t upto);

static void entry() {
#ifdef SDC_EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    TSAN(__tsan_acquire(&cur_block->sync_start));
    (*cur_block->body)();
    finish_copies(cur_thread, cur_thread->pending.size());
    TSAN(__tsan_release(&cur_block->sync_done));
    cur_block->done++;
    yield(DONE);
}

// From the scheduler: run threads from t on until none can run.
static void run(Block *b, Thread *t) {
    cur_thread = t;
    counters.resumes++;
#ifdef SDC_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->ctx.stack, t->ctx.stack_size);
#endif
    TSAN(__tsan_switch_to_fiber(t->tsan, __tsan_switch_to_fiber_no_sync));
    ctx_switch(&b->sched, &t->ctx);
#ifdef SDC_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    cur_thread = NULL;
}

// __FILE__ of one translation unit is one pointer; compare text only when not
static inline bool same_file(const char *a, const char *b) { return a == b || strcmp(a, b) == 0; }

// "file:line"; two buffers in turn, as one message names two places
static const char *where(const char *file, int line) {
    static thread_local char buf[2][300];
    static thread_local int turn;
    char *b = buf[turn ^= 1];
    const char *slash = strrchr(file, '/');
    snprintf(b, sizeof buf[0], "%s:%d", slash ? slash + 1 : file, line);
    return b;
}

// Nobody can run: say who waits for whom.
static void stuck(Block *b) {
    for (Thread &t : b->threads) {
        if (t.state == AT_BARRIER) {
            for (Thread &u : b->threads)
                if (u.state == DONE) {
                    cur_thread = &t;
                    fail("__syncthreads() at %s is never reached by thread (%u,%u,%u), which exited "
                         "(a barrier in divergent code)",
                         where(t.file, t.line), u.idx.x, u.idx.y, u.idx.z);
                    cur_thread = NULL;
                    return;
                }
        }
        if (t.state == AT_WARP) {
            Warp &w = b->warps[t.warp];
            for (int l = 0; l < 32; l++) {
                if (!(w.mask >> l & 1u)) continue;
                int i = t.warp * 32 + l;
                if (i >= (int)b->threads.size()) continue;
                Thread &u = b->threads[i];
                if (u.state != AT_WARP) {
                    cur_thread = &t;
                    fail("%s at %s waits for lane %d of its mask 0x%08x, which %s", w.op, where(w.file, w.line), l,
                         w.mask, u.state == DONE ? "exited" : "waits at a __syncthreads()");
                    cur_thread = NULL;
                    return;
                }
            }
        }
    }
    fail("no thread can proceed");
}

static bool run_threads(Block *b);

static bool run_block(Block *b) {
    const size_t n = b->threads.size();
    for (size_t i = 0; i < n; i++) {
        Thread &t = b->threads[i];
        unsigned char *st = stack_for(i);
        if (!st) {
            fail("no memory for %zu thread stacks", n);
            return false;
        }
        // the tops of the stacks are colored (a different offset in a 4 KiB
        // page each) so that the threads' frames do not all map to the same
        // cache sets: that made a switch's register pops miss every time
        const size_t color = (i * 320) % 4096;
        ctx_make(&t.ctx, st, stacks.size - color, entry);
        t.state = READY;
        t.pending.clear();
        t.group_end.clear();
#ifdef SDC_EMU_TSAN
        t.tsan = __tsan_create_fiber(0);
        char name[96];
        snprintf(name, sizeof name, "%s block (%u,%u,%u) thread (%u,%u,%u)", b->kernel, b->idx.x, b->idx.y,
                 b->idx.z, t.idx.x, t.idx.y, t.idx.z);
        __tsan_set_fiber_name(t.tsan, name);
#endif
    }
    b->at_barrier = b->done = 0;
    TSAN(b->tsan_sched = __tsan_get_current_fiber(); __tsan_release(&b->sync_start));
    const bool ok = run_threads(b);
    TSAN(__tsan_acquire(&b->sync_done); for (Thread &t : b->threads) __tsan_destroy_fiber(t.tsan));
    return ok;
}

static bool run_threads(Block *b) {
    const size_t n = b->threads.size();
    for (;;) {
        bool ran = false;
        for (size_t i = 0; i < n && b->error.empty(); i++)
            if (b->threads[i].state == READY) {
                run(b, &b->threads[i]);
                ran = true;
            }
        if (!b->error.empty()) return false;
        if (b->done == (int)n) return true;
        if (!ran) {
            stuck(b);
            return false;
        }
    }
}

std::map<const void *, int> &func_smem(); // runtime.cc

static cudaError_t run_grid_(const char *name, dim3 grid, dim3 block, size_t shmem,
                             const std::function<void()> &body);

static cudaError_t run_grid(const char *name, dim3 grid, dim3 block, size_t shmem,
                            const std::function<void()> &body) {
    return profiled(name, grid, block, [&]() { return run_grid_(name, grid, block, shmem, body); });
}

static cudaError_t run_grid_(const char *name, dim3 grid, dim3 block, size_t shmem,
                             const std::function<void()> &body) {
    const size_t nthreads = (size_t)block.x * block.y * block.z;
    const size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    Block b;
    b.kernel = name;
    b.dim = block;
    b.grid = grid;
    b.body = &body;
    b.threads.resize(nthreads);
    b.warps.assign((nthreads + 31) / 32, Warp());
    for (size_t i = 0; i < nthreads; i++) {
        Thread &t = b.threads[i];
        t.idx.x = (unsigned)(i % block.x);
        t.idx.y = (unsigned)(i / block.x % block.y);
        t.idx.z = (unsigned)(i / ((size_t)block.x * block.y));
        t.linear = (int)i;
        t.warp = (int)(i / 32);
        t.lane = (int)(i % 32);
    }
    Block *saved_block = cur_block;
    Thread *saved_thread = cur_thread;
    cur_block = &b;
    cudaError_t rc = cudaSuccess;
    for (size_t k = 0; k < nblocks; k++) {
        b.idx.x = (unsigned)(k % grid.x);
        b.idx.y = (unsigned)(k / grid.x % grid.y);
        b.idx.z = (unsigned)(k / ((size_t)grid.x * grid.y));
        b.dyn.assign(shmem, 0xff);
        b.error.clear();
        for (Warp &w : b.warps) w = Warp();
        if (!run_block(&b)) {
            fprintf(stderr, "sdc emulated device: %s\n", b.error.c_str());
            rc = cudaErrorLaunchFailure;
            break;
        }
    }
    cur_block = saved_block;
    cur_thread = saved_thread;
    if (rc != cudaSuccess) set_error(rc);
    return rc;
}

cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
                   std::function<void()> body) {
    const size_t nthreads = (size_t)block.x * block.y * block.z;
    const size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64 || nblocks == 0 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 2147483647u) {
        fprintf(stderr, "sdc emulated device: kernel %s: invalid launch configuration grid (%u,%u,%u) block "
                        "(%u,%u,%u)\n",
                name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        set_error(cudaErrorInvalidConfiguration);
        return cudaErrorInvalidConfiguration;
    }
    if (shmem > (size_t)48 << 10) {
        auto it = func_smem().find(fn);
        const size_t allowed = it == func_smem().end() ? (size_t)48 << 10 : (size_t)it->second;
        if (shmem > allowed) {
            fprintf(stderr, "sdc emulated device: kernel %s: %zu bytes of dynamic shared memory, over the %zu "
                            "it may have (over 48 KiB needs cudaFuncSetAttribute("
                            "cudaFuncAttributeMaxDynamicSharedMemorySize), at most 227 KiB)\n",
                    name, shmem, allowed);
            set_error(cudaErrorInvalidValue);
            return cudaErrorInvalidValue;
        }
    }
    return submit(s, name, [=]() { return run_grid(name, grid, block, shmem, body); });
}

int lane_id() { return cur_thread ? cur_thread->lane : -1; }

void report(const char *file, int line, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail("%s: %s", where(file, line), msg);
}

void syncthreads(const char *file, int line) {
    Block *b = cur_block;
    Thread *t = cur_thread;
    if (b->at_barrier > 0 && (b->bar_line != line || !same_file(b->bar_file, file))) {
        fail("__syncthreads() at %s while other threads of the block wait at the one at %s (a barrier in "
             "divergent code)",
             where(file, line), where(b->bar_file, b->bar_line));
        yield(AT_BARRIER);
        return;
    }
    t->file = file;
    t->line = line;
    if (b->at_barrier == 0) {
        b->bar_file = file;
        b->bar_line = line;
    }
    TSAN(const unsigned gen = b->bar_gen; __tsan_release(&b->sync_bar[gen & 1]));
    if (++b->at_barrier == (int)b->threads.size()) {
        b->at_barrier = 0;
        b->bar_gen++;
        for (Thread &u : b->threads)
            if (u.state == AT_BARRIER) u.state = READY;
    } else {
        yield(AT_BARRIER);
    }
    TSAN(__tsan_acquire(&b->sync_bar[gen & 1]));
}

void warp_collective(const char *op, unsigned mask, const void *in, size_t in_n, void *out, size_t out_n,
                     collective_fn fn, const char *file, int line) {
    Block *b = cur_block;
    Thread *t = cur_thread;
    Warp &w = b->warps[t->warp];
    const unsigned me = 1u << t->lane;
    const int first = t->warp * 32;
    unsigned exists = 0;
    for (int l = 0; l < 32; l++)
        if (first + l < (int)b->threads.size()) exists |= 1u << l;
    if (!(mask & me)) {
        fail("%s at %s: the calling lane %d is not in its mask 0x%08x", op, where(file, line), t->lane, mask);
        yield(AT_WARP);
        return;
    }
    if (mask & ~exists) {
        fail("%s at %s: mask 0x%08x names lanes the block does not have (%d threads)", op, where(file, line), mask,
             (int)b->threads.size());
        yield(AT_WARP);
        return;
    }
    if (w.arrived) {
        if (w.mask != mask || w.fn != fn || w.line != line || !same_file(w.file, file)) {
            fail("%s at %s (mask 0x%08x) while lanes 0x%08x of the warp wait at %s at %s (mask 0x%08x)", op,
                 where(file, line), mask, w.arrived, w.op, where(w.file, w.line), w.mask);
            yield(AT_WARP);
            return;
        }
    } else {
        w.mask = mask;
        w.op = op;
        w.file = file;
        w.line = line;
        w.fn = fn;
        w.out_n = out_n;
    }
    memcpy(t->in, in, in_n);
    t->file = file;
    t->line = line;
    // __syncwarp orders the memory accesses of its lanes (shuffles, votes,
    // mma and ldmatrix do not)
    TSAN(const bool orders = strcmp(op, "__syncwarp") == 0; const unsigned gen = w.gen;
         if (orders) __tsan_release(&w.sync[gen & 1]));
    w.arrived |= me;
    if (w.arrived == mask) {
        unsigned char ins[32][SLOT], outs[32][SLOT];
        memset(ins, 0, sizeof ins);
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1u) memcpy(ins[l], b->threads[first + l].in, SLOT);
        fn(ins, outs, mask);
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1u) {
                Thread &u = b->threads[first + l];
                memcpy(u.out, outs[l], SLOT);
                if (&u != t) u.state = READY;
            }
        w.arrived = 0;
        w.gen++;
    } else {
        yield(AT_WARP);
    }
    TSAN(if (orders) __tsan_acquire(&w.sync[gen & 1]));
    if (!b->error.empty()) return;
    memcpy(out, t->out, out_n);
}

// --- cp.async -------------------------------------------------------------

void cp_async(void *smem, const void *gmem, size_t n) {
    Thread *t = cur_thread;
    if (((uintptr_t)smem | (uintptr_t)gmem) & (n - 1)) {
        fail("cp.async of %zu bytes from %p to %p: both addresses must be %zu-byte aligned", n, gmem, smem, n);
        return;
    }
    t->pending.push_back(Copy{smem, gmem, n});
    counters.cp_bytes += n;
}

void cp_async_commit() {
    Thread *t = cur_thread;
    t->group_end.push_back(t->pending.size());
}

static void finish_copies(Thread *t, size_t upto) {
    for (size_t i = 0; i < upto; i++) {
        // the copy lands now, as the issuing thread's read and write
        TSAN(__tsan_read_range((void *)t->pending[i].src, t->pending[i].n);
             __tsan_write_range(t->pending[i].dst, t->pending[i].n));
        memcpy(t->pending[i].dst, t->pending[i].src, t->pending[i].n);
    }
    t->pending.erase(t->pending.begin(), t->pending.begin() + (long)upto);
    for (size_t &e : t->group_end) e -= upto;
}

// Complete every committed group but the newest n.
void cp_async_wait(int n) {
    Thread *t = cur_thread;
    size_t groups = t->group_end.size();
    if ((size_t)n >= groups) return;
    size_t done = groups - (size_t)n;
    size_t upto = t->group_end[done - 1];
    finish_copies(t, upto);
    t->group_end.erase(t->group_end.begin(), t->group_end.begin() + (long)done);
}

} // namespace sdc_emu
