/* text_clean.h - the text normalisation CLIP's tokenizer applies before BPE,
 * matching transformers' CLIPTokenizer with ftfy 6.3.1 under Python 3.11:
 *
 *   ftfy.fix_text(text)  ->  whitespace_clean  ->  str.lower()
 *
 * Text is handled as arrays of code points. ftfy's mojibake repair
 * (fix_encoding: re-decoding text that was decoded with the wrong codec) is
 * not implemented; every other default ftfy fixer is. */
#ifndef SDC_TEXT_CLEAN_H
#define SDC_TEXT_CLEAN_H

#include "common.h"

/* A growable array of code points. Zero-initialise; free with sdc_u32_free. */
typedef struct sdc_u32vec {
    uint32_t *v;
    size_t n, cap;
} sdc_u32vec;

sdc_status sdc_u32_push(sdc_u32vec *b, uint32_t cp);
sdc_status sdc_u32_append(sdc_u32vec *b, const uint32_t *cps, size_t n);
void sdc_u32_free(sdc_u32vec *b);

/* Strict UTF-8 -> code points (appended to *out). Overlong forms,
 * surrogates and truncated sequences are rejected with SDC_ERR_ARG and the
 * byte offset in the message. */
sdc_status sdc_text_from_utf8(const char *s, size_t len, sdc_u32vec *out);

/* Encode one code point as UTF-8 into buf (4 bytes of room); returns the
 * byte count. */
int sdc_text_utf8_char(uint32_t cp, char *buf);

/* ftfy.fix_text(text) with ftfy's default configuration, except that
 * fix_encoding is skipped: HTML entities (in 'auto' mode, per line), C1
 * controls, Latin ligatures, character width, curly quotes, line breaks,
 * terminal escapes, control characters and NFC, repeated per line until
 * nothing changes. Replaces *out's contents. */
sdc_status sdc_text_ftfy(const uint32_t *in, size_t n, sdc_u32vec *out);

/* CLIP's whitespace_clean (regex \s+ -> " ", then str.strip()) followed by
 * Python's str.lower() (full mapping, final sigma). Replaces *out's
 * contents. */
sdc_status sdc_text_clean_lower(const uint32_t *in, size_t n, sdc_u32vec *out);

/* The regex module's \s (Unicode White_Space, without U+001C..U+001F). */
bool sdc_text_is_space(uint32_t cp);

#endif
