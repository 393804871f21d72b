/* test_batch.c - `sdc batch`: prompt lists in three formats (plain, A1111
 * "prompts from file", JSON Lines) with defaults, overrides, batch_size
 * expansion and bad lines reported by line number; shards; output names;
 * the manifest; and the command end to end: resumable re-runs, kill -9 in
 * the middle, Ctrl-C, and --batch-size giving the images of one-by-one. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* stb_image, file-local (see test_image.c for why -Wunused-function stays
 * off for this file). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#include "cli/batch.h"
#include "image/image.h"
#include "st_write.h"
#include "testutil.h"

#define LIST50 FIXTURES "/batch/prompts50.txt"
#define LIST_SAME FIXTURES "/batch/same_settings.txt"

static sdc_batch_defaults defaults(void) {
    sdc_batch_defaults d = {.gen = sdc_gen_params_default(), .base_seed = 1000};
    d.gen.width = d.gen.height = 32;
    d.gen.steps = 2;
    return d;
}

static void parse(const char *text, const sdc_batch_defaults *d, sdc_batch_list *l) {
    cr_assert_eq(sdc_batch_parse(text, strlen(text), "list.txt", d, l), SDC_OK, "%s", sdc_last_error());
}

/* ------------------------------------------------------------- parsing */

Test(batch, plain_lines_comments_and_defaults) {
    sdc_batch_defaults d = defaults();
    d.gen.negative_prompt = "ugly";
    sdc_batch_list l;
    parse("\xEF\xBB\xBF# a comment\n\n  a red circle  \r\n   # indented comment\n\t\nblue square, (shiny:1.2)\nlast", &d, &l);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.jobs[0].gen.prompt, "a red circle");
    cr_assert_eq(l.jobs[0].line, 3);
    cr_assert_str_eq(l.jobs[1].gen.prompt, "blue square, (shiny:1.2)");
    cr_assert_eq(l.jobs[1].line, 6);
    cr_assert_str_eq(l.jobs[2].gen.prompt, "last");
    for (int i = 0; i < 3; i++) {
        const sdc_batch_job *j = &l.jobs[i];
        cr_assert_null(j->error);
        cr_assert_eq(j->index, i);
        cr_assert_eq(j->gen.seed, 1000u + i, "base seed + job index");
        cr_assert_not(j->seed_given);
        cr_assert_str_eq(j->gen.negative_prompt, "ugly");
        cr_assert_eq(j->gen.width, 32);
        cr_assert_eq(j->gen.steps, 2);
        cr_assert_str_eq(j->gen.sampler, "ddim");
    }
    sdc_batch_list_free(&l);
}

static void shlex_case(const char *line, int n, const char *const *want) {
    char **argv;
    int argc;
    cr_assert_eq(sdc_batch_shlex(line, &argv, &argc), SDC_OK, "%s: %s", line, sdc_last_error());
    cr_assert_eq(argc, n, "%s: %d words", line, argc);
    for (int i = 0; i < n; i++) cr_assert_str_eq(argv[i], want[i], "%s: word %d", line, i);
    free(argv);
}

/* Expected values are Python's shlex.split. */
Test(batch, shlex_quoting_as_python) {
    shlex_case("--prompt \"a \\\"quoted\\\" word\" --negative_prompt 'it'\"'\"'s' x", 5,
               (const char *[]){"--prompt", "a \"quoted\" word", "--negative_prompt", "it's", "x"});
    shlex_case("a\\ b \"c\\d\" 'e\\f' \"g\\\\h\" \"\"", 5, (const char *[]){"a b", "c\\d", "e\\f", "g\\h", ""});
    shlex_case("--prompt a\"b c\"d", 2, (const char *[]){"--prompt", "ab cd"});
    shlex_case("  lead \t trail  ", 2, (const char *[]){"lead", "trail"});
    shlex_case("\"\\$x\"", 1, (const char *[]){"\\$x"});
    char **argv;
    int argc;
    cr_assert_eq(sdc_batch_shlex("--prompt \"open", &argv, &argc), SDC_ERR_FORMAT);
    cr_assert_eq(sdc_batch_shlex("--prompt 'open", &argv, &argc), SDC_ERR_FORMAT);
    cr_assert_eq(sdc_batch_shlex("--prompt x\\", &argv, &argc), SDC_ERR_FORMAT);
}

Test(batch, a1111_lines_override_defaults) {
    sdc_batch_defaults d = defaults();
    sdc_batch_list l;
    parse("--prompt a cat in a hat --negative_prompt \"blurry, dark\" --seed 42 --steps 3 --cfg_scale 6.5 "
          "--sampler_name \"DPM++ 2M Karras\" --width 48 --height 64\n"
          "--prompt 'single quoted' --sampler_name \"Euler a\" --outpath_samples /x --do_not_save_grid true\n"
          "--steps 4 --prompt \"--not an option\"\n",
          &d, &l);
    cr_assert_eq(l.n, 3);
    const sdc_gen_params *g = &l.jobs[0].gen;
    cr_assert_null(l.jobs[0].error, "%s", l.jobs[0].error);
    cr_assert_str_eq(g->prompt, "a cat in a hat", "A1111 joins the words up to the next --option");
    cr_assert_str_eq(g->negative_prompt, "blurry, dark");
    cr_assert_eq(g->seed, 42u);
    cr_assert(l.jobs[0].seed_given);
    cr_assert_eq(g->steps, 3);
    cr_assert_float_eq(g->cfg_scale, 6.5f, 0);
    cr_assert_str_eq(g->sampler, "dpmpp_2m");
    cr_assert(g->karras);
    cr_assert_eq(g->width, 48);
    cr_assert_eq(g->height, 64);
    g = &l.jobs[1].gen;
    cr_assert_null(l.jobs[1].error, "%s", l.jobs[1].error);
    cr_assert_str_eq(g->prompt, "single quoted");
    cr_assert_str_eq(g->sampler, "euler_a");
    cr_assert_eq(g->seed, 1001u);
    cr_assert_eq(g->steps, 2, "default steps");
    cr_assert_float_eq(g->cfg_scale, 7.5f, 0);
    /* as in A1111, --prompt takes the next word even when it starts with -- */
    cr_assert_null(l.jobs[2].error, "%s", l.jobs[2].error);
    cr_assert_str_eq(l.jobs[2].gen.prompt, "--not an option");
    cr_assert_eq(l.jobs[2].gen.steps, 4);
    sdc_batch_list_free(&l);
}

Test(batch, json_lines) {
    sdc_batch_defaults d = defaults();
    d.gen.negative_prompt = "default neg";
    sdc_batch_list l;
    parse("{\"prompt\": \"a \\\"json\\\" cat\\u00e9\", \"seed\": 7, \"steps\": 5, \"cfg_scale\": 3, "
          "\"sampler_name\": \"euler\", \"width\": 40, \"height\": \"24\", \"restore_faces\": false}\n"
          "{\"prompt\": \"x\", \"negative_prompt\": \"\", \"seed\": -1}\n",
          &d, &l);
    cr_assert_eq(l.n, 2);
    const sdc_gen_params *g = &l.jobs[0].gen;
    cr_assert_null(l.jobs[0].error, "%s", l.jobs[0].error);
    cr_assert_str_eq(g->prompt, "a \"json\" cat\xc3\xa9");
    cr_assert_eq(g->seed, 7u);
    cr_assert_eq(g->steps, 5);
    cr_assert_float_eq(g->cfg_scale, 3.0f, 0);
    cr_assert_str_eq(g->sampler, "euler");
    cr_assert_not(g->karras);
    cr_assert_eq(g->width, 40);
    cr_assert_eq(g->height, 24, "numbers as strings work as in A1111");
    cr_assert_str_eq(g->negative_prompt, "default neg");
    cr_assert_null(l.jobs[1].error, "%s", l.jobs[1].error);
    cr_assert_str_eq(l.jobs[1].gen.negative_prompt, "", "a line's empty negative overrides the default");
    cr_assert_eq(l.jobs[1].gen.seed, 1001u, "seed -1: base seed + index");
    cr_assert_not(l.jobs[1].seed_given);
    sdc_batch_list_free(&l);
}

Test(batch, a1111_sampler_names) {
    static const struct {
        const char *name, *want;
        int karras;
    } cases[] = {
        {"Euler a", "euler_a", 0},       {"euler A", "euler_a", 0},        {"k_euler_a", "euler_a", 0},
        {"Euler", "euler", 0},           {"DDIM", "ddim", 0},              {"DPM++ 2M", "dpmpp_2m", 0},
        {"DPM++ 2M Karras", "dpmpp_2m", 1}, {"k_dpmpp_2m_ka", "dpmpp_2m", 1}, {"Euler Karras", "euler", 1},
        {"dpmpp_2m", "dpmpp_2m", 0},     {"ddpm", "ddpm", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = NULL;
        int k = -1;
        cr_assert_eq(sdc_batch_sampler(cases[i].name, &s, &k), SDC_OK, "%s: %s", cases[i].name, sdc_last_error());
        cr_assert_str_eq(s, cases[i].want, "%s", cases[i].name);
        cr_assert_eq(k, cases[i].karras, "%s", cases[i].name);
    }
    const char *s;
    int k;
    cr_assert_eq(sdc_batch_sampler("Heun", &s, &k), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "unknown sampler \"Heun\""), "%s", sdc_last_error());
    /* the default --karras carries over to a line's sampler that has it */
    sdc_batch_defaults d = defaults();
    d.gen.sampler = "dpmpp_2m";
    d.gen.karras = true;
    sdc_batch_list l;
    parse("plain\n--prompt a --sampler_name DDIM\n--prompt b --sampler_name Euler\n", &d, &l);
    cr_assert_eq(l.n, 3);
    cr_assert(l.jobs[0].gen.karras);
    cr_assert_null(l.jobs[1].error, "%s", l.jobs[1].error);
    cr_assert_not(l.jobs[1].gen.karras, "DDIM has no Karras sigmas");
    cr_assert(l.jobs[2].gen.karras);
    sdc_batch_list_free(&l);
}

Test(batch, batch_size_expands_with_consecutive_seeds) {
    sdc_batch_defaults d = defaults();
    sdc_batch_list l;
    parse("first\n--prompt a --batch_size 3 --seed 50\n{\"prompt\": \"b\", \"batch_size\": 2, \"n_iter\": 2}\nlast\n",
          &d, &l);
    cr_assert_eq(l.n, 1 + 3 + 4 + 1);
    unsigned long long want[] = {1000, 50, 51, 52, 1004, 1005, 1006, 1007, 1008};
    int lines[] = {1, 2, 2, 2, 3, 3, 3, 3, 4};
    for (int i = 0; i < l.n; i++) {
        cr_assert_null(l.jobs[i].error);
        cr_assert_eq(l.jobs[i].index, i);
        cr_assert_eq(l.jobs[i].gen.seed, want[i], "job %d seed %llu", i, l.jobs[i].gen.seed);
        cr_assert_eq(l.jobs[i].line, lines[i]);
    }
    cr_assert_str_eq(l.jobs[3].gen.prompt, "a");
    sdc_batch_list_free(&l);
}

Test(batch, bad_lines_named_by_line_number) {
    static const char *text =
        "good one\n"                                                 /* 1 */
        "--prompt x --sampler_name Heun\n"                           /* 2 */
        "--prompt x --steps many\n"                                  /* 3 */
        "{\"prompt\": \"x\", \"width\": 36}\n"                       /* 4 */
        "--prompt \"unterminated\n"                                  /* 5 */
        "{\"prompt\": \"x\",}\n"                                     /* 6 */
        "{\"prompt\": \"x\", \"colour\": 3}\n"                       /* 7 */
        "--prompt x --colour 3\n"                                    /* 8 */
        "# fine\n"                                                   /* 9 */
        "--prompt x --cfg_scale nan\n"                               /* 10 */
        "--prompt x --steps\n"                                       /* 11 */
        "--steps 3\n"                                                /* 12 */
        "{\"prompt\": 5}\n"                                          /* 13 */
        "--prompt x --subseed 4\n"                                   /* 14 */
        "bad \xff utf-8\n"                                           /* 15 */
        "--prompt x --steps 0\n"                                     /* 16 */
        "--prompt x --seed -5\n"                                     /* 17 */
        "--prompt x --batch_size 0\n"                                /* 18 */
        "{\"prompt\": \"x\", \"seed\": [1]}\n"                       /* 19 */
        "x --steps 3 stays a plain prompt\n";                        /* 20 */
    static const struct {
        int line;
        const char *reason;
    } want[] = {
        {2, "unknown sampler \"Heun\""},
        {3, "steps \"many\": expected a whole number"},
        {4, "size 36x32: width and height must be positive multiples of 8"},
        {5, "unterminated quote"},
        {6, "bad JSON at column"},
        {7, "unknown key \"colour\""},
        {8, "unknown key \"colour\""},
        {10, "cfg_scale \"nan\": expected a number"},
        {11, "--steps: missing value"},
        {12, "no prompt"},
        {13, "prompt: expected a string"},
        {14, "subseed is not supported by sdc"},
        {15, "not valid UTF-8"},
        {16, "steps 0: expected 1 to 1000"},
        {17, "seed \"-5\""},
        {18, "batch_size \"0\": expected a whole number from 1 to"},
        {19, "seed: expected a string, a number or a boolean"},
    };
    sdc_batch_defaults d = defaults();
    sdc_batch_list l;
    parse(text, &d, &l);
    const int nwant = (int)(sizeof want / sizeof want[0]);
    cr_assert_eq(l.n, 2 + nwant, "one job per line: %d", l.n);
    cr_assert_null(l.jobs[0].error);
    cr_assert_null(l.jobs[l.n - 1].error, "%s", l.jobs[l.n - 1].error);
    cr_assert_str_eq(l.jobs[l.n - 1].gen.prompt, "x --steps 3 stays a plain prompt");
    for (int i = 0; i < nwant; i++) {
        const sdc_batch_job *j = &l.jobs[1 + i];
        char prefix[64];
        snprintf(prefix, sizeof prefix, "list.txt:%d: ", want[i].line);
        cr_assert_not_null(j->error, "line %d parsed", want[i].line);
        cr_assert_eq(j->line, want[i].line);
        cr_assert_eq(j->index, 1 + i, "a bad line keeps its job index");
        cr_assert(strncmp(j->error, prefix, strlen(prefix)) == 0, "%s (want %s)", j->error, prefix);
        cr_assert(strstr(j->error, want[i].reason), "line %d: '%s' lacks '%s'", want[i].line, j->error,
                  want[i].reason);
    }
    cr_assert_eq(l.jobs[l.n - 1].gen.seed, 1000u + (unsigned)(l.n - 1), "seeds after bad lines stay put");
    sdc_batch_list_free(&l);
}

/* --------------------------------------------------- shards, names, PNG */

Test(batch, shards_cover_every_job_once) {
    int k, n;
    cr_assert_eq(sdc_batch_parse_shard("2/3", &k, &n), SDC_OK);
    cr_assert(k == 2 && n == 3);
    const char *bad[] = {"0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/2/3", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(sdc_batch_parse_shard(bad[i], &k, &n), SDC_ERR_ARG, "%s accepted", bad[i]);
    int hits[100] = {0};
    for (int s = 1; s <= 3; s++)
        for (int i = 0; i < 100; i++) hits[i] += sdc_batch_in_shard(i, s, 3);
    for (int i = 0; i < 100; i++) cr_assert_eq(hits[i], 1, "job %d in %d shards", i, hits[i]);
    cr_assert(sdc_batch_in_shard(7, 1, 1));
}

Test(batch, slug_and_file_names) {
    char s[41];
    sdc_batch_slug("A Red, (Shiny:1.2)  Circle!!", s);
    cr_assert_str_eq(s, "a-red-shiny-1-2-circle");
    sdc_batch_slug("--- caf\xc3\xa9 ---", s);
    cr_assert_str_eq(s, "caf");
    sdc_batch_slug("!!!", s);
    cr_assert_str_eq(s, "");
    sdc_batch_slug("abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij", s);
    cr_assert_eq(strlen(s), 40);
    cr_assert_str_eq(s, "abcdefghij-abcdefghij-abcdefghij-abcdefg");
    sdc_batch_slug("abcdefghij abcdefghij abcdefghij abcdef xyz", s);
    cr_assert_str_eq(s, "abcdefghij-abcdefghij-abcdefghij-abcdef", "no trailing dash");
    sdc_batch_job j = {.index = 7, .gen = {.prompt = "a red circle", .seed = 123}};
    char name[128];
    sdc_batch_filename(&j, name, sizeof name);
    cr_assert_str_eq(name, "00007-123-a-red-circle.png");
    j.gen.prompt = "()";
    j.index = 123456;
    sdc_batch_filename(&j, name, sizeof name);
    cr_assert_str_eq(name, "123456-123.png");
}

Test(batch, png_check) {
    char *dir = st_tmpdir(), *png = st_path(dir, "a.png"), *cut = st_path(dir, "cut.png"),
         *flip = st_path(dir, "flip.png");
    uint8_t rgb[16 * 8 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    cr_assert_eq(sdc_png_write(png, rgb, 16, 8, "a red circle"), SDC_OK, "%s", sdc_last_error());
    cr_assert(sdc_batch_png_ok(png));
    FILE *f = fopen(png, "rb");
    unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(n > 40 && n < sizeof buf);
    cr_assert_eq(st_write_bytes(cut, buf, n - 12), 0); /* IEND lost */
    cr_assert_not(sdc_batch_png_ok(cut));
    cr_assert_eq(st_write_bytes(cut, buf, n / 2), 0);
    cr_assert_not(sdc_batch_png_ok(cut));
    buf[n - 20] ^= 1; /* inside IDAT: CRC mismatch */
    cr_assert_eq(st_write_bytes(flip, buf, n), 0);
    cr_assert_not(sdc_batch_png_ok(flip));
    cr_assert_eq(st_write_bytes(flip, "not a png at all", 16), 0);
    cr_assert_not(sdc_batch_png_ok(flip));
    char *missing = st_path(dir, "missing.png");
    cr_assert_not(sdc_batch_png_ok(missing));
    free(missing);
    st_rmtree(dir);
    free(dir), free(png), free(cut), free(flip);
}

Test(batch, temp_files_of_own_shard_removed) {
    char *dir = st_tmpdir();
    const char *names[] = {"00000-1-a.png.Ab12Cd.tmp", "00001-2-b.png.xYz123.tmp", "00003-4.png.QQQQQQ.tmp",
                           "00003-4.png", "other.png.abcdef.tmp", "00006-1-a.png"};
    for (size_t i = 0; i < 6; i++) {
        char *p = st_path(dir, names[i]);
        cr_assert_eq(st_write_bytes(p, "x", 1), 0);
        free(p);
    }
    cr_assert_eq(sdc_batch_remove_temp(dir, 1, 3), 2, "jobs 0 and 3 are shard 1/3");
    const bool left[] = {false, true, false, true, true, true};
    for (size_t i = 0; i < 6; i++) {
        char *p = st_path(dir, names[i]);
        cr_assert_eq(access(p, F_OK) == 0, left[i], "%s", names[i]);
        free(p);
    }
    st_rmtree(dir);
    free(dir);
}

Test(batch, manifest_lines_and_base_seed) {
    sdc_batch_defaults d = defaults();
    d.gen.karras = true;
    d.gen.sampler = "euler";
    d.gen.cfg_scale = 0.1f;
    sdc_batch_list l;
    parse("a \"quoted\"\tprompt\n--prompt x --steps zero\n", &d, &l);
    sdc_batch_run run = {.source = "list.txt", .model = "m.safetensors", .clip_skip = 2, .base_seed = 1000,
                         .shard_k = 1, .shard_n = 2};
    sdc_batch_result ok = {.status = "ok", .group_size = 4, .seconds = 0.25, .seconds_denoise = 0.2};
    char *line = sdc_batch_manifest_line(&l.jobs[0], &ok, &run);
    cJSON *j = cJSON_Parse(line);
    cr_assert_not_null(j, "%s", line);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "file")->valuestring, "00000-1000-a-quoted-prompt.png");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "prompt")->valuestring, "a \"quoted\"\tprompt");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    cr_assert_eq(cJSON_GetObjectItem(j, "seed")->valuedouble, 1000);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "sampler")->valuestring, "euler");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "karras")));
    cr_assert_eq(cJSON_GetObjectItem(j, "group_size")->valueint, 4);
    cr_assert_eq(cJSON_GetObjectItem(j, "clip_skip")->valueint, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "shard")->valuestring, "1/2");
    cr_assert(strstr(line, "\"cfg_scale\":0.1,"), "shortest float: %s", line);
    cJSON_Delete(j);
    free(line);
    sdc_batch_result bad = {.status = "failed", .error = l.jobs[1].error};
    line = sdc_batch_manifest_line(&l.jobs[1], &bad, &run);
    j = cJSON_Parse(line);
    cr_assert_not_null(j, "%s", line);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "file")));
    cr_assert(strstr(cJSON_GetObjectItem(j, "error")->valuestring, "list.txt:2: steps \"zero\""), "%s", line);
    cJSON_Delete(j);
    free(line);
    sdc_batch_list_free(&l);

    /* the last base seed of this shard's lines; a line cut short is ignored */
    char *dir = st_tmpdir(), *path = st_path(dir, "manifest.jsonl");
    unsigned long long seed = 0;
    bool found = true;
    cr_assert_eq(sdc_batch_manifest_base_seed(path, 1, 1, &seed, &found), SDC_OK);
    cr_assert_not(found);
    int fd;
    cr_assert_eq(sdc_batch_manifest_open(path, &fd), SDC_OK);
    cr_assert_eq(sdc_batch_manifest_append(fd, "{\"job\":0,\"base_seed\":11,\"prompt\":\"\\\"base_seed\\\":5\"}"), SDC_OK);
    cr_assert_eq(sdc_batch_manifest_append(fd, "{\"job\":1,\"base_seed\":22}"), SDC_OK);
    cr_assert_eq(sdc_batch_manifest_append(fd, "{\"job\":2,\"base_seed\":18446744073709551615}"), SDC_OK);
    cr_assert_eq(write(fd, "{\"job\":0,\"base_seed\":99", 24), 24);
    close(fd);
    cr_assert_eq(sdc_batch_manifest_base_seed(path, 1, 2, &seed, &found), SDC_OK);
    cr_assert(found);
    cr_assert_eq(seed, 18446744073709551615ULL);
    cr_assert_eq(sdc_batch_manifest_base_seed(path, 2, 2, &seed, &found), SDC_OK);
    cr_assert_eq(seed, 22u);
    cr_assert_eq(sdc_batch_manifest_base_seed(path, 1, 3, &seed, &found), SDC_OK);
    cr_assert_eq(seed, 11u);
    st_rmtree(dir);
    free(dir), free(path);
}

/* ------------------------------------------------------------ the command */

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Start `sdc batch -m tiny LIST -o OUT -W 32 -H 32 --steps 2 --threads 1
 * EXTRA...` with stdout and stderr to files beside OUT. One thread: the
 * suite runs tests in parallel, and OpenMP threads waiting on each other
 * on a busy machine are far slower than one. */
static pid_t spawn_batch(const char *list, const char *out, const char *const *extra) {
    const char *argv[64] = {"sdc",     "batch", "-m",      FIXTURES "/tiny_sd1.safetensors", list, "-o", out, "-W", "32",
                            "-H",      "32",    "--steps", "2",                               "--threads", "1"};
    int n = 15;
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    char log_out[4200], log_err[4200];
    snprintf(log_out, sizeof log_out, "%s.stdout", out);
    snprintf(log_err, sizeof log_err, "%s.stderr", out);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int o = open(log_out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(log_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(127);
        execv(sdc_cli_path(), (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static char err[1 << 18];

static int run_batch(const char *list, const char *out, const char *const *extra) {
    int rc = wait_exit(spawn_batch(list, out, extra));
    char log_err[4200];
    snprintf(log_err, sizeof log_err, "%s.stderr", out);
    slurp(log_err, err, sizeof err);
    /* the sanitizer build's reports from the CLI land here, not in the log */
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err);
    return rc;
}

/* Files in dir ending in `suffix`. */
static int count_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l >= sl && !strcmp(e->d_name + l - sl, suffix);
    }
    closedir(d);
    return n;
}

/* Manifest lines: per file, how many "ok" and "skipped"; totals by status. */
typedef struct tally {
    char files[128][96];
    int ok[128], skipped[128], nfiles;
    int n_ok, n_skipped, n_failed, lines;
} tally;

static int file_slot(tally *t, const char *f) {
    for (int i = 0; i < t->nfiles; i++)
        if (!strcmp(t->files[i], f)) return i;
    cr_assert_lt(t->nfiles, 128);
    snprintf(t->files[t->nfiles], sizeof t->files[0], "%s", f);
    return t->nfiles++;
}

static void read_manifest(const char *out, tally *t) {
    memset(t, 0, sizeof *t);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.jsonl", out);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "manifest line is not JSON: %s", line);
        const char *status = cJSON_GetObjectItem(j, "status")->valuestring;
        const cJSON *file = cJSON_GetObjectItem(j, "file");
        t->lines++;
        if (!strcmp(status, "failed")) t->n_failed++;
        else {
            cr_assert(cJSON_IsString(file));
            int s = file_slot(t, file->valuestring);
            if (!strcmp(status, "ok")) t->ok[s]++, t->n_ok++;
            else if (!strcmp(status, "skipped")) t->skipped[s]++, t->n_skipped++;
            else cr_assert_fail("status %s", status);
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
}

/* Every PNG in out decodes (stb_image) to 32 pixels wide. */
static int check_pngs(const char *out) {
    DIR *d = opendir(out);
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".png")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        int w, h, c;
        unsigned char *px = stbi_load(path, &w, &h, &c, 3);
        cr_assert_not_null(px, "%s does not decode: %s", path, stbi_failure_reason());
        cr_assert_eq(w, 32, "%s", path);
        stbi_image_free(px);
        cr_assert(sdc_batch_png_ok(path), "%s", path);
        n++;
    }
    closedir(d);
    return n;
}

static struct timespec mtime_of(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_mtim;
}

Test(batch, end_to_end_50_jobs_then_rerun_skips, .timeout = 240) {
    char *dir = st_tmpdir(), *out = st_path(dir, "out");
    /* no --seed: the base seed is random, printed, and reused by the re-run */
    int rc = run_batch(LIST50, out, NULL);
    cr_assert_eq(rc, 1, "3 bad lines: exit 1, got %d: %s", rc, err);
    cr_assert_eq(count_files(out, ".png"), 47, "%s", err);
    cr_assert_eq(check_pngs(out), 47);
    cr_assert(strstr(err, LIST50 ":14: unterminated quote\n"), "%s", err);
    cr_assert(strstr(err, LIST50 ":33: bad JSON at column"), "%s", err);
    cr_assert(strstr(err, LIST50 ":49: size 33x32: width and height must be positive multiples of 8"), "%s", err);
    cr_assert(strstr(err, "47 rendered, 0 skipped, 3 failed"), "%s", err);
    cr_assert(strstr(err, "sdc: base seed "), "%s", err);
    tally t;
    read_manifest(out, &t);
    cr_assert_eq(t.n_ok, 47);
    cr_assert_eq(t.n_failed, 3);
    cr_assert_eq(t.nfiles, 47);
    /* what a line says reaches the PNG: line 7 has --batch_size 2 --seed
     * 1000 (jobs 4 and 5), line 12 seed 77 (job 9), line 17 height 48 */
    char *text = NULL, *p = st_path(out, "00005-1001-a-purple-triangle.png");
    cr_assert_eq(sdc_png_read_parameters(p, &text), SDC_OK, "%s", sdc_last_error());
    cr_assert(strstr(text, "a purple triangle\nNegative prompt: blurry, dark\nSteps: 2, Sampler: DPM++ 2M, "
                           "CFG scale: 5, Seed: 1001, Size: 32x32"),
              "%s", text);
    free(text), free(p);
    p = st_path(out, "00009-77-pink-ring-on-grey.png");
    cr_assert(sdc_batch_png_ok(p), "%s", p);
    free(p);
    int w = 0, h = 0, c = 0;
    char *bad = NULL;
    for (int i = 0; i < t.nfiles; i++)
        if (!strncmp(t.files[i], "00014-", 6)) bad = st_path(out, t.files[i]);
    cr_assert_not_null(bad);
    cr_assert(stbi_info(bad, &w, &h, &c) && w == 32 && h == 48, "%s: %dx%d", bad, w, h);
    free(bad);
    struct timespec before[47];
    for (int i = 0; i < 47; i++) before[i] = mtime_of(out, t.files[i]);

    rc = run_batch(LIST50, out, NULL);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "0 rendered, 47 skipped, 3 failed"), "%s", err);
    cr_assert(strstr(err, "(the last run's, from "), "%s", err);
    tally t2;
    read_manifest(out, &t2);
    cr_assert_eq(t2.n_ok, 47, "nothing rendered again");
    cr_assert_eq(t2.n_skipped, 47);
    cr_assert_eq(t2.nfiles, 47, "the same files");
    for (int i = 0; i < 47; i++) {
        struct timespec m = mtime_of(out, t.files[i]);
        cr_assert(m.tv_sec == before[i].tv_sec && m.tv_nsec == before[i].tv_nsec, "%s rewritten", t.files[i]);
    }
    /* --force renders again */
    rc = run_batch(LIST50, out, (const char *[]){"--force", "--shard", "2/25", NULL});
    cr_assert(strstr(err, "2 rendered, 0 skipped, 0 failed"), "%s", err);
    cr_assert_eq(rc, 0, "%s", err);
    st_rmtree(dir);
    free(dir), free(out);
}

Test(batch, kill_9_then_rerun_completes_exactly_the_missing, .timeout = 240) {
    char *dir = st_tmpdir(), *out = st_path(dir, "out");
    const char *seed[] = {"--seed", "9", NULL};
    pid_t pid = spawn_batch(LIST50, out, seed);
    int pngs = 0;
    for (int i = 0; i < 200000 && (pngs = count_files(out, ".png")) < 3; i++) usleep(500);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(wait_exit(pid), 128 + SIGKILL);
    pngs = count_files(out, ".png");
    cr_assert_geq(pngs, 3);
    cr_assert_lt(pngs, 47, "killed too late to test resuming (%d PNGs)", pngs);
    int rc = run_batch(LIST50, out, seed);
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert_eq(count_files(out, ".png"), 47, "%s", err);
    cr_assert_eq(check_pngs(out), 47);
    cr_assert_eq(count_files(out, ".tmp"), 0, "temporary files left");
    tally t;
    read_manifest(out, &t);
    cr_assert_eq(t.nfiles, 47);
    int rendered_twice = 0, logged = 0;
    for (int i = 0; i < t.nfiles; i++) {
        rendered_twice += t.ok[i] > 1;
        logged += t.ok[i] == 1;
    }
    cr_assert_eq(rendered_twice, 0);
    /* a PNG renamed into place just before the kill may lack its "ok" line */
    cr_assert_geq(logged, 46, "%d of 47 logged as rendered", logged);
    char want[64];
    snprintf(want, sizeof want, "%d rendered, ", 47 - pngs);
    cr_assert(strstr(err, want), "expected '%s' in %s", want, err);
    st_rmtree(dir);
    free(dir), free(out);
}

Test(batch, ctrl_c_finishes_the_current_image, .timeout = 240) {
    char *dir = st_tmpdir(), *out = st_path(dir, "out");
    const char *seed[] = {"--seed", "9", NULL};
    pid_t pid = spawn_batch(LIST50, out, seed);
    for (int i = 0; i < 200000 && count_files(out, ".png") < 2; i++) usleep(500);
    cr_assert_eq(kill(pid, SIGINT), 0);
    int rc = wait_exit(pid);
    char log_err[4200];
    snprintf(log_err, sizeof log_err, "%s.stderr", out);
    slurp(log_err, err, sizeof err);
    cr_assert_eq(rc, 130, "%s", err);
    cr_assert(strstr(err, "interrupted"), "%s", err);
    cr_assert(strstr(err, "run the same command again to finish"), "%s", err);
    int pngs = count_files(out, ".png");
    cr_assert_lt(pngs, 47);
    cr_assert_eq(check_pngs(out), pngs);
    cr_assert_eq(count_files(out, ".tmp"), 0);
    tally t;
    read_manifest(out, &t);
    cr_assert_eq(t.n_ok, pngs, "every finished image is logged");
    rc = run_batch(LIST50, out, seed);
    cr_assert_eq(count_files(out, ".png"), 47, "%s", err);
    st_rmtree(dir);
    free(dir), free(out);
}

Test(batch, shards_render_every_job_once, .timeout = 240) {
    char *dir = st_tmpdir(), *out = st_path(dir, "out");
    for (int k = 1; k <= 3; k++) {
        char shard[32];
        snprintf(shard, sizeof shard, "%d/3", k);
        run_batch(LIST50, out, (const char *[]){"--seed", "5", "--shard", shard, NULL});
        cr_assert(strstr(err, "in shard"), "%s", err);
    }
    cr_assert_eq(count_files(out, ".png"), 47);
    tally t;
    read_manifest(out, &t);
    cr_assert_eq(t.n_ok, 47);
    cr_assert_eq(t.nfiles, 47, "no job rendered by two shards");
    cr_assert_eq(t.n_failed, 3, "each bad line reported by one shard");
    for (int i = 0; i < t.nfiles; i++) cr_assert_eq(t.ok[i], 1, "%s", t.files[i]);
    /* the same files as one unsharded run */
    char *one = st_path(dir, "one");
    run_batch(LIST50, one, (const char *[]){"--seed", "5", NULL});
    for (int i = 0; i < t.nfiles; i++) {
        char *p = st_path(one, t.files[i]);
        cr_assert(sdc_batch_png_ok(p), "%s", p);
        free(p);
    }
    st_rmtree(dir);
    free(dir), free(out), free(one);
}

Test(batch, batch_size_4_gives_the_same_pixels, .timeout = 240) {
    char *dir = st_tmpdir(), *a = st_path(dir, "a"), *b = st_path(dir, "b");
    cr_assert_eq(run_batch(LIST_SAME, a, (const char *[]){"--seed", "31", NULL}), 0, "%s", err);
    cr_assert_eq(run_batch(LIST_SAME, b, (const char *[]){"--seed", "31", "--batch-size", "4", NULL}), 0, "%s", err);
    cr_assert_not(strstr(err, "one at a time instead"), "sdc_txt2img_batch failed: %s", err);
    tally ta, tb;
    read_manifest(a, &ta);
    read_manifest(b, &tb);
    cr_assert_eq(ta.n_ok, 8);
    cr_assert_eq(tb.n_ok, 8);
    /* the manifest says how many were rendered together */
    char path[4200], line[4096];
    snprintf(path, sizeof path, "%s/manifest.jsonl", b);
    FILE *f = fopen(path, "r");
    int grouped = 0;
    while (fgets(line, sizeof line, f)) grouped += strstr(line, "\"group_size\":4,") != NULL;
    fclose(f);
    cr_assert_eq(grouped, 8, "two groups of 4");
    int worst = 0;
    for (int i = 0; i < ta.nfiles; i++) {
        char *pa = st_path(a, ta.files[i]), *pb = st_path(b, ta.files[i]);
        int wa, ha, wb, hb, c;
        unsigned char *xa = stbi_load(pa, &wa, &ha, &c, 3), *xb = stbi_load(pb, &wb, &hb, &c, 3);
        cr_assert(xa && xb, "%s", ta.files[i]);
        cr_assert(wa == wb && ha == hb);
        for (int k = 0; k < wa * ha * 3; k++) {
            int dlt = abs((int)xa[k] - (int)xb[k]);
            if (dlt > worst) worst = dlt;
        }
        stbi_image_free(xa), stbi_image_free(xb);
        free(pa), free(pb);
    }
    cr_assert_leq(worst, 1, "batched pixels differ by %d", worst);
    st_rmtree(dir);
    free(dir), free(a), free(b);
}

Test(batch, usage_errors) {
    char *dir = st_tmpdir(), *out = st_path(dir, "out");
    cr_assert_eq(run_batch(LIST50, out, (const char *[]){"--shard", "4/3", NULL}), 1);
    cr_assert(strstr(err, "--shard 4/3: expected K/N"), "%s", err);
    cr_assert_eq(run_batch(LIST50, out, (const char *[]){"--sampler", "heun", NULL}), 1);
    cr_assert(strstr(err, "unknown sampler \"heun\""), "%s", err);
    cr_assert_eq(run_batch(LIST50, out, (const char *[]){"--batch-size", "0", NULL}), 2);
    cr_assert_eq(run_batch(LIST50, out, (const char *[]){"--frobnicate", NULL}), 2);
    cr_assert_eq(run_batch(FIXTURES "/batch/no_such_list.txt", out, NULL), 1);
    cr_assert(strstr(err, "no_such_list.txt: No such file"), "%s", err);
    cr_assert_eq(count_files(out, ".png"), 0);
    st_rmtree(dir);
    free(dir), free(out);
}

/* Image to image in a list: init_image, mask and denoising_strength in JSON
 * and A1111 lines, paths relative to the list's folder; plain lines take
 * the command's --init/--mask; each misuse is that line's error. */
Test(batch, init_image_keys) {
    sdc_batch_defaults d = defaults();
    d.init_image = "base.png";
    d.gen.strength = 0.6;
    sdc_batch_list l;
    const char *text = "plain prompt\n"
                       "{\"prompt\": \"json\", \"init_image\": \"in/a.png\", \"mask\": \"/abs/m.png\", "
                       "\"denoising_strength\": 0.5}\n"
                       "--prompt \"a1111\" --init_image b.jpg --denoising_strength 1\n"
                       "{\"prompt\": \"mask alone\", \"mask\": \"m.png\"}\n"
                       "--prompt \"too weak\" --init_image b.png --denoising_strength 0.1\n"
                       "--prompt \"zero\" --init_image b.png --denoising_strength 0\n"
                       "{\"prompt\": \"empty\", \"init_image\": \"\"}\n";
    cr_assert_eq(sdc_batch_parse(text, strlen(text), "lists/p.txt", &d, &l), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(l.n, 7);
    cr_assert_str_eq(l.jobs[0].init_image, "base.png"); /* the command's, as given */
    cr_assert_null(l.jobs[0].mask);
    cr_assert_eq(l.jobs[0].gen.strength, 0.6);
    cr_assert_str_eq(l.jobs[1].init_image, "lists/in/a.png");
    cr_assert_str_eq(l.jobs[1].mask, "/abs/m.png");
    cr_assert_eq(l.jobs[1].gen.strength, 0.5);
    cr_assert_null(l.jobs[1].error);
    cr_assert_str_eq(l.jobs[2].init_image, "lists/b.jpg");
    cr_assert_eq(l.jobs[2].gen.strength, 1.0);
    cr_assert_null(l.jobs[2].error);
    cr_assert_str_eq(l.jobs[3].error, "lists/p.txt:4: a mask without an init_image");
    /* 2 steps x 0.1 runs int(0.2) = 0 steps */
    cr_assert_str_eq(l.jobs[4].error, "lists/p.txt:5: denoising_strength 0.1 of 2 steps runs no step");
    cr_assert(strstr(l.jobs[5].error, ":6: denoising_strength \"0\": expected a number more than 0 and at most 1"),
              "%s", l.jobs[5].error);
    cr_assert_str_eq(l.jobs[6].error, "lists/p.txt:7: init_image: an empty path");
    sdc_batch_list_free(&l);
    /* no --init: a strength alone is an error, a plain line text to image */
    d.init_image = NULL;
    parse("plain\n--prompt x --denoising_strength 0.5\n", &d, &l);
    cr_assert_null(l.jobs[0].init_image);
    cr_assert_null(l.jobs[0].error);
    cr_assert_str_eq(l.jobs[1].error, "list.txt:2: denoising_strength without an init_image");
    sdc_batch_list_free(&l);
}
