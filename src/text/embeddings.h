/* embeddings.h - AUTOMATIC1111's textual-inversion embeddings: a folder of
 * .safetensors files, each a few vectors of the text encoder's width under
 * one name (the file's stem). A prompt whose tokens spell a name gets those
 * vectors in place of the name's tokens (prompt.h counts them against the
 * 75-token chunks as A1111's tokenize_line does).
 *
 * A file holds `emb_params`, `string_to_param.*` or a single tensor, of
 * shape (n, width) or (width). A file that is none of these, a pickle (.pt,
 * .bin) or an embedding of another width is kept as an entry with its
 * error: a prompt that names it fails with that error (A1111 skips such
 * files, and the name would silently stay text). */
#ifndef SDC_EMBEDDINGS_H
#define SDC_EMBEDDINGS_H

#include "text/tokenizer.h"

#define SDC_EMBEDDING_MAX_VECTORS 75   /* more could never fit one chunk */

typedef struct sdc_embedding {
    char *name;      /* the file's stem */
    char *path;
    int *ids;        /* the name's tokens (no BOS/EOS) */
    int n_ids;
    float *vecs;     /* (n_vecs, width) */
    int n_vecs;
    char *error;     /* why it cannot be used; NULL: usable */
    char hash[13];   /* A1111's short hash: the file's SHA-256, 12 hex digits ("" until sdc_embedding_hash) */
} sdc_embedding;

typedef struct sdc_embedding_db {
    sdc_embedding *e;  /* sorted by path */
    int n;
    int width;
} sdc_embedding_db;

/* Every embedding file in dir and its subfolders (a missing folder is an
 * SDC_ERR_IO error); width <= 0 takes any width (sdc tokenize without a
 * model). */
sdc_status sdc_embeddings_load(const char *dir, sdc_tokenizer *tok, int width, sdc_embedding_db **out);
void sdc_embeddings_free(sdc_embedding_db *db);

/* The embedding whose name's tokens are tokens[pos..], the longest first
 * (A1111's find_embedding_at_position); -1 if none. */
int sdc_embeddings_match(const sdc_embedding_db *db, const int *tokens, int n, int pos);

/* e->hash (once). */
sdc_status sdc_embedding_hash(sdc_embedding *e);

#endif
