#!/usr/bin/env bash
# The periodic resync re-plans every VM each time and re-stats the manifests
# every 10th time on a local filesystem (inotify reports every change there;
# reconciler/watch.c MQ_WATCH_WALK_EVERY).  The walk is still the safety net
# for what inotify cannot see: here a manifest rewritten in place through a
# hard link in a directory watch does not watch (the watched directory gets
# no event), which the walk picks up within ten resyncs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

make_idle_guest "$T/a.raw"
idle_yaml a "$T/a.raw" "state: running" > "$M/a.yaml"
mkdir -p "$T/elsewhere"
ln "$M/a.yaml" "$T/elsewhere/a.yaml"
start_watch -f "$M" --settle 100 --resync 1
pa=$(live_pid a) || fail "a not running after startup"

# rewrite the same inode through the other name: no event in $M
r0=$(pass_count resync)
idle_yaml a "$T/a.raw" "state: stopped" > "$T/elsewhere/a.yaml"
[ "$(stat -c %i "$M/a.yaml")" = "$(stat -c %i "$T/elsewhere/a.yaml")" ] || fail "the hard link was replaced, not rewritten"
grep -q "state: stopped" "$M/a.yaml" || fail "the change is not visible through the watched name"
wait_until 30 status_is a stopped || fail "a change inotify missed was not picked up by a resync walk: $(vm_status a)"
proc_dead "$pa" || fail "a's qemu still runs"
n=$(($(pass_count resync) - r0))
[ "$n" -ge 1 ] || fail "stopped without a resync pass ($n)"
assert_eq "$(pass_count manifests)" 0 "no inotify-driven pass (the change was invisible to it)"
pass "a manifest change inotify cannot see is applied by the resync walk (after $n resyncs)"
