#!/usr/bin/env bash
# The CLI surface: --version, help, -h on every command, usage errors (64)
# including every bad 'watch' option value,
# plan -o json, apply --dry-run and --jobs, a dependent skipped when its
# dependency fails, rm --delete-disks, colours only on a TTY and never with
# NO_COLOR.
source "$(dirname "$0")/lib.sh"

run_rc rc mq --version
assert_eq "$rc" 0
[[ $OUT =~ ^maqet\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version printed '$OUT'"
run_rc rc mq help
assert_eq "$rc" 0
for c in apply plan watch validate status start stop restart rm events help version; do
	assert_contains "$OUT" "  $c" "help lists $c"
done
for c in apply plan watch validate status ls start stop restart rm events; do
	run_rc rc mq "$c" -h
	assert_eq "$rc" 0 "$c -h"
	assert_contains "$OUT" "usage: maqet" "$c -h prints usage"
done
run_rc rc mq help stop
assert_contains "$OUT" "--timeout"
run_rc rc mq frobnicate
assert_eq "$rc" 64 "unknown command"
assert_contains "$OUT" "unknown command 'frobnicate'"
run_rc rc mq apply -f "$M" --jobs 0
assert_eq "$rc" 64 "--jobs 0"
assert_contains "$OUT" "--jobs must be a number from 1 to 64, got '0'"
run_rc rc mq plan -f "$M" -o yaml
assert_eq "$rc" 64
assert_contains "$OUT" "unknown output format 'yaml' (use table or json)"
run_rc rc mq stop
assert_eq "$rc" 64
assert_contains "$OUT" "missing vm name"
# watch: a bad option value is a usage error (64) that names the option, the
# value and what is accepted, whatever its place on the line, and never starts
# a watch (which would block here) nor creates the state dir.
watch_bad() { # expected-message-part args...
	local want=$1; shift
	run_rc rc timeout 10 "$MAQET" watch "$@"
	assert_eq "$rc" 64 "watch $*: $OUT"
	assert_contains "$OUT" "$want" "watch $*"
	assert_contains "$OUT" "run 'maqet watch -h' for usage" "watch $*"
	assert_eq "$(grep -c '^maqet: ' <<<"$OUT")" 1 "watch $* printed more than one error"
}
watch_bad "maqet: cannot use --settle 'soon': not a quiet time (give milliseconds" --settle soon -f "$M"
watch_bad "cannot use --settle '': not a quiet time" -f "$M" --settle=
watch_bad "cannot use --settle '11m': not a quiet time" -f "$M" --settle 11m
watch_bad "cannot use --settle '-1': not a quiet time" -f "$M" --settle -1
watch_bad "cannot use --resync 'often': not a resync period (give seconds" -f "$M" --resync often
watch_bad "cannot use --resync '25h': not a resync period" --resync 25h -f "$M"
watch_bad "cannot use --jobs '0': not a job count (give a number from 1 to 64)" -f "$M" -j 0
watch_bad "cannot use --crash-loop-limit 'x': not a failure count" -f "$M" --crash-loop-limit x
watch_bad "cannot use --backoff-initial '0': not a delay" -f "$M" --backoff-initial 0
watch_bad "cannot use --backoff-max '99999999999999999999': not a delay" -f "$M" --backoff-max 99999999999999999999
watch_bad "cannot use --stable-after '1x': not a running time" -f "$M" --stable-after 1x
watch_bad "cannot use --log-format 'xml': unknown log format (use text or json)" -f "$M" --log-format xml
watch_bad "no manifests given: pass -f PATH" --settle 100 --resync 0
for a in "--state-dir" "--state-dir=" "--state-dir ''"; do
	eval "run_rc rc mq $a"
	assert_eq "$rc" 64 "global $a: $OUT"
	assert_contains "$OUT" "cannot use --state-dir: no directory given" "global $a"
done
for c in "apply -f $M" "plan -f $M" "watch -f $M" "status" "events" "stop x" "start x" "restart x" "rm x"; do
	run_rc rc timeout 10 "$MAQET" $c --state-dir ''
	assert_eq "$rc" 64 "$c --state-dir '': $OUT"
	assert_contains "$OUT" "cannot use --state-dir '': no directory given" "$c --state-dir ''"
done
[ -e "$STATE" ] && fail "usage errors created the state dir"
pass "help, version and usage errors"

# --dry-run prints the plan and changes nothing; plan -o json describes it.
vm_yaml dry > "$M/dry.yaml"
run_rc rc mq apply -f "$M" --dry-run
assert_eq "$rc" 0 "dry-run: $OUT"
assert_contains "$OUT" "1 to create"
[ -e "$STATE/maqet.db" ] && [ "$(mq status -o json | jq length)" != 0 ] && fail "dry-run recorded a vm"
pgrep -f -- "$RT/" >/dev/null && fail "dry-run started a vm"
run_rc rc mq plan -f "$M" -o json
assert_eq "$rc" 2
assert_eq "$(echo "$OUT" | jq -r '.items[0].name + " " + .items[0].action + " " + .items[0].observed')" "dry create absent"
assert_eq "$(echo "$OUT" | jq '.changes')" 1
assert_eq "$(echo "$OUT" | jq '.summary.create')" 1
pass "dry-run and plan -o json"

# --jobs 1 applies (sequentially); a dependent of a failed vm is skipped.
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu missing"
fake_yaml base crash-on-start > "$M/base.yaml"
vm_yaml app "depends_on: [base]" > "$M/app.yaml"
run_rc rc mq apply -f "$M" --jobs 1
assert_eq "$rc" 1 "apply with a failed dependency: $OUT"
assert_eq "$(vm_status dry)" running "independent vm started"
assert_eq "$(vm_status base)" failed
assert_contains "$OUT" "cannot start vm 'app': dependency 'base' did not start"
assert_ne "$(vm_status app)" running "dependent started although its dependency failed"
assert_contains "$(vm_field app last_error)" "dependency 'base' did not start"
pass "dependent skipped when its dependency fails"

# rm --delete-disks removes the images; without it they are kept.
rm "$M/base.yaml" "$M/app.yaml"
vm_yaml dk "storage: [{name: d, size: 8M}]" > "$M/dk.yaml"
run_rc rc mq apply -f "$M"
[ -f "$STATE/disks/dk-d.qcow2" ] || fail "disk not created: $OUT"
run_rc rc mq rm dk --force --delete-disks
assert_eq "$rc" 0 "rm --delete-disks: $OUT"
[ -f "$STATE/disks/dk-d.qcow2" ] && fail "rm --delete-disks kept the image"
assert_eq "$(count_events dk disk.delete ok)" 1
run_rc rc mq rm app
assert_eq "$rc" 0 "rm of a stopped vm: $OUT"
pass "rm --delete-disks"

# Colours: on a TTY unless NO_COLOR; never when piped.
command -v script >/dev/null || fail "script(1) (bsdutils) is required"
esc=$'\033['
tty_out=$(env -u NO_COLOR TERM=xterm script -qec "$MAQET status" /dev/null)
assert_contains "$tty_out" "$esc" "no colour on a TTY"
tty_out=$(NO_COLOR=1 TERM=xterm script -qec "$MAQET status" /dev/null)
assert_not_contains "$tty_out" "$esc" "colour despite NO_COLOR"
pipe_out=$(env -u NO_COLOR TERM=xterm "$MAQET" status | cat)
assert_not_contains "$pipe_out" "$esc" "colour on a pipe"
pass "colours only on a TTY and never with NO_COLOR"
