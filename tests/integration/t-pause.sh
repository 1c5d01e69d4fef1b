#!/usr/bin/env bash
# maqet pause / resume: QEMU's vcpus stop and continue, status shows the
# phase, apply leaves a paused VM paused (plan says why) until resume, an
# unknown or stopped VM is refused, and a paused VM can still be stopped.
source "$(dirname "$0")/lib.sh"
vm_yaml p > "$M/p.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
pid=$(vm_pid p)

run_rc rc mq pause p
assert_eq "$rc" 0 "pause: $OUT"
assert_eq "$(vm_status p)" paused
assert_eq "$(mq qmp p query-status -o json | jq -r .status)" paused "qemu vcpus stopped"
js=$(mq events p -o json | jq -r '.[] | select(.action == "pause") | .outcome')
assert_eq "$js" ok "pause event"

# apply: no-op, even with a desired state of stopped
sed -i '1a state: stopped' "$M/p.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan of a paused vm: $OUT"
assert_contains "$OUT" "paused (maqet resume p)"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0
assert_eq "$(vm_status p)" paused "apply touched a paused vm"
assert_eq "$(vm_pid p)" "$pid"
sed -i '/^state: stopped$/d' "$M/p.yaml"

run_rc rc mq resume p
assert_eq "$rc" 0 "resume: $OUT"
assert_eq "$(vm_status p)" running
assert_eq "$(mq qmp p query-status -o json | jq -r .status)" running "qemu vcpus running"
run_rc rc mq resume p
assert_eq "$rc" 0 "resume of a running vm"
assert_eq "$(vm_status p)" running

run_rc rc mq pause nosuch
assert_eq "$rc" 1
assert_contains "$OUT" "no vm named 'nosuch'"
run_rc rc mq pause
assert_eq "$rc" 64 "missing name"

# a paused vm can be stopped (the ladder ends with quit)
run_rc rc mq pause p
assert_eq "$rc" 0
run_rc rc mq stop p --timeout 1
assert_eq "$rc" 0 "stop of a paused vm: $OUT"
wait_until 20 proc_dead "$pid" || fail "stop did not stop a paused vm"
assert_eq "$(vm_status p)" stopped
run_rc rc mq pause p
assert_eq "$rc" 1 "pause of a stopped vm"
assert_contains "$OUT" "not running (observed stopped)"
run_rc rc mq resume p
assert_eq "$rc" 1 "resume of a stopped vm"
pass "pause/resume"
