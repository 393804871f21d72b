#!/usr/bin/env python3
"""Reference fixtures for reading init images and masks (src/image/
image_load.c): small PNG and JPEG files and what Pillow makes of them, as
diffusers' load_image and AUTOMATIC1111 read them.

    python tools/fixtures_image_load.py [--out tests/fixtures/image_load]

Writes, for every NAME below, NAME.jpg or NAME.png and
    NAME.rgb.ppm    the RGB Pillow gives: ImageOps.exif_transpose(im)
                    .convert("RGB") (binary PPM, P6)
    NAME.mask.pgm   the mask AUTOMATIC1111's create_binary_mask(round=True)
                    gives for the same transposed image (binary PGM, P5)
and hostile files (no expected pixels; sdc must refuse them): truncated.jpg,
huge_sof.jpg, empty.jpg, not_image.jpg, cmyk.jpg, scans501.jpg (scans500.jpg
has an expected output: it must decode). notes.txt records what Pillow said
about each file (its warnings, and its exception where it refuses one that
sdc reads).

Everything comes from one seeded numpy generator and Pillow's own JPEG
encoder (Pillow 11.0.0's wheel bundles libjpeg-turbo 3.0.4; sdc links the
system's). Hand-made files (16-bit PNGs, short palettes, EXIF blocks Pillow
would not write, a progressive JPEG of 500 or 501 scans) are built here
byte by byte.
"""
import argparse
import io
import os
import re
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, features

SEED = 20240611


# ------------------------------------------------------------------ pictures

def picture(rng, w, h):
    """(h, w, 3) uint8: smooth colour ramps plus noise, so a JPEG has both
    flat areas and detail, and every orientation is told apart."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    img[: h // 4, : w // 4] = (250, 20, 20)  # a red corner marks "top left"
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def jpeg_bytes(im, **kw):
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- EXIF/TIFF

def tiff(entries, endian="<", ifd_at=8, tail=b""):
    """A TIFF block with one IFD. entries: (tag, type, count, 4-byte field)
    with the field already packed, or an int (packed as the type's first
    value, left-aligned as TIFF stores short values)."""
    e = endian
    head = (b"II*\0" if e == "<" else b"MM\0*") + struct.pack(e + "I", ifd_at)
    body = b"\0" * (ifd_at - 8) + struct.pack(e + "H", len(entries))
    for tag, typ, count, field in entries:
        if isinstance(field, int):
            fmt = {3: "H", 4: "I", 8: "h", 9: "i", 6: "b", 1: "B"}[typ]
            field = struct.pack(e + fmt, field).ljust(4, b"\0")
        body += struct.pack(e + "HHI", tag, typ, count) + field
    return head + body + struct.pack(e + "I", 0) + tail


def exif(block):
    return b"Exif\0\0" + block


def with_app1(jpeg, payloads):
    """The JPEG with raw APP1 segments (payloads) inserted right after SOI."""
    segs = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads)
    return jpeg[:2] + segs + jpeg[2:]


# ---------------------------------------------------------------- PNG bytes

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


def png_raw(arr, ctype, depth, plte=None, trns=None):
    """A PNG of arr ((h, w) or (h, w, c) samples) written by hand: 16-bit
    and grey+alpha files Pillow does not write, palettes shorter than the
    indices used."""
    h, w = arr.shape[:2]
    dt = ">u2" if depth == 16 else "u1"
    rows = b"".join(b"\0" + arr[y].astype(dt).tobytes() for y in range(h))
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += png_chunk(b"tRNS", bytes(trns))
    return out + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def png_bytes(im, **kw):
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


# ----------------------------------------------------- a progressive JPEG

def jpeg_marker(code, payload):
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def many_scans(nscans):
    """An 8x8 grey progressive JPEG (SOF2) of nscans valid scans, every
    coefficient zero (so every pixel 128): the DC band and then one AC band
    after another, each a first scan at Al = 13 and refinements down to
    Al = 0, the order libjpeg accepts without a warning (14 scans a band,
    896 in all). Huffman tables of one 1-bit code for symbol 0 (DC: no
    difference; AC: end of band), so every scan's data is one bit, padded."""
    out = b"\xff\xd8"
    out += jpeg_marker(0xDB, b"\x00" + bytes([1] * 64))
    out += jpeg_marker(0xC2, struct.pack(">BHHB", 8, 8, 8, 1) + bytes([1, 0x11, 0]))
    one_code = bytes([1] + [0] * 15) + b"\x00"
    out += jpeg_marker(0xC4, b"\x00" + one_code + b"\x10" + one_code)
    scans = []
    for k in range(64):
        scans.append((k, 0, 13))
        scans += [(k, a, a - 1) for a in range(13, 0, -1)]
    assert nscans <= len(scans)
    for k, ah, al in scans[:nscans]:
        out += jpeg_marker(0xDA, bytes([1, 1, 0x00, k, k, ah << 4 | al])) + b"\x7f"
    return out + b"\xff\xd9"


# ------------------------------------------------- what Pillow makes of it

def binary_mask(im):
    """AUTOMATIC1111's create_binary_mask(image, round=True) (modules/
    images.py): the alpha, thresholded at > 128, for an RGBA image whose
    alpha is not all 255; else the image converted to L."""
    if im.mode == "RGBA" and im.getextrema()[-1] != (255, 255):
        return im.split()[-1].convert("L").point(lambda v: 255 if v > 128 else 0)
    return im.convert("L")


def expect(data, notes, name):
    """Pillow's RGB and mask for a file: exif_transpose, then convert. Where
    exif_transpose raises (an EXIF block Pillow cannot parse), sdc ignores
    the block; the expected output is then the untransposed image, and the
    exception is noted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im = Image.open(io.BytesIO(data))
        im.load()
        try:
            t = ImageOps.exif_transpose(im)
        except Exception as e:  # noqa: BLE001 - any exception is recorded
            notes.append(f"{name}: Pillow's exif_transpose raises {type(e).__name__}: {e}; "
                         "sdc ignores the EXIF block")
            t = im
        rgb, mask = t.convert("RGB"), binary_mask(t)
    for w in caught:
        notes.append(f"{name}: Pillow warns: {w.message}")
    return rgb, mask, im.mode


def refused_by_pillow(data):
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
        return None
    except Exception as e:  # noqa: BLE001
        return re.sub(r" at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")  # no address


# ------------------------------------------------------------------ cases

def cases(rng):
    """(name, extension, bytes) of every file with an expected output."""
    pic = picture(rng, 64, 48)
    rgb = Image.fromarray(pic)
    odd = Image.fromarray(picture(rng, 61, 47))
    small = Image.fromarray(picture(rng, 12, 8))
    out = [
        ("j420", "jpg", jpeg_bytes(odd, quality=90, subsampling=2)),
        ("j444", "jpg", jpeg_bytes(rgb, quality=95, subsampling=0)),
        ("j422", "jpg", jpeg_bytes(Image.fromarray(picture(rng, 40, 30)), quality=85, subsampling=1)),
        ("grey", "jpg", jpeg_bytes(Image.fromarray(picture(rng, 37, 29)[..., 1]), quality=90)),
        ("progressive", "jpg", jpeg_bytes(rgb, quality=90, progressive=True)),
        ("scans500", "jpg", many_scans(500)),
    ]
    # EXIF orientation as Pillow writes it, 6 and 3 at 4:2:0, every other
    # value on a small 4:4:4 picture
    for o in (6, 3):
        ex = Image.Exif()
        ex[0x0112] = o
        out.append((f"exif{o}", "jpg", jpeg_bytes(rgb.crop((0, 0, 48, 32)), quality=90, exif=ex)))
    for o in (2, 4, 5, 7, 8):
        ex = Image.Exif()
        ex[0x0112] = o
        out.append((f"exif{o}", "jpg", jpeg_bytes(small, quality=95, subsampling=0, exif=ex)))
    # EXIF blocks Pillow would not write: how Pillow reads the tag
    base = jpeg_bytes(small, quality=95, subsampling=0)
    exifs = {
        "exif_long6": tiff([(0x0112, 4, 1, 6)]),  # LONG: an int, used
        "exif_be8": tiff([(0x0112, 3, 1, 8)], endian=">"),  # big-endian
        "exif_count2": tiff([(0x0112, 3, 2, struct.pack("<HH", 8, 1))]),  # first value used
        "exif_dup": tiff([(0x0112, 3, 1, 3), (0x0112, 3, 1, 6)]),  # the last one wins
        "exif_rational6": tiff([(0x0112, 5, 1, struct.pack("<I", 26))], tail=struct.pack("<II", 12, 2)),
        "exif_float6": tiff([(0x0112, 11, 1, struct.pack("<f", 6.0))]),
        "exif_ascii6": tiff([(0x0112, 2, 2, b"6\0\0\0")]),  # a string: not used
        "exif_byte6": tiff([(0x0112, 1, 1, 6)]),  # BYTE: bytes, not used
        "exif_value9": tiff([(0x0112, 3, 1, 9)]),  # outside 1-8: ignored
        "exif_value0": tiff([(0x0112, 3, 1, 0)]),
        # a tag whose data lies past the end stops Pillow's IFD reader: the
        # orientation after it is never read
        "exif_after_bad": tiff([(0x010F, 2, 100, struct.pack("<I", 5000)), (0x0112, 3, 1, 6)]),
        # the same tag before it is kept
        "exif_before_bad": tiff([(0x0112, 3, 1, 6), (0x010F, 2, 100, struct.pack("<I", 5000))]),
        # an unknown type is skipped without reading its data
        "exif_badtype": tiff([(0x010F, 99, 100, struct.pack("<I", 5000)), (0x0112, 3, 1, 6)]),
        # the IFD says 3 entries; the block ends after the first
        "exif_short_ifd": tiff([(0x0112, 3, 1, 5)])[:8] + struct.pack("<H", 3) + tiff([(0x0112, 3, 1, 5)])[10:22],
        # the IFD offset points past the end: no tags
        "exif_ifd_past_end": tiff([(0x0112, 3, 1, 6)])[:4] + struct.pack("<I", 4000) + tiff([(0x0112, 3, 1, 6)])[8:],
        # the IFD at offset 20, after padding
        "exif_ifd_at20": tiff([(0x0112, 3, 1, 7)], ifd_at=20),
        # "Exif\0\0" twice: Pillow strips every such prefix
        "exif_double_prefix": b"Exif\0\0" + tiff([(0x0112, 3, 1, 6)]),
        # a broken TIFF header: Pillow raises; sdc ignores the block
        "exif_corrupt": b"XX\x2a\x00\x08\x00\x00\x00" + tiff([(0x0112, 3, 1, 6)])[8:],
        # a block too short for a TIFF header: Pillow raises; ignored
        "exif_tiny": b"II*\0",
    }
    for name, blk in exifs.items():
        out.append((name, "jpg", with_app1(base, [exif(blk)])))
    # two Exif APP1 segments: Pillow appends the second's bytes to the
    # first's, so an IFD offset may point into the second
    blk = tiff([(0x0112, 3, 1, 6)], ifd_at=8)
    out.append(("exif_split", "jpg", with_app1(base, [exif(blk[:8]), exif(blk[8:])])))
    # the first Exif segment's orientation; a later segment is appended
    # after it (and so never read as the IFD)
    out.append(("exif_two", "jpg", with_app1(base, [exif(tiff([(0x0112, 3, 1, 3)])),
                                                    exif(tiff([(0x0112, 3, 1, 6)]))])))
    # PNG eXIf chunk (Pillow: info["exif"], read by exif_transpose)
    ex = Image.Exif()
    ex[0x0112] = 6
    out.append(("png_exif6", "png", png_bytes(rgb.crop((0, 0, 20, 12)), exif=ex)))

    # masks (PNG) and the RGB they give as init images
    alpha = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    alpha[0, :4] = (127, 128, 129, 255)
    rgba = np.dstack([picture(rng, 32, 24), alpha])
    out.append(("mask_rgba_partial", "png", png_bytes(Image.fromarray(rgba, "RGBA"))))
    rgba[..., 3] = 255
    out.append(("mask_rgba_opaque", "png", png_bytes(Image.fromarray(rgba, "RGBA"))))
    out.append(("mask_grey", "png", png_bytes(Image.fromarray(picture(rng, 32, 24)[..., 0], "L"))))
    pal = Image.fromarray(rng.integers(0, 6, (24, 32), dtype=np.uint8), "P")
    pal.putpalette([250, 0, 0, 0, 250, 0, 0, 0, 250, 255, 255, 255, 0, 0, 0, 128, 128, 128])
    pal.info["transparency"] = bytes([0, 255, 128])
    out.append(("mask_palette", "png", png_bytes(pal, transparency=bytes([0, 255, 128]))))
    # a palette of 3 entries whose indices go to 255: Pillow reads the
    # missing entries as black
    idx = rng.integers(0, 256, (8, 16), dtype=np.uint8)
    idx[0, :3] = (0, 1, 2)
    out.append(("palette_short", "png", png_raw(idx, 3, 8, plte=[200, 100, 50, 10, 20, 30, 90, 180, 255],
                                               trns=[0, 200])))
    v16 = rng.integers(0, 65536, (8, 16), dtype=np.uint16)
    v16[0, :6] = (0, 1, 255, 256, 300, 65535)
    a16 = rng.integers(0, 65536, (8, 16), dtype=np.uint16)
    a16[0, :4] = (0x80FF, 0x8100, 0x8000, 0xFFFF)
    out.append(("grey16", "png", png_raw(v16, 0, 16)))  # Pillow: I;16, clamped to 255
    out.append(("la16", "png", png_raw(np.dstack([v16, a16]), 4, 16)))  # Pillow: RGBA
    out.append(("la8", "png", png_raw(np.dstack([v16 >> 8, a16 >> 8]), 4, 8)))  # Pillow: LA
    rgba16 = np.dstack([v16, v16[::-1], v16[:, ::-1], a16])
    out.append(("rgba16", "png", png_raw(rgba16, 6, 16)))
    out.append(("rgb16", "png", png_raw(rgba16[..., :3], 2, 16)))
    a16[:] = 0xFFFF
    out.append(("rgba16_opaque", "png", png_raw(np.dstack([v16, v16[::-1], v16[:, ::-1], a16]), 6, 16)))
    return out


def hostile(rng):
    """(name, bytes) that sdc must refuse."""
    base = jpeg_bytes(Image.fromarray(picture(rng, 32, 24)), quality=90)
    sof = base.index(b"\xff\xc0")
    huge = bytearray(base)
    huge[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    cmyk = Image.fromarray(np.dstack([picture(rng, 16, 8), picture(rng, 16, 8)[..., :1]]), "CMYK")
    return [
        ("truncated", base[: len(base) // 2]),
        ("huge_sof", bytes(huge)),
        ("empty", b""),
        ("not_image", b"this is not a picture\n"),
        ("cmyk", jpeg_bytes(cmyk, quality=90)),
        ("scans501", many_scans(501)),
        ("no_eoi", base[:-2]),
    ]


def write_pnm(path, im):
    with open(path, "wb") as f:
        c = len(im.getbands())
        f.write(b"P6\n" if c == 3 else b"P5\n")
        f.write(b"%d %d\n255\n" % im.size)
        f.write(im.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/image_load")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    notes = [f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}"]
    for name, ext, data in cases(rng):
        with open(os.path.join(args.out, f"{name}.{ext}"), "wb") as f:
            f.write(data)
        rgb, mask, mode = expect(data, notes, name)
        notes.append(f"{name}: Pillow mode {mode}, {rgb.size[0]}x{rgb.size[1]} after exif_transpose")
        write_pnm(os.path.join(args.out, f"{name}.rgb.ppm"), rgb)
        write_pnm(os.path.join(args.out, f"{name}.mask.pgm"), mask)
    for name, data in hostile(rng):
        with open(os.path.join(args.out, f"{name}.jpg"), "wb") as f:
            f.write(data)
        why = refused_by_pillow(data)
        notes.append(f"{name}: Pillow " + (f"refuses it ({why})" if why else "reads it; sdc refuses it"))
    with open(os.path.join(args.out, "notes.txt"), "w") as f:
        f.write("\n".join(notes) + "\n")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
