# The README's two commands, for a fresh Debian machine, as root:
#   make demo   install what is needed, then run the main job (aioxdp demo)
#   make test   install what is needed, then ruff, mypy and pytest
# Both are idempotent and print nothing for steps that have nothing to do.
#   make asan   the C helpers built with AddressSanitizer and UBSan (build/asan),
#               and the codec, frame, datapath and fuzz tests run against them
#   make coverage  line coverage: coverage.py for aioxdp/, gcov for _native/
#   make wheel  an sdist and a manylinux wheel in dist/: the wheel carries the
#               BPF objects and vendors libbpf, libxdp and libelf (zlib is a
#               manylinux system library), so a user needs no compiler

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin

APT_PACKAGES := clang llvm libbpf-dev libxdp-dev libelf-dev zlib1g-dev pkg-config \
	gcc make python3 python3-venv python3-dev \
	iproute2 iputils-ping fping nmap nftables tcpdump tshark ethtool dnsutils dnsperf util-linux

# What a rebuild depends on: a change to any of these reinstalls aioxdp,
# which recompiles the BPF programs and the cffi extension.
BUILD_INPUTS := setup.py pyproject.toml aioxdp/_ffi_build.py aioxdp/_bpf_build.py \
	$(wildcard bpf/*.c bpf/*.h aioxdp/_cffi/*.py aioxdp/_native/*.c aioxdp/_native/*.h aioxdp/_cpython/*.c)

.PHONY: demo test asan coverage wheel apt clean

demo: apt $(VENV)/.built
	$(BIN)/aioxdp demo

test: apt $(VENV)/.built
	$(BIN)/ruff check --quiet .
	@mkdir -p .mypy-path/aioxdp && ln -sfn ../../protocols .mypy-path/aioxdp/protocols
	$(BIN)/mypy
	$(BIN)/pytest -q

# The sanitized build is a complete copy of the package in build/asan, put
# first on PYTHONPATH; libasan and libubsan are preloaded into the (plain)
# interpreter; PYTHONSAFEPATH keeps the source tree (and its plain build) off
# sys.path. Leaks are not checked: CPython itself keeps memory at exit.
ASAN_TESTS := tests/test_codecs.py tests/test_frames.py tests/test_frame_states.py \
	tests/test_udp_state.py tests/test_datapath.py tests/test_fuzz.py tests/test_isolation.py \
	tests/test_ipv6.py tests/test_checks6.py tests/test_udp_speedups.py tests/test_ping.py
# tshark under the sanitizers' preload does not start: its tests run in make test
ASAN_SKIP := not tshark
ASAN_ENV := LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	AIOXDP_FUZZ_FRAMES=20000 PYTHONPATH=build/asan PYTHONSAFEPATH=1
asan: apt $(VENV)/.built
	rm -rf build/asan build/asan-tmp
	CC=gcc LDSHARED="gcc -shared -fsanitize=address,undefined" \
	CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1" \
		$(BIN)/python setup.py -q build --build-base build/asan-tmp --build-lib build/asan >/dev/null
	@$(ASAN_ENV) $(BIN)/python -c 'import aioxdp._ffi as m, sys; \
		sys.exit(0 if "build/asan" in m.__file__ else "the sanitized build is not the one imported: " + m.__file__)'
	@for so in build/asan/aioxdp/_ffi*.so build/asan/aioxdp/_udp_speedups*.so; do \
		ldd $$so | grep -q libasan || { echo "$$so is not sanitized"; exit 1; }; done
	$(ASAN_ENV) $(BIN)/pytest -q -p no:cacheprovider -k "$(ASAN_SKIP)" $(ASAN_TESTS)

# Coverage of the C helpers comes from a --coverage build in build/cov (as for
# asan); the Python side from coverage.py over the same run, started before
# pytest loads aioxdp's plugin. Child processes (CLI and example tests) are
# not counted; the as-nobody test is left out (nobody cannot write .gcda files).
coverage: apt $(VENV)/.built
	rm -rf build/cov build/cov-tmp .coverage
	CC=gcc LDSHARED="gcc -shared --coverage" CFLAGS="--coverage -O0 -g" \
		$(BIN)/python setup.py -q build --build-base build/cov-tmp --build-lib build/cov >/dev/null
	-PYTHONPATH=build/cov PYTHONSAFEPATH=1 $(BIN)/coverage run \
		-m pytest -q -p no:cacheprovider -k "not unprivileged" $(PYTEST_ARGS)
	PYTHONPATH=build/cov PYTHONSAFEPATH=1 $(BIN)/coverage report --skip-covered | tail -n 25
	@cd build/cov-tmp && gcov -n -o $$(dirname $$(find . -name xsk_core.o)) \
		$(CURDIR)/aioxdp/_native/*.c | grep -A1 "^File '.*_native"

# The wheel is built from the sdist (so a missing source in the sdist fails
# here), then auditwheel copies in the shared libraries it links and tags it
# with the oldest manylinux policy that its symbols allow.
wheel: apt $(VENV)/.deps
	$(BIN)/pip install -q --disable-pip-version-check $$($(BIN)/python -c 'import tomllib; \
		print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dist"]))')
	rm -rf build/dist dist
	$(BIN)/python -m build --no-isolation --outdir build/dist .
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/auditwheel repair --wheel-dir dist build/dist/*.whl
	cp build/dist/*.tar.gz dist/
	$(BIN)/auditwheel show dist/*.whl
	@ls -l dist

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.deps: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb")); \
		print("\n".join(d["build-system"]["requires"] + d["project"]["dependencies"] \
		+ d["project"]["optional-dependencies"]["test"]))' > $(VENV)/requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -r $(VENV)/requirements.txt
	@touch $@

$(VENV)/.built: $(VENV)/.deps $(BUILD_INPUTS)
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	@touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info aioxdp/_ffi.* aioxdp/bpf/*.o .mypy-path bench/_build
