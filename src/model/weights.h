/* weights.h - the one weight loader of the text encoder, U-Net and VAE:
 * tensors by name (diffusers names for the U-Net and VAE, in either file
 * layout; the text encoder's own names), shapes checked, each tensor
 * staged on the host in the file's own type (F32, F16 or BF16; other float
 * types as F32) and handed to the backend's load_tensor, which keeps it in
 * the type the backend computes with (backend->weight_type for matrices
 * and convolution kernels, or the file's own where the backend keeps
 * weights as stored, the CPU; fp32 for vectors and embedding tables).
 * The token embedding is a host table in the file's type, read a row at
 * a time.
 * Never a host fp32 copy of the model. Convolution kernels are permuted from
 * PyTorch's (cout, cin, k, k) to (cout, k, k, cin) on the way. Every buffer
 * is recorded so the model frees them in one call. */
#ifndef SDC_WEIGHTS_H
#define SDC_WEIGHTS_H

#include "model/model.h"

/* SDC_COMP_FILE: a network in a file of its own, names as they are
 * (sdc_loader_init_file: TAESD's decoder) */
typedef enum sdc_component { SDC_COMP_UNET, SDC_COMP_VAE, SDC_COMP_TEXT, SDC_COMP_TEXT2, SDC_COMP_FILE } sdc_component;

/* Where one matrix or convolution kernel of a model came from, so that it
 * can be rewritten in place (LoRA merges) and restored from its file
 * bit for bit. A part of a stacked weight (q, k, v in one matrix) is an
 * entry of its own. */
typedef struct sdc_weight_src {
    char *name;                 /* the loader's name: "down_blocks.0.resnets.0.conv1.weight" (diffusers,
                                 * U-Net and VAE), the text encoder's own naming */
    const sdc_st_file *file;    /* the model's file holding it */
    const sdc_st_tensor *t;     /* its tensor there */
    sdc_weight w;               /* the backend weight it is (part of) */
    int row0, rows;             /* its rows in w: a matrix's (out) rows, or a kernel's cout */
    int cols;                   /* a matrix's in, or a kernel's cin */
    int k;                      /* kernel size of a convolution (cout, k, k, cin); 0: a matrix */
    bool in_place;              /* w points into the file's view (read-only), not backend memory */
} sdc_weight_src;

typedef struct sdc_weight_set {
    void **ptrs;    /* every buffer allocated for this model */
    int n, cap;
    void **host;    /* host tables copied from the files (free()) */
    int n_host, cap_host;
    size_t bytes;   /* total size in backend memory */
    size_t in_place_bytes;  /* matrices and kernels read in place from the files' views */
    sdc_weight_src *srcs;   /* every matrix and kernel, in load order */
    int n_srcs, cap_srcs;
} sdc_weight_set;

typedef struct sdc_loader {
    const sdc_model_files *m;
    sdc_component comp;
    const sdc_st_file *file; /* SDC_COMP_FILE: the file, and the network's name in messages */
    const char *what;
    sdc_backend *be;
    sdc_weight_set *set;
    unsigned char *stage; /* host staging of one tensor (or one stack), in the file's type */
    size_t stage_cap;     /* bytes */
    unsigned char *used;  /* per tensor of the component's file: read by this loader */
    /* matrices and kernels in a type the backend keeps as stored point
     * into the file's view instead of being copied (the model's files,
     * which stay open as long as the weights; not SDC_NO_MMAP=1) */
    bool in_place;
} sdc_loader;

void sdc_loader_init(sdc_loader *L, const sdc_model_files *m, sdc_component comp,
                     sdc_backend *be, sdc_weight_set *set);
/* A loader over one file of its own (no prefix; tensors by their names in
 * it), `what` naming the network in messages. */
void sdc_loader_init_file(sdc_loader *L, const sdc_st_file *f, const char *what, sdc_backend *be,
                          sdc_weight_set *set);
void sdc_loader_done(sdc_loader *L);

/* Every tensor of the component (its file, under its prefix) was read: a
 * tensor left over is a part of the model sdc would silently skip (an
 * SDXL add_embedding, a class embedding, an extra block), so it is an
 * SDC_ERR_UNSUPPORTED error naming it. (U-Net and VAE.) */
sdc_status sdc_loader_check_all_used(sdc_loader *L);

/* Whether the component has a tensor of this name. */
bool sdc_loader_has(sdc_loader *L, const char *name);

/* (n) vector, fp32; the text encoder's (1, n) exports are accepted */
sdc_status sdc_load_vec(sdc_loader *L, float **dst, int n, const char *name);
/* (rows, cols) table kept in fp32 (embeddings) */
sdc_status sdc_load_table(sdc_loader *L, float **dst, int rows, int cols, const char *name);
/* A (rows, cols) table on the host, in the file's type (F32, F16 or BF16;
 * any other as F32), read a row at a time (the token embedding: a prompt
 * reads 77 of its 49408 rows). It points into the file's view where the
 * loader reads in place (nothing copied, no page read until a row is),
 * else into a copy the weight set owns. */
typedef struct sdc_host_table {
    const void *p;
    sdc_dtype type;
    int rows, cols;
} sdc_host_table;
sdc_status sdc_load_host_table(sdc_loader *L, sdc_host_table *dst, int rows, int cols, const char *name);
/* out[0..cols) = row `row` (0 <= row < rows) widened to fp32, exactly */
void sdc_host_table_row(const sdc_host_table *t, int row, float *out);
/* (out, in) matrix; a (out, in, 1, 1) 1x1 convolution is accepted too */
sdc_status sdc_load_mat(sdc_loader *L, sdc_weight *dst, int out, int in, const char *name);
/* (cout, cin, k, k) convolution, stored (cout, k, k, cin) */
sdc_status sdc_load_conv(sdc_loader *L, sdc_weight *dst, int cout, int cin, int k, const char *name);
/* An (out, in) matrix stored transposed, (in, out), as OpenCLIP keeps its
 * text_projection (not recorded for LoRA merges). */
sdc_status sdc_load_mat_t(sdc_loader *L, sdc_weight *dst, int out, int in, const char *name);
/* Several (out_i, in) matrices stacked into one (sum out_i, in) weight,
 * e.g. q, k and v into one projection. */
sdc_status sdc_load_mats_stacked(sdc_loader *L, sdc_weight *dst, int n_mats, const int *outs, int in,
                                 const char *const *names);

/* Several (n_i) vectors stacked into one (sum n_i) buffer (biases of q, k, v). */
sdc_status sdc_load_vecs_stacked(sdc_loader *L, float **dst, int n_vecs, const int *ns, const char *const *names);

/* "<prefix>.weight" and "<prefix>.bias" of a convolution / of a norm. */
sdc_status sdc_load_conv_bias(sdc_loader *L, sdc_weight *w, float **b, int cout, int cin, int k, const char *prefix);
sdc_status sdc_load_norm(sdc_loader *L, float **w, float **b, int n, const char *prefix);

void sdc_weight_set_free(sdc_weight_set *set, sdc_backend *be);

/* Rewrite the weight of src in place from `pt` (host fp32 in PyTorch's
 * layout: (rows, cols) or (rows, cols, k, k)), converted to the backend's
 * type and layout as loading does; scratch: as many floats as pt. */
sdc_status sdc_weight_store(sdc_backend *be, const sdc_weight_src *src, const float *pt, float *scratch);
/* src's tensor from the model file as fp32 in PyTorch's layout
 * (rows * cols * k * k floats). */
sdc_status sdc_weight_read_original(const sdc_weight_src *src, float *pt);

#endif
