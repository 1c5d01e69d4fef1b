#!/usr/bin/env bash
# `maqet watch` supervises: a QEMU killed with SIGKILL is logged as an
# "exit"/"crash", recorded as an "exit" event and restarted at once with a
# new pid; under `restart: never` a crash is only recorded; a VM that keeps
# dying (fake die-after) backs off and enters crash-loop, after which it is
# not restarted, until `maqet start` (CLI, while watch runs) revives it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu not built (MQ_FAKE_QEMU=$MQ_FAKE_QEMU)"

exit_events() { # vm -> JSON array of its "exit" events
	mq events "$1" -o json | jq -c '[.[] | select(.action == "exit")]'
}

vm_yaml a > "$M/a.yaml"
fake_yaml n normal "restart: never" > "$M/n.yaml"
start_watch -f "$M" --settle 100 --resync 1 \
	--backoff-initial 100 --backoff-max 400 --crash-loop-limit 4
pa=$(live_pid a) || fail "a not running after startup"
pn=$(live_pid n) || fail "n not running after startup"

# --- kill -9 of a real QEMU: exit/crash, event, immediate restart with a new pid
sa=$(starts_of a)
kill -9 "$pa"
wait_log exit crash a 10 || fail "no exit/crash line for a after kill -9: $(log_details exit '' a)"
[ -n "$(log_details exit crash a | head -n 1)" ] || fail "exit/crash line for a has an empty detail"
wait_until 15 has_new_pid a "$pa" || fail "a not restarted after kill -9 (status $(vm_status a), pid $(vm_pid a))"
pa2=$(live_pid a)
assert_eq "$(starts_of a)" $((sa + 1)) "a restarted exactly once"
assert_eq "$(log_count backoff '' a)" 0 "the first restart after a crash must not be delayed"
assert_eq "$(vm_status a)" running
ev=$(exit_events a)
assert_eq "$(jq length <<<"$ev")" 1 "one 'exit' event for a in maqet events: $ev"
assert_eq "$(jq -r '.[0].outcome' <<<"$ev")" crash "outcome of a's exit event"
assert_eq "$(vm_field a restart_count)" 1 "restart_count after one crash"
er=$(vm_field a exit_reason)
[ -n "$er" ] && [ "$er" != null ] || fail "exit_reason empty after a crash"
quiet_for 1
assert_eq "$(vm_pid a)" "$pa2" "a must stay on its new pid (no second restart)"
pass "kill -9 -> exit/crash, event, restarted at once with a new pid"

# --- restart: never: the crash is recorded, the VM stays down
sn=$(starts_of n)
kill -9 "$pn"
wait_log exit crash n 10 || fail "no exit/crash line for n after kill -9"
quiet_for 2.5   # two resyncs (--resync 1) have passed
assert_eq "$(starts_of n)" "$sn" "restart: never must not restart"
assert_eq "$(vm_status n)" crashed "status of a crashed restart: never vm"
pgrep -f -- "$RT/n.qmp" >/dev/null && fail "a qemu for n is running"
assert_eq "$(jq length <<<"$(exit_events n)")" 1 "the crash of n is recorded as an event"
pass "restart: never -> crash recorded, not restarted"

# --- crash-loop: die-after with a shortened backoff schedule
fake_yaml loop "die-after=1000" > "$M/loop.yaml"
wait_log create ok loop 15 || fail "loop not created: $(log_details create '' loop)"
wait_log crash-loop entered loop 40 || fail "loop never entered crash-loop (exits: $(log_count exit crash loop))"
assert_eq "$(log_count exit crash loop)" 4 "crashes before crash-loop with --crash-loop-limit 4"
assert_eq "$(starts_of loop)" 4 "starts before crash-loop (create + 3 restarts)"
[ "$(log_count backoff waiting loop)" -ge 2 ] || fail "the 2nd and 3rd restarts must be delayed (backoff lines: $(log_count backoff waiting loop))"
log_details backoff waiting loop | grep -q '[0-9]' || fail "backoff detail lacks the delay: $(log_details backoff waiting loop)"
wait_until 5 status_is loop crash-loop || fail "status of loop: $(vm_status loop), want crash-loop"
quiet_for 2.5   # longer than --backoff-max, and two resyncs
assert_eq "$(starts_of loop)" 4 "crash-loop must not be restarted"
assert_eq "$(vm_status loop)" crash-loop "status stays crash-loop"
pgrep -f -- "$RT/loop.qmp" >/dev/null && fail "a qemu for loop is running in crash-loop"
pass "crash-looping vm reaches crash-loop and stays down"

# --- `maqet start` from the CLI revives it while the watch runs, and the
# watch supervises the new process (its next death is noticed).
s0=$(count_events loop start ok)
e0=$(log_count exit crash loop)
run_rc rc mq start loop
assert_eq "$rc" 0 "maqet start loop in crash-loop: $OUT"
pl=$(vm_pid loop)
[[ "$pl" =~ ^[0-9]+$ ]] || fail "no pid for loop after maqet start: $(mq status loop 2>&1)"
assert_eq "$(count_events loop start ok)" $((s0 + 1)) "start event for the CLI start"
assert_ne "$(vm_status loop)" crash-loop "maqet start must clear crash-loop"
wait_log_n $((e0 + 1)) exit crash loop 15 || fail "watch did not notice the CLI-started loop dying"
pass "maqet start revives a crash-looping vm; watch supervises it"

# status JSON carries the documented fields for every VM
mq status -o json | jq -e 'length == 3 and all(.[]; has("name") and has("desired") and has("status")
	and has("pid") and has("hold") and has("last_error") and has("restart_count") and has("exit_reason"))' \
	>/dev/null || fail "status JSON lacks fields: $(mq status -o json)"

# SIGINT ends the watch like SIGTERM and leaves the VMs running
stop_watch INT
proc_alive "$pa2" || fail "a died when the watch stopped"
pass "SIGINT: watch exits 0, vms keep running"
