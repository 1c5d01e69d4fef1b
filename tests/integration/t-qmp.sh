#!/usr/bin/env bash
# maqet qmp: passthrough of a harmless command and its JSON, each security
# tier's behaviour and its event (dangerous refused without
# --allow-dangerous, privileged with a warning, memory-dump path checked and
# created 0600), secret arguments redacted in events, unknown vm / command /
# bad arguments refused before anything is sent, --list, and a quit that is
# recorded as an intended stop and leaves the VM held.
source "$(dirname "$0")/lib.sh"
vm_yaml h > "$M/h.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
p1=$(vm_pid h)
proc_alive "$p1" || fail "vm not running"

qmp_events() { # outcome -> details of qmp events with that outcome
	mq events h -o json | jq -r --arg o "$1" '.[] | select(.action == "qmp" and .outcome == $o) | .detail'
}
nqmp() { mq events h -o json | jq '[.[] | select(.action == "qmp")] | length'; }

# --- allowed: query-status, compact and pretty JSON --------------------------------
out=$(mq qmp h query-status -o json)
assert_eq "$(echo "$out" | jq -r .status)" running "query-status status"
assert_eq "$(echo "$out" | wc -l)" 1 "-o json is one line"
out=$(mq qmp h query-status)
assert_eq "$(echo "$out" | jq -r .running)" true "pretty output is JSON"
[ "$(echo "$out" | wc -l)" -gt 1 ] || fail "pretty output on one line: $out"
assert_contains "$(qmp_events ok)" "command=query-status tier=allowed args={}"
[ "$(mq events h -o json | jq -r '[.[] | select(.action == "qmp")][0].user')" = "$(id -un)" ] ||
	fail "qmp event does not name the caller"
pass "query-status passthrough"

# --- refused before anything is sent -------------------------------------------------
n0=$(nqmp)
run_rc rc mq qmp nosuch query-status
assert_eq "$rc" 1 "unknown vm"
assert_contains "$OUT" "no vm named 'nosuch'"
run_rc rc mq qmp h query-status '{"a":'
assert_eq "$rc" 1 "bad JSON"
assert_contains "$OUT" "invalid JSON arguments"
run_rc rc mq qmp h query-status novalue
assert_eq "$rc" 1 "argument without ="
run_rc rc mq qmp h
assert_eq "$rc" 64 "missing command is a usage error"
assert_eq "$(nqmp)" "$n0" "nothing recorded for refusals before lookup"
run_rc rc mq qmp h no-such-command
assert_eq "$rc" 1 "unknown qmp command"
assert_contains "$OUT" "no such command"
assert_contains "$(qmp_events refused)" "command=no-such-command tier=allowed args={}: unknown command"
pass "unknown vm, bad JSON, unknown command"

# --- dangerous -----------------------------------------------------------------------
run_rc rc mq qmp h human-monitor-command 'command-line=info status'
assert_eq "$rc" 1 "dangerous without --allow-dangerous"
assert_contains "$OUT" "dangerous tier"
assert_contains "$(qmp_events refused)" "command=human-monitor-command tier=dangerous"
set +e
out=$(mq qmp h human-monitor-command 'command-line=info status' --allow-dangerous -o json 2>"$T/err")
rc=$?
set -e
assert_eq "$rc" 0 "dangerous with --allow-dangerous: $(cat "$T/err")"
assert_contains "$(echo "$out" | jq -r .)" "VM status: running"
assert_contains "$(cat "$T/err")" "warning"
[ "$(qmp_events ok | grep -c 'command=human-monitor-command tier=dangerous')" = 1 ] || fail "no ok event for hmp"
pass "dangerous tier"

# --- privileged: warning on stderr; stop/cont follow the phase -----------------------
set +e
out=$(mq qmp h stop 2>"$T/err")
rc=$?
set -e
assert_eq "$rc" 0 "privileged stop: $(cat "$T/err")"
assert_contains "$(cat "$T/err")" "privileged"
assert_eq "$(mq qmp h query-status -o json | jq -r .status)" paused "qemu paused"
assert_eq "$(vm_status h)" paused "qmp stop recorded as paused"
run_rc rc mq qmp h cont
assert_eq "$rc" 0 "$OUT"
assert_eq "$(vm_status h)" running "qmp cont recorded as running"
assert_contains "$(qmp_events ok)" "command=stop tier=privileged"
pass "privileged tier"

# --- memory-dump ---------------------------------------------------------------------
run_rc rc mq qmp h pmemsave val=0 size=4096 filename=/etc/maqet-test-dump
assert_eq "$rc" 1 "dump into /etc"
assert_contains "$OUT" "system directory"
[ ! -e /etc/maqet-test-dump ] || fail "dump file created in /etc"
assert_contains "$(qmp_events refused)" "output '/etc/maqet-test-dump' is in a system directory"
mkdir "$T/cwd"
( cd "$T/cwd" && umask 022 && "$MAQET" qmp h pmemsave val=0 size=4096 filename=mem.bin ) >/dev/null 2>&1 ||
	fail "pmemsave into a relative path failed"
[ -f "$T/cwd/mem.bin" ] || fail "no dump file relative to the cwd"
assert_eq "$(stat -c '%a %s %u' "$T/cwd/mem.bin")" "600 4096 $(id -u)" "dump file mode, size, owner"
assert_contains "$(qmp_events ok)" "\"filename\":\"$T/cwd/mem.bin\""
: > "$T/cwd/old.bin"
chmod 644 "$T/cwd/old.bin"
( cd "$T/cwd" && "$MAQET" qmp h memsave val=0 size=512 filename=old.bin ) >/dev/null 2>&1 || fail "memsave failed"
assert_eq "$(stat -c '%a %s' "$T/cwd/old.bin")" "600 512" "existing dump file made 0600"
# a failing dump leaves no file behind
run_rc rc mq qmp h memsave val=0 size=512 cpu-index=99 filename="$T/cwd/bad.bin"
assert_eq "$rc" 1 "memsave of a missing cpu"
[ ! -e "$T/cwd/bad.bin" ] || fail "failed dump left a file"
pass "memory-dump tier"

# --- secrets are redacted in events ----------------------------------------------------
run_rc rc mq qmp h set_password protocol=vnc password=hunter2
assert_eq "$rc" 1 "set_password without vnc fails"
ev=$(mq events h -o json)
assert_not_contains "$ev" "hunter2" "password in events"
assert_contains "$(qmp_events failed)" '"password":"<redacted>"'
pass "redaction"

# --- --list ----------------------------------------------------------------------------
l=$(mq qmp h --list -o json)
for pair in query-status:allowed quit:privileged human-monitor-command:dangerous pmemsave:memory-dump; do
	assert_eq "$(echo "$l" | jq -r --arg n "${pair%%:*}" '.[] | select(.name == $n) | .tier')" "${pair#*:}" "tier of ${pair%%:*}"
done
mq qmp h --list | grep -q '^query-status  *allowed$' || fail "--list table"
pass "--list"

# --- quit: an intended stop, held ---------------------------------------------------------
run_rc rc mq qmp h quit
assert_eq "$rc" 0 "quit: $OUT"
wait_until 10 proc_dead "$p1" || fail "quit did not stop qemu"
assert_eq "$(vm_status h)" stopped "status after quit"
assert_eq "$(vm_field h hold)" true "held after quit"
assert_eq "$(vm_field h last_error)" null "no error after quit"
evs=$(mq events h -o json | jq -r '.[] | select(.action == "stop") | .outcome' | tr '\n' ' ')
assert_eq "$evs" "begin ok " "stop begin (before the quit) and ok (after)"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0
assert_eq "$(vm_status h)" stopped "apply started a vm stopped by qmp quit"
run_rc rc mq qmp h query-status
assert_eq "$rc" 1 "stopped vm"
assert_contains "$OUT" "not running"
assert_contains "$(qmp_events refused)" "command=query-status tier=allowed args={}: vm not running (observed stopped)"
run_rc rc mq start h
assert_eq "$rc" 0 "$OUT"
proc_alive "$(vm_pid h)" || fail "start after quit"
pass "quit"

# --- system_powerdown: a guest that powers off on the button, and one that ignores it ---------
make_guest "$M/g.img" 0
make_guest "$M/i.img" 2
gy() { printf 'name: %s\nmemory: 32M\nstop_timeout: %s\nstorage:\n  - {name: boot, type: raw, file: %s.img, interface: ide}\n' "$1" "$2" "$1"; }
gy g 20s > "$M/g.yaml"
gy i 1s > "$M/i.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
wait_until 90 serial_has g "maqet-guest up" || fail "guest g did not boot"
wait_until 90 serial_has i "maqet-guest up" || fail "guest i did not boot"
pg=$(vm_pid g); pi=$(vm_pid i)
run_rc rc mq qmp g system_powerdown
assert_eq "$rc" 0 "powerdown: $OUT"
proc_dead "$pg" || fail "maqet qmp returned before the guest powered off"
assert_eq "$(vm_status g)" stopped "status after a guest powered off on system_powerdown"
assert_eq "$(vm_field g hold)" true "held after system_powerdown"
run_rc rc mq qmp i system_powerdown
assert_eq "$rc" 0 "powerdown of a guest ignoring it: $OUT"
assert_contains "$OUT" "still runs"
proc_alive "$pi" || fail "the ignoring guest was stopped"
assert_eq "$(vm_status i)" running "back to running when qemu stays up"
assert_eq "$(vm_field i hold)" true "still held"
assert_contains "$(vm_field i last_error)" "system_powerdown"
pass "system_powerdown"
