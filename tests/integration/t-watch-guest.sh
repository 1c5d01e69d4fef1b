#!/usr/bin/env bash
# A guest that powers itself off (boot sector, make_guest mode 1) is not a
# crash: `maqet watch` logs "exit"/"guest-poweroff".  Under the default
# `restart: on-failure` the VM stays down with status "stopped-by-guest"
# (and plan says why) until its manifest changes; under `restart: never` it
# stays down too; under `restart: always` it is started again.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

gm() { # name [extra yaml lines...]
	local name=$1; shift
	printf 'name: %s\nmemory: 32M\nstop_timeout: 10s\nstorage:\n  - {name: boot, type: raw, file: %s.img, interface: ide}\n' \
		"$name" "$name"
	local l
	for l in "$@"; do printf '%s\n' "$l"; done
}
make_guest "$M/g1.img" 1
cp "$M/g1.img" "$M/g2.img"
cp "$M/g1.img" "$M/g3.img"
gm g1 > "$M/g1.yaml"                  # restart: on-failure (the default)
gm g2 "restart: always" > "$M/g2.yaml"
gm g3 "restart: never" > "$M/g3.yaml"

start_watch -f "$M" --settle 100
# The guests may power off before status is read (TCG boots them in well
# under a second here): take the pids from the startup pass's log lines.
started_pid() { log_details create ok "$1" | sed -n 's/.*started (pid \([0-9]*\),.*/\1/p' | head -n 1; }
p1=$(started_pid g1); p2=$(started_pid g2)
[[ "$p1" =~ ^[0-9]+$ ]] || fail "g1 has no pid after startup: $(mq status 2>&1)"
[[ "$p2" =~ ^[0-9]+$ ]] || fail "g2 has no pid after startup: $(mq status 2>&1)"
assert_eq "$(starts_of g1)" 1 "g1 started by the startup pass"
[ "$(starts_of g2)" -ge 1 ] || fail "g2 not started by the startup pass" # (it may already have been restarted)

# Both guests boot (SeaBIOS takes a few seconds) and power themselves off.
wait_log exit guest-poweroff g1 90 ||
	fail "no exit/guest-poweroff for g1 (exit lines: $(log_select exit '' g1); serial: $(cat "$RT/g1.serial.log" 2>/dev/null))"
serial_has g1 "powering off" || fail "g1's guest did not power off by itself"
wait_until 10 proc_dead "$p1" || fail "g1's qemu still alive after its guest powered off"
assert_contains "$(log_details exit guest-poweroff g1 | head -n 1)" "guest" "exit detail of g1"
assert_eq "$(log_count exit crash g1)" 0 "a guest poweroff is not a crash"

# restart: always -> started again with a new pid
wait_log exit guest-poweroff g2 90 || fail "no exit/guest-poweroff for g2: $(log_select exit '' g2)"
wait_until 30 has_new_pid g2 "$p2" || fail "g2 (restart: always) not restarted: status $(vm_status g2)"
[ "$(starts_of g2)" -ge 2 ] || fail "no start line for g2's restart"
pass "restart: always restarts a guest that powered off (new pid)"

# restart: on-failure -> stays stopped, status stopped-by-guest, plan shows it
quiet_for 4
assert_eq "$(starts_of g1)" 1 "g1 (on-failure) must not be restarted after a guest poweroff"
pgrep -f -- "$RT/g1.qmp" >/dev/null && fail "a qemu for g1 is running"
assert_eq "$(vm_status g1)" stopped-by-guest "status of g1"
assert_eq "$(vm_field g1 pid)" null "g1 has no pid"
er=$(vm_field g1 exit_reason)
[ -n "$er" ] && [ "$er" != null ] || fail "g1's exit_reason is empty"
ev=$(mq events g1 -o json | jq -c '[.[] | select(.action == "exit")]')
assert_eq "$(jq length <<<"$ev")" 1 "one exit event for g1: $ev"
assert_eq "$(jq -r '.[0].outcome' <<<"$ev")" guest-poweroff "outcome of g1's exit event"
run_rc rc mq plan -f "$M" -o json
[ "$rc" = 0 ] || [ "$rc" = 2 ] || fail "plan failed (rc $rc): $OUT"
assert_eq "$(jq -r '.items[] | select(.name == "g1") | .observed' <<<"$OUT")" stopped-by-guest "plan's observed state of g1"
assert_contains "$(jq -r '.items[] | select(.name == "g1") | .reason' <<<"$OUT")" "guest" "plan's reason for g1"
pass "restart: on-failure leaves a guest poweroff stopped (stopped-by-guest)"

# restart: never -> stays down after its guest powered off
wait_log exit guest-poweroff g3 60 || fail "no exit/guest-poweroff for g3: $(log_select exit '' g3)"
assert_eq "$(starts_of g3)" 1 "g3 (restart: never) must not be restarted"
pgrep -f -- "$RT/g3.qmp" >/dev/null && fail "a qemu for g3 is running"
assert_eq "$(vm_status g3)" stopped-by-guest "status of g3"
pass "restart: never leaves a guest poweroff stopped"

# a manifest change lifts stopped-by-guest: g1 is started again
gm g1 "cpu: 1" > "$M/g1.yaml"
wait_until 30 starts_at_least g1 2 || fail "a manifest change did not start g1 again: $(log_select '' '' g1)"
pass "a manifest change starts a stopped-by-guest vm again"

stop_watch
