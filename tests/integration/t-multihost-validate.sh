#!/usr/bin/env bash
# Pinned multi-host mode, without QEMU doing anything interesting:
# hosts.yaml validation, unknown hosts, host ports per host, `plan --host`
# showing VMs placed elsewhere, and `apply --host` leaving them alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/watchlib.sh"

# --- hosts.yaml errors, located ----------------------------------------
mkdir -p "$M/bad"
cat > "$M/bad/hosts.yaml" <<'Y'
hosts: [a, b, a, "bad host"]
shared_storage: [relative/dir]
colour: blue
Y
vm_yaml v1 > "$M/bad/v1.yaml"
run_rc rc mq validate -f "$M/bad"
assert_eq "$rc" 1 "invalid hosts.yaml fails validate"
assert_contains "$OUT" "$M/bad/hosts.yaml:1:15: duplicate host 'a' in 'hosts'"
assert_contains "$OUT" "$M/bad/hosts.yaml:1:18: a host in 'hosts' must be a host name"
assert_contains "$OUT" "$M/bad/hosts.yaml:2:18: a directory in 'shared_storage' must be an absolute path"
assert_contains "$OUT" "$M/bad/hosts.yaml:3:1: unknown key 'colour' in hosts.yaml"
printf 'shared_storage: [/srv]\n' > "$M/bad/hosts.yaml"
run_rc rc mq validate -f "$M/bad"
assert_eq "$rc" 1 "hosts.yaml without hosts"
assert_contains "$OUT" "hosts.yaml:1:1: hosts.yaml needs 'hosts'"
printf 'hosts: []\n' > "$M/bad/hosts.yaml"
run_rc rc mq validate -f "$M/bad"
assert_eq "$rc" 1 "empty hosts list"
assert_contains "$OUT" "hosts.yaml:1:8: 'hosts' must be a non-empty list"
pass "hosts.yaml errors are located"

# --- unknown host, with a did-you-mean ---------------------------------
mkdir -p "$M/fleet"
printf 'hosts: [lab1, lab2]\n' > "$M/fleet/hosts.yaml"
vm_yaml v1 'placement: {host: lab3}' > "$M/fleet/v1.yaml"
vm_yaml v2 'placement:' '  host: elsewhere' > "$M/fleet/v2.yaml"
run_rc rc mq validate -f "$M/fleet"
assert_eq "$rc" 1 "unknown hosts fail"
assert_contains "$OUT" "$M/fleet/v1.yaml:5:19: unknown host 'lab3' (did you mean 'lab1'? hosts.yaml lists lab1, lab2)"
assert_contains "$OUT" "$M/fleet/v2.yaml:6:9: unknown host 'elsewhere' (hosts.yaml lists lab1, lab2)"
# hosts.yaml is not read as a vm manifest
assert_not_contains "$OUT" "hosts.yaml:"
# a list is refused with a pointer to export (the field itself)
vm_yaml v1 'placement: {host: [lab1, lab2]}' > "$M/fleet/v1.yaml"
vm_yaml v2 'placement: {host: lab2}' > "$M/fleet/v2.yaml"
run_rc rc mq validate -f "$M/fleet"
assert_eq "$rc" 1 "a list of hosts fails"
assert_contains "$OUT" "must be exactly one host name, got a list"
# without hosts.yaml any host name is accepted
rm "$M/fleet/hosts.yaml"
vm_yaml v1 'placement: {host: anything.example}' > "$M/fleet/v1.yaml"
run_rc rc mq validate -f "$M/fleet"
assert_eq "$rc" 0 "no inventory: any host ($OUT)"
pass "unknown hosts are located errors, with a did-you-mean"

# --- host ports: only vms that can share a host conflict ---------------
mkdir -p "$M/ports"
printf 'hosts: [a, b]\n' > "$M/ports/hosts.yaml"
fwd='network: [{type: user, forward: ["tcp:2222:22"]}]'
vm_yaml pa "$fwd" 'placement: {host: a}' > "$M/ports/pa.yaml"
vm_yaml pb "$fwd" 'placement: {host: b}' > "$M/ports/pb.yaml"
run_rc rc mq validate -f "$M/ports"
assert_eq "$rc" 0 "the same port on two hosts is fine ($OUT)"
vm_yaml pa2 "$fwd" 'placement: {host: a}' > "$M/ports/pa2.yaml"
run_rc rc mq validate -f "$M/ports"
assert_eq "$rc" 1 "the same port twice on host a"
assert_contains "$OUT" "pa2.yaml:5:"
assert_contains "$OUT" "host port tcp:2222 is already forwarded by vm 'pa'"
assert_not_contains "$OUT" "by vm 'pb'"
rm "$M/ports/pa2.yaml"
vm_yaml free "$fwd" > "$M/ports/free.yaml"   # unplaced: may run on a or b
run_rc rc mq validate -f "$M/ports"
assert_eq "$rc" 1 "an unplaced vm conflicts with every host"
assert_contains "$OUT" "pa.yaml:5:"
assert_contains "$OUT" "pb.yaml:5:"
assert_contains "$OUT" "already forwarded by vm 'free'"
pass "host ports are unique per host"

# --- plan --host / apply --host ----------------------------------------
mkdir -p "$M/run"
printf 'hosts: [a, b]\n' > "$M/run/hosts.yaml"
make_idle_guest "$M/run/ga.img"
cp "$M/run/ga.img" "$M/run/gb.img"
cp "$M/run/ga.img" "$M/run/gu.img"
idle_yaml va ga.img 'placement: {host: a}' > "$M/run/va.yaml"
idle_yaml vb gb.img 'placement: {host: b}' > "$M/run/vb.yaml"
idle_yaml vu gu.img > "$M/run/vu.yaml"
run_rc rc mq plan -f "$M/run" --host a
assert_eq "$rc" 2 "plan shows changes ($OUT)"
assert_contains "$OUT" "^ vb    elsewhere (host b)"
assert_contains "$OUT" "+ va"
assert_contains "$OUT" "+ vu"
assert_contains "$OUT" "Elsewhere: 1 vm placed on other hosts."
run_rc rc mq plan -f "$M/run" --host a -o json
assert_eq "$(jq -r '.elsewhere[0].name + " " + .elsewhere[0].host' <<<"$OUT")" "vb b" "json elsewhere"
assert_eq "$(jq -r '[.items[].name] | join(",")' <<<"$OUT")" "va,vu" "json items"
run_rc rc mq plan -f "$M/run" --host c
assert_eq "$rc" 1 "--host not in hosts.yaml"
assert_contains "$OUT" "unknown host 'c' given with --host (hosts.yaml lists a, b)"
run_rc rc mq plan -f "$M/run" --host 'no way'
assert_eq "$rc" 64 "invalid --host"

run_rc rc mq apply -f "$M/run" --host a
assert_eq "$rc" 0 "apply --host a ($OUT)"
assert_eq "$(vm_status va)" running "va runs on a"
assert_eq "$(vm_status vu)" running "unplaced vu runs on a"
assert_eq "$(mq status -o json | jq -r '[.[].name] | join(",")')" "va,vu" "vb is not recorded here"
! pgrep -f -- "$RT/vb.qmp" >/dev/null || fail "vb was started on host a"
run_rc rc mq apply -f "$M/run" --host a
assert_eq "$rc" 0 "no-op apply"
assert_contains "$OUT" "No changes: 2 vms up to date, 1 placed on other hosts."
pass "plan/apply --host act on this host's vms and unplaced ones only"
