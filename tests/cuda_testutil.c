/* cuda_testutil.c - see cuda_testutil.h. */
#include "cuda_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda.h"
#include "testutil.h"

int emu(void) { return sdc_cuda_emulated(); }

int small_shapes(void) {
    const char *v = getenv("SDC_TEST_SMALL");
    return emu() || (v && !strcmp(v, "1"));
}

void need_device(void) {
    if (emu()) setenv("SDC_CUDA_EMU", "1", 0);
    char why[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "SKIP: no CUDA device (%s)\n", why);
        cr_skip_test("SKIP: no CUDA device (%s)", why);
    }
}

sdc_backend *gpu_mem(int mem_mb) {
    if (emu()) {
        setenv("SDC_CUDA_EMU", "1", 0);
        char v[32];
        snprintf(v, sizeof v, "%d", mem_mb ? mem_mb : 16384);
        setenv("SDC_CUDA_EMU_MEM_MB", v, 1);
    }
    need_device();
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cuda_create(0, &be), SDC_OK, "%s", sdc_last_error());
    return be;
}

void step_probe_record(int step, int total, double seconds, void *user) {
    (void)total, (void)seconds;
    step_probe *p = user;
    if (step < 0 || step > 20) return;
    p->at[step] = p->be->transfers;
    p->allocs[step] = p->be->allocations;
}

sdc_ctx *tiny_ctx(sdc_backend_kind kind, sdc_precision precision) {
    return tiny_ctx_vae(kind, precision, SDC_PRECISION_AUTO);
}

sdc_ctx *tiny_ctx_vae(sdc_backend_kind kind, sdc_precision precision, sdc_precision vae_precision) {
    sdc_params p = sdc_params_default();
    p.model_path = FIXTURES "/tiny_sd1.safetensors";
    p.backend = kind;
    p.precision = precision;
    p.vae_precision = vae_precision;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&p, &ctx), SDC_OK, "%s", sdc_last_error());
    return ctx;
}

float *dev(sdc_backend *g, const float *h, size_t n) {
    float *d = NULL;
    cr_assert_eq(sdc_backend_upload_new(g, h, n, &d), SDC_OK, "%s", sdc_last_error());
    return d;
}
