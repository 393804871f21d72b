/* config_value.h - strict reading of configuration values from untrusted
 * files: safetensors __metadata__ strings and diffusers JSON configs.
 *
 * A value is taken only when the whole of it is what the key promises:
 * "8x", " 8", "+8", "8.0", "0x8" are not the integer 8; a JSON 8.5 or
 * "8" is not an integer either. Every range is closed [lo, hi]. A failure
 * is an SDC_ERR_FORMAT whose message names the file, the key, the value
 * found and what was expected. JSON null counts as absent, as diffusers
 * writes null for "not set". */
#ifndef SDC_CONFIG_VALUE_H
#define SDC_CONFIG_VALUE_H

#include <cjson/cJSON.h>

#include "model/safetensors.h"

/* Whole-string decimal integer in [lo, hi] (optional leading '-', digits,
 * nothing else). */
bool sdc_parse_int_strict(const char *s, long lo, long hi, long *out);
/* Whole-string finite decimal number in [lo, hi] (strtod syntax without
 * leading space, hex, inf or nan). */
bool sdc_parse_double_strict(const char *s, double lo, double hi, double *out);

/* __metadata__ integer of a single file; *found is false (and *out left
 * as it was) when the key is absent. */
sdc_status sdc_meta_int(const sdc_st_file *f, const char *key, int lo, int hi, bool *found, int *out);
/* A comma-separated list of 1 or `n` integers in [lo, hi]: one value is
 * repeated n times. */
sdc_status sdc_meta_int_list(const sdc_st_file *f, const char *key, int n, int lo, int hi, bool *found,
                             int *out);

/* Keys of a JSON object read from the file `path` (for messages). *found
 * false when the key is absent or null; `obj` may be NULL (no file). */
sdc_status sdc_json_int(const char *path, const cJSON *obj, const char *key, int lo, int hi, bool *found,
                        int *out);
sdc_status sdc_json_number(const char *path, const cJSON *obj, const char *key, double lo, double hi,
                           bool *found, double *out);
sdc_status sdc_json_bool(const char *path, const cJSON *obj, const char *key, bool *found, bool *out);
/* A string that must be one of `allowed` (NULL-terminated); *out points
 * into `allowed`. */
sdc_status sdc_json_enum(const char *path, const cJSON *obj, const char *key, const char *const *allowed,
                         bool *found, const char **out);
/* A string of any value (bounded at 256 bytes); *out points into obj. */
sdc_status sdc_json_string(const char *path, const cJSON *obj, const char *key, bool *found, const char **out);
/* An integer, or an array of 1..max_n integers, each in [lo, hi]; *n gets
 * the count (1 for a plain integer). */
sdc_status sdc_json_int_list(const char *path, const cJSON *obj, const char *key, int max_n, int lo, int hi,
                             bool *found, int *out, int *n);

/* Short rendering of a JSON value for messages ("-3", "\"x\"", "[1,2]"). */
void sdc_json_repr(const cJSON *j, char *buf, size_t n);

#endif
