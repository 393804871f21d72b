/* names.h - tensor names of the original single-file layout from the
 * diffusers names that sdc's model code is written against. The U-Net and
 * VAE loaders ask for diffusers names ("down_blocks.1.attentions.0.proj_in.
 * weight"); for a single-file checkpoint these give the original name
 * ("input_blocks.4.1.proj_in.weight"), without the file's prefix
 * ("model.diffusion_model." / "first_stage_model."). */
#ifndef SDC_NAMES_H
#define SDC_NAMES_H

#include "model/model.h"

/* SDC_OK and out filled, or SDC_ERR_ARG with a message naming the name when
 * it has no counterpart for this config. */
sdc_status sdc_unet_name_to_original(const sdc_unet_config *c, const char *name,
                                     char *out, size_t cap);
sdc_status sdc_vae_name_to_original(const sdc_vae_config *c, const char *name,
                                    char *out, size_t cap);

/* Every diffusers tensor name of a U-Net / VAE of this config (for the VAE
 * the current attention names, not the legacy query/key/value/proj_attn;
 * no encoder.* or quant_conv.* when has_encoder is false). *names is a
 * malloc'd array of *n malloc'd strings: free with sdc_names_free. */
sdc_status sdc_unet_diffusers_names(const sdc_unet_config *c, char ***names, int *n);
sdc_status sdc_vae_diffusers_names(const sdc_vae_config *c, char ***names, int *n);
void sdc_names_free(char **names, int n);

#endif
