/* fuzz_safetensors.c - libFuzzer target: the safetensors reader.
 *
 * Input: the bytes of a whole .safetensors file (u64 header length, JSON
 * header, data). They are written to a scratch file (fuzz_util.h) and
 * opened with sdc_st_open, which mmaps it; when it opens, every tensor is
 * looked up again by name (sdc_st_find), the metadata is read back
 * (sdc_st_meta), and floating tensors of up to 64 Ki elements are
 * converted with sdc_st_to_f32.
 *
 * Seeds: the small reference fixtures (tests/fixtures/, *_ref.safetensors)
 * and the headers of the tiny checkpoints (fuzz/seed.sh); dictionary
 * fuzz/safetensors.dict. Run from the repository root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_safetensors -dict=fuzz/safetensors.dict CORPUS */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/safetensors.h"

static fuzz_file *g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_file = fuzz_file_new(".safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_file, data, size, 0);
    sdc_st_file *f = NULL;
    if (sdc_st_open(g_file->path, &f) != SDC_OK) {
        FUZZ_CHECK(f == NULL);
        FUZZ_CHECK(strstr(sdc_last_error(), g_file->path) != NULL);
        return 0;
    }
    FUZZ_CHECK(f->n_tensors >= 0 && f->n_meta >= 0);
    for (int i = 0; i < f->n_tensors; i++) {
        const sdc_st_tensor *t = &f->tensors[i];
        FUZZ_CHECK(sdc_st_find(f, t->name) == t);
        FUZZ_CHECK(t->dtype >= 0 && t->dtype < SDC_DT_COUNT);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= SDC_ST_MAX_DIMS);
        FUZZ_CHECK((uint64_t)t->numel * sdc_dtype_size(t->dtype) == t->nbytes);
        if (t->nbytes) {
            const unsigned char *b = t->data, *m = f->map;
            FUZZ_CHECK(b >= m && b + t->nbytes <= m + f->map_size);
        }
        if (sdc_dtype_is_float(t->dtype) && t->numel <= 65536) {
            float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *dst);
            FUZZ_CHECK(dst != NULL);
            FUZZ_CHECK(sdc_st_to_f32(f, t, dst) == SDC_OK);
            free(dst);
        } else if (!sdc_dtype_is_float(t->dtype)) {
            float one;
            FUZZ_CHECK(sdc_st_to_f32(f, t, &one) != SDC_OK);
        }
    }
    for (int i = 0; i < f->n_meta; i++)
        FUZZ_CHECK(sdc_st_meta(f, f->meta_keys[i]) != NULL);
    (void)sdc_st_find(f, "no such tensor");
    (void)sdc_st_meta(f, "format");
    sdc_st_close(f);
    return 0;
}
