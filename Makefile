# sluice — one flat Makefile. Everything generated goes under build/.
#   make            build build/sluiced and build/sluicectl
#   make deps       install missing Debian packages (run by test, demo, bench)
#   make test       build and run every test (tests/run.sh)
#   make demo       run sluiced in front of two demo backends on loopback
#   make bench      run the quick benchmark suite
#   V=1 verbose, SAN=1 ASan+UBSan, WERROR=1 warnings are errors

B        := build
CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
	    -Wmissing-prototypes -fno-strict-aliasing -D_GNU_SOURCE -pthread \
	    -I. -I$(B)
LDFLAGS  += -pthread
LDLIBS   := -luring -lconfig -lbpf -lelf -lz -lssl -lcrypto -lm
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -I. -I$(B)

ifneq ($(V),1)
Q := @
msg = @printf '  %-7s %s\n' "$(1)" "$(2)";
endif

# ---- sources -------------------------------------------------------------
USER_SRC   := $(wildcard userspace/*.c)
USER_LIB   := $(filter-out userspace/sluicectl.c,$(USER_SRC))
PROXY_SRC  := $(wildcard proxy/*.c)
BPF_SRC    := $(wildcard bpf/*.bpf.c)
BPF_OBJ    := $(patsubst bpf/%.bpf.c,$(B)/bpf/%.bpf.o,$(BPF_SRC))
BPF_SKEL   := $(patsubst bpf/%.bpf.c,$(B)/bpf/%.skel.h,$(BPF_SRC))
UNIT_SRC   := $(wildcard tests/unit/*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/%.t,$(UNIT_SRC))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(patsubst tests/tools/%.c,$(B)/tests/tools/%,$(TOOL_SRC))
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

USER_OBJ   := $(patsubst %.c,$(B)/%.o,$(USER_LIB))
PROXY_OBJ  := $(patsubst %.c,$(B)/%.o,$(PROXY_SRC))
# the daemon's objects minus main(), for unit tests that link proxy modules
PROXY_LIB  := $(filter-out $(B)/proxy/main.o,$(PROXY_OBJ))
C_OBJ      := $(USER_OBJ) $(PROXY_OBJ) $(B)/userspace/sluicectl.o

.PHONY: all deps test test-build demo bench clean tools FORCE
all: $(B)/sluiced $(B)/sluicectl

# The version is a generated header, rewritten only when it changes, so a new
# commit rebuilds what prints it and nothing else.
$(B)/version.h: FORCE
	@mkdir -p $(@D)
	@echo '#define SLUICE_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(B)/sluiced: $(PROXY_OBJ) $(USER_OBJ)
	$(call msg,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/sluicectl: $(B)/userspace/sluicectl.o $(USER_OBJ)
	$(call msg,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Static pattern rule: only the listed .c objects, so it can never match a .bpf.c.
$(C_OBJ): $(B)/%.o: %.c | $(BPF_SKEL) $(B)/version.h
	@mkdir -p $(@D)
	$(call msg,CC,$@)$(CC) $(CFLAGS) -MMD -MP -MT $@ -c -o $@ $<

# ---- BPF: vmlinux.h, objects, skeletons -----------------------------------
$(B)/vmlinux.h:
	@mkdir -p $(@D)
	$(call msg,GEN,$@)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): $(B)/bpf/%.bpf.o: bpf/%.bpf.c | $(B)/vmlinux.h
	@mkdir -p $(@D)
	$(call msg,BPF,$@)$(CLANG) $(BPF_CFLAGS) -MMD -MP -MT $@ -c -o $@ $<

$(BPF_SKEL): $(B)/bpf/%.skel.h: $(B)/bpf/%.bpf.o
	$(call msg,SKEL,$@)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# ---- tests, tools, bench ---------------------------------------------------
$(UNIT_BIN): $(B)/tests/%.t: tests/unit/%.c $(USER_OBJ) $(PROXY_LIB)
	@mkdir -p $(@D)
	$(call msg,TEST,$@)$(CC) $(CFLAGS) -MMD -MP -MT $@ $(LDFLAGS) -o $@ $< $(PROXY_LIB) $(USER_OBJ) $(LDLIBS)

$(TOOL_BIN): $(B)/tests/tools/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(call msg,TOOL,$@)$(CC) $(CFLAGS) -MMD -MP -MT $@ $(LDFLAGS) -o $@ $< $(filter %.o,$^) $(LDLIBS)

# proxy modules a tool links, listed as prerequisites
$(B)/tests/tools/tpeer: $(B)/proxy/proxyproto.o

$(BENCH_BIN): $(B)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(call msg,BENCH,$@)$(CC) $(CFLAGS) -MMD -MP -MT $@ $(LDFLAGS) -o $@ $< $(LDLIBS)

tools: $(TOOL_BIN) $(BENCH_BIN)
test-build: all $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN)

# ---- entry points ----------------------------------------------------------
DEB_PKGS := build-essential clang llvm libbpf-dev liburing-dev libconfig-dev libssl-dev \
	    libelf-dev zlib1g-dev pkg-config bpftool iproute2 iptables openssl procps psmisc python3 util-linux \
	    prometheus chromium systemd \
	    libclang-rt-dev

deps:
	$(Q)missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS    installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $$missing >$(B).deps.log 2>&1 || \
		{ apt-get update -q >>$(B).deps.log 2>&1 && apt-get install -y -q $$missing >>$(B).deps.log 2>&1; } || \
		{ cat $(B).deps.log; exit 1; }; \
	fi
	$(Q)command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "  DEPS    installing: nodejs npm"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >>$(B).deps.log 2>&1 || \
		{ cat $(B).deps.log; exit 1; }; }
	$(Q)[ -d tests/ws/node_modules/ws ] || { \
		echo "  DEPS    npm ci (tests/ws: ws)"; \
		npm ci --prefix tests/ws --no-audit --no-fund >>$(B).deps.log 2>&1 || \
		{ cat $(B).deps.log; exit 1; }; }

test: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)examples/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)bench/run.sh quick

clean:
	rm -rf $(B) $(B).deps.log

# ---- fuzzing (libFuzzer) -------------------------------------------------------
#   make fuzz-build   build/fuzz/fuzz_NAME for every tests/fuzz/fuzz_NAME.c, linked with
#                     the module it exercises (proxy/NAME.c or userspace/NAME.c), both
#                     compiled here with clang -fsanitize=fuzzer,address,undefined
#   make fuzz         run each target FUZZ_SECONDS (default 60), FUZZ_JOBS (default 2) at
#                     a time, on a copy of its seed corpus under build/fuzz/
#                     (tests/fuzz/run.sh); fails if any target crashes
# libFuzzer's runtime is libclang-rt-dev (in DEB_PKGS; clang only recommends it).
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow \
		-Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing -D_GNU_SOURCE -I.
ifeq ($(WERROR),1)
FUZZ_CFLAGS  += -Werror
endif
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(patsubst %,$(B)/fuzz/fuzz_%,$(FUZZ_NAMES))
fuzz_mod      = $(wildcard proxy/$(1).c userspace/$(1).c)
FUZZ_OBJ     := $(patsubst %.c,$(B)/fuzz/obj/%.o,$(wildcard tests/fuzz/fuzz_*.c) \
		  $(foreach n,$(FUZZ_NAMES),$(call fuzz_mod,$(n))))
# Libraries a target's module needs, FUZZ_LIBS_NAME; none unless listed here.
FUZZ_LIBS_config := -lconfig

$(FUZZ_OBJ): $(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(call msg,FUZZCC,$@)$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -MT $@ -c -o $@ $<

define FUZZ_LINK
$(B)/fuzz/fuzz_$(1): $(patsubst %.c,$(B)/fuzz/obj/%.o,tests/fuzz/fuzz_$(1).c $(call fuzz_mod,$(1)))
	$$(call msg,FUZZLD,$$@)$(CLANG) $(FUZZ_CFLAGS) -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_LINK,$(n))))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)B=$(B) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_NAMES)
# ---- end of fuzzing -----------------------------------------------------------------

-include $(shell find $(B) -name '*.d' 2>/dev/null)
