#!/usr/bin/env bash
# `maqet watch` and the rest of the world: a second watch on the same state
# dir is refused naming the first one's pid; SIGTERM leaves every VM running
# and a new watch adopts them (same pids, nothing restarted) and supervises
# them; READY=1 goes to $NOTIFY_SOCKET after the first pass; SIGHUP runs a
# pass; a VM held by `maqet stop` stays stopped across resyncs and SIGHUP;
# `maqet apply` from the CLI while the watch runs starts a VM exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
[ -x "$MQ_NOTIFY_RECV" ] || fail "notify-recv not built (MQ_NOTIFY_RECV=$MQ_NOTIFY_RECV)"
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu not built (MQ_FAKE_QEMU=$MQ_FAKE_QEMU)"


vm_yaml a > "$M/a.yaml"
vm_yaml b > "$M/b.yaml"
fake_yaml f normal > "$M/f.yaml"
start_watch -f "$M" --settle 100
pa=$(live_pid a) || fail "a not running"
pb=$(live_pid b) || fail "b not running"
pf=$(live_pid f) || fail "f not running"
w1=$WATCH_PID

# --- a second watch on the same state dir is refused
run_rc rc timeout 20 "$MAQET" watch --log-format json -f "$M" --settle 100
assert_eq "$rc" 1 "second watch exit status: $OUT"
assert_contains "$OUT" "another maqet watch"
assert_contains "$OUT" "$w1" "refusal names the first watch's pid"
proc_alive "$w1" || fail "the first watch died when a second one was refused"
assert_eq "$(vm_pid a)" "$pa" "refused watch must not touch a"
pass "second watch refused, naming pid $w1"

# --- SIGTERM: exit 0, every VM keeps running
stop_watch
assert_contains "$(log_details shutdown ok null)" "leaving 3 vms running"
proc_alive "$pa" || fail "a died when the watch stopped"
proc_alive "$pb" || fail "b died when the watch stopped"
assert_eq "$(vm_status a)" running
assert_eq "$(vm_status b)" running
proc_alive "$pf" || fail "f died when the watch stopped"
pass "SIGTERM leaves the vms running"
# f dies while no watch runs: the next watch must treat it as a crash
kill -9 "$pf"
wait_until 10 proc_dead "$pf" || fail "kill -9 f"

# --- a new watch adopts them; READY=1 reaches $NOTIFY_SOCKET after the first
# pass (made long by a slow-starting new VM).
sock=$T/notify.sock
(
	nrc=0
	"$MQ_NOTIFY_RECV" "$sock" 60000 READY=1 || nrc=$?
	echo "recv-rc=$nrc"
	echo "passes-at-ready=$(pass_count startup)"
) > "$T/notify.out" 2>&1 &
nr=$!
wait_until 5 test -S "$sock" || fail "notify-recv did not bind $sock: $(cat "$T/notify.out")"
fake_yaml s "slow-start=1500" > "$M/s.yaml"
export NOTIFY_SOCKET=$sock
start_watch -f "$M" --settle 100 --resync 1
unset NOTIFY_SOCKET
assert_eq "$(log_count adopt ok a)" 1 "a adopted"
assert_eq "$(log_count adopt ok b)" 1 "b adopted"
assert_contains "$(log_details adopt ok a)" "$pa" "adopt detail names a's pid"
assert_contains "$(log_details adopt ok b)" "$pb" "adopt detail names b's pid"
assert_eq "$(starts_of a)" 0 "adopted a must not be (re)started"
assert_eq "$(starts_of b)" 0 "adopted b must not be (re)started"
assert_eq "$(log_count stop '' a)$(log_count stop '' b)" 00 "adopted vms must not be stopped"
assert_eq "$(vm_pid a)" "$pa" "a keeps its pid"
assert_eq "$(vm_pid b)" "$pb" "b keeps its pid"
assert_eq "$(log_count create ok s)" 1 "the new manifest s is created by the startup pass"
pass "new watch adopts running vms with the same pids"
assert_eq "$(log_count adopt ok f)" 0 "dead f must not be adopted"
wait_log exit crash f 10 || fail "f, dead while no watch ran, not handled as a crash: $(log_select '' '' f)"
wait_until 15 has_new_pid f "$pf" || fail "f not restarted by the new watch"
pass "a vm that died between watches is handled as a crash and restarted"

wait_until 20 proc_dead "$nr" || fail "READY=1 not received on NOTIFY_SOCKET: $(cat "$T/notify.out")"
nout=$(cat "$T/notify.out")
assert_contains "$nout" "READY=1"
assert_contains "$nout" "recv-rc=0"
assert_contains "$nout" "passes-at-ready=1" "READY=1 must come after the first pass"
pass "READY=1 sent to NOTIFY_SOCKET after the first pass"

# --- an adopted VM is supervised: kill -9 is noticed and it is restarted
kill -9 "$pb"
wait_log exit crash b 10 || fail "crash of adopted b not noticed"
wait_until 15 has_new_pid b "$pb" || fail "adopted b not restarted after kill -9"
pb=$(live_pid b)
pass "adopted vm is supervised"

# --- SIGHUP runs a pass with trigger "signal"
h0=$(pass_count signal)
kill -HUP "$WATCH_PID"
wait_pass_n $((h0 + 1)) signal 10 || fail "SIGHUP did not cause a 'signal' pass"
quiet_for 0.3
pass "SIGHUP -> pass with trigger signal"

# --- a VM held by `maqet stop` stays stopped across resyncs and SIGHUP
run_rc rc mq stop a
assert_eq "$rc" 0 "maqet stop a while watch runs: $OUT"
wait_until 10 proc_dead "$pa" || fail "a still running after maqet stop"
# (whether the watch logged this exit as "exit"/"intended" is checked at the end)
assert_eq "$(log_count exit crash a)" 0 "maqet stop is not a crash"
r0=$(pass_count resync)
h0=$(pass_count signal)
wait_pass_n $((r0 + 2)) resync 10 || fail "no resync passes with --resync 1"
kill -HUP "$WATCH_PID"
wait_pass_n $((h0 + 1)) signal 10 || fail "SIGHUP pass missing"
quiet_for 0.5
assert_eq "$(starts_of a)" 0 "held a must not be started by the watch"
assert_eq "$(vm_status a)" stopped "held a stays stopped"
assert_eq "$(vm_field a hold)" true "a is held"
pgrep -f -- "$RT/a.qmp" >/dev/null && fail "a qemu for held a is running"
run_rc rc mq start a
assert_eq "$rc" 0 "maqet start a: $OUT"
pa=$(live_pid a) || fail "a not running after maqet start"
assert_eq "$(vm_field a hold)" false "maqet start clears the hold"
pass "held vm stays stopped across resync and SIGHUP"

# --- `maqet apply` from the CLI while the watch runs: both fine, started once
# (the watch's pass for c.yaml may be merged with the one that picks up the
# CLI's result, so any pass after the apply will do)
fake_yaml c "slow-start=500" > "$M/c.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply while the watch runs: $OUT"
p0=$(log_count pass done null)
wait_log_n $((p0 + 1)) pass done null 15 || fail "watch ran no pass after the concurrent apply"
pc=$(live_pid c) || fail "c not running"
assert_eq "$(count_events c start ok)" 1 "c started exactly once"
assert_eq "$(pgrep -f -- "$RT/c.qmp" | wc -l)" 1 "qemu processes for c"
assert_eq "$(log_count '' failed c)" 0 "watch logged a failure for c"
assert_eq "$(log_count '' skipped c)" 0 "watch logged a skip for c"
assert_eq "$(vm_pid a)" "$pa" "apply must not touch a"
assert_eq "$(vm_pid b)" "$pb" "apply must not touch b"
# the watch noticed the result: it supervises c whoever started it
kill -9 "$pc"
wait_log exit crash c 10 || fail "watch does not supervise c started by the concurrent apply"
wait_until 15 has_new_pid c "$pc" || fail "c not restarted after kill -9"
pass "concurrent maqet apply is safe; the vm is started once and supervised"

# --- a manifest edit made while a CLI apply holds the state lock is not lost:
# the watch's pass waits for the lock and then applies it.
fake_yaml d "slow-start=2000" > "$T/d.yaml"
"$MAQET" apply -f "$T/d.yaml" > "$T/d.out" 2>&1 &
ap=$!
wait_until 10 grep -q "^$ap " "$STATE/lock" || fail "the CLI apply never took the lock: $(cat "$T/d.out")"
ps=$(live_pid s) || fail "s not running"
rs0=$(log_count restart ok s)
fake_yaml s "slow-start=1500" "memory: 40M" > "$M/s.yaml"
rc=0; wait "$ap" || rc=$?
assert_eq "$rc" 0 "CLI apply of d: $(cat "$T/d.out")"
wait_log_n $((rs0 + 1)) restart ok s 20 || fail "edit of s made while the lock was held was lost"
has_new_pid s "$ps" || fail "s not restarted after its memory edit"
assert_eq "$(count_events d start ok)" 1 "d started once"
pass "manifest edit during a CLI apply is applied after it"

ps=$(live_pid s) || fail "s not running"
stop_watch
assert_contains "$(log_details shutdown ok null)" "leaving 6 vms running"
for p in "$pa" "$pb" "$ps" "$(vm_pid d)"; do proc_alive "$p" || fail "pid $p died when the watch stopped"; done
pass "second watch exits 0, vms keep running"

# --- checked last, so that the rest runs even when it fails: the exit of a
# supervised VM stopped by `maqet stop` is logged as "exit"/"intended".
assert_eq "$(log_count exit crash a)" 0 "maqet stop of a logged as a crash"
assert_eq "$(log_count exit intended a)" 1 \
	"exit/intended lines for a after 'maqet stop a' (exit lines: $(log_select exit '' a))"
pass "maqet stop of a supervised vm is logged as an intended exit"
