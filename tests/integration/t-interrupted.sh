#!/usr/bin/env bash
# Issue 7 item 1: an interrupted start leaves nothing untracked.  `maqet
# apply` and `maqet watch` are SIGKILLed at several moments of starting
# real QEMUs (two VMs; --jobs 1 and --jobs 4, with and without disks): right away, as
# soon as a QEMU process exists (maybe not recorded yet), as soon as a record
# carries a pid while still `starting`, and once one VM runs.  After each
# kill the next `apply` (or `watch`) converges with exactly one QEMU per VM,
# its pid the recorded one, none `failed`; or `rm --force` right after the
# kill leaves no QEMU of the VM behind.  Prints "moment ... qemus per vm"
# lines (the figures of the closing report).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

VMS="a b"

# number of live processes whose command line names vm $1's QMP socket
nqemu() {
	local n=0 p
	for p in $(pgrep -f -- "path=$RT/$1.qmp," 2>/dev/null || true); do
		proc_alive "$p" && n=$((n + 1))
	done
	echo "$n"
}

write_manifests() { # disks: 0/1
	rm -f "$M"/*.yaml
	local v
	for v in $VMS; do
		if [ "$1" = 1 ]; then
			vm_yaml "$v" "storage:" "  - name: d" "    size: 16M" > "$M/$v.yaml"
		else
			vm_yaml "$v" > "$M/$v.yaml"
		fi
	done
}

# wait for a kill moment: now | qemu (a QEMU process exists) | spawned (a
# record is starting with a pid) | running (one VM runs)
any_qemu() { pgrep -f -- "path=$RT/[abc].qmp," >/dev/null; }
any_spawned() {
	mq status -o json 2>/dev/null | jq -e '[.[] | select(.status == "starting" and (.pid // 0) > 0)] | length > 0' >/dev/null
}
any_running() {
	mq status -o json 2>/dev/null | jq -e '[.[] | select(.status == "running")] | length > 0' >/dev/null
}
wait_moment() {
	case $1 in
	now) ;;
	qemu) wait_until 30 any_qemu || true ;;
	spawned) wait_until 30 any_spawned || true ;;
	running) wait_until 60 any_running || true ;;
	esac
}

converged() {
	local v pid st
	for v in $VMS; do
		st=$(vm_status "$v")
		[ "$st" = running ] || { echo "vm $v is $st"; return 1; }
		[ "$(nqemu "$v")" = 1 ] || { echo "vm $v has $(nqemu "$v") qemus"; return 1; }
		pid=$(vm_pid "$v")
		tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "path=$RT/$v.qmp," ||
			{ echo "recorded pid $pid of $v is not its qemu"; return 1; }
	done
}

none_left() {
	local v
	for v in $VMS; do [ "$(nqemu "$v")" = 0 ] || return 1; done
}

rm_all() {
	local v
	for v in $VMS; do
		run_rc rc mq rm "$v" --force
		# a kill before the record was written leaves no record (and no qemu)
		[ "$rc" = 0 ] || assert_contains "$OUT" "no vm named '$v'" "rm --force $v"
	done
	wait_until 20 none_left || fail "rm --force left a qemu: $(pgrep -af -- "$RT/" || true)"
}

counts() {
	local v s=""
	for v in $VMS; do s="$s $v=$(nqemu "$v")"; done
	echo "${s# }"
}

rounds=0
for disks in 0 1; do
	write_manifests $disks
	for jobs in 1 4; do
		for moment in now qemu spawned running; do
			rounds=$((rounds + 1))
			# --- kill apply
			"$MAQET" apply -f "$M" --jobs $jobs >/dev/null 2>&1 &
			ap=$!
			wait_moment $moment
			kill -KILL $ap 2>/dev/null || true
			wait $ap 2>/dev/null || true
			after_kill=$(counts)
			if [ $(((rounds + (jobs == 4)) % 2)) = 0 ]; then
				# rm --force straight after the kill
				rm_all
				echo "moment apply/$moment jobs=$jobs disks=$disks: after kill [$after_kill], after rm --force [$(counts)]"
				continue
			fi
			run_rc rc mq apply -f "$M" --jobs $jobs
			assert_eq "$rc" 0 "apply after killing apply at '$moment' (jobs $jobs, disks $disks): $OUT"
			assert_not_contains "$OUT" "FAILED" "no vm failed"
			msg=$(converged) || fail "apply at '$moment' jobs $jobs disks $disks: $msg"
			echo "moment apply/$moment jobs=$jobs disks=$disks: after kill [$after_kill], after apply [$(counts)]"
			rm_all
		done
		for moment in qemu spawned; do
			# --- kill watch
			"$MAQET" watch --log-format json -f "$M" --jobs $jobs 2>"$T/w.log" >/dev/null &
			wp=$!
			wait_moment $moment
			kill -KILL $wp 2>/dev/null || true
			wait $wp 2>/dev/null || true
			after_kill=$(counts)
			start_watch -f "$M" --jobs $jobs --settle 100
			wait_until 60 converged || fail "watch after killing watch at '$moment' jobs $jobs disks $disks: $(converged)"
			[ "$(mq status -o json | jq '[.[] | select(.status == "failed")] | length')" = 0 ] || fail "a vm failed"
			echo "moment watch/$moment jobs=$jobs disks=$disks: after kill [$after_kill], after watch [$(counts)]"
			stop_watch
			rm_all
		done
	done
done
# the adoption was seen (not only fresh starts after a kill)
n_adopt=$(mq events -o json | jq '[.[] | select(.action == "adopt")] | length')
echo "adoptions recorded: $n_adopt"
pass "$rounds apply kills and 8 watch kills converged with one qemu per vm; rm --force left none"
