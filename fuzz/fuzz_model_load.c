/* fuzz_model_load.c - libFuzzer target: loading a single-file checkpoint's
 * weights as `sdc txt2img` does (sdc_load on the CPU backend: detection,
 * checks, then the one weight loader of src/model/weights.c for the text
 * encoder, U-Net and VAE: names, shapes, file types, stacked and permuted
 * tensors). A file that loads is freed again; one that does not must leave
 * no context and a message.
 *
 * Input as fuzz_model_single.c: the start of a .safetensors file (length,
 * JSON header, as much data as the input has), followed in the scratch
 * file by 32 MiB of zero bytes, so a header is enough: its tensors read as
 * zeros. Seeds: the headers of the tiny fixtures and the shipped model
 * (fuzz/seed.sh); dictionary fuzz/model.dict. Run from the repository root:
 *   build-fuzz/fuzz/fuzz_model_load -dict=fuzz/model.dict CORPUS */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "sdc.h"

#define DATA_PAD ((size_t)32 << 20)

static fuzz_file *g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_file = fuzz_file_new(".safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_file, data, size, DATA_PAD);
    sdc_params p = sdc_params_default();
    p.model_path = g_file->path;
    p.backend = SDC_BACKEND_CPU;
    p.n_threads = 1;
    sdc_ctx *ctx = NULL;
    if (sdc_load(&p, &ctx) != SDC_OK) {
        FUZZ_CHECK(ctx == NULL);
        FUZZ_CHECK(sdc_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(sdc_context_dim(ctx) > 0);
    sdc_free(ctx);
    return 0;
}
