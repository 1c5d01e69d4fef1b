# Shared helpers for maqet integration tests (sourced by each t-*.sh).
#
# Every test gets its own temp dir $T holding the state dir ($STATE), the
# runtime dir ($RT, short, for QMP sockets) and its manifests ($M).  On exit
# every QEMU started under $RT is killed, so a failing test leaves nothing.
# Waits are always bounded by a deadline; nothing relies on a bare sleep.
set -euo pipefail

: "${MAQET:?MAQET must point at the built maqet binary}"
: "${MQ_FAKE_QEMU:=}"
export NO_COLOR=1

T=$(mktemp -d /tmp/mqt.XXXXXX)
STATE=$T/state
RT=$T/rt
M=$T/m
mkdir -p "$M"
export MAQET_STATE_DIR=$STATE
export MAQET_RUNTIME_DIR=$RT
TEST_NAME=$(basename "$0" .sh)

# Functions run by cleanup: CLEANUP_HOOKS after the QEMUs are killed (e.g.
# kill a test's own helper processes), CLEANUP_LATE_HOOKS just before $T is
# removed (e.g. unmount a tmpfs the test mounted under $T).
CLEANUP_HOOKS=()
CLEANUP_LATE_HOOKS=()
cleanup() {
	local rc=$?
	# Kill every QEMU (real or fake) whose sockets live in this test's runtime dir.
	# (re-kill until none is left: a worker may still be spawning one)
	local deadline=$((SECONDS + 10))
	while pgrep -f -- "$RT/" >/dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do
		pkill -9 -f -- "$RT/" 2>/dev/null || true
		sleep 0.05
	done
	local h
	for h in "${CLEANUP_HOOKS[@]}"; do "$h" || true; done
	if [ $rc -ne 0 ]; then
		echo "--- $TEST_NAME failed (rc=$rc); state in $T" >&2
		if [ -d "$RT" ]; then
			for f in "$RT"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }; done
		fi
		"$MAQET" events -n 30 >&2 2>/dev/null || true
	fi
	for h in "${CLEANUP_LATE_HOOKS[@]}"; do "$h" || true; done
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: got '$1', want '$2'"; }
assert_ne() { [ "$1" != "$2" ] || fail "${3:-values equal}: both '$1'"; }
assert_contains() { case "$1" in *"$2"*) ;; *) fail "${3:-missing text}: '$2' not in: $1";; esac; }
assert_not_contains() { case "$1" in *"$2"*) fail "${3:-unexpected text}: '$2' in: $1";; *) ;; esac; }

# run_rc VAR cmd...: run a command, capture stdout+stderr in $OUT and rc in VAR.
run_rc() {
	local __var=$1; shift
	set +e
	OUT=$("$@" 2>&1)
	local __rc=$?
	set -e
	printf -v "$__var" '%s' "$__rc"
}

mq() { "$MAQET" "$@"; }

# JSON field of one VM from `maqet status -o json`.
vm_field() { mq status -o json | jq -r --arg n "$1" ".[] | select(.name == \$n) | .$2"; }
vm_pid() { vm_field "$1" pid; }
vm_status() { vm_field "$1" status; }

# wait_until TIMEOUT_S cmd...: poll a condition with a deadline.
wait_until() {
	local timeout=$1; shift
	local deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

proc_alive() { # pid -> alive and not a zombie
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
proc_dead() { ! proc_alive "$1"; }

# A small VM manifest for real QEMU: no disks, no network, boots nothing.
vm_yaml() { # name [extra yaml lines...]
	local name=$1; shift
	printf 'name: %s\nmemory: 64M\nstop_timeout: 2s\nserial: none\n' "$name"
	local l
	for l in "$@"; do printf '%s\n' "$l"; done
}

# A manifest driving the fake QEMU in a given mode.
fake_yaml() { # name mode [extra...]
	local name=$1 mode=$2; shift 2
	[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu not built (MQ_FAKE_QEMU=$MQ_FAKE_QEMU)"
	printf 'name: %s\nbinary: %s\nstop_timeout: 1s\nargs: ["-fake-mode", "%s"]\n' "$name" "$MQ_FAKE_QEMU" "$mode"
	local l
	for l in "$@"; do printf '%s\n' "$l"; done
}

count_events() { # vm action outcome
	mq events "$1" -o json | jq --arg a "$2" --arg o "$3" '[.[] | select(.action == $a and .outcome == $o)] | length'
}

# make_guest OUT MODE: assemble the boot-sector guest (guest.S) into OUT.
# MODE 0: powers off on the ACPI power button; 1: powers off at once;
# 2: ignores the power button.
make_guest() {
	local out=$1 mode=${2:-0}
	local src
	src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/guest.S"
	as --32 -o "$T/guest.o" "$src" || fail "cannot assemble guest.S (binutils missing?)"
	ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o "$out" "$T/guest.o" || fail "cannot link guest"
	printf "\\x0$mode" | dd of="$out" bs=1 seek=509 conv=notrunc status=none
	[ "$(stat -c %s "$out")" = 512 ] || fail "guest is not 512 bytes"
}
serial_has() { grep -q "$2" "$RT/$1.serial.log" 2>/dev/null; }
