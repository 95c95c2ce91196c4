#!/bin/sh
# Install the Debian packages a goal needs (as root), or print the apt-get line.
# Usage: tests/deps.sh build|check
set -eu
goal=${1:-build}
missing=""

need_cmd()    { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need_header() { [ -e "/usr/include/$1" ] || missing="$missing $2"; }

need_cmd cc gcc
need_cmd make make
need_header crypt.h libcrypt-dev
need_header seccomp.h libseccomp-dev
if [ "$goal" = check ]; then
	need_header cmocka.h libcmocka-dev
	need_cmd python3 python3
	need_cmd socat socat
	# Several hosts behind proxies (tests/integration/multihost.sh).
	need_cmd ip iproute2
	need_cmd haproxy haproxy
	need_cmd nginx nginx-light
	[ -e /usr/lib/nginx/modules/ngx_mail_module.so ] || missing="$missing libnginx-mod-mail"
	need_cmd procmail procmail
	need_cmd dotlockfile liblockfile-bin
	need_cmd valgrind valgrind
	# Deployment and client tests (tests/integration/deploy_*, client_*).
	need_cmd xinetd xinetd
	need_cmd stunnel4 stunnel4
	need_cmd tcpserver ucspi-tcp
	need_cmd openssl openssl
	need_cmd curl curl
	need_cmd fetchmail fetchmail
	need_cmd mpop mpop
	need_cmd getmail getmail6
	need_cmd fail2ban-regex fail2ban
	need_cmd systemd-analyze systemd
	need_cmd systemd-socket-activate systemd
	need_cmd groff groff-base
	# The Debian package (tests/integration/debian_package.sh).
	need_cmd dpkg-buildpackage dpkg-dev
	need_cmd dh debhelper
	need_cmd lintian lintian
	need_cmd fakeroot fakeroot
	need_cmd adduser adduser
	need_cmd man man-db
	# The benchmark's smoke run (tests/integration/bench_smoke.sh).
	[ -x /usr/bin/time ] || missing="$missing time"
	# Security stages: libFuzzer targets (clang and its runtime), static analysis.
	need_cmd clang clang
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
		missing="$missing libclang-rt-dev"
	need_cmd cppcheck cppcheck
	need_cmd clang-tidy clang-tidy
	need_cmd strace strace   # tests/security/login_delay.py
	need_cmd hardening-check devscripts   # tests/security/hardening.py
	# The power-cut walk (tests/powercut, tests/integration/powercut.sh): FUSE from Python.
	[ -e /usr/lib/python3/dist-packages/fusepy.py ] || missing="$missing python3-fusepy"
fi

[ -z "$missing" ] && exit 0
# Each package once, in a stable order.
missing=$(printf '%s\n' $missing | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ]; then
	echo "Installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null
else
	echo "Missing Debian packages. Install them with:" >&2
	echo "  sudo apt-get install -y $missing" >&2
	exit 1
fi
