#!/usr/bin/env bash
# A full disk during a snapshot, on a real filesystem: the VM's qcow2 lives on
# a small tmpfs.  Live: the memory state (48 MiB of random data loaded into
# guest RAM by QEMU's loader device) does not fit, so snapshot-save fails:
# maqet says so clearly (QEMU's error plus how much room the filesystem has
# against the guest's memory), the VM keeps running as
# before (same QEMU, QMP status running, phase running), `snapshot list`
# shows nothing half-made and the image passes `qemu-img check`.  Offline:
# the tmpfs filled to the last byte, `qemu-img snapshot -c` cannot grow the
# image: the same guarantees; once space is freed the snapshot works.
# Needs root for the mount (exit 77 = skip when the mount is refused, like
# t-state-full).
source "$(dirname "$0")/lib.sh"

SMALL=$T/small
mkdir -p "$SMALL"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=24m tmpfs "$SMALL" 2>/dev/null; then
	echo "skip: cannot mount a small tmpfs for the image (needs root)"
	exit 77
fi
small_umount() { umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null || true; }
CLEANUP_LATE_HOOKS+=(small_umount)

# an idle guest: the boot sector (cli; hlt; jmp $-2) in the qcow2 itself
{ printf '\xfa\xf4\xeb\xfd'; head -c 506 /dev/zero; printf '\x55\xaa'; } >"$T/boot.bin"
qemu-img create -q -f qcow2 "$SMALL/root.qcow2" 64M
qemu-io -f qcow2 -c "write -q -s $T/boot.bin 0 512" -c "write -q -P 0x5a 1M 2M" "$SMALL/root.qcow2"
head -c $((48 << 20)) /dev/urandom >"$T/ram.bin"
cat >"$M/f.yaml" <<YAML
name: f
machine: pc
memory: 128M
serial: none
stop_timeout: 1s
state: running
storage:
  - {name: root, file: $SMALL/root.qcow2, interface: ide}
args: ["-device", "loader,file=$T/ram.bin,addr=0x1000000,force-raw=on"]
YAML
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
pid=$(vm_pid f)
qmp_status() { mq qmp f query-status 2>/dev/null | jq -r '.status // .return.status'; }
assert_eq "$(qmp_status)" running "guest running before"
n_snaps() { mq snapshot list f -o json | jq '.snapshots | length'; }

# ---- live: the memory state does not fit --------------------------------------
run_rc rc mq snapshot create f mem
assert_eq "$rc" 1 "live snapshot on a full disk: $OUT"
assert_contains "$OUT" "maqet: cannot snapshot vm 'f': "
# qemu itself says "Error while writing VM state: Input/output error";
# maqet adds why
assert_contains "$OUT" "(the filesystem holding '$SMALL/root.qcow2' has "
assert_contains "$OUT" "MiB free, less than the 128 MiB of guest memory the memory state may need"
assert_eq "$(grep -c . <<<"$OUT")" 1 "one line of error: $OUT"
assert_eq "$(vm_pid f)" "$pid" "same qemu process"
proc_alive "$pid" || fail "qemu gone after the failed snapshot"
assert_eq "$(vm_status f)" running "phase back to running"
assert_eq "$(qmp_status)" running "the guest runs again (not left paused by the save)"
assert_eq "$(n_snaps)" 0 "nothing half-listed (running, through qmp)"
assert_eq "$(count_events f snapshot-create failed)" 1 "failed event"
pass "live snapshot on a full disk: clear error, vm running as before, nothing listed"

run_rc rc mq stop f
assert_eq "$rc" 0 "stop: $OUT"
proc_dead "$pid" || fail "qemu still alive after stop"
assert_eq "$(n_snaps)" 0 "nothing half-listed (stopped, from the image)"
qemu-img snapshot -l "$SMALL/root.qcow2" | grep -q ' mem ' && fail "qemu-img lists 'mem'"
run_rc rc qemu-img check "$SMALL/root.qcow2"
assert_eq "$rc" 0 "qemu-img check after the failed live snapshot: $OUT"
pass "the image is consistent after the failed live snapshot"

# ---- offline: the filesystem full to the last byte ----------------------------
# The failed save may leave free clusters inside the image, where an offline
# snapshot's few metadata clusters could fit without the filesystem: start
# this part from a fresh image (the vm is stopped), so the snapshot must grow
# the file.
rm -f "$SMALL/root.qcow2"
qemu-img create -q -f qcow2 "$SMALL/root.qcow2" 64M
qemu-io -f qcow2 -c "write -q -s $T/boot.bin 0 512" -c "write -q -P 0x5a 1M 2M" "$SMALL/root.qcow2"
dd if=/dev/zero of="$SMALL/filler" bs=64k 2>/dev/null || true
[ "$(df --output=avail -B1 "$SMALL" | tail -n 1 | tr -d ' ')" -lt 65536 ] || fail "tmpfs not full"
run_rc rc mq snapshot create f off
assert_eq "$rc" 1 "offline snapshot on a full disk: $OUT"
assert_contains "$OUT" "maqet: cannot snapshot vm 'f': cannot create snapshot 'off' of '$SMALL/root.qcow2': "
assert_contains "$OUT" "No space left on device"
assert_eq "$(n_snaps)" 0 "nothing half-listed after the offline failure"
assert_eq "$(vm_status f)" stopped "phase back to stopped"
run_rc rc qemu-img check "$SMALL/root.qcow2"
assert_eq "$rc" 0 "qemu-img check after the failed offline snapshot: $OUT"
rm -f "$SMALL/filler"
run_rc rc mq snapshot create f off
assert_eq "$rc" 0 "offline snapshot once space is back: $OUT"
assert_eq "$(mq snapshot list f -o json | jq -r '.snapshots[].name')" off
# qemu-img check: 0 = clean, 3 = leaked clusters only (wasted space, no
# corruption), 2 = corrupt.  QEMU 7.2's `snapshot -c` right after an ENOSPC
# failure in the same image can leak a cluster; corruption is never accepted.
run_rc rc qemu-img check "$SMALL/root.qcow2"
case $rc in
0) ;;
3) assert_not_contains "$OUT" "corrupt" "qemu-img check after the good snapshot: leaks only: $OUT" ;;
*) fail "qemu-img check after the good snapshot: rc $rc: $OUT" ;;
esac
pass "offline snapshot on a full disk: clear error, nothing listed, works once space is back"
