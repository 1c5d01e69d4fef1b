#!/usr/bin/env bash
# Issue 7 item 6: runtime files are never reached through a symlink and never
# shared with another user.  maqet opens the serial log itself (no-follow,
# 0600, owned by the caller) and hands it to QEMU as fd 3; a log that is a
# symlink, owned by someone else, group/world-writable or a hard link is
# replaced, never written through.
source "$(dirname "$0")/lib.sh"

mkdir -p "$RT"
chmod 700 "$RT"
echo precious > "$T/target"
chmod 644 "$T/target"
ln -s "$T/target" "$RT/sym.serial.log"
echo old > "$RT/wide.serial.log"
chmod 666 "$RT/wide.serial.log"
echo theirs > "$RT/other.serial.log"
chown nobody "$RT/other.serial.log" 2>/dev/null || fail "cannot chown (needs root)"
echo linked > "$T/linked-target"
ln "$T/linked-target" "$RT/hard.serial.log"
for v in sym wide other hard plain; do fake_yaml "$v" normal > "$M/$v.yaml"; done

run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
assert_eq "$(cat "$T/target")" precious "the symlink's target was written through"
assert_eq "$(cat "$T/linked-target")" linked "the hard link's other name was written through"
for v in sym wide other hard plain; do
	f=$RT/$v.serial.log
	wait_until 10 grep -q "fake-qemu serial up" "$f" || fail "$v: qemu did not write its serial log: $(ls -l "$f")"
	[ ! -L "$f" ] || fail "$v: serial log is still a symlink"
	assert_eq "$(stat -c '%a %u %h %F' "$f")" "600 $(id -u) 1 regular file" "$v: serial log mode, owner, links"
done
# QEMU got it as an fd, not a path it opens itself
pid=$(vm_pid plain)
tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "id=serial0,.*logfile=/dev/fd/3" || fail "serial log not passed as fd 3"
[ "$(readlink "/proc/$pid/fd/3")" = "$RT/plain.serial.log" ] || fail "fd 3 of qemu: $(readlink "/proc/$pid/fd/3")"
pass "the serial log is a private file opened by maqet; symlinks, foreign and shared files are replaced"
