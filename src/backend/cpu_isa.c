/* cpu_isa.c - which variant of the CPU kernels runs (cpu_isa.h). */
#include "backend/cpu_isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
