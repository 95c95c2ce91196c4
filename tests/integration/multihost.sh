#!/bin/sh
# Two pop3d "hosts" behind HAProxy and nginx's mail proxy, in network
# namespaces this script makes (10.231.1.0/24, 10.231.2.0/24 on veth pairs
# between them, nothing else) and removes; the test runs in the proxies'
# namespace, whose loopback the clients use. Root only.
[ "$(id -u)" -eq 0 ] || { echo "skipped: network namespaces need root"; exit 77; }
for c in ip haproxy nginx socat; do
	command -v $c >/dev/null 2>&1 || { echo "skipped: $c is not installed"; exit 77; }
done
[ -e /usr/lib/nginx/modules/ngx_mail_module.so ] || { echo "skipped: libnginx-mod-mail is not installed"; exit 77; }
lb=p3lb$$ a=p3a$$ b=p3b$$
cleanup() {
	for ns in $lb $a $b; do
		ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del $ns 2>/dev/null
	done
}
trap cleanup EXIT INT TERM
if ! ip netns add $lb 2>/dev/null; then
	echo "skipped: cannot make network namespaces here"; exit 77
fi
ip netns add $a && ip netns add $b || exit 1
set -e
for ns in $lb $a $b; do ip -n $ns link set lo up; done
i=1
for host in $a $b; do
	ip -n $lb link add veth$i type veth peer name eth0 netns $host
	ip -n $lb addr add 10.231.$i.1/24 dev veth$i
	ip -n $lb link set veth$i up
	ip -n $host addr add 10.231.$i.2/24 dev eth0
	ip -n $host link set eth0 up
	i=$((i + 1))
done
set +e
NS_LB=$lb NS_A=$a NS_B=$b ip netns exec $lb timeout 300 python3 "$(dirname "$0")/multihost.py"
