#!/usr/bin/env bash
# With `maqet watch` running: a quit (or a system_powerdown the guest obeys)
# sent through `maqet qmp` is an intended
# stop (watch logs exit/intended, never a crash, does not restart it, the VM
# stays held until `maqet start`), and a VM paused with `maqet pause` is
# neither restarted nor counted as crashed, even across manifest changes,
# until `maqet resume`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
vm_yaml w > "$M/w.yaml"
start_watch -f "$M" --settle 100
wait_until 30 live_pid w || fail "watch did not start w"
p1=$(live_pid w)
assert_eq "$(starts_of w)" 1 "one start"

# --- quit through passthrough -------------------------------------------------------
run_rc rc mq qmp w quit
assert_eq "$rc" 0 "quit: $OUT"
wait_until 10 proc_dead "$p1" || fail "quit did not stop qemu"
wait_log exit intended w 20 || fail "watch did not log the quit as intended: $(log_select exit '' w)"
wait_until 10 status_is w stopped || fail "status after quit: $(vm_status w)"
assert_eq "$(vm_field w hold)" true "held after quit"
quiet_for 2
assert_eq "$(log_count exit crash w)" 0 "quit counted as a crash"
assert_eq "$(starts_of w)" 1 "watch restarted a vm stopped by qmp quit"
assert_eq "$(vm_status w)" stopped "still stopped"
assert_eq "$(mq events w -o json | jq '[.[] | select(.action == "exit")] | length')" 0 "an exit event recorded"
pass "quit seen by watch as intended"

run_rc rc mq start w
assert_eq "$rc" 0 "start: $OUT"
p2=$(live_pid w) || fail "start after quit"
assert_eq "$(vm_field w hold)" false "hold released"

# --- pause / resume -----------------------------------------------------------------
run_rc rc mq pause w
assert_eq "$rc" 0 "pause: $OUT"
assert_eq "$(vm_status w)" paused "status after pause"
assert_eq "$(mq qmp w query-status -o json | jq -r .status)" paused "qemu paused"
mq status | grep -q '^w  *running  *paused ' || fail "status table: $(mq status)"
# a manifest change that needs a restart waits for resume
sed -i 's/memory: 64M/memory: 96M/' "$M/w.yaml"
wait_log_n 2 pass done "" 30 || fail "no pass after the manifest change"
quiet_for 2
assert_eq "$(vm_pid w)" "$p2" "watch touched a paused vm"
proc_alive "$p2" || fail "paused vm's qemu gone"
assert_eq "$(vm_status w)" paused "still paused"
assert_eq "$(log_count exit '' w)" 1 "only the quit's exit line"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan of a paused vm: no changes"
assert_contains "$OUT" "paused (maqet resume w)"
run_rc rc mq pause w
assert_eq "$rc" 0
assert_contains "$OUT" "already paused"

run_rc rc mq resume w
assert_eq "$rc" 0 "resume: $OUT"
# the change that waited is applied now: the watch restarts it with 96M
wait_until 60 has_new_pid w "$p2" || fail "change not applied after resume: $(mq status)"
wait_until 30 status_is w running || fail "status after resume: $(vm_status w)"
assert_eq "$(mq qmp w query-status -o json | jq -r .status)" running "qemu running"
assert_eq "$(log_count exit crash w)" 0 "a crash logged"
ev=$(mq events w -o json | jq -r '.[] | select(.action == "pause" or .action == "resume") | .action + "/" + .outcome' | tr '\n' ' ')
assert_eq "$ev" "pause/ok resume/ok " "pause and resume events"
pass "pause/resume under watch"

# --- system_powerdown through passthrough, a guest that powers off on the button -----
make_guest "$M/g.img" 0
printf 'name: g\nmemory: 32M\nstop_timeout: 20s\nstorage:\n  - {name: boot, type: raw, file: g.img, interface: ide}\n' > "$M/g.yaml"
wait_until 60 live_pid g || fail "watch did not start g"
wait_until 90 serial_has g "maqet-guest up" || fail "guest g did not boot"
pg=$(live_pid g)
run_rc rc mq qmp g system_powerdown
assert_eq "$rc" 0 "powerdown: $OUT"
proc_dead "$pg" || fail "maqet qmp returned before the guest powered off"
wait_log exit intended g 20 || fail "watch did not log the powerdown as intended: $(log_select exit '' g)"
quiet_for 2
assert_eq "$(log_count exit crash g)" 0 "powerdown counted as a crash"
assert_eq "$(log_count exit guest g)" 0 "powerdown counted as the guest's own poweroff"
assert_eq "$(starts_of g)" 1 "watch restarted a vm powered down by qmp"
assert_eq "$(vm_status g)" stopped "status after powerdown"
assert_eq "$(vm_field g hold)" true "held after powerdown"
pass "system_powerdown seen by watch as intended, then held"
stop_watch
