/* fuzz_image.c - libFuzzer target: init images and masks a user or a
 * client gives sdc (image-to-image and inpainting), PNG or JPEG.
 *
 * Input: the bytes of one file, read from memory by sdc_image_load_mem
 * and sdc_mask_load_mem (image_load.h): PNG framing and stb_image, the
 * palette padding, libjpeg-turbo with its warnings as errors and its scan
 * limit, the EXIF orientation reader (JPEG APP1, PNG eXIf), the mask rule
 * and the transposition. Promises checked: a decode has 1..8192 pixels a
 * side and a buffer that holds them all; a mask is read exactly when the
 * image is, at the same size; a failure leaves NULL and 0 outputs and a
 * message naming the upload. A custom mutator keeps a PNG's chunk CRCs
 * valid 7 times in 8 (fuzz_util.h).
 *
 * Seeds: tests/fixtures/image_load/ (JPEGs baseline, progressive, 4:2:0,
 * 4:2:2, 4:4:4, grey, every EXIF orientation and broken EXIF blocks;
 * PNGs of every mask case) and fuzz/seeds/png/; dictionary
 * fuzz/image.dict. Run from the repository root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_image -dict=fuzz/image.dict CORPUS */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "image/image_load.h"

#define NAME "init_images[0]"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    return 0;
}

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8) fuzz_png_fix_crcs(data, size);
    return size;
}

/* One call's promises; returns whether it decoded, with its size. */
static int check(sdc_status st, uint8_t *px, int w, int h, size_t channels) {
    if (st != SDC_OK) {
        FUZZ_CHECK(px == NULL && w == 0 && h == 0);
        FUZZ_CHECK(strstr(sdc_last_error(), NAME) != NULL);
        return 0;
    }
    FUZZ_CHECK(px != NULL);
    FUZZ_CHECK(w >= 1 && w <= SDC_IMAGE_MAX_SIDE && h >= 1 && h <= SDC_IMAGE_MAX_SIDE);
    /* the first and last byte: the buffer holds w * h * channels */
    volatile uint8_t sink = px[0] ^ px[(size_t)w * (size_t)h * channels - 1];
    (void)sink;
    free(px);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *rgb = (uint8_t *)1, *m = (uint8_t *)1;
    int w = -1, h = -1, mw = -1, mh = -1;
    sdc_status si = sdc_image_load_mem(NAME, data, size, &rgb, &w, &h);
    int image_ok = check(si, rgb, w, h, 3);
    sdc_status sm = sdc_mask_load_mem(NAME, data, size, &m, &mw, &mh);
    int mask_ok = check(sm, m, mw, mh, 1);
    /* the same bytes: both read or neither (out of memory aside) */
    if (si != SDC_ERR_OOM && sm != SDC_ERR_OOM) FUZZ_CHECK(image_ok == mask_ok);
    if (image_ok && mask_ok) FUZZ_CHECK(w == mw && h == mh);
    return 0;
}
