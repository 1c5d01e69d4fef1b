#!/usr/bin/env bash
# Forced faults with the fake QEMU: a VM whose QEMU dies at start fails with
# its exit status and stderr while the others start; a wedged QEMU is stopped
# step by step (powerdown -> quit -> SIGTERM -> SIGKILL); garbage on QMP is a
# clear error; a missing binary is named.
source "$(dirname "$0")/lib.sh"
fake_yaml ok normal > "$M/ok.yaml"
fake_yaml boom crash-on-start > "$M/boom.yaml"
fake_yaml junk garbage > "$M/junk.yaml"
printf 'name: nobin\nbinary: /nonexistent/qemu-system-x86_64\n' > "$M/nobin.yaml"
run_rc rc mq apply -f "$M"
echo "$OUT"
assert_eq "$rc" 1 "apply with failing vms exits non-zero"
assert_eq "$(vm_status ok)" running "healthy vm started despite others failing"
assert_eq "$(vm_status boom)" failed
le=$(vm_field boom last_error)
assert_contains "$le" "qemu exited with status 1"
assert_contains "$le" "could not open disk image"
assert_eq "$(vm_status junk)" failed
assert_contains "$(vm_field junk last_error)" "qmp"
pgrep -f -- "$RT/junk.qmp" >/dev/null && fail "qemu with garbage qmp left running"
assert_contains "$(vm_field nobin last_error)" "not found"
assert_contains "$OUT" "FAILED"
# the failures do not corrupt the healthy vm's record
pok=$(vm_pid ok)
proc_alive "$pok" || fail "ok vm died"
pass "one vm's failure does not stop the others"

# A restart-class change to a binary that is missing: the check runs first
# (in the vm's worker), so the running QEMU is kept, not stopped.
cp "$M/ok.yaml" "$T/ok.yaml.good"
sed -i 's|^binary: .*|binary: /nonexistent/qemu-system-x86_64|' "$M/ok.yaml"
grep -q '^binary: /nonexistent/' "$M/ok.yaml" || fail "ok.yaml has no binary line to change: $(cat "$M/ok.yaml")"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 1 "apply of a restart to a missing binary: $OUT"
assert_contains "$OUT" "not found"
assert_eq "$(vm_pid ok)" "$pok" "the old QEMU was kept"
proc_alive "$pok" || fail "ok's QEMU was stopped for a binary that is missing"
assert_eq "$(vm_status ok)" running
assert_contains "$(vm_field ok last_error)" "not found"
# the record still holds the spec that runs: the change is tried again ...
run_rc rc mq plan -f "$M"
assert_contains "$OUT" "ok"
assert_eq "$rc" 2 "plan after the failed restart still shows the change: $OUT"
# ... and the manifest put back is no change at all
cp "$T/ok.yaml.good" "$M/ok.yaml"
run_rc rc mq plan -f "$M"
assert_not_contains "$OUT" "~ ok" "the manifest put back restarts nothing"
assert_eq "$(vm_pid ok)" "$pok" "the old QEMU still runs"
pass "a restart to a missing binary keeps the running QEMU and its recorded spec"

# The stop ladder.
rm "$M/boom.yaml" "$M/junk.yaml" "$M/nobin.yaml"
fake_yaml w-quit ignore-powerdown > "$M/w-quit.yaml"
fake_yaml w-term ignore-powerdown,ignore-quit > "$M/w-term.yaml"
fake_yaml w-kill ignore-powerdown,ignore-quit,ignore-sigterm > "$M/w-kill.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
declare -A want=( [ok]=powerdown [w-quit]=quit [w-term]=sigterm [w-kill]=sigkill )
for vm in "${!want[@]}"; do
	p=$(vm_pid "$vm")
	run_rc rc mq stop "$vm" --timeout 500ms
	assert_eq "$rc" 0 "stop $vm: $OUT"
	wait_until 10 proc_dead "$p" || fail "$vm still alive"
	assert_eq "$(count_events "$vm" "stop.${want[$vm]}" exited)" 1 "$vm stopped by ${want[$vm]}"
	assert_eq "$(vm_status "$vm")" stopped
done
pass "stop ladder powerdown -> quit -> sigterm -> sigkill"
