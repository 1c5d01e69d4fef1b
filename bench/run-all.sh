#!/usr/bin/env bash
# bench/run-all.sh: run every maqet benchmark, one after the other.
#
# usage (from the repository root):
#   bash bench/run-all.sh
#   MAQET=path/to/maqet bash bench/run-all.sh
#
# Runs bench/apply-cold.sh, bench/apply-noop.sh and the watch benchmarks
# bench/watch-create.sh, watch-restart.sh, watch-hung.sh, watch-idle.sh,
# watch-rss.sh, the snapshot benchmarks bench/snapshot-live.sh,
# snapshot-offline.sh, snapshot-list.sh, snapshot-schedule.sh,
# snapshot-watch.sh, and bench/fleet-noop.sh (their
# environment knobs, REPS, N, SETTLE_MAX, ..., pass through; REPS and N mean
# something different to each, so leave them unset here unless you mean it),
# prints each one's full output,
# then one summary line per script.  Exit status: 0 when every target of every
# script holds, 1 when a target missed, 2 when a benchmark could not run.
set -uo pipefail
[[ -f bench/lib.sh && -f meson.build ]] || {
	echo "run-all.sh: run me from the repository root: bash bench/run-all.sh" >&2
	exit 2
}
worst=0
summary=()
for b in apply-cold apply-noop watch-create watch-restart watch-hung watch-idle watch-rss \
	snapshot-live snapshot-offline snapshot-list snapshot-schedule snapshot-watch fleet-noop; do
	echo "=== bench/$b.sh"
	bash "bench/$b.sh"
	rc=$?
	case $rc in
	0) summary+=("PASS  bench/$b.sh") ;;
	1) summary+=("FAIL  bench/$b.sh (a target missed)") ;;
	*) summary+=("ERROR bench/$b.sh (exit $rc: the benchmark could not run)") ;;
	esac
	((rc > 1)) && rc=2
	((rc > worst)) && worst=$rc
	echo
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit "$worst"
