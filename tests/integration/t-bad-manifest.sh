#!/usr/bin/env bash
# Bad manifests change nothing: no state dir, no VM, no row, every error
# reported with file:line:col, exit non-zero.
source "$(dirname "$0")/lib.sh"
vm_yaml good > "$M/good.yaml"
printf 'name: bad\nmemroy: 64M\ncpu: lots\n' > "$M/bad.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 1 "apply with invalid manifests"
assert_contains "$OUT" "bad.yaml:2:1: unknown key 'memroy' (did you mean 'memory'?)"
assert_contains "$OUT" "bad.yaml:3:"
[ -e "$STATE" ] && fail "state dir created by a rejected apply"
pgrep -f -- "$RT/" >/dev/null && fail "a vm was started from a rejected set"
pass "rejected set touches nothing on a fresh state dir"

# With existing state: rows and processes unchanged.
rm "$M/bad.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply good: $OUT"
pg=$(vm_pid good)
before=$(mq status -o json | jq -c '[.[] | {name, pid, status}]')
nev=$(mq events -o json | jq length)
printf 'name: good\nmemory: 96M\nstop_timeout: 2s\nserial: none\n---\nname: GOOD2\n' > "$M/good.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 1
assert_contains "$OUT" "good.yaml:6:7:"
assert_eq "$(mq status -o json | jq -c '[.[] | {name, pid, status}]')" "$before" "state changed by a rejected set"
assert_eq "$(mq events -o json | jq length)" "$nev" "events written by a rejected set"
proc_alive "$pg" || fail "running vm touched"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 1 "plan exit code on invalid manifests"
pass "rejected set leaves state and vms alone"
