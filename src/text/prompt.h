/* prompt.h - prompts as AUTOMATIC1111's stable-diffusion-webui reads them:
 * emphasis weights, 75-token chunks with the comma backtrack, BREAK.
 *
 *   "a (red:1.3) [car], night BREAK rain"
 *     -> fragments [("a ", 1.0), ("red", 1.3), (" ", 1.0), ("car", 1/1.1),
 *                   (", night", 1.0), ("BREAK", -1), ("rain", 1.0)]
 *     -> chunks of 77 ids (BOS, 75 tokens padded, EOS) with one weight each.
 *
 * Semantics follow modules/prompt_parser.py (parse_prompt_attention) and
 * modules/sd_hijack_clip.py (tokenize_line, process_tokens) exactly,
 * including their regular expressions' Unicode classes (Python 3.11's \s,
 * \d and \w). Textual-inversion embeddings and prompt editing
 * ([a:b:when], [a|b], AND) are not handled here: that text stays literal
 * apart from its brackets, as it would with A1111's emphasis parser alone.
 *
 * Weights are computed in double exactly as Python computes them (the
 * same multiplications in the same order) and stored in chunks as float32,
 * as torch.asarray stores A1111's multipliers. */
#ifndef SDC_PROMPT_H
#define SDC_PROMPT_H

#include "text/embeddings.h"
#include "text/tokenizer.h"

#define SDC_PROMPT_CHUNK_TOKENS 75      /* A1111's chunk_length */
#define SDC_PROMPT_COMMA_BACKTRACK 20   /* opts.comma_padding_backtrack */

typedef struct sdc_prompt_chunk {
    int ids[77];        /* BOS, 75 tokens (padded), EOS -- as A1111's next_chunk builds it;
                           BOS and EOS are the tokenizer's (sdc_tokenizer_bos/eos) */
    float weights[77];  /* per-token multipliers; 1.0 for BOS/EOS/padding */
} sdc_prompt_chunk;

/* A textual-inversion embedding in a chunk (A1111's PromptChunkFix): its
 * vectors replace the token embeddings from position offset + 1 of the
 * chunk's 77 (after BOS), as many as fit before the window's end. */
typedef struct sdc_prompt_fix {
    int chunk, offset, emb;     /* emb: index in the embedding database */
} sdc_prompt_fix;

typedef struct sdc_prompt {
    int n_chunks;               /* >= 1 */
    sdc_prompt_chunk *chunks;
    bool weighted;              /* any weight != 1.0 */
    sdc_prompt_fix *fixes;      /* in prompt order */
    int n_fixes;
} sdc_prompt;

typedef struct sdc_prompt_fragment {
    char *text;     /* UTF-8, NUL-terminated */
    float weight;   /* (float)weight_f64 */
    double weight_f64; /* the weight as Python computes it (double) */
} sdc_prompt_fragment;

/* parse_prompt_attention(text): (text, weight) fragments, runs of equal
 * weight merged; "BREAK" (a whole word, upper case, outside a bracket) is a
 * fragment of its own with weight -1; an empty prompt gives [("", 1.0)].
 * (x) multiplies by 1.1, [x] by 1/1.1, (x:W) by W (W matching
 * [+-]?[.\d]+, whitespace allowed around it); unbalanced brackets are
 * closed at the end; \( \) \[ \] \\ are literal. Errors: invalid UTF-8
 * (SDC_ERR_ARG), a weight such as "1.2.3" or "." that Python's float()
 * rejects (SDC_ERR_ARG: A1111 fails on it too). Parses iteratively. */
/* Python 3.11's \w for str patterns: str.isalnum() or '_'. */
bool sdc_text_py_is_word(uint32_t cp);

sdc_status sdc_prompt_parse_attention(const char *text, sdc_prompt_fragment **out, int *n_out);
void sdc_prompt_fragments_free(sdc_prompt_fragment *f, int n);

/* tokenize_line(text) without textual-inversion embeddings: each fragment
 * tokenized separately (sdc_tokenizer_encode, no BOS/EOS), packed into
 * chunks of 75 tokens; when a chunk is full and the last comma (",</w>")
 * in it is at most 20 tokens back, the tokens after that comma move to the
 * next chunk; a BREAK fragment (text "BREAK", weight exactly -1) starts a
 * new chunk. Each chunk is padded with EOS (the tokenizer's <|endoftext|>,
 * 49407 in CLIP's vocabulary) to 75 tokens and wrapped in BOS ... EOS, so
 * every id is one of the tokenizer's. When pad_id differs from EOS (SD
 * 2.x: 0), every id after
 * the chunk's first EOS becomes pad_id, as process_tokens does; weights are
 * not touched by that. pad_id must be a vocabulary id. */
sdc_status sdc_prompt_tokenize(sdc_tokenizer *tok, const char *text, int pad_id, sdc_prompt *out);

/* The same with textual-inversion embeddings (db may be NULL): where a
 * fragment's tokens spell an embedding's name (the longest such name), its
 * vectors take as many placeholder tokens (id 0, the fragment's weight),
 * the whole embedding moved to the next chunk if it does not fit this one
 * (modules/sd_hijack_clip.py's tokenize_line). A matched embedding whose
 * file is unusable is an error with its reason. */
sdc_status sdc_prompt_tokenize_ti(sdc_tokenizer *tok, const char *text, int pad_id, const sdc_embedding_db *db,
                                  sdc_prompt *out);
void sdc_prompt_free(sdc_prompt *p);

#endif
