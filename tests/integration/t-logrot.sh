#!/usr/bin/env bash
# Logs never grow without bound: a guest flooding its serial console under
# `maqet watch` keeps its live log under the cap (MAQET_LOG_CAP) plus what
# one check interval lets through, the rotated NAME.serial.log.1 holds the
# older output, `maqet logs -f` keeps printing across rotations, and
# `maqet logs` / `maqet apply` / `maqet doctor --fix` rotate a log over the
# cap when no watch runs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
source "$(dirname "$0")/opslib.sh"

CAP=$((64 * 1024))
SLACK=$((256 * 1024)) # output of one 1 s check interval, generously
export MAQET_LOG_CAP=64K
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/flood.S"
as --32 -o "$T/flood.o" "$src" || fail "cannot assemble flood.S"
ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o "$M/flood.img" "$T/flood.o" || fail "cannot link flood guest"
cat > "$M/f.yaml" <<YAML
name: f
machine: pc
memory: 32M
stop_timeout: 2s
serial: log
storage:
  - {name: boot, type: raw, file: flood.img, interface: ide}
YAML
LOG=$RT/f.serial.log

# the number of the last complete line of a file ("fN ..."), 0 when none
last_line_no() { grep -ao '^f[0-9]* flood' "$1" 2>/dev/null | tail -n 1 | tr -dc 0-9 || true; }
first_line_no() { grep -ao '^f[0-9]* flood' "$1" 2>/dev/null | head -n 1 | tr -dc 0-9 || true; }

start_watch -f "$M"
wait_until 60 serial_has f "flood-line" || fail "flood guest did not boot"
"$MAQET" logs -f f > "$T/follow" 2> "$T/follow.err" &
fpid=$!

# Sample the live log while the guest writes several times cap + slack.
MAX=0
ROT=0
sample() {
	local s
	s=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
	[ "$s" -gt "$MAX" ] && MAX=$s
	[ -f "$LOG.1" ] && ROT=1
	[ -f "$LOG.1" ] && [ "$(last_line_no "$LOG.1")" -gt 0 ] || return 1
	# total written so far: the line number times the line length
	local n
	n=$(last_line_no "$LOG")
	[ -n "$n" ] && [ $((n * 64)) -gt $((3 * (CAP + SLACK))) ]
}
wait_until 240 sample || fail "the guest did not write $((3 * (CAP + SLACK))) bytes with rotations (max $MAX, rotated $ROT)"
assert_eq "$ROT" 1 "the live log was never rotated"
[ "$MAX" -le $((CAP + SLACK)) ] || fail "live log reached $MAX bytes, over cap $CAP + slack $SLACK"
[ "$(stat -c %s "$LOG.1")" -le $((2 * CAP + SLACK)) ] || fail "rotated log too big: $(stat -c %s "$LOG.1")"
assert_eq "$(stat -c %a "$LOG.1")" 600 "rotated log mode"
old_last=$(last_line_no "$LOG.1")
new_first=$(first_line_no "$LOG")
[ -n "$new_first" ] || wait_until 10 eval '[ -n "$(first_line_no "$LOG")" ]'
new_first=$(first_line_no "$LOG")
[ "$old_last" -lt "$new_first" ] || fail "rotated log (last line $old_last) is not older than the live one (first $new_first)"
[ ! -e "$LOG.1.tmp" ] || fail "temporary copy left behind"
echo "live log max $MAX bytes (cap $CAP), guest at line $(last_line_no "$LOG") after ${SECONDS}s"
pass "live log under the cap while the guest floods; .1 holds the older output"

# logs -f printed across the rotations: its output goes well past what one
# file holds, and keeps growing
proc_alive "$fpid" || fail "logs -f ended: $(cat "$T/follow.err")"
last_seen() { last_line_no "$T/follow"; }
n1=$(last_seen)
[ "$((n1 * 64))" -gt $((2 * (CAP + SLACK))) ] || fail "logs -f stopped after a rotation (last line $n1)"
wait_until 30 eval '[ "$(last_seen)" -gt "$(last_line_no "$LOG.1")" ]' || fail "logs -f does not follow the live log"
wait_until 30 eval '[ "$(last_seen)" -gt $((n1 + 100)) ]' || fail "logs -f stopped printing"
kill -TERM "$fpid"; wait "$fpid" || true
pass "logs -f keeps printing across rotations"
# QEMU still appends to the live file (O_APPEND), at its new end
l1=$(last_line_no "$LOG")
wait_until 10 eval '[ "$(last_line_no "$LOG")" != "$l1" ]' || fail "the live log stopped growing"
assert_eq "$(stat -c %a "$LOG")" 600 "live log mode"
stop_watch

# without a watch: a log over the cap is rotated by `maqet logs` (after
# printing), `maqet apply` and `maqet doctor --fix`
mq qmp f stop >/dev/null 2>&1 || fail "cannot pause the flood guest"
rm -f "$LOG.1"
: > "$LOG"
head -c $((CAP + 1000)) /dev/zero | tr '\0' 'x' >> "$LOG"
sz=$(stat -c %s "$LOG")
out=$(mq logs f | wc -c)
assert_eq "$out" "$sz" "logs printed the whole log before rotating it"
assert_eq "$(stat -c %s "$LOG")" 0 "logs rotated the log"
assert_eq "$(stat -c %s "$LOG.1")" "$sz" "rotated copy complete"
head -c $((CAP + 1000)) /dev/zero | tr '\0' 'y' >> "$LOG"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
assert_eq "$(stat -c %s "$LOG")" 0 "apply rotated the log"
assert_eq "$(head -c 1 "$LOG.1")" y "apply's rotated copy"
head -c $((CAP + 1000)) /dev/zero | tr '\0' 'z' >> "$RT/f.qemu.log"
run_rc rc mq doctor
assert_contains "$OUT" "over the 64 KiB cap"
run_rc rc mq doctor --fix
assert_contains "$OUT" "rotated to .1"
[ "$(stat -c %s "$RT/f.qemu.log")" -eq 0 ] || fail "doctor --fix did not rotate the qemu log"
mq qmp f cont >/dev/null 2>&1
wait_until 20 eval '[ "$(stat -c %s "$LOG")" -gt 0 ]' ||
	fail "the guest's output does not reach the rotated log"
pass "logs, apply and doctor --fix rotate a log over the cap"
