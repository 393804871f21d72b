/* token_text.h - tokenizer helpers outside the BPE core: ids back to text (for messages such
 * as the words a truncated prompt loses, and `sdc tokenize --pieces`). */
#ifndef SDC_TOKEN_TEXT_H
#define SDC_TOKEN_TEXT_H

#include "text/tokenizer.h"

/* Decode ids into UTF-8 text: byte-level symbols back to bytes, `</w>` to a
 * space, special tokens skipped. Always NUL-terminates out (cap > 0);
 * truncates at a character boundary if out is too small. */
void sdc_tokens_to_text(const sdc_tokenizer *tok, const int *ids, int n,
                        char *out, size_t cap);

/* Open the tokenizer a model should use: an explicit BPE vocabulary file if
 * given, else the model's own tokenizer/vocab.json + merges.txt, else the
 * shipped weights/bpe_simple_vocab_16e6.txt.gz ($SDC_VOCAB overrides; looked
 * up beside the executable, then in ./weights/). Defined in sdc.c. */
sdc_status sdc_tokenizer_open_default(const char *vocab_path, const char *hf_vocab,
                                      const char *hf_merges, sdc_tokenizer **out);

#endif
