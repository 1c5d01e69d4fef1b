#!/usr/bin/env bash
# maqet export nomad|incus|kubevirt: every example and a set of tricky
# manifests through all three exporters; the output validated offline
# (tests/export/check.py: the vendored KubeVirt schema, the Nomad job
# structure with the qemu driver's nine config keys, Incus's documented
# option names), specific mapped values, the lossiness report, --strict,
# -o DIR and stdout, and nothing written for a bad manifest.
source "$(dirname "$0")/lib.sh"
CHECK="$MQ_SRC/tests/export/check.py"
python3 -c 'import jsonschema, yaml' 2>/dev/null || fail "python3-jsonschema and python3-yaml are needed (.ci/install-deps)"
y2j() { # YAML documents -> one JSON array (for jq)
	python3 -c 'import sys, yaml, json; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)' "$1"
}

# ---- every example, all three engines, stdout and -o DIR --------------------
# the examples' vms as validate names them ("N vms valid: a, b, ...")
line=$(mq validate -f "$MQ_SRC/examples") || fail "examples do not validate"
read -r -a ex_vms <<<"$(sed -n 's/^[0-9]* vms\{0,1\} valid: //p' <<<"$line" | tr -d ',')"
n_ex=${#ex_vms[@]}
[ "$n_ex" -ge 5 ] || fail "examples name only $n_ex vms: $line"
for e in nomad incus kubevirt; do
	mq export "$e" -f "$MQ_SRC/examples" >"$T/ex.$e" 2>"$T/ex.$e.report" || fail "export $e of the examples: $(cat "$T/ex.$e.report")"
	out=$(python3 "$CHECK" "$e" "$T/ex.$e") || fail "examples as $e do not validate: $out"
	assert_eq "$out" "ok: $n_ex documents" "examples as $e"
	mq export "$e" -f "$MQ_SRC/examples" -o "$T/dir.$e" >"$T/dir.$e.list" 2>/dev/null || fail "export $e -o"
	files=()
	for vm in "${ex_vms[@]}"; do
		f=$T/dir.$e/$vm.$e.$([ "$e" = nomad ] && echo json || echo yaml)
		[ -f "$f" ] || fail "no file $f"
		grep -qxF "$f" "$T/dir.$e.list" || fail "$f not listed on stdout"
		files+=("$f")
	done
	out=$(python3 "$CHECK" "$e" "${files[@]}") || fail "files of $e do not validate: $out"
	assert_eq "$out" "ok: $n_ex documents" "files of $e"
	assert_eq "$(find "$T/dir.$e" -type f | wc -l)" "$n_ex" "one file per vm for $e"
	[ -z "$(find "$T/dir.$e" -name '.*')" ] || fail "temporary files left in $T/dir.$e"
	pass "examples through $e"
done
assert_eq "$(jq 'length' "$T/ex.nomad")" "$n_ex" "stdout nomad is one JSON array of one job per vm"
assert_eq "$(grep -c '^---$' "$T/ex.kubevirt")" "$n_ex" "kubevirt stdout: one YAML document per vm"
assert_eq "$(jq -r '.[] | select(.Job.ID == "web") | .Job.TaskGroups[0].Tasks[0].Config.image_path' "$T/ex.nomad")" \
	"$STATE/disks/web-root.qcow2" "a disk without file: the default location of this state dir"
# `-` is stdout too
mq export kubevirt -f "$MQ_SRC/examples/vault.yaml" -o - >"$T/dash" 2>/dev/null
assert_eq "$(y2j "$T/dash" | jq -r '.[0].metadata.name')" vault "-o - writes to stdout"

# ---- tricky manifests --------------------------------------------------------
X=$T/tricky; mkdir -p "$X/img"
truncate -s 1M "$X/img/base.qcow2" "$X/img/sys.qcow2" "$X/img/data.raw" "$X/img/child.qcow2"
mkdir -p "$X/share"
cat >"$X/twodisk.yaml" <<'Y'
name: twodisk
memory: 256M
storage:
  - name: sys
    file: img/sys.qcow2
    interface: virtio
  - name: data
    type: raw
    file: img/data.raw
    interface: sata
network:
  - type: user
    forward: ["tcp:22080:80", "udp:25353:53"]
Y
cat >"$X/chain.yaml" <<'Y'
name: chain
memory: 128M
stop_timeout: 1500ms
placement: {host: node-b}
storage:
  - name: root
    file: img/child.qcow2
    backing_file: img/base.qcow2
    backing_format: qcow2
snapshots:
  named: [golden]
  schedule: {every: 6h, keep: 2}
Y
cat >"$X/share.yaml" <<'Y'
name: share
memory: 128M
placement: {host: node-b}   # with chain: maqet refuses depends_on across hosts
depends_on: [twodisk, chain]
storage:
  - name: root
    file: img/sys.qcow2
  - name: src
    type: virtfs
    path: share
    mount_tag: srctag
    readonly: true
args: ["-device", "virtio-rng-pci", "-smbios", "type=1,product=a b"]
arguments:
  - rtc: {base: utc}
Y
cat >"$X/never.yaml" <<'Y'
name: never
state: stopped
restart: never
memory: 1G
cpu: 2
machine: q35
accel: tcg
storage:
  - name: root
    file: img/sys.qcow2
    interface: scsi
network:
  - type: user
    forward: ["udp:25354:53"]
Y
cat >"$X/exact.yaml" <<'Y'
name: exact
memory: 64M
machine: q35
restart: always
serial: none
stop_timeout: 2s
Y
run_rc rc mq validate -f "$X"
assert_eq "$rc" 0 "tricky manifests are valid: $OUT"
for e in nomad incus kubevirt; do
	mq export "$e" -f "$X" --report json >"$T/x.$e" 2>"$T/x.$e.json" || fail "export $e of tricky manifests: $(cat "$T/x.$e.json")"
	out=$(python3 "$CHECK" "$e" "$T/x.$e") || fail "tricky manifests as $e do not validate: $out"
	assert_eq "$out" "ok: 5 documents" "tricky as $e"
	# the report: every vm has a row for every manifest key of the field table
	keys=$(sed -n 's/^\tROW(\([a-z_]*\),.*/\1/p' "$MQ_SRC/specs/fields.h" | sort | tr '\n' ' ')
	[ -n "$keys" ] || fail "no keys read from specs/fields.h"
	for vm in chain exact never share twodisk; do
		got=$(jq -r --arg v "$vm" '[.[] | select(.vm == $v) | .key] | unique | .[]' "$T/x.$e.json" | sort | tr '\n' ' ')
		assert_eq "$got" "$keys" "$e report rows of $vm cover every manifest key"
	done
	assert_eq "$(jq '[.[] | select(.mapping != "exact" and .mapping != "approximate" and .mapping != "lost")] | length' "$T/x.$e.json")" 0 "mapping values"
	pass "tricky manifests through $e, report complete"
done
row() { # engine vm key item -> mapping
	jq -r --arg v "$2" --arg k "$3" --arg i "$4" '.[] | select(.vm == $v and .key == $k and ((.item // "") == $i)) | .mapping' "$T/x.$1.json"
}

# nomad: specific values
J=$T/x.nomad
job() { jq -c --arg v "$1" ".[] | select(.Job.ID == \$v) | .Job | $2" "$J"; }
assert_eq "$(job twodisk '.TaskGroups[0].Tasks[0].Config.image_path')" "\"$X/img/sys.qcow2\"" "nomad image_path: the first disk"
assert_eq "$(job twodisk '.TaskGroups[0].Tasks[0].Config.drive_interface')" '"virtio"' "nomad drive_interface"
args=$(job twodisk '.TaskGroups[0].Tasks[0].Config.args')
assert_contains "$args" "\"file=$X/img/data.raw,format=raw,if=none,id=drive-data\"" "nomad: the second disk in args"
assert_contains "$args" '"user,id=net0,hostfwd=tcp::22080-:80,hostfwd=udp::25353-:53"' "nomad: forwards as hostfwd"
assert_eq "$(job twodisk '[.TaskGroups[0].Networks[0].ReservedPorts[].Value]')" '[22080,25353]' "nomad: host ports reserved"
assert_eq "$(row nomad twodisk storage data)" approximate "nomad: a second disk is approximate"
assert_eq "$(row nomad twodisk storage sys)" exact "nomad: the first qcow2 disk is exact"
assert_eq "$(job chain '.Constraints')" '[{"LTarget":"${node.unique.name}","RTarget":"node-b","Operand":"="}]' "nomad: placement constraint"
assert_eq "$(job chain '.TaskGroups[0].Tasks[0].KillTimeout')" 1500000000 "nomad: KillTimeout in ns"
assert_eq "$(row nomad chain snapshots '')" lost "nomad: snapshots lost"
assert_eq "$(job never '.Stop')" true "nomad: stopped state"
assert_eq "$(job never '.TaskGroups[0].RestartPolicy.Attempts')" 0 "nomad: restart never"
assert_eq "$(job never '.TaskGroups[0].Tasks[0].Resources')" '{"MemoryMB":1024,"CPU":2000}' "nomad resources"
assert_eq "$(job never '.TaskGroups[0].Tasks[0].Config | [.accelerator, .machine_type]')" '["tcg","q35"]' "nomad accel/machine"
assert_contains "$(job never '.TaskGroups[0].Tasks[0].Config.args')" '"-smp","2"' "nomad: -smp"
assert_eq "$(row nomad never cpu '')" approximate "nomad: cpu MHz is approximate"
sargs=$(job share '.TaskGroups[0].Tasks[0].Config.args')
assert_contains "$sargs" "\"local,path=$X/share,mount_tag=srctag,security_model=mapped-xattr,readonly=on\"" "nomad: virtfs in args"
assert_contains "$sargs" '"-smbios","type=1,product=a b"' "nomad: raw args verbatim"
assert_contains "$sargs" '"-rtc","base=utc"' "nomad: arguments rendered"
assert_eq "$(row nomad share depends_on '')" lost "nomad: depends_on lost"
assert_eq "$(job exact '.TaskGroups[0].Tasks[0].Config | [.image_path, .drive_interface]')" '["/dev/null","none"]' "nomad: a diskless vm"
pass "nomad values and report"

# incus: specific values
y2j "$T/x.incus" >"$T/x.incus.j"
inc() { jq -c --arg v "$1" ".[] | select(.description | startswith(\"maqet vm \" + \$v + \" \")) | $2" "$T/x.incus.j"; }
assert_eq "$(inc twodisk '.devices["fwd-tcp-22080"]')" \
	'{"type":"proxy","listen":"tcp:0.0.0.0:22080","connect":"tcp:0.0.0.0:80","nat":"true"}' "incus: tcp forward"
assert_eq "$(inc twodisk '.devices["fwd-udp-25353"].connect')" '"udp:0.0.0.0:53"' "incus: udp forward"
assert_eq "$(inc share '.devices["fs-src"]')" \
	"{\"type\":\"disk\",\"source\":\"$X/share\",\"path\":\"/mnt/srctag\",\"io.bus\":\"9p\",\"readonly\":\"true\"}" "incus: virtfs share"
assert_eq "$(inc share '.config["raw.qemu"]')" \
	"\"-device virtio-rng-pci -smbios 'type=1,product=a b' -rtc base=utc\"" "incus: raw.qemu quoted"
assert_eq "$(inc chain '.config["snapshots.schedule"]')" '"0 */6 * * *"' "incus: snapshot schedule"
assert_eq "$(inc never '[.config["boot.autostart","boot.autorestart","limits.memory","limits.cpu"]]')" \
	'["false","false","1GiB","2"]' "incus: state, restart, limits"
assert_eq "$(row incus chain snapshots named)" lost "incus: named snapshots lost"
assert_eq "$(row incus chain placement '')" approximate "incus: placement is --target"
pass "incus values and report"

# kubevirt: specific values
y2j "$T/x.kubevirt" >"$T/x.kubevirt.j"
kv() { jq -c --arg v "$1" ".[] | select(.metadata.name == \$v) | $2" "$T/x.kubevirt.j"; }
assert_eq "$(kv never .spec.runStrategy)" '"Halted"' "kubevirt: stopped -> Halted"
assert_eq "$(kv exact .spec.runStrategy)" '"Always"' "kubevirt: always -> Always"
assert_eq "$(kv twodisk .spec.runStrategy)" '"RerunOnFailure"' "kubevirt: on-failure -> RerunOnFailure"
assert_eq "$(kv never .spec.template.spec.domain.devices.interfaces)" \
	'[{"name":"default","masquerade":{},"ports":[{"port":53,"protocol":"UDP"}]}]' "kubevirt: masquerade + udp port"
assert_eq "$(kv chain .spec.template.spec.nodeSelector)" '{"kubernetes.io/hostname":"node-b"}' "kubevirt: nodeSelector"
assert_eq "$(kv chain .spec.template.spec.terminationGracePeriodSeconds)" 2 "kubevirt: grace period rounded up"
assert_eq "$(kv twodisk .spec.template.spec.domain.devices.disks)" \
	'[{"name":"sys","disk":{"bus":"virtio"},"bootOrder":1},{"name":"data","disk":{"bus":"sata"},"bootOrder":2}]' "kubevirt: disks"
assert_eq "$(kv twodisk '.spec.template.spec.volumes[1]')" '{"name":"data","persistentVolumeClaim":{"claimName":"twodisk-data"}}' "kubevirt: volumes"
assert_eq "$(kv never .spec.template.spec.domain.memory)" '{"guest":"1Gi"}' "kubevirt: memory"
assert_eq "$(kv share .spec.template.spec.domain.devices.filesystems)" null "kubevirt: no filesystem for a virtfs share"
assert_eq "$(row kubevirt chain storage root.backing_file)" lost "kubevirt: backing chain lost"
assert_eq "$(row kubevirt share storage src)" lost "kubevirt: virtfs lost"
assert_eq "$(row kubevirt share args '')" lost "kubevirt: raw args lost"
assert_eq "$(row kubevirt exact network '')" exact "kubevirt: no network is exact"
pass "kubevirt values and report"

# ---- --strict ---------------------------------------------------------------
run_rc rc mq export kubevirt -f "$X/exact.yaml" --strict
assert_eq "$rc" 0 "--strict with only exact mappings: $OUT"
run_rc rc mq export nomad -f "$X" --strict -o "$T/strict"
assert_eq "$rc" 1 "--strict with lossy mappings"
assert_contains "$OUT" "with --strict" "--strict says why"
assert_contains "$OUT" "storage[data]" "--strict still prints the report"
[ ! -e "$T/strict" ] || fail "--strict failure wrote $(ls "$T/strict")"
pass "--strict"

# ---- bad manifests: every error, exit 1, nothing written ---------------------
mkdir -p "$T/bad"
printf 'name: ok1\nmemory: 64M\n' >"$T/bad/a.yaml"
printf 'name: bad1\nmemroy: 64M\n' >"$T/bad/b.yaml"
printf 'name: bad2\ncpu: many\n' >"$T/bad/c.yaml"
for e in nomad incus kubevirt; do
	run_rc rc mq export "$e" -f "$T/bad" -o "$T/badout.$e"
	assert_eq "$rc" 1 "bad manifest, $e"
	assert_contains "$OUT" "b.yaml:2:1: unknown key 'memroy'" "$e: first error located"
	assert_contains "$OUT" "c.yaml:2" "$e: second error reported too"
	[ ! -e "$T/badout.$e" ] || fail "$e wrote files for a bad manifest set"
done
run_rc rc mq export nomad -f "$T/bad"
[ "$rc" = 1 ] && [[ $OUT != *'"Job"'* ]] || fail "stdout got a job for a bad set: $OUT"
pass "bad manifests write nothing"

# ---- usage -------------------------------------------------------------------
run_rc rc mq export docker -f "$X"
assert_eq "$rc" 64 "unknown engine"
assert_contains "$OUT" "unknown engine 'docker'" "unknown engine message"
run_rc rc mq export nomad
assert_eq "$rc" 64 "no -f"
run_rc rc mq export -f "$X"
assert_eq "$rc" 64 "no engine"
run_rc rc mq export nomad -f "$X" --report yaml
assert_eq "$rc" 64 "bad --report"
pass "usage errors"

# ---- help, completion ----------------------------------------------------------
assert_contains "$(mq help)" "export" "help lists export"
assert_contains "$(mq help --man)" "maqet export nomad|incus|kubevirt" "the man page has export"
assert_eq "$(mq __complete options export | sort | tr '\n' ' ')" "--file --help --output --report --strict -f -h -o " "export options offered"
assert_eq "$(mq __complete values export --report | tr '\n' ' ')" "table json " "--report values"
pass "help and completion"
