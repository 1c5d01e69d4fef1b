# bench/watchlib.sh: plumbing shared by the `maqet watch` bench scripts.
# Sourced after lib.sh, not run.
# shellcheck shell=bash disable=SC2034
#
# watch_bench_init (call instead of bench_init) does what bench_init does and:
#   WTIME        the clock helper, compiled from bench/wtime.c
#   FAKE_QEMU    a private copy of the fake QEMU ($FAKE_QEMU, default
#                tests/fake-qemu/fake-qemu next to maqet's build dir), only
#                when watch_bench_init is given "fake"
#   an EXIT trap that first stops every `maqet watch` this script started (by
#   pid: SIGTERM, SIGKILL after 5 s) -- else watch would restart the QEMUs the
#   clean-up kills -- and then runs bench_cleanup.
#
# watch_start STATE LOG ARGS...   start `maqet --state-dir STATE watch
#                                 --log-format json ARGS...` in the background,
#                                 stderr (the decision log) to LOG; sets
#                                 WATCH_PID, waits for the "ready" line.
# watch_stop                      SIGTERM it, wait until it exited.
# watch_wait LOG OFFSET TIMEOUT_S PATTERN...
#                                 wait for a log line after byte OFFSET that
#                                 holds every PATTERN ("a|b": a or b); sets
#                                 WL_MS (its time, epoch ms), WL_OFF (byte
#                                 offset after it), WL_LINE.  Returns 1 on
#                                 timeout.
# log_size LOG                    current size of LOG in bytes.
# real_us                         CLOCK_REALTIME in µs.
# proc_ticks PID                  utime+stime of PID in clock ticks.
# proc_runtime_ns PID             CPU time of PID in ns from /proc/PID/schedstat
#                                 (empty when the kernel has no schedstat).
# proc_ctxt PID                   "voluntary nonvoluntary" context switches.
# proc_kb PID FIELD               a /proc/PID/status field in kB (VmRSS, VmHWM).

WATCH_PIDS=()
WATCH_PID=

# shellcheck disable=SC2120 # the argument is optional
watch_bench_init() {
	bench_init
	trap watch_bench_cleanup EXIT
	WTIME=$BENCH_TMP/wtime
	cc -O2 -o "$WTIME" bench/wtime.c || bench_die "cannot compile bench/wtime.c"
	if [[ ${1:-} == fake ]]; then
		local src=${FAKE_QEMU:-$(dirname "$MAQET_ORIG")/../tests/fake-qemu/fake-qemu}
		[[ -x $src ]] || bench_die "fake QEMU '$src' not found: build it (ninja -C build) or set FAKE_QEMU"
		FAKE_QEMU=$BENCH_TMP/fake-qemu
		cp "$src" "$FAKE_QEMU" || bench_die "cannot copy $src"
	fi
}

watch_bench_cleanup() {
	local rc=$? p i
	for p in "${WATCH_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || continue
		for ((i = 0; i < 500; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.01
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	set +e # the (exit) below must not end this trap under set -e
	(exit "$rc")
	bench_cleanup
}

log_size() {
	stat -c %s "$1" 2>/dev/null || echo 0
}

watch_wait() {
	local log=$1 off=$2 t=$3 out
	shift 3
	out=$("$WTIME" waitlog "$log" "$off" $((t * 1000)) "$@") || return 1
	read -r WL_MS WL_OFF WL_LINE <<<"$out"
	((WL_MS > 0)) || bench_die "watch log line without a valid time: $WL_LINE"
}

watch_start() {
	local state=$1 log=$2
	shift 2
	: >"$log"
	"$MAQET" --state-dir "$state" watch --log-format json "$@" 2>"$log" >"$log.stdout" &
	WATCH_PID=$!
	WATCH_PIDS+=("$WATCH_PID")
	watch_wait "$log" 0 "${WATCH_READY_TIMEOUT:-120}" '"action":"ready"' || {
		tail -n 20 "$log" >&2
		bench_die "maqet watch (pid $WATCH_PID) did not log 'ready'"
	}
}

watch_stop() {
	local i
	[[ -n $WATCH_PID ]] || return 0
	kill -TERM "$WATCH_PID" 2>/dev/null || true
	for ((i = 0; i < 2000; i++)); do
		kill -0 "$WATCH_PID" 2>/dev/null || break
		sleep 0.01
	done
	kill -0 "$WATCH_PID" 2>/dev/null && bench_die "maqet watch (pid $WATCH_PID) did not exit on SIGTERM"
	wait "$WATCH_PID" 2>/dev/null || true
	WATCH_PID=
}

real_us() {
	local t
	t=$("$WTIME" now)
	echo "${t/./}"
}

proc_ticks() {
	local stat rest f
	stat=$(cat "/proc/$1/stat") || bench_die "process $1 is gone"
	rest=${stat##*) }
	read -r -a f <<<"$rest"
	echo $((f[11] + f[12]))
}

proc_runtime_ns() {
	local a
	[[ -r /proc/$1/schedstat ]] || return 0
	read -r a _ <"/proc/$1/schedstat" && echo "$a"
}

proc_field() { # PID FIELD: the first value of a /proc/PID/status field
	local k v
	while read -r k v _; do
		[[ $k == "$2:" ]] && {
			echo "$v"
			return 0
		}
	done <"/proc/$1/status"
	bench_die "no $2 in /proc/$1/status"
}

proc_ctxt() {
	echo "$(proc_field "$1" voluntary_ctxt_switches) $(proc_field "$1" nonvoluntary_ctxt_switches)"
}

proc_kb() {
	proc_field "$1" "$2"
}
