/* fuzz_png.c - libFuzzer target: PNG files a user gives sdc (`sdc inspect`
 * of an image, image-to-image input, a finished batch output).
 *
 * Input: a whole file, written to a scratch file and read by
 * sdc_png_read_parameters (chunk framing, CRCs, tEXt / zTXt / iTXt),
 * sdc_batch_png_ok (is it a complete PNG) and sdc_image_read_rgb (the
 * pixels, bounded to 8192 x 8192). Promises checked: an image that
 * decodes has 1..8192 pixels a side; a failure leaves NULL outputs and a
 * message naming the file; the parameters text, when there is one, is
 * valid UTF-8; a file sdc_batch_png_ok accepts has no CRC error for the
 * parameters reader. A custom mutator keeps the chunks' CRCs valid most
 * of the time (below).
 *
 * Seeds: samples/demo.png (4 KB, written by sdc_png_write, with its
 * parameters) and fuzz/seeds/png/ (tiny PNGs of every colour type, 1, 8
 * and 16 bits, interlaced, with tEXt, zTXt and iTXt chunks; a tiny JPEG,
 * which sdc_image_read_rgb decodes too);
 * dictionary fuzz/png.dict. Run from the repository root (see
 * fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_png -dict=fuzz/png.dict CORPUS */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/batch.h"
#include "fuzz_util.h"
#include "image/image.h"

static fuzz_file *g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_file = fuzz_file_new(".png");
    return 0;
}

static int utf8_ok(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        int n = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
              : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
        if (n < 0) return 0;
        unsigned cp = n ? c & (0x3Fu >> n) : c;
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        s += n + 1;
    }
    return 1;
}

/* Mutations that keep every chunk's CRC valid (7 times in 8), so the
 * fuzzer gets past the CRC checks to what lies behind them: libFuzzer's
 * own mutation, then each chunk's CRC recomputed in place. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8) fuzz_png_fix_crcs(data, size);
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_file, data, size, 0);
    char *text = (char *)1;
    if (sdc_png_read_parameters(g_file->path, &text) == SDC_OK) {
        if (text) FUZZ_CHECK(utf8_ok((const unsigned char *)text));
        free(text);
    } else {
        FUZZ_CHECK(text == NULL);
        FUZZ_CHECK(strstr(sdc_last_error(), g_file->path) != NULL);
    }
    bool ok = sdc_batch_png_ok(g_file->path);

    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    if (sdc_image_read_rgb(g_file->path, &rgb, &w, &h) == SDC_OK) {
        FUZZ_CHECK(rgb != NULL);
        FUZZ_CHECK(w >= 1 && w <= SDC_IMAGE_MAX_SIDE && h >= 1 && h <= SDC_IMAGE_MAX_SIDE);
        /* touch the first and last pixel: the buffer holds w * h * 3 bytes */
        volatile uint8_t sink = rgb[0] ^ rgb[(size_t)w * (size_t)h * 3 - 1];
        (void)sink;
        free(rgb);
    } else {
        FUZZ_CHECK(rgb == NULL && w == 0 && h == 0);
        FUZZ_CHECK(strstr(sdc_last_error(), g_file->path) != NULL);
    }
    /* what sdc_batch_png_ok accepts has a valid frame, so the parameters
     * reader cannot call it corrupt */
    if (ok) {
        char *again = NULL;
        FUZZ_CHECK(sdc_png_read_parameters(g_file->path, &again) == SDC_OK ||
                   !strstr(sdc_last_error(), "CRC"));
        free(again);
    }
    return 0;
}
