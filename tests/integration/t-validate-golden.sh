#!/usr/bin/env bash
# `maqet validate` prints exactly the expected message for every golden bad
# manifest (tests/golden/NAME.yaml beside NAME.err), and exits 1.
source "$(dirname "$0")/lib.sh"
: "${MQ_SRC:?}"
cd "$MQ_SRC/tests/golden"
n=0
for y in *.yaml; do
	name=${y%.yaml}
	[ -f "$name.err" ] || continue
	run_rc rc mq validate -f "$y"
	assert_eq "$rc" 1 "$y exit code"
	got=$(printf '%s\n' "$OUT" | grep -v '^maqet: ' || true)
	want=$(cat "$name.err")
	[ "$got" == "$want" ] || fail "$y: got
$got
want
$want"
	n=$((n + 1))
done
[ $n -ge 10 ] || fail "only $n golden cases"
pass "$n golden manifests"
