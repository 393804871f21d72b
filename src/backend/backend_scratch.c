/* backend_scratch.c - the part of planned memory both backends share: how
 * their scratch slots lie in a plan's arena (backend.h). */
#include <stdint.h>

#include "backend/backend.h"

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

size_t sdc_scratch_plan_bytes(const size_t *need, int slots) {
    size_t total = 0;
    for (int i = 0; i < slots; i++) total += align256(need[i] * sizeof(float));
    return total;
}

sdc_status sdc_scratch_layout(const size_t *need, int slots, void *p, size_t bytes, float **at) {
    if (p && bytes < sdc_scratch_plan_bytes(need, slots))
        return sdc_fail(SDC_ERR_ARG, "scratch_bind: %zu bytes given, the plan needs %zu", bytes,
                        sdc_scratch_plan_bytes(need, slots));
    if (p && ((uintptr_t)p & 255)) return sdc_fail(SDC_ERR_ARG, "scratch_bind: memory not 256-byte aligned");
    size_t off = 0;
    for (int i = 0; i < slots; i++) {
        at[i] = p && need[i] ? (float *)((char *)p + off) : NULL;
        off += align256(need[i] * sizeof(float));
    }
    return SDC_OK;
}
