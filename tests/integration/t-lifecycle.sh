#!/usr/bin/env bash
# A memory change restarts the VM (new pid); a record-only change does not;
# state: stopped stops it; a VM killed out of band is seen as crashed and
# started again by apply; VMs survive maqet's exit; QEMU holds no maqet fd.
source "$(dirname "$0")/lib.sh"

vm_yaml a > "$M/a.yaml"
vm_yaml b "restart: always" > "$M/b.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "initial apply: $OUT"
pa=$(vm_pid a); pb=$(vm_pid b)
proc_alive "$pa" || fail "a not alive"

# Survives maqet's exit: maqet has exited, QEMU is alive and not maqet's child.
ppid=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$pa/stat")
[ -d "/proc/$ppid" ] && grep -q maqet "/proc/$ppid/comm" 2>/dev/null && fail "qemu parent is still a maqet process"
pass "qemu survives maqet exiting (ppid $ppid)"

# No maqet fd in QEMU: nothing of the state dir (db, wal, lock) is open there.
for fd in /proc/$pa/fd/*; do
	tgt=$(readlink "$fd" || true)
	case "$tgt" in
	"$STATE"*) fail "qemu holds maqet fd $fd -> $tgt" ;;
	esac
done
pass "no maqet fd leaked into qemu"
# Runtime dir is private; sockets are 0600.
assert_eq "$(stat -c %a "$RT")" 700 "runtime dir mode"
assert_eq "$(stat -c %a "$RT/a.qmp")" 600 "qmp socket mode"

# Record-only change: no restart.
vm_yaml b "restart: never" > "$M/b.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2 "plan with a record-only change"
assert_contains "$OUT" "update"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply record-only: $OUT"
assert_eq "$(vm_pid b)" "$pb" "record-only change must not restart"

# Memory change: restart with a new pid.
printf 'name: a\nmemory: 96M\nstop_timeout: 2s\nserial: none\n' > "$M/a.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2
assert_contains "$OUT" "changed: memory (needs restart)"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply memory change: $OUT"
pa2=$(vm_pid a)
assert_ne "$pa2" "$pa" "memory change must restart"
wait_until 10 proc_dead "$pa" || fail "old qemu still alive"
grep -q -- "-m 96M" "/proc/$pa2/cmdline" 2>/dev/null || tr '\0' ' ' < "/proc/$pa2/cmdline" | grep -q -- "-m 96M" || fail "new argv lacks -m 96M"
pass "memory change restarts with a new pid"

# Killed out of band: observed crashed, apply starts it again.
kill -9 "$pa2"
wait_until 10 proc_dead "$pa2" || fail "kill -9 did not kill"
assert_eq "$(vm_status a)" crashed "status after kill -9"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2
assert_contains "$OUT" "observed crashed"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply after crash: $OUT"
pa3=$(vm_pid a)
assert_ne "$pa3" "$pa2"
proc_alive "$pa3" || fail "restarted a not alive"
assert_eq "$(count_events a crash detected)" 1 "crash event recorded"
pass "crash detected and restarted"

# state: stopped -> stopped (stop sequence recorded; an empty guest ignores
# ACPI, so the steps go powerdown timeout -> quit exited).
pd_before=$(count_events a stop.powerdown sent)
printf 'name: a\nmemory: 96M\nstop_timeout: 1s\nserial: none\nstate: stopped\n' > "$M/a.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply stop: $OUT"
assert_eq "$(vm_status a)" stopped
wait_until 10 proc_dead "$pa3" || fail "a still running after state: stopped"
assert_eq "$(count_events a stop.powerdown sent)" $((pd_before + 1)) "ACPI powerdown attempted first"
[ "$(count_events a stop.quit exited)" -ge 1 ] || [ "$(count_events a stop.powerdown exited)" -ge 1 ] || fail "no exit step recorded"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan after stop is empty: $OUT"
pass "state: stopped stops through the ACPI path"
