#!/usr/bin/env bash
# Two concurrent applies never start a VM twice; a second apply waits for the
# lock and, past --lock-timeout, fails naming the holder's pid.
source "$(dirname "$0")/lib.sh"
for n in c1 c2 c3; do vm_yaml $n > "$M/$n.yaml"; done
"$MAQET" apply -f "$M" > "$T/a1.out" 2>&1 & p1=$!
"$MAQET" apply -f "$M" > "$T/a2.out" 2>&1 & p2=$!
rc1=0; rc2=0
wait $p1 || rc1=$?
wait $p2 || rc2=$?
assert_eq "$rc1" 0 "first concurrent apply: $(cat "$T/a1.out")"
assert_eq "$rc2" 0 "second concurrent apply: $(cat "$T/a2.out")"
for n in c1 c2 c3; do
	assert_eq "$(count_events $n start ok)" 1 "$n started exactly once"
	proc_alive "$(vm_pid $n)" || fail "$n not running"
done
# exactly one QEMU per VM
for n in c1 c2 c3; do
	cnt=$(pgrep -f -- "$RT/$n.qmp" | wc -l)
	assert_eq "$cnt" 1 "qemu processes for $n"
done
pass "concurrent applies start each vm once"

# Lock timeout: hold the lock with an apply whose QEMU is slow to come up.
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu missing"
fake_yaml slow "slow-start=3000" > "$T/slow.yaml"
"$MAQET" apply -f "$T/slow.yaml" > "$T/slow.out" 2>&1 & ps=$!
# wait until the first apply holds the lock (its pid is in the lock file)
wait_until 10 grep -q "^$ps " "$STATE/lock" || fail "first apply never took the lock"
run_rc rc mq apply -f "$M" --lock-timeout 300ms
assert_eq "$rc" 1 "apply past lock timeout"
assert_contains "$OUT" "locked by maqet pid $ps"
rcs=0; wait $ps || rcs=$?
assert_eq "$rcs" 0 "slow apply: $(cat "$T/slow.out")"
pass "lock timeout names the holder"
