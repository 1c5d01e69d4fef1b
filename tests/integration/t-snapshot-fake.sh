#!/usr/bin/env bash
# Live snapshots against the fake QEMU, where a job can be made slow or fail:
# a failing snapshot-save (the fake reports "No space left on device") gives a
# clear error, leaves the VM running untouched (same process, phase back to
# running) and nothing listed; a slow job draws the progress bar at least 4
# times a second on a terminal, with the elapsed time, and none off it nor
# with -o json (one JSON object, nothing else); offline (a slow qemu-img
# next to the VM's binary) create, restore and delete keep the bar moving
# while qemu-img works on a drive.
source "$(dirname "$0")/lib.sh"

fake_yaml full job-fail "storage:" "  - {name: root, size: 4M}" > "$M/full.yaml"
fake_yaml slow job-step=300 "storage:" "  - {name: root, size: 4M}" > "$M/slow.yaml"
fake_yaml long job-step=2000 "storage:" "  - {name: root, size: 4M}" > "$M/long.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
pid=$(vm_pid full)

# ---- a snapshot failing in QEMU ----------------------------------------------
run_rc rc mq snapshot create full s1
assert_eq "$rc" 1 "failed job"
assert_contains "$OUT" "maqet: cannot snapshot vm 'full': qmp job"
assert_contains "$OUT" "No space left on device"
assert_eq "$(vm_pid full)" "$pid" "same qemu process"
assert_eq "$(vm_status full)" running "phase back to running"
proc_alive "$pid" || fail "qemu gone"
assert_eq "$(mq snapshot list full -o json | jq '.snapshots | length')" 0 "nothing listed"
assert_eq "$(count_events full snapshot-create failed)" 1
mq events full -o json | jq -e '[.[] | select(.action == "snapshot-create" and .outcome == "failed")][0].detail |
	test("^snapshot .s1. \\(origin manual, live, memory\\) by cli in [0-9]+ ms: .*No space left on device")' \
	>/dev/null || fail "failed event detail"
out=$(mq snapshot create full s2 -o json 2>/dev/null) && fail "json failure exit 0"
assert_eq "$(jq -r .ok <<<"$out")" false
assert_contains "$(jq -r .error <<<"$out")" "No space left on device"
pass "a failing live snapshot: clear error, vm untouched, nothing listed"

# ---- progress ----------------------------------------------------------------
off=$(mq snapshot create slow p1 2>&1)
assert_contains "$off" "snapshot 'p1' of vm 'slow' created (live, with memory state, 1 drive)"
assert_not_contains "$off" $'\r' "no bar off a terminal"
assert_not_contains "$off" "[#" "no bar off a terminal"
# (the fake keeps no snapshots: each create is a new name)
tty_out=$(script -qec "'$MAQET' snapshot create slow p2" /dev/null)
assert_contains "$tty_out" "snapshot 'p2' of vm 'slow' created"
bars=$(printf '%s' "$tty_out" | tr '\r' '\n' | grep '^snapshot \[' || true)
draws=$(grep -c . <<<"$bars")
last=$(tail -n 1 <<<"$bars" | grep -o '[0-9]*\.[0-9]s' | tr -d s)
secs=${last%.*}
[ "$secs" -ge 1 ] || fail "the slow job took only ${last}s"
[ "$draws" -ge $((secs * 4)) ] || fail "$draws redraws in ${last}s"
grep -q '100%' <<<"$bars" || fail "bar never reached 100%: $bars"
grep -q ' 50%' <<<"$bars" || fail "no progress in between: $bars"
out=$(script -qec "'$MAQET' snapshot create slow p3 -o json" /dev/null | tr -d '\r')
assert_eq "$(jq -s 'length' <<<"$out")" 1 "-o json on a terminal: one json object and nothing else: $out"
assert_eq "$(jq -r '.ok' <<<"$out")" true
assert_not_contains "$out" "[#" "no bar with -o json"
pass "progress bar on a terminal only: $draws redraws in ${last}s"

# ---- snapshot versus a concurrent stop and apply of the same vm --------------
# job-step=2000: a snapshot-save job takes about 10 s (long enough for slow
# sanitizer builds); meanwhile the vm is "snapshotting": its per-VM lock
# makes stop wait (or give up at --lock-timeout), and apply skips it with a
# warning (exit 0) while plan shows it busy; the state lock is free
"$MAQET" snapshot create long p4 >"$T/bg.out" 2>&1 &
bg=$!
wait_until 20 sh -c "'$MAQET' status -o json | jq -e '.[] | select(.name == \"long\" and .status == \"snapshotting\")'" ||
	fail "phase snapshotting not seen"
# The phase is written before the snapshot command lets go of the state lock
# (it holds it only for its record steps): retry while a command reports the
# state lock itself, so what is checked is the vm's lock.
no_state_lock() { # VAR CMD...: run_rc, retried (deadline 20 s) while the state lock is what refused it
	local __v=$1 __deadline=$((SECONDS + 20)); shift
	while :; do
		run_rc "$__v" "$@"
		grep -q "^maqet: state dir .* is locked by" <<<"$OUT" || return 0
		[ $SECONDS -lt $__deadline ] || return 0
		sleep 0.05
	done
}
no_state_lock rc mq stop long --lock-timeout 0
assert_eq "$rc" 1 "stop during a snapshot"
assert_contains "$OUT" "vm 'long' is busy: locked by maqet pid $bg: snapshot 'p4' of vm 'long'"
run_rc rc mq plan -f "$M"
assert_contains "$OUT" "busy (snapshot in progress: maqet pid $bg: snapshot 'p4' of vm 'long')"
no_state_lock rc mq apply -f "$M" --lock-timeout 0
assert_eq "$rc" 0 "apply during a snapshot skips the busy vm: $OUT"
assert_contains "$OUT" "warning: vm 'long' skipped: busy (snapshot in progress"
assert_eq "$(vm_status long)" snapshotting "apply left the busy vm alone"
proc_alive "$bg" || fail "the snapshot ended before stop and apply were tried: the check proves nothing"
wait "$bg" || fail "background snapshot failed: $(cat "$T/bg.out")"
assert_eq "$(vm_status long)" running "running again after the snapshot"
run_rc rc mq stop long
assert_eq "$rc" 0 "stop after the snapshot: $OUT"
pass "snapshot holds the vm's lock: concurrent stop waits or gives up, apply skips it, plan says busy"

# ---- offline progress: a slow qemu-img ---------------------------------------
# qemu-img is taken next to an explicit `binary:`; there a wrapper makes each
# call take ~1.5 s, so the bar must keep moving (>= 4 redraws a second, with
# the elapsed time) while one drive is being worked on
mkdir -p "$T/slowbin"
ln -s "$(command -v qemu-system-x86_64)" "$T/slowbin/qemu-system-x86_64"
real_img=$(command -v qemu-img)
printf '#!/bin/sh\nsleep 1.5\nexec %s "$@"\n' "$real_img" >"$T/slowbin/qemu-img"
chmod +x "$T/slowbin/qemu-img"
mkdir -p "$T/m2"
qemu-img create -q -f qcow2 "$T/off1.qcow2" 4M
qemu-img create -q -f qcow2 "$T/off2.qcow2" 4M
cat >"$T/m2/off.yaml" <<YAML
name: off
binary: $T/slowbin/qemu-system-x86_64
state: stopped
storage:
  - {name: one, file: $T/off1.qcow2}
  - {name: two, file: $T/off2.qcow2}
YAML
run_rc rc mq apply -f "$T/m2"
assert_eq "$rc" 0 "apply of the stopped vm: $OUT"
bar_check() { # what output: >= 4 redraws a second of elapsed time, 50% between the drives
	local bars draws last secs
	bars=$(printf '%s' "$2" | tr '\r' '\n' | grep "^$1 \[" || true)
	draws=$(grep -c . <<<"$bars")
	last=$(tail -n 1 <<<"$bars" | grep -o '[0-9]*\.[0-9]s' | tr -d s)
	secs=${last%.*}
	[ "${secs:-0}" -ge 2 ] || fail "$1: two slow qemu-img calls took only ${last}s: $2"
	[ "$draws" -ge $((secs * 4)) ] || fail "$1: $draws redraws in ${last}s"
	grep -q ' 50% running' <<<"$bars" || fail "$1: no 50% between the drives: $bars"
	echo "$draws redraws in ${last}s"
}
tty_out=$(script -qec "'$MAQET' snapshot create off o1" /dev/null)
assert_contains "$tty_out" "snapshot 'o1' of vm 'off' created (offline, 2 drives)"
c=$(bar_check snapshot "$tty_out")
tty_out=$(script -qec "'$MAQET' snapshot restore off o1 --no-backup" /dev/null)
assert_contains "$tty_out" "vm 'off' restored to snapshot 'o1' (offline)"
r=$(bar_check restore "$tty_out")
tty_out=$(script -qec "'$MAQET' snapshot delete off o1" /dev/null)
assert_contains "$tty_out" "snapshot 'o1' of vm 'off' deleted"
d=$(bar_check delete "$tty_out")
off=$(mq snapshot create off o2 2>&1)
assert_contains "$off" "snapshot 'o2' of vm 'off' created (offline, 2 drives)"
assert_not_contains "$off" $'\r' "no bar off a terminal"
out=$(script -qec "'$MAQET' snapshot delete off o2 -o json" /dev/null | tr -d '\r')
assert_eq "$(jq -s 'length' <<<"$out")" 1 "-o json on a terminal: one json object and nothing else: $out"
assert_eq "$(jq -r '.ok' <<<"$out")" true "json: $out"
assert_not_contains "$out" "[#" "no bar with -o json on a terminal"
pass "offline progress on a terminal: create $c, restore $r, delete $d"
