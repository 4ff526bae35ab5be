# pysample — one non-recursive Makefile.
#   make            build ./pysample
#   make check      install missing deps (Debian packages; npm test clients into a cache outside
#                   the clone: tests/install_clients.sh), build, run unit + integration tests
#                   (plain and ASan/UBSan)
#   make demo       install missing deps, build, profile fixtures/demo_app.py and print the table
#   make bench      benchmark table + JSON lines
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS
#   make deps       apt-get install the build/test dependencies (as root)
#   make provision  make (or reuse) the Debian sid chroot with CPython 3.14 and 3.15 for the tests
#   make install PREFIX=/usr/local DESTDIR=
#   make offsets    regenerate src/python/offsets_data.c from installed CPython headers

# ---- knobs ------------------------------------------------------------------------------------
CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
OPT      ?= -O2
FUZZ_SECONDS ?= 30
PKGS     := libelf libdw libunwind-ptrace ncursesw zlib
DEB_PKGS := build-essential pkg-config libelf-dev libdw-dev libunwind-dev libcriterion-dev \
            man-db groff-base clang libclang-rt-14-dev python3 \
            gunicorn uwsgi uwsgi-plugin-python3 gcc-aarch64-linux-gnu libc6-dev-arm64-cross valgrind \
            debootstrap zlib1g-dev chromium golang-go libdevel-nytprof-perl nodejs time
VERSION  := 0.1.0
DEB_PKGS += libncurses-dev tmux # `top` (ncurses) and its test (tmux)

# ---- flags ------------------------------------------------------------------------------------
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DPS_VERSION='"$(VERSION)"' $(WARN) $(OPT) -g \
             -Iinclude -Iarch/$(ARCH) $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread $(LDLIBS)
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ARCH     := $(shell uname -m)

# ---- sources ----------------------------------------------------------------------------------
LIB_SRC  := $(sort $(wildcard src/util/*.c src/proc/*.c src/elf/*.c src/python/*.c src/core/*.c \
                    src/out/*.c src/native/*.c src/cmd/*.c arch/$(ARCH)/*.c))
MAIN_SRC := src/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))

obj = $(patsubst %.c,$(1)/obj/%.o,$(2))
LIB_OBJ  := $(call obj,$(BUILD),$(LIB_SRC))
MAIN_OBJ := $(call obj,$(BUILD),$(MAIN_SRC))
UNIT_OBJ := $(call obj,$(BUILD),$(UNIT_SRC))
ASAN_LIB_OBJ  := $(call obj,$(BUILD)/asan,$(LIB_SRC))
ASAN_MAIN_OBJ := $(call obj,$(BUILD)/asan,$(MAIN_SRC))
ASAN_UNIT_OBJ := $(call obj,$(BUILD)/asan,$(UNIT_SRC))

.PHONY: all check unit unit-asan integration integration-asan demo bench fuzz fuzz-check deps \
        need-deps provision install clean valgrind-unit offsets check-offsets check-threadnames check-aarch64 lint-man
all: pysample

# ---- dependencies -----------------------------------------------------------------------------
# Packages from DEB_PKGS that dpkg does not list as installed.
missing_deps = $(strip $(foreach p,$(DEB_PKGS),$(if $(shell dpkg-query -W -f='$${Status}' $(p) 2>/dev/null | grep -q 'ok installed' && echo y),,$(p))))

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "pysample: 'make deps' installs Debian packages and must run as root: sudo make deps" >&2; exit 2; fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PKGS)

need-deps:
	@if [ -n "$(missing_deps)" ]; then echo "pysample: missing Debian packages: $(missing_deps); installing them"; $(MAKE) --no-print-directory deps; fi

# The sid chroot with the newest CPython releases, cached outside the clone (PS_SID_ROOT).
provision: need-deps
	tests/provision_sid.sh >/dev/null

# The build itself names the missing package instead of failing on a missing header.
$(BUILD)/.depcheck:
	@for p in libelf:libelf-dev libdw:libdw-dev libunwind-ptrace:libunwind-dev ncursesw:libncurses-dev zlib:zlib1g-dev; do \
	  pc=$${p%%:*}; deb=$${p##*:}; \
	  pkg-config --exists $$pc 2>/dev/null || { echo "pysample: missing $$pc — install the Debian package $$deb (or run: sudo make deps)" >&2; exit 2; }; \
	done
	@mkdir -p $(@D) && touch $@

# ---- build ------------------------------------------------------------------------------------
pysample: $(BUILD)/.depcheck $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(CFLAGS_ALL) -o $@ $(LIB_OBJ) $(MAIN_OBJ) $(LDLIBS_ALL)

$(BUILD)/obj/%.o: %.c | $(BUILD)/.depcheck
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/asan/obj/%.o: %.c | $(BUILD)/.depcheck
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(SAN) -c -o $@ $<

$(BUILD)/asan/pysample: $(ASAN_LIB_OBJ) $(ASAN_MAIN_OBJ)
	$(CC) $(CFLAGS_ALL) $(SAN) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/unit_tests: $(LIB_OBJ) $(UNIT_OBJ)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) -lcriterion

$(BUILD)/asan/unit_tests: $(ASAN_LIB_OBJ) $(ASAN_UNIT_OBJ)
	$(CC) $(CFLAGS_ALL) $(SAN) -o $@ $^ $(LDLIBS_ALL) -lcriterion

# ---- tests ------------------------------------------------------------------------------------
check: need-deps provision
	tests/install_clients.sh
	$(MAKE) --no-print-directory pysample $(BUILD)/unit_tests $(BUILD)/asan/pysample $(BUILD)/asan/unit_tests
	$(MAKE) --no-print-directory lint-man check-offsets check-threadnames check-aarch64
	$(MAKE) --no-print-directory unit unit-asan valgrind-unit integration integration-asan
	$(MAKE) --no-print-directory fuzz-check

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests --jobs 2

unit-asan: $(BUILD)/asan/unit_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/asan/unit_tests --jobs 2

# The unit tests under valgrind memcheck: no memory errors, no leaks.
valgrind-unit: $(BUILD)/unit_tests
	tests/valgrind_unit.sh $(BUILD)/unit_tests

integration: pysample
	PYSAMPLE=$(CURDIR)/pysample tests/integration/run_all.sh

# Under ASan/UBSan, one interpreter of each reader path (frame objects 2.7 / 3.10, data stack
# 3.12-3.15, the static non-PIE Debian 3.11, free-threaded 3.15t); PS_ASAN_PYTHONS=. for all.
PS_ASAN_PYTHONS ?= /2\.7\.|/3\.10\.|/3\.12\.|/3\.13\.0/|/usr/bin/python3\.11|sid-python3\.1[45]$$|sid-python3\.15t$$
integration-asan: $(BUILD)/asan/pysample
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  PYSAMPLE=$(CURDIR)/$(BUILD)/asan/pysample PS_SANITIZED=1 \
	  PS_PYTHONS='$(PS_ASAN_PYTHONS)' tests/integration/run_all.sh

lint-man:
	tests/lint_man.sh man/*.1

# The committed offset tables must match every CPython header set installed on this machine.
check-offsets:
	tests/check_offsets.sh

offsets:
	tests/check_offsets.sh --regenerate

check-threadnames:
	tests/check_threadnames.sh

# The aarch64 register map must at least compile with Debian's cross compiler.
check-aarch64:
	tests/check_aarch64.sh

# ---- fuzzing ----------------------------------------------------------------------------------
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
FUZZ_LIB_SRC := $(filter-out src/cmd/%,$(LIB_SRC))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(PKG_LIBS) -lpthread

fuzz: $(FUZZ_BINS)
	tests/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-check: $(FUZZ_BINS)
	tests/run_fuzz.sh 30 $(FUZZ_BINS)

# ---- demo, bench, install ---------------------------------------------------------------------
demo: need-deps
	$(MAKE) --no-print-directory pysample
	tests/demo.sh $(CURDIR)/pysample

bench: provision pysample
	tests/bench/run_bench.sh $(CURDIR)/pysample

install: pysample
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 pysample $(DESTDIR)$(PREFIX)/bin/pysample
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf $(BUILD) pysample

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJ:.o=.d)
-include $(ASAN_LIB_OBJ:.o=.d) $(ASAN_MAIN_OBJ:.o=.d) $(ASAN_UNIT_OBJ:.o=.d)
