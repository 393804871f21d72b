"""fixtures_prompts.py - reference fragments and chunks for sdc's prompt parser.

    tools/.venv/bin/python tools/fixtures_prompts.py
        writes tests/fixtures/prompt_syntax.json from
        tools/prompt_syntax_corpus.json.

A reference for AUTOMATIC1111's emphasis syntax and chunking
(stable-diffusion-webui: modules/prompt_parser.py parse_prompt_attention,
modules/sd_hijack_clip.py tokenize_line / next_chunk / process_tokens),
reimplemented here with the same regular expressions and the same
arithmetic, without textual-inversion embeddings, with the default options
(emphasis "Original", comma_padding_backtrack 20). The token ids of each
fragment come from transformers' slow CLIPTokenizer built offline by
tools/clip_vocab.py with SD 1.x's configuration (no special "!"), called as
A1111 calls it: tokenizer(texts, truncation=False, add_special_tokens=False).

Fixture layout: {"chunk_length": 75, "comma_backtrack": 20, "prompts": [E]}
where each E is
  {"prompt", "error": true}                  (A1111 raises: float("1.2.3"))
or
  {"prompt",
   "fragments": [[text, weight], ...]   weight as repr() of the Python float,
                                        so that strtod gives it back exactly
                                        ("inf" and "nan" included),
   "ids_sd1": [[77 ids], ...]            pad 49407 (SD 1.x),
   "ids_sd2": [[77 ids], ...]            pad 0 (SD 2.x: ids after the chunk's
                                        first EOS become 0),
   "weights": [null | [77 numbers], ...] float32 multipliers stored as the
                                        exact double of the float32 (null: all
                                        1.0); "inf", "-inf", "nan" as strings}
"""

import json
import math
import os
import re
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import clip_vocab  # noqa: E402

CORPUS = os.path.join(HERE, "prompt_syntax_corpus.json")
OUT = os.path.join(ROOT, "tests", "fixtures", "prompt_syntax.json")

CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20
ID_START, ID_END = 49406, 49407

# The token regex of parse_prompt_attention, one alternative per line, in
# A1111's order: the escapes \( \) \[ \] \\, a lone backslash, the two
# opening brackets, a weight closing a round bracket, the two closing
# brackets, a run of plain text, a lone colon.
ATTENTION = re.compile(r"""
\\\( | \\\) | \\\[ | \\\] | \\\\ | \\
| \( | \[
| :\s*([+-]?[.\d]+)\s*\)
| \) | \]
| [^\\()\[\]:]+
| :
""", re.X)

BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_attention(prompt):
    """[[text, weight], ...] as parse_prompt_attention returns it."""
    out = []
    opened_round, opened_square = [], []

    def scale_from(first, factor):
        for item in out[first:]:
            item[1] *= factor

    for m in ATTENTION.finditer(prompt):
        tok, number = m.group(0), m.group(1)
        if tok[0] == "\\":
            out.append([tok[1:], 1.0])
        elif tok == "(":
            opened_round.append(len(out))
        elif tok == "[":
            opened_square.append(len(out))
        elif number is not None and opened_round:
            scale_from(opened_round.pop(), float(number))
        elif tok == ")" and opened_round:
            scale_from(opened_round.pop(), 1.1)
        elif tok == "]" and opened_square:
            scale_from(opened_square.pop(), 1 / 1.1)
        else:
            for k, piece in enumerate(BREAK.split(tok)):
                if k:
                    out.append(["BREAK", -1])
                out.append([piece, 1.0])
    for first in opened_round:
        scale_from(first, 1.1)
    for first in opened_square:
        scale_from(first, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged = [out[0]]
    for item in out[1:]:
        if merged[-1][1] == item[1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def tokenize_line(fragments, ids_of, comma):
    """tokenize_line's chunks: (ids, multipliers) lists of 77, EOS padded."""
    chunks = []
    cur_ids, cur_w = [], []
    last_comma = -1

    def close_chunk():
        nonlocal cur_ids, cur_w, last_comma
        pad = CHUNK_LENGTH - len(cur_ids)
        ids = [ID_START] + cur_ids + [ID_END] * pad + [ID_END]
        w = [1.0] + cur_w + [1.0] * pad + [1.0]
        chunks.append((ids, w))
        cur_ids, cur_w, last_comma = [], [], -1

    for (text, weight), ids in zip(fragments, ids_of):
        if text == "BREAK" and weight == -1:
            close_chunk()
            continue
        for t in ids:
            if t == comma:
                last_comma = len(cur_ids)
            elif (len(cur_ids) == CHUNK_LENGTH and last_comma != -1
                  and len(cur_ids) - last_comma <= COMMA_BACKTRACK):
                cut = last_comma + 1
                moved_ids, moved_w = cur_ids[cut:], cur_w[cut:]
                cur_ids, cur_w = cur_ids[:cut], cur_w[:cut]
                close_chunk()
                cur_ids, cur_w = moved_ids, moved_w
            if len(cur_ids) == CHUNK_LENGTH:
                close_chunk()
            cur_ids.append(t)
            cur_w.append(weight)
    if cur_ids or not chunks:
        close_chunk()
    return chunks


def pad_sd2(ids, pad_id=0):
    """process_tokens for id_end != id_pad: pad after the first EOS."""
    first = ids.index(ID_END)
    return ids[:first + 1] + [pad_id] * (len(ids) - first - 1)


def f32_json(w):
    v = float(np.float32(w))
    return v if math.isfinite(v) else repr(v)


def make_tokenizer():
    import transformers
    from transformers import CLIPTokenizer

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="sdc_clip_tok_") as tmp:
        clip_vocab.write_hf_tokenizer(tmp, "<|endoftext|>")
        tok = CLIPTokenizer.from_pretrained(tmp, local_files_only=True)
    assert tok.fix_text is not None, "ftfy is not active in CLIPTokenizer"
    return tok


def self_check():
    """The doctests of A1111's parse_prompt_attention."""
    assert parse_attention("normal text") == [["normal text", 1.0]]
    assert parse_attention("an (important) word") == [
        ["an ", 1.0], ["important", 1.1], [" word", 1.0]]
    assert parse_attention("(unbalanced") == [["unbalanced", 1.1]]
    assert parse_attention("\\(literal\\]") == [["(literal]", 1.0]]
    assert parse_attention("(unnecessary)(parens)") == [["unnecessaryparens", 1.1]]
    assert parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).") == [
        ["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0],
        [" a ", 1.1], ["hill", 0.55], [", sun, ", 1.1], ["sky", 1.4641000000000006],
        [".", 1.1]]


def main():
    self_check()
    with open(CORPUS, encoding="utf-8") as f:
        prompts = json.load(f)
    assert isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)
    if len(set(prompts)) != len(prompts):
        raise SystemExit("prompt_syntax_corpus.json has duplicate prompts")
    tok = make_tokenizer()
    comma = tok.get_vocab()[",</w>"]
    entries, n_chunks = [], {}
    for p in prompts:
        try:
            frags = parse_attention(p)
        except ValueError:
            entries.append({"prompt": p, "error": True})
            continue
        ids_of = tok([t for t, _ in frags], truncation=False,
                     add_special_tokens=False)["input_ids"]
        chunks = tokenize_line(frags, ids_of, comma)
        n_chunks[len(chunks)] = n_chunks.get(len(chunks), 0) + 1
        entries.append({
            "prompt": p,
            "fragments": [[t, repr(float(w))] for t, w in frags],
            "ids_sd1": [ids for ids, _ in chunks],
            "ids_sd2": [pad_sd2(ids) for ids, _ in chunks],
            "weights": [None if all(x == 1.0 for x in w) else [f32_json(x) for x in w]
                        for _, w in chunks],
        })
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"chunk_length":%d,"comma_backtrack":%d,"prompts":[\n'
                % (CHUNK_LENGTH, COMMA_BACKTRACK))
        f.write(",\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":"))
                           for e in entries))
        f.write("\n]}\n")
    size = os.path.getsize(OUT)
    assert size < 1 << 20, f"{OUT} is {size} bytes; keep it under 1 MB"
    errors = sum(1 for e in entries if e.get("error"))
    print(f"wrote {OUT}: {len(entries)} prompts ({errors} that A1111 rejects), "
          f"chunk counts {dict(sorted(n_chunks.items()))}, {size} bytes")


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit(__doc__)
    main()
