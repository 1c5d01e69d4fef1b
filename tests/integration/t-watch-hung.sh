#!/usr/bin/env bash
# A hung QEMU (SIGSTOPped: the kernel still accepts on its QMP sockets, but
# it never greets nor answers) must not stall `maqet watch`:
#  (a) three VMs (idle guests) under watch; h1 is SIGSTOPped, then h2's QEMU
#      is killed with SIGKILL: h2 is restarted with a new pid within 30 s
#      and h3 is left alone;
#  (b) a watch started while h1 is still hung (the old one ended by SIGTERM,
#      exit 0 within 5 s) becomes ready within 30 s and supervises the
#      others: h3 killed -> restarted within 30 s;
#  (c) `maqet stop h1` (stop_timeout 2s) ends with h1's process gone, exit
#      status 0, within 2 s + a 30 s margin, and h1's events show the sigkill
#      step (powerdown and quit cannot work on a hung QEMU);
#  (d) while the watch itself restarts hung h1 (its manifest changed), h2 is
#      killed: h2's exit is handled before h1's restart finishes (judged by
#      the order of the log lines, not by time).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

STOPPED=()
cont_stopped() { local p; for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; }
CLEANUP_HOOKS+=(cont_stopped)

make_idle_guest "$M/h1.img"
cp "$M/h1.img" "$M/h2.img"
cp "$M/h1.img" "$M/h3.img"
for n in h1 h2 h3; do idle_yaml "$n" "$n.img" > "$M/$n.yaml"; done
start_watch -f "$M" --settle 100
for n in h1 h2 h3; do wait_until 60 live_pid "$n" || fail "$n not running: $(mq status 2>&1)"; done
p1=$(live_pid h1); p2=$(live_pid h2); p3=$(live_pid h3)
pass "h1 h2 h3 running ($p1 $p2 $p3)"

# --- (a) hung h1, killed h2
kill -STOP "$p1"
STOPPED+=("$p1")
wait_until 10 sh -c "grep -q '^State:.*T' /proc/$p1/status" || fail "h1 (pid $p1) is not stopped"
kill -9 "$p2"
if wait_until 30 has_new_pid h2 "$p2"; then
	pass "(a) h2 restarted (pid $(live_pid h2)) while h1 hangs"
else
	soft_fail "(a) h2 not restarted within 30 s of kill -9 while h1 is hung (status $(vm_status h2), pid $(vm_pid h2))"
fi
[ "$(log_count exit crash h2)" -ge 1 ] || soft_fail "(a) no exit/crash line for h2: $(log_select exit '' h2)"
[ "$(vm_pid h3)" = "$p3" ] || soft_fail "(a) h3 was touched: pid $(vm_pid h3), was $p3"
watch_alive || fail "watch died: $(tail -n 20 "$WATCH_LOG")"
term_watch_within 5 || soft_fail "(a) SIGTERM with a hung vm: no exit 0 within 5 s"
if [ -n "$WATCH_PID" ]; then kill -9 "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; WATCH_PID=; fi

# --- (b) a watch started while h1 hangs adopts it and still supervises
if WATCH_READY_TIMEOUT=30 start_watch_try -f "$M" --settle 100; then
	pass "(b) a new watch became ready with h1 hung"
	p3=$(live_pid h3) || fail "h3 not running"
	kill -9 "$p3"
	if wait_until 30 has_new_pid h3 "$p3"; then
		pass "(b) h3 restarted (pid $(live_pid h3)) by the new watch while h1 hangs"
	else
		soft_fail "(b) h3 not restarted within 30 s by a watch started while h1 hangs (status $(vm_status h3))"
	fi
else
	soft_fail "(b) a watch started while h1 hangs was not ready within 30 s: $(tail -n 5 "$WATCH_LOG")"
fi
proc_alive "$p1" || fail "h1 (pid $p1) died while stopped"
[ "$(vm_pid h1)" = "$p1" ] || soft_fail "h1 is hung, not dead: its record changed (pid $(vm_pid h1), status $(vm_status h1))"

# --- (c) maqet stop of the hung VM escalates to SIGKILL
t0=$SECONDS
run_rc rc timeout 120 "$MAQET" stop h1
dt=$((SECONDS - t0))
echo "maqet stop h1 (hung) took ${dt}s, rc $rc"
[ "$rc" = 0 ] || soft_fail "(c) maqet stop of a hung vm: rc $rc: $OUT"
[ "$dt" -le 32 ] || soft_fail "(c) maqet stop of a hung vm took ${dt}s (stop_timeout 2s + 30 s margin)"
wait_until 10 proc_dead "$p1" || soft_fail "(c) h1 (pid $p1) still alive after maqet stop"
nk=$(mq events h1 -o json | jq '[.[] | select(.action == "stop.sigkill")] | length')
[ "$nk" -ge 1 ] || soft_fail "(c) no stop.sigkill event for h1: $(mq events h1 -o json | jq -c '[.[] | .action + "/" + .outcome]')"
pass "(c) maqet stop of a hung vm: done"

# --- (d) the watch's own restart of a hung VM (a manifest change) must not
# hold up the others: h2, killed while that restart is under way (stopping
# a hung QEMU takes stop_timeout and more), has its exit handled first.
# Judged by order, not by time: h2's exit line comes before h1's restart line.
if watch_alive; then
	run_rc rc mq start h1
	[ "$rc" = 0 ] || fail "maqet start h1: $OUT"
	wait_until 30 live_pid h1 || fail "h1 not running after maqet start"
	p1=$(live_pid h1)
	kill -STOP "$p1"
	STOPPED+=("$p1")
	wait_until 10 sh -c "grep -q '^State:.*T' /proc/$p1/status" || fail "h1 (pid $p1) is not stopped"
	pd0=$(mq events h1 -o json | jq '[.[] | select(.action == "stop.powerdown")] | length')
	idle_yaml h1 h1.img "memory: 48M" | sed '/^memory: 32M$/d' > "$M/.h1.yaml" && mv "$M/.h1.yaml" "$M/h1.yaml"
	powerdown_began() { [ "$(mq events h1 -o json | jq '[.[] | select(.action == "stop.powerdown")] | length')" -gt "$pd0" ]; }
	wait_until 30 powerdown_began || fail "(d) the watch did not begin to stop h1 after its manifest changed"
	p2=$(live_pid h2) || fail "h2 not running"
	kill -9 "$p2"
	wait_until 60 has_new_pid h2 "$p2" || soft_fail "(d) h2 not restarted within 60 s while the watch restarts hung h1"
	h1_restart_logged() { [ "$(log_count restart '' h1)" -ge 1 ]; }
	wait_until 60 h1_restart_logged ||
		soft_fail "(d) no restart line for h1 within 60 s: $(log_select '' '' h1 | tail -n 5)"
	t2=$(log_select exit crash h2 | tail -n 1 | jq -r .time)
	t1=$(log_select restart '' h1 | tail -n 1 | jq -r .time)
	echo "(d) h2 exit handled at $t2, h1 restart logged at $t1"
	if [ -n "$t2" ] && [ -n "$t1" ] && [[ "$t2" < "$t1" ]]; then
		pass "(d) h2's exit was handled while the hung h1 was being restarted"
	else
		soft_fail "(d) h2's exit ($t2) waited for the restart of hung h1 ($t1): supervision stalls behind a hung vm"
	fi
fi

if [ -n "$WATCH_PID" ]; then
	term_watch_within 5 || soft_fail "SIGTERM at the end: no exit 0 within 5 s"
fi
soft_done
pass "a hung qemu does not stall supervision; maqet stop kills it"
