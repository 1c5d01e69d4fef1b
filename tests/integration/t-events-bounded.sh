#!/usr/bin/env bash
# Issue 7 item 9: bounded resources.
#  - `maqet events -o json` streams rows: its peak RSS over 300k events stays
#    small (constant memory), and its output is the same JSON as before;
#  - retention: `maqet events --prune --keep N --max-age D` deletes old events
#    and all but the newest N per vm, and apply and watch apply the retention
#    ($MAQET_EVENTS_KEEP / $MAQET_EVENTS_MAX_AGE) by themselves;
#  - a fake QEMU flooding its event monitor costs `maqet watch` a bounded
#    share of CPU, and another VM's crash is still seen at once.
# Prints the figures (peak RSS, watch CPU share) for the report.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

fake_yaml a normal > "$M/a.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"

# --- 300k events, written straight into the log
now=$(date +%s%3N)
sqlite3 "$STATE/maqet.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
 INSERT INTO events (time, vm, action, outcome, detail, uid, user, git_commit)
 SELECT $now - 400 * 86400000 + i, CASE i % 3 WHEN 0 THEN 'a' WHEN 1 THEN 'b' ELSE 'c' END, 'bulk', 'ok',
        'row ' || i || ' of a long event log', 0, 'root', NULL FROM n;"
total=$(sqlite3 "$STATE/maqet.db" "select count(*) from events")
[ "$total" -ge 300000 ] || fail "only $total events"
# (under ASan: no quarantine, or freed rows would count as live memory)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0" \
	/usr/bin/time -f '%M' -o "$T/rss" "$MAQET" events -o json > "$T/ev.json"
rss_kb=$(tail -n 1 "$T/rss")
lines=$(grep -c '"action":' "$T/ev.json")
assert_eq "$lines" "$total" "every event printed"
head -c 1 "$T/ev.json" | grep -q '\[' || fail "json does not start with ["
tail -n 1 "$T/ev.json" | grep -q '^\]$' || fail "json does not end with ]"
# the same document as before: a JSON array of objects (checked on one vm's rows)
n_a=$(mq events a -o json | jq 'length')
[ "$n_a" -ge 100000 ] || fail "events a -o json: $n_a rows"
echo "figure: peak RSS of 'maqet events -o json' over $total rows: $((rss_kb / 1024)) MiB ($rss_kb KiB)"
[ "$rss_kb" -lt 65536 ] || fail "events -o json used $rss_kb KiB over $total rows"
pass "events -o json streams $total rows in $((rss_kb / 1024)) MiB"

# --- retention
run_rc rc mq events --prune --keep 1000 --max-age 30d
assert_eq "$rc" 0 "events --prune: $OUT"
assert_contains "$OUT" "Pruned "
old=$(sqlite3 "$STATE/maqet.db" "select count(*) from events where time < $now - 30 * 86400000")
assert_eq "$old" 0 "events older than 30 days left"
sqlite3 "$STATE/maqet.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
 INSERT INTO events (time, vm, action, outcome, detail, uid, user, git_commit)
 SELECT $now + i, 'b', 'bulk', 'ok', 'recent ' || i, 0, 'root', NULL FROM n;"
run_rc rc mq events --prune --keep 1000 --max-age 30d
assert_eq "$rc" 0 "events --prune: $OUT"
assert_eq "$(sqlite3 "$STATE/maqet.db" "select count(*) from events where vm = 'b'")" 1000 "b keeps its newest 1000"
assert_eq "$(sqlite3 "$STATE/maqet.db" "select min(detail) = 'recent 2001' from events where vm = 'b'")" 1 "the newest are kept"
[ "$(sqlite3 "$STATE/maqet.db" "select count(*) from events where vm = 'a'")" -ge 1 ] || fail "a's events gone"
# apply applies the retention from the environment
fake_yaml a2 normal > "$M/a2.yaml"
MAQET_EVENTS_KEEP=10 run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
assert_eq "$(sqlite3 "$STATE/maqet.db" "select count(*) from events where vm = 'b'")" 10 "apply kept 10 events of b"
MAQET_EVENTS_KEEP=x run_rc rc mq events
assert_eq "$rc" 64 "invalid MAQET_EVENTS_KEEP: $OUT"
pass "events --prune and apply keep the documented retention"

# --- an event flood costs watch a bounded share of CPU
fake_yaml f flood > "$M/f.yaml"
# watch applies the retention too (after its first pass)
export MAQET_EVENTS_KEEP=5
start_watch -f "$M" --settle 100
unset MAQET_EVENTS_KEEP
wait_log events.prune ok "" 10 || fail "watch did not prune events"
[ "$(sqlite3 "$STATE/maqet.db" "select count(*) from events where vm = 'c'")" -le 5 ] || fail "watch kept more than 5 events of c"
pf=$(live_pid f) || fail "f not running"
pa=$(live_pid a) || fail "a not running"
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
t0=$(ticks "$WATCH_PID"); w0=$(date +%s%N)
# meanwhile, another VM crashes: seen at once despite the flood
kill -9 "$pa"
wait_log exit crash a 10 || fail "a's crash not seen under the flood"
deadline=$((SECONDS + 4)); while [ $SECONDS -lt $deadline ]; do sleep 0.2; done
t1=$(ticks "$WATCH_PID"); w1=$(date +%s%N)
hz=$(getconf CLK_TCK)
pct=$(( (t1 - t0) * 100 * 1000000000 / hz / (w1 - w0) ))
echo "figure: maqet watch CPU under an event flood: ${pct}% of one core ($((t1 - t0)) ticks in $(((w1 - w0) / 1000000)) ms)"
[ "$pct" -lt 50 ] || fail "watch used ${pct}% CPU under an event flood"
proc_alive "$pf" || fail "the flooding vm died"
stop_watch
pass "watch under an event flood: ${pct}% CPU, other vms' exits handled"
