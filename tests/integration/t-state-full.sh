#!/usr/bin/env bash
# A full state dir: `maqet apply` says so in plain words - "cannot record vm
# 'NAME': no space left on device in state dir 'DIR'", never SQLite's "disk
# I/O error" -, exits 1, and leaves no QEMU running that no record knows of.
# Once there is room again, the same apply works.
#
# The state dir is a 1 MiB tmpfs, so this needs root (exit 77 = skip when the
# mount is refused).  The fake QEMU stands in for QEMU.
source "$(dirname "$0")/lib.sh"

FULL=$T/full
mkdir -p "$FULL"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=1m,mode=0700 tmpfs "$FULL" 2>/dev/null; then
	echo "skip: cannot mount a tmpfs as the state dir (needs root)"
	exit 77
fi
# Unmount after lib.sh's cleanup has killed this test's QEMUs, before it
# removes $T; keep the test's exit status for cleanup.
full_cleanup() {
	local rc=$?
	set +e
	local deadline=$((SECONDS + 10))
	while pgrep -f -- "$RT/" >/dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do
		pkill -9 -f -- "$RT/" 2>/dev/null || true
		sleep 0.05
	done
	umount "$FULL" 2>/dev/null || umount -l "$FULL" 2>/dev/null || true
	(exit $rc)
	cleanup
}
trap full_cleanup EXIT
FULL=$(realpath "$FULL") # the path maqet names in its messages

mkdir -p "$M/seed" "$M/web"
fake_yaml seed normal "state: stopped" > "$M/seed/seed.yaml"
fake_yaml web normal > "$M/web/web.yaml"

# The database exists (recorded while there was room), then the disk fills.
run_rc rc "$MAQET" --state-dir "$FULL" apply -f "$M/seed"
assert_eq "$rc" 0 "seed apply: $OUT"
[ -f "$FULL/maqet.db" ] || fail "no database in $FULL"
dd if=/dev/zero of="$FULL/fill" bs=4k status=none 2>/dev/null || true
[ "$(df --output=avail -B1 "$FULL" | tail -n 1 | tr -d ' ')" = 0 ] || fail "tmpfs not full: $(df -h "$FULL")"
# Room for the pid line apply writes into its lock file (one 4 KiB page) and
# for SQLite's 32 KiB shared-memory index, which every open needs (an open
# with no room for it fails before anything is planned), and not one page
# more: the first record written is the one that finds the disk full.
size=$(stat -c %s "$FULL/fill")
truncate -s $((size / 4096 * 4096 - 4096 - 32768)) "$FULL/fill"

run_rc rc "$MAQET" --state-dir "$FULL" apply -f "$M/web"
echo "$OUT"
assert_eq "$rc" 1 "apply on a full state dir exits 1"
assert_contains "$OUT" "cannot record vm 'web': no space left on device in state dir '$FULL'"
assert_not_contains "$OUT" "disk I/O error"
assert_not_contains "$OUT" "i/o error"
# one line says it, not the item's line and then the store error again
assert_eq "$(printf '%s\n' "$OUT" | grep -c "no space left on device")" 1 "the full disk is reported once: $OUT"
# No QEMU of this test runs: none was started without a record, or it was
# stopped again.
if pgrep -f -- "$RT/" >/dev/null 2>&1; then
	fail "a qemu is left running: $(pgrep -af -- "$RT/")"
fi
pass "a full state dir fails apply with a clear message and leaves no qemu running"

# Room again: the same apply records and starts the vm.
rm -f "$FULL/fill"
run_rc rc "$MAQET" --state-dir "$FULL" apply -f "$M/web"
assert_eq "$rc" 0 "apply after freeing space: $OUT"
st=$("$MAQET" --state-dir "$FULL" status -o json | jq -r '.[] | select(.name == "web") | .status')
assert_eq "$st" running "web runs once there is room"
pid=$("$MAQET" --state-dir "$FULL" status -o json | jq -r '.[] | select(.name == "web") | .pid')
proc_alive "$pid" || fail "web's qemu (pid $pid) is not alive"
# A stop whose hold cannot be saved says so in one line, exits 1, and leaves
# the machine as the record says (web still running).
dd if=/dev/zero of="$FULL/fill" bs=4k status=none 2>/dev/null || true
size=$(stat -c %s "$FULL/fill")
truncate -s $((size / 4096 * 4096 - 4096 - 32768)) "$FULL/fill"
run_rc rc "$MAQET" --state-dir "$FULL" stop web --timeout 2s
echo "$OUT"
assert_eq "$rc" 1 "stop on a full state dir exits 1"
assert_contains "$OUT" "cannot stop vm 'web'"
assert_contains "$OUT" "no space left on device in state dir '$FULL'"
assert_eq "$(printf '%s\n' "$OUT" | grep -c "no space left on device")" 1 "the full disk is reported once: $OUT"
assert_not_contains "$OUT" "ok      web"
st=$("$MAQET" --state-dir "$FULL" status -o json | jq -r '.[] | select(.name == "web") | .status')
if proc_alive "$pid"; then
	assert_eq "$st" running "web's qemu runs, so the record says running"
else
	# stopped but not recorded as held: said so, and the record is not 'running'
	assert_contains "$OUT" "its qemu was stopped, but the hold was not saved"
	assert_ne "$st" running "web's qemu is gone"
fi
rm -f "$FULL/fill"
pass "a stop whose hold cannot be saved exits 1 with one line ($st)"

run_rc rc "$MAQET" --state-dir "$FULL" stop web --timeout 2s
assert_eq "$rc" 0 "stop web: $OUT"
wait_until 10 proc_dead "$pid" || fail "web's qemu still alive after stop"
pass "the same apply works once there is room"
