#!/usr/bin/env python3
"""A real AUTOMATIC1111 API client from PyPI (webuiapi) driving `sdc serve`
with the shipped model: txt2img with seeds and infotexts, progress polled
during a render, interrupt, the model list and a switch to another model,
png-info. Run by `make test-serve-client` (and `make test-full`).

  python3 tools/serve_client_check.py build/sdc
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import webuiapi

MODEL = "weights/sdc-shapes.safetensors"


def fail(msg):
    print(f"serve client check: FAILED: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    sdc = sys.argv[1] if len(sys.argv) > 1 else "build/sdc"
    tmp = tempfile.mkdtemp(prefix="sdc-serve-")
    shutil.copy(MODEL, os.path.join(tmp, "shapes-copy.safetensors"))
    proc = subprocess.Popen([sdc, "serve", "-m", MODEL, "--models-dir", tmp, "--port", "0", "--backend", "cpu",
                             "--api-auth", "me:secret"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        t0 = time.time()
        while port is None and time.time() - t0 < 60:
            line = proc.stderr.readline()
            if not line:
                fail("sdc serve exited before listening")
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        check(port, "no port announced")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        api = webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler a", steps=12)
        api.set_auth("me", "secret")

        # txt2img: two images, their seeds and infotexts
        t = time.time()
        r = api.txt2img(prompt="a red circle", negative_prompt="blurry", seed=5, width=64, height=64,
                        batch_size=2, cfg_scale=7)
        check(len(r.images) == 2 and r.images[0].size == (64, 64), f"images: {len(r.images)}")
        check(r.info["all_seeds"] == [5, 6], f"seeds {r.info['all_seeds']}")
        check(len(r.info["infotexts"]) == 2 and "Seed: 6," in r.info["infotexts"][1], "infotexts")
        check(r.parameters["prompt"] == "a red circle", "parameters")
        print(f"serve client check: txt2img 2 images in {time.time() - t:.2f} s, seeds {r.info['all_seeds']}")

        # png-info of an image it returned
        pi = api.png_info(r.image)
        check("a red circle" in pi.info and "Seed: 5," in pi.info, f"png-info: {pi.info!r}")

        # progress during a long render, then interrupt
        out = {}
        th = threading.Thread(target=lambda: out.setdefault(
            "r", api.txt2img(prompt="a blue square", seed=1, steps=1000, width=32, height=32, n_iter=2)))
        th.start()
        seen = []
        for _ in range(3000):
            p = api.get_progress()
            if p["state"]["sampling_step"] > 0:
                seen.append((p["progress"], p["state"]["sampling_step"], p["state"]["sampling_steps"]))
                if len(seen) >= 2 and seen[-1][0] > seen[0][0]:
                    break
            time.sleep(0.01)
        check(len(seen) >= 2 and seen[-1][0] > seen[0][0], f"progress did not move: {seen}")
        api.interrupt()
        th.join(120)
        check("r" in out and len(out["r"].images) == 1, "interrupt: one image back")
        print(f"serve client check: progress {seen[0][0]:.3f} -> {seen[-1][0]:.3f} "
              f"(step {seen[-1][1]}/{seen[-1][2]}), interrupted with {len(out['r'].images)} image")

        # the models, and a switch
        names = api.util_get_model_names()  # A1111's titles: "file [hash]" once the hash is known
        check(len(names) == 2 and names[0].startswith("sdc-shapes.safetensors [")
              and names[1] == "shapes-copy.safetensors", f"models {names}")
        api.util_set_model("shapes-copy")
        check(api.util_get_current_model().startswith("shapes-copy.safetensors"), api.util_get_current_model())
        r = api.txt2img(prompt="a red circle", seed=5, width=64, height=64)
        check(r.info["sd_model_name"] == "shapes-copy", f"model after the switch: {r.info['sd_model_name']}")
        print(f"serve client check: models {names}, switched to {r.info['sd_model_name']}")

        # a wrong password
        bad = webuiapi.WebUIApi(host="127.0.0.1", port=port)
        bad.set_auth("me", "wrong")
        check(bad.session.get(f"{bad.baseurl}/options").status_code == 401, "a wrong password got in")
        print("serve client check: every check passed")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0:
        fail(f"sdc serve exited with status {proc.returncode} on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
