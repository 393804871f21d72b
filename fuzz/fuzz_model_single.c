/* fuzz_model_single.c - libFuzzer target: opening a single-file checkpoint
 * as `sdc inspect` does (layout and family detection, the configuration
 * derived from tensor names, shapes and __metadata__, the summary).
 *
 * Input: the start of a .safetensors file: u64 header length, JSON header,
 * then as much of the data section as the input has. The scratch file is
 * that, followed by 32 MiB of zero bytes (a sparse tail, nothing
 * written), so a seed needs only the header of a checkpoint (the tiny
 * fixtures' headers are about 50 KB, their data 2.4 MB; the shipped
 * model's data is 21 MB) and mutations go where the decisions are. Truncated data sections are the safetensors target's
 * business. The model is opened with sdc_model_open and printed with
 * sdc_model_print to /dev/null.
 *
 * Seeds: the headers of tests/fixtures/tiny_sd{1,2}.safetensors, tiny_sdxl.safetensors and of the
 * shipped model (fuzz/seed.sh); dictionary fuzz/model.dict. Run from the
 * repository root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_model_single -dict=fuzz/model.dict CORPUS */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/model.h"

#define DATA_PAD ((size_t)32 << 20)

static fuzz_file *g_file;
static FILE *g_null;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_file = fuzz_file_new(".safetensors");
    g_null = fopen("/dev/null", "w");
    if (!g_null) fuzz_die("%s", "cannot open /dev/null");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_file, data, size, DATA_PAD);
    sdc_model_files *m = NULL;
    if (sdc_model_open(g_file->path, &m) != SDC_OK) {
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(sdc_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(m->layout == SDC_LAYOUT_SINGLE_FILE);
    sdc_model_print(m, g_null);
    sdc_model_close(m);
    return 0;
}
