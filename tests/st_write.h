/* st_write.h - test helpers that write safetensors files (valid or not).
 *
 *   char *dir = st_tmpdir();                       // fresh, empty
 *   char *path = st_path(dir, "m.safetensors");
 *   st_builder *b = st_builder_new();
 *   int64_t shape[2] = {2, 3};
 *   st_builder_add_f32(b, "w", 2, shape, values);
 *   st_builder_meta(b, "format", "pt");
 *   st_builder_write(b, path);                     // 0 on success
 *   st_builder_free(b);
 *   ...
 *   st_rmtree(dir); free(path); free(dir);
 *
 * All int-returning functions return 0 on success and -1 on failure. */
#ifndef SDC_TESTS_ST_WRITE_H
#define SDC_TESTS_ST_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* A fresh directory from mkdtemp under $TMPDIR (or /tmp); malloc'd path,
 * NULL on failure. */
char *st_tmpdir(void);

/* dir + "/" + name, malloc'd. */
char *st_path(const char *dir, const char *name);

/* Remove dir and everything below it (does not follow symlinks). */
int st_rmtree(const char *dir);

/* Write n bytes verbatim. */
int st_write_bytes(const char *path, const void *bytes, size_t n);

/* u64 LE strlen(header_json), the header, then data[0..n) verbatim. */
int st_write_raw(const char *path, const char *header_json, const void *data,
                 size_t n);

/* As st_write_raw but with an arbitrary declared header length (which need
 * not match the header_bytes actually written). */
int st_write_raw_len(const char *path, uint64_t declared_len,
                     const void *header, size_t header_bytes,
                     const void *data, size_t n);

/* Builder of valid files: tensors are laid out in insertion order, the
 * header is padded with spaces to a multiple of 8 bytes. */
typedef struct st_builder st_builder;

st_builder *st_builder_new(void);
void st_builder_free(st_builder *b);

/* dtype is the safetensors name ("F16", ...); bytes is copied (nbytes of
 * it, which the caller makes consistent with dtype and shape). */
int st_builder_add(st_builder *b, const char *name, const char *dtype,
                   int ndim, const int64_t *shape, const void *bytes,
                   size_t nbytes);

/* Convenience: numel = product of shape; values are floats converted to
 * the stored dtype (F16 and BF16 round to nearest even; NaN stays NaN),
 * written little-endian. */
int st_builder_add_f32(st_builder *b, const char *name, int ndim,
                       const int64_t *shape, const float *values);
int st_builder_add_f16(st_builder *b, const char *name, int ndim,
                       const int64_t *shape, const float *values);
int st_builder_add_bf16(st_builder *b, const char *name, int ndim,
                        const int64_t *shape, const float *values);

int st_builder_meta(st_builder *b, const char *key, const char *value);

int st_builder_write(const st_builder *b, const char *path);

#endif
