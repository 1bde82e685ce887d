# sluice — one flat Makefile. Everything generated goes under build/.
#   make            build build/sluiced and build/sluicectl
#   make deps       install missing Debian packages (run by test, demo, bench)
#   make check      build and run the unit tests: no root, nothing installed
#   make test       build and run every test (tests/run.sh)
#   make demo       run sluiced in front of two demo backends on loopback
#   make bench      run the quick benchmark suite
#   make install    install under DESTDIR/PREFIX (see "install" below)
#   make deb        build build/sluice_VERSION_ARCH.deb with dpkg-buildpackage
#   V=1 verbose, SAN=1 ASan+UBSan, WERROR=1 warnings are errors
#
# CFLAGS, CPPFLAGS and LDFLAGS (from the command line, the environment or
# dpkg-buildflags) are added after what sluice itself needs, never instead
# of it: the project's own flags live in SL_CFLAGS and SL_LDFLAGS.

B        := build
CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# where the kernel's BTF is read for build/vmlinux.h
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux

CFLAGS   ?= -O2 -g
SL_CFLAGS := -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
	    -Wmissing-prototypes -fno-strict-aliasing -D_GNU_SOURCE -pthread \
	    -I. -I$(B)
SL_LDFLAGS := -pthread
LDLIBS   := -luring -lconfig -lbpf -lelf -lz -lssl -lcrypto -lhiredis -lm
ifeq ($(SAN),1)
SL_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	      -DSLUICE_CHECKED
SL_LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(WERROR),1)
SL_CFLAGS  += -Werror
endif
ALL_CFLAGS  = $(SL_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SL_LDFLAGS) $(LDFLAGS)
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

.PHONY: all deps check test test-build demo bench clean tools install deb FORCE
all: $(B)/sluiced $(B)/sluicectl

# The version is a generated header, rewritten only when it changes, so a new
# commit rebuilds what prints it and nothing else.
$(B)/version.h: FORCE
	@mkdir -p $(@D)
	@echo '#define SLUICE_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(B)/sluiced: $(PROXY_OBJ) $(USER_OBJ)
	$(call msg,LD,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/sluicectl: $(B)/userspace/sluicectl.o $(USER_OBJ)
	$(call msg,LD,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# Static pattern rule: only the listed .c objects, so it can never match a .bpf.c.
$(C_OBJ): $(B)/%.o: %.c | $(BPF_SKEL) $(B)/version.h
	@mkdir -p $(@D)
	$(call msg,CC,$@)$(CC) $(ALL_CFLAGS) -MMD -MP -MT $@ -c -o $@ $<

# ---- BPF: vmlinux.h, objects, skeletons -----------------------------------
# The BPF programs are CO-RE: built against this kernel's BTF, they load on
# any kernel with BTF. Without /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF
# off, or a build container), point VMLINUX_BTF at a vmlinux with BTF.
$(B)/vmlinux.h:
	@mkdir -p $(@D)
	$(Q)[ -r "$(VMLINUX_BTF)" ] || { \
		echo "$(VMLINUX_BTF): no kernel BTF to build the BPF programs against." >&2; \
		echo "  Build on a kernel with CONFIG_DEBUG_INFO_BTF=y (Debian's are), or give" >&2; \
		echo "  VMLINUX_BTF=FILE: a vmlinux with BTF, or a copy of another machine's" >&2; \
		echo "  /sys/kernel/btf/vmlinux (make VMLINUX_BTF=/path/to/vmlinux)." >&2; \
		exit 1; }
	$(call msg,GEN,$@)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): $(B)/bpf/%.bpf.o: bpf/%.bpf.c | $(B)/vmlinux.h
	@mkdir -p $(@D)
	$(call msg,BPF,$@)$(CLANG) $(BPF_CFLAGS) -MMD -MP -MT $@ -c -o $@ $<

$(BPF_SKEL): $(B)/bpf/%.skel.h: $(B)/bpf/%.bpf.o
	$(call msg,SKEL,$@)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# ---- tests, tools, bench ---------------------------------------------------
$(UNIT_BIN): $(B)/tests/%.t: tests/unit/%.c $(USER_OBJ) $(PROXY_LIB)
	@mkdir -p $(@D)
	$(call msg,TEST,$@)$(CC) $(ALL_CFLAGS) -MMD -MP -MT $@ $(ALL_LDFLAGS) -o $@ $< $(PROXY_LIB) $(USER_OBJ) $(LDLIBS)

$(TOOL_BIN): $(B)/tests/tools/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(call msg,TOOL,$@)$(CC) $(ALL_CFLAGS) -MMD -MP -MT $@ $(ALL_LDFLAGS) -o $@ $< $(filter %.o,$^) $(LDLIBS)

# proxy modules a tool links, listed as prerequisites
$(B)/tests/tools/tpeer: $(B)/proxy/proxyproto.o

$(BENCH_BIN): $(B)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(call msg,BENCH,$@)$(CC) $(ALL_CFLAGS) -MMD -MP -MT $@ $(ALL_LDFLAGS) -o $@ $< $(LDLIBS)

tools: $(TOOL_BIN) $(BENCH_BIN)
test-build: all $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN)

# ---- entry points ----------------------------------------------------------
DEB_PKGS := build-essential clang llvm libbpf-dev liburing-dev libconfig-dev libssl-dev libhiredis-dev \
	    libelf-dev zlib1g-dev pkg-config bpftool iproute2 iptables openssl procps psmisc python3 util-linux \
	    prometheus chromium systemd redis-server redis-sentinel \
	    libclang-rt-dev \
	    debhelper dpkg-dev fakeroot lintian mandoc man-db

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

# The unit tests alone: no root, no network namespaces, no package installed
# (what a packager's build runs; dh_auto_test calls it).
check: $(UNIT_BIN)
	$(Q)tests/run.sh unit/

demo: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)examples/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)bench/run.sh quick

clean:
	rm -rf $(B) $(B).deps.log

# ---- install ---------------------------------------------------------------
#   make install [DESTDIR=D] [PREFIX=/usr/local] [SYSCONFDIR=/etc] ...
# sluiced in SBINDIR (started by root or systemd), sluicectl in BINDIR (any
# user with the admin token may run it), man pages, the systemd unit with
# these paths put in, an example configuration in SYSCONFDIR/sluice (never
# over one already there), the alert rules, the Grafana dashboard and the
# full example configuration in DATADIR/sluice, the documentation in DOCDIR.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
SBINDIR        ?= $(PREFIX)/sbin
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/sluice
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL        ?= install
DOCS           := README.md LICENSE $(wildcard docs/*.md)

install: all
	$(Q)$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/sluice \
		$(DESTDIR)$(DATADIR)/sluice/grafana $(DESTDIR)$(DOCDIR)
	$(call msg,INSTALL,$(DESTDIR)$(SBINDIR)/sluiced)$(INSTALL) -m 0755 $(B)/sluiced $(DESTDIR)$(SBINDIR)/sluiced
	$(call msg,INSTALL,$(DESTDIR)$(BINDIR)/sluicectl)$(INSTALL) -m 0755 $(B)/sluicectl $(DESTDIR)$(BINDIR)/sluicectl
	$(Q)$(INSTALL) -m 0644 man/sluiced.8 man/sluicectl.8 $(DESTDIR)$(MANDIR)/man8/
	$(Q)$(INSTALL) -m 0644 man/sluice.conf.5 $(DESTDIR)$(MANDIR)/man5/
	$(call msg,INSTALL,$(DESTDIR)$(SYSTEMDUNITDIR)/sluiced.service)sed \
		-e 's#/usr/local/sbin/sluiced#$(SBINDIR)/sluiced#g' \
		-e 's#/usr/local/sbin/sluicectl#$(BINDIR)/sluicectl#g' \
		-e 's#/etc/sluice/#$(SYSCONFDIR)/sluice/#g' \
		examples/sluiced.service > $(DESTDIR)$(SYSTEMDUNITDIR)/sluiced.service.tmp
	$(Q)chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/sluiced.service.tmp && \
		mv $(DESTDIR)$(SYSTEMDUNITDIR)/sluiced.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/sluiced.service
	$(Q)if [ -e $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf ]; then \
		echo "  KEEP    $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf (already there)"; \
	else \
		printf '  %-7s %s\n' INSTALL $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf; \
		$(INSTALL) -m 0644 examples/sluice.conf $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf; \
	fi
	$(Q)$(INSTALL) -m 0644 examples/alerts.yml examples/sluice-full.conf $(DESTDIR)$(DATADIR)/sluice/
	$(Q)$(INSTALL) -m 0644 examples/grafana/sluice.json $(DESTDIR)$(DATADIR)/sluice/grafana/
	$(Q)$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/

# ---- Debian package ----------------------------------------------------------
# dpkg-buildpackage on a copy of the tracked files in $(B)/deb (it writes the
# package beside the source folder, so the copy keeps it under $(B)), binary
# only and unsigned. The kernel-side objects ($(B)/vmlinux.h, $(B)/bpf/) are
# reused when built: no C flag reaches them. DEB_BUILD_OPTIONS=nocheck skips
# the unit tests the package build runs.
DEB_VERSION  = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH     = $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE     = $(B)/sluice_$(DEB_VERSION)_$(DEB_ARCH).deb

deb:
	$(Q)command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || { \
		echo "make deb needs dpkg-dev and debhelper: make deps installs them" >&2; exit 1; }
	$(Q)rm -rf $(B)/deb && mkdir -p $(B)/deb/src
	$(call msg,COPY,$(B)/deb/src)if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
			tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(B)/deb/src; \
	else \
		tar --exclude='./$(B)' --exclude='./$(B).deps.log' --exclude=node_modules -cf - . | \
			tar -xf - -C $(B)/deb/src; \
	fi
	$(Q)if [ -e $(B)/bpf/sluice.skel.h ]; then \
		mkdir -p $(B)/deb/src/build && cp -pr $(B)/vmlinux.h $(B)/bpf $(B)/deb/src/build/; fi
	$(call msg,DPKG,$(DEB_FILE))cd $(B)/deb/src && \
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL VERSION=$(VERSION) \
		dpkg-buildpackage -b -uc -us --no-pre-clean > ../build.log 2>&1 || { tail -n 40 ../build.log; exit 1; }
	$(Q)mv $(B)/deb/sluice_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB_FILE)
	$(Q)echo "  DEB     $(DEB_FILE)"

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
