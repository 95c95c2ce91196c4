# pop3d — build, test, install.
CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=

CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = $(CSTD) $(WARN) $(HARDEN) $(CFLAGS)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS     := -lcrypt
TEST_LIBS := -lcmocka

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=address,undefined
endif

# Everything but main(): shared by the binary and the unit tests.
LIB_SRCS := session.c mbox.c lock.c update.c auth.c outbuf.c log.c
LIB_OBJS := $(LIB_SRCS:.c=.o)
HEADERS  := $(wildcard *.h)

TESTS    := tests/test_outbuf tests/test_mbox tests/test_lock tests/test_update \
            tests/test_auth tests/test_session

.PHONY: all deps check unit demo clean install
all: pop3d

deps:
	@sh tests/deps.sh build

pop3d: pop3d.o $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

%.o: %.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

tests/%.o: tests/%.c $(HEADERS) tests/testutil.h
	$(CC) $(ALL_CFLAGS) -iquote . -c -o $@ $<

# Each unit test links only the modules it tests (and what they use).
tests/test_outbuf:  tests/test_outbuf.o  outbuf.o log.o
tests/test_mbox:    tests/test_mbox.o    mbox.o lock.o outbuf.o log.o
tests/test_lock:    tests/test_lock.o    lock.o log.o
tests/test_update:  tests/test_update.o  update.o mbox.o lock.o outbuf.o log.o
tests/test_auth:    tests/test_auth.o    auth.o log.o
tests/test_session: tests/test_session.o session.o mbox.o lock.o update.o outbuf.o log.o
$(TESTS): tests/testutil.o
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

unit: $(TESTS)

# The README's test command: unit tests, then the real binary through pipes.
check:
	@sh tests/deps.sh check
	@$(MAKE) --no-print-directory pop3d unit
	@sh tests/run.sh

demo:
	@sh tests/deps.sh build
	@$(MAKE) --no-print-directory pop3d
	@sh examples/demo.sh

install: pop3d
	install -d $(DESTDIR)$(PREFIX)/sbin
	install -m 755 pop3d $(DESTDIR)$(PREFIX)/sbin/pop3d

clean:
	rm -f pop3d *.o tests/*.o $(TESTS)
	rm -rf tests/tmp build
