/* testutil.h - shared helpers for the Criterion suite: reference tensors,
 * error measures, and the switch for full-size tests. */
#ifndef SDC_TESTS_TESTUTIL_H
#define SDC_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/safetensors.h"

#define FIXTURES "tests/fixtures"
#define FIXTURES_FULL "build/fixtures-full"

/* Normwise relative error: max_i |a_i - b_i| / max_i |b_i| (b is the
 * reference). Per-element relative error is meaningless near zero, so all
 * tolerances in this suite are stated in this measure. *worst (may be NULL)
 * gets the index of the largest |a_i - b_i|. */
double max_rel_err(const float *a, const float *b, size_t n, size_t *worst);
double max_rel_err_f64(const float *a, const double *b, size_t n, size_t *worst);

/* Print the first `limit` elements whose |a - b| exceeds tol * max|b|. */
void print_mismatches(const char *what, const float *a, const float *b, size_t n,
                      double tol, int limit);

/* A reference tensor from an open safetensors file as a fresh malloc'd
 * float array (any float dtype); aborts the test (cr_assert) if absent. */
float *ref_tensor(const sdc_st_file *f, const char *name, size_t *numel);
/* row p of an int64 (prompts, 77) token-id tensor, as ints */
void ref_ids(const sdc_st_tensor *ids, int p, int out[77]);

/* Full-size tests run only under `make test-full` (SDC_TEST_FULL=1). */
bool full_tests_enabled(void);

/* A CPU backend (asserts on failure). */
struct sdc_backend;
struct sdc_backend *test_cpu_backend(void);
/* n deterministic uniform floats in [-scale, scale), malloc'd. */
float *test_random(size_t n, uint64_t seed, float scale);
/* Assert max_rel_err_f64(got, ref) <= tol, naming `what` and the worst element. */
void check_close_f64(double tol, const char *what, const float *got, const double *ref, size_t n);

/* Path of the sdc CLI built beside this test binary (build/ or build-san/). */
const char *sdc_cli_path(void);

/* A whole file as a malloc'd NUL-terminated string; NULL if it cannot be read. */
char *test_read_file(const char *path);

/* Fill with deterministic uniform values in [-scale, scale). */
void fill_uniform(float *x, size_t n, uint64_t seed, float scale);

#endif
