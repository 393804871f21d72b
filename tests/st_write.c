/* st_write.c - test helpers that write safetensors files; see st_write.h. */
#include "st_write.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

char *st_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + sizeof "/sdc-test-XXXXXX";
    char *tmpl = malloc(n);
    if (!tmpl) return NULL;
    snprintf(tmpl, n, "%s/sdc-test-XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

char *st_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int st_rmtree(const char *dir) {
    struct stat sb;
    if (lstat(dir, &sb) != 0) return -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(dir) == 0 ? 0 : -1;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = st_path(dir, e->d_name);
        if (!p || st_rmtree(p) != 0) rc = -1;
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0) rc = -1;
    return rc;
}

int st_write_bytes(const char *path, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int rc = (n == 0 || fwrite(bytes, 1, n, fp) == n) ? 0 : -1;
    if (fclose(fp) != 0) rc = -1;
    return rc;
}

int st_write_raw_len(const char *path, uint64_t declared_len,
                     const void *header, size_t header_bytes,
                     const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(declared_len >> (8 * i));
    int rc = fwrite(le, 1, 8, fp) == 8 ? 0 : -1;
    if (rc == 0 && header_bytes &&
        fwrite(header, 1, header_bytes, fp) != header_bytes)
        rc = -1;
    if (rc == 0 && n && fwrite(data, 1, n, fp) != n) rc = -1;
    if (fclose(fp) != 0) rc = -1;
    return rc;
}

int st_write_raw(const char *path, const char *header_json, const void *data,
                 size_t n) {
    size_t h = strlen(header_json);
    return st_write_raw_len(path, h, header_json, h, data, n);
}

/* ------------------------------------------------------------ builder */

typedef struct st_item {
    char *name, *dtype;
    int ndim;
    int64_t shape[16];
    unsigned char *bytes;
    size_t nbytes;
} st_item;

struct st_builder {
    st_item *items;
    int n_items, cap_items;
    char **meta; /* key, value, key, value, ... */
    int n_meta, cap_meta;
};

st_builder *st_builder_new(void) { return calloc(1, sizeof(st_builder)); }

void st_builder_free(st_builder *b) {
    if (!b) return;
    for (int i = 0; i < b->n_items; i++) {
        free(b->items[i].name);
        free(b->items[i].dtype);
        free(b->items[i].bytes);
    }
    free(b->items);
    for (int i = 0; i < 2 * b->n_meta; i++) free(b->meta[i]);
    free(b->meta);
    free(b);
}

int st_builder_add(st_builder *b, const char *name, const char *dtype,
                   int ndim, const int64_t *shape, const void *bytes,
                   size_t nbytes) {
    if (!b || !name || !dtype || ndim < 0 || ndim > 16) return -1;
    if (b->n_items == b->cap_items) {
        int cap = b->cap_items ? 2 * b->cap_items : 8;
        st_item *p = realloc(b->items, sizeof *p * (size_t)cap);
        if (!p) return -1;
        b->items = p;
        b->cap_items = cap;
    }
    st_item *it = &b->items[b->n_items];
    memset(it, 0, sizeof *it);
    it->name = strdup(name);
    it->dtype = strdup(dtype);
    it->bytes = malloc(nbytes ? nbytes : 1);
    if (!it->name || !it->dtype || !it->bytes) {
        free(it->name);
        free(it->dtype);
        free(it->bytes);
        return -1;
    }
    if (nbytes) memcpy(it->bytes, bytes, nbytes);
    it->nbytes = nbytes;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i];
    b->n_items++;
    return 0;
}

static size_t numel_of(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

int st_builder_add_f32(st_builder *b, const char *name, int ndim,
                       const int64_t *shape, const float *values) {
    size_t n = numel_of(ndim, shape);
    unsigned char *buf = malloc(4 * n + 1);
    if (!buf) return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &values[i], 4);
        for (int k = 0; k < 4; k++) buf[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    int rc = st_builder_add(b, name, "F32", ndim, shape, buf, 4 * n);
    free(buf);
    return rc;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static int add_half(st_builder *b, const char *name, const char *dtype,
                    int ndim, const int64_t *shape, const float *values) {
    size_t n = numel_of(ndim, shape);
    unsigned char *buf = malloc(2 * n + 1);
    if (!buf) return -1;
    bool bf = strcmp(dtype, "BF16") == 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = bf ? f32_to_bf16(values[i]) : sdc_f32_to_f16(values[i]);
        buf[2 * i] = (unsigned char)(h & 0xff);
        buf[2 * i + 1] = (unsigned char)(h >> 8);
    }
    int rc = st_builder_add(b, name, dtype, ndim, shape, buf, 2 * n);
    free(buf);
    return rc;
}

int st_builder_add_f16(st_builder *b, const char *name, int ndim,
                       const int64_t *shape, const float *values) {
    return add_half(b, name, "F16", ndim, shape, values);
}

int st_builder_add_bf16(st_builder *b, const char *name, int ndim,
                        const int64_t *shape, const float *values) {
    return add_half(b, name, "BF16", ndim, shape, values);
}

int st_builder_meta(st_builder *b, const char *key, const char *value) {
    if (!b || !key || !value) return -1;
    if (b->n_meta == b->cap_meta) {
        int cap = b->cap_meta ? 2 * b->cap_meta : 4;
        char **p = realloc(b->meta, sizeof *p * 2 * (size_t)cap);
        if (!p) return -1;
        b->meta = p;
        b->cap_meta = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    b->meta[2 * b->n_meta] = k;
    b->meta[2 * b->n_meta + 1] = v;
    b->n_meta++;
    return 0;
}

/* Growable text buffer for the header. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int err;
} sbuf;

static void sb_putn(sbuf *s, const char *t, size_t n) {
    if (s->err) return;
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->err = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = '\0';
}

static void sb_puts(sbuf *s, const char *t) { sb_putn(s, t, strlen(t)); }

static void sb_printf_u64(sbuf *s, unsigned long long v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%llu", v);
    sb_puts(s, tmp);
}

/* A JSON string literal. */
static void sb_json_str(sbuf *s, const char *t) {
    sb_putn(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)t; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            sb_putn(s, e, 2);
        } else if (*c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *c);
            sb_puts(s, e);
        } else {
            sb_putn(s, (const char *)c, 1);
        }
    }
    sb_putn(s, "\"", 1);
}

int st_builder_write(const st_builder *b, const char *path) {
    if (!b || !path) return -1;
    sbuf s = {0};
    sb_puts(&s, "{");
    int first = 1;
    if (b->n_meta) {
        sb_puts(&s, "\"__metadata__\":{");
        for (int i = 0; i < b->n_meta; i++) {
            if (i) sb_puts(&s, ",");
            sb_json_str(&s, b->meta[2 * i]);
            sb_puts(&s, ":");
            sb_json_str(&s, b->meta[2 * i + 1]);
        }
        sb_puts(&s, "}");
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < b->n_items; i++) {
        const st_item *it = &b->items[i];
        if (!first) sb_puts(&s, ",");
        first = 0;
        sb_json_str(&s, it->name);
        sb_puts(&s, ":{\"dtype\":");
        sb_json_str(&s, it->dtype);
        sb_puts(&s, ",\"shape\":[");
        for (int d = 0; d < it->ndim; d++) {
            if (d) sb_puts(&s, ",");
            sb_printf_u64(&s, (unsigned long long)it->shape[d]);
        }
        sb_puts(&s, "],\"data_offsets\":[");
        sb_printf_u64(&s, off);
        sb_puts(&s, ",");
        sb_printf_u64(&s, off + it->nbytes);
        sb_puts(&s, "]}");
        off += it->nbytes;
    }
    sb_puts(&s, "}");
    while (!s.err && (s.n % 8) != 0) sb_puts(&s, " ");
    if (s.err) {
        free(s.p);
        return -1;
    }
    unsigned char *data = malloc(off ? off : 1);
    if (!data) {
        free(s.p);
        return -1;
    }
    size_t pos = 0;
    for (int i = 0; i < b->n_items; i++) {
        if (b->items[i].nbytes)
            memcpy(data + pos, b->items[i].bytes, b->items[i].nbytes);
        pos += b->items[i].nbytes;
    }
    int rc = st_write_raw_len(path, s.n, s.p, s.n, data, off);
    free(data);
    free(s.p);
    return rc;
}
