/* test_token_text.c - ids back to text, as used to name the words a long
 * prompt loses. */
#include <criterion/criterion.h>
#include <string.h>

#include "text/token_text.h"

static void roundtrip(const char *prompt, const char *want) {
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe("weights/bpe_simple_vocab_16e6.txt.gz", &tok), SDC_OK, "%s",
                 sdc_last_error());
    int ids[64], n = 0;
    cr_assert_eq(sdc_tokenizer_encode(tok, prompt, ids, 64, &n), SDC_OK);
    char out[256];
    sdc_tokens_to_text(tok, ids, n, out, sizeof out);
    cr_assert_str_eq(out, want);
    sdc_tokenizer_free(tok);
}

Test(token_text, ascii_and_punctuation) { roundtrip("A photo, of a CAT!", "a photo, of a cat!"); }
Test(token_text, multibyte) { roundtrip("café 東京 🙂", "café 東京 🙂"); }

Test(token_text, truncates_at_character_boundary) {
    sdc_tokenizer *tok = NULL;
    cr_assert_eq(sdc_tokenizer_load_bpe("weights/bpe_simple_vocab_16e6.txt.gz", &tok), SDC_OK);
    int ids[16], n = 0;
    cr_assert_eq(sdc_tokenizer_encode(tok, "東京", ids, 16, &n), SDC_OK);
    char out[5]; /* room for one 3-byte character, not two */
    sdc_tokens_to_text(tok, ids, n, out, sizeof out);
    cr_assert_str_eq(out, "東");
    sdc_tokenizer_free(tok);
}
