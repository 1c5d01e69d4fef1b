#!/usr/bin/env bash
# maqet send-keys / type reach the guest's keyboard: a boot-sector guest
# (assembled here) polls the i8042 (port 0x64 bit 0), reads each scancode
# from port 0x60 and writes the byte to COM1, so the serial log holds exactly
# the scancodes the guest received (set 1: SeaBIOS enables translation).
# Unknown key names and characters without a key are refused before
# anything is sent.
source "$(dirname "$0")/lib.sh"
cat > "$T/kbd.S" <<'ASM'
	.code16
	.globl _start
_start:
	cli
	movw $0x3f8, %dx
	movb $0x4b, %al          /* 'K': ready */
	outb %al, %dx
poll:
	inb $0x64, %al
	testb $1, %al
	jz poll
	inb $0x60, %al
	movw $0x3f8, %dx
	outb %al, %dx
	jmp poll
	.org 510
	.byte 0x55, 0xaa
ASM
as --32 -o "$T/kbd.o" "$T/kbd.S" || fail "cannot assemble the keyboard guest"
ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o "$M/k.img" "$T/kbd.o" || fail "cannot link the keyboard guest"
assert_eq "$(stat -c %s "$M/k.img")" 512 "guest size"
printf 'name: k\nmemory: 32M\nstop_timeout: 2s\nserial: log\nstorage:\n  - {name: boot, type: raw, file: k.img, interface: ide}\n' > "$M/k.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
LOG=$RT/k.serial.log
wait_until 90 serial_has k K || fail "keyboard guest did not start: $(od -An -tx1 "$LOG" 2>/dev/null)"

# hex of the bytes after the 'K' marker
scancodes() { od -An -v -tx1 "$LOG" | tr -s ' \n' ' ' | sed 's/^ *4b *//; s/ *$//'; }
# wait until the log holds N bytes after the marker
have_bytes() { [ "$(stat -c %s "$LOG")" -ge $(( $1 + 1 )) ]; }

run_rc rc mq send-keys k a ret
assert_eq "$rc" 0 "send-keys: $OUT"
wait_until 20 have_bytes 4 || fail "scancodes did not arrive: $(scancodes)"
assert_eq "$(scancodes)" "1e 9e 1c 9c" "a, ret"

run_rc rc mq send-keys k ctrl-alt-f2
assert_eq "$rc" 0 "$OUT"
wait_until 20 have_bytes 10 || fail "combo did not arrive: $(scancodes)"
got=$(scancodes)
assert_eq "${got#1e 9e 1c 9c }" "1d 38 3c bc b8 9d" "ctrl-alt-f2: pressed together, released in reverse"

# nothing is sent when one key is unknown or the text has a character without a key
run_rc rc mq send-keys k a ctrl-alt-dlete
assert_eq "$rc" 1 "unknown key"
assert_contains "$OUT" "unknown key 'dlete'"
assert_contains "$OUT" "did you mean 'delete'"
run_rc rc mq type k $'ab\xc3\xa9'
assert_eq "$rc" 1 "unmapped character"
assert_contains "$OUT" "U+00E9"
run_rc rc mq send-keys nosuch a
assert_eq "$rc" 1 "unknown vm"
run_rc rc mq send-keys k
assert_eq "$rc" 64 "no key"

run_rc rc mq type k 'A1!\n' --delay 5
assert_eq "$rc" 0 "type: $OUT"
wait_until 20 have_bytes 22 || fail "typed text did not arrive: $(scancodes)"
got=$(scancodes)
# only the typed scancodes follow the combo: the refused commands sent nothing
assert_eq "${got#1e 9e 1c 9c 1d 38 3c bc b8 9d }" "2a 1e 9e aa 02 82 2a 02 82 aa 1c 9c" "typed A, 1, ! and Return"
ev=$(mq events k -o json | jq -r '.[] | select(.action == "type") | .detail')
assert_contains "$ev" "4 key presses (text not recorded)"
assert_contains "$(mq events k -o json | jq -r '.[] | select(.action == "send-keys") | .detail')" "ctrl-alt-f2"
pass "send-keys and type reach the guest"
