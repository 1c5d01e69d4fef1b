#!/usr/bin/env bash
# maqet inspect: json and yaml; the argv is exactly the one QEMU was started
# with (rebuilt from the recorded spec and accel); paths, phase with reason,
# restart bookkeeping, last events.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/opslib.sh"
make_echo_guest "$M/echo.img"
{ echo_vm_yaml e; printf '  - {name: data, type: qcow2, size: 16M}\n'; } > "$M/e.yaml"
run_rc rc mq inspect e
assert_eq "$rc" 1 "unknown vm"
assert_contains "$OUT" "cannot inspect vm 'e': no such vm"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"

J=$(mq inspect -o json e)
assert_eq "$(jq -r .name <<<"$J")" e
assert_eq "$(jq -r .status.phase <<<"$J")" running
assert_eq "$(jq -r .status.pid <<<"$J")" "$(vm_pid e)" "pid"
assert_eq "$(jq -r .spec_hash <<<"$J")" "$(vm_field e spec_hash)" "spec hash"
assert_eq "$(jq -r .spec.memory <<<"$J")" 33554432 "recorded spec"
assert_eq "$(jq -r .restart.count <<<"$J")" 0
assert_eq "$(jq -r .restart.policy <<<"$J")" on-failure
assert_eq "$(jq -r .accel_from <<<"$J")" recorded
# argv contains -name e, and is exactly what maqet logged when it started QEMU
assert_eq "$(jq -r '.argv | index("-name") as $i | .[$i+1]' <<<"$J")" e "argv has -name e"
started=$(grep '^maqet: starting ' "$RT/e.qemu.log" | tail -n 1 | sed 's/^maqet: starting //')
assert_eq "$(jq -r '.argv | join(" ")' <<<"$J")" "$started" "argv = the started command line"
assert_eq "$(jq -r .paths.qmp.path <<<"$J")" "$RT/e.qmp"
assert_eq "$(jq -r .paths.console.exists <<<"$J")" true
assert_eq "$(jq -r .paths.serial_log.path <<<"$J")" "$RT/e.serial.log"
assert_eq "$(jq -r '.paths.disks[] | select(.name == "data") | .path' <<<"$J")" "$STATE/disks/e-data.qcow2"
assert_eq "$(jq -r '.paths.disks[] | select(.name == "data") | .exists' <<<"$J")" true
assert_eq "$(jq -r '.events[-1].action' <<<"$J")" start "last event"
pass "inspect -o json"

Y=$(mq inspect e)
assert_contains "$Y" 'phase: "running"'
assert_contains "$Y" '- "-name"'
assert_contains "$Y" "serial_log:"
python3 -c 'import sys, yaml' 2>/dev/null && {
	python3 -c 'import sys, yaml, json; d = yaml.safe_load(sys.stdin); assert d["name"] == "e"; assert "-name" in d["argv"]' <<<"$Y" ||
		fail "inspect yaml does not parse as the same document"
}
run_rc rc mq inspect -o xml e
assert_eq "$rc" 64 "bad format"
pass "inspect yaml"

# phase with its reason after a stop
mq stop e >/dev/null
J=$(mq inspect -o json e)
assert_eq "$(jq -r .status.phase <<<"$J")" stopped
assert_eq "$(jq -r .status.hold <<<"$J")" true
assert_contains "$(jq -r .status.reason <<<"$J")" "held by 'maqet stop'"
assert_eq "$(jq -r .status.pid <<<"$J")" null
pass "inspect of a stopped vm"
