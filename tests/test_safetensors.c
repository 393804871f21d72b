/* test_safetensors.c - the strict safetensors reader: valid files read back
 * exactly, every malformed case refused with a message naming the file (and
 * the tensor), pickle checkpoints refused, float conversions exact. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/safetensors.h"
#include "st_write.h"

static char *g_dir;

static void setup(void) {
    g_dir = st_tmpdir();
    cr_assert_not_null(g_dir, "cannot create a temp dir");
}

static void teardown(void) {
    if (g_dir) st_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

TestSuite(safetensors, .init = setup, .fini = teardown);

/* A path in this test's temp dir; freed at process exit by the caller. */
static char *tpath(const char *name) {
    char *p = st_path(g_dir, name);
    cr_assert_not_null(p);
    return p;
}

static bool same_bits(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

/* Open `path`, expect failure `code` with a message containing the path and
 * every non-NULL needle. */
static void expect_fail(const char *path, sdc_status code, const char *n1,
                        const char *n2) {
    sdc_st_file *f = (sdc_st_file *)1;
    sdc_status st = sdc_st_open(path, &f);
    const char *msg = sdc_last_error();
    cr_assert_eq(st, code, "status %d, expected %d; message: %s", (int)st,
                 (int)code, msg);
    cr_assert_null(f, "out must be NULL on failure");
    cr_assert_not_null(strstr(msg, path), "message lacks the path: %s", msg);
    if (n1) cr_assert_not_null(strstr(msg, n1), "message lacks '%s': %s", n1, msg);
    if (n2) cr_assert_not_null(strstr(msg, n2), "message lacks '%s': %s", n2, msg);
}

/* Write a raw header + data file and expect the open to fail. */
static void raw_fail(const char *file, const char *header, const void *data,
                     size_t n, sdc_status code, const char *n1,
                     const char *n2) {
    char *p = tpath(file);
    cr_assert_eq(st_write_raw(p, header, data, n), 0);
    expect_fail(p, code, n1, n2);
    free(p);
}

static const unsigned char zeros[64];

/* ------------------------------------------------------------ valid files */

Test(safetensors, valid_file_reads_back_exactly) {
    char *p = tpath("ok.safetensors");
    st_builder *b = st_builder_new();
    cr_assert_not_null(b);

    float f32v[6] = {1.5f, -2.25f, 0.0f, 3.0e-8f, 65536.0f, -1e30f};
    int64_t s23[2] = {2, 3};
    cr_assert_eq(st_builder_add_f32(b, "model.w32", 2, s23, f32v), 0);

    float f16v[4] = {1.0f, -0.5f, 65504.0f, 0x1p-14f};
    int64_t s4[1] = {4};
    cr_assert_eq(st_builder_add_f16(b, "model.w16", 1, s4, f16v), 0);

    float bfv[4] = {1.0f, -3.0f, 0.15625f, 256.0f};
    int64_t s22[2] = {2, 2};
    cr_assert_eq(st_builder_add_bf16(b, "model.bf", 2, s22, bfv), 0);

    double f64v[3] = {0.1, -1e300, 1e-50};
    unsigned char f64b[24];
    for (int i = 0; i < 3; i++) {
        uint64_t u;
        memcpy(&u, &f64v[i], 8);
        for (int k = 0; k < 8; k++) f64b[8 * i + k] = (unsigned char)(u >> (8 * k));
    }
    int64_t s3[1] = {3};
    cr_assert_eq(st_builder_add(b, "a.f64", "F64", 1, s3, f64b, 24), 0);

    unsigned char e4[4] = {0x38, 0x7e, 0xc0, 0x01};
    unsigned char e5[4] = {0x3c, 0x7c, 0xfb, 0x04};
    cr_assert_eq(st_builder_add(b, "f8.e4m3", "F8_E4M3", 1, s4, e4, 4), 0);
    cr_assert_eq(st_builder_add(b, "f8.e5m2", "F8_E5M2", 1, s4, e5, 4), 0);

    int64_t iv[2] = {-7, 1234567890123LL};
    unsigned char ib[16];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 8; k++)
            ib[8 * i + k] = (unsigned char)((uint64_t)iv[i] >> (8 * k));
    int64_t s2[1] = {2};
    cr_assert_eq(st_builder_add(b, "ids", "I64", 1, s2, ib, 16), 0);

    float scalar = 42.0f;
    cr_assert_eq(st_builder_add_f32(b, "scalar", 0, NULL, &scalar), 0);
    int64_t s05[2] = {0, 5};
    cr_assert_eq(st_builder_add_f32(b, "empty", 2, s05, NULL), 0);

    cr_assert_eq(st_builder_meta(b, "format", "pt"), 0);
    cr_assert_eq(st_builder_meta(b, "note", "quote \" and \\ and \n"), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);

    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    cr_assert_str_eq(f->path, p);
    cr_assert_eq(f->n_tensors, 9);
    for (int i = 1; i < f->n_tensors; i++)
        cr_assert_lt(strcmp(f->tensors[i - 1].name, f->tensors[i].name), 0,
                     "tensors not sorted by name");

    const sdc_st_tensor *t = sdc_st_find(f, "model.w32");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(t->numel, 6);
    cr_assert_eq(t->nbytes, 24);
    float out[8];
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    for (int i = 0; i < 6; i++) cr_assert(same_bits(out[i], f32v[i]), "w32[%d]", i);

    t = sdc_st_find(f, "model.w16");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_F16);
    cr_assert_eq(t->nbytes, 8);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    for (int i = 0; i < 4; i++) cr_assert(same_bits(out[i], f16v[i]), "w16[%d]=%g", i, out[i]);

    t = sdc_st_find(f, "model.bf");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_BF16);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    for (int i = 0; i < 4; i++) cr_assert(same_bits(out[i], bfv[i]), "bf[%d]", i);

    t = sdc_st_find(f, "a.f64");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_F64);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    cr_assert(same_bits(out[0], 0.1f));
    cr_assert(isinf(out[1]) && out[1] < 0);
    cr_assert(same_bits(out[2], 0.0f));

    t = sdc_st_find(f, "f8.e4m3");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_F8_E4M3);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    cr_assert(out[0] == 1.0f && out[1] == 448.0f && out[2] == -2.0f &&
              out[3] == 0.001953125f);

    t = sdc_st_find(f, "f8.e5m2");
    cr_assert_not_null(t);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    cr_assert(out[0] == 1.0f && isinf(out[1]) && out[1] > 0 &&
              out[2] == -57344.0f && out[3] == 0x1p-14f);

    t = sdc_st_find(f, "ids");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SDC_DT_I64);
    cr_assert_eq(t->numel, 2);
    for (int i = 0; i < 2; i++) {
        uint64_t u = 0;
        const unsigned char *d = t->data;
        for (int k = 7; k >= 0; k--) u = (u << 8) | d[8 * i + k];
        cr_assert_eq((int64_t)u, iv[i]);
    }
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_ERR_UNSUPPORTED);
    cr_assert_not_null(strstr(sdc_last_error(), "ids"), "%s", sdc_last_error());
    cr_assert_not_null(strstr(sdc_last_error(), "I64"), "%s", sdc_last_error());

    t = sdc_st_find(f, "scalar");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->numel, 1);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
    cr_assert_eq(out[0], 42.0f);

    t = sdc_st_find(f, "empty");
    cr_assert_not_null(t);
    cr_assert_eq(t->numel, 0);
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);

    cr_assert_null(sdc_st_find(f, "missing"));
    cr_assert_null(sdc_st_find(f, ""));
    cr_assert_null(sdc_st_find(f, "__metadata__"));

    cr_assert_eq(f->n_meta, 2);
    cr_assert_str_eq(sdc_st_meta(f, "format"), "pt");
    cr_assert_str_eq(sdc_st_meta(f, "note"), "quote \" and \\ and \n");
    cr_assert_null(sdc_st_meta(f, "nope"));
    sdc_st_close(f);
    free(p);
}

Test(safetensors, dtype_table) {
    static const char *names[SDC_DT_COUNT] = {
        "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32",
        "I16", "I8", "U8", "BOOL", "U16", "U32", "U64"};
    static const size_t sizes[SDC_DT_COUNT] = {8, 4, 2, 2, 1, 1, 8, 4,
                                               2, 1, 1, 1, 2, 4, 8};
    for (int i = 0; i < SDC_DT_COUNT; i++) {
        cr_assert_str_eq(sdc_dtype_name((sdc_dtype)i), names[i]);
        cr_assert_eq(sdc_dtype_size((sdc_dtype)i), sizes[i]);
        cr_assert_eq(sdc_dtype_is_float((sdc_dtype)i), i <= SDC_DT_F8_E5M2);
    }
    cr_assert_eq(sdc_dtype_size(SDC_DT_COUNT), 0);
}

Test(safetensors, every_dtype_accepted_and_ints_refused_by_to_f32) {
    static const char *names[] = {"I32", "I16", "I8", "U8", "BOOL", "U16",
                                  "U32", "U64"};
    static const size_t sizes[] = {4, 2, 1, 1, 1, 2, 4, 8};
    char *p = tpath("ints.safetensors");
    st_builder *b = st_builder_new();
    int64_t s3[1] = {3};
    char nm[32];
    for (int i = 0; i < 8; i++) {
        snprintf(nm, sizeof nm, "int.%s", names[i]);
        cr_assert_eq(st_builder_add(b, nm, names[i], 1, s3, zeros, 3 * sizes[i]), 0);
    }
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    float out[3];
    for (int i = 0; i < 8; i++) {
        snprintf(nm, sizeof nm, "int.%s", names[i]);
        const sdc_st_tensor *t = sdc_st_find(f, nm);
        cr_assert_not_null(t, "%s", nm);
        cr_assert_str_eq(sdc_dtype_name(t->dtype), names[i]);
        cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_ERR_UNSUPPORTED);
        cr_assert_not_null(strstr(sdc_last_error(), nm), "%s", sdc_last_error());
    }
    sdc_st_close(f);
    free(p);
}

Test(safetensors, unaligned_data_converts) {
    /* U8 [1] then F32 [3]: the floats start at an odd address in the map. */
    char *p = tpath("unaligned.safetensors");
    st_builder *b = st_builder_new();
    int64_t s1[1] = {1}, s3[1] = {3};
    unsigned char one = 7;
    float v[3] = {1.0f, -2.0f, 3.5f};
    double dv[3] = {1.0, -2.0, 3.5};
    cr_assert_eq(st_builder_add(b, "a", "U8", 1, s1, &one, 1), 0);
    cr_assert_eq(st_builder_add_f32(b, "b", 1, s3, v), 0);
    cr_assert_eq(st_builder_add_f16(b, "c", 1, s3, v), 0);
    cr_assert_eq(st_builder_add(b, "d", "F64", 1, s3, dv, sizeof dv), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    const char *nm[3] = {"b", "c", "d"};
    for (int k = 0; k < 3; k++) {
        const sdc_st_tensor *t = sdc_st_find(f, nm[k]);
        cr_assert_not_null(t);
        cr_assert_eq((uintptr_t)t->data % 2, 1, "expected an odd address");
        float out[3];
        cr_assert_eq(sdc_st_to_f32(f, t, out), SDC_OK);
        for (int i = 0; i < 3; i++) cr_assert_eq(out[i], v[i]);
    }
    sdc_st_close(f);
    free(p);
}

Test(safetensors, empty_header_padding_and_gaps) {
    char *p = tpath("empty.safetensors");
    sdc_st_file *f = NULL;
    cr_assert_eq(st_write_raw(p, "{}", NULL, 0), 0);
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(f->n_tensors, 0);
    cr_assert_eq(f->n_meta, 0);
    cr_assert_null(sdc_st_find(f, "x"));
    sdc_st_close(f);

    /* Leading whitespace, trailing space padding, a gap, zero-size tensors
     * sharing offsets with others, unknown extra fields ignored. */
    cr_assert_eq(st_write_raw(p,
        " {\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8],"
        "\"extra\":1},"
        "\"z\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
        "\"z2\":{\"dtype\":\"F16\",\"shape\":[9007199254740992,2,0],"
        "\"data_offsets\":[16,16]},"
        "\"__metadata__\":{}}     \n ", zeros, 16), 0);
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(f->n_tensors, 3);
    cr_assert_eq(sdc_st_find(f, "z2")->numel, 0);
    sdc_st_close(f);
    free(p);
}

Test(safetensors, header_length_that_looks_like_pickle_is_still_read) {
    /* Header length 640 = bytes 80 02 00 ..., the pickle protocol 2 magic. */
    char *p = tpath("len640.safetensors");
    char hdr[641];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                     "\"data_offsets\":[0,4]}}");
    memset(hdr + n, ' ', (size_t)(640 - n));
    hdr[640] = '\0';
    float one = 1.0f;
    cr_assert_eq(st_write_raw(p, hdr, &one, 4), 0);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    cr_assert_not_null(sdc_st_find(f, "w"));
    sdc_st_close(f);
    free(p);
}

/* ------------------------------------------------------------ malformed */

static char *valid_file_bytes(size_t *n) {
    /* A one-tensor file, built in memory through the builder. */
    char *p = tpath("src.safetensors");
    st_builder *b = st_builder_new();
    float v[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    cr_assert_eq(st_builder_add_f32(b, "layer.weight", 1, s4, v), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    FILE *fp = fopen(p, "rb");
    cr_assert_not_null(fp);
    char *buf = malloc(4096);
    *n = fread(buf, 1, 4096, fp);
    fclose(fp);
    free(p);
    return buf;
}

Test(safetensors, truncated_data) {
    size_t n;
    char *buf = valid_file_bytes(&n);
    char *p = tpath("trunc.safetensors");
    cr_assert_eq(st_write_bytes(p, buf, n - 3), 0);
    expect_fail(p, SDC_ERR_FORMAT, "layer.weight", "past the end");
    free(p);
    free(buf);
}

Test(safetensors, truncated_in_header) {
    size_t n;
    char *buf = valid_file_bytes(&n);
    char *p = tpath("trunc_hdr.safetensors");
    cr_assert_eq(st_write_bytes(p, buf, 20), 0);
    expect_fail(p, SDC_ERR_FORMAT, "not a safetensors file", "past the end");
    free(p);
    free(buf);
}

Test(safetensors, header_length_past_eof) {
    char *p = tpath("pasteof.safetensors");
    const char *h = "{}";
    cr_assert_eq(st_write_raw_len(p, 1000, h, 2, NULL, 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "past the end", "1000");
    free(p);
}

Test(safetensors, header_length_absurd) {
    char *p = tpath("huge.safetensors");
    const char *h = "{}";
    cr_assert_eq(st_write_raw_len(p, (uint64_t)1 << 40, h, 2, NULL, 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "implausible", NULL);
    cr_assert_eq(st_write_raw_len(p, UINT64_MAX, h, 2, NULL, 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "implausible", NULL);
    cr_assert_eq(st_write_raw_len(p, 1, "{", 1, NULL, 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "too small", NULL);
    free(p);
}

Test(safetensors, shorter_than_8_bytes) {
    char *p = tpath("short.safetensors");
    cr_assert_eq(st_write_bytes(p, "\x02\0\0\0\0", 5), 0);
    expect_fail(p, SDC_ERR_FORMAT, "5 bytes", NULL);
    free(p);
}

Test(safetensors, empty_file) {
    char *p = tpath("empty.safetensors");
    cr_assert_eq(st_write_bytes(p, "", 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "empty", NULL);
    free(p);
}

Test(safetensors, header_not_json) {
    raw_fail("notjson.safetensors", "{\"a\": nope}", NULL, 0, SDC_ERR_FORMAT,
             "header is not valid JSON", NULL);
    raw_fail("notjson2.safetensors", "hello world", NULL, 0, SDC_ERR_FORMAT,
             "header is not valid JSON", NULL);
    raw_fail("notjson3.safetensors", "{\"a\":{}", NULL, 0, SDC_ERR_FORMAT,
             "header is not valid JSON", NULL);
}

Test(safetensors, header_json_not_object) {
    raw_fail("array.safetensors", "[1, 2, 3]", NULL, 0, SDC_ERR_FORMAT,
             "not an object", "array");
    raw_fail("string.safetensors", "\"abc\"", NULL, 0, SDC_ERR_FORMAT,
             "not an object", NULL);
}

Test(safetensors, header_trailing_garbage) {
    raw_fail("garbage.safetensors", "{}  x", NULL, 0, SDC_ERR_FORMAT,
             "stray byte", NULL);
    char *p = tpath("nul.safetensors");
    cr_assert_eq(st_write_raw_len(p, 4, "{}\0 ", 4, NULL, 0), 0);
    expect_fail(p, SDC_ERR_FORMAT, "stray byte", NULL);
    free(p);
}

Test(safetensors, overlapping_tensors) {
    raw_fail("overlap.safetensors",
             "{\"first.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"second.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             zeros, 12, SDC_ERR_FORMAT, "first.w", "second.w");
    /* Containment: a long range swallowing a later short one. */
    raw_fail("overlap2.safetensors",
             "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
             "\"mid\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
             "\"late\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}",
             zeros, 16, SDC_ERR_FORMAT, "overlap", "big");
}

Test(safetensors, wrong_byte_size) {
    raw_fail("size.safetensors",
             "{\"enc.proj\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
             zeros, 20, SDC_ERR_FORMAT, "enc.proj", "24");
}

Test(safetensors, offsets_past_data) {
    raw_fail("past.safetensors",
             "{\"enc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             zeros, 4, SDC_ERR_FORMAT, "enc.bias", "past the end");
}

Test(safetensors, begin_after_end) {
    raw_fail("order.safetensors",
             "{\"enc.gamma\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
             zeros, 8, SDC_ERR_FORMAT, "enc.gamma", "begin");
}

Test(safetensors, bad_data_offsets_shape) {
    raw_fail("offs1.safetensors",
             "{\"t.off\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
             zeros, 8, SDC_ERR_FORMAT, "t.off", "data_offsets");
    raw_fail("offs2.safetensors",
             "{\"t.off\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
             zeros, 8, SDC_ERR_FORMAT, "t.off", "data_offsets");
}

Test(safetensors, duplicate_names) {
    raw_fail("dup.safetensors",
             "{\"dup.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"other\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
             "\"dup.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             zeros, 12, SDC_ERR_FORMAT, "dup.weight", "more than once");
    raw_fail("dupmeta.safetensors",
             "{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0,
             SDC_ERR_FORMAT, "__metadata__", "twice");
    raw_fail("dupfield.safetensors",
             "{\"t.df\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
             "\"data_offsets\":[0,4]}}",
             zeros, 4, SDC_ERR_FORMAT, "t.df", "twice");
}

Test(safetensors, unknown_dtype) {
    raw_fail("dtype.safetensors",
             "{\"blk.0.w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             zeros, 4, SDC_ERR_FORMAT, "blk.0.w", "F17");
    raw_fail("dtype2.safetensors",
             "{\"blk.1.w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}",
             zeros, 4, SDC_ERR_FORMAT, "blk.1.w", "dtype");
    raw_fail("dtype3.safetensors",
             "{\"blk.2.w\":{\"dtype\":\"F8_E8M0\",\"shape\":[1],\"data_offsets\":[0,1]}}",
             zeros, 4, SDC_ERR_UNSUPPORTED, "blk.2.w", "F8_E8M0");
}

Test(safetensors, bad_shape) {
    raw_fail("neg.safetensors",
             "{\"neg.w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
             zeros, 4, SDC_ERR_FORMAT, "neg.w", "-1");
    raw_fail("frac.safetensors",
             "{\"frac.w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}",
             zeros, 10, SDC_ERR_FORMAT, "frac.w", "2.5");
    raw_fail("str.safetensors",
             "{\"str.w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
             zeros, 8, SDC_ERR_FORMAT, "str.w", "shape");
    raw_fail("notarr.safetensors",
             "{\"na.w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}",
             zeros, 16, SDC_ERR_FORMAT, "na.w", "shape");
    raw_fail("dims.safetensors",
             "{\"dims.w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
             "\"data_offsets\":[0,1]}}",
             zeros, 1, SDC_ERR_FORMAT, "dims.w", "9 dimensions");
    raw_fail("ovf.safetensors",
             "{\"ovf.w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
             "\"data_offsets\":[0,0]}}",
             NULL, 0, SDC_ERR_FORMAT, "ovf.w", "overflow");
    raw_fail("big.safetensors",
             "{\"big.w\":{\"dtype\":\"U8\",\"shape\":[1e300],"
             "\"data_offsets\":[0,0]}}",
             NULL, 0, SDC_ERR_FORMAT, "big.w", "shape[0]");
    raw_fail("missing.safetensors",
             "{\"ms.w\":{\"dtype\":\"U8\",\"data_offsets\":[0,0]}}",
             NULL, 0, SDC_ERR_FORMAT, "ms.w", "shape");
    raw_fail("entry.safetensors", "{\"en.w\":[1,2]}", NULL, 0,
             SDC_ERR_FORMAT, "en.w", "object");
}

Test(safetensors, non_string_metadata) {
    raw_fail("meta.safetensors", "{\"__metadata__\":{\"epochs\":3}}", NULL, 0,
             SDC_ERR_FORMAT, "epochs", "string");
    raw_fail("meta2.safetensors", "{\"__metadata__\":[\"a\"]}", NULL, 0,
             SDC_ERR_FORMAT, "__metadata__", "object");
    raw_fail("meta3.safetensors",
             "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", NULL, 0,
             SDC_ERR_FORMAT, "'k'", "twice");
}

/* ------------------------------------------------------------ other files */

Test(safetensors, zip_ckpt_refused) {
    char *p = tpath("model.ckpt");
    unsigned char zip[64] = {'P', 'K', 3, 4, 0x14, 0, 0, 0, 8, 0};
    memcpy(zip + 30, "archive/data.pkl", 16);
    cr_assert_eq(st_write_bytes(p, zip, sizeof zip), 0);
    expect_fail(p, SDC_ERR_UNSUPPORTED, "pickle", "safetensors.torch");
    cr_assert_not_null(strstr(sdc_last_error(), "weights_only=True"));
    cr_assert_not_null(strstr(sdc_last_error(), "model.safetensors"));
    free(p);
}

Test(safetensors, raw_pickle_refused) {
    char *p = tpath("old.pt");
    /* torch legacy format: PROTO 2, LONG1 magic number, ... */
    unsigned char pk[32] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                            0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    cr_assert_eq(st_write_bytes(p, pk, sizeof pk), 0);
    expect_fail(p, SDC_ERR_UNSUPPORTED, "pickle", "arbitrary code");
    pk[1] = 0x04;
    cr_assert_eq(st_write_bytes(p, pk, sizeof pk), 0);
    expect_fail(p, SDC_ERR_UNSUPPORTED, "pickle", NULL);
    free(p);
}

Test(safetensors, png_refused) {
    char *p = tpath("image.png");
    unsigned char png[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                             0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    cr_assert_eq(st_write_bytes(p, png, sizeof png), 0);
    expect_fail(p, SDC_ERR_FORMAT, "not a safetensors file", "header length");
    free(p);
}

Test(safetensors, text_file_refused) {
    char *p = tpath("readme.txt");
    const char *txt = "This is just some text, not a model at all.\n";
    cr_assert_eq(st_write_bytes(p, txt, strlen(txt)), 0);
    expect_fail(p, SDC_ERR_FORMAT, "not a safetensors file", NULL);
    const char *lfs = "version https://git-lfs.github.com/spec/v1\n"
                      "oid sha256:abc\nsize 123\n";
    cr_assert_eq(st_write_bytes(p, lfs, strlen(lfs)), 0);
    expect_fail(p, SDC_ERR_FORMAT, "Git LFS", NULL);
    free(p);
}

Test(safetensors, directory_refused) {
    char *p = tpath("subdir.safetensors");
    cr_assert_eq(mkdir(p, 0700), 0);
    expect_fail(p, SDC_ERR_IO, "directory", NULL);
    free(p);
}

Test(safetensors, missing_path) {
    char *p = tpath("does-not-exist.safetensors");
    expect_fail(p, SDC_ERR_IO, "no such file", NULL);
    free(p);
}

Test(safetensors, bad_arguments) {
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(NULL, &f), SDC_ERR_ARG);
    cr_assert_null(f);
    cr_assert_eq(sdc_st_open("x", NULL), SDC_ERR_ARG);
    sdc_st_close(NULL);
    cr_assert_null(sdc_st_find(NULL, "x"));
    cr_assert_null(sdc_st_meta(NULL, "x"));
}

/* ------------------------------------------------------------ conversions */

Test(safetensors, f16_special_values) {
    cr_assert_eq(sdc_f16_to_f32(0x0001), 0x1p-24f);           /* min subnormal */
    cr_assert_eq(sdc_f16_to_f32(0x03ff), 1023 * 0x1p-24f);    /* max subnormal */
    cr_assert_eq(sdc_f16_to_f32(0x8200), -0x1p-15f);          /* neg subnormal */
    cr_assert_eq(sdc_f16_to_f32(0x0400), 0x1p-14f);           /* min normal */
    cr_assert_eq(sdc_f16_to_f32(0x7bff), 65504.0f);           /* max */
    cr_assert_eq(sdc_f16_to_f32(0x3c00), 1.0f);
    cr_assert_eq(sdc_f16_to_f32(0x3555), 0x1.554p-2f);        /* ~1/3 */
    float pinf = sdc_f16_to_f32(0x7c00), ninf = sdc_f16_to_f32(0xfc00);
    cr_assert(isinf(pinf) && pinf > 0);
    cr_assert(isinf(ninf) && ninf < 0);
    cr_assert(isnan(sdc_f16_to_f32(0x7e00)));
    cr_assert(isnan(sdc_f16_to_f32(0xfc01)));
    float nz = sdc_f16_to_f32(0x8000);
    cr_assert(nz == 0.0f && signbit(nz), "-0 keeps its sign");
    cr_assert(same_bits(sdc_f16_to_f32(0x0000), 0.0f));

    /* The same bit patterns through a file and sdc_st_to_f32. */
    uint16_t bits[8] = {0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00,
                        0x7bff, 0xc000};
    unsigned char raw[16];
    for (int i = 0; i < 8; i++) {
        raw[2 * i] = (unsigned char)(bits[i] & 0xff);
        raw[2 * i + 1] = (unsigned char)(bits[i] >> 8);
    }
    char *p = tpath("f16.safetensors");
    st_builder *b = st_builder_new();
    int64_t s8[1] = {8};
    cr_assert_eq(st_builder_add(b, "h", "F16", 1, s8, raw, 16), 0);
    cr_assert_eq(st_builder_add(b, "bf", "BF16", 1, s8, raw, 16), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    float out[8];
    cr_assert_eq(sdc_st_to_f32(f, sdc_st_find(f, "h"), out), SDC_OK);
    for (int i = 0; i < 8; i++)
        cr_assert(same_bits(out[i], sdc_f16_to_f32(bits[i])) ||
                  (isnan(out[i]) && isnan(sdc_f16_to_f32(bits[i]))), "h[%d]", i);
    cr_assert_eq(out[0], 0x1p-24f);
    cr_assert(signbit(out[2]) && out[2] == 0.0f);
    cr_assert_eq(out[7], -2.0f);
    /* BF16: top half of an f32. 0x7c00 -> 2^121, 0x0001 -> min subnormal. */
    cr_assert_eq(sdc_st_to_f32(f, sdc_st_find(f, "bf"), out), SDC_OK);
    cr_assert_eq(out[0], 0x1p-133f);
    cr_assert_eq(out[3], 0x1p121f);
    cr_assert(signbit(out[2]) && out[2] == 0.0f);
    cr_assert_eq(out[7], -2.0f);
    sdc_st_close(f);
    free(p);
}

Test(safetensors, f8_e4m3_known_patterns) {
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x38), 1.0f);       /* 0.0111.000 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x3c), 1.5f);       /* 0.0111.100 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x40), 2.0f);
    cr_assert_eq(sdc_f8_e4m3_to_f32(0xc0), -2.0f);
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x7e), 448.0f);     /* max: 1.75 * 2^8 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x77), 240.0f);     /* 1.875 * 2^7 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x08), 0.015625f);  /* min normal 2^-6 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x01), 0.001953125f); /* 2^-9 */
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x07), 0.013671875f); /* 7 * 2^-9 */
    cr_assert(isnan(sdc_f8_e4m3_to_f32(0x7f)));
    cr_assert(isnan(sdc_f8_e4m3_to_f32(0xff)));
    cr_assert(same_bits(sdc_f8_e4m3_to_f32(0x00), 0.0f));
    cr_assert(same_bits(sdc_f8_e4m3_to_f32(0x80), -0.0f));
    cr_assert_eq(sdc_f8_e4m3_to_f32(0x78), 256.0f);     /* 0.1111.000: no inf */
    int nans = 0;
    for (int b = 0; b < 256; b++) {
        float v = sdc_f8_e4m3_to_f32((uint8_t)b);
        cr_assert(!isinf(v), "e4m3 has no infinities (0x%02x)", b);
        if (isnan(v)) nans++;
        if (b > 0 && b < 0x7f)
            cr_assert_lt(sdc_f8_e4m3_to_f32((uint8_t)(b - 1)), v, "0x%02x", b);
    }
    cr_assert_eq(nans, 2);
}

Test(safetensors, f8_e5m2_known_patterns) {
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x3c), 1.0f);       /* 0.01111.00 */
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x3e), 1.5f);
    cr_assert_eq(sdc_f8_e5m2_to_f32(0xc0), -2.0f);
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x7b), 57344.0f);   /* max: 1.75 * 2^15 */
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x04), 0x1p-14f);   /* min normal */
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x01), 0x1p-16f);   /* min subnormal */
    cr_assert_eq(sdc_f8_e5m2_to_f32(0x03), 0.75f * 0x1p-14f);
    float pinf = sdc_f8_e5m2_to_f32(0x7c), ninf = sdc_f8_e5m2_to_f32(0xfc);
    cr_assert(isinf(pinf) && pinf > 0);
    cr_assert(isinf(ninf) && ninf < 0);
    cr_assert(isnan(sdc_f8_e5m2_to_f32(0x7d)));
    cr_assert(isnan(sdc_f8_e5m2_to_f32(0xff)));
    cr_assert(same_bits(sdc_f8_e5m2_to_f32(0x80), -0.0f));
    /* E5M2 is the top byte of an IEEE half. */
    for (int b = 0; b < 256; b++) {
        float v = sdc_f8_e5m2_to_f32((uint8_t)b);
        float h = sdc_f16_to_f32((uint16_t)(b << 8));
        cr_assert(same_bits(v, h) || (isnan(v) && isnan(h)), "0x%02x", b);
    }
}

Test(safetensors, f64_narrowing) {
    double dv[6] = {1e300, -1e300, DBL_MIN, (double)FLT_MAX, 0.1,
                    0x1.ffffffp127 - 0x1p100};
    char *p = tpath("f64.safetensors");
    st_builder *b = st_builder_new();
    int64_t s6[1] = {6};
    cr_assert_eq(st_builder_add(b, "d", "F64", 1, s6, dv, sizeof dv), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    float out[6];
    cr_assert_eq(sdc_st_to_f32(f, sdc_st_find(f, "d"), out), SDC_OK);
    cr_assert(isinf(out[0]) && out[0] > 0);
    cr_assert(isinf(out[1]) && out[1] < 0);
    cr_assert_eq(out[2], 0.0f);
    cr_assert_eq(out[3], FLT_MAX);
    cr_assert_eq(out[4], 0.1f);
    cr_assert_eq(out[5], FLT_MAX);
    sdc_st_close(f);
    free(p);
}

Test(safetensors, find_prefix_is_the_first_name_with_it) {
    char *p = tpath("prefix.safetensors");
    st_builder *b = st_builder_new();
    float v[1] = {0};
    int64_t shape[1] = {1};
    const char *names[] = {"b", "a.c", "a.b", "ab", "a"};
    for (int i = 0; i < 5; i++) cr_assert_eq(st_builder_add_f32(b, names[i], 1, shape, v), 0);
    cr_assert_eq(st_builder_write(b, p), 0);
    st_builder_free(b);
    sdc_st_file *f = NULL;
    cr_assert_eq(sdc_st_open(p, &f), SDC_OK, "%s", sdc_last_error());
    cr_assert_str_eq(sdc_st_find_prefix(f, "a.")->name, "a.b");
    cr_assert_str_eq(sdc_st_find_prefix(f, "a")->name, "a");
    cr_assert_str_eq(sdc_st_find_prefix(f, "ab")->name, "ab");
    cr_assert_str_eq(sdc_st_find_prefix(f, "")->name, "a");
    cr_assert_str_eq(sdc_st_find_prefix(f, "b")->name, "b");
    cr_assert_null(sdc_st_find_prefix(f, "a.d"));
    cr_assert_null(sdc_st_find_prefix(f, "c"));
    cr_assert_null(sdc_st_find_prefix(f, "0"));
    sdc_st_close(f);
    free(p);
}
