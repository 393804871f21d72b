/* safetensors.c - strict, read-only, mmapped safetensors reader.
 *
 * The whole file is mapped PROT_READ; the JSON header is copied into a
 * NUL-terminated buffer before cJSON sees it, so nothing here can read past
 * the mapping. Every check fails with an sdc_status whose message starts
 * with the file path and names the tensor where there is one.
 *
 * Decisions:
 *  - JSON numbers are doubles in cJSON: shape dims and offsets must be
 *    integral, >= 0 and <= 2^53 (exactly representable); an integral value
 *    written as "3.0" is accepted since cJSON does not keep the source text.
 *  - Unknown fields inside a tensor entry are ignored (as the reference
 *    implementation does); a repeated known field is an error.
 *  - Gaps between tensors and unused bytes after the last one are allowed;
 *    overlapping non-empty byte ranges are not.
 *  - A file whose first 8 bytes give a plausible header length and whose
 *    header starts with '{' is treated as safetensors even if those bytes
 *    also look like a pickle/zip magic (header length 640 = 80 02 00 ...).
 */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "model/config_value.h"

#define ST_HEADER_MAX ((uint64_t)100 * 1024 * 1024)
#define ST_INT_MAX 9007199254740992.0 /* 2^53 */

#ifdef _OPENMP
#define ST_OMP_FOR _Pragma("omp parallel for schedule(static) if (n >= 262144)")
#else
#define ST_OMP_FOR
#endif

/* ------------------------------------------------------------------ dtypes */

static const struct {
    const char *name;
    size_t size;
} g_dtypes[SDC_DT_COUNT] = {
    [SDC_DT_F64] = {"F64", 8},        [SDC_DT_F32] = {"F32", 4},
    [SDC_DT_F16] = {"F16", 2},        [SDC_DT_BF16] = {"BF16", 2},
    [SDC_DT_F8_E4M3] = {"F8_E4M3", 1}, [SDC_DT_F8_E5M2] = {"F8_E5M2", 1},
    [SDC_DT_I64] = {"I64", 8},        [SDC_DT_I32] = {"I32", 4},
    [SDC_DT_I16] = {"I16", 2},        [SDC_DT_I8] = {"I8", 1},
    [SDC_DT_U8] = {"U8", 1},          [SDC_DT_BOOL] = {"BOOL", 1},
    [SDC_DT_U16] = {"U16", 2},        [SDC_DT_U32] = {"U32", 4},
    [SDC_DT_U64] = {"U64", 8},
};

const char *sdc_dtype_name(sdc_dtype dt) {
    if ((int)dt < 0 || dt >= SDC_DT_COUNT) return "?";
    return g_dtypes[dt].name;
}

size_t sdc_dtype_size(sdc_dtype dt) {
    if ((int)dt < 0 || dt >= SDC_DT_COUNT) return 0;
    return g_dtypes[dt].size;
}

bool sdc_dtype_is_float(sdc_dtype dt) {
    return dt == SDC_DT_F64 || dt == SDC_DT_F32 || dt == SDC_DT_F16 ||
           dt == SDC_DT_BF16 || dt == SDC_DT_F8_E4M3 || dt == SDC_DT_F8_E5M2;
}

static bool dtype_from_name(const char *s, sdc_dtype *out) {
    for (int i = 0; i < SDC_DT_COUNT; i++)
        if (strcmp(s, g_dtypes[i].name) == 0) {
            *out = (sdc_dtype)i;
            return true;
        }
    return false;
}

/* Dtypes newer safetensors versions define but sdc does not read. */
static bool dtype_known_unsupported(const char *s) {
    static const char *const names[] = {"C64", "F8_E8M0", "F4", "F6_E2M3",
                                        "F6_E3M2", "F8_E4M3FNUZ",
                                        "F8_E5M2FNUZ"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) return true;
    return false;
}

/* ------------------------------------------------------------- small bits */

static uint64_t read_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is a non-negative integer no larger than 2^53. */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_INT_MAX) return false;
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------ mapping */

static sdc_status map_file(sdc_st_file *f) {
    const char *path = f->path;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return sdc_fail(SDC_ERR_IO, "%s: no such file (expected a "
                            ".safetensors file)", path);
        return sdc_fail(SDC_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: is a directory, expected a "
                        ".safetensors file", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: not a regular file, expected a "
                        ".safetensors file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        if (sb.st_size == 0)
            return sdc_fail(SDC_ERR_FORMAT, "%s: empty file (0 bytes), not a "
                            "safetensors file", path);
        return sdc_fail(SDC_ERR_FORMAT, "%s: not a safetensors file: only "
                        "%lld bytes, shorter than the 8-byte header length",
                        path, (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return sdc_fail(SDC_ERR_IO, "%s: file too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    /* a second view for weights read in place (sdc_st_view); without it
     * (an address space too small) they are copied as before */
    void *view = map == MAP_FAILED ? MAP_FAILED : mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return sdc_fail(SDC_ERR_IO, "%s: cannot mmap %zu bytes: %s", path,
                        size, strerror(e));
    f->map = map;
    f->view = view == MAP_FAILED ? NULL : view;
    f->map_size = size;
    return SDC_OK;
}

/* Suggested output name for the conversion command: X.ckpt -> X.safetensors */
static void converted_name(const char *path, char *buf, size_t n) {
    static const char *const exts[] = {".ckpt", ".pt", ".pth", ".bin"};
    size_t len = strlen(path);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t el = strlen(exts[i]);
        if (len > el && strcmp(path + len - el, exts[i]) == 0) {
            snprintf(buf, n, "%.*s.safetensors", (int)(len - el), path);
            return;
        }
    }
    snprintf(buf, n, "%s.safetensors", path);
}

static sdc_status refuse_pickle(const char *path, const char *kind) {
    char out[512];
    converted_name(path, out, sizeof out);
    return sdc_fail(
        SDC_ERR_UNSUPPORTED,
        "%s is a PyTorch pickle checkpoint (.ckpt, %s); sdc reads only "
        ".safetensors, because loading a pickle can run arbitrary code. "
        "Convert it once with Python (pip install torch safetensors): "
        "python3 -c \"import torch; from safetensors.torch import save_file; "
        "sd = torch.load('%s', map_location='cpu', weights_only=True); "
        "sd = sd.get('state_dict', sd); "
        "save_file({k: v.clone().contiguous() for k, v in sd.items() "
        "if isinstance(v, torch.Tensor)}, '%s')\"",
        path, kind, path, out);
}

/* Decide whether the mapped bytes can be a safetensors file; on success
 * *hlen is the header length (bounds checked against the file). */
static sdc_status check_prefix(const sdc_st_file *f, uint64_t *hlen) {
    const unsigned char *b = f->map;
    size_t size = f->map_size;
    uint64_t n = read_u64_le(b);
    bool bounds_ok = n >= 2 && n <= ST_HEADER_MAX && 8 + n <= size;
    bool brace = bounds_ok && b[8] == '{';
    if (!brace) {
        if (b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4)
            return refuse_pickle(f->path, "a zip archive as written by "
                                 "torch.save");
        if (b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
            return refuse_pickle(f->path, "a raw pickle stream");
        static const char lfs[] = "version https://git-lfs";
        if (size >= sizeof lfs - 1 && memcmp(b, lfs, sizeof lfs - 1) == 0)
            return sdc_fail(SDC_ERR_FORMAT, "%s: not a safetensors file: it "
                            "is a Git LFS pointer, not the weights (run "
                            "'git lfs pull' where it was cloned)", f->path);
    }
    if (bounds_ok) {
        *hlen = n;
        return SDC_OK;
    }
    char reason[160];
    if (n < 2)
        snprintf(reason, sizeof reason, "header length %llu is too small "
                 "(at least 2 for \"{}\")", (unsigned long long)n);
    else if (n > ST_HEADER_MAX)
        snprintf(reason, sizeof reason, "header length %llu is implausible "
                 "(limit %llu bytes = 100 MiB)", (unsigned long long)n,
                 (unsigned long long)ST_HEADER_MAX);
    else
        snprintf(reason, sizeof reason, "header length %llu runs past the "
                 "end of the file (%zu bytes; truncated?)",
                 (unsigned long long)n, size);
    return sdc_fail(SDC_ERR_FORMAT, "%s: not a safetensors file: %s; the "
                    "file starts with bytes %02x %02x %02x %02x %02x %02x "
                    "%02x %02x", f->path, reason, b[0], b[1], b[2], b[3],
                    b[4], b[5], b[6], b[7]);
}

/* ------------------------------------------------------------ entries */

/* Fetch the one child `key` of a tensor entry; a repeated key is an error. */
static sdc_status entry_field(const sdc_st_file *f, const char *tname,
                              const cJSON *entry, const char *key,
                              const cJSON **out) {
    *out = NULL;
    for (const cJSON *c = entry->child; c; c = c->next) {
        if (!c->string || strcmp(c->string, key) != 0) continue;
        if (*out)
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': field \"%s\" "
                            "appears twice", f->path, tname, key);
        *out = c;
    }
    if (!*out)
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': missing field "
                        "\"%s\"", f->path, tname, key);
    return SDC_OK;
}

static sdc_status parse_entry(const sdc_st_file *f, const cJSON *entry,
                              const unsigned char *data, uint64_t data_size,
                              sdc_st_tensor *t) {
    const char *name = t->name, *path = f->path;
    char found[64];
    if (!cJSON_IsObject(entry)) {
        sdc_json_repr(entry, found, sizeof found);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': expected an object "
                        "with dtype, shape and data_offsets, found %s", path,
                        name, found);
    }
    const cJSON *jd, *js, *jo;
    SDC_TRY(entry_field(f, name, entry, "dtype", &jd));
    SDC_TRY(entry_field(f, name, entry, "shape", &js));
    SDC_TRY(entry_field(f, name, entry, "data_offsets", &jo));

    /* dtype */
    if (!cJSON_IsString(jd) || !jd->valuestring) {
        sdc_json_repr(jd, found, sizeof found);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': dtype must be a "
                        "string, found %s", path, name, found);
    }
    if (!dtype_from_name(jd->valuestring, &t->dtype)) {
        if (dtype_known_unsupported(jd->valuestring))
            return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: tensor '%s': dtype "
                            "\"%.40s\" is not supported by sdc", path, name,
                            jd->valuestring);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': unknown dtype "
                        "\"%.40s\" (expected one of F64 F32 F16 BF16 F8_E4M3 "
                        "F8_E5M2 I64 I32 I16 I8 U8 BOOL U16 U32 U64)", path,
                        name, jd->valuestring);
    }

    /* shape */
    if (!cJSON_IsArray(js)) {
        sdc_json_repr(js, found, sizeof found);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': shape must be an "
                        "array of non-negative integers, found %s", path,
                        name, found);
    }
    int ndim = cJSON_GetArraySize(js);
    if (ndim > SDC_ST_MAX_DIMS)
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': shape has %d "
                        "dimensions, at most %d are supported", path, name,
                        ndim, SDC_ST_MAX_DIMS);
    t->ndim = ndim;
    bool has_zero = false;
    int i = 0;
    for (const cJSON *c = js->child; c; c = c->next, i++) {
        uint64_t d;
        if (!json_uint(c, &d)) {
            sdc_json_repr(c, found, sizeof found);
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': shape[%d] must "
                            "be a non-negative integer, found %s", path, name,
                            i, found);
        }
        t->shape[i] = (int64_t)d;
        if (d == 0) has_zero = true;
    }
    int64_t numel = 1;
    if (has_zero) {
        numel = 0;
    } else {
        for (i = 0; i < ndim; i++) {
            if (numel > INT64_MAX / t->shape[i])
                return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': the "
                                "product of the shape overflows 64 bits",
                                path, name);
            numel *= t->shape[i];
        }
    }
    t->numel = numel;

    /* data_offsets */
    uint64_t begin, end;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
        !json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end)) {
        sdc_json_repr(jo, found, sizeof found);
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': data_offsets must "
                        "be [begin, end] with non-negative integers, found %s",
                        path, name, found);
    }
    if (begin > end)
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': data_offsets begin "
                        "%llu is after end %llu", path, name,
                        (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': data_offsets end "
                        "%llu is past the end of the data section (%llu "
                        "bytes; file truncated?)", path, name,
                        (unsigned long long)end,
                        (unsigned long long)data_size);
    uint64_t esize = g_dtypes[t->dtype].size, span = end - begin;
    if ((uint64_t)numel > UINT64_MAX / esize || (uint64_t)numel * esize != span) {
        char shp[160], need[32];
        size_t k = (size_t)snprintf(shp, sizeof shp, "[");
        for (i = 0; i < ndim && k < sizeof shp; i++)
            k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld",
                                  i ? ", " : "", (long long)t->shape[i]);
        if (k < sizeof shp) snprintf(shp + k, sizeof shp - k, "]");
        if ((uint64_t)numel > UINT64_MAX / esize)
            snprintf(need, sizeof need, "more than 2^64");
        else
            snprintf(need, sizeof need, "%llu",
                     (unsigned long long)((uint64_t)numel * esize));
        return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s': %s shape %s needs "
                        "%s bytes but data_offsets [%llu, %llu] span %llu "
                        "bytes", path, name, g_dtypes[t->dtype].name, shp,
                        need, (unsigned long long)begin,
                        (unsigned long long)end, (unsigned long long)span);
    }
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return SDC_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const sdc_st_tensor *)a)->name,
                  ((const sdc_st_tensor *)b)->name);
}

typedef struct range_ref {
    const unsigned char *begin;
    const sdc_st_tensor *t;
} range_ref;

static int cmp_range(const void *a, const void *b) {
    const range_ref *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

/* Tensors are sorted by name: reject duplicates, then overlapping ranges. */
static sdc_status check_names_and_ranges(const sdc_st_file *f,
                                         const unsigned char *data) {
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return sdc_fail(SDC_ERR_FORMAT, "%s: tensor '%s' is defined more "
                            "than once in the header", f->path,
                            f->tensors[i].name);
    range_ref *r = malloc(sizeof *r * (size_t)(f->n_tensors ? f->n_tensors
                                                            : 1));
    if (!r)
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory checking tensor "
                        "ranges", f->path);
    int n = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].nbytes > 0) {
            r[n].begin = f->tensors[i].data;
            r[n].t = &f->tensors[i];
            n++;
        }
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    sdc_status st = SDC_OK;
    const sdc_st_tensor *last = NULL; /* the range reaching furthest so far */
    const unsigned char *last_end = NULL;
    for (int i = 0; i < n; i++) {
        const unsigned char *b = r[i].begin, *e = b + r[i].t->nbytes;
        if (last && b < last_end) {
            st = sdc_fail(SDC_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu) and "
                          "'%s' [%llu, %llu) overlap in the data section",
                          f->path, last->name,
                          (unsigned long long)((const unsigned char *)
                                               last->data - data),
                          (unsigned long long)(last_end - data),
                          r[i].t->name, (unsigned long long)(b - data),
                          (unsigned long long)(e - data));
            break;
        }
        if (!last || e > last_end) {
            last = r[i].t;
            last_end = e;
        }
    }
    free(r);
    return st;
}

typedef struct meta_pair {
    char *key, *value;
} meta_pair;

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const meta_pair *)a)->key, ((const meta_pair *)b)->key);
}

static sdc_status parse_meta(sdc_st_file *f, const cJSON *m) {
    char found[64];
    if (!cJSON_IsObject(m)) {
        sdc_json_repr(m, found, sizeof found);
        return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ must be an object "
                        "of strings, found %s", f->path, found);
    }
    int n = cJSON_GetArraySize(m);
    meta_pair *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p) return sdc_fail(SDC_ERR_OOM, "%s: out of memory", f->path);
    sdc_status st = SDC_OK;
    int k = 0;
    for (const cJSON *c = m->child; c && st == SDC_OK; c = c->next, k++) {
        const char *key = c->string ? c->string : "";
        if (!cJSON_IsString(c) || !c->valuestring) {
            sdc_json_repr(c, found, sizeof found);
            st = sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ value for key "
                          "'%s' must be a string, found %s", f->path, key,
                          found);
        } else if (!(p[k].key = strdup(key)) ||
                   !(p[k].value = strdup(c->valuestring))) {
            st = sdc_fail(SDC_ERR_OOM, "%s: out of memory", f->path);
        }
    }
    if (st == SDC_OK) {
        qsort(p, (size_t)n, sizeof *p, cmp_meta);
        for (int i = 1; i < n && st == SDC_OK; i++)
            if (strcmp(p[i - 1].key, p[i].key) == 0)
                st = sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ key '%s' "
                              "appears twice", f->path, p[i].key);
    }
    if (st == SDC_OK) {
        f->meta_keys = calloc((size_t)(n ? n : 1), sizeof *f->meta_keys);
        f->meta_values = calloc((size_t)(n ? n : 1), sizeof *f->meta_values);
        if (!f->meta_keys || !f->meta_values)
            st = sdc_fail(SDC_ERR_OOM, "%s: out of memory", f->path);
    }
    if (st == SDC_OK) {
        for (int i = 0; i < n; i++) {
            f->meta_keys[i] = p[i].key;
            f->meta_values[i] = p[i].value;
        }
        f->n_meta = n;
    } else {
        for (int i = 0; i < n; i++) {
            free(p[i].key);
            free(p[i].value);
        }
    }
    free(p);
    return st;
}

/* Parse the JSON root and fill f's tensors and metadata. */
static sdc_status parse_root(sdc_st_file *f, const cJSON *root,
                             const unsigned char *data, uint64_t data_size) {
    int n_tensors = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string)
            return sdc_fail(SDC_ERR_FORMAT, "%s: header object has an entry "
                            "without a name", f->path);
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta)
                return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ appears "
                                "twice in the header", f->path);
            meta = c;
        } else {
            n_tensors++;
        }
    }
    if (meta) SDC_TRY(parse_meta(f, meta));
    f->tensors = calloc((size_t)(n_tensors ? n_tensors : 1),
                        sizeof *f->tensors);
    if (!f->tensors)
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for %d tensors",
                        f->path, n_tensors);
    f->n_tensors = n_tensors; /* names are NULL until set; close frees them */
    int i = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        sdc_st_tensor *t = &f->tensors[i++];
        if (!(t->name = strdup(c->string)))
            return sdc_fail(SDC_ERR_OOM, "%s: out of memory", f->path);
        SDC_TRY(parse_entry(f, c, data, data_size, t));
    }
    qsort(f->tensors, (size_t)n_tensors, sizeof *f->tensors, cmp_tensor_name);
    return check_names_and_ranges(f, data);
}

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "something else";
}

static sdc_status parse_header(sdc_st_file *f, uint64_t hlen) {
    const unsigned char *b = f->map;
    size_t n = (size_t)hlen;
    char *text = malloc(n + 1);
    if (!text)
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory for a %zu-byte "
                        "header", f->path, n);
    memcpy(text, b + 8, n);
    text[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    sdc_status st = SDC_OK;
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        st = sdc_fail(SDC_ERR_FORMAT, "%s: header is not valid JSON (parse "
                      "error near byte %zu of the %zu-byte header)", f->path,
                      at, n);
    } else if (!cJSON_IsObject(root)) {
        st = sdc_fail(SDC_ERR_FORMAT, "%s: header is JSON but not an object "
                      "(found %s); expected an object of tensors", f->path,
                      json_type_name(root));
    } else {
        for (const char *p = end; p < text + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                st = sdc_fail(SDC_ERR_FORMAT, "%s: header has stray byte "
                              "0x%02x at offset %zu after the JSON object "
                              "(only spaces may pad it)", f->path,
                              (unsigned char)*p, (size_t)(p - text));
                break;
            }
    }
    if (st == SDC_OK)
        st = parse_root(f, root, b + 8 + n, (uint64_t)(f->map_size - 8 - n));
    cJSON_Delete(root);
    free(text);
    return st;
}

/* ------------------------------------------------------------ public API */

sdc_status sdc_st_open(const char *path, sdc_st_file **out) {
    if (!out) return sdc_fail(SDC_ERR_ARG, "sdc_st_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return sdc_fail(SDC_ERR_ARG, "sdc_st_open: empty path");
    sdc_st_file *f = calloc(1, sizeof *f);
    if (!f) return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    if (!(f->path = strdup(path))) {
        free(f);
        return sdc_fail(SDC_ERR_OOM, "%s: out of memory", path);
    }
    uint64_t hlen = 0;
    sdc_status st = map_file(f);
    if (st == SDC_OK) st = check_prefix(f, &hlen);
    if (st == SDC_OK) st = parse_header(f, hlen);
    if (st != SDC_OK) {
        sdc_st_close(f);
        return st;
    }
    *out = f;
    return SDC_OK;
}

void sdc_st_close(sdc_st_file *f) {
    if (!f) return;
    if (f->tensors)
        for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map) munmap(f->map, f->map_size);
    if (f->view) munmap(f->view, f->map_size);
    free(f->path);
    free(f);
}

const sdc_st_tensor *sdc_st_find(const sdc_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const sdc_st_tensor *sdc_st_find_prefix(const sdc_st_file *f, const char *prefix) {
    if (!f || !prefix) return NULL;
    /* names are sorted: those that start with prefix follow the first
     * name >= prefix */
    int lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(f->tensors[mid].name, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = strlen(prefix);
    if (lo < f->n_tensors && strncmp(f->tensors[lo].name, prefix, n) == 0) return &f->tensors[lo];
    return NULL;
}

const char *sdc_st_meta(const sdc_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    int lo = 0, hi = f->n_meta - 1; /* keys are sorted */
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->meta_keys[mid], key);
        if (c == 0) return f->meta_values[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* ------------------------------------------------------------ conversion */

/* float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN, max 448. */
float sdc_f8_e4m3_to_f32(uint8_t b) {
    int e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m, -9);           /* m/8 * 2^-6 */
    else
        v = ldexpf((float)(8 + m), e - 10); /* (1 + m/8) * 2^(e-7) */
    return (b & 0x80) ? -v : v;
}

/* float8 e5m2: bias 15, IEEE-like (inf and NaN at exponent 31). */
float sdc_f8_e5m2_to_f32(uint8_t b) {
    int e = (b >> 2) & 0x1f, m = b & 3;
    float v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexpf((float)m, -16);          /* m/4 * 2^-14 */
    else
        v = ldexpf((float)(4 + m), e - 17); /* (1 + m/4) * 2^(e-15) */
    return (b & 0x80) ? -v : v;
}

/* double -> float without relying on out-of-range conversion behaviour:
 * values beyond FLT_MAX round (to nearest) to FLT_MAX or to infinity. */
static float narrow_f64(double d) {
    double a = fabs(d);
    if (a <= (double)FLT_MAX || isnan(d)) return (float)d;
    float v = a < 0x1.ffffffp127 ? FLT_MAX : INFINITY; /* FLT_MAX + ulp/2 */
    return d < 0 ? -v : v;
}

sdc_status sdc_st_to_f32(const sdc_st_file *f, const sdc_st_tensor *t,
                         float *dst) {
    const char *path = f && f->path ? f->path : "(no file)";
    if (!t || (!dst && t->numel > 0))
        return sdc_fail(SDC_ERR_ARG, "%s: sdc_st_to_f32: NULL tensor or "
                        "destination", path);
    if ((int)t->dtype < 0 || t->dtype >= SDC_DT_COUNT ||
        t->numel < 0 ||
        (uint64_t)t->numel * g_dtypes[t->dtype].size != t->nbytes)
        return sdc_fail(SDC_ERR_ARG, "%s: tensor '%s': inconsistent tensor "
                        "descriptor", path, t->name ? t->name : "?");
    if (!sdc_dtype_is_float(t->dtype))
        return sdc_fail(SDC_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; "
                        "only floating-point tensors (F64 F32 F16 BF16 "
                        "F8_E4M3 F8_E5M2) convert to F32", path,
                        t->name ? t->name : "?", g_dtypes[t->dtype].name);
    const unsigned char *src = t->data;
    int64_t n = t->numel;
    switch (t->dtype) {
    case SDC_DT_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n > 0) memcpy(dst, src, (size_t)n * 4); /* file is little-endian */
#else
        ST_OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *p = src + 4 * i;
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                         (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
#endif
        break;
    case SDC_DT_F64:
        ST_OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = read_u64_le(src + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = narrow_f64(d);
        }
        break;
    case SDC_DT_F16:
        ST_OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = sdc_f16_to_f32(h);
        }
        break;
    case SDC_DT_BF16:
        ST_OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = sdc_bf16_to_f32(h);
        }
        break;
    case SDC_DT_F8_E4M3:
    case SDC_DT_F8_E5M2: {
        float lut[256];
        for (int k = 0; k < 256; k++)
            lut[k] = t->dtype == SDC_DT_F8_E4M3 ? sdc_f8_e4m3_to_f32((uint8_t)k)
                                                : sdc_f8_e5m2_to_f32((uint8_t)k);
        ST_OMP_FOR
        for (int64_t i = 0; i < n; i++) dst[i] = lut[src[i]];
        break;
    }
    default:
        break;
    }
    return SDC_OK;
}

void sdc_st_drop_pages(sdc_st_file *f) {
    if (f && f->map && f->map_size) madvise(f->map, f->map_size, MADV_DONTNEED);
}

const void *sdc_st_view(const sdc_st_file *f, const sdc_st_tensor *t) {
    if (!f || !f->view || !t) return NULL;
    return (const char *)f->view + ((const char *)t->data - (const char *)f->map);
}

void sdc_st_populate(const sdc_st_file *f, const void *p, size_t n) {
    const uintptr_t page = 4096;
    uintptr_t a = (uintptr_t)p & ~(page - 1), b = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    (void)f;
    if (b <= a) return;
#ifdef MADV_POPULATE_READ
    if (madvise((void *)a, b - a, MADV_POPULATE_READ) == 0) return;
#endif
    madvise((void *)a, b - a, MADV_WILLNEED); /* older kernels: read ahead at least */
}

void sdc_st_drop_tensor_pages(const sdc_st_file *f, const sdc_st_tensor *t) {
    const uintptr_t page = 4096;
    uintptr_t a = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    (void)f;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}
