/* vae_tiled.h - the VAE in overlapping tiles, as diffusers' AutoencoderKL
 * runs it after enable_tiling() (0.31: tiled_decode, _tiled_encode), so
 * that the backend memory of a decode or encode is that of one tile
 * whatever the image's size.
 *
 * With a tile of P pixels a side (tile_sample_min_size) and L = P / f
 * latent pixels (tile_latent_min_size), the input is cut into tiles of L
 * (decode) or P (encode) a side every 3/4 of a tile (overlap_size); the
 * last tile of a row or column is what is left (a partial tile). Each
 * tile runs through the VAE on its own. Going over the tiles row by row,
 * the top rows of each are blended with the tile above and then its left
 * columns with the tile to its left (blend_v, blend_h: linear weights
 * over a quarter of a tile of the output, blend_extent), both neighbours
 * already blended themselves; the first 3/4 of each tile's output
 * (row_limit) are the image's.
 *
 * diffusers tiles only an input larger than a tile in height or width;
 * below that these calls are the untiled decode or encode. The tile must
 * be a multiple of 4f pixels: for any other size diffusers' overlap and
 * row limit (int(L * 0.75) latent pixels, P - int(P * 0.25) pixels) do
 * not agree, and its tiles do not add up to the image. */
#ifndef SDC_VAE_TILED_H
#define SDC_VAE_TILED_H

#include "nets/vae.h"

/* diffusers' tile for SD 1.x (its VAE's sample_size): 512 pixels, 64 latent */
#define SDC_VAE_TILE_DEFAULT 512
#define SDC_VAE_TILE_MAX 4096

/* SDC_OK when tile_px pixels is a tile this VAE can use: a multiple of 4f
 * from 4f to SDC_VAE_TILE_MAX. */
sdc_status sdc_vae_tile_check(const sdc_vae_config *c, int tile_px);

/* Whether diffusers tiles an h x w latent (an f h x f w image) with tiles
 * of tile_px: when either side is larger than a tile. */
bool sdc_vae_tiles(const sdc_vae_config *c, int tile_px, int h, int w);

/* Planned memory of a tiled decode or encode of an h x w latent:
 * sdc_vae_memory of its largest tile (the first). */
sdc_net_memory sdc_vae_tiled_memory(const sdc_vae *v, int tile_px, int h, int w);

/* The backend buffers one tile passes through; both NULL: allocated for
 * the call (with the VAE's activations, unless it has the caller's). */
typedef struct sdc_vae_tile_bufs {
    float *lat;  /* (min(L, h), min(L, w), z_channels) a tile's latents (decode), or
                  * (min(L, h), min(L, w), 2 z_channels) its moments (encode) */
    float *img;  /* (min(P, f h), min(P, f w), 3) its pixels */
} sdc_vae_tile_bufs;

/* image (h f, w f, 3) = the tiled decode of z (h, w, z_channels); both
 * fp32 in host memory, NHWC, z already divided by the scale factor. */
sdc_status sdc_vae_decode_tiled(sdc_vae *v, int tile_px, const float *z, int h, int w, float *image,
                                sdc_vae_tile_bufs bufs);

/* moments (H / f, W / f, 2 z_channels) = the tiled encode of image (H, W, 3)
 * in [-1, 1]: the mean, then the log-variance (unclamped), blended as
 * diffusers blends quant_conv's output. Host memory, NHWC. */
sdc_status sdc_vae_encode_tiled(sdc_vae *v, int tile_px, const float *image, int H, int W, float *moments,
                                sdc_vae_tile_bufs bufs);

#endif
