/* fuzz_prompt.c - libFuzzer target: AUTOMATIC1111's prompt syntax.
 *
 * Input: a prompt (bytes up to the first NUL). Its <lora:...> tags parse or
 * are refused with a message (sdc_extra_networks_parse). sdc_tokenizer_encode must
 * give the ids sdc_tokenizer_encode_reference (CLIP's quadratic BPE loop)
 * gives. sdc_prompt_parse_attention
 * must either refuse it (invalid UTF-8, a weight Python's float() rejects)
 * or give at least one fragment, each valid UTF-8; then
 * sdc_prompt_tokenize with CLIP's real tokenizer (loaded once from
 * weights/bpe_simple_vocab_16e6.txt.gz) and SD 1.x's and SD 2.x's padding
 * must give chunks of BOS, 75 vocabulary ids, EOS (or SD 2.x's pad after
 * an earlier EOS), and fail exactly when the parser does. Weights are not
 * checked: A1111 computes the same products (a 400-digit weight is inf
 * there too).
 *
 * Seeds: the prompts of tests/fixtures/prompt_syntax.json, one per file
 * (fuzz/seed.sh); dictionary fuzz/prompt.dict. Run from the repository
 * root (see fuzz_util.h):
 *   build-fuzz/fuzz/fuzz_prompt -dict=fuzz/prompt.dict CORPUS */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "text/extra_networks.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

#define BPE "weights/bpe_simple_vocab_16e6.txt.gz"

static sdc_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_env();
    fuzz_need(BPE);
    if (sdc_tokenizer_load_bpe(BPE, &g_tok) != SDC_OK) fuzz_die("%s", sdc_last_error());
    return 0;
}

/* Strict UTF-8 (as the library's own checks). */
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

/* <lora:...> tags: refused with a message, or the text without them (no
 * longer than the prompt) and LoRAs with names and finite multipliers */
static void check_tags(const char *text) {
    char *stripped = NULL;
    sdc_lora_ref *refs = NULL;
    int n = -1;
    if (sdc_extra_networks_parse(text, &stripped, &refs, &n) != SDC_OK) {
        FUZZ_CHECK(stripped == NULL && refs == NULL && n == 0 && sdc_last_error()[0]);
        return;
    }
    FUZZ_CHECK(stripped && strlen(stripped) <= strlen(text) && n >= 0);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(refs[i].name[0] && isfinite(refs[i].te) && isfinite(refs[i].unet));
    free(stripped);
    sdc_lora_refs_free(refs, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size);
    check_tags(text);
    sdc_prompt_fragment *f = NULL;
    int n = -1;
    sdc_status st = sdc_prompt_parse_attention(text, &f, &n);
    if (st != SDC_OK) {
        FUZZ_CHECK(f == NULL && n == 0);
        FUZZ_CHECK(st == SDC_ERR_ARG || st == SDC_ERR_OOM);
    } else {
        FUZZ_CHECK(n >= 1 && f != NULL);
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(f[i].text != NULL);
            FUZZ_CHECK(utf8_ok((const unsigned char *)f[i].text));
        }
        sdc_prompt_fragments_free(f, n);
    }
    /* the O(n log n) BPE against CLIP's own loop */
    static int ids_fast[1 << 14], ids_ref[1 << 14];
    int n_fast = -1, n_ref = -1;
    sdc_status e_fast = sdc_tokenizer_encode(g_tok, text, ids_fast, 1 << 14, &n_fast);
    sdc_status e_ref = sdc_tokenizer_encode_reference(g_tok, text, ids_ref, 1 << 14, &n_ref);
    FUZZ_CHECK(e_fast == e_ref);
    if (e_fast == SDC_OK) {
        FUZZ_CHECK(n_fast == n_ref);
        int m = n_fast < (1 << 14) ? n_fast : (1 << 14);
        FUZZ_CHECK(!memcmp(ids_fast, ids_ref, (size_t)m * sizeof *ids_fast));
    }

    static const int pads[2] = {SDC_CLIP_EOS, 0};
    int nv = sdc_tokenizer_vocab_size(g_tok);
    for (int k = 0; k < 2; k++) {
        sdc_prompt p;
        sdc_status ts = sdc_prompt_tokenize(g_tok, text, pads[k], &p);
        FUZZ_CHECK((ts == SDC_OK) == (st == SDC_OK));
        if (ts != SDC_OK) {
            FUZZ_CHECK(p.n_chunks == 0 && p.chunks == NULL);
            continue;
        }
        FUZZ_CHECK(p.n_chunks >= 1);
        for (int c = 0; c < p.n_chunks; c++) {
            const sdc_prompt_chunk *ch = &p.chunks[c];
            FUZZ_CHECK(ch->ids[0] == SDC_CLIP_BOS && ch->weights[0] == 1.0f);
            FUZZ_CHECK(ch->ids[SDC_CLIP_CTX - 1] == SDC_CLIP_EOS ||
                       (pads[k] != SDC_CLIP_EOS && ch->ids[SDC_CLIP_CTX - 1] == pads[k]));
            for (int i = 0; i < SDC_CLIP_CTX; i++) FUZZ_CHECK(ch->ids[i] >= 0 && ch->ids[i] < nv);
        }
        sdc_prompt_free(&p);
    }
    free(text);
    return 0;
}
