#!/usr/bin/env bash
# Issue 7 item 2, the failing-disk half: while every write to the state
# database fails with EIO (an LD_PRELOAD shim, toggled by a flag file),
# `maqet apply` and `maqet stop` exit 1 with one clear line naming the i/o
# error in the state dir, and leave the machine as the record says (no QEMU
# that no record knows of).  Once the disk works again, one apply converges.
source "$(dirname "$0")/lib.sh"
[ -n "${MQ_SHIM_EIO_SO:-}" ] && [ -f "$MQ_SHIM_EIO_SO" ] || fail "shim not built (MQ_SHIM_EIO_SO=${MQ_SHIM_EIO_SO:-})"
export MQ_SHIM_EIO_FLAG=$T/eio-on
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
mqe() { LD_PRELOAD=$MQ_SHIM_EIO_SO "$MAQET" --state-dir "$STATE" "$@"; }

mkdir -p "$M/seed" "$M/web"
fake_yaml seed normal "state: stopped" > "$M/seed/seed.yaml"
fake_yaml web normal > "$M/web/web.yaml"
run_rc rc mqe apply -f "$M/seed"
assert_eq "$rc" 0 "seed apply: $OUT"

touch "$MQ_SHIM_EIO_FLAG"
run_rc rc mqe apply -f "$M/web"
echo "$OUT"
assert_eq "$rc" 1 "apply while the state disk fails exits 1"
assert_contains "$OUT" "i/o error in state dir"
assert_not_contains "$OUT" "disk I/O error"
assert_eq "$(printf '%s\n' "$OUT" | grep -c "i/o error in state dir")" 1 "the failing disk is reported once: $OUT"
if pgrep -f -- "$RT/" >/dev/null 2>&1; then
	fail "a qemu is left running: $(pgrep -af -- "$RT/")"
fi
pass "a failing state disk fails apply with one clear line and starts nothing"

rm -f "$MQ_SHIM_EIO_FLAG"
run_rc rc mqe apply -f "$M/web"
assert_eq "$rc" 0 "apply once the disk works: $OUT"
pid=$(vm_pid web)
proc_alive "$pid" || fail "web's qemu (pid $pid) is not alive"
pass "one apply converges once the disk works again"

touch "$MQ_SHIM_EIO_FLAG"
run_rc rc mqe stop web --timeout 2s
echo "$OUT"
assert_eq "$rc" 1 "stop while the state disk fails exits 1"
assert_contains "$OUT" "cannot stop vm 'web'"
assert_contains "$OUT" "i/o error in state dir"
assert_eq "$(printf '%s\n' "$OUT" | grep -c "i/o error in state dir")" 1 "the failing disk is reported once: $OUT"
rm -f "$MQ_SHIM_EIO_FLAG"
st=$(vm_status web)
if proc_alive "$pid"; then
	assert_eq "$st" running "web's qemu runs, so the record says running"
else
	assert_ne "$st" running "web's qemu is gone, so the record must not say running"
fi
run_rc rc mqe stop web --timeout 2s
assert_eq "$rc" 0 "stop web once the disk works: $OUT"
wait_until 10 proc_dead "$pid" || fail "web's qemu still alive after stop"
pass "a stop that cannot be recorded says so in one line; the next one works"
