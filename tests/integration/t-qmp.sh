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

# --- refused before anything is sent, and still an event --------------------------
run_rc rc mq qmp nosuch query-status
assert_eq "$rc" 1 "unknown vm"
assert_contains "$OUT" "no vm named 'nosuch'"
assert_eq "$(mq events nosuch -o json | jq -r '.[] | select(.action == "qmp" and .outcome == "refused") | .detail')" \
	"command=query-status tier=allowed args={}: no such vm" "refusal for an unknown vm recorded under its name"
run_rc rc mq qmp h query-status '{"a":'
assert_eq "$rc" 1 "bad JSON"
assert_contains "$OUT" "invalid JSON arguments"
assert_contains "$(qmp_events refused)" "command=query-status tier=allowed args=<unparsed>: invalid arguments"
run_rc rc mq qmp h set_password novalue password=hunter3
assert_eq "$rc" 1 "argument without ="
[ "$(qmp_events refused | grep -c 'command=set_password tier=allowed args=<unparsed>: invalid arguments')" = 1 ] ||
	fail "no refusal event for KEY=VALUE without ="
assert_not_contains "$(mq events h -o json)" "hunter3" "raw arguments of a refused command in events"
run_rc rc mq qmp h qmp_capabilities
assert_eq "$rc" 64 "qmp_capabilities is a usage error"
assert_contains "$(qmp_events refused)" "command=qmp_capabilities tier=allowed args={}: negotiated by maqet itself"
n0=$(nqmp)
run_rc rc mq qmp h
assert_eq "$rc" 64 "missing command is a usage error"
assert_eq "$(nqmp)" "$n0" "no command, no event"
run_rc rc mq qmp h no-such-command
assert_eq "$rc" 1 "unknown qmp command"
assert_contains "$OUT" "no such command"
assert_contains "$(qmp_events refused)" "command=no-such-command tier=allowed args={}: unknown command"
empty="$T/empty-state"
run_rc rc "$MAQET" --state-dir "$empty" qmp h query-status
assert_eq "$rc" 1 "no state database"
[ ! -e "$empty/maqet.db" ] || fail "a refused qmp command created a state database"
pass "unknown vm, bad JSON, unknown command: refused, each an event"

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
rt_dumps() { find "$RT" -maxdepth 1 -name 'h.dump.*' | wc -l; }
run_rc rc mq qmp h pmemsave val=0 size=4096 filename=/etc/maqet-test-dump
assert_eq "$rc" 1 "dump into /etc"
assert_contains "$OUT" "system directory"
[ ! -e /etc/maqet-test-dump ] || fail "dump file created in /etc"
assert_contains "$(qmp_events refused)" "output '/etc/maqet-test-dump' is in a system directory"
mkdir "$T/cwd"
ln -s /etc "$T/cwd/etclink"
run_rc rc mq qmp h pmemsave val=0 size=4096 filename="$T/cwd/etclink/maqet-test-dump"
assert_eq "$rc" 1 "dump into /etc through a symlinked directory"
assert_contains "$OUT" "system directory"
( cd "$T/cwd" && umask 022 && "$MAQET" qmp h pmemsave val=0 size=4096 filename=mem.bin ) >/dev/null 2>&1 ||
	fail "pmemsave into a relative path failed"
[ -f "$T/cwd/mem.bin" ] || fail "no dump file relative to the cwd"
assert_eq "$(stat -c '%a %s %u' "$T/cwd/mem.bin")" "600 4096 $(id -u)" "dump file mode, size, owner"
assert_contains "$(qmp_events ok)" "\"filename\":\"$T/cwd/mem.bin\""
assert_eq "$(rt_dumps)" 0 "private dump directory left in the runtime dir"
# the bytes are the guest's memory: the BIOS reset vector at 0xffff0 is a far jump (0xea)
mq qmp h pmemsave val=1048560 size=16 filename="$T/cwd/reset.bin" >/dev/null 2>&1 || fail "pmemsave of the reset vector"
assert_eq "$(head -c 1 "$T/cwd/reset.bin" | od -An -tx1 | tr -d ' ')" ea "pmemsave wrote guest memory"
# an existing file, or a symlink (even a dangling one), is never written through
echo keep > "$T/cwd/old.bin"
run_rc rc mq qmp h memsave val=0 size=512 filename="$T/cwd/old.bin"
assert_eq "$rc" 1 "dump over an existing file"
assert_contains "$OUT" "already exists"
assert_eq "$(cat "$T/cwd/old.bin")" keep "existing file untouched"
echo victim > "$T/victim"
ln -s "$T/victim" "$T/cwd/link.bin"
ln -s "$T/not-there" "$T/cwd/dangling.bin"
for l in link.bin dangling.bin; do
	run_rc rc mq qmp h pmemsave val=0 size=4096 filename="$T/cwd/$l"
	assert_eq "$rc" 1 "dump through symlink $l"
	assert_contains "$OUT" "already exists"
done
assert_eq "$(cat "$T/victim")" victim "symlink target untouched"
[ ! -e "$T/not-there" ] || fail "dangling symlink target created"
assert_contains "$(qmp_events refused)" "output '$T/cwd/link.bin' already exists"
run_rc rc mq qmp h dump-guest-memory paging=false protocol="file:$T/cwd/link.bin"
assert_eq "$rc" 1 "dump-guest-memory through a symlink"
assert_eq "$(cat "$T/victim")" victim "symlink target untouched by dump-guest-memory"
# dump-guest-memory: QEMU gets an fd (getfd + fd:NAME), never the path
run_rc rc mq qmp h dump-guest-memory paging=false protocol="file:$T/cwd/core.elf"
assert_eq "$rc" 0 "dump-guest-memory: $OUT"
assert_eq "$(stat -c '%a %u' "$T/cwd/core.elf")" "600 $(id -u)" "core mode and owner"
assert_eq "$(head -c 4 "$T/cwd/core.elf" | od -An -c | tr -d ' ')" '177ELF' "core is an ELF file"
[ "$(stat -c %s "$T/cwd/core.elf")" -gt $((32 * 1024 * 1024)) ] || fail "core smaller than guest memory"
assert_contains "$(qmp_events ok)" "\"protocol\":\"file:$T/cwd/core.elf\""
run_rc rc mq qmp h dump-guest-memory paging=false protocol="fd:x"
assert_eq "$rc" 1 "dump-guest-memory to an fd name of the caller"
# screendump through passthrough goes the same way
run_rc rc mq qmp h screendump filename="$T/cwd/s.ppm"
assert_eq "$rc" 0 "screendump passthrough: $OUT"
assert_eq "$(head -c 2 "$T/cwd/s.ppm")" P6 "screendump passthrough wrote a PPM"
# a failing dump leaves no file behind
run_rc rc mq qmp h memsave val=0 size=512 cpu-index=99 filename="$T/cwd/bad.bin"
assert_eq "$rc" 1 "memsave of a missing cpu"
[ ! -e "$T/cwd/bad.bin" ] || fail "failed dump left a file"
assert_eq "$(rt_dumps)" 0 "private dump directory left after a failure"
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
