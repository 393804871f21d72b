/* test_img2img_cli.c - `sdc img2img` and image lines of `sdc batch` as a
 * user meets them: the PNG and its infotext, and bad input (a file that is
 * not an image, a strength out of range, a mask of another size, an
 * inpainting checkpoint without a mask) each answered with its own message
 * and exit status, nothing written for a failed job, the other jobs of a
 * list rendered. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/image.h"
#include "st_write.h"
#include "testutil.h"

#define INIT FIXTURES "/img2img/init32.png"
#define MASK FIXTURES "/img2img/mask32.png"
#define TINY FIXTURES "/tiny_sd1.safetensors"

static char out[1 << 16], err[1 << 16];

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* `sdc ARGS` in dir (a fresh temporary folder); stdout and stderr kept. */
static int run_in(const char *dir, const char *args) {
    char cmd[16800], o[4200], e[4200];
    snprintf(o, sizeof o, "%s/.out", dir);
    snprintf(e, sizeof e, "%s/.err", dir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", sdc_cli_path(), args, o, e);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "sdc %s died from a signal", args);
    slurp(o, out, sizeof out);
    slurp(e, err, sizeof err);
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err);
    return WEXITSTATUS(rc);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

Test(img2img_cli, renders_with_its_infotext, .timeout = 120) {
    char *dir = st_tmpdir(), *png = st_path(dir, "o.png"), args[8192];
    snprintf(args, sizeof args, "img2img -m " TINY " -i " INIT " -p 'a red circle' --strength 0.5 --steps 4 --seed 9 "
             "--threads 1 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    cr_assert(strstr(out, png), "%s", out);
    char *text = NULL;
    cr_assert_eq(sdc_png_read_parameters(png, &text), SDC_OK, "%s", sdc_last_error());
    /* the size is the image's; 2 of 4 steps run, the infotext keeps 4 as A1111's does */
    cr_assert(strstr(text, "Steps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 9, Size: 32x32, "), "%s", text);
    cr_assert(strstr(text, ", Denoising strength: 0.5, Version: sdc"), "%s", text);
    free(text);
    /* inpainting with a blurred mask: its settings in the infotext */
    snprintf(args, sizeof args, "img2img -m " TINY " -i " INIT " --mask " MASK " -p 'a red circle' --steps 4 "
             "--seed 9 --mask-blur 2 --inpaint-fill latent-nothing --threads 1 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    cr_assert_eq(sdc_png_read_parameters(png, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(strstr(text, "Denoising strength: 0.75, Mask blur: 2, Masked content: latent nothing, Version: sdc"),
              "%s", text);
    free(text);
    st_rmtree(dir);
    free(dir), free(png);
}

Test(img2img_cli, bad_input, .timeout = 120) {
    char *dir = st_tmpdir(), *png = st_path(dir, "o.png"), *txt = st_path(dir, "notes.png"), args[8192];
    FILE *f = fopen(txt, "w");
    fputs("these are words, not pixels\n", f);
    fclose(f);
    /* a file that is not an image: named, exit 1, no output, before the model loads */
    snprintf(args, sizeof args, "img2img -m /nonexistent -i '%s' -p x -o '%s'", txt, png);
    cr_assert_eq(run_in(dir, args), 1, "%s", err);
    cr_assert(strstr(err, txt), "%s", err);
    cr_assert(!exists(png));
    /* a strength out of (0, 1] */
    snprintf(args, sizeof args, "img2img -m " TINY " -i " INIT " -p x --strength 1.5 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 1, "%s", err);
    cr_assert(strstr(err, "strength 1.5: expected more than 0 and at most 1"), "%s", err);
    snprintf(args, sizeof args, "img2img -m " TINY " -i " INIT " -p x --strength 0.01 --steps 10 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 1, "%s", err);
    cr_assert(strstr(err, "strength 0.01 of 10 steps runs no step"), "%s", err);
    cr_assert(!exists(png));
    /* no image: a usage error */
    cr_assert_eq(run_in(dir, "img2img -m " TINY " -p x"), 2, "%s", err);
    cr_assert(strstr(err, "img2img: missing -i IMAGE"), "%s", err);
    cr_assert_eq(run_in(dir, "img2img -m " TINY " -i " INIT " -p x --resize-mode stretch"), 2, "%s", err);
    cr_assert(strstr(err, "--resize-mode stretch: expected just, crop or fill"), "%s", err);
    /* a mask of another size: said, then resized with the image */
    snprintf(args, sizeof args, "img2img -m " TINY " -i " INIT " --mask " INIT " -p x -W 48 -H 32 --steps 2 "
             "--threads 1 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    int w = 0, h = 0;
    unsigned char *rgb = NULL;
    cr_assert_eq(sdc_image_read_rgb(png, &rgb, &w, &h), SDC_OK, "%s", sdc_last_error());
    cr_assert(w == 48 && h == 32, "%dx%d", w, h);
    free(rgb);
    st_rmtree(dir);
    free(dir), free(png), free(txt);
}

/* An inpainting checkpoint without a mask repaints everything, as
 * AUTOMATIC1111 does (mask 1, a grey masked image); with one it inpaints. */
Test(img2img_cli, inpainting_checkpoint_without_mask, .timeout = 120) {
    char *dir = st_tmpdir(), *png = st_path(dir, "o.png"), args[8192];
    snprintf(args, sizeof args, "txt2img -m " FIXTURES "/tiny_inpaint_sd1.safetensors -p x -W 32 -H 32 --steps 2 "
             "--threads 1 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    cr_assert(exists(png));
    snprintf(args, sizeof args, "img2img -m " FIXTURES "/tiny_inpaint_sd1.safetensors -i " INIT " -p x --steps 2 "
             "--strength 1 --threads 1 -o '%s'", png);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    st_rmtree(dir);
    free(dir), free(png);
}

/* A list with image lines: the good ones render, a missing image and a file
 * that is not an image fail alone, named in the log and the manifest. */
Test(img2img_cli, batch_lines_with_images, .timeout = 180) {
    char *dir = st_tmpdir(), *list = st_path(dir, "list.txt"), *junk = st_path(dir, "junk.png"), args[8192];
    char cp[8400];
    snprintf(cp, sizeof cp, "cp " INIT " '%s/init.png'", dir);
    cr_assert_eq(system(cp), 0);
    FILE *f = fopen(junk, "w");
    fputs("GIF89a not really\n", f);
    fclose(f);
    f = fopen(list, "w");
    fputs("a plain line\n"
          "{\"prompt\": \"from the image\", \"init_image\": \"init.png\", \"denoising_strength\": 0.5, \"seed\": 4}\n"
          "--prompt \"missing\" --init_image nothere.png\n"
          "--prompt \"junk\" --init_image junk.png\n"
          "--prompt \"inpaint\" --init_image init.png --mask init.png --seed 6\n",
          f);
    fclose(f);
    snprintf(args, sizeof args, "batch -m " TINY " '%s' -o '%s/out' --steps 2 -W 32 -H 32 --seed 1 --threads 1", list,
             dir);
    cr_assert_eq(run_in(dir, args), 1, "one or more jobs failed: %s", err);
    cr_assert(strstr(err, "3 rendered, 0 skipped, 2 failed"), "%s", err);
    cr_assert(strstr(err, "nothere.png"), "%s", err);
    cr_assert(strstr(err, "junk.png"), "%s", err);
    char p[8400], *text = NULL;
    snprintf(p, sizeof p, "%s/out/00001-4-from-the-image.png", dir);
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(strstr(text, "Denoising strength: 0.5"), "%s", text);
    free(text);
    snprintf(p, sizeof p, "%s/out/00004-6-inpaint.png", dir);
    cr_assert(exists(p), "%s", p);
    snprintf(p, sizeof p, "%s/out/manifest.jsonl", dir);
    slurp(p, out, sizeof out);
    cr_assert(strstr(out, "\"denoising_strength\":0.5"), "%s", out);
    cr_assert(strstr(out, "\"status\":\"failed\",\"error\":\"") && strstr(out, "nothere.png"), "%s", out);
    st_rmtree(dir);
    free(dir), free(list), free(junk);
}
