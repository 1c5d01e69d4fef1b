#!/usr/bin/env bash
# Events carry the user and the git commit of the manifest source when the
# source is inside a git work tree (and none otherwise).
source "$(dirname "$0")/lib.sh"
command -v git >/dev/null || fail "git is required (installed by .ci/install-deps)"
mkdir -p "$M/repo" "$M/plain"
vm_yaml gitvm "state: stopped" > "$M/repo/gitvm.yaml"
vm_yaml plainvm "state: stopped" > "$M/plain/plainvm.yaml"
git -C "$M/repo" init -q
git -C "$M/repo" -c user.email=t@example.com -c user.name=t add gitvm.yaml
git -C "$M/repo" -c user.email=t@example.com -c user.name=t commit -q -m init
head=$(git -C "$M/repo" rev-parse HEAD)
run_rc rc mq apply -f "$M/repo" -f "$M/plain"
assert_eq "$rc" 0 "$OUT"
assert_eq "$(mq events gitvm -o json | jq -r '.[0].git_commit')" "$head" "git commit in event"
assert_eq "$(mq events plainvm -o json | jq -r '.[0].git_commit')" null "no commit outside git"
assert_eq "$(mq events gitvm -o json | jq -r '.[0].user')" "$(id -un)" "user name in event"
assert_eq "$(mq events gitvm -o json | jq -r '.[0].uid')" "$(id -u)" "uid in event"
# a new commit is picked up by the next mutation
vm_yaml gitvm "state: stopped" "restart: never" > "$M/repo/gitvm.yaml"
git -C "$M/repo" -c user.email=t@example.com -c user.name=t commit -q -am change
head2=$(git -C "$M/repo" rev-parse HEAD)
run_rc rc mq apply -f "$M/repo" -f "$M/plain"
assert_eq "$rc" 0 "$OUT"
assert_eq "$(mq events gitvm -o json | jq -r '[.[] | select(.action == "update")][0].git_commit')" "$head2"
pass "events record user and git commit"
