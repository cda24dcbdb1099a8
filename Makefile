#  Lakehouse - a message-bus data substrate in C over ZeroMQ
#
#  make              build everything into build/
#  make check        build, then run every test (tests/run); last line "N passed, N failed, N skipped"
#  make up           build, then run the whole system in one process (lakehouse up)
#  make bench        run the benchmarks under bench/, results in bench/results/
#  make asan         build into build-asan/ with ASan+UBSan and run the test suite there
#  make fuzz         build the libFuzzer targets (clang) and run each briefly
#  make fuzz-ci      the same, 20 s per target: the fuzz run CI does
#  make install      install binaries under $(DESTDIR)$(PREFIX)/bin
#  make clean

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
CXX     ?= c++

PKGS     = libczmq libzmq msgpack sqlite3 libcurl libsodium lmdb libmicrohttpd jansson yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN     = -Wall -Wextra -Werror -Wno-unused-parameter
#  CFLAGS/CXXFLAGS/LDFLAGS are the user's (optimisation, sanitizers); the
#  language and warning flags below always apply, whatever is passed.
CFLAGS  ?= -O2 -g
CXXFLAGS ?= -O2 -g
LH_CFLAGS   = -std=gnu11 $(WARN) -D_GNU_SOURCE -fno-strict-aliasing
LH_CXXFLAGS = -std=c++17 $(WARN)
INCS     = -Iproto -Icommon -Ibroker -Igateway $(patsubst %,-I%,$(wildcard actors/*)) $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lpthread -lm

#  Library: every .c under proto/, common/, broker/, gateway/, actors/*/
LIB_SRC  = $(wildcard proto/*.c common/*.c broker/*.c gateway/*.c actors/*/*.c)
LIB_CXX  = $(wildcard proto/*.cpp common/*.cpp broker/*.cpp gateway/*.cpp actors/*/*.cpp)
LIB_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(patsubst %.cpp,$(BUILD)/%.o,$(LIB_CXX))
#  The web console's files (console/), compiled in as byte arrays
CONSOLE  = $(sort $(wildcard console/*.html console/*.js console/*.css console/*.svg))
LIB_OBJ += $(BUILD)/gen/lh_console_files.o
LIB      = $(BUILD)/liblakehouse.a
LINK     = $(if $(LIB_CXX),$(CXX),$(CC))

#  Programs: one per tools/*.c
TOOLS    = $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/*.c))
SELFTEST = $(BUILD)/lh_selftest
#  Fuzz targets, built with gcc as corpus replayers for `make check`
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
REPLAY   = $(patsubst tests/fuzz/%.c,$(BUILD)/%_replay,$(FUZZ_SRC))
#  Test helper programs: tests/bin/*.c
TESTBIN  = $(patsubst tests/bin/%.c,$(BUILD)/%,$(wildcard tests/bin/*.c))
BENCHBIN = $(patsubst bench/%.c,$(BUILD)/bench_%,$(wildcard bench/*.c))

HEADERS  = $(wildcard proto/*.h common/*.h broker/*.h gateway/*.h actors/*/*.h)

all: $(LIB) $(TOOLS) $(SELFTEST) $(REPLAY) $(TESTBIN) $(BENCHBIN)

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) -c $< -o $@

$(BUILD)/%.o: %.cpp $(HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(LH_CXXFLAGS) $(INCS) -c $< -o $@

$(BUILD)/gen/lh_console_files.c: $(CONSOLE) scripts/embed-files
	@mkdir -p $(dir $@)
	scripts/embed-files $(CONSOLE) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/lh_console_files.o: $(BUILD)/gen/lh_console_files.c gateway/lh_console.h
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%: tools/%.c $(LIB)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@ $(if $(LIB_CXX),-lstdc++)

$(BUILD)/%: tests/bin/%.c $(wildcard tests/bin/*.h) $(LIB)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@ $(if $(LIB_CXX),-lstdc++)

$(BUILD)/bench_%: bench/%.c $(LIB)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@ $(if $(LIB_CXX),-lstdc++)

#  The selftest table is generated: every "lh_NAME_test (bool verbose)"
#  defined in the library becomes a case of the runner.
$(BUILD)/lh_selftest_table.h: $(LIB_SRC) $(LIB_CXX)
	@mkdir -p $(dir $@)
	grep -h -o '^lh_[a-z0-9_]*_test (bool verbose)' $(LIB_SRC) $(LIB_CXX) | sed 's/ (bool verbose)//' | sort -u \
	    | awk '{ printf "LH_SELFTEST (%s)\n", $$1 }' > $@

$(SELFTEST): tests/lh_selftest.c $(BUILD)/lh_selftest_table.h $(LIB)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) -I$(BUILD) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@ $(if $(LIB_CXX),-lstdc++)

$(BUILD)/%_replay: tests/fuzz/%.c tests/fuzz/replay_main.c $(wildcard tests/fuzz/*.h) $(LIB)
	$(CC) $(CFLAGS) $(LH_CFLAGS) $(INCS) $< tests/fuzz/replay_main.c $(LIB) $(LDFLAGS) $(LDLIBS) -o $@ $(if $(LIB_CXX),-lstdc++)

check: all
	BUILD=$(BUILD) tests/run

up: all
	$(BUILD)/lakehouse up

bench: all
	BUILD=$(BUILD) bench/run

#  ASan + UBSan build of the whole test suite
asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    CXXFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" all
	BUILD=build-asan LH_ASAN=1 tests/run

#  libFuzzer targets (clang, ASan + UBSan, any UB fatal): build-fuzz/fuzz_NAME
#  for each tests/fuzz/fuzz_NAME.c, each run for FUZZ_SECONDS under a memory
#  limit (ASan's quarantine of freed memory, 256 MiB by default, is cut to
#  32 so that the limit measures the target, not the quarantine), from its
#  committed corpus; new inputs go to build-fuzz/corpus-fuzz_NAME, a crash
#  to build-fuzz/crash-*, and the first crash, leak, UB report, timeout or
#  limit passed fails the command. `make fuzz-ci` is the short run CI does.
FUZZ_SECONDS ?= 30
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
#  clang warns where gcc does not; a style warning must not stop the fuzzing
FUZZ_WARN    = -Wno-error=missing-field-initializers
FUZZ_RUN     = -rss_limit_mb=256 -malloc_limit_mb=64 -timeout=10 -print_final_stats=1
fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang CXX=clang++ CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(FUZZ_WARN)" \
	    CXXFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(FUZZ_WARN)" $(LIB:$(BUILD)/%=build-fuzz/%)
	@set -e; for src in $(FUZZ_SRC); do \
	    name=$$(basename $$src .c); \
	    echo "clang $$src -> build-fuzz/$$name"; \
	    clang -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) $(WARN) -std=gnu11 -D_GNU_SOURCE $(INCS) $$src \
	        build-fuzz/liblakehouse.a $(LDLIBS) $(if $(LIB_CXX),-lstdc++) -o build-fuzz/$$name; \
	done

fuzz: fuzz-build
	@set -e; for src in $(FUZZ_SRC); do \
	    name=$$(basename $$src .c); \
	    corpus=tests/fuzz/corpus/$${name#fuzz_}; mkdir -p $$corpus build-fuzz/corpus-$$name; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	    ASAN_OPTIONS=quarantine_size_mb=32 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    build-fuzz/$$name $(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/ \
	        build-fuzz/corpus-$$name $$corpus 2>build-fuzz/$$name.log \
	        || { tail -60 build-fuzz/$$name.log; echo "fuzz: $$name FAILED (log: build-fuzz/$$name.log)"; exit 1; }; \
	    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' build-fuzz/$$name.log | tr '\n' ' '; echo; \
	done

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=20

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/lakehouse
	install -m 0644 conf/lakehouse.cfg $(DESTDIR)$(PREFIX)/share/lakehouse/

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all check up bench asan fuzz fuzz-build fuzz-ci install clean
.SECONDARY:
