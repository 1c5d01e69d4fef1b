#!/usr/bin/env bash
# maqet screendump: a valid PNG of the guest's screen (signature, IHDR with
# the display's size), at a path relative to the caller's working directory,
# owned by the caller.  Everything runs as an unprivileged user (nobody) when
# the test runs as root, so ownership is checked against a uid that is not
# QEMU's default; QEMU's own file lives only in maqet's runtime dir and is
# gone afterwards.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && getent passwd nobody >/dev/null; then
	U=$(id -u nobody)
	G=$(id -g nobody)
	chmod 755 "$T"
	mkdir -p "$T/u/shots" "$T/u/m"
	cp "$MAQET" "$T/u/maqet"
	chown -R "$U:$G" "$T/u"
	as_user() { setpriv --reuid="$U" --regid="$G" --clear-groups -- env HOME="$T/u" "$@"; }
	MQBIN=$T/u/maqet
else
	U=$(id -u)
	mkdir -p "$T/u/shots" "$T/u/m"
	as_user() { "$@"; }
	MQBIN=$MAQET
fi
STATE=$T/u/state
RT=$T/u/rt # lib.sh's cleanup kills every QEMU under $RT
export MAQET_STATE_DIR=$STATE MAQET_RUNTIME_DIR=$RT
umq() { as_user "$MQBIN" "$@"; }
vm_yaml s > "$T/u/m/s.yaml"
chmod 644 "$T/u/m/s.yaml"
set +e
OUT=$(umq apply -f "$T/u/m" 2>&1)
rc=$?
set -e
assert_eq "$rc" 0 "apply as uid $U: $OUT"
pid=$(umq status -o json | jq -r '.[0].pid')
assert_eq "$(stat -c %u "/proc/$pid")" "$U" "qemu runs as the caller"

set +e
OUT=$(cd "$T/u/shots" && umask 022 && umq screendump s screen.png 2>&1)
rc=$?
set -e
assert_eq "$rc" 0 "screendump: $OUT"
f=$T/u/shots/screen.png
[ -f "$f" ] || fail "no screen.png relative to the caller's cwd"
assert_eq "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a "PNG signature"
assert_eq "$(dd if="$f" bs=1 skip=12 count=4 status=none)" IHDR "first chunk is IHDR"
w=$(dd if="$f" bs=1 skip=16 count=4 status=none | od -An -tu1 | awk '{ print $1*16777216 + $2*65536 + $3*256 + $4 }')
h=$(dd if="$f" bs=1 skip=20 count=4 status=none | od -An -tu1 | awk '{ print $1*16777216 + $2*65536 + $3*256 + $4 }')
[ "$w" -gt 0 ] && [ "$h" -gt 0 ] || fail "IHDR size ${w}x$h"
assert_eq "$(stat -c '%u %a' "$f")" "$U 644" "owner and mode (umask 022) of the screendump"
if command -v file >/dev/null; then
	assert_contains "$(file "$f")" "PNG image data, $w x $h"
fi
ls "$RT" | grep -q screendump && fail "qemu's temp file left in the runtime dir: $(ls "$RT")"
umq events s -o json | jq -e --arg f "$f" '[.[] | select(.action == "screendump" and .outcome == "ok" and .detail == $f)] | length == 1' >/dev/null ||
	fail "no screendump event"

# a directory, a stopped vm
set +e
OUT=$(umq screendump s "$T/u/shots" 2>&1); rc=$?
set -e
assert_eq "$rc" 1 "screendump into a directory"
assert_contains "$OUT" "is a directory"
set +e
OUT=$(umq stop s --force 2>&1); rc=$?
set -e
assert_eq "$rc" 0 "stop: $OUT"
set +e
OUT=$(cd "$T/u/shots" && umq screendump s two.png 2>&1); rc=$?
set -e
assert_eq "$rc" 1 "screendump of a stopped vm"
assert_contains "$OUT" "not running"
[ ! -e "$T/u/shots/two.png" ] || fail "file written for a stopped vm"
pass "screendump PNG owned by uid $U"
