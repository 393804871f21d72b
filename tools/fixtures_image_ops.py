#!/usr/bin/env python3
"""Reference fixtures for sdc's pixel operations of image-to-image and
inpainting (src/image/resize.c, src/image/mask_ops.c), made with Pillow
11.0.0 and OpenCV 4.10 the way AUTOMATIC1111's webui calls them:

  resize   Image.resize((w, h), Image.LANCZOS, box) on RGB and L images, and
           a few with BICUBIC (Pillow's default, which A1111's fill bars get)
  modes    images.resize_image(mode, im, w, h) with no upscaler: 0 just
           resize, 1 crop and resize, 2 resize and fill
  blur     processing.py's mask blur: cv2.GaussianBlur with a (k, 1) then a
           (1, k) kernel, k = 2 * int(2.5 * blur + 0.5) + 1
  fill     masking.fill(image, mask)

    python tools/fixtures_image_ops.py [--out tests/fixtures/image_ops]

Writes resize.safetensors, modes.safetensors, blur.safetensors and
fill.safetensors: U8 tensors, images as (h, w, channels); "src_<name>"
the inputs, "out<i>" the result of case i; __metadata__ "cases" is a JSON
list describing each case. The reference steps below are written from what
A1111 does, with the same Pillow and OpenCV calls.
"""
import argparse
import json
import os

import cv2
import numpy as np
import PIL
from PIL import Image, ImageFilter, ImageOps
from safetensors.numpy import save_file

assert PIL.__version__ == "11.0.0", PIL.__version__
assert cv2.__version__.startswith("4.10."), cv2.__version__

SEED = 20240607
LANCZOS = Image.Resampling.LANCZOS


def sources(rng):
    """Small test images: noise (every rounding shows) and smooth shapes."""
    yy, xx = np.mgrid[0:29, 0:37]
    smooth = np.stack([xx * 7, yy * 8, (xx + yy) * 4], -1).clip(0, 255)
    return {
        "rgb37x29": rng.integers(0, 256, (29, 37, 3), dtype=np.uint8),
        "rgbsmooth37x29": smooth.astype(np.uint8),
        "l23x41": rng.integers(0, 256, (41, 23), dtype=np.uint8),
        "rgb40x17": rng.integers(0, 256, (17, 40, 3), dtype=np.uint8),
        "rgb17x40": rng.integers(0, 256, (40, 17, 3), dtype=np.uint8),
        "l40x17": rng.integers(0, 256, (17, 40), dtype=np.uint8),
        "l17x40": rng.integers(0, 256, (40, 17), dtype=np.uint8),
        "rgb1x17": rng.integers(0, 256, (17, 1, 3), dtype=np.uint8),
        "rgb13x1": rng.integers(0, 256, (1, 13, 3), dtype=np.uint8),
        "l1x1": rng.integers(0, 256, (1, 1), dtype=np.uint8),
        "rgb2x2": rng.integers(0, 256, (2, 2, 3), dtype=np.uint8),
        "rgb3x64": rng.integers(0, 256, (64, 3, 3), dtype=np.uint8),
        "l64x3": rng.integers(0, 256, (3, 64), dtype=np.uint8),
    }


def pil(a):
    return Image.fromarray(a, "RGB" if a.ndim == 3 else "L")


def as_hwc(a):
    return a if a.ndim == 3 else a[:, :, None]


# (source, width, height, box or None[, "bicubic"])
RESIZE_CASES = [
    ("rgb37x29", 64, 50, None),      # up
    ("rgb37x29", 16, 13, None),      # down
    ("rgb37x29", 53, 7, None),       # odd ratios: wider, much shorter
    ("rgb37x29", 11, 61, None),
    ("rgbsmooth37x29", 64, 64, None),
    ("rgbsmooth37x29", 9, 5, None),
    ("rgb37x29", 37, 29, None),      # same size: a copy
    ("rgb37x29", 1, 1, None),        # 1-pixel sides
    ("rgb37x29", 1, 40, None),
    ("rgb37x29", 40, 1, None),
    ("rgb1x17", 9, 33, None),
    ("rgb13x1", 5, 4, None),
    ("rgb2x2", 64, 3, None),
    ("l1x1", 3, 2, None),
    ("l23x41", 64, 64, None),        # L
    ("l23x41", 7, 12, None),
    ("l23x41", 23, 1, None),
    ("rgb37x29", 20, 15, (2.5, 3.25, 30.75, 20.0)),   # a fractional box
    ("rgb37x29", 10, 10, (3, 4, 13, 14)),             # whole pixels, same size: a crop
    ("rgb37x29", 37, 5, (0, 0, 37, 0)),               # zero-height boxes (resize and fill)
    ("rgb37x29", 37, 3, (0, 29, 37, 29)),
    ("rgb37x29", 4, 29, (0, 0, 0, 29)),               # zero-width boxes
    ("rgb37x29", 6, 29, (37, 0, 37, 29)),
    ("rgb37x29", 30, 4, (0, 10, 30, 10)),
    ("l23x41", 5, 41, (23, 0, 23, 41)),
    ("rgb2x2", 2, 7, (0, 0, 2, 0)),                   # fewer rows than the filter's reach
    ("rgb1x17", 1, 4, (0, 17, 1, 17)),
    ("rgb37x29", 64, 50, None, "bicubic"),  # Pillow's default filter, which A1111's fill bars get
    ("rgb37x29", 16, 13, None, "bicubic"),
    ("l23x41", 23, 5, (0, 0, 23, 0), "bicubic"),
    ("rgb37x29", 6, 29, (37, 0, 37, 29), "bicubic"),
    ("rgb2x2", 2, 7, (0, 2, 2, 2), "bicubic"),
]

MODE_SOURCES = ["rgb40x17", "rgb17x40", "l40x17", "l17x40", "rgbsmooth37x29", "rgb2x2"]
MODE_TARGETS = [(32, 32), (48, 16), (16, 48), (40, 24), (24, 40), (40, 17)]
# thin images: crop and resize scales them to 640 or 1365 pixels long first
EXTRA_MODE_CASES = [("rgb3x64", 1, 32, 32), ("l64x3", 1, 48, 16), ("rgb3x64", 2, 32, 32), ("l64x3", 2, 48, 16),
                    ("rgb3x64", 1, 40, 24)]


def a1111_resize(mode, im, width, height):
    """images.resize_image with no upscaler, step by step."""
    if mode == 0:
        return im.resize((width, height), resample=LANCZOS)
    ratio, src_ratio = width / height, im.width / im.height
    if mode == 1:  # scale to cover, centre
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
    else:  # scale to fit, centre
        src_w = width if ratio < src_ratio else im.width * height // im.height
        src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if mode == 2 and ratio < src_ratio:  # bars above and below: the edge rows stretched
        fill = height // 2 - src_h // 2
        res.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
        res.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                  box=(0, fill + src_h))
    elif mode == 2 and ratio > src_ratio:  # bars left and right: the edge columns
        fill = width // 2 - src_w // 2
        res.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
        res.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                  box=(fill + src_w, 0))
    return res


def mode_output(src, mode, w, h):
    out = np.asarray(a1111_resize(mode, pil(src), w, h))
    if src.ndim == 2 and out.ndim == 3:  # an L image pasted on A1111's RGB canvas: three equal channels
        assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 0] == out[:, :, 2]).all()
        out = out[:, :, 0]
    return as_hwc(out)


def mask_blur(mask, bx, by):
    """processing.py: the horizontal then the vertical Gaussian."""
    m = mask.copy()
    if bx > 0:
        m = cv2.GaussianBlur(m, (2 * int(2.5 * bx + 0.5) + 1, 1), bx)
    if by > 0:
        m = cv2.GaussianBlur(m, (1, 2 * int(2.5 * by + 0.5) + 1), by)
    return m


def a1111_fill(image, mask):
    """masking.fill: the unmasked image on transparent black, blurred ever
    less and composited over itself."""
    out = Image.new("RGBA", (image.width, image.height))
    cut = Image.new("RGBa", (image.width, image.height))
    cut.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    cut = cut.convert("RGBa")
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = cut.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8) * 255


def save(path, tensors, cases):
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path,
              metadata={"cases": json.dumps(cases)})
    print(f"{path}: {len(cases)} cases")


def make_resize(src, out):
    tensors, cases = {}, []
    for i, (name, w, h, box, *bicubic) in enumerate(RESIZE_CASES):
        im = pil(src[name])
        res = im.resize((w, h), Image.Resampling.BICUBIC if bicubic else LANCZOS, box=box)
        tensors["src_" + name] = as_hwc(src[name])
        tensors[f"out{i}"] = as_hwc(np.asarray(res))
        cases.append({"src": name, "w": w, "h": h, "box": list(box) if box else None,
                      "filter": "bicubic" if bicubic else "lanczos"})
    save(os.path.join(out, "resize.safetensors"), tensors, cases)


def make_modes(src, out):
    tensors, cases = {}, []
    for name in MODE_SOURCES:
        tensors["src_" + name] = as_hwc(src[name])
        for w, h in MODE_TARGETS:
            for mode in (0, 1, 2):
                tensors[f"out{len(cases)}"] = mode_output(src[name], mode, w, h)
                cases.append({"src": name, "mode": mode, "w": w, "h": h})
    for name, mode, w, h in EXTRA_MODE_CASES:
        tensors["src_" + name] = as_hwc(src[name])
        tensors[f"out{len(cases)}"] = mode_output(src[name], mode, w, h)
        cases.append({"src": name, "mode": mode, "w": w, "h": h})
    save(os.path.join(out, "modes.safetensors"), tensors, cases)


def make_blur(rng, out):
    h, w = 48, 64
    shapes = np.maximum(disc(h, w, 20, 30, 13), np.pad(np.full((10, 12), 255, np.uint8), ((38, 0), (0, 52))))
    masks = {
        "shapes64x48": shapes,  # a disc and a block in the corner, 0/255
        "noise64x48": rng.integers(0, 256, (h, w), dtype=np.uint8),
        "noise5x3": rng.integers(0, 256, (3, 5), dtype=np.uint8),  # far smaller than the kernels
        "noise1x9": rng.integers(0, 256, (9, 1), dtype=np.uint8),  # a 1-pixel side is left alone
        "noise9x1": rng.integers(0, 256, (1, 9), dtype=np.uint8),
        "noise64x4": rng.integers(0, 256, (4, 64), dtype=np.uint8),
    }
    plan = [("shapes64x48", b, b) for b in (1, 4, 8)] + [("noise64x48", b, b) for b in (1, 4, 8)]
    plan += [("shapes64x48", 3, 7), ("noise64x48", 7, 2), ("noise64x48", 0, 5), ("noise64x48", 6, 0)]
    plan += [("noise5x3", 8, 8), ("noise5x3", 1, 2), ("noise1x9", 4, 4), ("noise9x1", 4, 4)]
    plan += [("noise64x4", b, b) for b in range(1, 65)]  # every kernel of A1111's slider
    tensors = {"src_" + k: as_hwc(v) for k, v in masks.items()}
    cases = []
    for i, (name, bx, by) in enumerate(plan):
        tensors[f"out{i}"] = as_hwc(mask_blur(masks[name], bx, by))
        cases.append({"src": name, "bx": bx, "by": by})
    save(os.path.join(out, "blur.safetensors"), tensors, cases)


def make_fill(rng, src, out):
    h, w = 40, 48
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 5, yy * 6, 255 - xx * 4], -1).clip(0, 255).astype(np.uint8)
    image[8:14, 30:40] = (250, 40, 10)
    border = np.zeros((h, w), np.uint8)
    border[:, :9] = 255          # touches the left, top and bottom edges
    border = np.maximum(border, disc(h, w, 22, 30, 8))
    images = {"grad48x40": image, "noise48x40": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
              "rgb2x2": src["rgb2x2"], "rgb13x1": src["rgb13x1"]}
    masks = {
        "border48x40": border,
        "soft48x40": mask_blur(border, 4, 4),                 # blurred: partly masked pixels
        "noise48x40": rng.integers(0, 256, (h, w), dtype=np.uint8),
        "none48x40": np.zeros((h, w), np.uint8),
        "all48x40": np.full((h, w), 255, np.uint8),
        "half2x2": np.array([[255, 0], [128, 0]], np.uint8),
        "ends13x1": np.array([[255] * 3 + [0] * 7 + [255] * 3], np.uint8),
    }
    plan = [("grad48x40", "border48x40"), ("grad48x40", "soft48x40"), ("noise48x40", "border48x40"),
            ("noise48x40", "noise48x40"), ("grad48x40", "none48x40"), ("grad48x40", "all48x40"),
            ("rgb2x2", "half2x2"), ("rgb13x1", "ends13x1")]
    tensors = {"img_" + k: v for k, v in images.items()}
    tensors.update({"mask_" + k: as_hwc(v) for k, v in masks.items()})
    cases = []
    for i, (iname, mname) in enumerate(plan):
        tensors[f"out{i}"] = np.asarray(a1111_fill(pil(images[iname]), pil(masks[mname])))
        cases.append({"image": iname, "mask": mname})
    save(os.path.join(out, "fill.safetensors"), tensors, cases)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures/image_ops")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    src = sources(rng)
    make_resize(src, args.out)
    make_modes(src, args.out)
    make_blur(rng, args.out)
    make_fill(rng, src, args.out)


if __name__ == "__main__":
    main()
