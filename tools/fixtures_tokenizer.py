"""fixtures_tokenizer.py - reference ids for sdc's CLIP tokenizer.

    tools/.venv/bin/python tools/fixtures_tokenizer.py
        writes tests/fixtures/tokenizer_corpus.json from
        tools/prompt_corpus.json, using transformers' slow CLIPTokenizer
        (with ftfy) built offline from weights/bpe_simple_vocab_16e6.txt.gz
        by tools/clip_vocab.py, once with SD 1.x's pad token
        "<|endoftext|>" and once with SD 2.x's "!".

    tools/.venv/bin/python tools/fixtures_tokenizer.py --c-tables
        regenerates the HTML entity table in src/text/text_clean.c from
        ftfy.chardata.HTML_ENTITIES.

Each fixture entry: {"prompt", "ids_sd1" (77 ids, pad 49407), "ids_sd2"
(77 ids, pad 0), "n_tokens" (SD 1.x token count before truncation, without
BOS/EOS), "n_tokens_sd2" (the same with SD 2.x's tokenizer: "!" is an added
token there, so prompts with "!" can count differently)}.

sdc does not implement ftfy's mojibake repair (fix_encoding); the script
refuses prompts whose result depends on it.
"""

import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import clip_vocab  # noqa: E402

CORPUS = os.path.join(HERE, "prompt_corpus.json")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer_corpus.json")
TEXT_CLEAN_C = os.path.join(ROOT, "src", "text", "text_clean.c")
MAX_LEN = 77


def make_tokenizers():
    import transformers
    from transformers import CLIPTokenizer

    transformers.logging.set_verbosity_error()
    toks = {}
    # CLIPTokenizer reads its files in __init__, so the folder can go after.
    with tempfile.TemporaryDirectory(prefix="sdc_clip_tok_") as tmp:
        for name, pad in (("sd1", "<|endoftext|>"), ("sd2", "!")):
            d = os.path.join(tmp, name)
            clip_vocab.write_hf_tokenizer(d, pad)
            tok = CLIPTokenizer.from_pretrained(d, local_files_only=True)
            assert tok.fix_text is not None, "ftfy is not active in CLIPTokenizer"
            toks[name] = tok
    assert toks["sd1"].pad_token_id == 49407, toks["sd1"].pad_token_id
    assert toks["sd2"].pad_token_id == 0, toks["sd2"].pad_token_id
    return toks


def check_no_mojibake_repair(prompt):
    """sdc skips ftfy's fix_encoding; make sure no prompt relies on it."""
    import ftfy

    for piece in re.split(r"(<\|startoftext\|>|<\|endoftext\|>|!)", prompt):
        if ftfy.fix_text(piece) != ftfy.fix_text(piece, fix_encoding=False):
            raise SystemExit(f"prompt needs ftfy's fix_encoding, which sdc does "
                             f"not implement: {prompt!r}")


def write_fixture():
    with open(CORPUS, encoding="utf-8") as f:
        prompts = json.load(f)
    assert isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)
    if len(set(prompts)) != len(prompts):
        raise SystemExit("prompt_corpus.json has duplicate prompts")
    toks = make_tokenizers()
    out = []
    for p in prompts:
        check_no_mojibake_repair(p)
        entry = {"prompt": p}
        for name in ("sd1", "sd2"):
            tok = toks[name]
            ids = tok(p, padding="max_length", max_length=MAX_LEN,
                      truncation=True)["input_ids"]
            full = tok(p)["input_ids"]
            assert len(ids) == MAX_LEN
            assert full[0] == 49406 and full[-1] == 49407
            entry["ids_" + name] = ids
            entry["n_tokens" if name == "sd1" else "n_tokens_sd2"] = len(full) - 2
        out.append(entry)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i, e in enumerate(out):
            f.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(out) else "\n")
        f.write("]\n")
    size = os.path.getsize(OUT)
    assert size < 1 << 20, f"{OUT} is {size} bytes; keep it under 1 MB"
    print(f"wrote {OUT}: {len(out)} prompts, {size} bytes")


def c_string(data):
    """A C string literal body for UTF-8 bytes, escaping what C needs."""
    out = []
    for ch in data.decode("utf-8"):
        if ch in '"\\?':
            out.append("\\%03o" % ord(ch))
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def write_c_tables():
    import html.entities
    from ftfy.chardata import HTML_ENTITIES

    entries = []
    for name, value in sorted(html.entities.html5.items()):
        if not name.endswith(";"):
            continue
        base = name[:-1]
        if not re.fullmatch(r"[0-9A-Za-z]{1,24}", base):
            continue
        assert HTML_ENTITIES["&" + name] == value
        rec = base.encode()
        v = value.encode("utf-8")
        upper = "&" + base.upper() + ";"
        if (base == base.lower() and upper in HTML_ENTITIES
                and base.upper() + ";" not in html.entities.html5):
            u = HTML_ENTITIES[upper].encode("utf-8")
            rec += b"+" + bytes([65 + len(v)]) + v + bytes([65 + len(u)]) + u
        else:
            rec += b"=" + bytes([65 + len(v)]) + v
        entries.append(rec)
    # every ftfy entity that the pattern can match is covered
    covered = set()
    for name in html.entities.html5:
        if name.endswith(";") and re.fullmatch(r"[0-9A-Za-z]{1,24};", name):
            covered.add("&" + name)
            up = "&" + name.upper()
            if up in HTML_ENTITIES and name == name.lower():
                covered.add(up)
    want = {k for k in HTML_ENTITIES if re.fullmatch(r"&[0-9A-Za-z]{1,24};", k)}
    assert covered == want, sorted(want ^ covered)[:10]

    lines, cur = [], ""
    for rec in entries:
        s = c_string(rec)
        if len(cur) + len(s) > 108:
            lines.append('    "' + cur + '"')
            cur = ""
        cur += s
    if cur:
        lines.append('    "' + cur + '"')
    with open(TEXT_CLEAN_C, encoding="utf-8") as f:
        src = f.read()
    begin, end = "/* BEGIN GENERATED ENTITIES */\n", "/* END GENERATED ENTITIES */"
    a = src.index(begin) + len(begin)
    b = src.index(end)
    src = src[:a] + "\n".join(lines) + "\n" + src[b:]
    with open(TEXT_CLEAN_C, "w", encoding="utf-8") as f:
        f.write(src)
    print(f"wrote {len(entries)} entities ({len(lines)} lines) into {TEXT_CLEAN_C}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--c-tables"]:
        write_c_tables()
    elif not sys.argv[1:]:
        write_fixture()
    else:
        raise SystemExit(__doc__)
