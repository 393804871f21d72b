#!/bin/sh
# fuzz/seed.sh TARGET CORPUS_DIR - put the seed inputs for one fuzz target
# into its corpus folder (from the repository root; existing files are kept,
# so a corpus grown by earlier runs stays). Seeds come from the fixtures and
# from the small committed files in fuzz/seeds/ (fuzz/seeds/make_seeds.py).
set -eu
t=$1
dir=$2
mkdir -p "$dir"

put() { # put NAME < data
    [ -e "$dir/seed-$1" ] || cat > "$dir/seed-$1"
}

# The first 8 + N bytes of a safetensors file: the length and the header.
header() {
    n=$(od -An -t u8 -N8 --endian=little "$1" | tr -d ' ')
    head -c $((8 + n)) "$1"
}

# Each non-empty line of a file as one seed.
lines() {
    base=$(basename "$1" .txt)
    awk -v d="$dir/seed-line-$base-" 'NF && !/^#/ {
        f = sprintf("%s%04d", d, NR); printf "%s\n", $0 > f; close(f) }' "$1"
}

case "$t" in
safetensors)
    for f in tests/fixtures/*_ref.safetensors; do put "$(basename "$f")" < "$f"; done
    for f in tests/fixtures/tiny_sd1.safetensors tests/fixtures/tiny_sd2.safetensors; do
        header "$f" | put "header-$(basename "$f")"
    done ;;
lora)
    for f in tests/fixtures/lora/*.safetensors; do put "$(basename "$f")" < "$f"; done ;;
model_single | model_load)
    for f in tests/fixtures/tiny_sd1.safetensors tests/fixtures/tiny_sd2.safetensors \
             tests/fixtures/tiny_sdxl.safetensors weights/sdc-shapes.safetensors; do
        header "$f" | put "header-$(basename "$f")"
    done ;;
model_diffusers)
    # first byte: folder (byte / 5 % 2) and file (byte % 5), as the target reads it
    d=0
    for fx in tiny_sd1_diffusers tiny_sd2_diffusers; do
        k=0
        for j in unet/config.json vae/config.json text_encoder/config.json \
                 scheduler/scheduler_config.json model_index.json; do
            b=$((d * 5 + k))
            { printf "\\$(printf '%03o' "$b")"; cat "tests/fixtures/$fx/$j"; } |
                put "$fx-$(echo "$j" | tr / _)"
            k=$((k + 1))
        done
        d=$((d + 1))
    done ;;
tokenizer)
    for f in fuzz/seeds/tokenizer/*; do put "$(basename "$f")" < "$f"; done ;;
prompt)
    # one file per prompt of the A1111 syntax fixture, and the sample prompts
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
for i, p in enumerate(json.load(open("tests/fixtures/prompt_syntax.json"))["prompts"]):
    path = os.path.join(d, "seed-syntax-%03d" % i)
    if not os.path.exists(path):
        open(path, "wb").write(p["prompt"].encode())
PY
    elif command -v jq >/dev/null 2>&1; then
        jq -r '.prompts[].prompt | @base64' tests/fixtures/prompt_syntax.json |
            awk '{ print NR, $0 }' | while read -r i b; do
                echo "$b" | base64 -d | put "syntax-$i"
            done
    else
        echo "seed: no python3 or jq: prompt seeds from samples/prompts.txt only" >&2
    fi
    lines samples/prompts.txt ;;
batch_lines)
    for f in tests/fixtures/batch/*.txt fuzz/seeds/batch_lines/*; do
        put "$(basename "$f")" < "$f"
        lines "$f"
    done
    put prompts.txt < samples/prompts.txt ;;
sdapi)
    for f in fuzz/seeds/sdapi/*; do put "$(basename "$f")" < "$f"; done ;;
png)
    put demo.png < samples/demo.png
    for f in fuzz/seeds/png/*; do put "$(basename "$f")" < "$f"; done ;;
image)
    for f in tests/fixtures/image_load/*.jpg tests/fixtures/image_load/*.png \
             fuzz/seeds/png/*; do
        put "$(basename "$f")" < "$f"
    done ;;
*)
    echo "seed: unknown target '$t'" >&2
    exit 2 ;;
esac
