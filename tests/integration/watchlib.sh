# Helpers for `maqet watch` integration tests; source after lib.sh.
#
# start_watch runs `maqet watch --log-format json ARGS...` in the background
# with its stderr (the decision log, one JSON object per line) in $WATCH_LOG
# and waits for the "ready" line.  log_count / wait_log / pass_count query
# that log with jq.  stop_watch sends SIGTERM and asserts a clean exit and a
# well-formed log.  On exit every watch this test started is stopped before
# lib.sh's cleanup kills the QEMUs, and on failure the logs are printed.
: "${MQ_NOTIFY_RECV:=}"

WATCH_PID=
WATCH_LOG=$T/watch.log
WATCH_N=0
WATCH_PIDS=()

watch_cleanup() {
	local rc=$?
	set +e # under errexit, `(exit $rc)` below would end the trap before cleanup kills the QEMUs
	local p deadline f
	for p in "${WATCH_PIDS[@]}"; do
		proc_alive "$p" || continue
		kill -TERM "$p" 2>/dev/null || true
		deadline=$((SECONDS + 5))
		while proc_alive "$p" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ $rc -ne 0 ]; then
		for f in "$T"/watch*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (last 60 lines)" >&2
			tail -n 60 "$f" >&2
		done
		"$MAQET" status >&2 2>/dev/null || true
	fi
	set +e # under set -e the (exit) below would end this trap before cleanup ran
	(exit $rc)
	cleanup
}
trap watch_cleanup EXIT

# start_watch ARGS...: start a watch (previous log kept as watch.N.log) and
# wait for its "ready" line.  $WATCH_READY_TIMEOUT (s) bounds the wait.
start_watch() {
	start_watch_try "$@" ||
		fail "watch did not become ready (pid $WATCH_PID): $(tail -n 20 "$WATCH_LOG")"
}

# start_watch_try ARGS...: start_watch, but return 1 (watch left running)
# when it is not ready in time.
start_watch_try() {
	if [ -f "$WATCH_LOG" ]; then
		WATCH_N=$((WATCH_N + 1))
		mv "$WATCH_LOG" "$T/watch.$WATCH_N.log"
	fi
	: > "$WATCH_LOG"
	"$MAQET" watch --log-format json "$@" 2>"$WATCH_LOG" >>"$T/watch.stdout" &
	WATCH_PID=$!
	WATCH_PIDS+=("$WATCH_PID")
	wait_log ready ok "" "${WATCH_READY_TIMEOUT:-30}"
}

# stop_watch [SIGNAL]: SIGTERM (or SIGNAL, e.g. INT) the current watch; it
# must exit 0 within 20 s, log "shutdown"/"ok" once and have written only
# well-formed JSON lines.
stop_watch() {
	local sig=${1:-TERM}
	[ -n "$WATCH_PID" ] || fail "stop_watch: no watch running"
	proc_alive "$WATCH_PID" || fail "watch (pid $WATCH_PID) died before SIG$sig: $(tail -n 20 "$WATCH_LOG")"
	kill -"$sig" "$WATCH_PID"
	local deadline=$((SECONDS + 20))
	while proc_alive "$WATCH_PID" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
	proc_alive "$WATCH_PID" && fail "watch did not exit within 20 s of SIG$sig"
	local rc=0
	wait "$WATCH_PID" || rc=$?
	assert_eq "$rc" 0 "watch exit status after SIG$sig: $(tail -n 5 "$WATCH_LOG")"
	assert_eq "$(log_count shutdown ok null)" 1 "one shutdown/ok line with vm null"
	check_log_format
	WATCH_PID=
}

# check_log_format [FILE]: every line is one JSON object with the documented
# fields; exactly one "ready" line.
check_log_format() {
	local f=${1:-$WATCH_LOG} bad
	bad=$(jq -R -r '
		(try fromjson catch null) as $o
		| if ($o | type) != "object" then "not a json object: \(.)"
		  elif ($o.time | type) != "string"
		    or ($o.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}(Z|\\+00:00)$") | not)
		  then "bad time: \(.)"
		  elif ($o.vm != null and ($o.vm | type) != "string") then "bad vm: \(.)"
		  elif ($o.action | type) != "string" or ($o.outcome | type) != "string" then "bad action/outcome: \(.)"
		  elif ($o.detail | type) != "string" then "bad detail: \(.)"
		  else empty end' "$f")
	[ -z "$bad" ] || fail "malformed watch log lines in $(basename "$f"):
$bad"
	assert_eq "$(log_count ready ok null "$f")" 1 "exactly one ready/ok line (vm null) in $(basename "$f")"
}

# log_select ACTION [OUTCOME] [VM] [FILE]: matching log lines as compact JSON.
# "" matches anything; VM "null" matches a null vm.
log_select() {
	local f=${4:-$WATCH_LOG}
	[ -f "$f" ] || return 0
	jq -c -R --arg a "$1" --arg o "${2:-}" --arg v "${3:-}" '
		(try fromjson catch null) | select(type == "object")
		| select($a == "" or .action == $a)
		| select($o == "" or .outcome == $o)
		| select($v == "" or ($v == "null" and .vm == null) or .vm == $v)' "$f"
}

# log_count ACTION [OUTCOME] [VM] [FILE]: number of matching lines.
log_count() {
	local f=${4:-$WATCH_LOG}
	[ -f "$f" ] || { echo 0; return 0; }
	log_select "$@" | jq -s length
}

# log_details ACTION [OUTCOME] [VM] [FILE]: the detail of each matching line.
log_details() { log_select "$@" | jq -r '.detail // ""'; }

# pass_count TRIGGER [FILE]: "pass"/"done" lines whose detail names TRIGGER.
pass_count() {
	local f=${2:-$WATCH_LOG}
	[ -f "$f" ] || { echo 0; return 0; }
	jq -R --arg t "$1" -n '[inputs | (try fromjson catch null) | select(type == "object")
		| select(.action == "pass" and .outcome == "done" and .vm == null)
		| select((.detail // "") | test("\\b" + $t + "\\b"))] | length' "$f"
}

# Fail fast when the watch died while we wait for it.
watch_alive() { [ -n "$WATCH_PID" ] && proc_alive "$WATCH_PID"; }

# wait_log_n N ACTION OUTCOME VM TIMEOUT: wait until at least N lines match.
wait_log_n() {
	local n=$1 a=$2 o=$3 v=$4 timeout=$5
	local deadline=$((SECONDS + timeout))
	while :; do
		[ "$(log_count "$a" "$o" "$v")" -ge "$n" ] && return 0
		watch_alive || { echo "watch (pid $WATCH_PID) is not running" >&2; return 1; }
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# wait_log ACTION OUTCOME [VM] [TIMEOUT]: wait for one matching line (default 20 s).
wait_log() { wait_log_n 1 "$1" "$2" "${3:-}" "${4:-20}"; }

# wait_pass_n N TRIGGER TIMEOUT: wait until pass_count TRIGGER >= N.
wait_pass_n() {
	local n=$1 t=$2 timeout=$3
	local deadline=$((SECONDS + timeout))
	while :; do
		[ "$(pass_count "$t")" -ge "$n" ] && return 0
		watch_alive || { echo "watch (pid $WATCH_PID) is not running" >&2; return 1; }
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# quiet_for S: let the watch run S seconds (used only to prove that something
# does NOT happen, after the condition it would react to has been met); the
# watch must still be alive afterwards.
quiet_for() {
	sleep "$1"
	watch_alive || fail "watch died: $(tail -n 20 "$WATCH_LOG")"
}

# Count of "start"-like actions (create/start/restart with outcome ok) for a VM.
starts_of() {
	local vm=$1 f=${2:-$WATCH_LOG}
	echo $(($(log_count create ok "$vm" "$f") + $(log_count start ok "$vm" "$f") + $(log_count restart ok "$vm" "$f")))
}

starts_at_least() { [ "$(starts_of "$1")" -ge "$2" ]; } # name n
status_is() { [ "$(vm_status "$1")" = "$2" ]; } # name status

# Pid with proof it is alive (the status pid, not "null").
# has_new_pid NAME OLD: NAME runs under a live pid other than OLD.
has_new_pid() { local p; p=$(live_pid "$1") && [ "$p" != "$2" ]; }
live_pid() { # name -> prints pid, fails if not a running pid
	local p
	p=$(vm_pid "$1")
	[[ "$p" =~ ^[0-9]+$ ]] || return 1
	proc_alive "$p" || return 1
	echo "$p"
}

# --- helpers for the robustness tests (pidfd faults, full store, hung QEMU)

# make_idle_guest OUT: a boot sector that idles for ever at no cost
# (cli; hlt; jmp .-3), for `machine: pc` with a raw IDE disk.
make_idle_guest() {
	{
		printf '\xfa\xf4\xeb\xfd'
		head -c 506 /dev/zero
		printf '\x55\xaa'
	} > "$1"
	[ "$(stat -c %s "$1")" = 512 ] || fail "idle guest is not 512 bytes"
}

# idle_yaml NAME IMG [extra yaml lines...]: a VM booting IMG (an idle guest).
idle_yaml() {
	local name=$1 img=$2; shift 2
	printf 'name: %s\nmachine: pc\nmemory: 32M\nstop_timeout: 2s\nserial: none\n' "$name"
	printf 'storage:\n  - {name: boot, type: raw, file: %s, interface: ide}\n' "$img"
	local l
	for l in "$@"; do printf '%s\n' "$l"; done
}

# proc_cpu_ticks PID: utime+stime of PID in clock ticks (fields 14, 15).
proc_cpu_ticks() {
	local stat rest f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	read -r -a f <<<"$rest"
	echo $((f[11] + f[12]))
}

# cpu_pct PID SECONDS: CPU use of PID over SECONDS, in percent of one CPU
# (integer).  Fails when PID dies meanwhile.
cpu_pct() {
	local pid=$1 s=$2 hz a b t0 t1 us
	hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
	a=$(proc_cpu_ticks "$pid") || return 1
	t0=${EPOCHREALTIME/./}
	sleep "$s"
	b=$(proc_cpu_ticks "$pid") || return 1
	t1=${EPOCHREALTIME/./}
	us=$((t1 - t0))
	# ticks -> µs: ticks * 1e6 / hz; percent = 100 * cpu_us / wall_us
	echo $(((b - a) * 100000000 / hz / us))
}

# Soft assertions: record a failure, go on, and fail at the end
# (soft_done), so one run reports every broken behaviour, not the first.
SOFT_FAILS=0
soft_fail() {
	echo "FAIL: $*" >&2
	SOFT_FAILS=$((SOFT_FAILS + 1))
}
soft_done() {
	[ "$SOFT_FAILS" = 0 ] || fail "$SOFT_FAILS assertion(s) failed (see FAIL lines above)"
}

# term_watch_within S [SIG]: send SIGTERM (or SIG) to the current watch; it
# must exit within S seconds with status 0.  Returns 1 (after printing why)
# otherwise; the watch is then killed by the clean-up.
term_watch_within() {
	local s=$1 sig=${2:-TERM} rc=0 deadline
	[ -n "$WATCH_PID" ] || fail "term_watch_within: no watch running"
	proc_alive "$WATCH_PID" || { echo "watch (pid $WATCH_PID) died before SIG$sig" >&2; return 1; }
	kill -"$sig" "$WATCH_PID"
	deadline=$(( ${EPOCHREALTIME/./} + s * 1000000 ))
	while proc_alive "$WATCH_PID" && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do sleep 0.05; done
	if proc_alive "$WATCH_PID"; then
		echo "watch (pid $WATCH_PID) did not exit within $s s of SIG$sig" >&2
		return 1
	fi
	wait "$WATCH_PID" || rc=$?
	WATCH_PID=
	[ "$rc" = 0 ] || { echo "watch exited with status $rc after SIG$sig" >&2; return 1; }
}

# max_repeat [FILE]: the largest number of identical (vm, action, outcome,
# detail) lines in the watch log.
max_repeat() {
	local f=${1:-$WATCH_LOG}
	jq -R -n '[inputs | (try fromjson catch null) | select(type == "object")
		| [.vm, .action, .outcome, .detail] | tojson]
		| group_by(.) | map(length) | max // 0' "$f"
}

# most_repeated [FILE]: that line and its count, for messages.
most_repeated() {
	local f=${1:-$WATCH_LOG}
	jq -R -n -r '[inputs | (try fromjson catch null) | select(type == "object")
		| [.vm, .action, .outcome, .detail] | tojson]
		| group_by(.) | max_by(length) // [] | "\(length)x \(.[0] // "")"' "$f"
}
