"""fixtures_scheduler.py - reference schedules and sampler steps for sdc's
samplers (src/scheduler.c), from diffusers 0.31.0 on the CPU.

    tools/.venv/bin/python tools/fixtures_scheduler.py
        writes tests/fixtures/scheduler_reference.safetensors

Every scheduler is built with SD's configuration (1000 training steps,
scaled_linear betas 0.00085..0.012, steps_offset 1; DDIM with
set_alpha_to_one False and clip_sample False; DDPM fixed_small without
clipping; DPM++ 2M = DPMSolverMultistepScheduler dpmsolver++, order 2,
midpoint, lower_order_final, final_sigmas_type "zero").

Contents (all float tensors F32 unless noted; the case list is the JSON in
__metadata__["cases"]):

    betas, alphas_cumprod      [1000]  the training schedule
    noise                      [256]   torch.randn((1,4,8,8)) from
                                       torch.Generator().manual_seed(SEED),
                                       the first draw of the stream
    model_out                  [BANK, 256] random model outputs; step k of
                                       every run uses model_out[k % BANK]

    sched/<name>/timesteps     F64 [steps]   as diffusers hands them to the U-Net
    sched/<name>/sigmas        [steps+1]     (Euler, Euler a, DPM++ only)
    sched/<name>/init_sigma    [1]           init_noise_sigma

    run/<name>/x               [len(keep), 256]  prev_sample after step k-1
                                       for each k in the case's "keep" list
                                       (k = 0 is the initial latents:
                                       noise * init_noise_sigma)
    run/<name>/scaled0         [256]   scale_model_input(x_0, t_0)

A run is a pipeline's loop without the U-Net: latents = noise *
init_noise_sigma (the noise being the generator's first draw), then for
each step k: scale_model_input, then step(model_out[k % BANK], t_k, x,
generator=the same generator) — so samplers that add noise draw it from
the same stream, in the same order, as StableDiffusionPipeline does.

Schedule entries: {"name", "sampler", "spacing", "karras", "steps",
"diffusers_len"} (diffusers_len: the number of timesteps diffusers made;
numpy's arange(1000, 0, -1000/n) yields n + 1 values for some n with
"trailing", sdc keeps the first n). Run entries: {"name", "sampler",
"spacing", "karras", "prediction", "eta", "steps", "keep"}.

    tools/.venv/bin/python tools/fixtures_scheduler.py --exact-math [--out F]
        the same cases with torch's float32 sqrt (x ** 0.5, torch.sqrt) and
        the log/exp of 0-dim tensors made correctly rounded (default out:
        build/scheduler_exact.safetensors, not committed). On the CPU torch
        computes these with MKL's VML, which is within 1 ulp but not
        correctly rounded; with them fixed, sdc must be bit-identical to
        diffusers everywhere, which the test checks when pointed at it:
        SDC_SCHEDULER_REF=build/scheduler_exact.safetensors \
            build/sdc_tests --filter 'scheduler/*'
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "scheduler_reference.safetensors")

SEED = 1234
BANK = 5
SHAPE = (1, 4, 8, 8)
NUMEL = 256
SAMPLERS = ("ddim", "ddpm", "euler", "euler_a", "dpmpp_2m")
KARRAS_OK = ("euler", "dpmpp_2m")
SPACINGS = ("leading", "trailing", "linspace")
SCHED_STEPS = (1, 2, 3, 4, 7, 10, 20, 25, 50, 61, 100, 250)


def make_scheduler(sampler, spacing, karras, prediction):
    import diffusers

    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", steps_offset=1,
                  timestep_spacing=spacing, prediction_type=prediction)
    if sampler == "ddim":
        assert not karras
        return diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **common)
    if sampler == "ddpm":
        assert not karras
        return diffusers.DDPMScheduler(variance_type="fixed_small", clip_sample=False, **common)
    if sampler == "euler":
        return diffusers.EulerDiscreteScheduler(use_karras_sigmas=karras, **common)
    if sampler == "euler_a":
        # EulerAncestralDiscreteScheduler has no use_karras_sigmas in 0.31.
        assert not karras
        return diffusers.EulerAncestralDiscreteScheduler(**common)
    if sampler == "dpmpp_2m":
        return diffusers.DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            lower_order_final=True, final_sigmas_type="zero", use_karras_sigmas=karras,
            **common)
    raise ValueError(sampler)


def case_name(sampler, spacing, karras, prediction=None, eta=0.0, steps=None):
    s = f"{sampler}_{spacing}" + ("_karras" if karras else "")
    if prediction is not None:
        s += "_v" if prediction == "v_prediction" else "_eps"
    if eta:
        s += f"_eta{eta:g}"
    if steps is not None:
        s += f"_{steps}"
    return s


def has_sigmas(sampler):
    return sampler in ("euler", "euler_a", "dpmpp_2m")


def init_sigma(sch):
    v = sch.init_noise_sigma
    return float(v.item() if torch.is_tensor(v) else v)


def schedule_cases(tensors, cases):
    for sampler in SAMPLERS:
        for spacing in SPACINGS:
            for karras in ((False, True) if sampler in KARRAS_OK else (False,)):
                for n in SCHED_STEPS:
                    sch = make_scheduler(sampler, spacing, karras, "epsilon")
                    sch.set_timesteps(n)
                    ts = sch.timesteps.to(torch.float64)
                    name = case_name(sampler, spacing, karras, steps=n)
                    dlen = int(ts.numel())
                    if dlen != n:
                        # numpy's arange overshoot with "trailing": one
                        # extra timestep -1 at the end; sdc keeps n.
                        assert spacing == "trailing" and dlen == n + 1, (name, dlen)
                        assert ts[-1].item() == -1.0, (name, ts[-3:])
                    tensors[f"sched/{name}/timesteps"] = ts[:n].contiguous()
                    if has_sigmas(sampler):
                        sig = sch.sigmas.to(torch.float32)
                        if dlen != n:
                            sig = torch.cat([sig[:n], sig[-1:]])
                        assert sig.numel() == n + 1
                        tensors[f"sched/{name}/sigmas"] = sig.contiguous()
                    tensors[f"sched/{name}/init_sigma"] = torch.tensor([init_sigma(sch)],
                                                                       dtype=torch.float32)
                    cases.append({"name": name, "sampler": sampler, "spacing": spacing,
                                  "karras": karras, "steps": n, "diffusers_len": dlen})


def run_list():
    """(sampler, spacing, karras, prediction, eta, [steps...])"""
    E, V = "epsilon", "v_prediction"
    return [
        ("ddim", "leading", False, E, 0.0, [1, 4, 20, 50]),
        ("ddim", "trailing", False, E, 0.0, [4, 20]),
        ("ddim", "linspace", False, E, 0.0, [4, 20]),
        ("ddim", "leading", False, V, 0.0, [4, 20, 50]),
        ("ddim", "leading", False, E, 0.5, [4, 20]),
        ("ddim", "trailing", False, V, 0.5, [20]),
        ("ddpm", "leading", False, E, 0.0, [1, 4, 20, 50]),
        ("ddpm", "trailing", False, E, 0.0, [4]),
        ("ddpm", "linspace", False, E, 0.0, [4]),
        ("ddpm", "leading", False, V, 0.0, [4, 20]),
        ("euler", "leading", False, E, 0.0, [1, 4, 20, 50]),
        ("euler", "trailing", False, E, 0.0, [4, 20]),
        ("euler", "linspace", False, E, 0.0, [4, 20]),
        ("euler", "leading", True, E, 0.0, [1, 4, 20, 50]),
        ("euler", "trailing", True, E, 0.0, [4, 20]),
        ("euler", "linspace", True, E, 0.0, [20]),
        ("euler", "leading", False, V, 0.0, [4, 20]),
        ("euler", "linspace", False, V, 0.0, [20]),
        ("euler", "leading", True, V, 0.0, [20]),
        ("euler_a", "leading", False, E, 0.0, [1, 4, 20, 50]),
        ("euler_a", "trailing", False, E, 0.0, [4, 20]),
        ("euler_a", "linspace", False, E, 0.0, [4, 20]),
        ("euler_a", "leading", False, V, 0.0, [4, 20]),
        ("dpmpp_2m", "leading", False, E, 0.0, [1, 2, 4, 20, 50]),
        ("dpmpp_2m", "trailing", False, E, 0.0, [4, 20]),
        ("dpmpp_2m", "linspace", False, E, 0.0, [4, 20]),
        ("dpmpp_2m", "leading", True, E, 0.0, [1, 4, 20, 50]),
        ("dpmpp_2m", "trailing", True, E, 0.0, [20]),
        ("dpmpp_2m", "leading", False, V, 0.0, [4, 20]),
        ("dpmpp_2m", "leading", True, V, 0.0, [20]),
    ]


def keep_indices(n):
    """Samples kept: the first few and the last few (one-step checks need
    x_k and x_{k+1}; DPM++ also x_{k-1} for its history)."""
    return sorted(set(range(0, min(n, 6) + 1)) | set(range(max(0, n - 3), n + 1)))


def run_cases(tensors, cases, noise, model_out):
    for sampler, spacing, karras, pred, eta, step_list in run_list():
        for n in step_list:
            sch = make_scheduler(sampler, spacing, karras, pred)
            sch.set_timesteps(n)
            assert sch.timesteps.numel() == n
            name = case_name(sampler, spacing, karras, pred, eta, n)
            g = torch.Generator("cpu").manual_seed(SEED)
            first = torch.randn(SHAPE, generator=g, dtype=torch.float32)
            assert torch.equal(first.flatten(), noise)
            x = first * sch.init_noise_sigma
            keep = keep_indices(n)
            xs = {0: x.flatten().clone()}
            scaled0 = None
            for k, t in enumerate(sch.timesteps):
                scaled = sch.scale_model_input(x, t)
                if k == 0:
                    scaled0 = scaled.flatten().clone()
                mo = model_out[k % BANK].reshape(SHAPE)
                if sampler == "ddim":
                    out = sch.step(mo, t, x, eta=eta, generator=g)
                else:
                    out = sch.step(mo, t, x, generator=g)
                x = out.prev_sample
                assert x.dtype == torch.float32
                xs[k + 1] = x.flatten().clone()
            tensors[f"run/{name}/x"] = torch.stack([xs[k] for k in keep]).contiguous()
            tensors[f"run/{name}/scaled0"] = scaled0.contiguous()
            cases.append({"name": name, "sampler": sampler, "spacing": spacing,
                          "karras": karras, "prediction": "v" if pred == "v_prediction" else "epsilon",
                          "eta": eta, "steps": n, "keep": keep})


def use_exact_math():
    """Correctly rounded float32 sqrt everywhere and log/exp of 0-dim
    float32 tensors (the only places the samplers use them)."""
    orig_pow, orig_sqrt, orig_log, orig_exp = (torch.Tensor.__pow__, torch.sqrt, torch.log,
                                               torch.exp)

    def exact_sqrt(t):
        # sqrt in double, then rounding to float, is correctly rounded
        return torch.from_numpy(np.asarray(np.sqrt(t.detach().numpy().astype(np.float64))
                                           .astype(np.float32))).reshape(t.shape)

    def pow_(self, e):
        if isinstance(e, (int, float)) and e == 0.5 and self.dtype == torch.float32:
            return exact_sqrt(self)
        return orig_pow(self, e)

    def sqrt_(t, *a, **k):
        if torch.is_tensor(t) and t.dtype == torch.float32 and not a and not k:
            return exact_sqrt(t)
        return orig_sqrt(t, *a, **k)

    def scalar(fn, orig):
        def g(t, *a, **k):
            if torch.is_tensor(t) and t.dim() == 0 and t.dtype == torch.float32 and not a and not k:
                return torch.tensor(np.float32(fn(float(t))))
            return orig(t, *a, **k)
        return g

    torch.Tensor.__pow__ = pow_
    torch.sqrt = sqrt_
    torch.log = scalar(lambda v: math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan),
                       orig_log)
    torch.exp = scalar(lambda v: math.exp(v) if v < 709 else math.inf, orig_exp)


def main():
    import diffusers
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exact-math", action="store_true",
                    help="correctly rounded sqrt/log/exp in torch (verification fixture)")
    ap.add_argument("--out", help="output file")
    args = ap.parse_args()
    out = args.out or (os.path.join(ROOT, "build", "scheduler_exact.safetensors")
                       if args.exact_math else OUT)
    if args.exact_math:
        use_exact_math()

    assert diffusers.__version__ == "0.31.0", diffusers.__version__
    assert torch.__version__.startswith("2.5.1"), torch.__version__
    torch.set_num_threads(1)

    tensors = {}
    base = make_scheduler("ddim", "leading", False, "epsilon")
    tensors["betas"] = base.betas.to(torch.float32).contiguous()
    tensors["alphas_cumprod"] = base.alphas_cumprod.to(torch.float32).contiguous()

    g = torch.Generator("cpu").manual_seed(SEED)
    noise = torch.randn(SHAPE, generator=g, dtype=torch.float32).flatten()
    tensors["noise"] = noise.contiguous()
    gm = torch.Generator("cpu").manual_seed(42)
    model_out = torch.randn((BANK, NUMEL), generator=gm, dtype=torch.float32)
    tensors["model_out"] = model_out.contiguous()

    sched, runs = [], []
    schedule_cases(tensors, sched)
    run_cases(tensors, runs, noise, model_out)

    meta = {
        "format": "pt",
        "seed": str(SEED),
        "bank": str(BANK),
        "numel": str(NUMEL),
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "schedules": json.dumps(sched, separators=(",", ":")),
        "runs": json.dumps(runs, separators=(",", ":")),
        "math": "correctly-rounded" if args.exact_math else "torch",
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_file(tensors, out, metadata=meta)
    size = os.path.getsize(out)
    print(f"wrote {out}: {len(sched)} schedules, {len(runs)} runs, {size} bytes")
    if size > 1 << 20:
        sys.exit("fixture larger than 1 MiB")


if __name__ == "__main__":
    main()
