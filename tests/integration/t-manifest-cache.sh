#!/usr/bin/env bash
# The manifest parse cache (<state>/manifest-cache, specs/cache.h): validate,
# plan and apply print exactly the same with and without it (cold, warm,
# after an edit that keeps size and mtime, with errors, damaged, deleted),
# and a no-op run with a warm cache does not rewrite it.
. "$(dirname "$0")/lib.sh"

R=$M/repo
mkdir -p "$R/a" "$R/b" "$R/_bases" "$STATE"
printf 'hosts: [a, b]\n' > "$R/hosts.yaml"
printf 'memory: 64M\nserial: none\nstop_timeout: 2s\n' > "$R/_bases/small.yaml"
for i in 1 2 3; do
	vm_yaml "a$i" 'state: stopped' 'placement: {host: a}' "network: [{type: user, forward: [\"tcp:$((2200 + i)):22\"]}]" > "$R/a/a$i.yaml"
	vm_yaml "b$i" 'state: stopped' 'placement: {host: b}' "network: [{type: user, forward: [\"tcp:$((2200 + i)):22\"]}]" > "$R/b/b$i.yaml"
done
printf 'name: a4\nextends: ../_bases/small.yaml\nstate: stopped\nplacement: {host: a}\ndepends_on: [a1]\n' > "$R/a/a4.yaml"
printf 'name: free1\nstate: stopped\nmemory: 32M\n---\nname: free2\nstate: stopped\nmemory: 32M\ndepends_on: [free1]\n' > "$R/free.yaml"
CACHE=$STATE/manifest-cache

# compare VERB ARGS...: the command's output and status with the cache (run
# twice: the first may fill it) and without it must be identical.
compare() {
	local rc0 rc1 rc2 o0 o1 o2
	run_rc rc0 env MAQET_NO_CACHE=1 "$MAQET" "$@"; o0=$OUT
	run_rc rc1 mq "$@"; o1=$OUT
	run_rc rc2 mq "$@"; o2=$OUT
	assert_eq "$rc1" "$rc0" "exit status of '$*' with a cold cache"
	assert_eq "$rc2" "$rc0" "exit status of '$*' with a warm cache"
	assert_eq "$o1" "$o0" "output of '$*' with a cold cache"
	assert_eq "$o2" "$o0" "output of '$*' with a warm cache"
}

compare validate -f "$R"
[ -s "$CACHE" ] || fail "no cache written at $CACHE"
compare plan --host a -f "$R"
compare plan --host b -f "$R"
compare apply --host a --dry-run -f "$R"
run_rc rc mq apply --host a -f "$R"
assert_eq "$rc" 0 "apply --host a: $OUT"
compare plan --host a -f "$R"
compare apply --host a -f "$R"
assert_contains "$OUT" "No changes: 6 vms up to date, 3 placed on other hosts."
pass "validate, plan and apply print the same with and without the cache"

# A warm cache is not rewritten by a no-op.  Files written less than 2 s
# ago are racily clean (re-hashed, and the cache refreshed), so wait until
# a run leaves the file alone (bounded).
cache_id() { stat -c '%i %Y %s' "$CACHE"; }
settled() {
	local before
	before=$(cache_id)
	mq validate -f "$R" >/dev/null 2>&1
	[ "$(cache_id)" == "$before" ]
}
wait_until 20 settled || fail "the cache is still rewritten by a no-op run after 20 s"
before=$(cache_id)
run_rc rc mq plan --host a -f "$R"
assert_eq "$rc" 0 "plan with a warm cache"
assert_eq "$(cache_id)" "$before" "a no-op plan rewrote the cache"
pass "a no-op run leaves a warm cache alone"

# An edit that keeps the size and puts the mtime back: ctime (and then the
# content hash) still tell.
f=$R/a/a2.yaml
cp -p "$f" "$T/a2.orig"
sed -i 's/memory: 64M/memory: 96M/' "$f"
touch -r "$T/a2.orig" "$f"
assert_eq "$(stat -c '%s %Y' "$f")" "$(stat -c '%s %Y' "$T/a2.orig")" "size and mtime restored"
run_rc rc mq plan --host a -f "$R"
assert_contains "$OUT" "a2" "plan names the edited vm"
assert_contains "$OUT" "memory" "plan sees the new memory"
compare plan --host a -f "$R"
# the base, edited the same way: the vm extending it is read again
cp -p "$R/_bases/small.yaml" "$T/small.orig"
sed -i 's/memory: 64M/memory: 80M/' "$R/_bases/small.yaml"
touch -r "$T/small.orig" "$R/_bases/small.yaml"
run_rc rc mq plan --host a -f "$R"
assert_contains "$OUT" "a4" "plan names the vm whose base changed"
compare plan --host a -f "$R"
pass "same-size edits with the mtime put back are seen (manifest and base)"

# Errors are never cached: located every time, the same as without it.
printf 'name: b9\nmemroy: 1G\nplacement: {host: b}\n' > "$R/b/b9.yaml"
compare validate -f "$R"
assert_contains "$OUT" "$R/b/b9.yaml:2:1: unknown key 'memroy'"
compare plan --host a -f "$R"
assert_contains "$OUT" "b9.yaml:2:1: unknown key 'memroy'"
rm "$R/b/b9.yaml"
# a set-level error in files that are all cached: positions as when parsed
printf 'name: b8\nstate: stopped\nplacement: {host: b}\nnetwork: [{type: user, forward: ["tcp:2201:22"]}]\n' > "$R/b/b8.yaml"
compare validate -f "$R"
assert_contains "$OUT" "b8.yaml:4:"
assert_contains "$OUT" "host port tcp:2201 is already forwarded"
rm "$R/b/b8.yaml"
pass "errors are located the same with the cache"

# Damaged, truncated or deleted: ignored and written again.
printf 'MQMCACHE but not really a cache file' > "$CACHE"
compare validate -f "$R"
truncate -s 100 "$CACHE"
compare plan --host a -f "$R"
rm -f "$CACHE"
compare plan --host a -f "$R"
[ -s "$CACHE" ] || fail "the cache was not written again"
pass "a damaged or deleted cache is ignored and rebuilt"

# A repository of more than a thousand manifests (the load's heap in huge
# pages, light specs over several arenas, entries looked up in file order):
# the same output with and without the cache, errors located the same.
B=$M/big
mkdir -p "$B"
printf 'hosts: [h0, h1, h2, h3, h4, h5]\n' > "$B/hosts.yaml"
for h in 0 1 2 3 4 5; do
	mkdir -p "$B/h$h"
	for i in $(seq 0 199); do
		printf 'name: v%d-%03d\nstate: stopped\nmemory: 32M\nplacement: {host: h%d}\nnetwork: [{type: user, forward: ["tcp:%d:22"]}]\n' \
			"$h" "$i" "$h" "$((30000 + h * 200 + i))" > "$B/h$h/v$h-$i.yaml"
	done
done
printf 'name: v0-dep\nstate: stopped\nplacement: {host: h0}\ndepends_on: [v0-007]\n' > "$B/h0/v0-dep.yaml"
compare validate -f "$B"
assert_contains "$OUT" "1201 vms valid"
compare plan --host h0 -f "$B"
compare plan --host h3 -f "$B"
printf 'name: v9-dup\nstate: stopped\nplacement: {host: h2}\nnetwork: [{type: user, forward: ["tcp:30401:22"]}]\n' > "$B/h2/v9-dup.yaml"
compare validate -f "$B"
assert_contains "$OUT" "v9-dup.yaml:4:"
assert_contains "$OUT" "host port tcp:30401 is already forwarded by vm 'v2-001'"
rm "$B/h2/v9-dup.yaml" "$B/h1/v1-50.yaml"
compare plan --host h1 -f "$B"
pass "a repository of 1200 manifests prints the same with and without the cache"
