/* extra_networks.h - AUTOMATIC1111's extra-network tags in a prompt:
 *
 *   "a castle <lora:oil_paint:0.8>, night <lora:detail:0.5:1.2>"
 *     -> text "a castle , night " (the tags removed before tokenising)
 *     -> LoRAs [oil_paint te 0.8 unet 0.8] [detail te 0.5 unet 1.2]
 *
 * As modules/extra_networks.py: every match of <(\w+):([^>]+)> is removed
 * (re.sub, Python 3.11's Unicode \w); its text after the first ':' is split
 * on ':' into items, an item "key=value" (one '=') is named, the others
 * positional. For <lora:...> (and its alias <lyco:...>), as
 * extra_networks_lora.py: NAME = positional[0]; te = positional[1] (1.0);
 * unet = positional[2] (te); the named te= and unet= override them.
 * Multipliers are Python float()s (no '_' separators here), finite. A1111
 * skips other network types with a warning; here they are an error (sdc
 * would render without them). Negative prompts keep their tags as text,
 * as A1111 does. */
#ifndef SDC_EXTRA_NETWORKS_H
#define SDC_EXTRA_NETWORKS_H

#include "common.h"

typedef struct sdc_lora_ref {
    char *name;       /* as the tag names it (a file stem), or a file's path (--lora) */
    double te, unet;  /* multipliers of the text encoder's and the U-Net's modules */
} sdc_lora_ref;

/* *stripped (malloc'd): prompt without its tags; *refs (malloc'd, may be
 * NULL when *n is 0): the LoRAs of its <lora:...> tags, in prompt order.
 * Errors (SDC_ERR_ARG) quote the tag: an unknown network type, no NAME, a
 * multiplier Python's float() would not read or that is not finite,
 * dyn= (not supported). */
sdc_status sdc_extra_networks_parse(const char *prompt, char **stripped, sdc_lora_ref **refs, int *n);
void sdc_lora_refs_free(sdc_lora_ref *refs, int n);

/* "FILE:W", "FILE:TE:UNET" or "FILE" (1.0) of --lora: the last one or two
 * ':'-separated fields that read as numbers are the multipliers. */
sdc_status sdc_lora_ref_parse_arg(const char *arg, sdc_lora_ref *out);

/* Python's float() of s (surrounding whitespace allowed; "inf" and "nan"
 * read but are refused by the callers above). */
bool sdc_py_float_parse(const char *s, double *out);

#endif
