#!/bin/sh
# Install the Debian packages a goal needs (as root), or print the apt-get line.
# Usage: tests/deps.sh build|check
set -eu
goal=${1:-build}
missing=""

# Installed daemons (nginx, haproxy, xinetd, fail2ban ...) must not start and
# listen on this machine: a policy-rc.d that refuses every start is in place
# while apt-get installs, unless the administrator already has one.
POLICY=/usr/sbin/policy-rc.d
held=""
hold_services() {
	[ -e $POLICY ] && return 0
	printf '#!/bin/sh\nexit 101\n' >$POLICY && chmod 755 $POLICY && held=yes
	trap release_services EXIT
}
release_services() {
	[ "$held" = yes ] && rm -f $POLICY
	held=""
}

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
	need_cmd s-nail s-nail
	# Perl's Net::POP3 (perl itself) with AUTH LOGIN, and Mail::POP3Client.
	perl -MAuthen::SASL -e 1 2>/dev/null || missing="$missing libauthen-sasl-perl"
	perl -MMail::POP3Client -e 1 2>/dev/null || missing="$missing libmail-pop3client-perl"
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
	# Side by side with Dovecot on a Maildir (tests/integration/dovecot_maildir.sh):
	# its pop3 binary, run pre-authenticated; the service never starts (policy-rc.d).
	# dovecot-pop3d and popa3d conflict (pop3-server): popa3d is never installed.
	[ -x /usr/lib/dovecot/pop3 ] || missing="$missing dovecot-core dovecot-pop3d"
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

# The inetd line of pop3d(8) (tests/integration/first_day.py) needs
# openbsd-inetd, which conflicts with xinetd (both are an inet-superserver):
# it is never installed here. Its .deb, and those of what it needs that this
# machine lacks, wait in INETD_CACHE (first_day.py names the same directory)
# for the test's throw-away root to install them in place of xinetd. Fetched
# only when missing; without them that test skips the inetd line, saying so.
INETD_CACHE=${POP3D_INETD_CACHE:-/var/cache/pop3d-tests/openbsd-inetd}
updated=no

apt_update() {
	[ "$updated" = yes ] && return 0
	updated=yes
	apt-get update -qq </dev/null
}

inetd_debs_wanted() {
	# What apt would install, xinetd removed (a simulation: nothing changes).
	apt-get install -s -qq --no-install-recommends openbsd-inetd </dev/null 2>/dev/null
}

apt_download() {
	# shellcheck disable=SC2086
	apt-get download -qq $1 </dev/null >/dev/null 2>&1
}

fetch_inetd_debs() {
	command -v apt-get >/dev/null 2>&1 || return 1
	sim=$(inetd_debs_wanted || { apt_update && inetd_debs_wanted; }) || return 1
	pkgs=$(printf '%s\n' "$sim" | sed -n 's/^Inst \([^ ]*\) .*/\1/p' | tr '\n' ' ')
	mkdir -p "$INETD_CACHE" || return 1
	# The exact file names apt would fetch (name_version_arch.deb).
	files=""
	if [ -n "$pkgs" ]; then
		# shellcheck disable=SC2086
		files=$(apt-get download --print-uris $pkgs </dev/null | awk '{ print $2 }') ||
			return 1
	fi
	get=""
	for f in $files; do [ -s "$INETD_CACHE/$f" ] || get="$get ${f%%_*}"; done
	if [ -n "$get" ]; then
		tmp=$(mktemp -d "$INETD_CACHE/.fetch.XXXXXX") || return 1
		chown _apt "$tmp" 2>/dev/null || true   # apt fetches as _apt where it can
		if ! (cd "$tmp" && { apt_download "$get" || { apt_update && apt_download "$get"; }; }) ||
				! mv "$tmp"/*.deb "$INETD_CACHE"/; then
			rm -rf "$tmp"
			return 1
		fi
		rmdir "$tmp"
		echo "tests/deps.sh: fetched (not installed):$get into $INETD_CACHE," \
			"for the inetd line in the first-day test's throw-away root" >&2
	fi
	# The list the test installs (empty: openbsd-inetd is installed); other
	# files are stale versions.
	for f in $files; do echo "$f"; done >"$INETD_CACHE/debs.new" &&
		mv "$INETD_CACHE/debs.new" "$INETD_CACHE/debs" || return 1
	for f in "$INETD_CACHE"/*.deb; do
		[ -e "$f" ] || continue
		grep -qxF "${f##*/}" "$INETD_CACHE/debs" || rm -f "$f"
	done
}

if [ -n "$missing" ]; then
	# Each package once, in a stable order.
	# shellcheck disable=SC2086
	missing=$(printf '%s\n' $missing | sort -u | tr '\n' ' ')
	if [ "$(id -u)" -eq 0 ]; then
		echo "Installing:$missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt_update
		hold_services
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null
		release_services
	else
		echo "Missing Debian packages. Install them with:" >&2
		echo "  sudo apt-get install -y $missing" >&2
		exit 1
	fi
fi
# Only root runs the first-day test.
[ "$goal" = check ] && [ "$(id -u)" -eq 0 ] || exit 0
if ! fetch_inetd_debs; then
	echo "tests/deps.sh: cannot fetch openbsd-inetd's .deb into $INETD_CACHE:" \
		"the first-day test will skip the inetd line" >&2
fi
exit 0
