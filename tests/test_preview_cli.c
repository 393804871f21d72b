/* test_preview_cli.c - `sdc txt2img --preview` as a user meets it: the
 * preview file written whole (no temporary file left), at the output size,
 * holding what the library's last preview holds; the options' errors, each
 * with its message and exit status; `sdc serve`'s preview options. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "image/image.h"
#include "sdc.h"
#include "st_write.h"
#include "testutil.h"

#define TINY FIXTURES "/tiny_sd1.safetensors"
#define TAESD FIXTURES "/preview/taesd_tiny.safetensors"
#define RENDER "txt2img -m " TINY " -p 'a red circle' -W 32 -H 24 --steps 4 --seed 3 --threads 1"

static char out[1 << 16], err[1 << 16];

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* `sdc ARGS`, each "@/" in ARGS standing for dir (a fresh temporary
 * folder) and "/"; stdout and stderr kept (as files beside dir: the tests
 * count dir's files) */
static int run_in(const char *dir, const char *args) {
    char cmd[16800], o[4200], e[4200], a[8192] = "";
    for (const char *p = args; *p && strlen(a) < sizeof a - 4200;) {
        if (!strncmp(p, "@/", 2)) snprintf(a + strlen(a), sizeof a - strlen(a), "%s/", dir), p += 2;
        else snprintf(a + strlen(a), sizeof a - strlen(a), "%c", *p++);
    }
    snprintf(o, sizeof o, "%s.out", dir);
    snprintf(e, sizeof e, "%s.err", dir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", sdc_cli_path(), a, o, e);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "sdc %s died from a signal", args);
    slurp(o, out, sizeof out);
    slurp(e, err, sizeof err);
    remove(o), remove(e);
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err);
    return WEXITSTATUS(rc);
}

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* the library's last preview for RENDER's settings (the CLI's own path
 * made of the same calls) */
typedef struct last {
    unsigned char *rgb;
    int w, h, calls;
} last;

static void keep(int step, int steps, const unsigned char *rgb, int w, int h, void *user) {
    (void)step, (void)steps;
    last *l = user;
    l->rgb = realloc(l->rgb, (size_t)w * h * 3);
    memcpy(l->rgb, rgb, (size_t)w * h * 3);
    l->w = w, l->h = h, l->calls++;
}

static last library_preview(const char *taesd, int every) {
    sdc_params mp = sdc_params_default();
    mp.model_path = TINY;
    mp.backend = SDC_BACKEND_CPU;
    mp.taesd_path = taesd;
    mp.n_threads = 1;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&mp, &ctx), SDC_OK, "%s", sdc_last_error());
    sdc_gen_params g = sdc_gen_params_default();
    g.prompt = "a red circle";
    g.width = 32, g.height = 24, g.steps = 4, g.seed = 3;
    last l = {0};
    g.on_preview = keep, g.user = &l, g.preview_every = every;
    g.preview = taesd ? SDC_PREVIEW_TAESD : SDC_PREVIEW_CHEAP;
    sdc_image img;
    cr_assert_eq(sdc_txt2img(ctx, &g, &img), SDC_OK, "%s", sdc_last_error());
    sdc_image_free(&img);
    sdc_free(ctx);
    return l;
}

/* --preview FILE: a PNG of the output's size, the last preview's bytes
 * exactly; the folder holds the image and the preview only */
static void preview_case(const char *extra, const char *taesd, int every) {
    char *dir = st_tmpdir();
    char args[1024];
    snprintf(args, sizeof args, RENDER " -o @/out.png --preview @/pv.png %s", extra);
    cr_assert_eq(run_in(dir, args), 0, "%s", err);
    char *pv = st_path(dir, "pv.png");
    unsigned char *rgb = NULL;
    int w, h;
    cr_assert_eq(sdc_image_read_rgb(pv, &rgb, &w, &h), SDC_OK, "%s", sdc_last_error());
    cr_assert(w == 32 && h == 24, "the preview is %dx%d, the image 32x24", w, h);
    cr_assert_eq(files_in(dir), 2, "out.png and pv.png only (no temporary file left)");
    last l = library_preview(taesd, every);
    cr_assert_eq(l.calls, 4 / every);
    cr_assert(l.w == w && l.h == h);
    cr_assert_eq(memcmp(rgb, l.rgb, (size_t)w * h * 3), 0, "the file is not the last preview");
    free(rgb), free(l.rgb), free(pv);
    st_rmtree(dir);
    free(dir);
}

Test(preview_cli, writes_the_cheap_preview, .timeout = 120) { preview_case("--preview-every 2", NULL, 2); }

Test(preview_cli, writes_the_taesd_preview, .timeout = 120) { preview_case("--taesd " TAESD, TAESD, 1); }

Test(preview_cli, option_errors, .timeout = 120) {
    char *dir = st_tmpdir();
    cr_assert_eq(run_in(dir, RENDER " --preview-every 2"), 2);
    cr_assert(strstr(err, "give --preview FILE too"), "%s", err);
    cr_assert_eq(run_in(dir, RENDER " --taesd " TAESD), 2);
    cr_assert(strstr(err, "give --preview FILE too"), "%s", err);
    cr_assert_eq(run_in(dir, RENDER " --preview @/pv.png --preview-every 0"), 2);
    cr_assert(strstr(err, "--preview-every 0"), "%s", err);
    cr_assert_eq(run_in(dir, RENDER " --preview no/such/folder/pv.png"), 1);
    cr_assert(strstr(err, "no/such/folder"), "%s", err);
    /* a TAESD file that is not one: named, before any step */
    cr_assert_eq(run_in(dir, RENDER " -o @/out.png --preview @/pv.png --taesd " TINY), 1);
    cr_assert(strstr(err, TINY) && strstr(err, "1.weight is missing"), "%s", err);
    cr_assert_eq(files_in(dir), 0, "nothing written");
    /* sdc serve's options */
    cr_assert_eq(run_in(dir, "serve -m " TINY " --taesd " TAESD), 2);
    cr_assert(strstr(err, "give --preview-every N too"), "%s", err);
    cr_assert_eq(run_in(dir, "serve -m " TINY " --preview-every 0"), 2);
    cr_assert_eq(run_in(dir, "serve --help"), 0);
    cr_assert(strstr(out, "--preview-every N") && strstr(out, "current_image"), "%s", out);
    cr_assert_eq(run_in(dir, "txt2img --help"), 0);
    cr_assert(strstr(out, "--preview FILE") && strstr(out, "output size"), "%s", out);
    st_rmtree(dir);
    free(dir);
}
