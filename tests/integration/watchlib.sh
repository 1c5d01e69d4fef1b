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
	(exit $rc)
	cleanup
}
trap watch_cleanup EXIT

# start_watch ARGS...: start a watch (previous log kept as watch.N.log) and
# wait for its "ready" line.  $WATCH_READY_TIMEOUT (s) bounds the wait.
start_watch() {
	if [ -f "$WATCH_LOG" ]; then
		WATCH_N=$((WATCH_N + 1))
		mv "$WATCH_LOG" "$T/watch.$WATCH_N.log"
	fi
	: > "$WATCH_LOG"
	"$MAQET" watch --log-format json "$@" 2>"$WATCH_LOG" >>"$T/watch.stdout" &
	WATCH_PID=$!
	WATCH_PIDS+=("$WATCH_PID")
	wait_log ready ok "" "${WATCH_READY_TIMEOUT:-30}" ||
		fail "watch did not become ready (pid $WATCH_PID): $(tail -n 20 "$WATCH_LOG")"
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
live_pid() { # name -> prints pid, fails if not a running pid
	local p
	p=$(vm_pid "$1")
	[[ "$p" =~ ^[0-9]+$ ]] || return 1
	proc_alive "$p" || return 1
	echo "$p"
}
