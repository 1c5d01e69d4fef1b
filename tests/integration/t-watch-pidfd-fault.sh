#!/usr/bin/env bash
# `maqet watch` without working pidfds: under an LD_PRELOAD shim that makes
# pidfd_open fail with ENOSYS (old kernel, seccomp) and then with EMFILE (fd
# limit reached), watch must still supervise: two VMs (real QEMU, idle
# guest) come up, a QEMU killed with SIGKILL is noticed and restarted with a
# new pid (restart recorded), the watch does not spin (CPU < 20 % of a CPU
# over ~3 s, where a busy loop is ~100 %) nor flood its log (< 200 lines),
# and SIGTERM ends it with status 0 within 5 s, leaving the VMs running.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
: "${MQ_SHIM_PIDFD_SO:?MQ_SHIM_PIDFD_SO must point at the built shim-pidfd library}"
[ -f "$MQ_SHIM_PIDFD_SO" ] || fail "shim not built: $MQ_SHIM_PIDFD_SO"

make_idle_guest "$M/idle.img"

for mode in enosys emfile; do
	# each mode has its own state and runtime dir (under $RT, so the
	# clean-up's kill of "$RT/" covers its QEMUs)
	export MAQET_STATE_DIR=$T/state-$mode MAQET_RUNTIME_DIR=$RT/$mode
	mkdir -p "$RT"
	md=$M/$mode
	mkdir -p "$md"
	a=${mode:0:1}a b=${mode:0:1}b
	cp "$M/idle.img" "$md/$a.img"
	cp "$M/idle.img" "$md/$b.img"
	idle_yaml "$a" "$a.img" "restart: always" > "$md/$a.yaml"
	idle_yaml "$b" "$b.img" "restart: on-failure" > "$md/$b.yaml"

	# only the watch runs under the shim: a wrapper that execs maqet (same pid)
	cat > "$T/maqet-shim" <<-SH
		#!/bin/sh
		LD_PRELOAD='$MQ_SHIM_PIDFD_SO' MQ_SHIM_PIDFD=$mode \\
		ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0" exec '$MAQET' "\$@"
	SH
	chmod +x "$T/maqet-shim"
	real_maqet=$MAQET
	MAQET=$T/maqet-shim
	start_watch -f "$md" --settle 100
	MAQET=$real_maqet
	[ "$(log_count '' '' '' | head -n 1)" -ge 1 ] || fail "[$mode] empty watch log"

	wait_until 60 live_pid "$a" || fail "[$mode] $a not running: $(mq status 2>&1)"
	wait_until 60 live_pid "$b" || fail "[$mode] $b not running: $(mq status 2>&1)"
	pa=$(live_pid "$a"); pb=$(live_pid "$b")
	pass "[$mode] both vms up under the shim (pids $pa $pb)"

	pct=$(cpu_pct "$WATCH_PID" 3) || fail "[$mode] watch died: $(tail -n 20 "$WATCH_LOG")"
	[ "$pct" -lt 20 ] || soft_fail "[$mode] watch uses $pct % of a CPU while idle (want < 20 %): it spins"
	echo "[$mode] idle watch CPU: $pct %"

	# kill -9 one QEMU: the watch must notice and restart it
	rc0=$(vm_field "$a" restart_count)
	kill -9 "$pa"
	if wait_until 30 has_new_pid "$a" "$pa"; then
		pa2=$(live_pid "$a")
		[ "$(vm_field "$a" restart_count)" -gt "${rc0:-0}" ] ||
			soft_fail "[$mode] restart of $a not recorded (restart_count $(vm_field "$a" restart_count), was $rc0)"
		[ "$(log_count exit crash "$a")" -ge 1 ] ||
			soft_fail "[$mode] no exit/crash line for $a: $(log_select exit '' "$a")"
		pass "[$mode] killed $a restarted (pid $pa -> $pa2)"
	else
		soft_fail "[$mode] $a not restarted within 30 s of kill -9 (status $(vm_status "$a"), pid $(vm_pid "$a"))"
		pa2=
	fi

	if proc_alive "$WATCH_PID"; then
		pct=$(cpu_pct "$WATCH_PID" 3) || pct=999
		[ "$pct" -lt 20 ] || soft_fail "[$mode] watch uses $pct % of a CPU after the restart (want < 20 %): it spins"
		echo "[$mode] watch CPU after the restart: $pct %"
	else
		soft_fail "[$mode] watch died: $(tail -n 20 "$WATCH_LOG")"
	fi
	lines=$(wc -l < "$WATCH_LOG")
	[ "$lines" -lt 200 ] ||
		soft_fail "[$mode] watch log exploded: $lines lines; most repeated: $(most_repeated | cut -c1-300)"
	echo "[$mode] watch log: $lines lines"

	if term_watch_within 5; then
		check_log_format "$T/watch.log"
		pass "[$mode] SIGTERM: exit 0 within 5 s"
	else
		soft_fail "[$mode] SIGTERM not answered with exit 0 within 5 s"
	fi
	proc_alive "$pb" || soft_fail "[$mode] $b (pid $pb) died around the watch's exit"
	[ -z "$pa2" ] || proc_alive "$pa2" || soft_fail "[$mode] $a (pid $pa2) died around the watch's exit"
	# this mode's VMs are done with: kill them (our pids) so the next mode
	# runs on a quieter machine
	for p in "$pb" $pa2; do kill -9 "$p" 2>/dev/null || true; done
	for p in $(pgrep -f -- "$MAQET_RUNTIME_DIR/"); do kill -9 "$p" 2>/dev/null || true; done
	# the watch may still be running when it failed to exit: stop it
	if [ -n "$WATCH_PID" ]; then kill -9 "$WATCH_PID" 2>/dev/null || true; WATCH_PID=; fi
done
soft_done
pass "watch supervises without pidfds (ENOSYS, EMFILE)"
