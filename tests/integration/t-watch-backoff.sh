#!/usr/bin/env bash
# Backoff state lives in SQLite: a restarted watch continues it instead of
# restarting a crash-looping VM at once, and the delays grow 0, initial, 2x...
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
fake_yaml d die-after=200 > "$M/d.yaml"
start_watch -f "$M" --settle 50 --backoff-initial 8000 --backoff-max 60000 --crash-loop-limit 50
# failure 1 restarts at once, failure 2 waits 8 s (the backoff-initial; long enough that a loaded machine still stops the watch inside it)
wait_until 40 bash -c "[ \"\$(\"$MAQET\" status -o json | jq '.[0].restart_count')\" -ge 2 ]" ||
	fail "no second failure recorded"
n=$(vm_field d restart_count)
[ "$n" -ge 2 ] || fail "restart_count $n"
bu=$(vm_field d backoff_until_ms)
[ "$bu" != null ] || fail "no backoff recorded after failure $n"
stop_watch
n_before=$(vm_field d restart_count)
bu_before=$(vm_field d backoff_until_ms)
now_ms=$(date +%s%3N)
[ "$bu_before" -gt "$now_ms" ] || fail "backoff already over before the new watch started ($bu_before <= $now_ms)"

# A new watch: the first pass must wait for the recorded backoff, not restart at once.
start_watch -f "$M" --settle 50 --backoff-initial 8000 --backoff-max 60000 --crash-loop-limit 50
# (order, not timing: under load the remaining delay may be short)
first=$(jq -r 'select(.vm == "d") | .action + "/" + .outcome' "$WATCH_LOG" | head -n 1)
assert_eq "$first" "backoff/waiting" "the new watch's first decision for d"
jq -r 'select(.vm == "d" and .action == "backoff") | .detail' "$WATCH_LOG" | head -n 1 |
	grep -q "failure $n_before" || fail "backoff line does not carry failure $n_before: $(cat "$WATCH_LOG")"
# once the backoff ends, it is restarted and the count keeps growing
wait_until 40 bash -c "[ \"\$(\"$MAQET\" status -o json | jq '.[0].restart_count')\" -gt $n_before ]" ||
	fail "count did not continue from $n_before"
stop_watch
pass "backoff state survives a watch restart"
