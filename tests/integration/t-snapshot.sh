#!/usr/bin/env bash
# maqet snapshot create|list|restore|delete against real QEMU and qemu-img:
# a pattern written with qemu-io comes back after an offline restore, after a
# live restore with memory state and after a disk-only restore of a running
# VM (stop, revert, start); a live restore brings back the guest's memory
# (a boot-sector guest counting on the serial console resumes from the
# snapshotted count); a snapshot made by qemu-img lists as external; a
# snapshot failing half-way leaves nothing listed; every refusal happens
# before anything changes; the progress bar only on a terminal.
source "$(dirname "$0")/lib.sh"

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/counter.S"
as --32 -o "$T/counter.o" "$src" || fail "cannot assemble counter.S"
ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o "$T/counter.img" "$T/counter.o" || fail "cannot link counter"
qemu-img convert -f raw -O qcow2 "$T/counter.img" "$M/boot.qcow2"
qemu-img resize -q "$M/boot.qcow2" 8M
qemu-img create -q -f qcow2 "$M/data.qcow2" 4M

cat > "$M/s.yaml" <<YAML
name: s
machine: pc
memory: 32M
stop_timeout: 1s
state: stopped
storage:
  - {name: boot, file: boot.qcow2, interface: ide}
  - {name: data, file: data.qcow2, interface: ide}
YAML
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"

write_pat() { qemu-io -c "write -P $1 1M 64k" "$M/data.qcow2" >/dev/null || fail "qemu-io write $1"; }
read_pat() { qemu-io -c "read -P $1 1M 64k" "$M/data.qcow2" 2>&1 | grep -q "read 65536/65536" &&
	! qemu-io -c "read -P $1 1M 64k" "$M/data.qcow2" 2>&1 | grep -q "Pattern verification failed"; }
names() { mq snapshot list s -o json | jq -r '[.snapshots[].name] | join(" ")'; }
field() { mq snapshot list s -o json | jq -r --arg n "$1" ".snapshots[] | select(.name == \$n) | .$2"; }
running() { [ "$(vm_status s)" = running ]; }
count_now() { grep -a -o 'c[0-9]*' "$RT/s.serial.log" 2>/dev/null | tail -n 1 | tr -d c; }
count_ge() { local c; c=$(count_now); [ -n "$c" ] && [ "$c" -ge "$1" ]; }

# ---- offline: create, overwrite the data, restore, read the pattern back -----
write_pat 0xaa
run_rc rc mq snapshot create s base
assert_eq "$rc" 0 "offline create: $OUT"
assert_contains "$OUT" "snapshot 'base' of vm 's' created (offline, 2 drives)"
assert_eq "$(field base origin)" manual
assert_eq "$(field base vmstate)" false
assert_eq "$(field base 'drives | join(",")')" "boot,data"
qemu-img snapshot -l "$M/data.qcow2" | grep -q ' base ' || fail "qemu-img does not see 'base'"
write_pat 0xbb
read_pat 0xbb || fail "overwrite did not take"
run_rc rc mq snapshot restore s base
assert_eq "$rc" 0 "offline restore: $OUT"
assert_contains "$OUT" "vm 's' restored to snapshot 'base' (offline)"
assert_contains "$OUT" "backup snapshot: pre-restore-"
read_pat 0xaa || fail "pattern 0xaa not back after offline restore"
backup=$(mq snapshot list s -o json | jq -r '.snapshots[] | select(.origin == "pre-restore") | .name')
assert_ne "$backup" "" "pre-restore backup listed"
# the backup undoes the restore
run_rc rc mq snapshot restore s "$backup" --no-backup
assert_eq "$rc" 0 "restore the backup: $OUT"
read_pat 0xbb || fail "the pre-restore backup did not bring 0xbb back"
assert_eq "$(mq snapshot list s -o json | jq '[.snapshots[] | select(.origin == "pre-restore")] | length')" 1 \
	"--no-backup took no second backup"
run_rc rc mq snapshot delete s "$backup"
assert_eq "$rc" 0 "delete backup: $OUT"
assert_eq "$(vm_status s)" created "phase back where it was"
assert_eq "$(count_events s snapshot-create ok)" 2 "create events (base + backup)"
assert_eq "$(count_events s snapshot-restore ok)" 2 "restore events"
assert_eq "$(count_events s snapshot-delete ok)" 1 "delete events"
mq events s -o json | jq -e '[.[] | select(.action == "snapshot-create" and .outcome == "ok")][0].detail |
	test("^snapshot .base. \\(origin manual, offline\\) by cli in [0-9]+ ms$")' >/dev/null ||
	fail "event detail: $(mq events s -o json | jq -c '.[] | select(.action == "snapshot-create")')"
pass "offline create, restore (with backup), delete"

# ---- external snapshots, --overwrite, --drive --------------------------------
qemu-img snapshot -c by-hand "$M/data.qcow2"
assert_eq "$(field by-hand origin)" external "made by qemu-img: external"
assert_eq "$(field by-hand 'drives | join(",")')" data
run_rc rc mq snapshot list s
assert_eq "$rc" 0
assert_contains "$OUT" "by-hand"
assert_contains "$OUT" "external"
assert_contains "$OUT" "ORIGIN"
run_rc rc mq snapshot create s base
assert_eq "$rc" 1 "existing name"
assert_contains "$OUT" "maqet: cannot snapshot vm 's': snapshot 'base' already exists (add --overwrite to replace it)"
write_pat 0xcc
run_rc rc mq snapshot create s base --overwrite --drive data
assert_eq "$rc" 0 "overwrite: $OUT"
assert_eq "$(field base 'drives | join(",")')" data "overwritten snapshot on the named drive only"
write_pat 0xdd
run_rc rc mq snapshot restore s base --no-backup
assert_eq "$rc" 0
read_pat 0xcc || fail "overwritten snapshot holds the new pattern"
run_rc rc mq snapshot delete s by-hand
assert_eq "$rc" 0 "external snapshots can be deleted by hand: $OUT"
assert_eq "$(names)" "base"
pass "external origin, --overwrite, --drive"

# ---- half-way failure: nothing left behind -----------------------------------
# qemu-io holds the data image's write lock, so the second drive fails after
# the first one succeeded
# (a probe colliding with the holder's open makes the holder fail: start again)
holder=
deadline=$((SECONDS + 30))
while :; do
	[ $SECONDS -lt $deadline ] || fail "lock holder not up"
	if [ -z "$holder" ] || ! proc_alive "$holder"; then
		qemu-io -c "sleep 60000" "$M/data.qcow2" </dev/null >/dev/null 2>&1 &
		holder=$!
	fi
	if ! qemu-img info "$M/data.qcow2" >/dev/null 2>&1 && proc_alive "$holder"; then break; fi
	sleep 0.05
done
run_rc rc mq snapshot create s half
kill "$holder"; wait "$holder" 2>/dev/null || true
assert_eq "$rc" 1 "half-way failure"
assert_contains "$OUT" "cannot snapshot vm 's': cannot create snapshot 'half' of '$M/data.qcow2'"
qemu-img snapshot -l "$M/boot.qcow2" | grep -q ' half ' && fail "partial snapshot left on drive boot"
assert_eq "$(names)" "base" "nothing half-listed"
assert_eq "$(count_events s snapshot-create failed)" 1
assert_eq "$(vm_status s)" created
pass "a snapshot failing half-way is removed from the drives that had it"

# ---- live: memory state, a guest counting on the serial console --------------
sed -i 's/^state: stopped/state: running/' "$M/s.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "start: $OUT"
wait_until 60 count_ge 5 || fail "counting guest did not count: $(tail -c 200 "$RT/s.serial.log" 2>/dev/null)"
pid0=$(vm_pid s)
run_rc rc mq snapshot create s mem
assert_eq "$rc" 0 "live create: $OUT"
assert_contains "$OUT" "created (live, with memory state, 2 drives)"
after=$(count_now)
assert_eq "$(field mem vmstate)" true
[ "$(field mem vmstate_size)" -gt 0 ] || fail "no memory state size"
assert_eq "$(vm_pid s)" "$pid0" "same qemu"
running || fail "not running after a live snapshot"
wait_until 60 count_ge $((after + 20)) || fail "guest stopped counting after the snapshot"
run_rc rc mq snapshot restore s mem
assert_eq "$rc" 1 "running restore needs --force"
assert_contains "$OUT" "restoring throws away its current memory state (add --force)"
before=$(count_now)
size=$(stat -c %s "$RT/s.serial.log")
run_rc rc mq snapshot restore s mem --force --no-backup
assert_eq "$rc" 0 "live restore: $OUT"
assert_contains "$OUT" "(live, with memory state)"
assert_eq "$(vm_pid s)" "$pid0" "live restore keeps the qemu process"
size2=$(stat -c %s "$RT/s.serial.log")
wait_until 60 sh -c "[ \$(tail -c +$((size2 + 1)) '$RT/s.serial.log' | grep -a -c 'c[0-9]') -ge 2 ]" ||
	fail "guest silent after restore"
# lines since just before the restore: the guest's last ones before it, then
# the restored guest's, which start again right after the snapshotted count
first=$(tail -c +$((size + 1)) "$RT/s.serial.log" | grep -a -o 'c[0-9]*' | tr -d c | sort -n | head -n 1)
[ "$first" -le $((after + 1)) ] ||
	fail "count did not go back: snapshot at <= $after, $before before restore, lowest after: $first"
[ "$first" -lt "$before" ] || fail "count $first after restore is not below $before"
running || fail "not running after live restore"
pass "live restore brings back memory state (count $before -> $first, snapshot at <= $after)"

# ---- live: disk contents, vmstate and disk-only restores ---------------------
mq stop s >/dev/null
write_pat 0xee
mq start s >/dev/null
run_rc rc mq snapshot create s live-ee
assert_eq "$rc" 0 "live create: $OUT"
run_rc rc mq snapshot create s disks-ee --no-vmstate
assert_eq "$rc" 0 "live disks-only create: $OUT"
assert_contains "$OUT" "created (live, disks only, 2 drives)"
assert_eq "$(field disks-ee vmstate)" false
mq stop s >/dev/null
write_pat 0x11
mq start s >/dev/null
run_rc rc mq snapshot restore s live-ee --force --no-backup
assert_eq "$rc" 0 "live restore: $OUT"
mq stop s >/dev/null
read_pat 0xee || fail "live restore did not bring the disk back"
write_pat 0x22
mq start s >/dev/null
pid1=$(vm_pid s)
run_rc rc mq snapshot restore s disks-ee --force
assert_eq "$rc" 0 "disk-only restore of a running vm: $OUT"
assert_contains "$OUT" "(stopped, reverted, started again)"
running || fail "not running again after a disk-only restore"
assert_ne "$(vm_pid s)" "$pid1" "a new qemu after a disk-only restore"
bk=$(mq snapshot list s -o json | jq -r '.snapshots[] | select(.origin == "pre-restore") | .name')
assert_eq "$(field "$bk" vmstate)" true "a running vm's backup holds its memory state"
mq stop s >/dev/null
read_pat 0xee || fail "disk-only restore did not bring the disk back"
mq start s >/dev/null
run_rc rc mq snapshot delete s live-ee -o json
assert_eq "$rc" 0 "live delete: $OUT"
assert_eq "$(jq -r '.ok, .live' <<<"$OUT" | tr '\n' ' ')" "true true "
[ -z "$(field live-ee name)" ] || fail "deleted snapshot still listed"
qemu-img snapshot -U -l "$M/data.qcow2" | grep -q ' live-ee ' && fail "live-ee still in the image"
assert_eq "$(mq events s -o json | jq '[.[] | select(.action == "stop" and .outcome == "ok" and
	(.detail | test("to restore a disk-only snapshot")))] | length')" 1 "the disk-only restore's stop is an event"
pass "live: disk patterns restored (memory and disk-only), live delete"

# ---- refusals on a running vm ------------------------------------------------
run_rc rc mq snapshot create s x --offline
assert_eq "$rc" 1
assert_contains "$OUT" "it is running and qemu holds its images"
run_rc rc mq snapshot create s x --drive boot
assert_eq "$rc" 1
assert_contains "$OUT" "a snapshot with memory state must include every drive, and 'data' was left out"
run_rc rc mq snapshot create s x --drive boot --no-vmstate
assert_eq "$rc" 0 "a disks-only snapshot of some drives: $OUT"
mq stop s >/dev/null
run_rc rc mq snapshot create s y --live
assert_eq "$rc" 1
assert_contains "$OUT" "it is not running, so a live snapshot is not possible (drop --live)"
pass "live/offline refusals"

# ---- a raw drive or a virtfs share: no memory state, said before anything ----
truncate -s 1M "$M/scratch.raw"
mkdir -p "$M/share"
cat > "$M/r.yaml" <<YAML
name: r
machine: pc
memory: 32M
stop_timeout: 1s
storage:
  - {name: boot, file: rboot.qcow2, interface: ide}
  - {name: scratch, type: raw, file: scratch.raw, interface: ide}
YAML
cat > "$M/v.yaml" <<YAML
name: v
machine: pc
memory: 32M
stop_timeout: 1s
storage:
  - {name: boot, file: vboot.qcow2, interface: ide}
  - {name: host, type: virtfs, path: share, mount_tag: host0}
YAML
cp "$M/boot.qcow2" "$M/rboot.qcow2"
cp "$M/boot.qcow2" "$M/vboot.qcow2"
qemu-img snapshot -l "$M/rboot.qcow2" | awk 'NR > 2 { print $2 }' | while read -r t; do
	qemu-img snapshot -d "$t" "$M/rboot.qcow2"; qemu-img snapshot -d "$t" "$M/vboot.qcow2"; done
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "start r and v: $OUT"
run_rc rc mq snapshot create r x
assert_eq "$rc" 1
assert_contains "$OUT" "cannot snapshot vm 'r': drive 'scratch' is raw: a snapshot with memory state must capture every disk"
assert_eq "$(mq snapshot list r -o json | jq '.snapshots | length')" 0 "nothing made for r"
run_rc rc mq snapshot create v x
assert_eq "$rc" 1
assert_contains "$OUT" "cannot snapshot vm 'v': virtfs share 'host' blocks migration"
run_rc rc mq snapshot create r x --drive scratch --no-vmstate
assert_eq "$rc" 1
assert_contains "$OUT" "drive 'scratch' is raw: internal snapshots need a qcow2 image"
run_rc rc mq snapshot create r x --no-vmstate
assert_eq "$rc" 0 "disk-only live snapshot of the qcow2 drive: $OUT"
assert_eq "$(mq snapshot list r -o json | jq -r '.snapshots[0].drives | join(",")')" boot
assert_eq "$(mq events r -o json | jq '[.[] | select(.outcome == "refused")] | length')" 2 "refusals are events"
mq stop r >/dev/null
mq stop v >/dev/null
pass "raw drive / virtfs share refusals name the drive or share"

# ---- every CLI form and bad input --------------------------------------------
usage() { run_rc rc mq snapshot "$@"; assert_eq "$rc" 64 "usage error for: $*: $OUT"; }
usage
usage frobnicate
usage create
usage create s
usage create s a b
usage restore s
usage delete s
usage list s extra
usage create s a --live --offline
usage create s a --offline --no-vmstate
usage create s a --force
usage restore s a --drive boot
usage delete s a --no-backup
usage list -o xml
usage create s a --bogus
run_rc rc mq snapshot -h
assert_eq "$rc" 0
assert_contains "$OUT" "maqet snapshot create VM NAME"
run_rc rc mq help snapshot
assert_contains "$OUT" "maqet snapshot restore VM NAME"
bad() { run_rc rc mq snapshot create s "$1"; assert_eq "$rc" 1 "bad name '$1'"; assert_contains "$OUT" "$2"; }
bad auto-x "snapshot name 'auto-x' is reserved: the prefix 'auto-' is for maqet's own snapshots"
bad pre-change-x "prefix 'pre-change-'"
bad pre-restore-x "prefix 'pre-restore-'"
bad "a b" "byte 0x20 at position 2 is not allowed"
bad "a/b" "character '/' is not allowed"
bad "$(printf 'x%.0s' {1..65})" "65 characters, at most 64"
bad 42 "digits only"
run_rc rc mq snapshot create s "$(printf 'y%.0s' {1..64})"
assert_eq "$rc" 0 "a 64-character name: $OUT"
run_rc rc mq snapshot create nosuch a
assert_eq "$rc" 1
assert_contains "$OUT" "no vm named 'nosuch'"
run_rc rc mq snapshot restore s nosuch
assert_eq "$rc" 1
assert_contains "$OUT" "cannot restore vm 's': it has no snapshot 'nosuch' (see 'maqet snapshot list s')"
run_rc rc mq snapshot delete s nosuch
assert_eq "$rc" 1
assert_contains "$OUT" "it has no snapshot 'nosuch'"
run_rc rc mq snapshot create s x --drive nope
assert_eq "$rc" 1
assert_contains "$OUT" "vm 's' has no drive 'nope'"
run_rc rc mq snapshot create s x --drive host
assert_eq "$rc" 1
run_rc rc mq snapshot list nosuch
assert_eq "$rc" 1
assert_contains "$OUT" "no vm named 'nosuch'"
run_rc rc mq snapshot list
assert_eq "$rc" 0 "list all: $OUT"
assert_contains "$OUT" "base"
run_rc rc mq snapshot ls r -o json
assert_eq "$(jq -r '.snapshots[0].vm' <<<"$OUT")" r
out=$(mq snapshot create s js -o json)
assert_eq "$(jq -r '.ok, .action, .snapshot, .live' <<<"$out" | tr '\n' ' ')" "true create js false "
set +e; out=$(mq snapshot create s js -o json 2>/dev/null); rc=$?; set -e
assert_eq "$rc" 1
assert_eq "$(jq -r '.ok' <<<"$out")" false "json on failure"
assert_contains "$(jq -r '.error' <<<"$out")" "already exists"
out=$(mq snapshot restore s js -o json --no-backup)
assert_eq "$(jq -r '.ok, .backup' <<<"$out" | tr '\n' ' ')" "true null "
pass "every CLI form and bad input"

# ---- progress: a bar on a terminal, none off it ------------------------------
off=$(mq snapshot create s prog-off 2>&1)
assert_not_contains "$off" $'\r' "no bar off a terminal"
mq start s >/dev/null
tty_out=$(script -qec "'$MAQET' snapshot create s prog-tty" /dev/null)
assert_contains "$tty_out" $'\r'"snapshot [" "bar drawn on a terminal"
assert_contains "$tty_out" "created (live, with memory state"
# each redraw shows the elapsed time; at least 4 a second while the job runs
draws=$(printf '%s' "$tty_out" | tr '\r' '\n' | grep -c '^snapshot \[')
last=$(printf '%s' "$tty_out" | tr '\r' '\n' | grep '^snapshot \[' | tail -n 1 | grep -o '[0-9]*\.[0-9]s' | tr -d s)
secs=${last%.*}
[ "$draws" -ge $((secs * 4)) ] || fail "$draws redraws in ${last}s"
pass "progress bar only on a terminal ($draws redraws, ${last}s)"
