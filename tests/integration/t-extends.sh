#!/usr/bin/env bash
# Shared bases against real QEMU: a vm extending a base in _bases/ applies;
# moving a value between base and manifest changes nothing (same hash, plan
# empty); a base edit plans a restart whose reason names the base, and apply
# restarts with the new value; a bad base edit is a located error and changes
# nothing; `maqet render` prints the merged manifest.
source "$(dirname "$0")/lib.sh"

mkdir -p "$M/_bases"
printf 'memory: 64M\nstop_timeout: 2s\nserial: none\n' > "$M/_bases/small.yaml"
printf 'name: a\nextends: _bases/small.yaml\n' > "$M/a.yaml"
printf 'name: b\nmemory: 64M\nstop_timeout: 2s\nserial: none\n' > "$M/b.yaml"

run_rc rc mq validate -f "$M"
assert_eq "$rc" 0 "validate: $OUT"
assert_contains "$OUT" "2 vms valid: a b"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "first apply: $OUT"
pa=$(vm_pid a)
proc_alive "$pa" || fail "a not running"
tr '\0' ' ' < "/proc/$pa/cmdline" | grep -q -- "-m 64M" || fail "a lacks -m 64M from its base"
pb=$(vm_pid b)
pass "a vm extending a base applies with the base's values"

# the same value moved from the base into the manifest: nothing to do
printf 'stop_timeout: 2s\nserial: none\n' > "$M/_bases/small.yaml"
printf 'name: a\nextends: _bases/small.yaml\nmemory: 64M\n' > "$M/a.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan after moving memory into the manifest: $OUT"
assert_contains "$OUT" "0 to restart, 0 to update"
# and everything moved into the base (b now extends it too)
printf 'memory: 64M\nstop_timeout: 2s\nserial: none\n' > "$M/_bases/small.yaml"
printf 'name: a\nextends: _bases/small.yaml\n' > "$M/a.yaml"
printf 'name: b\nextends: _bases/small.yaml\n' > "$M/b.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan after moving b's values into the base: $OUT"
pass "moving values between base and manifest leaves the spec hash unchanged"

# a base edit: both vms restart, the reason names the base
printf 'memory: 80M\nstop_timeout: 2s\nserial: none\n' > "$M/_bases/small.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2 "plan after a base edit: $OUT"
assert_contains "$OUT" "changed: memory (needs restart; from $M/_bases/small.yaml)"
assert_contains "$OUT" "0 to create, 0 to start, 0 to stop, 2 to restart"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply after a base edit: $OUT"
pa2=$(vm_pid a)
assert_ne "$pa2" "$pa" "a restarted"
tr '\0' ' ' < "/proc/$pa2/cmdline" | grep -q -- "-m 80M" || fail "a lacks -m 80M after the base edit"
assert_ne "$(vm_pid b)" "$pb" "b restarted"
pass "a base edit restarts every vm extending it; plan names the base"

# a manifest-only edit does not name the base
printf 'name: b\nextends: _bases/small.yaml\nmemory: 96M\n' > "$M/b.yaml"
run_rc rc mq plan -f "$M"
assert_contains "$OUT" "changed: memory (needs restart)"
printf 'name: b\nextends: _bases/small.yaml\n' > "$M/b.yaml"

# a bad base edit: located error, nothing changes
cp "$M/_bases/small.yaml" "$T/small.good"
printf 'memory: 80M\nstop_timeout: 2s\nserial: nope\n' > "$M/_bases/small.yaml"
pa3=$(vm_pid a)
ev0=$(mq events -o json | jq length)
run_rc rc mq apply -f "$M"
assert_eq "$rc" 1 "apply with a bad base"
assert_contains "$OUT" "$M/_bases/small.yaml:3:9: 'serial' must be one of"
assert_not_contains "$OUT" "a.yaml" "the error is in the base, not the manifests"
assert_eq "$(vm_pid a)" "$pa3" "a bad base must not touch a"
assert_eq "$(mq events -o json | jq length)" "$ev0" "a bad base must record nothing"
run_rc rc mq render -f "$M"
assert_eq "$rc" 1 "render with a bad base"
assert_contains "$OUT" "$M/_bases/small.yaml:3:9:"
cp "$T/small.good" "$M/_bases/small.yaml"
pass "a bad base is a located error and changes nothing"

# a base with a name, a missing base: located at the extends
printf 'name: c\nextends: _bases/none.yaml\n' > "$M/c.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 1 "plan with a missing base"
assert_contains "$OUT" "$M/c.yaml:2:10: base '_bases/none.yaml' cannot be read: no such file or directory"
rm "$M/c.yaml"

# render
run_rc rc mq render -f "$M" a
assert_eq "$rc" 0 "render a: $OUT"
assert_contains "$OUT" "# vm 'a' from $M/a.yaml"
assert_contains "$OUT" "# extends $M/_bases/small.yaml"
assert_contains "$OUT" "memory: 80M"
assert_contains "$OUT" "stop_timeout: 2s"
assert_not_contains "$OUT" "extends:"
assert_not_contains "$OUT" "name: b"
run_rc rc mq render -f "$M"
assert_contains "$OUT" "# vm 'b' from"
# the output is itself a valid manifest with the same spec: in place of
# a.yaml, nothing to do
mq render -f "$M" a > "$T/rendered.yaml"
cp "$T/rendered.yaml" "$M/a.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "the rendered manifest plans as unchanged: $OUT"
run_rc rc mq render -f "$M" nope
assert_eq "$rc" 1 "render of an unknown vm"
assert_contains "$OUT" "no vm named 'nope'"
pass "render prints the merged manifests"
