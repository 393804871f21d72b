"""fixtures_rng.py - reference normals for sdc's port of torch's CPU RNG.

    tools/.venv/bin/python tools/fixtures_rng.py
        writes tests/fixtures/rng_reference.safetensors

Every tensor is float32 output of torch.randn(shape,
generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32),
possibly as one of several successive calls on the same generator. The
file's metadata says, under the tensor's own name:

    "seed=<uint64 decimal> calls=<n0>,<n1>,... out=<k>"

meaning: seed a fresh generator, make the calls randn(n0), randn(n1), ...
in order on it, and the tensor is the (row-major) result of call k; its
numel equals n_k. tests/test_rng.c replays exactly that and compares bits.

What is covered: the scalar path (n < 16), the vectorised path for
multiples of 16 and the redrawn tail otherwise, latent shapes
(batch, 4, h/8, w/8), seeds beyond 32 bits (torch uses the low 32 bits),
the mt19937 state regeneration every 624 words, and the stream and the
cached second normal of the scalar path carrying over between calls.

torch's n >= 16 path depends on the CPU build: the fixtures are only valid
from an AVX2 / AVX-512 capable CPU (what sdc reproduces), so the script
refuses to run elsewhere.
"""

import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "rng_reference.safetensors")
MAX_BYTES = 300 * 1024

SEEDS = [0, 42, 2**32 + 7, 18446744073709551615, 1234567890123, 2**63 + 5]
LATENT_SHAPES = [(1, 4, 8, 8), (2, 4, 16, 16), (1, 4, 32, 32)]
BIG_SHAPE = (1, 4, 64, 64)          # one seed only (64 KiB)
BIG_SEED = 42
SMALL_SIZES = [1, 7, 15, 16, 17, 33]
# Successive calls on one generator: the scalar path's cached normal
# carries over (5 leaves one cached; a vectorised call in between does not
# touch it), the stream continues across the scalar and vectorised paths,
# and 600 + 40 crosses mt19937's 624-word regeneration mid-call.
SEQUENCES = [[17, 5, 256], [5, 3, 1, 16, 1], [600, 40, 9, 31]]
SEQ_SEEDS = [0, 42, 18446744073709551615]


def randn_calls(seed, calls):
    g = torch.Generator("cpu").manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=torch.float32) for n in calls]


def main():
    cap = torch.backends.cpu.get_cpu_capability()
    if cap not in ("AVX2", "AVX512"):
        sys.exit(f"fixtures_rng.py: torch runs its {cap} kernels here; the "
                 "reference needs the AVX2/AVX512 ones")
    # A negative Python seed is its two's complement (documented behaviour
    # the C side relies on when taking --seed as uint64).
    a = randn_calls(-1, [20])[0]
    b = randn_calls(2**64 - 1, [20])[0]
    assert torch.equal(a, b)

    tensors, meta = {}, {"format": "pt",
                         "torch": torch.__version__,
                         "cpu_capability": cap,
                         "about": "see tools/fixtures_rng.py"}

    def add(name, seed, calls, out, shape=None):
        t = randn_calls(seed, calls)[out]
        if shape is not None:
            t = t.reshape(shape)
        tensors[name] = t.contiguous()
        meta[name] = "seed=%d calls=%s out=%d" % (
            seed, ",".join(str(n) for n in calls), out)

    for seed in SEEDS:
        for shape in LATENT_SHAPES:
            n = 1
            for d in shape:
                n *= d
            # randn(shape) and randn(numel) draw identically: check it once
            g1 = torch.Generator("cpu").manual_seed(seed)
            g2 = torch.Generator("cpu").manual_seed(seed)
            assert torch.equal(torch.randn(shape, generator=g1).flatten(),
                               torch.randn(n, generator=g2))
            add("s%d_%s" % (seed, "x".join(map(str, shape))), seed, [n], 0,
                shape)
        for n in SMALL_SIZES:
            add("s%d_n%d" % (seed, n), seed, [n], 0)
    add("s%d_%s" % (BIG_SEED, "x".join(map(str, BIG_SHAPE))), BIG_SEED,
        [16384], 0, BIG_SHAPE)
    for seed in SEQ_SEEDS:
        for calls in SEQUENCES:
            for k in range(len(calls)):
                add("s%d_seq%s_call%d" % (seed, "_".join(map(str, calls)), k),
                    seed, calls, k)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata=meta)
    size = os.path.getsize(OUT)
    if size > MAX_BYTES:
        sys.exit(f"fixtures_rng.py: {OUT} is {size} bytes (> {MAX_BYTES})")
    print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")


if __name__ == "__main__":
    main()
