/* config_value.c - strict configuration values (see config_value.h). */
#include "model/config_value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sdc_parse_int_strict(const char *s, long lo, long hi, long *out) {
    if (!s) return false;
    const char *p = s;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool sdc_parse_double_strict(const char *s, double lo, double hi, double *out) {
    if (!s) return false;
    /* digits, one '.', an exponent: what a JSON number or Python repr is */
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9'))) return false;
    for (const char *q = p; *q; q++)
        if (!strchr("0123456789.eE+-", *q)) return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Values shown in messages are cut, so a hostile 1 MB value stays a line. */
#define SHOWN 48

sdc_status sdc_meta_int(const sdc_st_file *f, const char *key, int lo, int hi, bool *found, int *out) {
    const char *v = f ? sdc_st_meta(f, key) : NULL;
    *found = v != NULL;
    if (!v) return SDC_OK;
    long x;
    if (!sdc_parse_int_strict(v, lo, hi, &x))
        return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ %s is \"%.*s%s\"; expected a whole number from %d to %d",
                        f->path, key, SHOWN, v, strlen(v) > SHOWN ? "..." : "", lo, hi);
    *out = (int)x;
    return SDC_OK;
}

sdc_status sdc_meta_int_list(const sdc_st_file *f, const char *key, int n, int lo, int hi, bool *found,
                             int *out) {
    const char *v = f ? sdc_st_meta(f, key) : NULL;
    *found = v != NULL;
    if (!v) return SDC_OK;
    int vals[64], k = 0;
    bool ok = n >= 1 && n <= 64;
    const char *p = v;
    while (ok) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[24];
        long x;
        ok = len > 0 && len < sizeof item && k < n;
        if (ok) {
            memcpy(item, p, len);
            item[len] = '\0';
            ok = sdc_parse_int_strict(item, lo, hi, &x);
            if (ok) vals[k++] = (int)x;
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (!ok || (k != 1 && k != n))
        return sdc_fail(SDC_ERR_FORMAT, "%s: __metadata__ %s is \"%.*s%s\"; expected one whole number or %d "
                        "comma-separated ones, each from %d to %d", f->path, key, SHOWN, v,
                        strlen(v) > SHOWN ? "..." : "", n, lo, hi);
    for (int i = 0; i < n; i++) out[i] = vals[k == 1 ? 0 : i];
    return SDC_OK;
}

void sdc_json_repr(const cJSON *j, char *buf, size_t n) {
    if (!j) {
        snprintf(buf, n, "nothing");
        return;
    }
    char *s = cJSON_PrintUnformatted(j);
    if (!s) {
        snprintf(buf, n, "(unprintable value)");
        return;
    }
    if (strlen(s) > SHOWN)
        snprintf(buf, n, "%.45s...", s);
    else
        snprintf(buf, n, "%s", s);
    cJSON_free(s);
}

/* The key's value, NULL when absent or null. */
static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool json_integral(const cJSON *v, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) return false;
    *out = (int)d;
    return true;
}

static sdc_status bad(const char *path, const char *key, const cJSON *v, const char *expected) {
    char shown[64];
    sdc_json_repr(v, shown, sizeof shown);
    return sdc_fail(SDC_ERR_FORMAT, "%s: \"%s\" is %s; expected %s", path, key, shown, expected);
}

sdc_status sdc_json_int(const char *path, const cJSON *obj, const char *key, int lo, int hi, bool *found,
                        int *out) {
    const cJSON *v = get(obj, key);
    *found = v != NULL;
    if (!v) return SDC_OK;
    int x;
    if (!json_integral(v, lo, hi, &x)) {
        char want[80];
        snprintf(want, sizeof want, "a whole number from %d to %d", lo, hi);
        return bad(path, key, v, want);
    }
    *out = x;
    return SDC_OK;
}

sdc_status sdc_json_number(const char *path, const cJSON *obj, const char *key, double lo, double hi,
                           bool *found, double *out) {
    const cJSON *v = get(obj, key);
    *found = v != NULL;
    if (!v) return SDC_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        char want[80];
        snprintf(want, sizeof want, "a number from %g to %g", lo, hi);
        return bad(path, key, v, want);
    }
    *out = v->valuedouble;
    return SDC_OK;
}

sdc_status sdc_json_bool(const char *path, const cJSON *obj, const char *key, bool *found, bool *out) {
    const cJSON *v = get(obj, key);
    *found = v != NULL;
    if (!v) return SDC_OK;
    if (!cJSON_IsBool(v)) return bad(path, key, v, "true or false");
    *out = cJSON_IsTrue(v);
    return SDC_OK;
}

sdc_status sdc_json_string(const char *path, const cJSON *obj, const char *key, bool *found, const char **out) {
    const cJSON *v = get(obj, key);
    *found = v != NULL;
    if (!v) return SDC_OK;
    if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) > 256)
        return bad(path, key, v, "a string of at most 256 bytes");
    *out = v->valuestring;
    return SDC_OK;
}

sdc_status sdc_json_enum(const char *path, const cJSON *obj, const char *key, const char *const *allowed,
                         bool *found, const char **out) {
    const char *s = NULL;
    SDC_TRY(sdc_json_string(path, obj, key, found, &s));
    if (!*found) return SDC_OK;
    char want[256] = "one of";
    for (int i = 0; allowed[i]; i++) {
        if (strcmp(s, allowed[i]) == 0) {
            *out = allowed[i];
            return SDC_OK;
        }
        size_t k = strlen(want);
        snprintf(want + k, sizeof want - k, "%s \"%s\"", i ? "," : "", allowed[i]);
    }
    return bad(path, key, get(obj, key), want);
}

sdc_status sdc_json_int_list(const char *path, const cJSON *obj, const char *key, int max_n, int lo, int hi,
                             bool *found, int *out, int *n) {
    const cJSON *v = get(obj, key);
    *found = v != NULL;
    if (!v) return SDC_OK;
    char want[120];
    snprintf(want, sizeof want, "a whole number or a list of 1 to %d of them, each from %d to %d", max_n, lo, hi);
    if (cJSON_IsNumber(v)) {
        if (!json_integral(v, lo, hi, &out[0])) return bad(path, key, v, want);
        *n = 1;
        return SDC_OK;
    }
    if (!cJSON_IsArray(v)) return bad(path, key, v, want);
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (k >= max_n || !json_integral(e, lo, hi, &out[k])) return bad(path, key, v, want);
        k++;
    }
    if (k == 0) return bad(path, key, v, want);
    *n = k;
    return SDC_OK;
}
