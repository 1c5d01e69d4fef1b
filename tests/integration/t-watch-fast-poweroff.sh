#!/usr/bin/env bash
# A guest that powers itself off within milliseconds of boot (make_guest
# mode 1: the boot sector writes SLP_EN to PM1_CNT at once) is a guest
# poweroff, never a crash, also when QEMU is gone a moment after it answered
# "running" and the machine is loaded (two busy loops, NIDLE (20) idle
# guests).  Three such VMs (restart: on-failure) are started by the watch,
# then each is started again with `maqet start` (ROUNDS, default 3: 9 exits).
# Every exit must be logged exit/guest-poweroff and recorded as a
# guest-poweroff event; none as a crash; the watch must not restart them
# (one start line each), and each ends stopped-by-guest with restart_count 0
# and an exit_reason that names the guest's poweroff.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

ROUNDS=${ROUNDS:-3}
NP=3
NIDLE=${NIDLE:-20}
BUSY=()
kill_busy() { local p; for p in "${BUSY[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
CLEANUP_HOOKS+=(kill_busy)
for i in 1 2; do
	( while :; do :; done ) &
	BUSY+=($!)
done

make_guest "$M/off.img" 1
make_idle_guest "$M/idle.img"
for i in $(seq 1 $NP); do
	cp "$M/off.img" "$M/p$i.img"
	printf 'name: p%s\nmachine: pc\nmemory: 32M\nstop_timeout: 2s\nrestart: on-failure\nstorage:\n  - {name: boot, type: raw, file: p%s.img, interface: ide}\n' \
		"$i" "$i" > "$M/p$i.yaml"
done
for i in $(seq 1 "$NIDLE"); do
	cp "$M/idle.img" "$M/i$i.img"
	idle_yaml "i$i" "i$i.img" > "$M/i$i.yaml"
done
rm "$M/off.img" "$M/idle.img"

exits_of() { log_count exit '' "$1"; }
# round R of NAME is over: R exits or more, and it is down (stopped-by-guest)
round_over() { [ "$(exits_of "$1")" -ge "$2" ] && status_is "$1" stopped-by-guest; }
start_watch -f "$M" --settle 100
for r in $(seq 1 "$ROUNDS"); do
	if [ "$r" -gt 1 ]; then
		for i in $(seq 1 $NP); do
			run_rc rc mq start "p$i"
			[ "$rc" = 0 ] || fail "round $r: maqet start p$i: rc $rc: $OUT"
		done
	fi
	for i in $(seq 1 $NP); do
		wait_until 120 round_over "p$i" "$r" ||
			fail "round $r: p$i did not power off and stay down (exit lines: $(log_select exit '' "p$i"); status $(vm_status "p$i"))"
	done
	pass "round $r: p1..p$NP powered off"
done
quiet_for 3 # a wrong restart would show now

check_eq() { [ "$1" == "$2" ] || soft_fail "$3: got '$1', want '$2'"; }
for i in $(seq 1 $NP); do
	n=p$i
	check_eq "$(log_count exit crash "$n")" 0 "$n: exits classified as crash: $(log_select exit crash "$n" | jq -r .time | tr '\n' ' ')"
	check_eq "$(log_count exit guest-poweroff "$n")" "$ROUNDS" "$n: exits classified guest-poweroff"
	check_eq "$(starts_of "$n")" 1 "$n: start lines of the watch (restart: on-failure must not restart a guest poweroff)"
	pgrep -f -- "$RT/$n.qmp" >/dev/null && soft_fail "a qemu for $n is running"
	check_eq "$(vm_status "$n")" stopped-by-guest "status of $n"
	check_eq "$(vm_field "$n" restart_count)" 0 "restart_count of $n"
	er=$(vm_field "$n" exit_reason)
	[[ "${er,,}" =~ guest|poweroff|power\ off|powered\ off ]] || soft_fail "$n's exit_reason does not name the guest's poweroff: '$er'"
	ev=$(mq events "$n" -o json | jq -c '[.[] | select(.action == "exit") | .outcome]')
	check_eq "$(jq length <<<"$ev")" "$ROUNDS" "number of exit events of $n ($ev)"
	check_eq "$(jq -r 'unique | join(",")' <<<"$ev")" guest-poweroff "outcomes of $n's exit events"
done
for i in $(seq 1 "$NIDLE"); do
	check_eq "$(vm_status "i$i")" running "status of idle guest i$i"
done
soft_done
pass "$((NP * ROUNDS)) fast guest poweroffs under load: all guest-poweroff, none restarted"
stop_watch
