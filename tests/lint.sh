#!/bin/sh
# Static analysis of the server's sources: cppcheck and clang-tidy must report
# nothing. The last line is "N passed, N failed".
#
# The checks left out, and why:
#  cppcheck
#   knownConditionTrueFalse in outbuf.c: outbuf_printf keeps a check that holds
#       for today's MAX_RESPONSE_LINE, in case the limit is ever made tiny.
#   knownConditionTrueFalse in index.c: the batch of entries written is at
#       least 1 inside the loop over messages; cppcheck misses that bound.
#  clang-tidy
#   clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling: asks
#       for C11 Annex K (memcpy_s, snprintf_s), which glibc does not have.
#   clang-analyzer-security.insecureAPI.strcpy: flags every strcpy/strcat,
#       bounded or not (update.c appends a suffix to a path it has just
#       limited to fit); bounds are checked where the strings are made, and
#       the fuzzers and the ASan stage test them.
#   clang-analyzer-valist.Uninitialized: false positive on every
#       va_start + vsnprintf (llvm/llvm-project#40656).
#   clang-analyzer-core.UndefinedBinaryOperatorResult and the argument check
#       of clang-analyzer-core.CallAndMessage: the analyzer does not inline
#       variadic functions (update.c's fail() and friends) nor model
#       getpeername(), so every value set on such a path looks like garbage to
#       it. gcc -Wall -O2 (maybe-uninitialized) and the valgrind stage cover
#       uninitialized reads.
#   bugprone-easily-swappable-parameters, bugprone-branch-clone: style.
#   bugprone-reserved-identifier, cert-dcl37-c, cert-dcl51-cpp: _GNU_SOURCE.
#   bugprone-implicit-widening-of-multiplication-result: limits.h's constant
#       products like (256 * 1024); the compiler diagnoses constant overflow.
#   bugprone-not-null-terminated-result: memcpy into buffers that are not
#       strings (response lines built in place).
#   cert-err33-c: unchecked snprintf/fprintf results, where truncation of a
#       diagnostic is intended; system calls are checked by review and tests.
set -u
cd "$(dirname "$0")/.." || exit 2
SRCS="session.c mbox.c index.c lock.c update.c auth.c outbuf.c log.c fileio.c pop3d.c throttle.c peer.c dotlocker.c options.c client.c found.c config_check.c maildrop.c recover.c hashcmd.c preauth.c testhooks.c"
out=build/lint
mkdir -p "$out"
passed=0
failed=0

result() {   # result ok|FAILED name log
	if [ "$1" = ok ]; then
		echo "ok      $2"
		passed=$((passed + 1))
	else
		echo "FAILED  $2"
		sed 's/^/    /' "$3"
		failed=$((failed + 1))
	fi
}

if command -v cppcheck >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	if cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
		--enable=warning,style,performance,portability \
		--suppress=missingIncludeSystem --suppress=knownConditionTrueFalse:outbuf.c \
		--suppress=knownConditionTrueFalse:index.c \
		-D__linux__ -D__x86_64__ $SRCS >"$out/cppcheck.log" 2>&1; then
		result ok "lint:cppcheck"
	else
		result FAILED "lint:cppcheck" "$out/cppcheck.log"
	fi
else
	echo "cppcheck is not installed (apt-get install cppcheck)" >"$out/cppcheck.log"
	result FAILED "lint:cppcheck" "$out/cppcheck.log"
fi

CHECKS="-*,clang-analyzer-*,bugprone-*,cert-*"
for c in clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling \
	clang-analyzer-security.insecureAPI.strcpy \
	clang-analyzer-valist.Uninitialized clang-analyzer-core.UndefinedBinaryOperatorResult \
	bugprone-easily-swappable-parameters bugprone-branch-clone bugprone-reserved-identifier \
	cert-dcl37-c cert-dcl51-cpp bugprone-implicit-widening-of-multiplication-result \
	bugprone-not-null-terminated-result cert-err33-c; do
	CHECKS="$CHECKS,-$c"
done
CONFIG="{CheckOptions: [{key: 'clang-analyzer-core.CallAndMessage:ArgInitializedness', value: 'false'}]}"
if command -v clang-tidy >/dev/null 2>&1; then
	rm -f "$out/tidy-failed"
	# One file per process, two at a time.
	# shellcheck disable=SC2086
	printf '%s\n' $SRCS | xargs -P 2 -I{} sh -c \
		'clang-tidy --quiet --warnings-as-errors="*" -checks="$1" -config="$2" "$3" \
			-- -std=gnu11 -D_FORTIFY_SOURCE=2 -O2 >"$4/tidy-$3.log" 2>&1 || echo "$3" >>"$4/tidy-failed"' \
		sh "$CHECKS" "$CONFIG" {} "$out"
	cat "$out"/tidy-*.log >"$out/clang-tidy.log"
	if [ -f "$out/tidy-failed" ]; then
		rm -f "$out/tidy-failed"
		grep -v 'warnings generated\|^Suppressed\|^Use -header-filter\|NOLINT' \
			"$out/clang-tidy.log" >"$out/clang-tidy.short" || true
		result FAILED "lint:clang-tidy" "$out/clang-tidy.short"
	else
		result ok "lint:clang-tidy"
	fi
	rm -f "$out"/tidy-*.log
else
	echo "clang-tidy is not installed (apt-get install clang-tidy)" >"$out/clang-tidy.log"
	result FAILED "lint:clang-tidy" "$out/clang-tidy.log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
