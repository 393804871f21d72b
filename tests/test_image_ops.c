/* test_image_ops.c - the pixel operations of image-to-image and inpainting
 * against Pillow 11.0.0 and OpenCV 4.10 as AUTOMATIC1111 calls them
 * (tools/fixtures_image_ops.py): LANCZOS (and BICUBIC, Pillow's default)
 * resizing with and without a box,
 * A1111's three resize modes, the mask blur and the inpainting fill.
 * Tolerance: none. Every case is bit-exact (measured: max difference 0 on
 * all 231 cases); a failure prints the max and mean difference and the
 * first differing byte. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/mask_ops.h"
#include "image/resize.h"
#include "model/safetensors.h"
#include "testutil.h"

#define REF_DIR FIXTURES "/image_ops"

typedef struct ref {
    sdc_st_file *f;
    cJSON *cases;
} ref;

static ref ref_open(const char *file) {
    ref r = {0};
    cr_assert_eq(sdc_st_open(file, &r.f), SDC_OK, "%s", sdc_last_error());
    r.cases = cJSON_Parse(sdc_st_meta(r.f, "cases"));
    cr_assert(cJSON_IsArray(r.cases), "%s: no cases", file);
    return r;
}

static void ref_close(ref *r) {
    cJSON_Delete(r->cases);
    sdc_st_close(r->f);
}

/* An image tensor (h, w, c) of U8 from the fixture. */
static const uint8_t *image(const ref *r, const char *prefix, const char *name, int *w, int *h, int *c) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const sdc_st_tensor *t = sdc_st_find(r->f, key);
    cr_assert(t && t->dtype == SDC_DT_U8 && t->ndim == 3, "fixture tensor %s missing or not (h, w, c) U8", key);
    *h = (int)t->shape[0], *w = (int)t->shape[1], *c = (int)t->shape[2];
    return t->data;
}

static const uint8_t *output(const ref *r, int i, int w, int h, int c) {
    char key[32];
    int ow, oh, oc;
    snprintf(key, sizeof key, "out%d", i);
    const uint8_t *p = image(r, "", key, &ow, &oh, &oc);
    cr_assert(ow == w && oh == h && oc == c, "case %d: reference is %dx%dx%d, expected %dx%dx%d", i, ow, oh, oc, w,
              h, c);
    return p;
}

static int num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valueint; }
static const char *str(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuestring; }

/* Max |got - want| over n bytes; on a difference, the mean and the first
 * differing byte are printed. */
static int max_diff(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    int worst = 0;
    size_t first = n;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)got[i] - (int)want[i]);
        if (d && first == n) first = i;
        worst = d > worst ? d : worst;
        sum += d;
    }
    if (worst)
        fprintf(stderr, "%s: max diff %d, mean %.4f; first at byte %zu: %d, expected %d\n", what, worst, sum / n,
                first, got[first], want[first]);
    return worst;
}

Test(image_ops, resize_like_pillow) {
    ref r = ref_open(REF_DIR "/resize.safetensors");
    int n = 0;
    for (const cJSON *c = r.cases->child; c; c = c->next, n++) {
        int sw, sh, ch;
        const uint8_t *src = image(&r, "src_", str(c, "src"), &sw, &sh, &ch);
        const int w = num(c, "w"), h = num(c, "h");
        const cJSON *jb = cJSON_GetObjectItem(c, "box");
        float box[4];
        for (int k = 0; k < 4 && cJSON_IsArray(jb); k++) box[k] = (float)cJSON_GetArrayItem(jb, k)->valuedouble;
        const bool bicubic = !strcmp(str(c, "filter"), "bicubic");
        uint8_t *got = NULL;
        cr_assert_eq(sdc_image_resample(bicubic ? SDC_RESAMPLE_BICUBIC : SDC_RESAMPLE_LANCZOS, src, sw, sh, ch,
                                        cJSON_IsArray(jb) ? box : NULL, &got, w, h),
                     SDC_OK, "case %d: %s", n, sdc_last_error());
        char what[96];
        snprintf(what, sizeof what, "resize case %d (%s to %dx%d, %s)", n, str(c, "src"), w, h, str(c, "filter"));
        cr_assert_eq(max_diff(what, got, output(&r, n, w, h, ch), (size_t)w * h * ch), 0, "%s", what);
        free(got);
    }
    fprintf(stderr, "resize: %d cases bit-exact with Pillow\n", n);
    ref_close(&r);
}

Test(image_ops, resize_modes_like_a1111) {
    ref r = ref_open(REF_DIR "/modes.safetensors");
    int n = 0;
    for (const cJSON *c = r.cases->child; c; c = c->next, n++) {
        int sw, sh, ch;
        const uint8_t *src = image(&r, "src_", str(c, "src"), &sw, &sh, &ch);
        const int w = num(c, "w"), h = num(c, "h"), mode = num(c, "mode");
        uint8_t *got = NULL;
        cr_assert_eq(sdc_image_resize_mode(mode, src, sw, sh, ch, &got, w, h), SDC_OK, "case %d: %s", n,
                     sdc_last_error());
        char what[96];
        snprintf(what, sizeof what, "mode %d case %d (%s to %dx%d)", mode, n, str(c, "src"), w, h);
        cr_assert_eq(max_diff(what, got, output(&r, n, w, h, ch), (size_t)w * h * ch), 0, "%s", what);
        free(got);
    }
    fprintf(stderr, "resize modes: %d cases bit-exact with A1111's resize_image\n", n);
    ref_close(&r);
}

Test(image_ops, mask_blur_like_opencv) {
    ref r = ref_open(REF_DIR "/blur.safetensors");
    int n = 0;
    for (const cJSON *c = r.cases->child; c; c = c->next, n++) {
        int w, h, ch;
        const uint8_t *src = image(&r, "src_", str(c, "src"), &w, &h, &ch);
        cr_assert_eq(ch, 1);
        uint8_t *m = malloc((size_t)w * h);
        memcpy(m, src, (size_t)w * h);
        const int bx = num(c, "bx"), by = num(c, "by");
        cr_assert_eq(sdc_mask_blur(m, w, h, bx, by), SDC_OK, "case %d: %s", n, sdc_last_error());
        char what[96];
        snprintf(what, sizeof what, "blur case %d (%s, %d x %d)", n, str(c, "src"), bx, by);
        cr_assert_eq(max_diff(what, m, output(&r, n, w, h, 1), (size_t)w * h), 0, "%s", what);
        free(m);
    }
    fprintf(stderr, "mask blur: %d cases bit-exact with cv2.GaussianBlur\n", n);
    ref_close(&r);
}

Test(image_ops, inpaint_fill_like_a1111) {
    ref r = ref_open(REF_DIR "/fill.safetensors");
    int n = 0;
    for (const cJSON *c = r.cases->child; c; c = c->next, n++) {
        int w, h, ch, mw, mh, mc;
        const uint8_t *img = image(&r, "img_", str(c, "image"), &w, &h, &ch);
        const uint8_t *mask = image(&r, "mask_", str(c, "mask"), &mw, &mh, &mc);
        cr_assert(ch == 3 && mc == 1 && mw == w && mh == h);
        uint8_t *rgb = malloc((size_t)w * h * 3);
        memcpy(rgb, img, (size_t)w * h * 3);
        cr_assert_eq(sdc_inpaint_fill(rgb, mask, w, h), SDC_OK, "case %d: %s", n, sdc_last_error());
        char what[96];
        snprintf(what, sizeof what, "fill case %d (%s, mask %s)", n, str(c, "image"), str(c, "mask"));
        cr_assert_eq(max_diff(what, rgb, output(&r, n, w, h, 3), (size_t)w * h * 3), 0, "%s", what);
        /* unmasked pixels keep their colour (the last layer is the image, opaque there) */
        for (int i = 0; i < w * h; i++)
            if (!mask[i]) cr_assert(!memcmp(rgb + 3 * i, img + 3 * i, 3), "%s: unmasked pixel %d changed", what, i);
        free(rgb);
    }
    fprintf(stderr, "inpaint fill: %d cases bit-exact with A1111's masking.fill\n", n);
    ref_close(&r);
}

/* Expect `st` to be SDC_ERR_ARG with a message containing `part`. */
static void refused(sdc_status st, const char *part) {
    cr_assert_eq(st, SDC_ERR_ARG, "expected an argument error (%s), got %d", part, st);
    cr_assert(strstr(sdc_last_error(), part), "message \"%s\" lacks \"%s\"", sdc_last_error(), part);
}

Test(image_ops, bad_arguments) {
    uint8_t px[12] = {0}, *out = (uint8_t *)1;
    const float inside[4] = {0, 0, 2, 2}, neg[4] = {-1, 0, 2, 2}, past[4] = {0, 0, 3, 2}, flipped[4] = {2, 0, 1, 2};
    const float nan_box[4] = {0, 0, 2, 0.0f / 0.0f};
    refused(sdc_image_resize(NULL, 2, 2, 3, NULL, &out, 4, 4), "NULL");
    cr_assert_null(out, "the result is cleared on failure");
    refused(sdc_image_resize(px, 2, 2, 3, NULL, NULL, 4, 4), "NULL");
    refused(sdc_image_resize(px, 2, 2, 2, NULL, &out, 4, 4), "2 channels");
    refused(sdc_image_resize(px, 2, 2, 4, NULL, &out, 4, 4), "4 channels");
    refused(sdc_image_resize(px, 0, 2, 3, NULL, &out, 4, 4), "size 0x2");
    refused(sdc_image_resize(px, 2, -5, 3, NULL, &out, 4, 4), "size 2x-5");
    refused(sdc_image_resize(px, 8193, 1, 1, NULL, &out, 4, 4), "size 8193x1");
    refused(sdc_image_resize(px, 2, 2, 3, NULL, &out, 0, 4), "output size 0x4");
    refused(sdc_image_resize(px, 2, 2, 3, NULL, &out, 4, 8193), "output size 4x8193");
    refused(sdc_image_resize(px, 2, 2, 3, neg, &out, 4, 4), "left of or above");
    refused(sdc_image_resize(px, 2, 2, 3, past, &out, 4, 4), "reaches past the 2x2 image");
    refused(sdc_image_resize(px, 2, 2, 3, flipped, &out, 4, 4), "before its left");
    refused(sdc_image_resize(px, 2, 2, 3, nan_box, &out, 4, 4), "not a finite number");
    refused(sdc_image_resample((sdc_resample)7, px, 2, 2, 3, NULL, &out, 4, 4), "filter 7");
    cr_assert_eq(sdc_image_resize(px, 2, 2, 3, inside, &out, 4, 4), SDC_OK, "%s", sdc_last_error());
    free(out);
    for (int mode = 0; mode < 3; mode++) {
        refused(sdc_image_resize_mode(mode, NULL, 2, 2, 1, &out, 4, 4), "NULL");
        refused(sdc_image_resize_mode(mode, px, 2, 2, 0, &out, 4, 4), "0 channels");
        refused(sdc_image_resize_mode(mode, px, 2, 9000, 1, &out, 4, 4), "size 2x9000");
        refused(sdc_image_resize_mode(mode, px, 2, 2, 1, &out, 4, 0), "output size 4x0");
    }
    refused(sdc_image_resize_mode(3, px, 2, 2, 1, &out, 4, 4), "resize mode 3");
    refused(sdc_image_resize_mode(-1, px, 2, 2, 1, &out, 4, 4), "resize mode -1");
    /* fitting 12x1 into 2x8 scales it to 2x0: Pillow (so A1111) fails there too */
    refused(sdc_image_resize_mode(2, px, 12, 1, 1, &out, 2, 8), "would be 2x0 pixels");
    refused(sdc_mask_blur(NULL, 2, 2, 1, 1), "NULL");
    refused(sdc_mask_blur(px, 0, 2, 1, 1), "size 0x2");
    refused(sdc_mask_blur(px, 2, 8193, 1, 1), "size 2x8193");
    refused(sdc_mask_blur(px, 2, 2, SDC_MASK_BLUR_MAX + 1, 1), "at most");
    cr_assert_eq(sdc_mask_blur(px, 2, 2, 0, -3), SDC_OK, "no blur is no error");
    refused(sdc_inpaint_fill(NULL, px, 2, 2), "no image");
    refused(sdc_inpaint_fill(px, NULL, 2, 2), "no mask");
    refused(sdc_inpaint_fill(px, px, 2, 0), "size 2x0");
    refused(sdc_inpaint_fill(px, px, -1, 2), "size -1x2");
}

/* Crop and resize computes only the window that stays on the canvas: a
 * 1x8192 image cropped to 8192x8192 would be scaled to 8192 x 67 million
 * first, which A1111 cannot allocate; here it takes the memory of the
 * output. Each row of the result is the image's one column spread out,
 * so every pixel of a row is the same. */
Test(image_ops, crop_and_resize_of_a_thin_image) {
    const int n = 8192;
    uint8_t *src = malloc(n), *out = NULL;
    for (int i = 0; i < n; i++) src[i] = (uint8_t)(i * 7);
    cr_assert_eq(sdc_image_resize_mode(1, src, 1, n, 1, &out, 64, 64), SDC_OK, "%s", sdc_last_error());
    for (int y = 0; y < 64; y++)
        for (int x = 1; x < 64; x++) cr_assert_eq(out[y * 64 + x], out[y * 64], "row %d varies", y);
    free(src), free(out);
}
