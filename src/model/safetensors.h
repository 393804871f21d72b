/* safetensors.h - read-only, mmapped safetensors files with strict validation.
 *
 * File format: u64 little-endian header length N, then N bytes of JSON
 *   { "name": {"dtype": "F16", "shape": [a, b], "data_offsets": [begin, end]},
 *     ..., "__metadata__": {"key": "value", ...} }
 * then the data section; offsets are relative to the start of the data.
 * sdc_st_open validates everything before returning: any violation is an
 * SDC_ERR_FORMAT error whose message names the file and the tensor. */
#ifndef SDC_SAFETENSORS_H
#define SDC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"


#define SDC_ST_MAX_DIMS 8

typedef struct sdc_st_tensor {
    char *name;                      /* as in the header */
    sdc_dtype dtype;
    int ndim;
    int64_t shape[SDC_ST_MAX_DIMS];  /* PyTorch order, outermost first */
    int64_t numel;                   /* product of shape (1 for a scalar) */
    const void *data;                /* inside the mapping; nbytes long */
    size_t nbytes;
} sdc_st_tensor;

typedef struct sdc_st_file {
    char *path;
    void *map;                 /* whole file, PROT_READ */
    void *view;                /* the same again, for weights read in place: its
                                * pages are never dropped; NULL if it could not be made */
    size_t map_size;
    int n_tensors;
    sdc_st_tensor *tensors;    /* sorted by name */
    int n_meta;
    char **meta_keys;          /* __metadata__, string values */
    char **meta_values;
} sdc_st_file;

/* Open and validate. On failure *out is NULL and the message says why.
 * A pickle .ckpt (zip or raw pickle) is refused with a message on how to
 * convert it. */
sdc_status sdc_st_open(const char *path, sdc_st_file **out);
void sdc_st_close(sdc_st_file *f);

/* Give the mapping's pages back (the file stays mapped and readable; pages
 * are read again on the next access). Called once the weights have been
 * converted, so the fp16 file does not count twice in resident memory. */
void sdc_st_drop_pages(sdc_st_file *f);
/* The same for the whole pages inside one tensor's bytes. */
void sdc_st_drop_tensor_pages(const sdc_st_file *f, const sdc_st_tensor *t);

/* t's bytes in the file's second view (f->view): what a weight read in
 * place points at, alive until sdc_st_close; NULL without a view. */
const void *sdc_st_view(const sdc_st_file *f, const sdc_st_tensor *t);
/* Read n bytes of a view in now (page tables filled, read-only), so that
 * the first product does not fault them in; best effort. */
void sdc_st_populate(const sdc_st_file *f, const void *p, size_t n);

/* Binary search by exact name; NULL if absent. */
const sdc_st_tensor *sdc_st_find(const sdc_st_file *f, const char *name);

/* The first tensor (by name) whose name starts with prefix; NULL if none.
 * A binary search, as sdc_st_find. */
const sdc_st_tensor *sdc_st_find_prefix(const sdc_st_file *f, const char *prefix);

/* Metadata value for key, NULL if absent. */
const char *sdc_st_meta(const sdc_st_file *f, const char *key);

const char *sdc_dtype_name(sdc_dtype dt);   /* "F16", ... */
size_t sdc_dtype_size(sdc_dtype dt);         /* bytes per element */
bool sdc_dtype_is_float(sdc_dtype dt);

/* Convert a floating tensor (F64/F32/F16/BF16/F8) to fp32 into dst
 * (numel floats). Integer dtypes are an SDC_ERR_UNSUPPORTED error naming
 * the tensor. */
sdc_status sdc_st_to_f32(const sdc_st_file *f, const sdc_st_tensor *t,
                         float *dst);

/* Exact decoding of one float8 value (as used by sdc_st_to_f32).
 * E4M3 (e4m3fn): bias 7, no infinities, S.1111.111 is NaN, max 448.
 * E5M2: bias 15, IEEE-like with inf and NaN at exponent 31. */
float sdc_f8_e4m3_to_f32(uint8_t b);
float sdc_f8_e5m2_to_f32(uint8_t b);

#endif
