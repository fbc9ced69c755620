# turn: `make demo` runs the C example with competing processes,
# `make test` runs every test. Both install what they need when run as root
# on Debian (redis-server, a C compiler), or say what is missing.

CARGO ?= cargo
NEED := scripts/need.sh redis-server:redis-server redis-cli:redis-tools cc:gcc c++:g++

.PHONY: all build release demo test lint header deps clean

all: release

deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }
	@$(NEED)

build:
	$(CARGO) build

release:
	$(CARGO) build --release

demo: deps release
	scripts/demo.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Regenerates include/turn.h from the Rust sources.
header:
	TURN_UPDATE_HEADER=1 $(CARGO) test --test header

test: deps lint build
	$(CARGO) test --no-fail-fast

clean:
	$(CARGO) clean
