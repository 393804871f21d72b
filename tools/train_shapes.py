#!/usr/bin/env python3
"""Train sdc's shipped model: Stable Diffusion's architecture at small size
(KL-VAE with 8x downsampling and 4 latent channels, a CLIP-style text
encoder on the real CLIP BPE vocabulary, a U-Net with cross-attention) on
the synthetic shapes world of tools/shapes_dataset.py, on the CPU or,
with --device cuda, on a GPU (--workers N renders the dataset in N
processes, with the same result).

    tools/.venv/bin/python tools/train_shapes.py --out weights/sdc-shapes.safetensors

Reproducible: fixed seeds, deterministic algorithms, fixed thread counts
(--threads for the VAE phases, --unet-threads for the U-Net phase; the
result depends on them) and a deterministic data order. The same command
on the same kind of CPU gives the same file byte for byte; another kind
(an Intel Xeon rather than an AMD EPYC) gives a slightly different one,
since torch picks its MKL and oneDNN kernels by instruction set. On a GPU
a few backward kernels have no deterministic form, so a run repeats to
within rounding only, and its result differs from the CPU's. The result is
exported by the same converter as the test fixtures (tools/sdc_layout.py)
in the original single-file layout, fp16, so sdc loads it exactly as it
loads a real SD 1.x checkpoint; what a real SD file does not say (heads,
the latent scale, v-prediction) goes into the safetensors __metadata__.

Phases: (1) render the dataset, (2) train the VAE (L1 + MSE weighted
towards the shapes, a small KL term), (3) encode every image once (the
encoder is final from here on), (4) sharpen the decoder alone on those
latents in two rounds, (5) pretrain the text encoder to carry the
caption's attributes (a linear head on the mean of its outputs, not
exported), (6) train the text encoder and U-Net together, v-prediction on
the latents scaled to unit variance (SD's scaled_linear betas, x0 loss
weight min(SNR + 1, 5), shape cells weighted 10x, 10% empty captions for
classifier-free guidance, EMA of the weights), (7) export the EMA weights.
Phase 4 only changes the decoder and phases 5-6 only read the latents, so
phase 4 runs in a second process beside them (each at its own thread
count, so the file is the same as one made in a single process; --serial
runs them one after the other). --vae-cache FILE keeps phases 1-4 (written
once, reused after), and --vae-only stops there.
"""
import argparse
import copy
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402
import sdc_layout  # noqa: E402
import shapes_dataset as ds  # noqa: E402

VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 32, 64, 64),
                  layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=ds.SIZE)
TEXT_CONFIG = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=64, intermediate_size=256,
                   num_attention_heads=4, num_hidden_layers=3, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                   projection_dim=64, bos_token_id=0, eos_token_id=2, pad_token_id=1)
UNET_CONFIG = dict(sample_size=ds.SIZE // 8, in_channels=4, out_channels=4, block_out_channels=(64, 128),
                   layers_per_block=2, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                   attention_head_dim=4, norm_num_groups=16)


DEV = torch.device("cpu")  # set by --device; every tensor the models see lives here


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def to_tensor(images):
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0).to(DEV)


def lr_at(step, steps, peak, warm=100, floor=0.1):
    """Linear warm-up, then cosine decay to floor * peak."""
    w = min(1.0, (step + 1) / warm)
    c = floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * min(step, steps) / steps))
    return peak * w * c


def fg_weight(images, fg=10.0):
    """Per-pixel loss weight: fg where a pixel differs from the image's
    background (median of its border), 1 elsewhere. Shapes cover 3-14% of
    an image; unweighted, the VAE learns the background long before them."""
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)[:, None, None, :]
    mask = (np.abs(images.astype(np.int16) - bg).max(axis=-1) > 12)[:, None]
    return torch.from_numpy(1.0 + (fg - 1.0) * mask.astype(np.float32))


def train_vae(images, steps, batch, seed, lr=1e-3, full_from=0.0):
    """Steps before full_from * steps see random 32x32 crops (a quarter of
    the cost; the VAE is convolutional), the rest whole images."""
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE_CONFIG).to(DEV)
    with torch.no_grad():  # start with a small posterior std (~0.02) rather than 1
        z = VAE_CONFIG["latent_channels"]
        vae.quant_conv.weight[z:] *= 0.01
        vae.quant_conv.bias[z:] = -8.0
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    g = np.random.default_rng(seed + 10)
    gen = torch.Generator().manual_seed(seed + 11)
    t0 = time.time()
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, steps, lr)
        batch_img = images[g.integers(0, len(images), batch)]
        weight = fg_weight(batch_img).to(DEV)
        if step < full_from * steps:
            oy, ox = g.integers(0, ds.SIZE // 2 + 1, 2) // 8 * 8
            batch_img = batch_img[:, oy:oy + ds.SIZE // 2, ox:ox + ds.SIZE // 2]
            weight = weight[:, :, oy:oy + ds.SIZE // 2, ox:ox + ds.SIZE // 2]
        x = to_tensor(np.ascontiguousarray(batch_img))
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(DEV)
        rec = vae.decode(z).sample
        err = (rec - x).abs()
        loss = ((err + err * err) * weight).mean() / weight.mean() + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} loss {loss.item():.5f} ({time.time() - t0:.0f} s)")
    return vae.eval()


def sharpen_decoder(vae, images, latents, steps, batch, seed, lr=5e-4):
    """Train the decoder (and post_quant_conv) alone on the encoder's means,
    with the weighted loss plus an L1 loss on image gradients, which sharpens
    edges: after the first phase squares, stars and rings come back as
    rounded blobs. The encoder is frozen, so the latents the U-Net learns
    are the same before and after."""
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = np.random.default_rng(seed + 40)
    vae.train()
    t0 = time.time()

    def grads(t):
        return t[..., :, 1:] - t[..., :, :-1], t[..., 1:, :] - t[..., :-1, :]

    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, steps, lr, warm=50)
        idx = g.integers(0, len(images), batch)
        batch_img = images[idx]
        weight = fg_weight(batch_img).to(DEV)
        x = to_tensor(batch_img)
        rec = vae.decode(latents[idx].to(DEV)).sample
        err = (rec - x).abs()
        loss = ((err + err * err) * weight).mean() / weight.mean()
        (rx, ry), (xx, xy) = grads(rec), grads(x)
        loss = loss + (rx - xx).abs().mean() + (ry - xy).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"decoder step {step}/{steps} loss {loss.item():.5f} ({time.time() - t0:.0f} s)")
    return vae.eval()


@torch.no_grad()
def encode_all(vae, images, batch=500):
    out = []
    for i in range(0, len(images), batch):
        out.append(vae.encode(to_tensor(images[i:i + batch])).latent_dist.mean.cpu())
    return torch.cat(out)


def latent_fg_masks(images, chunk=2000):
    """(N, 1, H/8, W/8) 1.0 on latent cells an 8x8 block of which touches a
    shape, 0.0 on pure background."""
    out = []
    for i in range(0, len(images), chunk):
        w = fg_weight(images[i:i + chunk])
        out.append((F.max_pool2d(w, 8) > 1).float())
    return torch.cat(out)


ATTRIBUTES = (len(ds.POSITION_NAMES), len(ds.SHAPES), len(ds.COLOUR_NAMES), len(ds.COLOUR_NAMES))


def attribute_labels(scenes):
    """(N, 4) int64: position, kind and colour of the shape, background
    colour; -100 (ignored) for the shape's attributes when there are two."""
    out = []
    for s in scenes:
        o, one = s["objects"][0], len(s["objects"]) == 1
        out.append([ds.POSITION_NAMES.index(o[2]) if one else -100, ds.SHAPES.index(o[0]) if one else -100,
                    ds.COLOUR_NAMES.index(o[1]) if one else -100, ds.COLOUR_NAMES.index(s["bg"])])
    return torch.tensor(out)


def attribute_loss(head, ctx, labels):
    """Cross-entropy of the caption's attributes read linearly from the mean
    of the text encoder's 77 outputs, what a cross-attention layer with
    uniform attention (the U-Net at initialisation) sees."""
    z, o, loss = head(ctx.mean(dim=1)), 0, 0.0
    for k, n in enumerate(ATTRIBUTES):
        loss = loss + F.cross_entropy(z[:, o:o + n], labels[:, k], ignore_index=-100)
        o += n
    return loss


def pretrain_text(te, head, ids, labels, steps, batch, seed, lr=1e-3):
    """Teach the text encoder the attributes before the U-Net sees it. From
    scratch, a position word changes the context by a few hundredths (it is
    2 of 77 tokens), and placing a shape needs the U-Net to combine that
    signal with where it is: the two never start. After this (300 steps,
    about a minute), the U-Net places shapes by the prompt within ~150
    steps; without it, not in 3,000."""
    opt = torch.optim.AdamW(list(te.parameters()) + list(head.parameters()), lr=lr, weight_decay=0.0)
    g = np.random.default_rng(seed + 50)
    t0 = time.time()
    for step in range(steps):
        idx = torch.from_numpy(g.integers(0, len(ids), batch))
        loss = attribute_loss(head, te(ids[idx].to(DEV)).last_hidden_state, labels[idx].to(DEV))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"text step {step}/{steps} attribute loss {loss.item():.4f} ({time.time() - t0:.0f} s)")


def train_unet(latents, masks, ids, labels, empty_ids, steps, batch, seed, text_steps=300, lr=8e-4,
               ema_decay=0.999, fg=10.0, aux=0.1):
    """Text encoder and U-Net together, v-prediction, on the latents scaled
    to unit variance; returns the EMA copies."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed + 20)
    te = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).to(DEV)
    unet = UNet2DConditionModel(**UNET_CONFIG).to(DEV)
    head = torch.nn.Linear(TEXT_CONFIG["hidden_size"], sum(ATTRIBUTES)).to(DEV)  # training aid, not exported
    pretrain_text(te, head, ids, labels, text_steps, 256, seed)
    ema_te, ema_unet = copy.deepcopy(te).eval(), copy.deepcopy(unet).eval()
    noise_sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                beta_schedule="scaled_linear")
    ac = noise_sched.alphas_cumprod
    snr = ac / (1 - ac)
    # v-prediction (sdc reads __metadata__ sdc.prediction = v): at high
    # noise, where the layout is decided, the network outputs the image
    # rather than a tiny correction to the noise. Loss weight per timestep,
    # as a weight on the x0 error: min(SNR + 1, 5) (Min-SNR-5 is min(SNR, 5),
    # which leaves the high-noise steps next to nothing). As a weight on the
    # v loss:
    weight = (torch.clamp(snr + 1, max=5.0) / (snr + 1)).to(DEV)
    model_params = list(unet.parameters()) + list(te.parameters())
    params = model_params + list(head.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_te.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    g = np.random.default_rng(seed + 30)
    gen = torch.Generator().manual_seed(seed + 31)
    t0 = time.time()
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, steps, lr, warm=200)
        idx = torch.from_numpy(g.integers(0, len(latents), batch))
        x0 = latents[idx].to(DEV)
        tok = ids[idx].clone()
        lab = labels[idx].clone()
        drop = torch.from_numpy(g.random(batch) < 0.1)  # empty caption 10% of the time (CFG)
        tok[drop] = empty_ids
        lab[drop] = -100
        tok, lab = tok.to(DEV), lab.to(DEV)
        noise = torch.randn(x0.shape, generator=gen).to(DEV)  # drawn on the CPU: the same on every device
        t = torch.randint(0, 1000, (batch,), generator=gen).to(DEV)
        xt = noise_sched.add_noise(x0, noise, t)
        ctx = te(tok).last_hidden_state
        pred = unet(xt, t, encoder_hidden_states=ctx).sample
        m = 1.0 + (fg - 1.0) * masks[idx].to(DEV)  # shapes weigh fg times the background
        v = noise_sched.get_velocity(x0, noise, t)
        loss = ((pred - v) ** 2 * m).mean(dim=(1, 2, 3)) / m.mean(dim=(1, 2, 3))
        loss = (loss * weight[t]).mean()
        if aux > 0:  # keep the attributes readable while the U-Net learns
            loss = loss + aux * attribute_loss(head, ctx, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema_params, d)
            torch._foreach_add_(ema_params, model_params, alpha=1 - d)
        if step % 100 == 0 or step == steps - 1:
            log(f"unet step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    return ema_unet.cpu(), ema_te.cpu()


def sharpen_rounds(vae, images, latents, args):
    for r in range(args.decoder_rounds):  # warm restarts of the schedule
        vae = sharpen_decoder(vae, images, latents, args.decoder_steps, 32, args.seed + r)
    return vae


def sharpen_job(tmp, args):
    """Phase 4 in a process of its own (spawned: a forked child of a
    process with a thread pool can hang), reading and writing tmp."""
    setup_device(args)
    from diffusers import AutoencoderKL
    vae = AutoencoderKL(**VAE_CONFIG)
    vae.load_state_dict(torch.load(os.path.join(tmp, "vae.pt"), weights_only=True))
    images = np.load(os.path.join(tmp, "images.npy"))
    latents = torch.load(os.path.join(tmp, "latents.pt"), weights_only=True)
    vae = sharpen_rounds(vae.to(DEV), images, latents, args)
    torch.save(vae_state(vae), os.path.join(tmp, "vae-sharp.pt"))


class SharpenInBackground:
    """Runs sharpen_job beside the caller; finish() waits for it and loads
    the sharpened decoder into vae."""

    def __init__(self, vae, images, latents, args):
        import multiprocessing
        self.tmp = tempfile.TemporaryDirectory(prefix="sdc-train-")
        torch.save(vae_state(vae), os.path.join(self.tmp.name, "vae.pt"))
        np.save(os.path.join(self.tmp.name, "images.npy"), images)
        torch.save(latents, os.path.join(self.tmp.name, "latents.pt"))
        self.proc = multiprocessing.get_context("spawn").Process(target=sharpen_job, args=(self.tmp.name, args))
        self.proc.start()
        log(f"decoder rounds running beside the U-Net (process {self.proc.pid})")

    def finish(self, vae):
        self.proc.join()
        if self.proc.exitcode != 0:
            raise SystemExit(f"train_shapes.py: the decoder process failed (exit code {self.proc.exitcode})")
        vae.load_state_dict(torch.load(os.path.join(self.tmp.name, "vae-sharp.pt"), weights_only=True))
        self.close()
        return vae.eval()

    def close(self):
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()
        self.tmp.cleanup()


def vae_state(vae):
    return {k: v.cpu() for k, v in vae.state_dict().items()}


def tokenize(captions):
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        clip_vocab.write_hf_tokenizer(tmp, pad_token="<|endoftext|>")
        tok = CLIPTokenizer.from_pretrained(tmp)
        ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        empty = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids[0]
    return ids, empty


def save_sorted(tensors, path, metadata):
    """safetensors with the header in sorted order, so the same weights give
    the same bytes (the safetensors package orders __metadata__ by hash)."""
    import json
    import struct
    names = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64", torch.int32: "I32"}
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".part", path)


def export(path, unet, vae, te, scale, args, prediction="epsilon"):
    """Original single-file layout, fp16, plus the __metadata__ sdc reads."""
    from safetensors.torch import load_file
    tmp = path + ".tmp"
    sdc_layout.write_single_file(tmp, unet, vae, te, "sd1", dtype=torch.float16, extras=False)
    t = load_file(tmp)
    os.unlink(tmp)
    meta = {"format": "pt",
            "sdc.text.heads": str(TEXT_CONFIG["num_attention_heads"]),
            "sdc.unet.heads": ",".join([str(UNET_CONFIG["attention_head_dim"])] * len(UNET_CONFIG["block_out_channels"])),
            "sdc.vae.norm_groups": str(VAE_CONFIG["norm_num_groups"]),
            "sdc.unet.norm_groups": str(UNET_CONFIG["norm_num_groups"]),
            "sdc.image_size": str(ds.SIZE),
            "sdc.prediction": prediction,
            "sdc.vae.scale_factor": f"{scale:.6f}",
            "sdc.model": "sdc-shapes: a small SD-architecture model of a synthetic world of shapes (64x64)",
            "sdc.train": f"tools/train_shapes.py --images {args.images} --vae-steps {args.vae_steps} "
                         f"--decoder-steps {args.decoder_steps} --decoder-rounds {args.decoder_rounds} --text-steps {args.text_steps} "
                         f"--unet-steps {args.unet_steps} --batch {args.batch} --seed {args.seed} "
                         f"--threads {args.threads} --unet-threads {args.unet_threads} --device {DEV.type}"}
    save_sorted(t, path, meta)
    log(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def probe(images, ids, scenes, empty, batch, steps=(4, 24)):
    """Seconds per step of each phase at the configured sizes: the time of
    steps[1] steps less that of steps[0] (start-up and warm-up)."""
    lat = torch.randn(len(images), 4, ds.SIZE // 8, ds.SIZE // 8)
    masks, labels = latent_fg_masks(images), attribute_labels(scenes)
    for name, run in (("vae", lambda k: train_vae(images, k, 32, 0)),
                      ("decoder", lambda k: sharpen_decoder(train_vae(images, 0, 32, 0), images, lat, k, 32, 0)),
                      ("unet", lambda k: train_unet(lat, masks, ids, labels, empty, k, batch, 0, text_steps=0))):
        took = []
        for k in steps:
            t = time.time()
            run(k)
            took.append(time.time() - t)
        log(f"probe {name}: {(took[1] - took[0]) / (steps[1] - steps[0]):.4f} s/step")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="weights/sdc-shapes.safetensors")
    ap.add_argument("--images", type=int, default=30000)
    ap.add_argument("--vae-steps", type=int, default=2000)
    ap.add_argument("--decoder-steps", type=int, default=1500, help="steps per decoder round")
    ap.add_argument("--decoder-rounds", type=int, default=2)
    ap.add_argument("--text-steps", type=int, default=300, help="text encoder pretraining on the attributes")
    ap.add_argument("--unet-steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (results depend on it)")
    ap.add_argument("--unet-threads", type=int, default=1,
                    help="threads for the text encoder + U-Net phase (the shipped model: 1)")
    ap.add_argument("--vae-cache", help="reuse (or write) the trained VAE and latents here")
    ap.add_argument("--vae-only", action="store_true", help="stop once the VAE cache is written")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (results differ between the two)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="processes rendering the dataset (same result; default: one per core)")
    ap.add_argument("--serial", action="store_true",
                    help="run the decoder rounds before the U-Net instead of beside it (same result)")
    ap.add_argument("--probe", action="store_true", help="time a few steps of each phase and stop")
    args = ap.parse_args()
    if args.vae_only and not args.vae_cache:
        ap.error("--vae-only needs --vae-cache FILE")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    setup_device(args)
    t0 = time.time()
    n = 512 if args.probe else args.images
    images, captions, scenes = ds.make_split(n, args.seed, workers=args.workers)
    ids, empty = tokenize(captions)
    log(f"dataset: {n} images, {len(set(captions))} distinct captions ({time.time() - t0:.0f} s)")
    if args.probe:
        return probe(images, ids, scenes, empty, args.batch)
    from diffusers import AutoencoderKL
    sharpening = None
    if args.vae_cache and os.path.exists(args.vae_cache):
        c = torch.load(args.vae_cache)
        vae = AutoencoderKL(**VAE_CONFIG)
        vae.load_state_dict(c["vae"])
        vae.to(DEV).eval()
        lat = c["latents"] if "latents" in c else encode_all(vae, images)  # a cache may hold the VAE alone
        log(f"VAE and latents from {args.vae_cache}")
    else:
        vae = train_vae(images, args.vae_steps, 32, args.seed)
        lat = encode_all(vae, images)
        if args.serial or args.vae_only or args.decoder_rounds == 0:
            vae = sharpen_rounds(vae, images, lat, args)
        else:
            sharpening = SharpenInBackground(vae, images, lat, args)
    try:
        if args.vae_only:
            if not os.path.exists(args.vae_cache):
                save_vae_cache(args.vae_cache, vae, lat)
            return log(f"VAE and latents in {args.vae_cache}; stopping (--vae-only)")
        std = float(lat.std())
        scale = 1.0 / std
        log(f"latents {tuple(lat.shape)}, mean {float(lat.mean()):.4f} std {std:.4f} -> scale factor {scale:.5f}")
        masks = latent_fg_masks(images)
        torch.set_num_threads(args.unet_threads or args.threads)
        unet, te = train_unet(lat * scale, masks, ids, attribute_labels(scenes), empty, args.unet_steps,
                              args.batch, args.seed, text_steps=args.text_steps)
        if sharpening:
            vae = sharpening.finish(vae)
            sharpening = None
        if args.vae_cache and not os.path.exists(args.vae_cache):
            save_vae_cache(args.vae_cache, vae, lat)
    finally:
        if sharpening:
            sharpening.close()
    vae.register_to_config(scaling_factor=scale)
    export(args.out, unet, vae.cpu(), te, scale, args, prediction="v")
    log(f"done in {(time.time() - t0) / 60:.1f} min")


def save_vae_cache(path, vae, latents):
    torch.save({"vae": vae_state(vae), "latents": latents}, path + ".part")
    os.replace(path + ".part", path)


def setup_device(args):
    """The device, thread count and determinism settings; the same in the
    main process and the decoder's."""
    global DEV
    DEV = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if DEV.type == "cuda":
        # cuBLAS is deterministic with a fixed workspace; a few CUDA backward
        # kernels (nearest upsampling, attention) have no deterministic form,
        # so a GPU run repeats only to within float rounding.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        log(f"device: {torch.cuda.get_device_name(DEV)}")
    else:
        torch.use_deterministic_algorithms(True)


if __name__ == "__main__":
    main()
