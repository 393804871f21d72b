/* lora_cases.h - the LoRA and embedding reference cases of
 * tests/fixtures/lora_tiny_ref.safetensors (tools/fixtures_lora.py) and the
 * SDXL LoRA cases of lora_sdxl_tiny_ref.safetensors
 * (tools/fixtures_lora_sdxl.py), run on a backend and checked, shared by
 * the CPU suite (test_lora.c, test_lora_sdxl.c) and the emulated CUDA
 * device's (test_cuda_lora.c). */
#ifndef SDC_TESTS_LORA_CASES_H
#define SDC_TESTS_LORA_CASES_H

#include "sdc.h"

typedef struct lora_check {
    sdc_backend_kind backend;
    sdc_precision precision;   /* text encoder and U-Net */
    const char *sd1, *sd2;     /* the models of each family (a file or a folder); NULL skips the family */
    double lat_tol;            /* latents, normwise relative */
    int px_tol;                /* 8-bit pixels */
    double cond_tol;           /* the positive conditioning, normwise relative */
    const int *only;           /* the cases to run (-1 ends the list); NULL: all */
} lora_check;

/* Runs the cases of each family on one context (in file order, so each
 * case also checks that the one before it was taken out); returns how many
 * ran. Asserts each case's latents, pixels, conditioning and infotext
 * hashes against the reference. */
int lora_run_cases(const lora_check *c);

/* The SDXL cases of tests/fixtures/lora_sdxl_tiny_ref.safetensors
 * (tools/fixtures_lora_sdxl.py) on one model (a file or a folder). */
typedef struct lora_sdxl_check {
    sdc_backend_kind backend;
    sdc_precision precision;   /* text encoders and U-Net (the VAE too) */
    const char *model;
    double lat_tol;            /* latents, normwise relative */
    int px_tol;                /* 8-bit pixels */
    double cond_tol;           /* conditioning and pooled output, both sides, normwise relative */
    const int *only;           /* the cases to run (-1 ends the list); NULL: all */
} lora_sdxl_check;

/* Runs them in file order on one context, between two renders without
 * LoRAs that must agree bit for bit (every LoRA taken out again); returns
 * how many ran. Asserts each case's latents, pixels, the conditioning and
 * pooled output of the prompt and of the negative prompt (both encoders
 * with the case's LoRAs), and the infotext's Lora hashes. */
int lora_sdxl_run_cases(const lora_sdxl_check *c);

#endif
