/* common.h - status codes, the per-thread error message, small helpers.
 * Library code never exits: it returns an sdc_status and leaves a message
 * that names the file, tensor or line and what was expected. */
#ifndef SDC_COMMON_H
#define SDC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#include "sdc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, as safetensors names them (F16 = IEEE binary16, BF16 =
 * bfloat16). Backend buffers use F32, F16 and BF16. */
typedef enum sdc_dtype {
    SDC_DT_F64, SDC_DT_F32, SDC_DT_F16, SDC_DT_BF16,
    SDC_DT_F8_E4M3, SDC_DT_F8_E5M2,
    SDC_DT_I64, SDC_DT_I32, SDC_DT_I16, SDC_DT_I8, SDC_DT_U8, SDC_DT_BOOL,
    SDC_DT_U16, SDC_DT_U32, SDC_DT_U64,
    SDC_DT_COUNT
} sdc_dtype;

/* Store a printf-style message as the current thread's last error and
 * return `code`, so call sites read: return sdc_fail(SDC_ERR_IO, "...").
 * The message is returned by sdc_last_error(). */
sdc_status sdc_fail(sdc_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current message with more context ("loading X: <old msg>"). */
sdc_status sdc_fail_context(sdc_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Propagate a failing status from a call, keeping its message. */
#define SDC_TRY(call)                                                          \
    do {                                                                       \
        sdc_status sdc_try_st_ = (call);                                       \
        if (sdc_try_st_ != SDC_OK) return sdc_try_st_;                         \
    } while (0)

/* Allocation that reports the failing call site. */
#define SDC_MALLOC(ptr, bytes)                                                 \
    do {                                                                       \
        size_t sdc_bytes_ = (bytes);                                           \
        (ptr) = malloc(sdc_bytes_ ? sdc_bytes_ : 1);                           \
        if (!(ptr))                                                            \
            return sdc_fail(SDC_ERR_OOM, "%s:%d: out of memory allocating "    \
                            "%zu bytes for %s", __FILE__, __LINE__,            \
                            sdc_bytes_, #ptr);                                 \
    } while (0)

#define SDC_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

/* Notices for the user go to stderr; SDC_QUIET=1 silences them. */
void sdc_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Half-precision conversions (round-to-nearest-even for f32 -> f16). */
float sdc_f16_to_f32(uint16_t h);
uint16_t sdc_f32_to_f16(float f);
float sdc_bf16_to_f32(uint16_t b);
uint16_t sdc_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
/* sdc_f32_to_bf16 itself, inline: loops of it vectorise (the CPU's bf16
 * products round whole rows with it) */
static inline __attribute__((always_inline)) uint16_t sdc_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t nan = (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    const uint16_t r = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return (u & 0x7fffffffu) > 0x7f800000u ? nan : r;
}

/* Host-side layout changes: torch's NCHW <-> sdc's NHWC. */
void sdc_nchw_to_nhwc(const float *src, float *dst, int n, int c, int h, int w);
void sdc_nhwc_to_nchw(const float *src, float *dst, int n, int c, int h, int w);

/* Monotonic wall clock in seconds. */
double sdc_now(void);

/* The regular files in dir and its subfolders (down to max_depth levels;
 * names starting with '.' skipped, links followed) whose names end with
 * one of exts[0..n_exts) (any case), sorted by path: *paths and each path
 * malloc'd (sdc_free_paths). At most max_files, and 10 x max_files
 * directory entries looked at: *truncated (may be NULL) says whether that
 * stopped the walk. A dir that cannot be opened is an SDC_ERR_IO error
 * naming it. (LoRA and embedding folders.) */
sdc_status sdc_list_files(const char *dir, const char *const *exts, int n_exts, int max_depth, int max_files,
                          char ***paths, int *n, bool *truncated);
void sdc_free_paths(char **paths, int n);

#ifdef __cplusplus
}
#endif
#endif
