# Helpers of the operator-command tests (console, logs, inspect, doctor);
# sourced after lib.sh.

# make_echo_guest OUT: the serial echo guest (echo.S) as a 512-byte image.
make_echo_guest() {
	local out=$1 src
	src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/echo.S"
	as --32 -o "$T/echo.o" "$src" || fail "cannot assemble echo.S (binutils missing?)"
	ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o "$out" "$T/echo.o" || fail "cannot link echo guest"
	[ "$(stat -c %s "$out")" = 512 ] || fail "echo guest is not 512 bytes"
}

# echo_vm_yaml NAME: a VM booting the echo guest, serial console logged.
echo_vm_yaml() {
	cat <<YAML
name: $1
machine: pc
memory: 32M
stop_timeout: 2s
serial: log
storage:
  - {name: boot, type: raw, file: echo.img, interface: ide}
YAML
}

file_has() { grep -qF -- "$2" "$1" 2>/dev/null; }
