/* fuzz_util.h - what the libFuzzer targets in fuzz/ share.
 *
 * The library reads files by path (and mmaps safetensors), so each target
 * writes its input to a scratch file made once per process: under /dev/shm
 * (tmpfs: no disk traffic) when it is writable, else under $TMPDIR or /tmp.
 * The file is rewritten in place for every input and removed at exit.
 *
 * Every target runs from the repository root: the fixtures it needs
 * (tests/fixtures/..., weights/...) are read by relative path, as the
 * Criterion suite reads them. `make fuzz` and fuzz/run.sh do that; a
 * target started elsewhere says so and exits.
 *
 * Notices (sdc_notice) are silenced with SDC_QUIET=1; OpenMP and OpenBLAS
 * run on one thread, so a single fuzzing process uses one core. */
#ifndef SDC_FUZZ_UTIL_H
#define SDC_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

typedef struct fuzz_file {
    char path[512];
    int fd;
} fuzz_file;

#define FUZZ_MAX_FILES 16
static fuzz_file *g_fuzz_files[FUZZ_MAX_FILES];
static int g_fuzz_n_files;

static inline void fuzz_die(const char *fmt, const char *arg) {
    fprintf(stderr, "fuzz: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    abort();
}

static inline void fuzz_cleanup(void) {
    for (int i = 0; i < g_fuzz_n_files; i++) {
        unlink(g_fuzz_files[i]->path);
        close(g_fuzz_files[i]->fd);
    }
    g_fuzz_n_files = 0;
}

/* The folder for scratch files and folders. */
static inline const char *fuzz_tmpdir(void) {
    if (access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* Quiet library, one thread; call from LLVMFuzzerInitialize. */
static inline void fuzz_env(void) {
    setenv("SDC_QUIET", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 0);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
}

/* The fixture `rel` must be readable: the target runs from the repository
 * root. */
static inline void fuzz_need(const char *rel) {
    if (access(rel, R_OK) != 0)
        fuzz_die("cannot read %s: run the fuzz targets from the repository "
                 "root (make fuzz does)", rel);
}

/* A scratch file whose name ends in `suffix` (".png", "/vocab.json" is not
 * allowed: a plain suffix). */
static inline fuzz_file *fuzz_file_new(const char *suffix) {
    if (g_fuzz_n_files == FUZZ_MAX_FILES) fuzz_die("%s", "too many scratch files");
    fuzz_file *f = calloc(1, sizeof *f);
    if (!f) fuzz_die("%s", "out of memory");
    snprintf(f->path, sizeof f->path, "%s/sdc-fuzz-XXXXXX%s", fuzz_tmpdir(), suffix);
    f->fd = mkstemps(f->path, (int)strlen(suffix));
    if (f->fd < 0) fuzz_die("cannot create a scratch file %s", f->path);
    if (g_fuzz_n_files == 0) atexit(fuzz_cleanup);
    g_fuzz_files[g_fuzz_n_files++] = f;
    return f;
}

/* A scratch file at a given path (inside a scratch folder). */
static inline fuzz_file *fuzz_file_at(const char *path) {
    if (g_fuzz_n_files == FUZZ_MAX_FILES) fuzz_die("%s", "too many scratch files");
    fuzz_file *f = calloc(1, sizeof *f);
    if (!f) fuzz_die("%s", "out of memory");
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f->fd < 0) fuzz_die("cannot create %s", f->path);
    if (g_fuzz_n_files == 0) atexit(fuzz_cleanup);
    g_fuzz_files[g_fuzz_n_files++] = f;
    return f;
}

/* Replace the file's contents with data[0..n), then extend it with `pad`
 * zero bytes (a sparse tail: nothing is written). */
static inline void fuzz_write(fuzz_file *f, const void *data, size_t n, size_t pad) {
    if (ftruncate(f->fd, 0) != 0) fuzz_die("cannot truncate %s", f->path);
    const unsigned char *p = data;
    for (size_t off = 0; off < n;) {
        ssize_t w = pwrite(f->fd, p + off, n - off, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fuzz_die("cannot write %s", f->path);
        off += (size_t)w;
    }
    if (pad && ftruncate(f->fd, (off_t)(n + pad)) != 0)
        fuzz_die("cannot extend %s", f->path);
}

/* data as a fresh NUL-terminated string (NUL bytes inside stay). */
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) fuzz_die("%s", "out of memory");
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Recompute every PNG chunk's CRC in place (data[0..size) starting with
 * the PNG signature; a chunk that runs past the end stops it), so a
 * mutated file gets past the CRC checks to what lies behind them. */
static inline void fuzz_png_fix_crcs(uint8_t *data, size_t size) {
    if (size < 8 || memcmp(data, "\x89PNG\r\n\x1a\n", 8)) return;
    for (size_t off = 8; size - off >= 12;) {
        uint32_t len = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                       (uint32_t)data[off + 2] << 8 | data[off + 3];
        if (len > size - off - 12) break;
        uint32_t c = (uint32_t)crc32(0L, data + off + 4, len + 4);
        uint8_t *p = data + off + 8 + len;
        p[0] = (uint8_t)(c >> 24), p[1] = (uint8_t)(c >> 16);
        p[2] = (uint8_t)(c >> 8), p[3] = (uint8_t)c;
        off += 12 + (size_t)len;
    }
}

/* A property the library promises does not hold: crash so libFuzzer keeps
 * the input. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz: check failed at %s:%d: %s\n", __FILE__,     \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
