/* cpu_isa.h - the instruction set of the CPU backend's own kernels,
 * chosen at run time.
 *
 * One build runs on any x86-64 processor: the hot kernels (flash
 * attention, Winograd's transforms) are compiled three times, for
 * x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), x86-64-v3 (AVX2, FMA, F16C) and the
 * build's own target, and each call takes the variant of the level in
 * use. That level is the best the processor (and its operating system)
 * supports, or a lower one asked for by SDC_CPU_ISA=avx2|base (measuring
 * one machine kind on another) or by sdc_cpu_isa_force (tests run every
 * variant the machine has). OpenBLAS chooses its own kernels the same way.
 * Off x86-64, built by a compiler other than GCC, or built for a target
 * with AVX2 already, only the base variant exists. */
#ifndef SDC_CPU_ISA_H
#define SDC_CPU_ISA_H

#include <stdbool.h>

typedef enum sdc_cpu_isa {
    SDC_ISA_BASE = 0,   /* the build's target (-march of OPT) */
    SDC_ISA_AVX2 = 1,   /* x86-64-v3 */
    SDC_ISA_AVX512 = 2, /* x86-64-v4 */
} sdc_cpu_isa;

/* the best level this processor runs */
sdc_cpu_isa sdc_cpu_isa_detect(void);
/* the level the kernels use now: detected, or lower where SDC_CPU_ISA (read
 * once) or sdc_cpu_isa_force asks for it */
sdc_cpu_isa sdc_cpu_isa_active(void);
/* use `isa` from now on (process-wide); false, and no change, when the
 * processor lacks it */
bool sdc_cpu_isa_force(sdc_cpu_isa isa);
/* "avx512", "avx2", "base" */
const char *sdc_cpu_isa_name(sdc_cpu_isa isa);

/* AMX (Intel's tile unit, Sapphire Rapids on): the bf16 products of
 * backend_cpu_bf16.c and backend_cpu_flash_amx.c. Detected (AMX-TILE,
 * AMX-BF16 and AVX512-BF16, the operating
 * system's saving of the tile state, and Linux's permission to use it,
 * asked for once) and used while the active level is AVX-512 and no
 * SDC_CPU_ISA names a level (SDC_CPU_ISA=avx512: AVX-512 without AMX);
 * sdc_cpu_amx_force turns it off or back on (tests), false where the
 * processor has none. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SDC_CPU_AMX 1 /* the tile kernels are built */
#else
#define SDC_CPU_AMX 0
#endif
bool sdc_cpu_amx_detect(void);
bool sdc_cpu_amx_active(void);
bool sdc_cpu_amx_force(bool on);

/* A build whose own target has AVX2 already (OPT=-march=native on such a
 * machine) keeps that target alone: it runs only where it was built. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define SDC_ISA_X86 1
#define SDC_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define SDC_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#else
#define SDC_ISA_X86 0
#endif

/* Every helper a kernel body calls must be inlined into each variant to be
 * compiled for its instruction set. */
#define SDC_INLINE static inline __attribute__((always_inline))

/* SDC_ISA_KERNEL_BY(name, wide, narrow, (params), (args)): a static void
 * name(params) that runs wide(args) compiled for AVX-512 or narrow(args)
 * compiled for AVX2 or for the base target, by the active level; wide and
 * narrow are SDC_INLINE functions (kernels whose register blocking
 * differs with the vector width). SDC_ISA_KERNEL(name, (params), (args)):
 * the same with one body, name##_body, for every level. */
#if SDC_ISA_X86
#define SDC_ISA_KERNEL_BY(name, wide, narrow, params, args)                                                 \
    SDC_TARGET_AVX512 static void name##_avx512 params { wide args; }                                       \
    SDC_TARGET_AVX2 static void name##_avx2 params { narrow args; }                                         \
    static void name##_base params { narrow args; }                                                         \
    static void name params {                                                                               \
        switch (sdc_cpu_isa_active()) {                                                                     \
        case SDC_ISA_AVX512: name##_avx512 args; break;                                                     \
        case SDC_ISA_AVX2: name##_avx2 args; break;                                                         \
        default: name##_base args; break;                                                                   \
        }                                                                                                   \
    }
#else
#define SDC_ISA_KERNEL_BY(name, wide, narrow, params, args) \
    static void name params { narrow args; }
#endif
#define SDC_ISA_KERNEL(name, params, args) SDC_ISA_KERNEL_BY(name, name##_body, name##_body, params, args)


#endif
