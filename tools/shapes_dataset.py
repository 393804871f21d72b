#!/usr/bin/env python3
"""The synthetic world of sdc's shipped model: one or two anti-aliased
shapes on a plain or gradient background, with captions in varied wording.

Deterministic: image i of split S is a function of (S, i) only.

    from shapes_dataset import sample, render, caption, HELD_OUT
"""
import math

import numpy as np

SIZE = 64                 # image side in pixels
SUPER = 4                 # supersampling factor for anti-aliasing

SHAPES = ["circle", "square", "triangle", "star", "ring"]
COLOURS = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 30),
    "purple": (140, 40, 180), "orange": (245, 140, 20), "white": (245, 245, 245), "black": (15, 15, 15),
}
COLOUR_NAMES = list(COLOURS)
POSITIONS = {  # centre of the shape, in [0, 1] image coordinates
    "top left": (0.25, 0.25), "top right": (0.75, 0.25), "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75), "center": (0.5, 0.5),
}
POSITION_NAMES = list(POSITIONS)
SIZES = {"small": 0.15, "large": 0.22}  # radius as a fraction of the side (a small
# star at 0.11, 7 px, decoded through an 8x8 latent came back a blob)

# (shape, shape colour, background colour) triples never shown in training;
# make eval renders them. 3 per shape kind and colour, chosen by a fixed rule.
def _held_out():
    out = []
    for si, s in enumerate(SHAPES):
        for k in range(3):
            c = COLOUR_NAMES[(si * 3 + k) % 8]
            b = COLOUR_NAMES[(si * 3 + k + 3 + si) % 8]
            if b == c:
                b = COLOUR_NAMES[(COLOUR_NAMES.index(b) + 1) % 8]
            out.append((s, c, b))
    return out


HELD_OUT = _held_out()
HELD_OUT_SET = set(HELD_OUT)

POS_WORDS = {
    "top left": ["in the top left corner", "at the top left", "in the upper left corner"],
    "top right": ["in the top right corner", "at the top right", "in the upper right corner"],
    "bottom left": ["in the bottom left corner", "at the bottom left", "in the lower left corner"],
    "bottom right": ["in the bottom right corner", "at the bottom right", "in the lower right corner"],
    "center": ["in the center", "in the middle", "at the centre"],
}


def _mask(shape, cx, cy, r, n):
    """Boolean mask on an n x n supersampled grid; cx, cy, r in pixels of it."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        h = r * 0.85
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "triangle":  # pointing up, inscribed in the circle of radius r
        pts = [(cx, cy - r), (cx - r * math.sqrt(3) / 2, cy + r / 2), (cx + r * math.sqrt(3) / 2, cy + r / 2)]
        return _poly(x, y, pts)
    if shape == "star":  # five points, inner radius 0.45 r
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else 0.45 * r
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return _poly(x, y, pts)
    raise ValueError(shape)


def _poly(x, y, pts):
    """Even-odd point-in-polygon test, vectorised."""
    inside = np.zeros(x.shape, dtype=bool)
    n = len(pts)
    for i in range(n):
        x1, y1 = pts[i]
        x2, y2 = pts[(i + 1) % n]
        cond = (y1 > y) != (y2 > y)
        xint = (x2 - x1) * (y - y1) / (y2 - y1 + 1e-12) + x1
        inside ^= cond & (x < xint)
    return inside


def render(scene):
    """scene: dict(bg, bg2 (or None), objects=[(shape, colour, position, size)]) -> uint8 (64, 64, 3)."""
    n = SIZE * SUPER
    bg = np.array(COLOURS[scene["bg"]], dtype=np.float32)
    img = np.empty((n, n, 3), dtype=np.float32)
    if scene.get("bg2"):
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
        img[:] = bg * (1 - t) + np.array(COLOURS[scene["bg2"]], dtype=np.float32) * t
    else:
        img[:] = bg
    for shape, colour, pos, size in scene["objects"]:
        px, py = POSITIONS[pos]
        m = _mask(shape, px * n, py * n, SIZES[size] * n, n)
        img[m] = np.array(COLOURS[colour], dtype=np.float32)
    img = img.reshape(SIZE, SUPER, SIZE, SUPER, 3).mean(axis=(1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def caption(scene, rng):
    objs = scene["objects"]
    bg = scene["bg"] if not scene.get("bg2") else f"{scene['bg']} to {scene['bg2']} gradient"

    def obj(o, article=True):
        shape, colour, pos, size = o
        return f"{'a ' if article else ''}{size} {colour} {shape} {rng.choice(POS_WORDS[pos])}"

    if len(objs) == 1:
        shape, colour, pos, size = objs[0]
        templates = [
            lambda: f"{obj(objs[0])} on a {bg} background",
            lambda: f"{bg} background with {obj(objs[0])}",
            lambda: f"a {colour} {shape}, {size}, {rng.choice(POS_WORDS[pos])}, {bg} background",
            lambda: f"{size} {colour} {shape} {rng.choice(POS_WORDS[pos])} on {bg}",
            lambda: f"a picture of {obj(objs[0])}, the background is {bg}",
        ]
    else:
        templates = [
            lambda: f"{obj(objs[0])} and {obj(objs[1])} on a {bg} background",
            lambda: f"{bg} background with {obj(objs[0])} and {obj(objs[1])}",
        ]
    return templates[rng.integers(len(templates))]()


def sample(rng, allow_held_out=False, two_shapes_p=0.15, gradient_p=0.1):
    """A random scene; held-out (shape, colour, background) triples excluded."""
    while True:
        bg = COLOUR_NAMES[rng.integers(8)]
        n_obj = 2 if rng.random() < two_shapes_p else 1
        positions = rng.permutation(len(POSITION_NAMES))[:n_obj]
        objects = []
        for k in range(n_obj):
            shape = SHAPES[rng.integers(len(SHAPES))]
            colour = COLOUR_NAMES[rng.integers(8)]
            while colour == bg:
                colour = COLOUR_NAMES[rng.integers(8)]
            size = "large" if rng.random() < 0.5 else "small"
            if n_obj == 2:
                size = "small"
            objects.append((shape, colour, POSITION_NAMES[positions[k]], size))
        bg2 = None
        if n_obj == 1 and rng.random() < gradient_p:
            bg2 = COLOUR_NAMES[rng.integers(8)]
            if bg2 in (bg, objects[0][1]):
                bg2 = None
        if not allow_held_out and any((o[0], o[1], bg) in HELD_OUT_SET for o in objects):
            continue
        return {"bg": bg, "bg2": bg2, "objects": objects}


def eval_prompts():
    """Held-out prompts for make eval: every held-out triple at 5 positions
    alternating sizes (75 prompts), each with its ground truth."""
    out = []
    for i, (shape, colour, bg) in enumerate(HELD_OUT):
        for j, pos in enumerate(POSITION_NAMES):
            size = "large" if (i + j) % 2 == 0 else "small"
            prompt = f"a {size} {colour} {shape} {POS_WORDS[pos][0]} on a {bg} background"
            out.append({"prompt": prompt, "shape": shape, "colour": colour, "bg": bg, "position": pos,
                        "size": size})
    return out


def make_split(n, seed, workers=1):
    """n scenes, their captions and images. The scenes and captions come
    from one random stream in order; rendering uses no randomness, so it
    runs in `workers` processes with the same result."""
    rng = np.random.default_rng(seed)
    captions, scenes = [], []
    for _ in range(n):
        s = sample(rng)
        captions.append(caption(s, rng))
        scenes.append(s)
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            rendered = pool.map(render, scenes, chunksize=256)
    else:
        rendered = map(render, scenes)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i, im in enumerate(rendered):
        images[i] = im
    return images, captions, scenes


if __name__ == "__main__":
    imgs, caps, _ = make_split(8, 0)
    for c in caps:
        print(c)
    print(len(HELD_OUT), "held-out triples;", len(eval_prompts()), "eval prompts")
