#!/usr/bin/env bash
# maqet logs: whole serial log, -n N, --qemu, -f following appended output
# (inotify) until a signal, and rotation of big logs at VM start.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/opslib.sh"
make_echo_guest "$M/echo.img"
echo_vm_yaml e > "$M/e.yaml"
run_rc rc mq logs nosuch
assert_eq "$rc" 1 "unknown vm"
assert_contains "$OUT" "no such vm"

run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
wait_until 60 serial_has e "maqet-echo up" || fail "echo guest did not boot"

run_rc rc mq logs e
assert_eq "$rc" 0 "logs: $OUT"
assert_contains "$OUT" "maqet-echo up"
run_rc rc mq logs --qemu e
assert_eq "$rc" 0 "logs --qemu: $OUT"
assert_contains "$OUT" "maqet: starting" "qemu log has maqet's start line"
assert_contains "$OUT" "-name e" "qemu log has the argv"
pass "logs and logs --qemu"

# -n N on a log we control: the log is appended by QEMU (O_APPEND), so
# lines added by hand land after the guest's output
printf 'line1\nline2\nline3\n' >> "$RT/e.serial.log"
assert_eq "$(mq logs -n 2 e)" "$(printf 'line2\nline3')" "logs -n 2"
assert_eq "$(mq logs -n 1 e)" "line3" "logs -n 1"
assert_eq "$(mq logs -n 0 e)" "" "logs -n 0"
printf 'partial' >> "$RT/e.serial.log"
assert_eq "$(mq logs -n 2 e)" "$(printf 'line3\npartial')" "logs -n with an unterminated last line"
printf '\n' >> "$RT/e.serial.log"
run_rc rc mq logs -n x e
assert_eq "$rc" 64 "bad -n is a usage error"
pass "logs -n"

# -f: follows what is appended (by the guest through the console socket, and
# by hand), stops on a signal
"$MAQET" logs -f -n 1 e > "$T/follow" 2> "$T/follow.err" &
fpid=$!
wait_until 10 file_has "$T/follow" "partial" || fail "logs -f did not print the tail: $(cat "$T/follow")"
printf 'appended-by-test\n' >> "$RT/e.serial.log"
wait_until 10 file_has "$T/follow" "appended-by-test" || fail "logs -f missed an append"
python3 - "$RT/e.console" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"Q")
s.settimeout(20)
got = b""
while b"[Q]" not in got:
    got += s.recv(100)
s.close()
PY
wait_until 20 file_has "$T/follow" "[Q]" || fail "logs -f missed the guest's output: $(cat "$T/follow")"
proc_alive "$fpid" || fail "logs -f ended by itself"
kill -TERM "$fpid"
set +e; wait "$fpid"; frc=$?; set -e
assert_eq "$frc" 143 "logs -f ends on SIGTERM"
assert_eq "$(grep -c '^partial$' "$T/follow")" 1 "the tail printed once"
pass "logs -f follows appended output, stops on a signal"

# rotation at start: a log over the 8 MiB cap becomes .1 (an older .1 is
# replaced), a small log is kept
mq stop e >/dev/null
truncate -s 9M "$RT/e.serial.log"
echo old > "$RT/e.serial.log.1"
qsize=$(stat -c %s "$RT/e.qemu.log")
run_rc rc mq start e
assert_eq "$rc" 0 "start: $OUT"
assert_eq "$(stat -c %s "$RT/e.serial.log.1")" $((9 * 1024 * 1024)) "big serial log rotated to .1"
wait_until 60 serial_has e "maqet-echo up" || fail "echo guest did not boot again"
[ "$(stat -c %s "$RT/e.serial.log")" -lt 4096 ] || fail "new serial log is not fresh"
[ ! -e "$RT/e.qemu.log.1" ] || fail "small qemu log must not be rotated"
[ "$(stat -c %s "$RT/e.qemu.log")" -gt "$qsize" ] || fail "qemu log not appended"
mq stop e >/dev/null
truncate -s 9M "$RT/e.qemu.log"
run_rc rc mq start e
assert_eq "$rc" 0 "start 2: $OUT"
assert_eq "$(stat -c %s "$RT/e.qemu.log.1")" $((9 * 1024 * 1024)) "big qemu log rotated to .1"
assert_contains "$(mq logs --qemu e)" "maqet: starting" "fresh qemu log"
pass "rotation at start"

# -f across a restart: the rotated/recreated log is followed from its start
"$MAQET" logs -f -n 0 e > "$T/follow2" 2>&1 &
fpid=$!
mq stop e >/dev/null
truncate -s 9M "$RT/e.serial.log"
mq start e >/dev/null
wait_until 60 file_has "$T/follow2" "maqet-echo up" || fail "logs -f did not follow the new log after a restart"
kill -TERM "$fpid"; wait "$fpid" || true
pass "logs -f follows a rotated log"
