#!/usr/bin/env bash
# maqet doctor: healthy setup (exit 0); an orphan QEMU, a dead record, stale
# sockets, a missing disk and a corrupt database each fail the right check
# (exit 1); --fix removes stale sockets and records the dead VM through the
# phase machine, and leaves the orphan alone.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/opslib.sh"
make_echo_guest "$M/echo.img"
echo_vm_yaml e > "$M/e.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"

check_status() { # json check -> worst status of that check
	jq -r --arg c "$2" '[.[] | select(.check == $c) | .status] | if any(. == "fail") then "fail"
		elif any(. == "warn") then "warn" elif length > 0 then "ok" else "none" end' <<<"$1"
}

# 1. healthy
run_rc rc mq doctor
assert_eq "$rc" 0 "healthy doctor: $OUT"
for c in kvm qemu qemu-img runtime-dir state-db disk-space vm-process orphans sockets disks; do
	assert_contains "$OUT" " $c " "line for check $c"
done
J=$(mq doctor -o json)
for c in qemu qemu-img runtime-dir state-db vm-process orphans sockets disks; do
	assert_eq "$(check_status "$J" $c)" ok "healthy: check $c"
done
assert_contains "$(jq -r '.[] | select(.check == "sockets") | .message' <<<"$J")" "3 sockets"
pass "healthy setup"

# 2. an orphan: a QEMU started by hand on this runtime dir's socket path
qemu-system-x86_64 -machine none -accel tcg -display none -nodefaults -monitor none \
	-chardev "socket,id=o,path=$RT/stray.qmp,server=on,wait=off" -mon chardev=o,mode=control \
	</dev/null >/dev/null 2>&1 &
opid=$!
wait_until 20 test -S "$RT/stray.qmp" || fail "hand-started qemu did not come up"
run_rc rc mq doctor -o json
assert_eq "$rc" 1 "orphan: exit 1"
assert_eq "$(check_status "$OUT" orphans)" fail "orphan check"
assert_contains "$(jq -r '.[] | select(.check == "orphans") | .message' <<<"$OUT")" "process $opid "
assert_contains "$(jq -r '.[] | select(.check == "orphans") | .hint' <<<"$OUT")" "kill $opid"
assert_eq "$(check_status "$OUT" vm-process)" ok "the recorded vm is fine"
pass "orphan found"

# 3. a dead record and its stale sockets: SIGKILL the VM's QEMU; plus a
#    stale socket made by hand
epid=$(vm_pid e)
kill -9 "$epid"
wait_until 20 proc_dead "$epid" || fail "qemu survived SIGKILL"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$RT/junk.sock"
[ -S "$RT/junk.sock" ] || fail "no hand-made socket"
run_rc rc mq doctor -o json
assert_eq "$rc" 1 "dead record: exit 1"
assert_eq "$(check_status "$OUT" vm-process)" fail "vm-process check"
assert_contains "$(jq -r '.[] | select(.check == "vm-process") | .message' <<<"$OUT")" "vm 'e' is recorded running"
assert_eq "$(jq '[.[] | select(.check == "sockets" and .status == "fail")] | length' <<<"$OUT")" 4 \
	"stale sockets: e.qmp e.ev e.console junk.sock"
assert_eq "$(mq inspect -o json e | jq -r .status.phase)" running "doctor without --fix changes nothing"
pass "dead record and stale sockets found"

# 4. --fix: stale sockets removed, the record marked gone, the orphan untouched
run_rc rc mq doctor --fix
assert_eq "$rc" 1 "the orphan still fails after --fix: $OUT"
assert_contains "$OUT" "fixed: removed"
assert_contains "$OUT" "fixed: recorded as crashed/stopped"
for s in e.qmp e.ev e.console junk.sock; do [ ! -e "$RT/$s" ] || fail "--fix left $s"; done
[ -S "$RT/stray.qmp" ] || fail "--fix removed the orphan's live socket"
proc_alive "$opid" || fail "--fix killed the orphan"
assert_eq "$(mq inspect -o json e | jq -r .status.phase)" crashed "record went through observed-gone"
assert_eq "$(count_events e doctor.fix observed-gone)" 1 "fix recorded as an event"
J=$(mq doctor -o json) || true
assert_eq "$(check_status "$J" vm-process)" ok
assert_eq "$(check_status "$J" sockets)" ok
assert_eq "$(check_status "$J" orphans)" fail
kill "$opid"; wait "$opid" 2>/dev/null || true
run_rc rc mq doctor
assert_eq "$rc" 0 "healthy again: $OUT"
pass "--fix repairs stale sockets and the dead record, leaves the orphan"

# 5. a missing disk
mv "$M/echo.img" "$M/echo.img.away"
run_rc rc mq doctor -o json
assert_eq "$rc" 1 "missing disk: exit 1"
assert_eq "$(check_status "$OUT" disks)" fail "disks check"
assert_contains "$(jq -r '.[] | select(.check == "disks") | .message' <<<"$OUT")" "disk 'boot' is missing: $M/echo.img"
mv "$M/echo.img.away" "$M/echo.img"
pass "missing disk"

# 6. a corrupt database
dd if=/dev/urandom of="$STATE/maqet.db" bs=512 count=8 conv=notrunc status=none
run_rc rc mq doctor -o json
assert_eq "$rc" 1 "corrupt db: exit 1"
assert_eq "$(check_status "$OUT" state-db)" fail "state-db check"
assert_contains "$(jq -r '.[] | select(.check == "state-db") | .hint' <<<"$OUT")" "backup"
pass "corrupt database"

# 7. runtime dir readable by others
chmod 755 "$RT"
run_rc rc mq doctor -o json
assert_eq "$(check_status "$OUT" runtime-dir)" fail "runtime dir mode"
chmod 700 "$RT"
pass "runtime dir mode"
