/* fuzz_lora.c - libFuzzer target: a LoRA file as `<lora:NAME:W>` reads it
 * (src/model/lora.c): its names matched to the tiny SD 1.x model's weights,
 * every module's tensors and shapes checked, then each module's delta
 * computed into a buffer of its weight's size. A file that opens must give
 * modules that all compute; one that does not must leave a message.
 *
 * Input: a whole .safetensors file (LoRA files are small). Seeds: the
 * LoRAs of tests/fixtures/lora (fuzz/seed.sh); dictionary fuzz/lora.dict.
 * Run from the repository root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_lora -dict=fuzz/lora.dict CORPUS */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "fuzz_util.h"
#include "model/lora.h"

#define MODEL "tests/fixtures/tiny_sd1.safetensors"

static fuzz_file *g_file;
static sdc_ctx *g_ctx;
static sdc_lora_index *g_ix;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    fuzz_need(MODEL);
    g_file = fuzz_file_new(".safetensors");
    sdc_params p = sdc_params_default();
    p.model_path = MODEL;
    p.backend = SDC_BACKEND_CPU;
    p.n_threads = 1;
    if (sdc_load(&p, &g_ctx) != SDC_OK ||
        sdc_lora_index_build(g_ctx->model, &g_ctx->te->weights, &g_ctx->unet->weights, &g_ix) != SDC_OK)
        fuzz_die("%s", sdc_last_error());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_file, data, size, 0);
    sdc_lora_file *l = NULL;
    if (sdc_lora_open(g_file->path, g_ix, &l) != SDC_OK) {
        FUZZ_CHECK(l == NULL);
        FUZZ_CHECK(sdc_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(l->n_mods > 0 && l->n_te + l->n_unet == l->n_mods);
    for (int i = 0; i < l->n_mods; i++) {
        const sdc_lora_module *m = &l->mods[i];
        const sdc_weight_src *s = m->target.src;
        FUZZ_CHECK(m->target.row0 >= 0 && m->target.row0 + m->target.rows <= s->rows);
        const size_t n = (size_t)m->target.rows * s->cols * (s->k ? s->k * s->k : 1);
        float *w = calloc(n, sizeof *w);
        FUZZ_CHECK(w != NULL);
        FUZZ_CHECK(sdc_lora_add_delta(l, m, 0.5, w) == SDC_OK);
        free(w);
    }
    FUZZ_CHECK(sdc_lora_file_hash(l) == SDC_OK && strlen(l->hash) == 12);
    sdc_lora_close(l);
    return 0;
}
