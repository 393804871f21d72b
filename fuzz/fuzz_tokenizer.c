/* fuzz_tokenizer.c - libFuzzer target: a transformers tokenizer folder's
 * vocab.json and merges.txt (sdc_tokenizer_load_hf), then encoding.
 *
 * Input: vocab.json's bytes, the separator line "\n%%merges%%\n", then
 * merges.txt's bytes (no separator: all of it is vocab.json and merges.txt
 * is empty). The two go to scratch files and are loaded with
 * sdc_tokenizer_load_hf. A tokenizer that loads must keep its promises:
 * every id has a piece, sdc_tokenizer_encode and _encode_padded and
 * sdc_prompt_tokenize give ids inside the vocabulary for a few fixed
 * prompts (with the end-of-text id and with another id as padding).
 *
 * Seeds: cut-down tokenizers (fuzz/seeds/tokenizer/: the 512 byte pieces,
 * the first few hundred merges of CLIP's, the two special tokens), so an
 * input loads in well under a millisecond; the full CLIP files would take
 * 0.1 s each. Dictionary fuzz/tokenizer.dict. Run from the repository root
 * (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_tokenizer -dict=fuzz/tokenizer.dict CORPUS */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

#define SEP "\n%%merges%%\n"

static fuzz_file *g_vocab, *g_merges;

static const char *const k_prompts[] = {
    "a photo of a cat",
    "<|startoftext|>hi!! <|endoftext|> it's 8k, ÉCOLE 東京 😀",
    "a (red:1.2) [car], night BREAK rain ((((x)))) \\(y\\)",
    "inininin thththth aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "",
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    g_vocab = fuzz_file_new("-vocab.json");
    g_merges = fuzz_file_new("-merges.txt");
    return 0;
}

static void check_ids(const sdc_tokenizer *tok, const int *ids, int n) {
    int nv = sdc_tokenizer_vocab_size(tok);
    for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memmem(data, size, SEP, strlen(SEP));
    size_t vn = sep ? (size_t)(sep - data) : size;
    const uint8_t *m = sep ? sep + strlen(SEP) : data + size;
    fuzz_write(g_vocab, data, vn, 0);
    fuzz_write(g_merges, m, (size_t)(data + size - m), 0);

    sdc_tokenizer *tok = NULL;
    if (sdc_tokenizer_load_hf(g_vocab->path, g_merges->path, &tok) != SDC_OK) {
        FUZZ_CHECK(tok == NULL);
        const char *e = sdc_last_error();
        FUZZ_CHECK(strstr(e, g_vocab->path) || strstr(e, g_merges->path) ||
                   strstr(e, "out of memory"));
        return 0;
    }
    int nv = sdc_tokenizer_vocab_size(tok);
    FUZZ_CHECK(nv > 0);
    for (int id = 0; id < nv; id++) FUZZ_CHECK(sdc_tokenizer_piece(tok, id) != NULL);
    FUZZ_CHECK(sdc_tokenizer_piece(tok, nv) == NULL);

    int pads[2] = {sdc_tokenizer_eos(tok), nv - 1};
    for (size_t p = 0; p < sizeof k_prompts / sizeof k_prompts[0]; p++) {
        int ids[SDC_CLIP_CTX], n = 0;
        FUZZ_CHECK(sdc_tokenizer_encode(tok, k_prompts[p], ids, SDC_CLIP_CTX, &n) == SDC_OK);
        check_ids(tok, ids, n < SDC_CLIP_CTX ? n : SDC_CLIP_CTX);
        for (int k = 0; k < 2; k++) {
            FUZZ_CHECK(sdc_tokenizer_encode_padded(tok, k_prompts[p], pads[k], ids,
                                                   SDC_CLIP_CTX, NULL) == SDC_OK);
            check_ids(tok, ids, SDC_CLIP_CTX);
            sdc_prompt pr;
            FUZZ_CHECK(sdc_prompt_tokenize(tok, k_prompts[p], pads[k], &pr) == SDC_OK);
            for (int c = 0; c < pr.n_chunks; c++) check_ids(tok, pr.chunks[c].ids, SDC_CLIP_CTX);
            sdc_prompt_free(&pr);
        }
    }
    sdc_tokenizer_free(tok);
    return 0;
}
