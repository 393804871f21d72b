/* test_cli.c - the command line as a user meets it: output on stdout,
 * warnings and errors on stderr, exit codes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/cuda.h"
#include "image/image.h"
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
    cr_assert(strstr(err, "warning: the prompt is 83 tokens; only 75 fit in one window"), "%s", err);
    cr_assert(strstr(err, "final words here\""), "%s", err);
}

Test(cli, tokenize_weights_shows_windows) {
    cr_assert_eq(run_cli("tokenize --weights '(red:1.5) circle BREAK [blue] square'", out, err, sizeof out), 0,
                 "%s", err);
    cr_assert(strstr(out, "chunk 1 of 2") && strstr(out, "chunk 2 of 2"), "%s", out);
    cr_assert(strstr(out, " 1   736 red</w>                  1.5\n"), "%s", out);
    cr_assert(strstr(out, "square</w>"), "%s", out);
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

/* --backend auto: the GPU where there is one, else the CPU. */
Test(cli, encode_picks_cuda_or_falls_back_to_cpu) {
    char why[256];
    const char *want = sdc_cuda_device_count(why, sizeof why) > 0 ? "context (77, 16) on cuda" : "context (77, 16) on cpu";
    cr_assert_eq(run_cli("encode -m " FIXTURES "/tiny_sd1.safetensors 'a red circle'", out, err, sizeof out), 0,
                 "%s", err);
    cr_assert(strstr(out, want), "want '%s' in: %s", want, out);
}

/* txt2img: a PNG with the settings in its parameters chunk; bad input is a
 * clear error, a non-zero exit and no file. */
Test(cli, txt2img_writes_png_with_parameters) {
    char *dir = st_tmpdir(), *png = st_path(dir, "out.png"), args[4096];
    snprintf(args, sizeof args,
             "txt2img -m " FIXTURES "/tiny_sd1.safetensors -p 'a red circle' -n 'blue' -W 32 -H 48 "
             "--steps 3 --sampler euler_a --seed 7 --cfg 5 -o '%s'",
             png);
    cr_assert_eq(run_cli(args, out, err, sizeof out), 0, "%s", err);
    cr_assert(strstr(out, png), "%s", out);
    cr_assert(strstr(err, "denoise"), "no timing summary: %s", err);
    char *text = NULL;
    cr_assert_eq(sdc_png_read_parameters(png, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(text && strstr(text, "a red circle\nNegative prompt: blue\nSteps: 3, Sampler: Euler a, CFG scale: 5, "
                                   "Seed: 7, Size: 32x48, Model hash: "),
              "%s", text);
    cr_assert(strstr(text, "Model: tiny_sd1"), "%s", text);
    free(text);
    st_rmtree(dir);
    free(dir), free(png);
}

static void expect_txt2img_error(const char *opts, const char *needle) {
    char *dir = st_tmpdir(), *png = st_path(dir, "out.png"), args[4096];
    snprintf(args, sizeof args, "txt2img -p 'x' -W 32 -H 32 --steps 2 -o '%s' %s", png, opts);
    int rc = run_cli(args, out, err, sizeof out);
    cr_assert_neq(rc, 0, "sdc txt2img %s succeeded", opts);
    cr_assert(strstr(err, needle), "for '%s' expected '%s' in: %s", opts, needle, err);
    cr_assert_neq(access(png, F_OK), 0, "a file was written for '%s'", opts);
    st_rmtree(dir);
    free(dir), free(png);
}

Test(cli, txt2img_bad_input) {
    const char *m = "-m " FIXTURES "/tiny_sd1.safetensors ";
    char buf[512];
    snprintf(buf, sizeof buf, "%s--sampler heun", m);
    expect_txt2img_error(buf, "unknown sampler \"heun\"");
    snprintf(buf, sizeof buf, "%s--steps 0", m);
    expect_txt2img_error(buf, "steps 0");
    snprintf(buf, sizeof buf, "%s-W 100", m);
    expect_txt2img_error(buf, "multiples of 8");
    snprintf(buf, sizeof buf, "%s-H 30", m);
    expect_txt2img_error(buf, "multiples of 8");
    expect_txt2img_error("-m " FIXTURES "/missing.safetensors", "missing.safetensors");
    expect_txt2img_error("-m README.md", "not a safetensors file");
    expect_txt2img_error("", "missing -m MODEL");
    snprintf(buf, sizeof buf, "%s--karras --sampler ddim", m);
    expect_txt2img_error(buf, "Karras");
    /* precision: an unknown name, and fp16 on the CPU (fp32 or bf16) */
    snprintf(buf, sizeof buf, "%s--precision fp8", m);
    expect_txt2img_error(buf, "--precision fp8: expected auto, fp32, fp16 or bf16");
    snprintf(buf, sizeof buf, "%s--vae-precision half", m);
    expect_txt2img_error(buf, "--vae-precision half: expected auto, fp32, fp16 or bf16");
    snprintf(buf, sizeof buf, "%s--backend cpu --precision fp16", m);
    expect_txt2img_error(buf, "--precision fp16: the CPU backend computes in fp32 or bf16");
    snprintf(buf, sizeof buf, "%s--backend cpu --vae-precision fp16", m);
    expect_txt2img_error(buf, "--vae-precision fp16: the CPU backend computes in fp32 or bf16");
    cr_assert_neq(run_cli("txt2img -m " FIXTURES "/tiny_sd1.safetensors -p x -o ''", out, err, sizeof out), 0);
    cr_assert(strstr(err, "empty output path"), "%s", err);
}

/* sdc serve's arguments: usage errors (exit 2) before anything loads, a
 * model or an address it cannot use (exit 1), each named; its help */
Test(cli, serve_bad_arguments) {
    static const struct {
        const char *args, *msg;
        int rc;
    } cases[] = {
        {"serve", "serve needs a model (-m MODEL)", 2},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --port 70000", "--port 70000: expected 0..65535", 2},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --queue 0", "--queue 0: expected 1..4096", 2},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --frobnicate 1", "--frobnicate: unknown option", 2},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --port", "--port: unknown option, or its value is missing", 2},
        {"serve -m " FIXTURES "/missing.safetensors --port 0", "missing.safetensors", 1},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --host 999.0.0.1 --port 0", "--host 999.0.0.1", 1},
        {"serve -m " FIXTURES "/tiny_sd1.safetensors --api-auth nocolon --port 0", "--api-auth: \"nocolon\"", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const int rc = run_cli(cases[i].args, out, err, sizeof out);
        cr_assert_eq(rc, cases[i].rc, "sdc %s: exit %d, expected %d (%s)", cases[i].args, rc, cases[i].rc, err);
        cr_assert(strstr(err, cases[i].msg), "sdc %s: %s", cases[i].args, err);
    }
    cr_assert_eq(run_cli("serve --help", out, err, sizeof out), 0);
    cr_assert(strstr(out, "--api-auth") && strstr(out, "127.0.0.1"), "%s", out);
}
