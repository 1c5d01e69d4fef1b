#!/usr/bin/env bash
# Issue 7 item 8: process identity includes what the process is.  A record
# whose pid + start time name a live process that is not that VM's QEMU (its
# command line does not name the VM's QMP socket) is never signalled; a
# SIGSTOPped QEMU shows as `unresponsive` in status, not `running`.
source "$(dirname "$0")/lib.sh"

fake_yaml a normal > "$M/a.yaml"
fake_yaml b normal > "$M/b.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
pa=$(vm_pid a)
pb=$(vm_pid b)
proc_alive "$pa" && proc_alive "$pb" || fail "a or b not running"

# --- SIGSTOP: unresponsive; SIGCONT: running again
kill -STOP "$pb"
wait_until 10 sh -c "[ \"\$(awk '{ sub(/.*\\) /, \"\"); print \$1 }' /proc/$pb/stat)\" = T ]" || fail "b not stopped"
assert_eq "$(vm_status b)" unresponsive "status of a SIGSTOPped qemu"
assert_contains "$(mq status)" "unresponsive"
kill -CONT "$pb"
wait_until 10 sh -c "[ \"\$(\"$MAQET\" status -o json | jq -r '.[] | select(.name == \"b\") | .status')\" = running ]" ||
	fail "b not running again after SIGCONT: $(vm_status b)"
pass "a SIGSTOPped qemu shows as unresponsive"

# --- a's record names b's process (same pid + start time): stop a refuses
sa=$(mq status -o json >/dev/null; sqlite3 "$STATE/maqet.db" "select start_time from vms where name = 'b'")
sqlite3 "$STATE/maqet.db" "update vms set pid = $pb, start_time = $sa where name = 'a'"
assert_eq "$(vm_status a)" running "a's record now names b's live process"
run_rc rc mq stop a --timeout 1s
assert_eq "$rc" 1 "stop a whose recorded pid is b's qemu: $OUT"
assert_contains "$OUT" "refusing to signal pid $pb: its command line does not name the qmp socket '$RT/a.qmp'"
proc_alive "$pb" || fail "b's qemu was signalled through a's record"
proc_alive "$pa" || fail "a's real qemu died"
pass "a recorded pid whose command line is another vm's qemu is never signalled"

# --- a socket something listens on is never unlinked (issue 7 item 1)
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
open(sys.argv[2], "w").close()
time.sleep(60)
' "$RT/x.qmp" "$T/listening" &
lp=$!
wait_until 10 test -e "$T/listening" || fail "listener did not start"
fake_yaml x normal > "$M/x.yaml"
run_rc rc mq apply -f "$M/x.yaml"
kill "$lp" 2>/dev/null || true
wait "$lp" 2>/dev/null || true
assert_eq "$rc" 1 "start over a listening socket: $OUT"
assert_contains "$OUT" "socket '$RT/x.qmp' is in use by a process maqet does not track (stop it first)"
[ -S "$RT/x.qmp" ] || fail "the listening socket was unlinked"
[ "$(pgrep -fc -- "$RT/x.qmp")" = 0 ] || fail "a qemu of x was started beside the listener"
pass "a socket something listens on is never unlinked"
