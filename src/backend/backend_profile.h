/* backend_profile.h - time spent per op kind, for the benchmark: wraps a
 * backend's ops table with timing shims (one profiled backend at a time). */
#ifndef SDC_BACKEND_PROFILE_H
#define SDC_BACKEND_PROFILE_H

#include <stdio.h>

#include "backend/backend.h"

typedef enum sdc_op_kind {
    SDC_OP_LINEAR, SDC_OP_CONV, SDC_OP_ATTENTION, SDC_OP_GROUP_NORM, SDC_OP_LAYER_NORM,
    SDC_OP_ELEMENTWISE, SDC_OP_MEMORY, SDC_OP_KINDS
} sdc_op_kind;

typedef struct sdc_profile {
    double seconds[SDC_OP_KINDS];
    long calls[SDC_OP_KINDS];
} sdc_profile;

/* Start timing be's ops (replaces be->ops; restored by _disable). */
void sdc_backend_profile_enable(sdc_backend *be);
void sdc_backend_profile_disable(sdc_backend *be);
void sdc_backend_profile_reset(void);
const sdc_profile *sdc_backend_profile_get(void);
const char *sdc_op_kind_name(sdc_op_kind k);

#endif
