#include "image/image_ops.h"
sdc_status sdc_image_resize_mode(int mode, const uint8_t *src, int sw, int sh, int channels, uint8_t **dst, int dw,
                                 int dh) {
    (void)mode, (void)src, (void)sw, (void)sh, (void)channels, (void)dst, (void)dw, (void)dh;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "resize: stub");
}
sdc_status sdc_mask_blur(uint8_t *m, int w, int h, int bx, int by) {
    (void)m, (void)w, (void)h, (void)bx, (void)by;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "blur: stub");
}
sdc_status sdc_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h) {
    (void)rgb, (void)mask, (void)w, (void)h;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "fill: stub");
}
#include "image/image.h"
#include <stdlib.h>
sdc_status sdc_image_load(const char *path, uint8_t **rgb, int *w, int *h) { return sdc_image_read_rgb(path, rgb, w, h); }
sdc_status sdc_mask_load(const char *path, uint8_t **m, int *w, int *h) {
    uint8_t *rgb = NULL;
    SDC_TRY(sdc_image_read_rgb(path, &rgb, w, h));
    *m = malloc((size_t)*w * *h);
    for (int i = 0; i < *w * *h; i++) (*m)[i] = rgb[3 * i];
    free(rgb);
    return SDC_OK;
}
sdc_status sdc_image_load_mem(const char *name, const void *data, size_t n, uint8_t **rgb, int *w, int *h) {
    (void)name, (void)data, (void)n, (void)rgb, (void)w, (void)h;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "stub");
}
sdc_status sdc_mask_load_mem(const char *name, const void *data, size_t n, uint8_t **m, int *w, int *h) {
    (void)name, (void)data, (void)n, (void)m, (void)w, (void)h;
    return sdc_fail(SDC_ERR_UNSUPPORTED, "stub");
}
