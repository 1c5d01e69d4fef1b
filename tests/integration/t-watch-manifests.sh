#!/usr/bin/env bash
# `maqet watch` follows the manifests: a new manifest starts its VM; an edit
# needing a restart restarts it (new pid); a record-only edit keeps the pid;
# rename-into-place and slow truncate-then-write saves both work and the
# half-written file is never read; a burst of 20 saves inside the settle
# window gives one pass; an invalid edit leaves the VM alone and is logged
# once per distinct content, and a fix resumes; a deleted manifest is
# reported "undeclared" and left running without --prune, and stopped and
# forgotten with --prune.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

SETTLE=300
# A fake-QEMU manifest with its own stop_timeout (fake_yaml fixes it at 1s).
fk() { # name stop_timeout [extra yaml lines...]
	local name=$1 st=$2; shift 2
	printf 'name: %s\nbinary: %s\nstop_timeout: %s\nargs: ["-fake-mode", "normal"]\n' "$name" "$MQ_FAKE_QEMU" "$st"
	local l
	for l in "$@"; do printf '%s\n' "$l"; done
}
[ -x "$MQ_FAKE_QEMU" ] || fail "fake qemu not built (MQ_FAKE_QEMU=$MQ_FAKE_QEMU)"

fk base 1s > "$M/base.yaml"
start_watch -f "$M" --settle "$SETTLE"
assert_eq "$(pass_count startup)" 1 "one startup pass before ready"
assert_eq "$(log_count create ok base)" 1 "startup pass created base"
pbase=$(live_pid base) || fail "base not running after startup: $(mq status 2>&1)"
pass "startup pass creates the declared vm before ready"

# --- a new manifest starts its VM (real QEMU)
m0=$(pass_count manifests)
vm_yaml a > "$M/a.yaml"
wait_log create ok a 30 || fail "new manifest a.yaml was not created: $(log_details create '' a)"
pa=$(live_pid a) || fail "a not running after create: $(mq status 2>&1)"
tr '\0' ' ' < "/proc/$pa/cmdline" | grep -q -- "-name a " || fail "pid $pa is not a's qemu"
wait_pass_n $((m0 + 1)) manifests 10 || fail "no pass with trigger 'manifests' logged"
assert_eq "$(vm_pid base)" "$pbase" "an unrelated new manifest must not touch base"
pass "new manifest starts its vm"

# --- an edit needing a restart restarts it (plain overwrite)
printf 'name: a\nmemory: 96M\nstop_timeout: 2s\nserial: none\n' > "$M/a.yaml"
wait_log restart ok a 30 || fail "memory edit did not restart a: $(log_details restart '' a)"
pa2=$(live_pid a) || fail "a not running after restart"
assert_ne "$pa2" "$pa" "restart must give a new pid"
wait_until 10 proc_dead "$pa" || fail "old qemu of a ($pa) still alive"
tr '\0' ' ' < "/proc/$pa2/cmdline" | grep -q -- "-m 96M" || fail "restarted a lacks -m 96M"
assert_eq "$(vm_pid base)" "$pbase" "editing a must not touch base"
pass "edit needing a restart restarts (new pid)"

# --- record-only edit saved through rename-into-place: same pid
u0=$(log_count update ok a)
printf 'name: a\nmemory: 96M\nstop_timeout: 2s\nserial: none\nrestart: always\n' > "$M/.a.yaml.new"
mv -f "$M/.a.yaml.new" "$M/a.yaml"
wait_log_n $((u0 + 1)) update ok a 20 || fail "rename-into-place record-only edit not applied"
assert_eq "$(vm_pid a)" "$pa2" "record-only edit must keep the pid"
proc_alive "$pa2" || fail "a died on a record-only edit"
assert_eq "$(log_count restart '' a)" 1 "record-only edit must not restart"
pass "record-only edit via rename-into-place updates the record, same pid"

# --- truncate-then-write with a pause longer than the settle window: the
# empty file in between is never read (no invalid/undeclared/stop), one pass.
p0=$(pass_count manifests)
r0=$(log_count restart ok base)
i0=$(log_count invalid)
n0=$(log_count undeclared)
exec 3>"$M/base.yaml"
sleep 0.8
fk base 1s "memory: 48M" >&3
exec 3>&-
wait_log_n $((r0 + 1)) restart ok base 20 || fail "truncate-then-write edit of base not applied"
pbase2=$(live_pid base) || fail "base not running after restart"
assert_ne "$pbase2" "$pbase" "memory change on base must restart it"
quiet_for 1
assert_eq "$(log_count invalid)" "$i0" "half-written (empty) file was read as invalid"
assert_eq "$(log_count undeclared)" "$n0" "half-written (empty) file was read as declaring nothing"
assert_eq "$(log_count stop '' base)" 0 "base must not be stopped by a half-written save"
assert_eq "$(pass_count manifests)" $((p0 + 1)) "passes for one slow save"
assert_eq "$(log_count restart ok base)" $((r0 + 1)) "restarts for one slow save"
pass "truncate-then-write save is read only once complete"

# --- a burst of 20 saves inside the settle window: one pass, last content wins
p0=$(pass_count manifests)
u0=$(log_count update ok base)
r0=$(log_count restart '' base)
for i in $(seq 1 20); do
	fk base "${i}s" "memory: 48M" > "$M/base.yaml"
done
wait_log_n $((u0 + 1)) update ok base 20 || fail "burst of saves not applied"
quiet_for 1.5
assert_eq "$(pass_count manifests)" $((p0 + 1)) "passes for a burst of 20 saves"
assert_eq "$(log_count update ok base)" $((u0 + 1)) "updates for a burst of 20 saves"
assert_eq "$(log_count restart '' base)" "$r0" "stop_timeout edits must not restart"
assert_eq "$(vm_pid base)" "$pbase2" "record-only burst must keep base's pid"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan after the burst must be empty (last save applied): $OUT"
pass "burst of 20 saves gives one pass"

# --- manifests in a directory created while watching (file written at once,
# racing the new directory's watch) and in a directory moved in
mkdir "$M/sub" && fk e 1s > "$M/sub/e.yaml"
wait_log create ok e 20 || fail "manifest in a new subdirectory not picked up"
live_pid e >/dev/null || fail "e not running"
mkdir -p "$T/outside/deeper"
fk g 1s > "$T/outside/deeper/g.yaml"
mv "$T/outside" "$M/moved"
wait_log create ok g 20 || fail "manifest in a directory moved in not picked up"
live_pid g >/dev/null || fail "g not running"
fk g 1s "restart: never" > "$M/moved/deeper/g.yaml"
wait_log update ok g 20 || fail "edit inside a moved-in directory not picked up (no watch on it?)"
pass "new and moved-in subdirectories are watched"

# --- an invalid edit: VM untouched, logged once per distinct content; a fix resumes
i0=$(log_count invalid kept-last-valid)
fk base 20s "memory: lots" > "$M/base.yaml"
wait_log_n $((i0 + 1)) invalid kept-last-valid "" 20 || fail "invalid edit not logged"
det=$(log_details invalid kept-last-valid | tail -n 1)
assert_contains "$det" "base.yaml:" "invalid detail names the file"
[[ "$det" =~ base\.yaml:[0-9]+:[0-9]+: ]] || fail "invalid detail lacks file:line:col: $det"
assert_contains "$det" "memory"
assert_eq "$(vm_pid base)" "$pbase2" "invalid edit must not touch the running vm"
proc_alive "$pbase2" || fail "base died on an invalid edit"
# the same invalid content saved again (rename-into-place and overwrite): not logged again
fk base 20s "memory: lots" > "$M/.base.yaml.new"
mv -f "$M/.base.yaml.new" "$M/base.yaml"
fk base 20s "memory: lots" > "$M/base.yaml"
quiet_for 1.5
assert_eq "$(log_count invalid kept-last-valid)" $((i0 + 1)) "same invalid content must be logged once"
# a different invalid content is logged again
fk base 20s "memory: heaps" > "$M/base.yaml"
wait_log_n $((i0 + 2)) invalid kept-last-valid "" 20 || fail "a different invalid content not logged"
assert_eq "$(vm_pid base)" "$pbase2" "second invalid edit must not touch the running vm"
assert_eq "$(log_count restart '' base)" "$r0" "no restart while invalid"
# the fix: a valid memory change restarts base
fk base 20s "memory: 80M" > "$M/base.yaml"
wait_log_n $((r0 + 1)) restart ok base 20 || fail "fixing the manifest did not resume work"
pbase3=$(live_pid base) || fail "base not running after the fix"
assert_ne "$pbase3" "$pbase2" "valid memory change after the fix must restart"
assert_eq "$(log_count invalid kept-last-valid)" $((i0 + 2)) "no further invalid lines after the fix"
pass "invalid edit keeps the last valid spec; a fix resumes"

# --- deleted manifest without --prune: "undeclared", left running
d0=$(log_count delete)
rm "$M/a.yaml"
wait_log undeclared kept a 20 || fail "deleting a.yaml was not reported as undeclared"
quiet_for 1
assert_eq "$(vm_pid a)" "$pa2" "undeclared vm must keep running"
proc_alive "$pa2" || fail "a was stopped without --prune"
assert_eq "$(vm_status a)" running
assert_eq "$(log_count delete)" "$d0" "no delete without --prune"
assert_eq "$(log_count stop '' a)" 0 "no stop without --prune"
pass "deleted manifest without --prune is reported and left running"
stop_watch
proc_alive "$pa2" || fail "a died when the watch stopped"
proc_alive "$pbase3" || fail "base died when the watch stopped"
pass "watch exits 0 on SIGTERM"

# --- with --prune: the undeclared a is pruned by the startup pass, and a
# manifest deleted while watching is stopped and forgotten after the settle window.
fk d 1s > "$M/d.yaml"
start_watch -f "$M" --settle "$SETTLE" --prune
assert_eq "$(log_count delete ok a)" 1 "startup pass with --prune deletes the undeclared a"
wait_until 10 proc_dead "$pa2" || fail "pruned a still running"
assert_eq "$(vm_field a name)" "" "pruned a must be forgotten"
pd=$(live_pid d) || fail "d not started"
rm "$M/d.yaml"
wait_log delete ok d 20 || fail "deleted d.yaml not pruned: $(log_details delete '' d)"
wait_until 10 proc_dead "$pd" || fail "pruned d still running"
assert_eq "$(vm_field d name)" "" "pruned d must be forgotten"
assert_eq "$(vm_pid base)" "$pbase3" "pruning must not touch base"
# with --prune, a manifest that fails to load (even one whose name cannot be
# read) prunes nothing; restoring it changes nothing
i0=$(log_count invalid kept-last-valid)
cp "$M/base.yaml" "$T/base.yaml.good"
printf 'name: base\nmemory: [\n' > "$M/base.yaml"
wait_log_n $((i0 + 1)) invalid kept-last-valid "" 20 || fail "unparseable manifest not logged as invalid"
quiet_for 1
assert_eq "$(log_count delete '' base)" 0 "an unparseable manifest must not prune its vm"
assert_eq "$(vm_pid base)" "$pbase3" "an unparseable manifest must not touch base"
cp "$T/base.yaml.good" "$M/base.yaml"
quiet_for 1
assert_eq "$(vm_pid base)" "$pbase3" "restoring the manifest must not restart base"
assert_eq "$(log_count restart '' base)$(log_count delete '' base)" 00 "restoring the manifest changes nothing"
# renaming a manifest file (same source directory) neither prunes nor restarts
mv "$M/base.yaml" "$M/base-renamed.yaml"
quiet_for 1
assert_eq "$(log_count delete '' base)" 0 "renaming base's manifest must not prune it"
assert_eq "$(vm_pid base)" "$pbase3" "renaming base's manifest must not restart it"
pass "with --prune, invalid or renamed manifests prune nothing"

# a removed subdirectory removes its manifests: pruned as well
pe=$(live_pid e) || fail "e not running"
rm -r "$M/sub"
wait_log delete ok e 20 || fail "manifest in a removed subdirectory not pruned"
wait_until 10 proc_dead "$pe" || fail "pruned e still running"
stop_watch
pass "deleted manifest with --prune is stopped and forgotten"
