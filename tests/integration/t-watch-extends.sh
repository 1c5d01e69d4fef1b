#!/usr/bin/env bash
# `maqet watch` and shared bases: saving a base inside the -f directory
# (_bases/) re-plans and restarts every vm extending it, and only those;
# a base outside the -f paths is watched too; an invalid base edit is
# reported at the base's line and leaves the vms alone; fixing it resumes;
# a base that does not exist yet is picked up when it appears.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu not built (MQ_FAKE_QEMU=$MQ_FAKE_QEMU)"

mkdir -p "$M/_bases" "$T/outside/_bases"
printf 'binary: %s\nstop_timeout: 1s\nargs: ["-fake-mode", "normal"]\n' "$MQ_FAKE_QEMU" > "$M/_bases/fake.yaml"
printf 'memory: 32M\n' > "$T/outside/_bases/mem.yaml"
printf 'name: a\nextends: [_bases/fake.yaml, ../outside/_bases/mem.yaml]\n' > "$M/a.yaml"
printf 'name: b\nextends: _bases/fake.yaml\n' > "$M/b.yaml"
printf 'name: c\nbinary: %s\nstop_timeout: 1s\nargs: ["-fake-mode", "normal"]\n' "$MQ_FAKE_QEMU" > "$M/c.yaml"

start_watch -f "$M" --settle 200 --resync 0
for v in a b c; do live_pid $v >/dev/null || fail "$v not running after startup: $(mq status 2>&1)"; done
pa=$(live_pid a); pb=$(live_pid b); pc=$(live_pid c)
pass "vms extending bases start"

# a base inside the -f directory: a and b restart, c is left alone
ra=$(log_count restart ok a); rb=$(log_count restart ok b)
printf 'binary: %s\nstop_timeout: 1s\nargs: ["-fake-mode", "normal"]\ncpu: 2\n' "$MQ_FAKE_QEMU" > "$M/_bases/fake.yaml"
wait_log_n $((ra + 1)) restart ok a 20 || fail "a not restarted after its base changed: $(tail -n 20 "$WATCH_LOG")"
wait_log_n $((rb + 1)) restart ok b 20 || fail "b not restarted after its base changed"
d=$(log_select restart ok a | tail -n 1 | jq -r '.detail // ""')
assert_contains "$d" "from $M/_bases/fake.yaml" "restart detail names the base"
pa2=$(live_pid a) || fail "a not running after the base edit"
assert_ne "$pa2" "$pa" "a got a new pid"
assert_eq "$(vm_pid c)" "$pc" "c does not extend the base and must not be touched"
pass "saving a base under -f restarts exactly the vms extending it"

# a base outside the -f paths: only a extends it
ra=$(log_count restart ok a); rb=$(log_count restart ok b)
pb2=$(live_pid b)
printf 'memory: 48M\n' > "$T/outside/_bases/mem.yaml.new"
mv -f "$T/outside/_bases/mem.yaml.new" "$T/outside/_bases/mem.yaml"
wait_log_n $((ra + 1)) restart ok a 20 || fail "a not restarted after its outside base changed: $(tail -n 20 "$WATCH_LOG")"
pa3=$(live_pid a) || fail "a not running"
assert_ne "$pa3" "$pa2" "a got a new pid"
quiet_for 1
assert_eq "$(log_count restart ok b)" "$rb" "b does not extend the outside base"
assert_eq "$(vm_pid b)" "$pb2" "b untouched"
pass "a base outside the -f paths is watched too"

# an invalid base edit: reported at the base, vms left alone; a fix resumes
i0=$(log_count invalid)
printf 'memory: lots\n' > "$T/outside/_bases/mem.yaml"
wait_log_n $((i0 + 1)) invalid "" "" 20 || fail "invalid base not reported: $(tail -n 20 "$WATCH_LOG")"
grep -q "_bases/mem.yaml:1:9: 'memory' must be" "$WATCH_LOG" || fail "invalid base error not located in the base: $(tail -n 5 "$WATCH_LOG")"
quiet_for 1
assert_eq "$(vm_pid a)" "$pa3" "an invalid base must leave a running"
proc_alive "$pa3" || fail "a died on an invalid base"
ra=$(log_count restart ok a)
printf 'memory: 64M\n' > "$T/outside/_bases/mem.yaml"
wait_log_n $((ra + 1)) restart ok a 20 || fail "fixed base not applied"
pass "an invalid base is reported at its line and changes nothing until fixed"

# a vm whose base (outside -f) does not exist yet: created once the base
# appears, without waiting for a resync
mkdir -p "$T/later/_bases"
i0=$(log_count invalid)
printf 'name: d\nextends: [_bases/fake.yaml, ../later/_bases/mem.yaml]\n' > "$M/d.yaml"
wait_log_n $((i0 + 1)) invalid "" "" 20 || fail "missing base not reported: $(tail -n 20 "$WATCH_LOG")"
grep -q "d.yaml:2:29: base '../later/_bases/mem.yaml' cannot be read: no such file or directory" "$WATCH_LOG" ||
	fail "missing base not located at the extends entry: $(tail -n 5 "$WATCH_LOG")"
quiet_for 1
printf 'memory: 32M\n' > "$T/later/_bases/mem.yaml"
wait_log create ok d 20 || fail "d not created once its base appeared: $(tail -n 20 "$WATCH_LOG")"
live_pid d >/dev/null || fail "d not running"
pass "a base that appears later is picked up"
stop_watch
