# vouch: one non-recursive Makefile. Objects live under build/<config>/.
#   make            build vouchd, vouchctl, vouch-bench (release config)
#   make run        install missing deps, build, start vouchd with demo defaults
#   make test       install missing deps, build, run every test, then again
#                   under ASan+UBSan, and the cross-shard tests under TSan
#   make fuzz       build the libFuzzer harnesses (clang) under build/fuzz/
#   make bench      build and run the benchmarks
#   make install    PREFIX=/usr/local DESTDIR= (BINDIR, SBINDIR, MANDIR, ...)
#   SAN=address,undefined | SAN=thread   select a sanitizer config
#   V=1             show the commands

CC      ?= cc
SAN     ?=
PKGS    := liburing wolfssl jemalloc libxxhash libmicrohttpd jansson

ifeq ($(SAN),)
CONFIG  := release
SANFLAGS:=
OPT     := -O2
else ifeq ($(SAN),thread)
CONFIG  := tsan
SANFLAGS:= -fsanitize=thread
OPT     := -O1
else
CONFIG  := asan
SANFLAGS:= -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT     := -O1
endif

B       := build/$(CONFIG)
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -fno-strict-aliasing -I. -MMD -MP $(SANFLAGS)
LDLIBS  := -lwolfssl -luring -lxxhash -lmicrohttpd -ljansson -lcurl -lpthread -lm
# jemalloc is the allocator, except under sanitizers which bring their own.
ifeq ($(SAN),)
LDLIBS  += -ljemalloc
else
CFLAGS  += -DVOUCH_NO_JEMALLOC
endif
LDFLAGS += $(SANFLAGS)

# ---- WOLFSSL=asm: link wolfSSL built from Debian's source with the P-256
# assembly (scripts/wolfssl-asm.sh, docs/wolfssl-asm.md), statically, into
# build/<config>-asm/. Unset: Debian's libwolfssl, as always.
WOLFSSL ?=
WOLFSSL_ASM_DEP :=
WOLFSSL_ASM_CFLAGS :=
ifeq ($(WOLFSSL),asm)
WOLFSSL_ASM := build/wolfssl-asm
WOLFSSL_ASM_DEP := $(WOLFSSL_ASM)/lib/libwolfssl.a
WOLFSSL_ASM_CFLAGS := -I$(WOLFSSL_ASM)/include
CONFIG  := $(CONFIG)-asm
CFLAGS  += $(WOLFSSL_ASM_CFLAGS)
LDLIBS  := $(patsubst -lwolfssl,$(WOLFSSL_ASM_DEP),$(LDLIBS))
B       := build/$(CONFIG)
else ifneq ($(WOLFSSL),)
$(error WOLFSSL must be empty (Debian's library) or asm, not '$(WOLFSSL)')
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Layers, bottom to top. A file may include headers of its own layer and below.
CORE_SRC := $(filter-out core/main.c,$(wildcard core/*.c))
TLS_SRC  := $(wildcard tls/*.c)
REG_SRC  := $(wildcard registry/*.c)
MQTT_SRC := $(wildcard mqtt/*.c)
LIB_SRC  := $(CORE_SRC) $(TLS_SRC) $(REG_SRC) $(MQTT_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)

TOOL_SRC := $(wildcard tools/*.c)
BENCH_SRC:= $(wildcard bench/*.c)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/tests/replay_%)

BINS := $(B)/vouchd $(if $(TOOL_SRC),$(B)/vouchctl) $(if $(BENCH_SRC),$(B)/vouch-bench)

.PHONY: all deps run test unit fuzz fuzz-replay integration test-asan test-tsan bench bench-hold bench-query clean layers install
all: build/.deps layers $(BINS) $(UNIT_BIN) $(REPLAY_BIN)

build/.deps: scripts/deps.sh
	$(Q)./scripts/deps.sh
	$(Q)mkdir -p build && touch $@
deps:
	$(Q)./scripts/deps.sh
	$(Q)mkdir -p build && touch build/.deps

$(B)/%.o: %.c | build/.deps $(WOLFSSL_ASM_DEP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(B)/libvouch.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/vouchd: $(B)/core/main.o $(B)/libvouch.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/vouchctl: $(TOOL_SRC:%.c=$(B)/%.o) $(B)/libvouch.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/vouch-bench: $(BENCH_SRC:%.c=$(B)/%.o) $(B)/libvouch.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests may #include the .c they test; they link the library for the rest.
$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libvouch.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_bench tests vouch-bench's histogram and certificate pool, which are
# not in libvouch.a: it links their objects too.
$(B)/tests/test_bench: $(B)/bench/hist.o $(B)/bench/tls.o

# The fuzz harnesses are also built with a plain main() that replays the
# checked-in corpus, so every `make test` runs them.
$(B)/tests/replay_%: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay_main.o $(B)/libvouch.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/fuzz/replay_main.o: tests/fuzz/replay_main.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Layering: core < tls, registry < mqtt < main. Fails the build when a lower
# layer includes a higher one.
layers:
	$(Q)! grep -nE '#include "(tls|registry|mqtt)/' $(CORE_SRC) core/*.h 2>/dev/null || (echo "layering: core/ must not include tls/, registry/ or mqtt/"; false)
	$(Q)! grep -nE '#include "mqtt/' $(TLS_SRC) $(REG_SRC) tls/*.h registry/*.h 2>/dev/null || (echo "layering: tls/ and registry/ must not include mqtt/"; false)
	$(Q)! grep -nE '#include "(core|tls|registry)/|#include <(liburing|wolfssl)' mqtt/codec.c mqtt/codec*.h 2>/dev/null || (echo "layering: the codec needs nothing but libc"; false)

run: all
	$(Q)./scripts/run.sh $(B)

unit: all
	$(Q)set -e; for t in $(UNIT_BIN); do echo "  UNIT    $$t"; timeout 300 $$t; done

fuzz-replay: all
	$(Q)set -e; for t in $(REPLAY_BIN); do n=$${t##*/replay_}; echo "  REPLAY  $$n"; timeout 300 $$t tests/fuzz/corpus/$$n; done

integration: all
	$(Q)VOUCH_BUILD=$(B) timeout 1800 ./tests/integration/run.sh

# The whole suite; then once more under ASan+UBSan, and TSan for cross-shard code.
test: build/.deps
	$(Q)$(MAKE) --no-print-directory unit fuzz-replay integration
	$(Q)$(MAKE) --no-print-directory SAN=address,undefined unit fuzz-replay integration
	$(Q)$(MAKE) --no-print-directory SAN=thread test-tsan
	@echo "make test: all passed"

# ThreadSanitizer: the ring and cross-shard unit tests, and the cross-shard
# integration tests.
test-tsan: all
	$(Q)set -e; for t in $(filter %_mt,$(UNIT_BIN)); do echo "  TSAN    $$t"; TSAN_OPTIONS=halt_on_error=1 timeout 300 $$t; done
	$(Q)VOUCH_BUILD=$(B) VOUCH_TESTS=crossshard TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 900 ./tests/integration/run.sh
	$(Q)VOUCH_BUILD=$(B) VOUCH_TESTS="test_id_lifecycle.py test_tls_transport.py test_events.py test_policy.py" VOUCH_PHASES=shards4 \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 600 ./tests/integration/run.sh

FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -I. -DVOUCH_NO_JEMALLOC $(WOLFSSL_ASM_CFLAGS)
fuzz: build/.deps $(WOLFSSL_ASM_DEP)
	$(Q)mkdir -p build/fuzz
	$(Q)set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); echo "  FUZZ    $$n"; \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -o build/fuzz/$$n $$f $(LIB_SRC) $(LDLIBS); done
	@echo "run e.g.: build/fuzz/fuzz_codec tests/fuzz/corpus/fuzz_codec -max_total_time=60"

# vouchd against Mosquitto per broker core (bench/bench.py, bench/RESULTS.md):
# with Debian's wolfSSL, then (unless WOLFSSL= was given) with the one built
# with the P-256 assembly (scripts/wolfssl-asm.sh, a few minutes the first time).
bench: all
	$(Q)./scripts/deps.sh bench
	$(Q)VOUCH_BUILD=$(B) timeout 1800 python3 bench/bench.py
ifeq ($(WOLFSSL),)
	$(Q)$(MAKE) --no-print-directory WOLFSSL=asm bench
endif

# 100,000 mutual-TLS connections held on one vouchd (HOLD=N for another count).
bench-hold: all
	$(Q)VOUCH_BUILD=$(B) timeout 1800 python3 bench/bench.py hold $(or $(HOLD),100000)

# Query benchmark over 1,000,000 generated records (not part of `make test`).
$(B)/bench-query: $(B)/bench/query/bench_query.o $(B)/libvouch.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-query: $(B)/bench-query
	$(Q)$(B)/bench-query $(BENCH_QUERY_ARGS)

# wolfSSL as linked by this config (docs/wolfssl-asm.md): P-256 operations
# per second, and the heap a TLS server connection keeps.
$(B)/p256-bench: $(B)/bench/wolfssl/p256_bench.o
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tls-mem: $(B)/bench/wolfssl/tls_mem.o $(B)/libvouch.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
.PHONY: bench-wolfssl
bench-wolfssl: $(B)/p256-bench $(B)/tls-mem
	$(Q)for i in 1 2 3; do $(B)/p256-bench; done
	$(Q)for i in 1 2 3; do $(B)/tls-mem; done

clean:
	rm -rf build

# Builds (once per Debian version) the wolfSSL that WOLFSSL=asm links.
.PHONY: wolfssl-asm
wolfssl-asm: build/.deps
	$(Q)./scripts/wolfssl-asm.sh
build/wolfssl-asm/lib/libwolfssl.a: | build/.deps
	$(Q)./scripts/wolfssl-asm.sh

# ---- install ------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the programs, the man
# pages, the systemd unit, the sysusers.d entry and (when none is there yet)
# /etc/vouch/vouchd.conf. See docs/deploy.md.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR?= $(PREFIX)/lib/sysusers.d
INSTALL    ?= install

install: $(B)/vouchd $(B)/vouchctl $(B)/vouch-bench
	$(Q)$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/vouch
	$(Q)$(INSTALL) -m 0755 $(B)/vouchd $(DESTDIR)$(SBINDIR)/vouchd
	$(Q)$(INSTALL) -m 0755 $(B)/vouchctl $(B)/vouch-bench $(DESTDIR)$(BINDIR)/
	$(Q)$(INSTALL) -m 0644 docs/man/vouchctl.1 $(DESTDIR)$(MANDIR)/man1/vouchctl.1
	$(Q)$(INSTALL) -m 0644 docs/man/vouchd.8 $(DESTDIR)$(MANDIR)/man8/vouchd.8
	$(Q)sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/vouchd.service.in \
	  >$(DESTDIR)$(UNITDIR)/vouchd.service && chmod 0644 $(DESTDIR)$(UNITDIR)/vouchd.service
	$(Q)$(INSTALL) -m 0644 dist/vouch.sysusers $(DESTDIR)$(SYSUSERSDIR)/vouch.conf
	$(Q)[ -e $(DESTDIR)$(SYSCONFDIR)/vouch/vouchd.conf ] || \
	  $(INSTALL) -m 0644 dist/vouchd.conf $(DESTDIR)$(SYSCONFDIR)/vouch/vouchd.conf
	@echo "installed under $(DESTDIR)$(PREFIX) (unit $(UNITDIR)/vouchd.service, config $(SYSCONFDIR)/vouch/vouchd.conf)"

-include $(shell find $(B) -name '*.d' 2>/dev/null)
