# turn: `make demo` runs the C example with competing processes,
# `make test` runs every test. Both install what they need when run as root
# on Debian (redis-server, a C compiler; for the tests also g++ and Python's
# venv, whose virtualenv gets turn 1.0 from the package index), or say what
# is missing.

CARGO ?= cargo
NEED_DEMO := scripts/need.sh redis-server:redis-server redis-cli:redis-tools cc:gcc
NEED_TEST := $(NEED_DEMO) c++:g++ python3:python3 venv:python3-venv

.PHONY: all build release demo test bench soak fuzz lint header cargo demo-deps test-deps clean

all: release

cargo:
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }

demo-deps: cargo
	@$(NEED_DEMO)

test-deps: cargo
	@$(NEED_TEST)

build:
	$(CARGO) build
	$(CARGO) build --examples

release:
	$(CARGO) build --release

demo: demo-deps release
	scripts/demo.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Regenerates include/turn.h from the Rust sources.
header:
	TURN_UPDATE_HEADER=1 $(CARGO) test --test header

test: test-deps lint build
	$(CARGO) test --no-fail-fast

# Figures side by side with Redis's own PING rate (see BENCHMARKS.md).
bench: demo-deps
	$(CARGO) bench --bench bench

# The chaos soak, longer than in `make test` (TURN_SOAK_SECS, default 300).
soak: test-deps build
	TURN_SOAK_SECS=$${TURN_SOAK_SECS:-300} $(CARGO) test --test chaos -- --nocapture

# Fuzzing (not in CI): each target for FUZZ_SECS seconds. cargo-fuzz wants
# nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_SECS ?= 60
fuzz: cargo
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run names -- -max_total_time=$(FUZZ_SECS)
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run c_abi -- -max_total_time=$(FUZZ_SECS)

clean:
	$(CARGO) clean
