/* fuzz_model_diffusers.c - libFuzzer target: opening a diffusers folder
 * whose JSON files are hostile (config.json of each component,
 * scheduler_config.json, model_index.json).
 *
 * Once per process, two scratch folders are built that mirror
 * tests/fixtures/tiny_sd1_diffusers and tiny_sd2_diffusers: the weight
 * files and the tokenizer files are symbolic links to the fixtures, the
 * JSON files are copies. For each input, the first byte picks the folder
 * (byte / 5 % 2) and the file (byte % 5: unet/config.json,
 * vae/config.json, text_encoder/config.json, scheduler/
 * scheduler_config.json, model_index.json); that file gets the rest of the
 * input, the other JSON files are the fixture's. The folder is opened with
 * sdc_model_open and printed with sdc_model_print to /dev/null; then the
 * file gets its fixture copy back.
 *
 * Seeds: each fixture JSON file behind its selector byte (fuzz/seed.sh);
 * dictionary fuzz/model.dict. Run from the repository root (the fixtures
 * are found by relative path; see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_model_diffusers -dict=fuzz/model.dict CORPUS */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "model/model.h"

static const char *const k_json[5] = {
    "unet/config.json", "vae/config.json", "text_encoder/config.json",
    "scheduler/scheduler_config.json", "model_index.json",
};
static const char *const k_links[] = {
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "tokenizer/vocab.json", "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
};
static const char *const k_dirs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer"};
static const char *const k_fixture[2] = {"tests/fixtures/tiny_sd1_diffusers",
                                         "tests/fixtures/tiny_sd2_diffusers"};

typedef struct model_dir {
    char root[400];
    fuzz_file *json[5];
    unsigned char *orig[5];
    size_t orig_n[5];
} model_dir;

static model_dir g_dir[2];
static FILE *g_null;

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fuzz_die("cannot read %s", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        len += fread(b + len, 1, cap - len, f);
        if (len < cap) break;
        b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (!b) fuzz_die("%s", "out of memory");
    *n = len;
    return b;
}

static char g_cleanup_roots[2][400];

static void remove_dirs(void) {
    /* the JSON files go with fuzz_util's cleanup (registered first, so it
     * runs after this one): unlink links and folders here */
    for (int d = 0; d < 2; d++) {
        if (!g_cleanup_roots[d][0]) continue;
        char p[900];
        for (size_t i = 0; i < sizeof k_links / sizeof k_links[0]; i++) {
            snprintf(p, sizeof p, "%s/%s", g_cleanup_roots[d], k_links[i]);
            unlink(p);
        }
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s/%s", g_cleanup_roots[d], k_json[i]);
            unlink(p);
        }
        for (size_t i = 0; i < sizeof k_dirs / sizeof k_dirs[0]; i++) {
            snprintf(p, sizeof p, "%s/%s", g_cleanup_roots[d], k_dirs[i]);
            rmdir(p);
        }
        rmdir(g_cleanup_roots[d]);
    }
}

static void build_dir(int d) {
    model_dir *m = &g_dir[d];
    snprintf(m->root, sizeof m->root, "%s/sdc-fuzz-model-XXXXXX", fuzz_tmpdir());
    if (!mkdtemp(m->root)) fuzz_die("cannot create %s", m->root);
    snprintf(g_cleanup_roots[d], sizeof g_cleanup_roots[d], "%s", m->root);
    char p[900], q[900], abs_fixture[PATH_MAX];
    if (!realpath(k_fixture[d], abs_fixture))
        fuzz_die("cannot find %s: run the fuzz targets from the repository root", k_fixture[d]);
    for (size_t i = 0; i < sizeof k_dirs / sizeof k_dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", m->root, k_dirs[i]);
        if (mkdir(p, 0700) != 0) fuzz_die("cannot create %s", p);
    }
    for (size_t i = 0; i < sizeof k_links / sizeof k_links[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", m->root, k_links[i]);
        snprintf(q, sizeof q, "%s/%s", abs_fixture, k_links[i]);
        if (access(q, R_OK) != 0) fuzz_die("cannot read %s", q);
        if (symlink(q, p) != 0) fuzz_die("cannot link %s", p);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(q, sizeof q, "%s/%s", k_fixture[d], k_json[i]);
        m->orig[i] = slurp(q, &m->orig_n[i]);
        snprintf(p, sizeof p, "%s/%s", m->root, k_json[i]);
        m->json[i] = fuzz_file_at(p);
        fuzz_write(m->json[i], m->orig[i], m->orig_n[i], 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_null = fopen("/dev/null", "w");
    if (!g_null) fuzz_die("%s", "cannot open /dev/null");
    for (int d = 0; d < 2; d++) build_dir(d);
    atexit(remove_dirs);
    /* the fixtures themselves must open, or every input tests nothing */
    for (int d = 0; d < 2; d++) {
        sdc_model_files *m = NULL;
        if (sdc_model_open(g_dir[d].root, &m) != SDC_OK)
            fuzz_die("the fixture copy does not open: %s", sdc_last_error());
        sdc_model_close(m);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    model_dir *d = &g_dir[data[0] / 5 % 2];
    int k = data[0] % 5;
    fuzz_write(d->json[k], data + 1, size - 1, 0);
    sdc_model_files *m = NULL;
    if (sdc_model_open(d->root, &m) == SDC_OK) {
        FUZZ_CHECK(m->layout == SDC_LAYOUT_DIFFUSERS);
        sdc_model_print(m, g_null);
        sdc_model_close(m);
    } else {
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(sdc_last_error()[0] != '\0');
    }
    fuzz_write(d->json[k], d->orig[k], d->orig_n[k], 0);
    return 0;
}
