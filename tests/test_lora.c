/* test_lora.c - LoRAs and textual-inversion embeddings end to end on the
 * CPU backend against tools/fixtures_lora.py's references: diffusers'
 * load_lora_weights / load_textual_inversion (float32) where diffusers reads
 * the format (kohya LoRA and LoCon, kohya with LDM names, PEFT, SD 2.x, the
 * embeddings), else AUTOMATIC1111's formulas merged in float64 (LyCORIS'
 * lora_mid and LoHa). Tolerances: the positive conditioning within 1e-4
 * and the final latents within 1e-3 (normwise relative: the txt2img tests'
 * bound, fp32 against torch's fp32 with the LoRA merged in fp32 here and
 * run unmerged by diffusers; measured below 1e-5 and 1e-4), every 8-bit
 * pixel within 2. Both families, both layouts (SD 2.x's single file names
 * its text encoder as OpenCLIP does: q, k and v are thirds of in_proj).
 * Then `sdc batch` over a list mixing two LoRAs, none and a missing one:
 * one checkpoint load, the failing line alone failed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lora_cases.h"
#include "st_write.h"
#include "testutil.h"

#define LAT_TOL 1e-3
#define PX_TOL 2
#define COND_TOL 1e-4

Test(lora, parity_single_files, .timeout = 300) {
    lora_check c = {SDC_BACKEND_CPU, SDC_PRECISION_AUTO, FIXTURES "/tiny_sd1.safetensors",
                    FIXTURES "/tiny_sd2.safetensors", LAT_TOL, PX_TOL, COND_TOL, NULL};
    cr_assert_eq(lora_run_cases(&c), 11);
}

Test(lora, parity_diffusers_folders, .timeout = 300) {
    lora_check c = {SDC_BACKEND_CPU, SDC_PRECISION_AUTO, FIXTURES "/tiny_sd1_diffusers",
                    FIXTURES "/tiny_sd2_diffusers", LAT_TOL, PX_TOL, COND_TOL, NULL};
    cr_assert_eq(lora_run_cases(&c), 11);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* A list alternating two LoRAs and none, and a line naming a LoRA that is
 * not there: one model load, every good line rendered, the bad one failed
 * with its reason, and the LoRA switches in the manifest. */
Test(lora, batch_mixing_loras_loads_once, .timeout = 300) {
    char *dir = st_tmpdir();
    char *list = st_path(dir, "prompts.txt"), *out = st_path(dir, "out"), *err = st_path(dir, "stderr.txt");
    FILE *f = fopen(list, "w");
    cr_assert(f);
    for (int i = 0; i < 3; i++)
        fprintf(f, "a red circle <lora:kohya:0.8>\na red circle\na red circle <lora:loha:1>\n");
    fprintf(f, "a red circle <lora:missing:1>\n");
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s batch -m %s/tiny_sd1.safetensors --lora-dir %s/lora %s -o %s --steps 2 -W 32 -H 32 --seed 1 "
             "--backend cpu 2> %s > /dev/null",
             sdc_cli_path(), FIXTURES, FIXTURES, list, out, err);
    const int rc = system(cmd);
    char *log = slurp(err);
    cr_assert(log);
    fprintf(stderr, "%s", log);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0, "a failed line makes the exit status non-zero");
    cr_assert_eq(count(log, "model loaded"), 1, "one checkpoint load: %s", log);
    cr_assert(strstr(log, "no missing.safetensors in"), "%s", log);
    char *manifest_path = st_path(out, "manifest.jsonl");
    char *manifest = slurp(manifest_path);
    cr_assert(manifest);
    cr_assert_eq(count(manifest, "\"status\":\"ok\""), 9, "%s", manifest);
    cr_assert_eq(count(manifest, "\"status\":\"failed\""), 1, "%s", manifest);
    /* every rendered line switches (kohya -> none -> loha -> kohya ...) and
     * says how long it took; the failed line has no time */
    cr_assert_eq(count(manifest, "\"seconds_lora\":"), 10, "%s", manifest);
    cr_assert_eq(count(manifest, "\"seconds_lora\":0.0000"), 1, "%s", manifest);
    free(manifest), free(manifest_path), free(log);
    st_rmtree(dir);
    free(dir), free(list), free(out), free(err);
}
