/* test_compare.c - `sdc compare`: step and sampler lists, the bitmap font,
 * the grid layout, RMSE/PSNR, and the command end to end on the tiny
 * model (grid size, cells, CSV, table, PNG parameters, early errors). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/grid.h"
#include "image/image.h"
#include "st_write.h"
#include "testutil.h"

/* stb_image, file-local (static) so no stbi_ symbol can clash with another
 * test file's copy. This stb version declares a function it never defines,
 * which GCC reports at the end of the file, so -Wunused-function stays off
 * here (not popped). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* ---- step and sampler lists -------------------------------------------------- */

static void expect_steps(const char *spec, const int *want, int n_want) {
    int got[128], n = -1;
    cr_assert_eq(sdc_parse_step_list(spec, got, 100, &n), SDC_OK, "\"%s\": %s", spec, sdc_last_error());
    cr_assert_eq(n, n_want, "\"%s\": %d counts, expected %d", spec, n, n_want);
    for (int i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "\"%s\"[%d] = %d, expected %d", spec, i, got[i], want[i]);
}

static void expect_bad_steps(const char *spec, const char *msg_part) {
    int got[128], n;
    cr_assert_eq(sdc_parse_step_list(spec, got, 100, &n), SDC_ERR_ARG, "\"%s\" should be refused", spec);
    cr_assert(strstr(sdc_last_error(), msg_part), "\"%s\": message \"%s\" lacks \"%s\"", spec, sdc_last_error(),
              msg_part);
}

Test(compare, step_lists) {
    expect_steps("5,10,20,50", (int[]){5, 10, 20, 50}, 4);
    expect_steps("20", (int[]){20}, 1);
    expect_steps("5-8", (int[]){5, 6, 7, 8}, 4);
    const int fives[] = {5, 10, 15, 20, 25, 30, 35, 40, 45, 50};
    expect_steps("5-50 (+5)", fives, 10);
    expect_steps("5-50(+5)", fives, 10);
    expect_steps("5-50:5", fives, 10);
    expect_steps("5 - 50 : 5", fives, 10);
    expect_steps("50-5 (-5)", fives, 10);
    expect_steps("5-12:5", (int[]){5, 10}, 2);
    expect_steps("8-5", (int[]){5, 6, 7, 8}, 4);
    /* sorted, duplicates dropped, spaces around items */
    expect_steps(" 20, 5 ,10,10, 5-10:5 ", (int[]){5, 10, 20}, 3);
    expect_steps("1,1000", (int[]){1, 1000}, 2);
}

Test(compare, step_list_errors) {
    expect_bad_steps("", "empty");
    expect_bad_steps("   ", "empty");
    expect_bad_steps("5,,10", "empty item");
    expect_bad_steps("5,10,", "empty item");
    expect_bad_steps(",5", "empty item");
    expect_bad_steps("0", "\"0\": steps must be 1 or more");
    expect_bad_steps("-5", "\"-5\": steps must be 1 or more");
    expect_bad_steps("0-10", "steps must be 1 or more");
    expect_bad_steps("1001", "at most 1000");
    expect_bad_steps("5-2000:5", "at most 1000");
    expect_bad_steps("99999999999", "\"99999999999\"");
    expect_bad_steps("abc", "\"abc\": expected a step count");
    expect_bad_steps("5.5", "\"5.5\"");
    expect_bad_steps("5-", "\"5-\"");
    expect_bad_steps("5-x", "\"5-x\"");
    expect_bad_steps("5-50:0", "increment");
    expect_bad_steps("5-50 (+0)", "increment");
    expect_bad_steps("5-50 (+5", "\"5-50 (+5\"");
    expect_bad_steps("5-50:5x", "\"5-50:5x\"");
    expect_bad_steps("5 10", "\"5 10\"");
    expect_bad_steps("1-101", "more than 100");
    expect_bad_steps("1-50,51-101", "more than 100");
    int got[8], n;
    cr_assert_eq(sdc_parse_step_list("1-9", got, 8, &n), SDC_ERR_ARG, "the cap counts before dropping duplicates");
    cr_assert_eq(sdc_parse_step_list(NULL, got, 8, &n), SDC_ERR_ARG);
}

Test(compare, sampler_lists) {
    int s[8], n = 0;
    cr_assert_eq(sdc_parse_sampler_list("ddim, ddpm,euler ,euler_a,dpmpp_2m", s, 5, &n), SDC_OK, "%s",
                 sdc_last_error());
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(s[i], i);
    cr_assert_eq(sdc_parse_sampler_list("euler,ddim", s, 5, &n), SDC_OK);
    cr_assert(n == 2 && s[0] == 2 && s[1] == 0, "user order kept");
    cr_assert_eq(sdc_parse_sampler_list("ddim,heun", s, 5, &n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "unknown sampler \"heun\""), "%s", sdc_last_error());
    cr_assert_eq(sdc_parse_sampler_list("euler,ddim,euler", s, 5, &n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "euler is listed twice"), "%s", sdc_last_error());
    cr_assert_eq(sdc_parse_sampler_list("", s, 5, &n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "empty"), "%s", sdc_last_error());
    cr_assert_eq(sdc_parse_sampler_list("ddim,", s, 5, &n), SDC_ERR_ARG);
    cr_assert_eq(sdc_parse_sampler_list("a_very_long_sampler_name_that_is_not_one", s, 5, &n), SDC_ERR_ARG);
}

/* ---- font ------------------------------------------------------------------- */

Test(compare, font_glyphs_distinct) {
    for (int a = 32; a <= 126; a++) {
        const uint8_t *ga = sdc_font_glyph(a);
        int bits = 0;
        for (int r = 0; r < SDC_FONT_H; r++) {
            cr_assert_eq(ga[r] & ~0x1f, 0, "'%c' row %d has bits outside the 5 columns", a, r);
            bits += __builtin_popcount(ga[r]);
        }
        if (a == ' ') cr_assert_eq(bits, 0, "space is blank");
        else cr_assert_gt(bits, 0, "'%c' has no pixels", a);
        for (int b = 32; b < a; b++)
            cr_assert(memcmp(ga, sdc_font_glyph(b), SDC_FONT_H) != 0, "'%c' and '%c' are drawn alike", a, b);
    }
    cr_assert(sdc_font_glyph('\n') == sdc_font_glyph('?') && sdc_font_glyph(200) == sdc_font_glyph('?'),
              "non-printables draw as '?'");
    /* descenders only where they belong; nothing else below the baseline */
    for (int a = 32; a <= 126; a++) {
        bool below = sdc_font_glyph(a)[7] || sdc_font_glyph(a)[8];
        cr_assert_eq(below, strchr("gjpqy,_|", a) != NULL, "'%c' below the baseline", a);
    }
}

/* Drawn pixels' bounding box of text at scale s. */
static void ink_box(const char *text, int s, int *x0, int *y0, int *x1, int *y1) {
    const int w = 400, h = 60;
    uint8_t *rgb = calloc((size_t)w * h * 3, 1);
    const uint8_t ink[3] = {255, 255, 255};
    sdc_draw_text(rgb, w, h, 10, 5, text, s, ink);
    *x0 = w, *y0 = h, *x1 = -1, *y1 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (rgb[((size_t)y * w + x) * 3]) {
                if (x < *x0) *x0 = x;
                if (y < *y0) *y0 = y;
                if (x > *x1) *x1 = x;
                if (y > *y1) *y1 = y;
            }
    free(rgb);
}

Test(compare, text_width_and_drawing) {
    cr_assert_eq(sdc_text_width("", 2), 0);
    cr_assert_eq(sdc_text_width(NULL, 2), 0);
    cr_assert_eq(sdc_text_width("a", 1), 5);
    cr_assert_eq(sdc_text_width("ab", 1), 11);
    cr_assert_eq(sdc_text_width("ab", 2), 22);
    cr_assert_eq(sdc_text_width("dpmpp_2m", 3), 8 * 18 - 3);
    cr_assert_eq(sdc_text_height(1), 9);
    cr_assert_eq(sdc_text_height(2), 18);
    /* H starts in column 0 and W ends in column 4: the ink spans exactly
     * the computed width; capitals are 7 rows high */
    for (int s = 1; s <= 3; s++) {
        int x0, y0, x1, y1;
        ink_box("HMW", s, &x0, &y0, &x1, &y1);
        cr_assert_eq(x0, 10);
        cr_assert_eq(x1 - x0 + 1, sdc_text_width("HMW", s), "scale %d", s);
        cr_assert_eq(y0, 5);
        cr_assert_eq(y1 - y0 + 1, SDC_FONT_CAP * s, "scale %d", s);
        ink_box("Hg", s, &x0, &y0, &x1, &y1);
        cr_assert_eq(y1 - y0 + 1, sdc_text_height(s), "descender reaches the last row at scale %d", s);
    }
    /* clipped, not written out of bounds (ASan would notice) */
    uint8_t small[4 * 4 * 3] = {0};
    const uint8_t ink[3] = {9, 9, 9};
    sdc_draw_text(small, 4, 4, -3, -2, "XYZ", 2, ink);
    sdc_draw_text(small, 4, 4, 2, 2, "XYZ", 2, ink);
}

Test(compare, seconds_captions) {
    const struct { double t; const char *s; } cases[] = {
        {0.0, "0.00 s"}, {0.421, "0.42 s"}, {9.99, "9.99 s"}, {9.996, "10.0 s"}, {12.34, "12.3 s"},
        {99.96, "100 s"}, {1234.4, "1234 s"}, {99999.0, "99999 s"}, {200000.0, "56 h"}, {-1, "0.00 s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[16];
        sdc_grid_format_seconds(cases[i].t, buf, sizeof buf);
        cr_assert_str_eq(buf, cases[i].s, "%g s", cases[i].t);
        cr_assert_leq(strlen(buf), 7);
    }
}

/* ---- layout and distances ------------------------------------------------------ */

Test(compare, layout_formula) {
    const char *labels[] = {"ddim", "dpmpp_2m karras"};
    sdc_grid_layout l;
    cr_assert_eq(sdc_grid_layout_make(2, 3, 512, 512, labels, &l), SDC_OK);
    /* s = 2: gap 4, pad 4, text 18; label = 15 * 12 - 2 + 8; col = 512 */
    cr_assert_eq(l.scale, 2);
    cr_assert_eq(l.label_w, 186);
    cr_assert_eq(l.col_w, 512);
    cr_assert_eq(l.width, 4 + 186 + 3 * (4 + 512) + 4);
    cr_assert_eq(l.height, 4 + (18 + 8) + 2 * (4 + 512 + 18 + 8) + 4);
    int x, y;
    sdc_grid_image_origin(&l, 1, 2, &x, &y);
    cr_assert_eq(x, 8 + 186 + 2 * 516);
    cr_assert_eq(y, 8 + 26 + 542);
    /* small cells: scale 1, columns widened to fit a 7-character caption */
    const char *short_labels[] = {"ddim"};
    cr_assert_eq(sdc_grid_layout_make(1, 1, 32, 48, short_labels, &l), SDC_OK);
    cr_assert_eq(l.scale, 1);
    cr_assert_eq(l.label_w, 29 + 4, "at least as wide as \"steps\"");
    cr_assert_eq(l.col_w, 41 + 4);
    sdc_grid_image_origin(&l, 0, 0, &x, &y);
    cr_assert_eq(x, 4 + 33 + (45 - 32) / 2);
    cr_assert_eq(sdc_grid_layout_make(1, 1, 768, 768, short_labels, &l), SDC_OK);
    cr_assert_eq(l.scale, 3);
    cr_assert_eq(sdc_grid_layout_make(0, 3, 64, 64, NULL, &l), SDC_ERR_ARG);
    cr_assert_eq(sdc_grid_layout_make(10, 10, 4096, 4096, NULL, &l), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "too large"), "%s", sdc_last_error());
}

Test(compare, rmse_psnr) {
    uint8_t a[300], b[300];
    memset(a, 100, sizeof a);
    memset(b, 100, sizeof b);
    cr_assert_eq(sdc_rmse_u8(a, b, sizeof a), 0.0);
    cr_assert(isinf(sdc_psnr_from_rmse(0.0)) && sdc_psnr_from_rmse(0.0) > 0);
    memset(b, 110, sizeof b);
    cr_assert_float_eq(sdc_rmse_u8(a, b, sizeof a), 10.0, 1e-12);
    cr_assert_float_eq(sdc_psnr_from_rmse(10.0), 20.0 * log10(25.5), 1e-12);
    for (int i = 0; i < 300; i++) b[i] = (uint8_t)(100 + (i % 2 ? 3 : -3)); /* +-3: rmse 3 */
    cr_assert_float_eq(sdc_rmse_u8(a, b, sizeof a), 3.0, 1e-12);
    a[0] = 0, b[0] = 255;
    cr_assert_float_eq(sdc_rmse_u8(a, b, 1), 255.0, 1e-12);
    cr_assert_float_eq(sdc_psnr_from_rmse(255.0), 0.0, 1e-12);
}

/* ---- the command ------------------------------------------------------------------ */

/* Run `sdc ARGS` in dir; stdout and stderr into malloc'd strings. */
static int run_sdc(const char *dir, const char *args, char **out, char **err) {
    char *o = st_path(dir, "stdout.txt"), *e = st_path(dir, "stderr.txt");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", sdc_cli_path(), args, o, e);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "sdc %s died from a signal", args);
    *out = test_read_file(o);
    *err = test_read_file(e);
    unlink(o), unlink(e);
    free(o), free(e);
    return WEXITSTATUS(rc);
}

#define MODEL FIXTURES "/tiny_sd1.safetensors"

Test(compare, end_to_end_grid_table_and_csv, .timeout = 120) {
    char *dir = st_tmpdir(), *png = st_path(dir, "grid.png"), *csv = st_path(dir, "grid.csv");
    char args[4096], *out, *err;
    snprintf(args, sizeof args,
             "compare -m " MODEL " -p 'a red circle' -n 'blurry' --steps 2-4 --samplers ddim,euler --seed 42 "
             "--cfg 5 -W 32 -H 32 --backend cpu -o '%s'", png);
    cr_assert_eq(run_sdc(dir, args, &out, &err), 0, "stderr: %s", err);

    /* the grid: layout formula at 32x32 (scale 1: gap 2, pad 2, text 9) */
    const int s = 1, gap = 2 * s, pad = 2 * s, text = 9 * s, W = 32, H = 32, R = 2, C = 3;
    const int label = 5 * 6 * s - s + 2 * pad; /* "euler" and "steps" are the widest */
    const int col = (7 * 6 * s - s + 2 * pad) > W ? (7 * 6 * s - s + 2 * pad) : W;
    const int head = text + 2 * pad, row = H + text + 2 * pad;
    const int gw = gap + label + C * (gap + col) + gap, gh = gap + head + R * (gap + row) + gap;
    int w, h, ch;
    uint8_t *px = stbi_load(png, &w, &h, &ch, 3);
    cr_assert_not_null(px, "stb_image cannot read %s: %s", png, stbi_failure_reason());
    cr_assert_eq(w, gw, "width %d, layout says %d", w, gw);
    cr_assert_eq(h, gh, "height %d, layout says %d", h, gh);
    uint8_t cells[2][3][32 * 32 * 3];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            int x0 = 2 * gap + label + c * (gap + col) + (col - W) / 2, y0 = 2 * gap + head + r * (gap + row);
            for (int j = 0; j < H; j++)
                memcpy(cells[r][c] + j * W * 3, px + ((size_t)(y0 + j) * w + x0) * 3, (size_t)W * 3);
        }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            if (c + 1 < C) cr_assert(memcmp(cells[r][c], cells[r][c + 1], sizeof cells[r][c]) != 0,
                                     "cell (%d,%d) equals its right neighbour", r, c);
            if (r + 1 < R) cr_assert(memcmp(cells[r][c], cells[r + 1][c], sizeof cells[r][c]) != 0,
                                     "cell (%d,%d) equals its lower neighbour", r, c);
        }
    /* the header and the labels are drawn: dark pixels in the header row
     * and the left column, none in the gaps between cells */
    int dark_head = 0, dark_label = 0, dark_gap = 0;
    for (int y = gap; y < gap + head; y++)
        for (int x = 0; x < w; x++) dark_head += px[((size_t)y * w + x) * 3] < 64;
    for (int y = gap + head; y < h; y++)
        for (int x = gap; x < gap + label; x++) dark_label += px[((size_t)y * w + x) * 3] < 64;
    for (int y = 0; y < h; y++)
        for (int x = gap + label + col + gap; x < gap + label + col + 2 * gap; x++) dark_gap += px[((size_t)y * w + x) * 3] < 64;
    cr_assert_gt(dark_head, 20, "header text");
    cr_assert_gt(dark_label, 20, "row labels");
    cr_assert_eq(dark_gap, 0, "gap between columns 0 and 1 is background");
    stbi_image_free(px);

    /* the CSV: header + 6 rows, RMSE 0 / PSNR inf at each sampler's 4 steps */
    char *table = test_read_file(csv);
    cr_assert_not_null(table, "no %s", csv);
    char *line = strtok(table, "\n");
    cr_assert_str_eq(line, "sampler,steps,seconds,rmse,psnr");
    int rows = 0;
    const char *want_sampler[] = {"ddim", "ddim", "ddim", "euler", "euler", "euler"};
    while ((line = strtok(NULL, "\n"))) {
        char name[32], psnr[32];
        int steps;
        double secs, rmse;
        cr_assert_eq(sscanf(line, "%31[^,],%d,%lf,%lf,%31s", name, &steps, &secs, &rmse, psnr), 5, "%s", line);
        cr_assert_lt(rows, 6, "extra row %s", line);
        cr_assert_str_eq(name, want_sampler[rows]);
        cr_assert_eq(steps, 2 + rows % 3, "%s", line);
        cr_assert_gt(secs, 0.0, "%s", line);
        if (steps == 4) {
            cr_assert_eq(rmse, 0.0, "%s", line);
            cr_assert_str_eq(psnr, "inf", "%s", line);
        } else {
            cr_assert_gt(rmse, 0.0, "%s", line);
            double p = atof(psnr);
            cr_assert(p > 0 && p < 100 && fabs(p - 20 * log10(255 / rmse)) < 0.01, "%s", line);
        }
        rows++;
    }
    cr_assert_eq(rows, 6);
    free(table);

    /* the table on stdout */
    cr_assert(strstr(out, "sampler") && strstr(out, "steps") && strstr(out, "seconds") && strstr(out, "rmse") &&
              strstr(out, "psnr"), "%s", out);
    int out_lines = 0, inf_lines = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++) out_lines++;
    for (char *p = out; (p = strstr(p, " inf\n")); p++) inf_lines++;
    cr_assert_eq(out_lines, 7, "header + 6 rows: %s", out);
    cr_assert_eq(inf_lines, 2, "%s", out);
    cr_assert(strstr(out, "\neuler ") && strstr(out, "\nddim "), "%s", out);

    /* the parameters chunk describes the comparison */
    char *params = NULL;
    cr_assert_eq(sdc_png_read_parameters(png, &params), SDC_OK, "%s", sdc_last_error());
    cr_assert_not_null(params);
    const char *want[] = {"a red circle\n", "Negative prompt: blurry\n", "Seed: 42", "CFG scale: 5,", "Size: 32x32",
                          "X Type: Steps, X Values: \"2,3,4\"", "Y Type: Sampler, Y Values: \"DDIM,Euler\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(params, want[i]), "parameters lack \"%s\": %s", want[i], params);
    free(params);
    free(out), free(err);

    /* --csv names the table; a one-column grid works; --karras labels rows */
    char *csv2 = st_path(dir, "table.csv"), *png2 = st_path(dir, "one.png");
    snprintf(args, sizeof args,
             "compare -m " MODEL " -p x --steps 2 --samplers ddim,euler --karras --seed 1 -W 32 -H 32 --backend cpu "
             "-o '%s' --csv '%s'", png2, csv2);
    cr_assert_eq(run_sdc(dir, args, &out, &err), 0, "stderr: %s", err);
    table = test_read_file(csv2);
    cr_assert(table && strstr(table, "\nddim,2,") && strstr(table, "\neuler karras,2,"), "%s", table);
    cr_assert(strstr(err, "--karras applies to euler and dpmpp_2m"), "%s", err);
    char *unwanted = st_path(dir, "one.csv");
    cr_assert_neq(access(unwanted, F_OK), 0, "--csv replaces the default table path");
    free(table), free(out), free(err), free(unwanted), free(csv2), free(png2);

    st_rmtree(dir);
    free(dir), free(png), free(csv);
}

Test(compare, bad_input_is_refused_before_loading) {
    char *dir = st_tmpdir(), *png = st_path(dir, "grid.png");
    const struct { const char *opts, *msg; } cases[] = {
        {"--samplers ddim,heun --steps 2", "unknown sampler \"heun\""},
        {"--samplers ddim --steps 0", "steps must be 1 or more"},
        {"--samplers ddim --steps 5,-3", "steps must be 1 or more"},
        {"--samplers ddim --steps ''", "step list: empty"},
        {"--samplers '' --steps 5", "sampler list: empty"},
        {"--samplers ddim --steps 5-x", "\"5-x\""},
        {"--samplers ddim,ddpm,euler,euler_a,dpmpp_2m --steps 1-21", "5 samplers x 21 step counts = 105 images, more than 100"},
        {"--samplers ddim --steps 1-101", "more than 100"},
        {"--samplers ddim --karras --steps 5", "--karras: none of the samplers"},
        {"--samplers ddim --steps 5 -W 30", "multiples of 8"},
        {"--samplers ddim --steps 5 --bogus", "unknown option"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024], *out, *err;
        /* a model that does not exist: reaching the load would exit 1 */
        snprintf(args, sizeof args, "compare -m '%s/missing.safetensors' -p x %s -o '%s'", dir, cases[i].opts, png);
        cr_assert_eq(run_sdc(dir, args, &out, &err), 2, "%s: exit 2 expected; stderr: %s", cases[i].opts, err);
        cr_assert(strstr(err, cases[i].msg), "%s: stderr lacks \"%s\": %s", cases[i].opts, cases[i].msg, err);
        cr_assert_str_empty(out, "%s", out);
        free(out), free(err);
    }
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "compare -p x --samplers ddim --steps 5 -o '%s'", png);
    cr_assert_eq(run_sdc(dir, args, &out, &err), 2);
    cr_assert(strstr(err, "missing -m MODEL"), "%s", err);
    free(out), free(err);
    cr_assert_neq(access(png, F_OK), 0, "no grid written");
    st_rmtree(dir);
    free(dir), free(png);
}
