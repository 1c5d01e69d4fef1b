#!/usr/bin/env bash
# Pinned multi-host mode: two "hosts" on one machine (two state dirs, two
# runtime dirs, `--host a` / `--host b`, each with its own checkout of the
# manifests) share one disk directory declared in hosts.yaml.
#  1. a move from a to b while both watch, b's checkout updated first: b
#     waits ("waiting for host a to release"), starts only after a stopped it;
#  2. the move back, with b's watch SIGKILLed in the middle of it;
#  3. a disk on a local path not declared shared: a refuses the move and
#     keeps the vm running, b waits.
# A sampler reads the process table every 10 ms for the whole test: at no
# moment may two QEMUs run the vm.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/watchlib.sh"

SH=$T/shared
mkdir -p "$SH" "$T/ca" "$T/cb"
make_idle_guest "$SH/mv.img"
printf 'hosts: [a, b]\nshared_storage: [%s]\n' "$SH" > "$T/ca/hosts.yaml"
idle_yaml mv "$SH/mv.img" 'placement: {host: a}' > "$T/ca/mv.yaml"
cp "$T/ca/hosts.yaml" "$T/ca/mv.yaml" "$T/cb/"

# on HOST CMD...: maqet as host a or b (its state dir, runtime dir, checkout)
on() { local h=$1; shift; MAQET_STATE_DIR=$T/s$h MAQET_RUNTIME_DIR=$RT/$h "$MAQET" "$@"; }
status_of() { on "$1" status -o json | jq -r '.[] | select(.name == "mv") | .status'; }
running_on() { [ "$(status_of "$1")" = running ]; }
absent_on() { [ -z "$(status_of "$1")" ]; }
# place HOST CHECKOUT: rewrite one checkout's placement (atomically, like git)
place() {
	sed "s/^placement: .*/placement: {host: $1}/" "$T/c$2/mv.yaml" > "$T/c$2/.mv.tmp"
	mv "$T/c$2/.mv.tmp" "$T/c$2/mv.yaml"
}

declare -A WPID
# start_host HOST: `maqet watch --host HOST` on its checkout, log in $T/watch-HOST.log
start_host() {
	local h=$1
	: > "$T/watch-$h.log"
	MAQET_STATE_DIR=$T/s$h MAQET_RUNTIME_DIR=$RT/$h "$MAQET" watch --log-format json --host "$h" \
		--settle 50 -f "$T/c$h" 2>>"$T/watch-$h.log" >/dev/null &
	WPID[$h]=$!
	WATCH_PIDS+=("$!")
	wait_until 30 grep -q '"action":"ready"' "$T/watch-$h.log" || fail "watch $h not ready: $(tail "$T/watch-$h.log")"
}
log_has() { grep -F -q -- "$2" "$T/watch-$1.log"; }

# The sampler (proc-sample.c, every 10 ms): "A B" = QEMUs of mv under host
# a's / host b's runtime dir.
: "${MQ_PROC_SAMPLE:?MQ_PROC_SAMPLE must point at the built proc-sample}"
SAMPLES=$T/samples
printf '%s\n' "$RT/a/mv.qmp" "$RT/b/mv.qmp" > "$T/patterns"
"$MQ_PROC_SAMPLE" "$SAMPLES" "$T/stop-sampler" 10 < "$T/patterns" &
SAMPLER_PID=$!
stop_sampler() { touch "$T/stop-sampler"; wait "$SAMPLER_PID" 2>/dev/null || true; }
CLEANUP_HOOKS+=(stop_sampler)
# no_double: never two QEMUs at once, in all samples so far
no_double() {
	local bad
	bad=$(awk '$1 + $2 > 1' "$SAMPLES" | head -n 3)
	[ -z "$bad" ] || fail "two QEMUs ran the vm at once (samples: $bad)"
}

start_host a
start_host b
wait_until 60 running_on a || fail "mv did not start on host a"
absent_on b || fail "host b recorded mv while it is placed on a"
run_rc rc on b plan --host b -f "$T/cb"
assert_contains "$OUT" "^ mv    elsewhere (host a)"
pass "placed on a: a runs it, b shows it elsewhere"

# --- 1. move a -> b, b's checkout first --------------------------------
place b b
wait_until 30 log_has b "waiting for host a to release" || fail "b does not wait for a: $(tail "$T/watch-b.log")"
run_rc rc on b plan --host b -f "$T/cb"
assert_contains "$OUT" "mv    no-op    waiting for host a to release (disk lease $SH/mv.img.maqet-lease)"
running_on a || fail "a stopped running mv before its checkout changed"
[ "$(pgrep -c -f -- "$RT/b/mv\.qmp" || true)" = 0 ] || fail "b started mv while a runs it"
pass "b's checkout first: b waits for host a"
place b a
wait_until 60 absent_on a || fail "a did not stop and forget mv: $(tail "$T/watch-a.log")"
wait_until 60 running_on b || fail "b did not start mv after a released it: $(tail "$T/watch-b.log")"
grep -q "^host b$" "$SH/mv.img.maqet-lease" || fail "the lease does not name host b: $(cat "$SH/mv.img.maqet-lease")"
no_double
pass "move a -> b: a stopped it, then b started it"

# --- 2. move b -> a, b's watch SIGKILLed mid-move ----------------------
place a a
wait_until 30 log_has a "waiting for host b to release" || fail "a does not wait for b"
place a b
wait_until 30 log_has b "placed on host a now" || fail "b did not notice the move: $(tail "$T/watch-b.log")"
kill -KILL "${WPID[b]}"
wait "${WPID[b]}" 2>/dev/null || true
# whatever b's stop had reached, a only starts once no QEMU of b holds the lease
if pgrep -f -- "$RT/b/mv\.qmp" >/dev/null; then
	running_on a && fail "a runs mv while b's QEMU is still up"
	start_host b    # b finishes the move
fi
wait_until 60 running_on a || fail "a did not take mv over: $(tail "$T/watch-a.log")"
wait_until 60 absent_on b || { [ -n "${WPID[b]:-}" ] && proc_alive "${WPID[b]}" || start_host b; wait_until 60 absent_on b; } ||
	fail "b did not forget mv"
no_double
pass "move b -> a with b's watch killed mid-move: never two QEMUs"

# --- 3. a local disk not declared shared: no move ----------------------
mkdir -p "$T/local"
make_idle_guest "$T/local/lv.img"
idle_yaml lv "$T/local/lv.img" 'placement: {host: a}' > "$T/ca/lv.yaml"
cp "$T/ca/lv.yaml" "$T/cb/lv.yaml"
wait_until 60 bash -c "MAQET_STATE_DIR=$T/sa MAQET_RUNTIME_DIR=$RT/a $MAQET status -o json | jq -e '.[] | select(.name == \"lv\" and .status == \"running\")'" ||
	fail "lv did not start on a"
for c in b a; do
	sed "s/^placement: .*/placement: {host: b}/" "$T/c$c/lv.yaml" > "$T/c$c/.lv.tmp"
	mv "$T/c$c/.lv.tmp" "$T/c$c/lv.yaml"
done
wait_until 30 log_has a "cannot move to host b: disk $T/local/lv.img is on local" ||
	fail "a did not refuse the move: $(tail "$T/watch-a.log")"
run_rc rc on a plan --host a -f "$T/ca"
assert_contains "$OUT" "cannot move to host b: disk $T/local/lv.img is on local"
assert_contains "$OUT" "not shared (declare it in hosts.yaml shared_storage if it is); it keeps running here"
run_rc rc on b plan --host b -f "$T/cb"
assert_contains "$OUT" "lv    no-op    waiting for host a to release"
pgrep -f -- "$RT/a/lv\.qmp" >/dev/null || fail "a stopped lv"
pgrep -f -- "$RT/b/lv\.qmp" >/dev/null && fail "b started lv"
pass "a disk on a local path: a keeps it running, b waits"

stop_sampler
n=$(wc -l < "$SAMPLES")
[ "$n" -ge 100 ] || fail "the sampler took only $n samples"
no_double
# the sampler saw the vm on both hosts (it was not blind)
awk '$1 == 1 { f = 1 } END { exit !f }' "$SAMPLES" || fail "the sampler never saw host a's QEMU"
awk '$2 == 1 { f = 1 } END { exit !f }' "$SAMPLES" || fail "the sampler never saw host b's QEMU"
pass "$n samples of the process table: never two QEMUs for mv"
