/* cpu_isa.c - which variant of the CPU kernels runs (cpu_isa.h). */
#include "backend/cpu_isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if SDC_CPU_AMX
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

sdc_cpu_isa sdc_cpu_isa_detect(void) {
#if SDC_ISA_X86
    /* libgcc's checks include the operating system's saving of the
     * registers (XCR0), not the instructions alone */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return SDC_ISA_AVX512;
    if (__builtin_cpu_supports("x86-64-v3")) return SDC_ISA_AVX2;
#endif
    return SDC_ISA_BASE;
}

/* -1 until first asked: then the detected level, lowered by SDC_CPU_ISA */
static _Atomic int active = -1;

static sdc_cpu_isa from_env(sdc_cpu_isa best) {
    const char *e = getenv("SDC_CPU_ISA");
    if (!e) return best;
    sdc_cpu_isa want = best;
    if (!strcmp(e, "base")) want = SDC_ISA_BASE;
    else if (!strcmp(e, "avx2")) want = SDC_ISA_AVX2;
    else if (!strcmp(e, "avx512")) want = SDC_ISA_AVX512;
    /* an unknown name, or a level above the processor's, keeps the best */
    return want < best ? want : best;
}

sdc_cpu_isa sdc_cpu_isa_active(void) {
    int a = atomic_load_explicit(&active, memory_order_relaxed);
    if (a < 0) {
        a = (int)from_env(sdc_cpu_isa_detect());
        atomic_store_explicit(&active, a, memory_order_relaxed);
    }
    return (sdc_cpu_isa)a;
}

bool sdc_cpu_isa_force(sdc_cpu_isa isa) {
    if (isa > sdc_cpu_isa_detect()) return false;
    atomic_store_explicit(&active, (int)isa, memory_order_relaxed);
    return true;
}

const char *sdc_cpu_isa_name(sdc_cpu_isa isa) {
    switch (isa) {
    case SDC_ISA_AVX512: return "avx512";
    case SDC_ISA_AVX2: return "avx2";
    default: return "base";
    }
}

#if SDC_CPU_AMX
static bool amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!(d & (1u << 24)) || !(d & (1u << 22))) return false; /* AMX-TILE, AMX-BF16 */
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false; /* AVX512-BF16 (the softmax's) */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false; /* XTILECFG and XTILEDATA saved */
    /* Linux hands out the 8 KiB tile state only to a process that asks
     * (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, 5.16 on) */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}
#else
static bool amx_probe(void) { return false; }
#endif

/* -1 until first asked, then 0 or 1; amx_on: -1 until first asked */
static _Atomic int amx_have = -1, amx_on = -1;

bool sdc_cpu_amx_detect(void) {
    int h = atomic_load_explicit(&amx_have, memory_order_acquire);
    if (h < 0) {
        h = amx_probe() ? 1 : 0; /* asking twice is harmless */
        atomic_store_explicit(&amx_have, h, memory_order_release);
    }
    return h == 1;
}

bool sdc_cpu_amx_active(void) {
    int on = atomic_load_explicit(&amx_on, memory_order_relaxed);
    if (on < 0) {
        const char *e = getenv("SDC_CPU_ISA");
        on = sdc_cpu_amx_detect() && !(e && (!strcmp(e, "base") || !strcmp(e, "avx2") || !strcmp(e, "avx512")));
        atomic_store_explicit(&amx_on, on, memory_order_relaxed);
    }
    /* off while a lower level is asked for (sdc_cpu_isa_force, measuring) */
    return on && (!SDC_ISA_X86 || sdc_cpu_isa_active() == SDC_ISA_AVX512);
}

bool sdc_cpu_amx_force(bool on) {
    if (on && !sdc_cpu_amx_detect()) return false;
    atomic_store_explicit(&amx_on, on ? 1 : 0, memory_order_relaxed);
    return true;
}
