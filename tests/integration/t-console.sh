#!/usr/bin/env bash
# maqet console: a round trip through a pseudo-terminal with a guest that
# echoes its serial input, detach with Ctrl-], the terminal restored (also on
# SIGTERM), the console still logged, and an open console never blocking
# `maqet stop`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/opslib.sh"
[ -x "${MQ_PTY_RUN:-}" ] || fail "pty-run not built (MQ_PTY_RUN=${MQ_PTY_RUN:-})"
make_echo_guest "$M/echo.img"
echo_vm_yaml e > "$M/e.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
wait_until 60 serial_has e "maqet-echo up" || fail "echo guest did not boot: $(cat "$RT/e.serial.log" 2>/dev/null)"
[ -S "$RT/e.console" ] || fail "no console socket $RT/e.console"

# errors: unknown vm, usage
run_rc rc mq console nosuch
assert_eq "$rc" 1 "unknown vm"
assert_contains "$OUT" "cannot attach to vm 'nosuch': no such vm"
run_rc rc mq console
assert_eq "$rc" 64 "no name is a usage error"

# 1. round trip, detach with Ctrl-]
mkfifo "$T/in"
"$MQ_PTY_RUN" "$T/out" "$MAQET" console e < "$T/in" 2> "$T/pty.err" &
ptypid=$!
exec 3> "$T/in"
wait_until 20 file_has "$T/out" "detach with Ctrl-]" || fail "no banner: $(cat "$T/out")"
printf 'hi' >&3
wait_until 30 file_has "$T/out" "[h][i]" || fail "guest's echo not on the terminal: $(cat -v "$T/out")"
printf '\035' >&3
wait_until 20 proc_dead "$ptypid" || fail "console did not detach on Ctrl-]"
set +e; wait "$ptypid"; prc=$?; set -e
exec 3>&-
assert_eq "$prc" 0 "detach exit status ($(cat "$T/pty.err"))"
assert_contains "$(cat "$T/pty.err")" "termios: restored" "terminal restored after detach"
assert_contains "$(cat "$T/out")" "detached from the console of 'e'"
# raw mode: the typed text is not echoed locally, only the guest's answer
assert_not_contains "$(cat "$T/out")" "hi[" "no local echo in raw mode"
# the console is still logged
wait_until 10 serial_has e '\[h\]\[i\]' || fail "console traffic not in the serial log: $(cat "$RT/e.serial.log")"
pass "console round trip, Ctrl-] detach, terminal restored, still logged"

# 2. a signal restores the terminal too
rm -f "$T/in" && mkfifo "$T/in"
"$MQ_PTY_RUN" "$T/out2" "$MAQET" console e < "$T/in" 2> "$T/pty2.err" &
ptypid=$!
exec 3> "$T/in"
wait_until 20 file_has "$T/out2" "detach with Ctrl-]" || fail "no banner (2): $(cat "$T/out2")"
printf 'x' >&3
wait_until 30 file_has "$T/out2" "[x]" || fail "second console got no echo: $(cat -v "$T/out2")"
cpid=$(pgrep -P "$ptypid" -f "console e") || fail "console process not found"
kill -TERM "$cpid"
wait_until 20 proc_dead "$ptypid" || fail "console did not end on SIGTERM"
set +e; wait "$ptypid"; prc=$?; set -e
exec 3>&-
assert_eq "$prc" 143 "SIGTERM exit status"
assert_contains "$(cat "$T/pty2.err")" "termios: restored" "terminal restored after SIGTERM"
pass "SIGTERM restores the terminal"

# 3. an open console does not block `maqet stop`; the console ends with the VM
rm -f "$T/in" && mkfifo "$T/in"
"$MQ_PTY_RUN" "$T/out3" "$MAQET" console e < "$T/in" 2> "$T/pty3.err" &
ptypid=$!
exec 3> "$T/in"
wait_until 20 file_has "$T/out3" "detach with Ctrl-]" || fail "no banner (3)"
printf 'y' >&3
wait_until 30 file_has "$T/out3" "[y]" || fail "third console got no echo"
run_rc rc timeout 60 "$MAQET" stop e
assert_eq "$rc" 0 "stop with a console attached: $OUT"
wait_until 20 proc_dead "$ptypid" || fail "console did not end when the vm stopped"
set +e; wait "$ptypid"; prc=$?; set -e
exec 3>&-
assert_eq "$prc" 1 "console exit status when the vm goes away"
assert_contains "$(cat "$T/out3")" "console of vm 'e' closed"
assert_contains "$(cat "$T/pty3.err")" "termios: restored" "terminal restored when the vm stopped"
run_rc rc mq console e
assert_eq "$rc" 1 "console of a stopped vm"
assert_contains "$OUT" "not running"
pass "stop is not blocked by a console; the console ends with the vm"
