# sdc - latent diffusion text-to-image in C11 and CUDA.
#   make demo       install missing deps, build, render samples/demo.png with
#                   the shipped model (PROMPT="..." SEED=N to change it)
#   make            build build/sdc (CLI) and build/libsdc.a
#   make eval       score the shipped model on held-out prompts
#   make samples    render samples/contact-sheet.png and samples/compare.png
#   make train      retrain the shipped model (PyTorch venv, ~75 min on 2 cores)
#   make test       install missing deps, build, run the Criterion suite
#   make test-full  also the full-size checks (generates large fixtures first)
#   make sanitize   the suite under AddressSanitizer + UBSan
#   make fixtures   regenerate committed reference fixtures (PyTorch venv)
#   make fixtures-full  full-size fixtures in build/fixtures-full (not committed)
#   make deps       install the Debian packages sdc needs (apt-get as root)
#   make gpu-check  on a GPU machine: build, suite, compute-sanitizer, benchmark
#                   beside diffusers, in one command (make gpu-prep first,
#                   where package registries are reachable)
#   make clean

SHELL   := /bin/bash
BUILD   ?= build
CC      ?= gcc
SAN     ?= 0
# Optimisation flags; the sanitizer build overrides them. No -march: one
# build runs on every x86-64 processor, and the CPU backend's hot kernels
# pick AVX-512 or AVX2 at run time (src/backend/cpu_isa.h), as OpenBLAS
# does. OPT="-O3 -march=native" builds for this machine alone.
OPT     ?= -O3
CFLAGS  += -std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -fopenmp -g \
           -Iinclude -Isrc $(OPT)
# OpenBLAS's OpenMP build shares libgomp's threads with sdc's own loops;
# the pthread build would spin its own threads against them.
MULTIARCH := $(shell $(CC) -print-multiarch)
BLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
# Its own cblas.h, not whichever BLAS the cblas.h alternative points at.
CFLAGS  += -I/usr/include/$(MULTIARCH)/openblas-openmp
LDLIBS  += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lcjson -lutf8proc -lmicrohttpd -ljpeg -lz -lm -fopenmp \
           -lpthread
# The host execution of the CUDA code (kernels/emu/) is C++17.
CXX      ?= g++
CXXFLAGS += -std=c++17 -Wall -Wextra -Werror -g -Iinclude -Isrc -Ikernels \
            -I/usr/include/$(MULTIARCH)/openblas-openmp $(if $(filter 1,$(SAN)),-O1,-O2)

ifeq ($(SAN),1)
  OPT    := -O1
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
  CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
endif
# Everything but the CUDA libraries: what the emulated-device binaries link.
EMU_LDLIBS := $(LDLIBS) -lstdc++

# CUDA: kernels/*.cu are compiled whenever nvcc is found (always on CI) and
# linked into the same binary; sdc falls back to the CPU at run time when no
# device is present. Without nvcc a stub stands in (src/backend/cuda_stub.c).
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(shell command -v nvcc 2>/dev/null || \
               { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS   += -O3 -std=c++17 $(CUDA_ARCH) -Iinclude -Isrc -Ikernels \
             -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings

# src/<layer>/: backend (ops interface, CPU backend, profiler), model (files,
# names, detection, weights), text, nets (text encoder, U-Net, VAE),
# sampling, image; the library's top (sdc.c, pipeline.c) in src/. The CLI
# (src/cli/) is apart; its prompt-list parser is linked into the tests and
# fuzzers too. The shapes analyser lives with eval/.
SRC_HDR  := $(wildcard src/*.h src/*/*.h)
CLI_SRC  := $(wildcard src/cli/*.c)
CLI_HELP := $(BUILD)/src/cli/batch.o
# sdc serve (src/server/) belongs to the application, beside the CLI; the
# tests link it to drive it in-process
SERVER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/server/*.c))
APP_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o) $(SERVER_OBJ)
LIB_SRC  := $(filter-out $(CLI_SRC) $(wildcard src/server/*.c) src/backend/cuda_stub.c,$(wildcard src/*.c src/*/*.c))
CU_SRC   := $(wildcard kernels/*.cu)
ifneq ($(NVCC),)
  LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.o)
  CFLAGS  += -DSDC_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart_static -lrt -ldl \
             -lpthread -lstdc++
else
  LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/src/backend/cuda_stub.o
endif

# The same kernels/*.cu compiled by the host C++ compiler against
# kernels/emu/ (threads as fibers, warp instructions per the PTX ISA, the
# runtime and cuBLAS calls on host memory): libsdc_emu.a, and the CUDA tests
# and the CLI linked with it. Its device exists only with SDC_CUDA_EMU=1.
EMU_SRC  := $(wildcard kernels/emu/*.cc)
EMU_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:kernels/%.cu=$(BUILD)/emu/%.o) \
            $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu/rt/%.o)
EMU_HDR  := $(wildcard kernels/*.h kernels/emu/*.h) $(SRC_HDR)

TEST_SRC := $(wildcard tests/*.c)
ifeq ($(NVCC),) # tests that call the CUDA launchers directly need them linked
  TEST_SRC := $(filter-out tests/test_cuda_typed.c tests/test_cuda_halfops.c,$(TEST_SRC))
endif
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
VENV     := tools/.venv
PY       := $(VENV)/bin/python

.PHONY: all build emu bench-emu bench-sdxl bench-vae-tiled bench-lora test-emu-selftest test test-run test-full test-serve-client sanitize bench fixtures fixtures-full deps clean demo eval samples \
        train fuzz fuzz-one fuzz-build gpu-check gpu-prep
# Default: check/install the Debian packages, then build.
all: deps
	@$(MAKE) --no-print-directory build

build: $(BUILD)/sdc $(BUILD)/libsdc.a

# Debian packages; checks first and installs only what is missing.
deps:
	@sh tools/deps.sh

$(BUILD)/%.o: %.c $(SRC_HDR) $(wildcard include/*.h tests/*.h eval/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The CPU's flash attention (generic vectors): a * b + c fused into one
# multiply-add where the instruction set has it (ISO C's default is off);
# its vectors passed by value between static, inlined functions change no
# ABI anyone sees, which GCC's note on them (-Wpsabi) cannot know.
$(BUILD)/src/backend/backend_cpu_flash.o: CFLAGS += -ffp-contract=fast -Wno-psabi

$(BUILD)/kernels/%.o: kernels/%.cu $(wildcard kernels/*.h kernels/*.cuh) $(SRC_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/libsdc.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/emu/%.o: kernels/%.cu $(EMU_HDR) Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/emu/rt/%.o: kernels/emu/%.cc $(EMU_HDR) Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/libsdc_emu.a: $(EMU_OBJ)
	rm -f $@ && ar rcs $@ $^

# CUDA tests on the emulated device; the CLI with it (SDC_CUDA_EMU=1
# build/sdc-emu txt2img --backend cuda ...), for trying a kernel by hand.
EMU_TESTS := $(addprefix $(BUILD)/tests/,test_cuda.o test_cuda_pipeline.o test_cuda_img2img.o test_cuda_plan.o test_cuda_pad.o \
                                        test_cuda_halfops.o test_cuda_nets.o test_cuda_typed.o test_cuda_preview.o \
                                        cuda_testutil.o testutil.o \
                                        st_write.o test_cuda_vae_tiled.o test_cuda_lora.o lora_cases.o test_cuda_sdxl.o)
$(BUILD)/sdc_tests_emu: $(EMU_TESTS) $(BUILD)/libsdc_emu.a
	$(CC) $(CFLAGS) $^ -o $@ -lcriterion $(EMU_LDLIBS)

$(BUILD)/sdc-emu: $(APP_OBJ) $(BUILD)/libsdc_emu.a
	$(CC) $(CFLAGS) $^ -o $@ $(EMU_LDLIBS)

emu: $(BUILD)/sdc_tests_emu $(BUILD)/sdc-emu

# The emulation's self-test (tests/emu/): kernels with planted bugs, each of
# which must be reported; the out-of-bounds one by AddressSanitizer.
$(BUILD)/emu_selftest: tests/emu/planted.cu $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu/rt/%.o) $(EMU_HDR) Makefile
	$(CXX) $(CXXFLAGS) -x c++ tests/emu/planted.cu -x none $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu/rt/%.o) -o $@ \
	    $(EMU_LDLIBS)

$(BUILD)/emu_selftest_asan: tests/emu/planted.cu $(EMU_SRC) $(EMU_HDR) Makefile
	$(CXX) $(CXXFLAGS) -O1 -fsanitize=address -fno-omit-frame-pointer -x c++ tests/emu/planted.cu -x none \
	    $(EMU_SRC) -o $@ $(EMU_LDLIBS) -fsanitize=address

# ThreadSanitizer: the kernels instrumented, the emulation not (its own
# bookkeeping crosses fibres by design); SDC_EMU_TSAN makes each emulated
# thread a TSan fibre ordered only by barriers, block start and end.
$(BUILD)/emu-tsan/%.o: kernels/emu/%.cc $(EMU_HDR) Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -DSDC_EMU_TSAN=1 -c $< -o $@

$(BUILD)/emu_selftest_tsan: tests/emu/planted.cu $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu-tsan/%.o)
	$(CXX) $(CXXFLAGS) -O1 -fsanitize=thread -x c++ tests/emu/planted.cu -x none \
	    $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu-tsan/%.o) -o $@ $(EMU_LDLIBS) -fsanitize=thread

# Every kernel of kernels/ (not the backend's host code) under ThreadSanitizer
# the same way: a race in one of them fails the self-test. (Criterion cannot
# run under TSan, so this is a plain program.)
EMU_KERNELS := $(filter-out kernels/backend_cuda%.cu kernels/device.cu kernels/dnn.cu,$(CU_SRC))
$(BUILD)/emu_race_check: tests/emu/race_check.cu $(EMU_KERNELS) $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu-tsan/%.o)
	$(CXX) $(CXXFLAGS) -O1 -fsanitize=thread -x c++ tests/emu/race_check.cu $(EMU_KERNELS) -x none \
	    $(EMU_SRC:kernels/emu/%.cc=$(BUILD)/emu-tsan/%.o) -o $@ $(EMU_LDLIBS) -fsanitize=thread

EMU_SELFTEST := $(BUILD)/emu_selftest $(BUILD)/emu_selftest_asan $(BUILD)/emu_selftest_tsan $(BUILD)/emu_race_check

test-emu-selftest: deps
	@$(MAKE) --no-print-directory $(EMU_SELFTEST)
	@sh tests/emu/selftest.sh $(BUILD)

$(BUILD)/sdc: $(APP_OBJ) $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/sdc_tests: $(TEST_OBJ) $(CLI_HELP) $(SERVER_OBJ) $(BUILD)/eval/shapes.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ -lcriterion $(LDLIBS)

$(BUILD)/sdc_bench_sdxl: $(BUILD)/bench/bench_sdxl.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/sdc_bench: $(BUILD)/bench/bench.o $(BUILD)/bench/bench_cuda.o $(BUILD)/bench/bench_ops.o $(BUILD)/bench/bench_runs.o \
                   $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/sdc_eval: $(BUILD)/eval/eval_shapes.o $(BUILD)/eval/shapes.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/sdc_sheet: $(BUILD)/eval/contact_sheet.o $(BUILD)/eval/shapes.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The shipped model (weights/, trained by tools/train_shapes.py).
MODEL  ?= weights/sdc-shapes.safetensors
PROMPT ?= a large yellow star in the center on a blue background
SEED   ?= 1
demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/sdc
	$(BUILD)/sdc txt2img -m $(MODEL) -p "$(PROMPT)" --seed $(SEED) -o samples/demo.png

# Held-out prompts (tools/shapes_dataset.py), 4 seeds each, scored by the
# analyser of eval/shapes.c against the thresholds the model is held to.
eval: deps
	@$(MAKE) --no-print-directory $(BUILD)/sdc_eval
	$(BUILD)/sdc_eval $(MODEL) --seeds 4 --sheet $(BUILD)/eval-sheet.png \
	    --min-bg 95 --min-colour 90 --min-kind 85 --min-position 85

# The pictures the README shows: a contact sheet of samples/prompts.txt and
# a sampler x steps grid.
samples: deps
	@$(MAKE) --no-print-directory $(BUILD)/sdc $(BUILD)/sdc_sheet
	$(BUILD)/sdc_sheet $(MODEL) samples/prompts.txt samples/contact-sheet.png --cols 5 --scale 2
	$(BUILD)/sdc compare -m $(MODEL) -p "a large white star in the center on a red background" --seed 3 \
	    --samplers ddim,euler,euler_a,dpmpp_2m --steps 2,5,10,20,40 -o samples/compare.png \
	    --csv samples/compare.csv
	$(BUILD)/sdc img2img -m $(MODEL) -i samples/demo.png --strength 0.6 --seed 1 -o samples/img2img.png \
	    -p "a large yellow star in the center on a green background"
	$(BUILD)/sdc img2img -m $(MODEL) -i samples/demo.png --mask samples/inpaint-mask.png --mask-blur 4 \
	    --strength 1 --seed 1 -o samples/inpaint.png -p "a large red circle in the center on a blue background"

# Benchmark (not a test): full-size SD 1.5-shaped checkpoint, the CUDA
# backend first where a device is present, then the CPU backend
# (BENCH_ARGS=--cuda-only skips the CPU part; BENCH_ARGS="--sdcpp PATH"
# runs stable-diffusion.cpp's CLI, built by the user, beside sdc txt2img).
BENCH_ARGS ?=
bench: deps fixtures-full bench-emu
	@$(MAKE) --no-print-directory $(BUILD)/sdc_bench $(BUILD)/sdc $(BUILD)/plan_report_emu
	$(BUILD)/sdc_bench build/fixtures-full/full_sd1.safetensors $(BENCH_ARGS)
	@echo
	SDC_CUDA_EMU=1 $(BUILD)/plan_report_emu build/fixtures-full/full_sd1.safetensors 512 1
	@echo
	@$(MAKE) --no-print-directory bench-sdxl

# SDXL on the CPU (bench/bench_sdxl.c) beside diffusers on the same CPU
# (tools/bench_diffusers_sdxl.py), one after the other (each holds its
# fp32 weights, 10-13 GiB): U-Net step with guidance, VAE decode, peak RSS.
# SDXL_BENCH_SIZE=768 where 1024 does not fit.
SDXL_BENCH_SIZE ?= 1024
bench-sdxl: deps fixtures-full $(VENV)/.ok
	@$(MAKE) --no-print-directory $(BUILD)/sdc_bench_sdxl
	@grep -m1 "model name" /proc/cpuinfo; nproc; grep -q avx512f /proc/cpuinfo && echo "AVX-512: yes" || echo "AVX-512: no"
	$(BUILD)/sdc_bench_sdxl build/fixtures-full/full_sdxl.safetensors --size $(SDXL_BENCH_SIZE)
	$(PY) tools/bench_diffusers_sdxl.py --size $(SDXL_BENCH_SIZE)

# Tiled against untiled VAE decode on the CPU (bench/vae_tiled.c): planned
# memory, times, pixel differences; the shipped model's trained VAE on a
# picture, then the full-size SD 1.5-shaped one on a random latent.
$(BUILD)/vae_tiled_bench: $(BUILD)/bench/vae_tiled.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

bench-vae-tiled: deps fixtures-full
	@$(MAKE) --no-print-directory $(BUILD)/vae_tiled_bench
	$(BUILD)/vae_tiled_bench $(MODEL) 1024 --tile 256 --untiled --image samples/contact-sheet.png
	$(BUILD)/vae_tiled_bench build/fixtures-full/full_sd1.safetensors 1024 --untiled

# What a LoRA switch costs beside a checkpoint load (bench/lora_switch.c):
# random rank-32 kohya LoRAs (attention and text encoder; LoCon with the
# convolutions too) on the full-size SD 1.5-shaped checkpoint, CPU backend.
$(BUILD)/lora_switch_bench: $(BUILD)/bench/lora_switch.o $(BUILD)/tests/st_write.o $(BUILD)/libsdc.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

bench-lora: deps fixtures-full
	@$(MAKE) --no-print-directory $(BUILD)/lora_switch_bench
	$(BUILD)/lora_switch_bench build/fixtures-full/full_sd1.safetensors --rank 32 --rounds 3

# The device memory of a render at SD 1.5 shapes from the planned memory's
# dry run alone, on the emulated device (bench/plan_report.c).
$(BUILD)/plan_report_emu: bench/plan_report.c $(BUILD)/libsdc_emu.a $(SRC_HDR)
	$(CC) $(CFLAGS) bench/plan_report.c $(BUILD)/libsdc_emu.a -o $@ $(EMU_LDLIBS)

$(BUILD)/sdc_bench_sdxl_emu: bench/bench_sdxl.c $(BUILD)/libsdc_emu.a $(SRC_HDR)
	$(CC) $(CFLAGS) bench/bench_sdxl.c $(BUILD)/libsdc_emu.a -o $@ $(EMU_LDLIBS)

# The per-op table of the CUDA benchmark (bench/bench_ops.c) at small
# shapes on the emulated device: that every path of it runs (bench-emu).
$(BUILD)/bench_ops_emu: bench/bench_ops.c $(BUILD)/libsdc_emu.a $(SRC_HDR)
	$(CC) $(CFLAGS) -DBENCH_OPS_MAIN bench/bench_ops.c $(BUILD)/libsdc_emu.a -o $@ $(EMU_LDLIBS)

# The same report against a GPU (make gpu-check).
$(BUILD)/plan_report: bench/plan_report.c $(BUILD)/libsdc.a $(SRC_HDR)
	$(CC) $(CFLAGS) bench/plan_report.c $(BUILD)/libsdc.a -o $@ $(LDLIBS)

# On a GPU machine, everything in one command (tools/gpu_check.sh: build for
# its GPU, the suite at SD shapes, compute-sanitizer, the CUDA benchmark
# with the cuBLAS column, diffusers beside it), into build/gpu-check/; on a
# machine without a GPU it says so and stops. make gpu-prep fetches here
# what a GPU machine without package registries lacks, into .gpu/.
gpu-check:
	bash tools/gpu_check.sh build/gpu-check

gpu-prep:
	sh tools/gpu_prep.sh

# The emulated device's counters per kernel for one step of the tiny model
# (switches, mma, ldmatrix wavefronts, cp.async bytes, and the H100 time
# the mma and cp.async counts imply): a kernel's design judged without a GPU.
bench-emu: deps
	@$(MAKE) --no-print-directory $(BUILD)/sdc-emu
	@echo "bench-emu: one CFG step of the tiny test model at 32x32 on the emulated device ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
	@SDC_CUDA_EMU=1 SDC_CUDA_EMU_PROFILE=1 $(BUILD)/sdc-emu txt2img --backend cuda -m tests/fixtures/tiny_sd1.safetensors \
	    -p "a red circle" -W 32 -H 32 --steps 1 --seed 1 -o $(BUILD)/bench-emu.png 2>&1 | grep -v '^sdc: step'
	@$(MAKE) --no-print-directory $(BUILD)/bench_ops_emu
	@echo "bench-emu: the per-op table's paths at small shapes (the emulator's times, not a GPU's)"
	@$(BUILD)/bench_ops_emu
	@$(MAKE) --no-print-directory $(BUILD)/sdc_bench_sdxl_emu
	@echo "bench-emu: the SDXL benchmark's CUDA path on the tiny SDXL model at 64x64 (the emulator's times)"
	@SDC_CUDA_EMU=1 $(BUILD)/sdc_bench_sdxl_emu tests/fixtures/tiny_sdxl.safetensors --size 64 --backend cuda

# The suite; tests read fixtures relative to the repository root.
test: deps
	@$(MAKE) --no-print-directory test-run

test-run: $(BUILD)/sdc $(BUILD)/sdc_tests $(BUILD)/sdc_tests_emu $(EMU_SELFTEST)
	$(BUILD)/sdc_tests --jobs 2
	sh tests/emu/selftest.sh $(BUILD)
	SDC_CUDA_EMU=1 $(BUILD)/sdc_tests_emu --jobs 2

# Full-size checks: large random checkpoints generated on demand.
test-full: deps fixtures-full
	@$(MAKE) --no-print-directory build $(BUILD)/sdc_tests test-emu-selftest
	SDC_TEST_FULL=1 $(BUILD)/sdc_tests --jobs 1
	@$(MAKE) --no-print-directory test-serve-client

# sdc serve driven by a real AUTOMATIC1111 API client from PyPI (webuiapi,
# in the fixtures venv) with the shipped model (tools/serve_client_check.py)
test-serve-client: deps $(VENV)/.ok
	@$(MAKE) --no-print-directory $(BUILD)/sdc
	$(PY) tools/serve_client_check.py $(BUILD)/sdc

# AddressSanitizer + UBSan build of the same suite, in its own build dir.
# Criterion does not fail a test that leaks, so the log is checked as well.
sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-san SAN=1 build-san/sdc build-san/sdc_tests build-san/sdc_tests_emu
	@set -o pipefail; export ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 \
	    LSAN_OPTIONS=suppressions=tests/lsan.supp; \
	    { build-san/sdc_tests --jobs 2 && SDC_CUDA_EMU=1 build-san/sdc_tests_emu --jobs 2; } 2>&1 \
	    | tee build-san/sanitize.log
	@! grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" build-san/sanitize.log \
	    || { echo "sanitize: sanitizer reports above"; exit 1; }

# libFuzzer targets (fuzz/fuzz_*.c, one per untrusted input) under ASan +
# UBSan, built with clang in their own build dir (the library without CUDA).
# Each runs FUZZ_SECONDS from the repository root (targets read fixtures by
# relative path), its corpus in build-fuzz/corpus/<target>/ seeded from the
# fixtures (fuzz/seed.sh). A crash, a hang (> 10 s per input), a leak or an
# input over the memory limit fails the run; the input is kept in
# build-fuzz/artifacts/<target>/ (fuzz/run.sh prints how to replay it).
#   make fuzz FUZZ_SECONDS=300        every target, 300 s each
#   make fuzz-one FUZZ_TARGET=png     one target
FUZZ_SECONDS ?= 60
FUZZ_TARGET  ?= tokenizer
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CC      ?= clang
# -Wno-pass-failed: at -O1 clang does not vectorize, and says so for every
# `omp simd` loop (backend_cpu*.c); a remark about speed, not a defect.
ifeq ($(FUZZ),1)
  CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -Wno-pass-failed
  LDLIBS += -fsanitize=address,undefined
endif

fuzz:
	@sh tools/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-one:
	@sh tools/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build FUZZ_TARGETS=$(FUZZ_TARGET)
	@sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGET)

fuzz-build:
	@$(MAKE) --no-print-directory FUZZ=1 BUILD=build-fuzz CC=$(FUZZ_CC) NVCC= OPT=-O1 \
	    $(FUZZ_TARGETS:%=build-fuzz/fuzz/fuzz_%)

# sdc serve's handlers with the job queue stubbed (the target defines it)
FUZZ_SDAPI_OBJ := $(patsubst %,build-fuzz/src/server/%.o,http sdapi sdapi_txt2img openai web base64)
build-fuzz/fuzz/fuzz_sdapi: fuzz/fuzz_sdapi.c fuzz/fuzz_util.h $(FUZZ_SDAPI_OBJ) build-fuzz/src/cli/batch.o \
                            build-fuzz/libsdc.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(FUZZ_SDAPI_OBJ) build-fuzz/src/cli/batch.o build-fuzz/libsdc.a -o $@ \
	    $(LDLIBS)

build-fuzz/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h build-fuzz/src/cli/batch.o build-fuzz/libsdc.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< build-fuzz/src/cli/batch.o build-fuzz/libsdc.a -o $@ $(LDLIBS)

$(VENV)/.ok: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tools/requirements.txt
	touch $@

# Committed fixtures (small); needs the PyTorch reference stack.
fixtures: $(VENV)/.ok
	$(PY) tools/make_fixtures.py --out tests/fixtures
	$(PY) tools/fixtures_tokenizer.py
	$(PY) tools/fixtures_rng.py
	$(PY) tools/fixtures_scheduler.py
	$(PY) tools/fixtures_prompts.py
	$(PY) tools/fixtures_shapes.py
	$(PY) tools/fixtures_img2img.py
	$(PY) tools/fixtures_image_ops.py
	$(PY) tools/fixtures_image_load.py
	$(PY) tools/fixtures_preview.py
	$(PY) tools/fixtures_vae_tiled.py
	$(PY) tools/fixtures_lora.py
	$(PY) tools/fixtures_sdxl.py
	$(PY) tools/fixtures_sdxl_img2img.py
	$(PY) tools/fixtures_lora_sdxl.py

# Retrain the shipped model from scratch (74 minutes on 2 CPU cores: the
# decoder's rounds run beside the U-Net; fixed seeds and thread counts, so
# the same kind of CPU gives the same file). TRAIN_ARGS
# passes options on, e.g. TRAIN_ARGS="--device cuda --workers 8" on a GPU.
TRAIN_ARGS ?=
train: $(VENV)/.ok
	$(PY) tools/train_shapes.py --out $(MODEL) $(TRAIN_ARGS)

fixtures-full: build/fixtures-full/.ok build/fixtures-full/full_sdxl.safetensors

build/fixtures-full/full_sdxl.safetensors: tools/fixtures_sdxl_full.py tools/sdc_layout.py | $(VENV)/.ok
	$(PY) tools/fixtures_sdxl_full.py --out build/fixtures-full

build/fixtures-full/.ok: tools/make_fixtures.py tools/sdc_layout.py | $(VENV)/.ok
	$(PY) tools/make_fixtures.py --full --out build/fixtures-full
	touch $@

clean:
	rm -rf build build-san
