/* test_cli.c - the command line as a user meets it: output on stdout,
 * warnings and errors on stderr, exit codes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "st_write.h"
#include "testutil.h"

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Run `sdc ARGS`, capture stdout and stderr (each up to cap bytes) through
 * files in a fresh temporary directory (tests run in parallel). */
static int run_cli(const char *args, char *out, char *err, size_t cap) {
    char *dir = st_tmpdir(), *o = st_path(dir, "out"), *e = st_path(dir, "err");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", sdc_cli_path(), args, o, e);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "sdc %s died from a signal", args);
    slurp(o, out, cap);
    slurp(e, err, cap);
    st_rmtree(dir);
    free(dir), free(o), free(e);
    return WEXITSTATUS(rc);
}

static char out[1 << 16], err[1 << 16];

Test(cli, tokenize_prints_77_ids) {
    cr_assert_eq(run_cli("tokenize 'a photo of a cat'", out, err, sizeof out), 0, "%s", err);
    cr_assert(strncmp(out, "49406 320 1125 539 320 2368 49407 49407 ", 40) == 0, "%s", out);
    int n = 0;
    for (char *p = strtok(out, " \n"); p; p = strtok(NULL, " \n")) n++;
    cr_assert_eq(n, 77);
    cr_assert_str_empty(err);
}

Test(cli, tokenize_model_padding_and_pieces) {
    cr_assert_eq(run_cli("tokenize -m " FIXTURES "/tiny_sd2.safetensors --pieces 'red circle'", out, err,
                         sizeof out), 0, "%s", err);
    cr_assert(strstr(out, " 1 ") && strstr(out, "red</w>"), "%s", out);
    cr_assert(strstr(out, "76     0 !"), "SD 2.x pads with id 0: %s", out);
}

Test(cli, long_prompt_names_dropped_words) {
    char args[4096] = "tokenize '";
    for (int i = 0; i < 20; i++) strcat(args, "big red fox, ");
    strcat(args, "final words here'");
    cr_assert_eq(run_cli(args, out, err, sizeof out), 0);
    cr_assert(strstr(err, "warning: the prompt is 83 tokens; only 75 fit"), "%s", err);
    cr_assert(strstr(err, "final words here\""), "%s", err);
}

Test(cli, inspect_and_usage_errors) {
    cr_assert_eq(run_cli("inspect " FIXTURES "/tiny_sd1_diffusers", out, err, sizeof out), 0, "%s", err);
    cr_assert(strstr(out, "family   SD 1.x") && strstr(out, "diffusers folder"), "%s", out);
    cr_assert_eq(run_cli("frobnicate", out, err, sizeof out), 2);
    cr_assert(strstr(err, "unknown command 'frobnicate'"), "%s", err);
    cr_assert_eq(run_cli("inspect", out, err, sizeof out), 2);
    cr_assert_eq(run_cli("encode -m " FIXTURES "/tiny_sd1.safetensors --clip-skip 9 'x'", out, err, sizeof out), 1);
    cr_assert(strstr(err, "clip skip 9"), "%s", err);
    cr_assert_eq(run_cli("--help", out, err, sizeof out), 0);
    cr_assert(strstr(out, "usage:"));
}

Test(cli, encode_falls_back_to_cpu) {
    cr_assert_eq(run_cli("encode -m " FIXTURES "/tiny_sd1.safetensors 'a red circle'", out, err, sizeof out), 0,
                 "%s", err);
    cr_assert(strstr(out, "context (77, 16) on cpu"), "%s", out);
}
