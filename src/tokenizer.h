/* tokenizer.h - CLIP byte-level BPE tokenizer, id-exact with transformers'
 * CLIPTokenizer (slow, with ftfy) for Stable Diffusion's settings.
 *
 * Pipeline: ftfy-style cleanup -> whitespace collapse -> lower case ->
 * pre-tokenize with CLIP's pattern -> byte-to-unicode -> BPE merges ->
 * ids, then BOS + up to (n_ids - 2) tokens + EOS + padding. */
#ifndef SDC_TOKENIZER_H
#define SDC_TOKENIZER_H

#include "common.h"

#define SDC_CLIP_BOS 49406
#define SDC_CLIP_EOS 49407
#define SDC_CLIP_CTX 77

typedef struct sdc_tokenizer sdc_tokenizer;

/* From OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip or plain text). */
sdc_status sdc_tokenizer_load_bpe(const char *path, sdc_tokenizer **out);
/* From a diffusers/transformers tokenizer folder: vocab.json + merges.txt. */
sdc_status sdc_tokenizer_load_hf(const char *vocab_json, const char *merges_txt,
                                 sdc_tokenizer **out);
void sdc_tokenizer_free(sdc_tokenizer *tok);

int sdc_tokenizer_vocab_size(const sdc_tokenizer *tok);   /* 49408 */
/* The piece for an id ("red</w>"), NULL if out of range. */
const char *sdc_tokenizer_piece(const sdc_tokenizer *tok, int id);

/* Tokenize without BOS/EOS/padding: writes up to max_ids ids, and returns
 * the full count in *n_out (which may exceed max_ids). */
sdc_status sdc_tokenizer_encode(sdc_tokenizer *tok, const char *text,
                                int *ids, int max_ids, int *n_out);

/* SD's fixed-length form: ids[0] = BOS, then up to n_ids-2 tokens, EOS,
 * then pad_id up to n_ids. *n_dropped (may be NULL) = tokens cut off. */
sdc_status sdc_tokenizer_encode_padded(sdc_tokenizer *tok, const char *text,
                                       int pad_id, int *ids, int n_ids,
                                       int *n_dropped);

#endif
