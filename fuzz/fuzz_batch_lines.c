/* fuzz_batch_lines.c - libFuzzer target: prompt lists for `sdc batch`.
 *
 * Input: a whole prompt list, any mix of the three line formats (plain
 * prompt, AUTOMATIC1111 "--prompt ..." options, JSON Lines). It is parsed
 * by sdc_batch_parse with sdc batch's defaults (sdc_gen_params_default,
 * base seed 1000); every job must then have a 1-based line inside the
 * list, consecutive indices, and either an error that starts with
 * "fuzz.txt:LINE: " or settings that pass sdc_check_gen_params. Each job
 * gets a file name (sdc_batch_filename) and a manifest line. The
 * first line of the input also goes through sdc_batch_shlex alone.
 *
 * Seeds: the files in tests/fixtures/batch/ and fuzz/seeds/batch_lines/,
 * whole and line by line, and samples/prompts.txt (fuzz/seed.sh); dictionary
 * fuzz/batch_lines.dict. Run from the repository root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_batch_lines -dict=fuzz/batch_lines.dict CORPUS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/batch.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sdc_batch_defaults d = {.gen = sdc_gen_params_default(), .base_seed = 1000};
    sdc_batch_list l;
    if (sdc_batch_parse((const char *)data, size, "fuzz.txt", &d, &l) != SDC_OK) {
        FUZZ_CHECK(l.n == 0 && l.jobs == NULL);
        return 0;
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    sdc_batch_run run = {.source = "fuzz.txt", .model = "m.safetensors", .clip_skip = 1,
                         .base_seed = 1000, .shard_k = 1, .shard_n = 1};
    sdc_batch_result res = {.status = "ok"};
    for (int i = 0; i < l.n; i++) {
        const sdc_batch_job *j = &l.jobs[i];
        FUZZ_CHECK(j->index == i);
        FUZZ_CHECK(j->line >= 1 && (size_t)j->line <= lines);
        FUZZ_CHECK(i == 0 || j->line >= l.jobs[i - 1].line);
        FUZZ_CHECK(j->gen.prompt != NULL);
        if (j->error) {
            char want[64];
            snprintf(want, sizeof want, "fuzz.txt:%d: ", j->line);
            FUZZ_CHECK(!strncmp(j->error, want, strlen(want)));
        } else {
            FUZZ_CHECK(sdc_check_gen_params(NULL, &j->gen) == SDC_OK);
        }
        char name[128];
        sdc_batch_filename(j, name, sizeof name);
        FUZZ_CHECK(strlen(name) >= 10 && !strcmp(name + strlen(name) - 4, ".png"));
        char *line = sdc_batch_manifest_line(j, &res, &run);
        FUZZ_CHECK(line != NULL);
        free(line);
    }
    sdc_batch_list_free(&l);

    /* shlex on the first line alone */
    const uint8_t *nl = memchr(data, '\n', size);
    char *first = fuzz_cstr(data, nl ? (size_t)(nl - data) : size);
    char **argv = NULL;
    int argc = -1;
    if (sdc_batch_shlex(first, &argv, &argc) == SDC_OK) {
        FUZZ_CHECK(argc >= 0);
        size_t len = strlen(first);
        for (int i = 0; i < argc; i++) FUZZ_CHECK(argv[i] && strlen(argv[i]) <= len);
        free(argv);
    }
    free(first);
    return 0;
}
