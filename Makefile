# The README's commands. Everything builds under build/ (one directory per
# configuration); nothing needs installing by hand first: each target runs
# scripts/deps, which installs missing Debian packages (or, without root,
# prints the apt-get line to run).
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

RELEASE := $(BUILD)/release
ASAN    := $(BUILD)/asan
FUZZ    := $(BUILD)/fuzz

.PHONY: all deps build test test-asan test-valgrind demo bench soak fuzz fuzz-smoke lint install clean

all: build

deps:
	@scripts/deps

build: deps
	@cmake -S . -B $(RELEASE) -DTRUV_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(RELEASE) -j$(JOBS)

# Every test: C unit tests and busted specs (unit, integration against the
# sandbox, OpenResty), all under ctest, which prints the summary line;
# then what was skipped (optional checks only: a missing tool fails).
CTEST = ctest --output-on-failure $(CTEST_FLAGS)
define run_suite
	@rm -f $(1)/skipped/*; cd $(1) && $(CTEST) $(2); rc=$$?; cd $(CURDIR) && scripts/test-summary $(1); exit $$rc
endef

test: build
	$(call run_suite,$(RELEASE),-j$(JOBS))

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTRUV_WERROR=ON -DTRUV_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN) -j$(JOBS)
	$(call run_suite,$(ASAN),-j$(JOBS))

# C unit tests and a spec run under valgrind's leak checker.
test-valgrind: build
	$(call run_suite,$(RELEASE),-L valgrind)

demo: build
	@scripts/demo $(RELEASE)

bench: build
	@scripts/deps --bench
	@bench/run $(RELEASE)

# Reliability campaigns of truv-renew against the sandbox on loopback (faults,
# kill -9s, a full and a read-only journal disk), each checked against the
# sandbox's accounting; a few minutes. SOAK=full for the long setting; the
# other SOAK_* variables are listed in scripts/soak.lua. The disk campaigns
# need root (a tmpfs is mounted) and are skipped, loudly, without it.
soak: build
	@scripts/soak $(RELEASE)

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DTRUV_WERROR=ON -DTRUV_FUZZ=ON -DTRUV_TESTS=OFF -DTRUV_SANDBOX=OFF -DLUA_FLAVOR=5.4 >/dev/null
	@cmake --build $(FUZZ) -j$(JOBS)
	@scripts/fuzz $(FUZZ) $(FUZZ_SECONDS)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

# luacheck for the Lua, scripts/style for the C (.clang-format; --fix rewrites).
lint:
	@luacheck -q lua spec examples bench scripts/soak.lua bin/truv-renew
	@scripts/style

install: build
	luarocks --lua-version=5.4 make rockspec/truv-scm-1.rockspec --deps-mode=none

clean:
	rm -rf $(BUILD)
