// dnn.h - cuDNN's convolution and fused attention as comparison columns
// (SDC_CONV=cudnn, SDC_ATTN=cudnn, the tests, make bench): never a
// dependency of sdc. The library is opened at
// run time (SDC_CUDNN_LIB, else libcudnn.so.9, else libcudnn.so); a build
// whose compiler finds no <cudnn.h> has none and says so. On the emulated
// device the same calls go to kernels/emu/cudnn.cc. Includable from C.
#ifndef SDC_DNN_H
#define SDC_DNN_H

#include <stddef.h>

#ifdef __cplusplus
#include "port.h"
extern "C" {
#else
typedef struct CUstream_st *cudaStream_t;
#endif

typedef struct sdc_dnn sdc_dnn;

// A cuDNN handle on stream s; 0, or -1 with the reason in err (no
// library, a library without the calls sdc makes, no device).
int sdc_dnn_open(sdc_dnn **out, cudaStream_t s, char *err, size_t err_n);
void sdc_dnn_close(sdc_dnn *d);
// cuDNN's version as it reports it (e.g. 91000), 0 without a handle
size_t sdc_dnn_version(const sdc_dnn *d);

// The convolution of the backend's conv2d op, NHWC: x (n, h, w, cin), w
// (cout, k, k, cin), y (n, ho, wo, cout), all of element type t (SDC_CU_*),
// fp32 accumulation, no bias (the caller adds it). prepare: the algorithm
// cuDNN's heuristics rank first among those needing at most max_ws bytes of
// workspace, remembered per shape, and the workspace it needs in *ws.
// Both return 0, or -1 with cuDNN's words and the shape in err.
int sdc_dnn_conv_prepare(sdc_dnn *d, int t, int n, int h, int w, int cin, int cout, int k, int stride, int pad,
                         size_t max_ws, size_t *ws, char *err, size_t err_n);
int sdc_dnn_conv(sdc_dnn *d, void *y, const void *x, const void *w, int t, int n, int h, int wi, int cin, int cout,
                 int k, int stride, int pad, size_t max_ws, void *ws, size_t ws_bytes, char *err, size_t err_n);

// The backend's attention op by cuDNN's fused attention (its graph API:
// Q K^T, scale, causal mask, softmax, P V in one operation graph, as
// cudnn-frontend composes scaled-dot-product attention): q rows q_stride
// elements apart with head h at columns [h dim, (h + 1) dim), k and v rows
// kv_stride apart, out dense (batch, tq, heads dim); t SDC_CU_F16 or
// SDC_CU_BF16; the scores times scale; causal: query i sees keys j <= i.
// prepare: the execution plan (remembered per shape) and its workspace in
// *ws. Both return 0, or -1 with cuDNN's words and the shape in err (no
// engine for the shape: cuDNN's fused attention takes head dims up to 128
// or 256 by version and GPU).
#define SDC_DNN_MAX_D 256 // the widest head cuDNN's fused attention takes (9.x on Hopper); wider: not tried
int sdc_dnn_attention_prepare(sdc_dnn *d, int t, int batch, int heads, int tq, int tk, int dim, int q_stride,
                              int kv_stride, int causal, size_t *ws, char *err, size_t err_n);
int sdc_dnn_attention(sdc_dnn *d, void *out, const void *q, const void *k, const void *v, int t, int batch, int heads,
                      int tq, int tk, int dim, int q_stride, int kv_stride, int causal, float scale, void *ws,
                      size_t ws_bytes, char *err, size_t err_n);

#ifdef __cplusplus
}
#endif
#endif
