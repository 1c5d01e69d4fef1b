#!/usr/bin/env bash
# Missing images are created with qemu-img (never overwritten); images and
# shares in system directories are refused before anything happens.
source "$(dirname "$0")/lib.sh"
mkdir -p "$M/img"
printf 'not an image, must survive\n' > "$M/img/existing.qcow2"
cat > "$M/d.yaml" <<YAML
name: d
memory: 64M
serial: none
storage:
  - {name: root, size: 32M}
  - {name: rel, file: img/rel.qcow2, size: 16M}
  - {name: raw, type: raw, file: img/r.img, size: 8M, interface: ide}
  - {name: keep, file: img/existing.qcow2, size: 16M, interface: none}
YAML
# qemu will refuse the non-image file; we only check it is not overwritten
run_rc rc mq apply -f "$M"
[ -f "$STATE/disks/d-root.qcow2" ] || fail "default image not created"
head -c 4 "$STATE/disks/d-root.qcow2" | od -An -c | grep -q 'Q   F   I' || fail "default image is not qcow2"
[ -f "$M/img/rel.qcow2" ] || fail "relative image not created"
assert_eq "$(stat -c %s "$M/img/r.img")" $((8 * 1024 * 1024)) "raw image size"
assert_eq "$(cat "$M/img/existing.qcow2")" "not an image, must survive" "existing file overwritten"
assert_eq "$(count_events d disk.create ok)" 3 "disk.create events"
pass "images created, existing file untouched"

# Dangerous paths refused at validation: nothing created, no state.
S2=$T/state2
ln -s /etc "$M/etc-link"
cat > "$T/danger.yaml" <<YAML
name: danger
storage:
  - {name: a, file: /etc/maqet-test.qcow2, size: 16M}
  - {name: b, file: $M/etc-link/x.qcow2, size: 16M}
  - {name: c, file: /var/lib/x.qcow2, size: 16M}
  - {name: s, type: virtfs, path: /, mount_tag: root}
YAML
run_rc rc mq --state-dir "$S2" apply -f "$T/danger.yaml"
assert_eq "$rc" 1 "dangerous paths refused"
assert_contains "$OUT" "danger.yaml:3:"
assert_contains "$OUT" "danger.yaml:4:"
assert_contains "$OUT" "danger.yaml:5:"
assert_contains "$OUT" "danger.yaml:6:"
assert_contains "$OUT" "system directory"
[ -e /etc/maqet-test.qcow2 ] && fail "image created in /etc"
[ -e "$S2" ] && fail "state dir created"
ok_var=$T/vt
mkdir -p "$ok_var"
printf 'name: fine\nstorage: [{name: a, file: %s/a.qcow2, size: 1M}]\n' "$ok_var" > "$T/fine.yaml"
run_rc rc mq validate -f "$T/fine.yaml"
assert_eq "$rc" 0 "a path outside system dirs is fine: $OUT"
pass "dangerous paths refused"
