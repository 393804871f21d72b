"""fixtures_scheduler.py - reference schedules and sampler steps for sdc's
samplers (src/sampling/scheduler.c), from diffusers 0.31.0 on the CPU.

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
        (the test builds sdc's samplers with cfg.correctly_rounded for it).

    tools/.venv/bin/python tools/fixtures_scheduler.py --sweep [--exact-math] [--out F]
        schedules only (no runs), every sampler/spacing/Karras choice at
        every step count 1..250 and nine more up to 999: 5,439 schedules,
        about 10 MB (default out: build/scheduler_sweep[_exact].safetensors,
        not committed); metadata "kind" is "sweep". Check with
        SDC_SCHEDULER_REF=build/scheduler_sweep.safetensors \
            build/sdc_tests --filter 'scheduler/schedules'

    tools/.venv/bin/python tools/fixtures_scheduler.py --c-tables [--out F]
        writes src/sampling/scheduler_tables.h (committed, generated): torch's float32
        training sigmas ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 and
        (sigma_t ** 2 + 1) ** 0.5 for each, 2 x 1000 floats as C hex
        literals. torch's CPU sqrt is MKL's vmsSqrt (not correctly rounded);
        these are the only points where it enters a schedule (the rest is
        exact float32/float64 arithmetic or numpy, which sdc reproduces), so
        with them sdc's timesteps, sigmas and init_noise_sigma are
        bit-identical for SD's schedule. Regenerate it together with the
        fixture when torch, MKL or the CPU change.
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
# --sweep: every step count up to 250, then coarser up to 999 (the most
# leading spacing allows with steps_offset 1)
SWEEP_STEPS = tuple(range(1, 251)) + (300, 333, 400, 500, 600, 700, 800, 900, 999)
TABLES_OUT = os.path.join(ROOT, "src", "sampling", "scheduler_tables.h")


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


def schedule_cases(tensors, cases, steps_list=SCHED_STEPS):
    for sampler in SAMPLERS:
        for spacing in SPACINGS:
            for karras in ((False, True) if sampler in KARRAS_OK else (False,)):
                for n in steps_list:
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


def c_float(v):
    """An exact C hex literal for a float32 value."""
    v = float(np.float32(v))
    if v == 0.0:
        return "0.0f"
    m, e = v.hex().split("p")
    m = m.rstrip("0").rstrip(".") if "." in m else m
    return f"{m}p{e}f"


def c_array(name, values, per_line=5):
    lines = [f"static const float {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(c_float(v) for v in values[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def torch_tables():
    """The float32 arrays torch computes for SD's default training schedule
    where its CPU math (MKL's sqrt) is not correctly rounded: the training
    sigmas, as every sigma-based scheduler computes them in set_timesteps,
    and (sigma_t ** 2 + 1) ** 0.5 for each of them, as init_noise_sigma,
    scale_model_input and the steps compute it from a 0-dim sigma."""
    import diffusers

    sigmas = None
    for sampler in ("euler", "euler_a", "dpmpp_2m"):
        sch = make_scheduler(sampler, "leading", False, "epsilon")
        ac = sch.alphas_cumprod
        sig = ((1 - ac) / ac) ** 0.5  # the expression in each set_timesteps
        assert sig.dtype == torch.float32
        if sigmas is None:
            sigmas = sig
        assert torch.equal(sig, sigmas), sampler
    # diffusers' own result: trailing with 1000 steps interpolates at every
    # integer timestep, so its sigmas are the table itself
    sch = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", timestep_spacing="trailing")
    sch.set_timesteps(1000)
    assert torch.equal(sch.sigmas[:1000].flip(0), sigmas)
    assert bool((sigmas[1:] > sigmas[:-1]).all()), "training sigmas not increasing"
    s2p1 = torch.stack([(sigmas[t].clone() ** 2 + 1) ** 0.5 for t in range(1000)])
    assert torch.equal(s2p1, (sigmas ** 2 + 1) ** 0.5)
    # how far these are from correctly rounded float32 (what sdc computes)
    q = ((1 - sch.alphas_cumprod) / sch.alphas_cumprod).numpy().astype(np.float64)
    cr_sig = np.sqrt(q).astype(np.float32)
    sn = sigmas.numpy()
    cr_s2p1 = np.sqrt((sn * sn + np.float32(1)).astype(np.float64)).astype(np.float32)
    return sigmas.numpy(), s2p1.numpy(), int((cr_sig != sn).sum()), \
        int((cr_s2p1 != s2p1.numpy()).sum())


def write_c_tables(out):
    import diffusers

    sig, s2p1, n_sig, n_s2p1 = torch_tables()
    import re

    m = re.search(r"Math Kernel Library Version (\S+)", torch.__config__.show())
    mkl = f"MKL {m.group(1)}" if m else "MKL ?"
    cap = torch.backends.cpu.get_cpu_capability()
    text = f"""/* scheduler_tables.h - GENERATED by tools/fixtures_scheduler.py --c-tables
 * (tools/.venv/bin/python tools/fixtures_scheduler.py --c-tables); do not edit.
 *
 * torch's own float32 values for SD's default training schedule (1000
 * steps, scaled_linear betas 0.00085..0.012), at the points where torch's
 * CPU math enters a schedule and is not correctly rounded: its float32
 * sqrt (also x ** 0.5) is MKL's VML (vmsSqrt, high-accuracy mode), within
 * 1 ulp, elementwise (the same input gives the same output whatever the
 * tensor's size or position). src/sampling/scheduler.c uses these for that config
 * only, and not with cfg.correctly_rounded set; any other config computes
 * them with correctly rounded sqrtf. 2 x 1000 floats, as C hex literals:
 *   sdc_torch_train_sigmas[t]   ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
 *                               as Euler, Euler a and DPM++ compute it in
 *                               set_timesteps ({n_sig} of 1000 are 1 ulp from
 *                               the correctly rounded sqrtf)
 *   sdc_torch_sqrt_sigma2p1[t]  (sigma_t ** 2 + 1) ** 0.5 of a 0-dim sigma_t:
 *                               init_noise_sigma (leading spacing),
 *                               scale_model_input, the steps ({n_s2p1} of 1000
 *                               differ from sqrtf)
 * Made with torch {torch.__version__}, diffusers {diffusers.__version__}, numpy {np.__version__},
 * {mkl}, torch CPU capability {cap}; MKL picks its code path by CPU, so
 * regenerate (with the fixture) where torch gives other values. */
#ifndef SDC_SCHEDULER_TABLES_H
#define SDC_SCHEDULER_TABLES_H

#define SDC_TORCH_TABLE_T 1000
#define SDC_TORCH_TABLE_BETA_START 0.00085f
#define SDC_TORCH_TABLE_BETA_END 0.012f

{c_array("sdc_torch_train_sigmas", sig)}

{c_array("sdc_torch_sqrt_sigma2p1", s2p1)}

#endif
"""
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}: 2 x 1000 floats ({n_sig} training sigmas and {n_s2p1} "
          f"sqrt(sigma^2 + 1) differ from correctly rounded)")


def main():
    import diffusers
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exact-math", action="store_true",
                    help="correctly rounded sqrt/log/exp in torch (verification fixture)")
    ap.add_argument("--sweep", action="store_true",
                    help="schedules only, every sampler/spacing/Karras at %d step counts "
                    "(build/scheduler_sweep[_exact].safetensors)" % len(SWEEP_STEPS))
    ap.add_argument("--c-tables", action="store_true",
                    help="write torch's float32 training-sigma tables to src/sampling/scheduler_tables.h")
    ap.add_argument("--out", help="output file")
    args = ap.parse_args()
    assert diffusers.__version__ == "0.31.0", diffusers.__version__
    assert torch.__version__.startswith("2.5.1"), torch.__version__
    torch.set_num_threads(1)
    if args.c_tables:
        assert not (args.exact_math or args.sweep), "--c-tables takes no other option but --out"
        write_c_tables(args.out or TABLES_OUT)
        return
    if args.sweep:
        default_out = "scheduler_sweep_exact.safetensors" if args.exact_math else \
            "scheduler_sweep.safetensors"
        out = args.out or os.path.join(ROOT, "build", default_out)
    else:
        out = args.out or (os.path.join(ROOT, "build", "scheduler_exact.safetensors")
                           if args.exact_math else OUT)
    if args.exact_math:
        use_exact_math()

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
    schedule_cases(tensors, sched, SWEEP_STEPS if args.sweep else SCHED_STEPS)
    if not args.sweep:
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
        "kind": "sweep" if args.sweep else "reference",
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_file(tensors, out, metadata=meta)
    size = os.path.getsize(out)
    print(f"wrote {out}: {len(sched)} schedules, {len(runs)} runs, {size} bytes")
    if size > 1 << 20 and not args.sweep:
        sys.exit("fixture larger than 1 MiB")


if __name__ == "__main__":
    main()
