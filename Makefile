# pop3d — build, test, install.
CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=

CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
# Journals of accounts that cannot create files beside their mailbox (Debian's
# 2775 root:mail /var/mail) go to JOURNALDIR/UID when --journal-dir is not given.
JOURNALDIR ?= /var/lib/pop3d-journal
ALL_CFLAGS = $(CSTD) $(WARN) $(HARDEN) -DPOP3D_JOURNAL_DIR='"$(JOURNALDIR)"' $(CFLAGS)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)
# x86: control-flow protection (endbr64 at every indirect-branch target of
# ours, shadow-stack compatible). ld keeps the binary's IBT/SHSTK note only if
# every object has it, and Debian 12's crt1.o/crti.o have none, so -z ibt
# -z shstk set it; the start files only call and return, and Linux enforces
# no IBT in user space. hardening-check needs the note (tests/security/hardening.py).
ifneq ($(findstring x86_64,$(shell $(CC) -dumpmachine)),)
HARDEN      += -fcf-protection
ALL_LDFLAGS += -Wl,-z,ibt,-z,shstk
endif
LIBS     := -lcrypt -lseccomp
TEST_LIBS := -lcmocka

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=address,undefined
endif

# Everything but main(): shared by the binary and the unit tests.
LIB_SRCS := session.c mbox.c index.c lock.c update.c auth.c outbuf.c log.c fileio.c \
            privsep.c sandbox.c proxy.c peer.c throttle.c dotlocker.c options.c client.c \
            found.c config_check.c maildrop.c recover.c hashcmd.c preauth.c maildir.c \
            maildir_update.c
LIB_OBJS := $(LIB_SRCS:.c=.o)
HEADERS  := $(wildcard *.h)

TESTS    := tests/test_outbuf tests/test_mbox tests/test_lock tests/test_update \
            tests/test_auth tests/test_session tests/test_index tests/test_mbox_sse2 \
            tests/test_privsep tests/test_proxy tests/test_peer tests/test_throttle \
            tests/test_lock_nfs tests/test_log tests/test_dotlocker tests/test_options \
            tests/test_client tests/test_config_check tests/test_maildrop tests/test_hashcmd \
            tests/test_preauth tests/test_maildir

.PHONY: all deps check unit demo clean install
all: pop3d

deps:
	@sh tests/deps.sh build

pop3d: pop3d.o $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

%.o: %.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

tests/%.o: tests/%.c $(HEADERS) tests/testutil.h tests/logcapture.h
	$(CC) $(ALL_CFLAGS) -iquote . -c -o $@ $<

# Each unit test links only the modules it tests (and what they use).
tests/test_outbuf:  tests/test_outbuf.o  outbuf.o log.o fileio.o
tests/test_mbox:    tests/test_mbox.o    mbox.o maildir.o maildir_update.o update.o index.o lock.o outbuf.o log.o fileio.o
tests/test_lock:    tests/test_lock.o    lock.o log.o fileio.o
# test_lock again where flock is emulated with fcntl locks, as the NFS client does.
tests/test_lock_nfs: tests/test_lock_nfs.o tests/lock-nfs.o log.o fileio.o
tests/test_lock_nfs.o: tests/test_lock.c $(HEADERS) tests/testutil.h $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -iquote . -DPOP3D_TEST_FLOCK_AS_FCNTL -c -o $@ tests/test_lock.c
tests/lock-nfs.o: lock.c $(HEADERS) $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -DPOP3D_TEST_FLOCK_AS_FCNTL -c -o $@ lock.c
tests/test_update:  tests/test_update.o  update.o mbox.o maildir.o maildir_update.o index.o lock.o outbuf.o log.o fileio.o
TESTS    += tests/test_maildir_update
tests/test_maildir_update: tests/test_maildir_update.o maildir_update.o maildir.o update.o mbox.o index.o lock.o outbuf.o log.o fileio.o
tests/test_auth:    tests/test_auth.o    auth.o log.o fileio.o
tests/test_log:     tests/test_log.o     log.o
tests/test_options: tests/test_options.o options.o lock.o proxy.o peer.o throttle.o log.o fileio.o
tests/test_config_check: tests/test_config_check.o config_check.o found.o options.o auth.o lock.o proxy.o peer.o throttle.o mbox.o maildir.o maildir_update.o index.o update.o outbuf.o log.o fileio.o
tests/test_maildrop: tests/test_maildrop.o maildrop.o recover.o found.o options.o privsep.o auth.o sandbox.o proxy.o peer.o throttle.o dotlocker.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o
tests/test_hashcmd: tests/test_hashcmd.o hashcmd.o auth.o log.o fileio.o
tests/test_preauth: tests/test_preauth.o preauth.o options.o lock.o proxy.o peer.o throttle.o log.o fileio.o
tests/test_client:  tests/test_client.o client.o proxy.o peer.o session.o auth.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o
tests/test_session: tests/test_session.o session.o auth.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o
tests/test_privsep: tests/test_privsep.o privsep.o auth.o sandbox.o proxy.o peer.o throttle.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o
tests/test_dotlocker: tests/test_dotlocker.o dotlocker.o privsep.o auth.o sandbox.o proxy.o peer.o throttle.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o
tests/test_proxy:   tests/test_proxy.o proxy.o peer.o
# test_peer also parses PROXY headers: the third way an address arrives.
tests/test_peer:    tests/test_peer.o peer.o proxy.o
tests/test_throttle: tests/test_throttle.o throttle.o peer.o log.o fileio.o
tests/test_maildir: tests/test_maildir.o maildir.o maildir_update.o mbox.o update.o index.o lock.o outbuf.o log.o fileio.o
tests/test_index:   tests/test_index.o   index.o mbox.o maildir.o maildir_update.o lock.o outbuf.o log.o fileio.o update.o
# test_mbox again on mbox.c without its AVX2 paths: the SSE2 loops run wherever AVX2 does not.
tests/test_mbox_sse2: tests/test_mbox.o maildir.o maildir_update.o update.o  tests/mbox_sse2.o index.o lock.o outbuf.o log.o fileio.o
tests/mbox_sse2.o: mbox.c $(HEADERS) $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -DMBOX_SSE2_ONLY -c -o $@ mbox.c
$(TESTS): tests/testutil.o
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

unit: $(TESTS)

# A test build that SIGKILLs itself at a chosen step of an update (crash tests)
# and answers XTEST, the sandbox probes (tests/security/sandbox.py).
tests/pop3d-fault.o: pop3d.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -DPOP3D_FAULT_INJECTION -c -o $@ pop3d.c
tests/session-fault.o: session.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -DPOP3D_FAULT_INJECTION -c -o $@ session.c
# The hooks themselves (testhooks.c) are built into this binary only.
tests/testhooks.o: testhooks.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -DPOP3D_FAULT_INJECTION -c -o $@ testhooks.c
tests/pop3d-fault: tests/pop3d-fault.o tests/session-fault.o tests/testhooks.o \
		   $(filter-out session.o,$(LIB_OBJS))
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# A test build whose flock is emulated with fcntl locks, as on NFS
# (tests/integration/nfs_session_lock.py).
tests/pop3d-nfslock: pop3d.o tests/lock-nfs.o $(filter-out lock.o,$(LIB_OBJS))
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# An LD_PRELOAD shim that shows pop3d an older Landlock ABI, or none
# (tests/security/isolation.py): never the sanitizer flags, never installed.
tests/landlock-shim.so: tests/landlock_shim.c
	$(CC) $(CSTD) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# The README's test command: unit tests, then the real binary through pipes.
check:
	@sh tests/deps.sh check
	@$(MAKE) --no-print-directory pop3d unit tests/pop3d-fault tests/pop3d-nfslock \
		tests/landlock-shim.so
	@sh tests/run.sh

demo:
	@sh tests/deps.sh build
	@$(MAKE) --no-print-directory pop3d
	@sh examples/demo.sh

# Installation: the binary in sbin, the manual page, README, doc/*.md (README's
# links), and every example
# configuration in $(DOCDIR)/examples (xinetd.d/, stunnel/, stunnel/inetd/,
# systemd/, fail2ban/), their /usr/local/sbin/pop3d replaced by the real path.
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/pop3d
# --state-dir's default: made 0700 when missing (an existing one, e.g. a 1733
# --journal-dir, is left as it is); uninstall leaves it and its table.
STATEDIR   ?= /var/lib/pop3d
# JOURNALDIR (defined above, compiled in as the default): root's, 0755, made
# when missing (pop3d makes a 0700 UID/ of each account's own in it);
# uninstall leaves it and its journals.
# The STARTTLS front ends (port 110 through stunnel's protocol = pop3) too.
EXAMPLES   := xinetd.d/pop3 xinetd.d/pop3s xinetd.d/pop3-starttls \
              stunnel/pop3s.conf stunnel/pop3-starttls.conf \
              stunnel/inetd/pop3s.conf stunnel/inetd/pop3-starttls.conf \
              systemd/pop3d.socket systemd/pop3d@.service systemd/pop3s.socket \
              systemd/pop3s@.service systemd/pop3-starttls.socket \
              systemd/pop3-starttls@.service contrib/fail2ban/filter.d/pop3d.conf \
              contrib/fail2ban/jail.d/pop3d.conf
DOCS       := $(sort $(wildcard doc/*.md))
SET_PATHS  := s|/usr/local/sbin/pop3d|$(SBINDIR)/pop3d|g; s|/usr/local/share/doc/pop3d|$(DOCDIR)|g

.PHONY: uninstall
install: pop3d
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)
	install -m 755 pop3d $(DESTDIR)$(SBINDIR)/pop3d
	sed '$(SET_PATHS)' pop3d.8 >$(DESTDIR)$(MANDIR)/man8/pop3d.8
	chmod 644 $(DESTDIR)$(MANDIR)/man8/pop3d.8
	sed '$(SET_PATHS)' README >$(DESTDIR)$(DOCDIR)/README
	chmod 644 $(DESTDIR)$(DOCDIR)/README
	install -d $(DESTDIR)$(DOCDIR)/doc
	for f in $(DOCS); do \
		sed '$(SET_PATHS)' "$$f" >$(DESTDIR)$(DOCDIR)/$$f && \
		chmod 644 $(DESTDIR)$(DOCDIR)/$$f || exit 1; \
	done
	[ -d $(DESTDIR)$(STATEDIR) ] || install -d -m 700 $(DESTDIR)$(STATEDIR)
	[ -d $(DESTDIR)$(JOURNALDIR) ] || install -d -m 755 $(DESTDIR)$(JOURNALDIR)
	for f in $(EXAMPLES); do \
		dest=$(DESTDIR)$(DOCDIR)/examples/$${f#contrib/}; \
		install -d "$${dest%/*}" && sed '$(SET_PATHS)' "$$f" >"$$dest" && \
		chmod 644 "$$dest" || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/pop3d $(DESTDIR)$(MANDIR)/man8/pop3d.8 $(DESTDIR)$(DOCDIR)/README
	for f in $(EXAMPLES); do rm -f $(DESTDIR)$(DOCDIR)/examples/$${f#contrib/}; done
	for f in $(DOCS); do rm -f $(DESTDIR)$(DOCDIR)/$$f; done
	-cd $(DESTDIR)$(DOCDIR) 2>/dev/null && rmdir examples/fail2ban/filter.d \
		examples/fail2ban/jail.d examples/fail2ban examples/xinetd.d \
		examples/stunnel/inetd examples/stunnel \
		examples/systemd examples doc 2>/dev/null; rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null; true

clean:
	rm -f pop3d *.o tests/*.o $(TESTS) tests/pop3d-fault tests/pop3d-nfslock tests/landlock-shim.so
	rm -rf tests/tmp build

# ---- Build flags: changing them (SANITIZE=1, CC=clang ...) rebuilds every object ----
FLAGS_STAMP := build/flags
.PHONY: FORCE
FORCE:
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' >$@
pop3d.o $(LIB_OBJS) tests/testutil.o $(TESTS:=.o) tests/pop3d-fault.o tests/session-fault.o tests/testhooks.o: $(FLAGS_STAMP)

# ---- Fuzzing (tests/fuzz, doc/development.md) ----
# make fuzz: libFuzzer targets with ASan + UBSan, build/fuzz/fuzz_* (clang;
# FUZZ_CC=afl-clang-fast builds the same targets for AFL++).
# make fuzz-replay: the same targets with a plain main() (tests/fuzz/driver.c)
# built by $(CC), build/fuzz/replay_*: replay seeds and crashes, run them under
# valgrind, or fuzz them with AFL++ in file mode.
# Objects live under build/fuzz, so the repository's own objects are never touched.
FUZZ_CC     ?= clang
FUZZ_DIR    := build/fuzz
FUZZ_NAMES  := session mbox mbox_split passwd sasl privsep proxy maildir_name
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# MBOX_SSE2_ONLY: the fuzzer runs the scan's and RETR's baseline (SSE2) loops,
# which the unit tests, on a CPU with AVX2, never reach.
FUZZ_CFLAGS  = $(CSTD) $(WARN) -O1 -g $(FUZZ_SAN) -DMBOX_SSE2_ONLY -iquote . -iquote tests/fuzz
FUZZ_DEPS   := $(HEADERS) tests/fuzz/fuzz_util.h

.PHONY: fuzz fuzz-replay fuzz-run lint
fuzz: $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
fuzz-replay: $(FUZZ_NAMES:%=$(FUZZ_DIR)/replay_%)

# Run every target for FUZZ_SECONDS each; prints executions and crashes.
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

$(FUZZ_DIR)/lf/%.o: %.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_DIR)/lf/%.o: tests/fuzz/%.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_DIR)/lf/fuzz_mbox_split.o: tests/fuzz/fuzz_mbox.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DMBOX_SPLIT -c -o $@ $<
$(FUZZ_DIR)/plain/%.o: %.c $(FUZZ_DEPS) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -iquote . -c -o $@ $<
$(FUZZ_DIR)/plain/%.o: tests/fuzz/%.c $(FUZZ_DEPS) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -iquote . -iquote tests/fuzz -c -o $@ $<
$(FUZZ_DIR)/plain/fuzz_mbox_split.o: tests/fuzz/fuzz_mbox.c $(FUZZ_DEPS) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -iquote . -iquote tests/fuzz -DMBOX_SPLIT -c -o $@ $<

# fuzz_NAME and replay_NAME from the target and the modules it uses.
define FUZZ_TARGET
$(FUZZ_DIR)/fuzz_$(1): $(addprefix $(FUZZ_DIR)/lf/,fuzz_$(1).o fuzz_util.o $(2))
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(LIBS)
$(FUZZ_DIR)/replay_$(1): $(addprefix $(FUZZ_DIR)/plain/,fuzz_$(1).o fuzz_util.o driver.o $(2))
	$$(CC) $$(ALL_CFLAGS) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(eval $(call FUZZ_TARGET,session,session.o auth.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,mbox,mbox.o maildir.o maildir_update.o update.o index.o lock.o outbuf.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,mbox_split,mbox.o maildir.o maildir_update.o update.o index.o lock.o outbuf.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,passwd,auth.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,sasl,session.o auth.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,privsep,privsep.o auth.o sandbox.o proxy.o peer.o throttle.o mbox.o maildir.o maildir_update.o index.o lock.o update.o outbuf.o log.o fileio.o))
$(eval $(call FUZZ_TARGET,proxy,proxy.o peer.o))
$(eval $(call FUZZ_TARGET,maildir_name,maildir.o maildir_update.o mbox.o update.o index.o lock.o outbuf.o log.o fileio.o))

# ---- Static analysis: cppcheck and clang-tidy over the server's sources ----
lint:
	@sh tests/lint.sh

# ---- Debian package (debian/) ----
# make deb: dpkg-buildpackage -us -uc -b in a copy of the tracked (and new,
# not ignored) files under build/deb/src, so this tree's objects and ./pop3d
# stay as they are; the .deb, .changes and .buildinfo land in build/deb.
.PHONY: deb
deb:
	rm -rf build/deb && mkdir -p build/deb/src
	git ls-files -z --cached --others --exclude-standard | \
		xargs -0 sh -c 'for f; do [ -f "$$f" ] && printf "%s\0" "$$f"; done' sh | \
		tar --null -T - -cf - | tar -C build/deb/src -xf -
	cd build/deb/src && dpkg-buildpackage -us -uc -b
	@ls build/deb/*.deb

# ---- Power-cut test (tests/powercut) ----
# Test builds of pop3d with one fsync of update.c left out, for the power-cut
# walk's test of itself (tests/integration/powercut.sh): each must be caught.
# Only these binaries are built with POP3D_TEST_SKIP_FSYNC, never ./pop3d.
POWERCUT_SKIPS := journal journal_dir mailbox mailbox_before_journal
POWERCUT_BINS  := $(POWERCUT_SKIPS:%=tests/pop3d-skip-%)
.PHONY: powercut-bins powercut-clean
.SECONDARY: $(POWERCUT_SKIPS:%=tests/update-skip-%.o)
powercut-bins: $(POWERCUT_BINS)
tests/update-skip-%.o: update.c $(HEADERS) $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -DPOP3D_TEST_SKIP_FSYNC=$* -c -o $@ update.c
tests/pop3d-skip-%: pop3d.o tests/update-skip-%.o $(filter-out update.o,$(LIB_OBJS))
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
check: powercut-bins
clean: powercut-clean
powercut-clean:
	rm -f $(POWERCUT_BINS) tests/update-skip-*.o
	rm -rf tests/tmp/powercut*
