#!/usr/bin/env python3
"""Regenerate the committed fuzz seeds in fuzz/seeds/ (run from the
repository root: python3 fuzz/seeds/make_seeds.py). They are small on
purpose (a few KB each): the fixtures seed the rest at `make fuzz` time
(fuzz/seed.sh).

  tokenizer/   cut-down CLIP tokenizers for fuzz_tokenizer: vocab.json, the
               separator line, merges.txt. The 512 byte pieces keep CLIP's
               ids, the first N merges of CLIP's BPE file follow (ids 512..),
               then <|startoftext|> and <|endoftext|>; variants with and
               without the "#version" header line, with CRLF line ends.
  png/         tiny PNGs for fuzz_png: every colour type, 1/8/16-bit,
               interlaced, with tEXt, zTXt and iTXt (plain and compressed)
               "parameters" chunks; a tiny JPEG (cc + stb_image_write), which
               sdc_image_read_rgb decodes with libjpeg-turbo.
  batch_lines/ prompt lists using every key in the three line formats.
"""
import gzip
import json
import os
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n%%merges%%\n"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tokenizer_seeds():
    out = os.path.join(HERE, "tokenizer")
    os.makedirs(out, exist_ok=True)
    lines = gzip.open("weights/bpe_simple_vocab_16e6.txt.gz", "rt", encoding="utf-8").read().split("\n")
    merges_all = [tuple(l.split()) for l in lines[1:49152 - 256 - 2 + 1]]
    syms = bytes_to_unicode()
    for name, n_merges, header, crlf in [("clip300", 300, True, False),
                                         ("clip60_noheader", 60, False, False),
                                         ("clip120_crlf", 120, True, True)]:
        vocab = syms + [s + "</w>" for s in syms]
        merges = merges_all[:n_merges]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        v = json.dumps({p: i for i, p in enumerate(vocab)}, ensure_ascii=False).encode()
        nl = "\r\n" if crlf else "\n"
        m = (("#version: 0.2" + nl) if header else "") + nl.join(" ".join(x) for x in merges) + nl
        if not header:  # transformers always drops the first line
            m = "i n" + nl + m
        with open(os.path.join(out, name), "wb") as f:
            f.write(v + SEP + m.encode())


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png(w, h, depth, color, rows, interlace=0, extra=b"", plte=None):
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    raw = b"".join(b"\x00" + r for r in rows)
    body = extra + (chunk(b"PLTE", plte) if plte else b"")
    return sig + ihdr + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_seeds():
    out = os.path.join(HERE, "png")
    os.makedirs(out, exist_ok=True)
    params = "a red circle\nNegative prompt: blurry\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 4x4"
    text = chunk(b"tEXt", b"parameters\x00" + params.encode("latin-1"))
    ztxt = chunk(b"zTXt", b"parameters\x00\x00" + zlib.compress(params.encode("latin-1")))
    utf = "東京 😀 (red:1.2)\nSteps: 5"
    itxt = chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + utf.encode())
    itxz = chunk(b"iTXt", b"parameters\x00\x01\x00en\x00parameters\x00" + zlib.compress(utf.encode()))
    seeds = {
        "rgb8_text.png": png(4, 4, 8, 2, [bytes(range(i * 12, i * 12 + 12)) for i in range(4)], extra=text),
        "grey1_ztxt.png": png(3, 3, 1, 0, [b"\xa0", b"\x40", b"\xe0"], extra=ztxt),
        "palette8_itxt.png": png(2, 2, 8, 3, [b"\x00\x01", b"\x02\x00"], extra=itxt,
                                 plte=b"\xff\x00\x00\x00\xff\x00\x00\x00\xff"),
        "rgba16_itxt_z.png": png(2, 2, 16, 6, [bytes(range(16)), bytes(range(16, 32))], extra=itxz),
        "ga8_interlaced.png": None,
        "grey16.png": png(2, 3, 16, 0, [b"\x12\x34\xff\xff", b"\x00\x00\x80\x00", b"\x01\x02\x03\x04"]),
    }
    # Adam7 for 5x5 grey+alpha: the seven passes' sub-images, each row filtered
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs = range(x0, 5, dx)
        ys = range(y0, 5, dy)
        if not xs or not ys:
            continue
        for y in ys:
            raw += b"\x00" + b"".join(bytes([(x * 50 + y) & 255, 255 - x]) for x in xs)
    seeds["ga8_interlaced.png"] = (b"\x89PNG\r\n\x1a\n" +
                                   chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 5, 8, 4, 0, 0, 1)) +
                                   chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    # a 8x8 JPEG with stb_image_write (the header libstb-dev installs)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "j.c")
        with open(src, "w") as f:
            f.write('#define STB_IMAGE_WRITE_IMPLEMENTATION\n#include <stb/stb_image_write.h>\n'
                    'int main(int c, char **v) { unsigned char p[8 * 8 * 3];\n'
                    '  for (int i = 0; i < 8 * 8 * 3; i++) p[i] = (unsigned char)(i * 7);\n'
                    '  return !stbi_write_jpg(v[1], 8, 8, 3, p, 50); }\n')
        exe = os.path.join(tmp, "j")
        subprocess.check_call(["cc", "-w", src, "-o", exe, "-lm"])
        subprocess.check_call([exe, os.path.join(out, "tiny.jpg")])


def batch_seeds():
    out = os.path.join(HERE, "batch_lines")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "all_keys.txt"), "w") as f:
        f.write('\ufeff# every key, three formats\n'
                'a plain prompt, (red:1.2) [car]\n'
                '--prompt "a \\"quoted\\" cat" with more words --negative_prompt \'blurry, dark\' '
                '--seed 42 --steps 20 --cfg_scale 7.5 --sampler_name "Euler a" --width 512 '
                '--height 768 --batch_size 2 --n_iter 3 --outpath_samples x --restore_faces false '
                '--tiling false\n'
                '{"prompt": "json \\u00e9 cat", "negative_prompt": "", "seed": 18446744073709551615, '
                '"steps": 1000, "cfg_scale": -1.5e2, "sampler_name": "DPM++ 2M Karras", "width": 0, '
                '"height": 64, "batch_size": 1, "n_iter": 1, "do_not_save_grid": true}\n'
                '{"prompt": "seed -1", "seed": -1, "sampler_name": "k_dpmpp_2m_ka"}\n'
                '--prompt x --styles y\n'
                '{"prompt": 3}\n'
                '   \t \n'
                '--prompt \'unterminated\n'
                'tail without newline')


if __name__ == "__main__":
    tokenizer_seeds()
    png_seeds()
    batch_seeds()
