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
    /* the LoRA folder: two good LoRAs and one for another width (SD 2.x's
     * context on this SD 1.x model's cross-attention) */
    char *loras = st_path(dir, "loras"), cmd[4096];
    cr_assert_eq(mkdir(loras, 0755), 0);
    snprintf(cmd, sizeof cmd, "cp %s/lora/kohya.safetensors %s/lora/loha.safetensors %s/", FIXTURES, FIXTURES, loras);
    cr_assert_eq(system(cmd), 0);
    st_builder *b = st_builder_new();
    float v[4 * 1024] = {0};
    const int64_t down[2] = {4, 1024}, up[2] = {32, 4};
    st_builder_add_f32(b, "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", 2, down,
                       v);
    st_builder_add_f32(b, "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", 2, up, v);
    char *bad = st_path(loras, "sd2style.safetensors");
    cr_assert_eq(st_builder_write(b, bad), 0);
    st_builder_free(b);
    free(bad);
    FILE *f = fopen(list, "w");
    cr_assert(f);
    for (int i = 0; i < 3; i++)
        fprintf(f, "a red circle <lora:kohya:0.8>\na red circle\na red circle <lora:loha:1>\n");
    fprintf(f, "a red circle <lora:missing:1>\na red circle <lora:sd2style:1>\n");
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s batch -m %s/tiny_sd1.safetensors --lora-dir %s %s -o %s --steps 2 -W 32 -H 32 --seed 1 "
             "--backend cpu 2> %s > /dev/null",
             sdc_cli_path(), FIXTURES, loras, list, out, err);
    const int rc = system(cmd);
    char *log = test_read_file(err);
    cr_assert(log);
    fprintf(stderr, "%s", log);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0, "a failed line makes the exit status non-zero");
    cr_assert_eq(count(log, "model loaded"), 1, "one checkpoint load: %s", log);
    cr_assert(strstr(log, "no missing.safetensors in"), "%s", log);
    cr_assert(strstr(log, "sd2style.safetensors: lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k"
                          ".lora_down.weight has shape (4, 1024), which does not fit"), "%s", log);
    char *manifest_path = st_path(out, "manifest.jsonl");
    char *manifest = test_read_file(manifest_path);
    cr_assert(manifest);
    cr_assert_eq(count(manifest, "\"status\":\"ok\""), 9, "%s", manifest);
    cr_assert_eq(count(manifest, "\"status\":\"failed\""), 2, "%s", manifest);
    /* every rendered line switches (kohya -> none -> loha -> kohya ...) and
     * says how long it took; the failed lines have no time */
    cr_assert_eq(count(manifest, "\"seconds_lora\":"), 11, "%s", manifest);
    cr_assert_eq(count(manifest, "\"seconds_lora\":0.0000"), 2, "%s", manifest);
    free(manifest), free(manifest_path), free(log);
    st_rmtree(dir);
    free(dir), free(list), free(out), free(err), free(loras);
}

/* sdc tokenize --weights: the LoRAs a prompt applies and their files, the
 * tags gone from the tokens, an embedding's vectors marked. */
Test(lora, tokenize_shows_loras_and_embeddings, .timeout = 60) {
    char *dir = st_tmpdir(), *outp = st_path(dir, "out.txt"), cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s tokenize --weights -m %s/tiny_sd1.safetensors --lora-dir %s/lora --embeddings-dir %s/lora "
             "\"a sdcstyle cat <lora:kohya:0.5:1.25> <lora:nothere:1>\" > %s 2>&1",
             sdc_cli_path(), FIXTURES, FIXTURES, FIXTURES, outp);
    cr_assert_eq(system(cmd), 0);
    char *o = test_read_file(outp);
    cr_assert(strstr(o, "lora kohya: te 0.5, unet 1.25, file tests/fixtures/lora/kohya.safetensors\n"), "%s", o);
    cr_assert(strstr(o, "lora nothere: te 1, unet 1, not applied: <lora:nothere>: no nothere.safetensors"), "%s", o);
    cr_assert(strstr(o, "embedding sdcstyle vector 1\n") && strstr(o, "embedding sdcstyle vector 2\n"), "%s", o);
    cr_assert(!strstr(o, "lor</w>") && !strstr(o, "lora</w>"), "the tags are not tokens: %s", o);
    free(o), free(outp);
    st_rmtree(dir);
    free(dir);
}
