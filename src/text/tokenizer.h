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

/* Limits on tokenizer files, which are untrusted input (a diffusers folder
 * from anywhere): each file (decompressed, for the .gz) at most 16 MiB
 * (CLIP's vocab.json is 1 MiB, its BPE text 3 MiB), a vocabulary of at
 * most 2^20 entries (CLIP's: 49408), a piece or merge symbol at most 256
 * bytes (CLIP's longest: 64). */
#define SDC_TOKENIZER_MAX_FILE (16 << 20)
#define SDC_TOKENIZER_MAX_VOCAB (1 << 20)
#define SDC_TOKENIZER_MAX_PIECE 256

/* From OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip or plain text): a
 * header line, then at least 48894 merge lines (the rest is ignored, as
 * CLIP does). */
sdc_status sdc_tokenizer_load_bpe(const char *path, sdc_tokenizer **out);
/* From a diffusers/transformers tokenizer folder: vocab.json + merges.txt,
 * read strictly (SDC_ERR_FORMAT, the message naming the file and the line,
 * line:column or piece, and what was expected):
 *   vocab.json: UTF-8 JSON, one object and nothing after it, mapping
 *     pieces (non-empty strings without NUL) to integer ids that are
 *     exactly 0 .. N-1 for N entries, each once; no piece twice; the 512
 *     byte pieces ("a", "a</w>", ...) and <|startoftext|>, <|endoftext|>
 *     present;
 *   merges.txt: UTF-8 text; after stripping surrounding whitespace, the
 *     first line is a header ("#version: 0.2") and each of the next lines,
 *     up to CLIP's 48894 (further lines are ignored, as transformers
 *     does), is "left right": two symbols whose concatenation, like each
 *     symbol, is a piece of the vocabulary. Fewer merges load with a
 *     notice (ids then differ from Stable Diffusion's). */
sdc_status sdc_tokenizer_load_hf(const char *vocab_json, const char *merges_txt,
                                 sdc_tokenizer **out);
void sdc_tokenizer_free(sdc_tokenizer *tok);

int sdc_tokenizer_vocab_size(const sdc_tokenizer *tok);   /* 49408 */
/* The piece for an id ("red</w>"), NULL if out of range. */
const char *sdc_tokenizer_piece(const sdc_tokenizer *tok, int id);
/* The ids of "<|startoftext|>" and "<|endoftext|>" in this vocabulary
 * (SDC_CLIP_BOS and SDC_CLIP_EOS in CLIP's); -1 for a NULL tokenizer. */
int sdc_tokenizer_bos(const sdc_tokenizer *tok);
int sdc_tokenizer_eos(const sdc_tokenizer *tok);

/* Tokenize without BOS/EOS/padding: writes up to max_ids ids, and returns
 * the full count in *n_out (which may exceed max_ids). */
sdc_status sdc_tokenizer_encode(sdc_tokenizer *tok, const char *text,
                                int *ids, int max_ids, int *n_out);

/* The same ids, computed with CLIP's own BPE loop (quadratic in a word's
 * length) for every word; sdc_tokenizer_encode takes an O(n log n) path
 * for words longer than 32 bytes, so that a hostile prompt (one word of a
 * megabyte) costs a fraction of a second, not hours. For tests. */
sdc_status sdc_tokenizer_encode_reference(sdc_tokenizer *tok, const char *text,
                                          int *ids, int max_ids, int *n_out);

/* SD's fixed-length form: ids[0] = BOS, then up to n_ids-2 tokens, EOS,
 * then pad_id up to n_ids. *n_dropped (may be NULL) = tokens cut off. */
sdc_status sdc_tokenizer_encode_padded(sdc_tokenizer *tok, const char *text,
                                       int pad_id, int *ids, int n_ids,
                                       int *n_dropped);

#endif
