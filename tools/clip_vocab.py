"""clip_vocab.py - build a transformers CLIPTokenizer folder offline.

write_hf_tokenizer(out_dir, pad_token) turns OpenAI's
weights/bpe_simple_vocab_16e6.txt.gz into vocab.json + merges.txt (plus
tokenizer_config.json and special_tokens_map.json) exactly the way the
original CLIP tokenizer builds its vocabulary:

  * the 256 byte characters of bytes_to_unicode(), in its order,
  * the same 256 characters with "</w>" appended,
  * one entry per merge (lines 1..48894 of the BPE file, joined),
  * "<|startoftext|>" (49406) and "<|endoftext|>" (49407).

so that CLIPTokenizer.from_pretrained(out_dir) works without a network.
SD 1.x uses pad_token "<|endoftext|>" (id 49407); SD 2.x uses "!" (id 0).
The config files follow the ones shipped in the Stable Diffusion repos'
tokenizer/ folders.
"""

import gzip
import json
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPE_PATH = os.path.join(REPO_ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz")

# 49152 - 256 - 2: the number of merges CLIP uses.
N_MERGES = 48894


def bytes_to_unicode():
    """CLIP's reversible byte -> printable character table, in CLIP order."""
    bs = (list(range(ord("!"), ord("~") + 1))
          + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_merges(bpe_path=BPE_PATH):
    """The merge pairs CLIP uses, as a list of (left, right) tuples."""
    with gzip.open(bpe_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    for i, m in enumerate(merges):
        if len(m) != 2:
            raise ValueError(f"{bpe_path}: line {i + 2}: expected two symbols")
    return merges


def build_vocab(merges):
    """The token -> id dictionary of the original CLIP tokenizer."""
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}


def _added(content):
    return {"content": content, "lstrip": False,
            "normalized": True, "rstrip": False, "single_word": False}


def write_hf_tokenizer(out_dir, pad_token="<|endoftext|>", bpe_path=BPE_PATH):
    """Write vocab.json, merges.txt, tokenizer_config.json and
    special_tokens_map.json for CLIPTokenizer into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    merges = read_merges(bpe_path)
    vocab = build_vocab(merges)
    assert len(vocab) == 49408, len(vocab)
    if pad_token not in vocab:
        raise ValueError(f"pad token {pad_token!r} is not in the vocabulary")

    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")

    special = {
        "bos_token": _added("<|startoftext|>"),
        "eos_token": _added("<|endoftext|>"),
        "pad_token": pad_token,
        "unk_token": _added("<|endoftext|>"),
    }
    config = dict(special)
    config.update({
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "tokenizer_class": "CLIPTokenizer",
    })
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w",
              encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w",
              encoding="utf-8") as f:
        json.dump(special, f, indent=2, sort_keys=True)
    return out_dir


if __name__ == "__main__":
    import sys
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: clip_vocab.py OUT_DIR [PAD_TOKEN]")
    write_hf_tokenizer(sys.argv[1], *(sys.argv[2:]))
