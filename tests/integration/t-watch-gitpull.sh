#!/usr/bin/env bash
# maqet watch --git-pull: a local bare repository is the remote, a clone is
# the host's checkout.  A pushed change is fetched, fast-forwarded and
# applied, with the commit in events; a diverged or dirty checkout is
# reported once and left alone; .git/index.lock holds the pull; with
# --verify-signatures only tips signed by a key of the keyring are applied
# and a refused tip leaves the last verified manifests in force.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
command -v git >/dev/null || fail "git is required (installed by .ci/install-deps)"
command -v gpg >/dev/null || fail "gpg is required (gnupg, installed by .ci/install-deps)"

# git isolated from the user's configuration
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$T/gitconfig
git config --global user.name tester
git config --global user.email tester@example.com
git config --global init.defaultBranch main
git config --global advice.detachedHead false

REMOTE=$T/remote.git
SEED=$T/seed   # where "the fleet's operators" commit and push
HOST=$M/host   # this host's checkout, watched with -f
git init -q --bare "$REMOTE"
git clone -q "$REMOTE" "$SEED" 2>/dev/null
a_yaml() { printf 'name: a\nmemory: %s\nstate: stopped\nserial: none\n' "$1"; } # MEM
a_yaml 64M > "$SEED/a.yaml"
vm_yaml b "state: stopped" > "$SEED/b.yaml"
echo "fleet notes" > "$SEED/NOTES"
git -C "$SEED" add -A && git -C "$SEED" commit -q -m one && git -C "$SEED" push -q origin main
git clone -q "$REMOTE" "$HOST"

push_memory() { # MEM [git commit options...]: change a's memory upstream; prints the new commit
	local mem=$1; shift
	a_yaml "$mem" > "$SEED/a.yaml"
	git -C "$SEED" commit -q "$@" -am "a: memory $mem"
	git -C "$SEED" push -q origin main
	git -C "$SEED" rev-parse HEAD
}
mem_of() { mq inspect "$1" -o json | jq -r .spec.memory; }
head_of() { git -C "$HOST" rev-parse HEAD; }
head_is() { [ "$(head_of)" = "$1" ]; } # SHA (for wait_until: evaluated on every try)
mem_is() { [ "$(mem_of "$1")" = "$2" ]; } # VM BYTES
gitpull_events() { # OUTCOME: git-pull events with that outcome
	mq events -o json | jq --arg o "$1" '[.[] | select(.action == "git-pull" and .outcome == $o)] | length'
}
MIB=1048576

# ---- refused setups: exit 1 with one clear line, usage errors exit 64
mkdir -p "$T/plain"
vm_yaml p "state: stopped" > "$T/plain/p.yaml"
run_rc rc timeout 20 "$MAQET" watch -f "$T/plain" --git-pull
assert_eq "$rc" 1 "--git-pull outside a work tree: $OUT"
assert_contains "$OUT" "maqet: cannot use --git-pull: '$T/plain' is not in a git work tree"
git init -q "$T/noup"
cp "$T/plain/p.yaml" "$T/noup/" && git -C "$T/noup" add -A && git -C "$T/noup" commit -q -m x
run_rc rc timeout 20 "$MAQET" watch -f "$T/noup" --git-pull
assert_eq "$rc" 1 "--git-pull without an upstream: $OUT"
assert_contains "$OUT" "branch 'main' has no upstream (set one: git -C $T/noup branch --set-upstream-to=origin/main)"
run_rc rc timeout 20 "$MAQET" watch -f "$HOST" -f "$T/noup" --git-pull
assert_eq "$rc" 1 "-f paths in two work trees: $OUT"
assert_contains "$OUT" "give -f paths of one repository"
for bad in 0 soon -1 25h 500ms; do
	run_rc rc timeout 10 "$MAQET" watch -f "$HOST" --git-pull --pull-interval "$bad"
	assert_eq "$rc" 64 "--pull-interval $bad: $OUT"
	assert_contains "$OUT" "cannot use --pull-interval '$bad': not a pull interval"
	run_rc rc timeout 10 "$MAQET" watch -f "$HOST" --git-pull --pull-timeout "$bad"
	assert_eq "$rc" 64 "--pull-timeout $bad: $OUT"
	assert_contains "$OUT" "cannot use --pull-timeout '$bad': not a timeout"
done
run_rc rc timeout 10 "$MAQET" watch -f "$HOST" --pull-interval 5s
assert_eq "$rc" 64 "--pull-interval without --git-pull: $OUT"
assert_contains "$OUT" "cannot use --pull-interval without --git-pull"
run_rc rc timeout 10 "$MAQET" watch -f "$HOST" --git-pull --verify-signatures
assert_eq "$rc" 64 "--verify-signatures without --keyring: $OUT"
assert_contains "$OUT" "cannot use --verify-signatures without --keyring FILE"
pass "bad setups are refused at start"

# ---- a pushed change is pulled and applied, its commit in events
start_watch -f "$HOST" --git-pull --pull-interval 1s
wait_log git-pull current null 20 || fail "no first pull"
assert_eq "$(mem_of a)" $((64 * MIB)) "a as cloned"
new=$(push_memory 96M)
wait_log git-pull ok null 20 || fail "the pushed commit was not pulled"
wait_until 20 mem_is a $((96 * MIB)) || fail "a was not updated: $(mem_of a)"
assert_eq "$(head_of)" "$new" "checkout fast-forwarded"
assert_eq "$(mq events -o json | jq -r '[.[] | select(.action == "git-pull" and .outcome == "ok")][0].git_commit')" \
	"$new" "git-pull event carries the commit applied"
assert_contains "$(log_details git-pull ok null)" "to ${new:0:12} (origin/main)"
assert_eq "$(mq events a -o json | jq -r '[.[] | select(.action == "update")][0].git_commit')" "$new" \
	"the update event carries the commit"
pass "a pushed change is fast-forwarded and applied"

# ---- local commits not upstream: reported once, nothing touched
echo "local note" >> "$HOST/NOTES"
git -C "$HOST" commit -q -am "local commit"
local_head=$(head_of)
up2=$(push_memory 128M)
wait_log git-pull diverged null 20 || fail "diverged checkout not reported"
assert_contains "$(log_details git-pull diverged null)" "has 1 local commit not in origin/main"
n_before=$(log_count git-pull diverged null)
# several more pull cycles on the same situation report nothing new
quiet_for 3.5
assert_eq "$(log_count git-pull diverged null)" "$n_before" "diverged reported once"
assert_eq "$(gitpull_events diverged)" 1 "one diverged event"
assert_eq "$(head_of)" "$local_head" "local commit kept"
assert_eq "$(grep -c 'memory: 96M' "$HOST/a.yaml")" 1 "a.yaml untouched"
assert_eq "$(mem_of a)" $((96 * MIB)) "a unchanged"
assert_eq "$(vm_status a)" created "a's status unchanged"
# dropping the local commit (git reset --keep, by the operator) lets it move on
git -C "$HOST" reset -q --keep HEAD~1
wait_until 20 head_is "$up2" || fail "not pulled after the local commit was dropped"
wait_until 20 mem_is a $((128 * MIB)) || fail "a not updated after the reset"
pass "a diverged checkout is reported once and left alone"

# ---- uncommitted changes the fast-forward would overwrite: left alone
printf '# local edit\n' >> "$HOST/a.yaml"
up3=$(push_memory 160M)
wait_log_n 2 git-pull diverged null 20 || fail "dirty checkout not reported"
assert_contains "$(log_details git-pull diverged null | tail -n 1)" "uncommitted changes to a.yaml"
quiet_for 2.5
assert_eq "$(log_count git-pull diverged null)" 2 "dirty checkout reported once"
assert_eq "$(head_of)" "$up2" "HEAD not moved"
assert_eq "$(tail -n 1 "$HOST/a.yaml")" "# local edit" "local edit kept"
assert_eq "$(mem_of a)" $((128 * MIB)) "a unchanged while dirty"
git -C "$HOST" checkout -q -- a.yaml
wait_until 20 head_is "$up3" || fail "not pulled once the edit was discarded"
wait_until 20 mem_is a $((160 * MIB)) || fail "a not updated after the edit was discarded"
pass "uncommitted changes in the way are reported and left alone"

# ---- .git/index.lock holds the pull (and the reload) until it goes
: > "$HOST/.git/index.lock"
up4=$(push_memory 192M)
wait_log git-pull held null 20 || fail "no hold reported for index.lock"
quiet_for 2.5
assert_eq "$(head_of)" "$up3" "no fast-forward while index.lock exists"
assert_eq "$(mem_of a)" $((160 * MIB)) "a unchanged while index.lock exists"
rm -f "$HOST/.git/index.lock"
wait_until 20 head_is "$up4" || fail "not pulled after index.lock went"
wait_until 20 mem_is a $((192 * MIB)) || fail "a not updated after index.lock went"
# and a reload asked for while the lock exists waits for it too
: > "$HOST/.git/index.lock"
printf 'name: b\nmemory: 80M\nstate: stopped\nserial: none\n' > "$HOST/b.yaml"
quiet_for 1.5
assert_eq "$(mem_of b)" $((64 * MIB)) "manifests not read while index.lock exists"
rm -f "$HOST/.git/index.lock"
wait_until 20 mem_is b $((80 * MIB)) || fail "manifests not read after index.lock went"
git -C "$HOST" checkout -q -- b.yaml
wait_until 20 mem_is b $((64 * MIB)) || fail "b not restored"
stop_watch
pass "index.lock holds the pull and the reload"

# ---- a fetch that hangs blocks nothing, and dies with the watch
printf '#!/bin/sh\nexec sleep 6171\n' > "$T/hang-ssh" && chmod +x "$T/hang-ssh"
hung_fetch() { local c; c=$(pgrep -d, -P "$WATCH_PID") && pgrep -f "sleep 6171" -P "$c"; } # git's ssh
git -C "$HOST" remote set-url origin "ssh://fleet.invalid/remote.git"
GIT_SSH_COMMAND=$T/hang-ssh start_watch -f "$HOST" --git-pull --pull-interval 1s --pull-timeout 2s
first= deadline=$((SECONDS + 20))
while [ -z "$first" ] && [ $SECONDS -lt $deadline ]; do
	first=$(hung_fetch | head -n 1 || true)
	[ -n "$first" ] || sleep 0.05
done
[ -n "$first" ] || fail "no hung fetch"
# the git child holds none of maqet's descriptors (state db, inotify, signalfd, pidfds...)
git_fds() { local g; g=$(pgrep -P "$WATCH_PID" -x git | head -n 1) && [ -n "$g" ] && ls -l "/proc/$g/fd" 2>/dev/null; }
fds= deadline=$((SECONDS + 20))
while ! grep -q ' 2 -> ' <<<"$fds" && [ $SECONDS -lt $deadline ]; do
	fds=$(git_fds || true)
	grep -q ' 2 -> ' <<<"$fds" || sleep 0.05
done
grep -q ' 2 -> ' <<<"$fds" || fail "cannot list the git child's descriptors"
leaked=$(grep -E "$STATE|$RT|anon_inode:\[?(signalfd|inotify|pidfd|timerfd|eventpoll)|socket:" <<<"$fds" || true)
[ -z "$leaked" ] || fail "the git child inherited maqet's descriptors: $leaked"
wait_log git-pull failed null 20 || fail "the hung fetch was not reported"
assert_contains "$(log_details git-pull failed null)" "cannot fetch origin/main in '$HOST': git did not finish within 2 s and was killed"
wait_until 10 proc_dead "$first" || fail "the hung fetch's ssh ($first) was not killed"
wait_until 20 hung_fetch || fail "no second fetch after the interval"
quiet_for 3
assert_eq "$(log_count git-pull failed null)" 1 "the same failure is reported once"
assert_eq "$(gitpull_events failed)" 1 "one failed event"
printf 'name: b\nmemory: 80M\nstate: stopped\nserial: none\n' > "$HOST/b.yaml"
wait_until 20 mem_is b $((80 * MIB)) || fail "a manifest change waited for the hung fetch"
stop_watch
pgrep -f "sleep 6171" >/dev/null && fail "the hung git (or its ssh) outlived the watch: $(pgrep -af 'sleep 6171')"
git -C "$HOST" remote set-url origin "$REMOTE"
git -C "$HOST" checkout -q -- b.yaml
pass "a hung fetch blocks nothing and is killed with the watch"

# ---- signatures: a throwaway GnuPG home signs; the watch trusts only its key
export GNUPGHOME=$T/gnupg
mkdir -m 700 "$GNUPGHOME"
kill_agent() { gpgconf --kill all 2>/dev/null || true; }
CLEANUP_HOOKS+=(kill_agent)
gpg --batch --quiet --passphrase '' --quick-gen-key 'Fleet <fleet@example.com>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --passphrase '' --quick-gen-key 'Mallory <mallory@example.com>' ed25519 sign never 2>/dev/null
gpg --export fleet@example.com > "$T/fleet.gpg"
fleetkey=$(gpg --with-colons --list-keys fleet@example.com | awk -F: '/^fpr:/ { print $10; exit }')
mallkey=$(gpg --with-colons --list-keys mallory@example.com | awk -F: '/^fpr:/ { print $10; exit }')
[ -n "$fleetkey" ] && [ -n "$mallkey" ] || fail "no test keys"
git -C "$SEED" config gpg.program gpg

# HEAD of the checkout is unsigned: refused at start
run_rc rc timeout 30 "$MAQET" watch -f "$HOST" --git-pull --verify-signatures --keyring "$T/fleet.gpg"
assert_eq "$rc" 1 "unsigned HEAD: $OUT"
assert_contains "$OUT" "cannot use --verify-signatures: HEAD (${up4:0:12}) of '$HOST' does not verify with keyring"
run_rc rc timeout 30 "$MAQET" watch -f "$HOST" --git-pull --verify-signatures --keyring "$T"
assert_eq "$rc" 1 "keyring is a directory: $OUT"
assert_contains "$OUT" "not a regular file"
echo "not a key" > "$T/junk.gpg"
run_rc rc timeout 30 "$MAQET" watch -f "$HOST" --git-pull --verify-signatures --keyring "$T/junk.gpg"
assert_eq "$rc" 1 "keyring without keys: $OUT"
assert_contains "$OUT" "no public key in it"
ls "$RT"/gitpull-gnupg.* >/dev/null 2>&1 && fail "private GnuPG home left behind: $(ls -d "$RT"/gitpull-gnupg.*)"

# a signed commit, pulled by hand, makes a verified HEAD
s1=$(push_memory 200M -S"$fleetkey")
git -C "$HOST" pull -q --ff-only
assert_eq "$(head_of)" "$s1" "manual pull"
# the watch must never read the user's keyring: point GNUPGHOME elsewhere
GNUPGHOME=$T/nowhere start_watch -f "$HOST" --git-pull --pull-interval 1s --verify-signatures --keyring "$T/fleet.gpg"
wait_log git-pull current null 20 || fail "no first verified pull"
wait_until 20 mem_is a $((200 * MIB)) || fail "a not at the signed manifests"
ls -d "$RT"/gitpull-gnupg.* >/dev/null || fail "no private GnuPG home under the runtime dir"
[ ! -e "$T/nowhere" ] || fail "the user's GNUPGHOME was used"

s2=$(push_memory 224M -S"$fleetkey")
wait_until 20 head_is "$s2" || fail "signed commit not pulled"
wait_until 20 mem_is a $((224 * MIB)) || fail "signed commit not applied"
pass "a signed commit is verified and applied"

u1=$(push_memory 256M --no-gpg-sign)
wait_log git-pull refused null 20 || fail "unsigned tip not refused"
assert_contains "$(log_details git-pull refused null)" "origin/main is at ${u1:0:12} whose signature does not verify"
assert_contains "$(log_details git-pull refused null)" "the manifests of ${s2:0:12} (the last verified commit) stay in force"
quiet_for 2.5
assert_eq "$(log_count git-pull refused null)" 1 "refusal reported once per tip"
assert_eq "$(head_of)" "$s2" "HEAD stays at the last verified commit"
assert_eq "$(mem_of a)" $((224 * MIB)) "a keeps the verified manifests"
assert_eq "$(mq events -o json | jq -r '[.[] | select(.action == "git-pull" and .outcome == "refused")][0].git_commit')" \
	"$s2" "refused event names the commit in force"

m1=$(push_memory 288M -S"$mallkey")
wait_log_n 2 git-pull refused null 20 || fail "tip signed by an unknown key not refused"
assert_contains "$(log_details git-pull refused null | tail -n 1)" "${m1:0:12} whose signature does not verify"
assert_contains "$(log_details git-pull refused null | tail -n 1)" "No public key"
quiet_for 1.5
assert_eq "$(head_of)" "$s2" "HEAD stays verified"
assert_eq "$(mem_of a)" $((224 * MIB)) "a still at the verified manifests"
assert_eq "$(gitpull_events refused)" 2 "two refusals recorded"
pass "unsigned and foreign-signed tips are refused; verified manifests stay in force"

# a signed tip on top is applied (only the tip is verified, as Flux does)
s3=$(push_memory 320M -S"$fleetkey")
wait_until 20 head_is "$s3" || fail "signed tip not pulled"
wait_until 20 mem_is a $((320 * MIB)) || fail "signed tip not applied"
stop_watch
ls -d "$RT"/gitpull-gnupg.* >/dev/null 2>&1 && fail "private GnuPG home not removed at exit"
pass "a signed tip is applied; the private GnuPG home is removed at exit"
