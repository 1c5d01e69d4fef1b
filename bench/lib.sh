# bench/lib.sh: helpers shared by the bench scripts.  Sourced, not run.
# shellcheck shell=bash disable=SC2034
#
# bench_init sets up, for the calling script:
#   MAQET              a private copy of the maqet binary ($MAQET, default
#                      build/cli/maqet), so a rebuild in the shared checkout
#                      during the run cannot swap or remove it; MAQET_ORIG is
#                      the path it was copied from
#   BENCH_TMP          private temp dir (state dirs, manifests, helper binaries)
#   MAQET_RUNTIME_DIR  private short runtime dir /tmp/mqb.XXXXXX (exported; unix
#                      socket paths must stay < 107 bytes)
#   RUSAGE, QMP_READY  the helper programs, compiled from bench/*.c
# and an EXIT trap that kills every QEMU whose QMP socket lives in that runtime
# dir and removes both temp dirs.
# Dependencies: bash, coreutils, procps (pgrep), cc, pkg-config + json-c headers.

bench_die() {
	echo "${0##*/}: $*" >&2
	exit 2
}

bench_init() {
	[[ -f bench/lib.sh && -f meson.build ]] || bench_die "run me from the repository root: bash bench/${0##*/}"
	MAQET=${MAQET:-build/cli/maqet}
	local i
	for ((i = 0; i < 30; i++)); do # a rebuild may be relinking it right now
		[[ -x $MAQET ]] && break
		sleep 1
	done
	[[ -x $MAQET ]] || bench_die "maqet binary '$MAQET' not found: build it (meson setup build && ninja -C build) or set MAQET"
	local t
	bench_need cc pkg-config pgrep sort mktemp
	BENCH_TMP=$(mktemp -d /tmp/mqbench.XXXXXX) || bench_die "mktemp failed"
	MAQET_RUNTIME_DIR=$(mktemp -d /tmp/mqb.XXXXXX) || bench_die "mktemp failed"
	export MAQET_RUNTIME_DIR
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM HUP
	unset MAQET_STATE_DIR NO_COLOR
	export NO_COLOR=1

	RUSAGE=$BENCH_TMP/rusage
	MAQET_ORIG=$MAQET
	cp "$MAQET" "$BENCH_TMP/maqet" || bench_die "cannot copy $MAQET"
	MAQET=$BENCH_TMP/maqet
	"$MAQET" --version >/dev/null || bench_die "$MAQET_ORIG does not run (half-linked by a rebuild?)"
	QMP_READY=$BENCH_TMP/qmp-ready
	cc -O2 -o "$RUSAGE" bench/rusage.c || bench_die "cannot compile bench/rusage.c"
	# shellcheck disable=SC2046
	cc -O2 -o "$QMP_READY" bench/qmp-ready.c $(pkg-config --cflags --libs json-c) ||
		bench_die "cannot compile bench/qmp-ready.c (json-c headers: .ci/install-deps)"
}

# Kill -9 every QEMU started under our runtime dir (its argv names its QMP
# socket there) and wait until they are gone.
bench_kill_qemus() {
	local pids tries=0
	while pids=$(pgrep -f -- "id=mqmp,path=$MAQET_RUNTIME_DIR/"); do
		# shellcheck disable=SC2086
		kill -9 $pids 2>/dev/null || true
		if ((++tries > 1000)); then
			echo "${0##*/}: warning: QEMUs still alive after kill -9: $pids" >&2
			return 1
		fi
		sleep 0.01
	done
	rm -f "$MAQET_RUNTIME_DIR"/*.qmp "$MAQET_RUNTIME_DIR"/*.ev
}

# Number of QEMUs alive under our runtime dir.
bench_count_qemus() {
	pgrep -c -f -- "id=mqmp,path=$MAQET_RUNTIME_DIR/" || true
}

bench_cleanup() {
	local rc=$?
	trap - EXIT
	if [[ -n ${MAQET_RUNTIME_DIR:-} && -d $MAQET_RUNTIME_DIR ]]; then
		bench_kill_qemus || true
		rm -rf "$MAQET_RUNTIME_DIR"
	fi
	[[ -n ${BENCH_TMP:-} && -d $BENCH_TMP ]] && rm -rf "$BENCH_TMP"
	exit "$rc"
}

# bench_need TOOL...: die unless every TOOL is on PATH.
bench_need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || bench_die "'$t' is needed"
	done
}

# bench_idle_guest FILE: a 512-byte boot sector that idles the guest
# (cli; hlt; jmp back, then the boot signature): no CPU burnt in firmware.
bench_idle_guest() {
	{
		printf '\xfa\xf4\xeb\xfd'
		head -c 506 /dev/zero
		printf '\x55\xaa'
	} >"$1"
}

# bench_run OUT CMD...: run CMD under the rusage runner, its stdout to OUT (its
# stderr passes through).  Sets RUN_US (wall µs), RUN_KB (peak RSS KiB) and
# RUN_RC (CMD's exit status).
bench_run() {
	local out=$1 res=$BENCH_TMP/rusage.res line
	shift
	"$RUSAGE" -r "$res" -o "$out" -- "$@" || true
	read -r line <"$res" || bench_die "rusage runner failed for: $*"
	[[ $line =~ ^wall_us=([0-9]+)\ maxrss_kb=([0-9]+)\ status=([0-9]+)$ ]] ||
		bench_die "unexpected rusage output: $line"
	RUN_US=${BASH_REMATCH[1]} RUN_KB=${BASH_REMATCH[2]} RUN_RC=${BASH_REMATCH[3]}
}

# bench_stats N...: prints "median min max" of integers (median of an even
# count is the mean of the two middle values, rounded down).
bench_stats() {
	local -a s
	mapfile -t s < <(printf '%s\n' "$@" | sort -n)
	local n=${#s[@]} med
	((n > 0)) || bench_die "bench_stats: no values"
	if ((n % 2)); then
		med=${s[n / 2]}
	else
		med=$(((s[n / 2 - 1] + s[n / 2]) / 2))
	fi
	echo "$med ${s[0]} ${s[n - 1]}"
}

# bench_ms US: microseconds as milliseconds with one decimal ("812.3").
bench_ms() {
	printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100))
}

# bench_mb KB: KiB as MiB with one decimal.
bench_mb() {
	printf '%d.%d' $(($1 / 1024)) $((($1 % 1024) * 10 / 1024))
}

# bench_ratio A B: A/B with two decimals, rounded.
bench_ratio() {
	local r=$((($1 * 1000 / $2 + 5) / 10))
	printf '%d.%02d' $((r / 100)) $((r % 100))
}

# bench_target NAME OK DETAIL...: print a PASS/FAIL line, remember failures.
BENCH_FAILED=0
bench_target() {
	if [[ $2 == 1 ]]; then
		echo "PASS  $1: ${*:3}"
	else
		echo "FAIL  $1: ${*:3}"
		BENCH_FAILED=1
	fi
}

# Sum of utime+stime clock ticks of our QEMUs.
bench_qemu_ticks() {
	local pid sum=0 stat rest f
	for pid in $(pgrep -f -- "id=mqmp,path=$MAQET_RUNTIME_DIR/"); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${stat##*) } # fields from 3 on; comm may hold spaces
		read -r -a f <<<"$rest"
		sum=$((sum + f[11] + f[12])) # utime, stime: fields 14, 15
	done
	echo "$sum"
}

# bench_wait_idle MAX_S: a fresh guest burns a few CPU-seconds in its
# firmware; wait (at most MAX_S seconds) until our QEMUs together use less than
# 3% of a CPU each, measured over 1 s.  Sets IDLE_WAITED (seconds) and
# IDLE_OK (1 when idle was reached).
bench_wait_idle() {
	local max=$1 hz n a b
	hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
	IDLE_WAITED=0 IDLE_OK=0
	while ((IDLE_WAITED < max)); do
		n=$(bench_count_qemus)
		a=$(bench_qemu_ticks)
		sleep 1
		b=$(bench_qemu_ticks)
		IDLE_WAITED=$((IDLE_WAITED + 1))
		if (((b - a) * 100 <= n * 3 * hz)); then
			IDLE_OK=1
			return 0
		fi
	done
}
