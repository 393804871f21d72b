#include "image/image_ops.h"
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
