#!/usr/bin/env bash
# `maqet import --python-db`: a Python-maqet-style instances.db and config
# files built here (python3's sqlite3 module: python3 is there wherever meson
# is).  Tricky rows: unknown keys, no config at all, a config_path that no
# longer exists (found again with --config-dir), duplicate-looking names, a
# config that does not validate.  The good ones are written, the bad ones
# reported with the reason; the database and everything outside OUTDIR are
# left untouched; `maqet plan -f OUTDIR` then shows a sensible plan.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || fail "python3 missing"

PY=$T/py
mkdir -p "$PY/configs" "$PY/moved"
cat > "$PY/configs/web.yaml" <<'YAML'
binary: qemu-system-x86_64
memory: 64M
cpu: 1
machine_type: pc
log_file: /var/log/maqet/web.log
storage:
  - name: hdd
    type: qcow2
    size: 64M
  - name: data
    type: raw
    file: disks/web-data.img
    size: 1M
arguments:
  - rtc: {base: utc}
YAML
# its recorded config_path no longer exists; the file now lives in moved/
cat > "$PY/moved/old.yaml" <<'YAML'
memory: 96M
enable_kvm: true
YAML
python3 - "$PY" <<'PYEOF'
import json, sqlite3, sys
py = sys.argv[1]
db = sqlite3.connect(py + "/instances.db")
db.execute("""CREATE TABLE vm_instances (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL,
  config_path TEXT, config_data TEXT, status TEXT, pid INTEGER, socket_path TEXT,
  created_at TIMESTAMP, updated_at TIMESTAMP)""")
rows = [
  ("id-web", "web", py + "/configs/web.yaml", None, "running", 4242),
  ("id-db", "db", None, json.dumps({"memory": "128M", "cdrom": "/iso/debian.iso",
     "storage": [{"name": "system", "type": "qcow2", "size": "1G"}]}), "stopped", None),
  ("id-web2", "Web", None, json.dumps({"memory": "64M"}), "created", None),
  ("id-old", "old", "/nonexistent/configs/old.yaml", None, "stopped", None),
  ("id-none", "empty", None, None, "created", None),
  ("id-gone", "gone", py + "/configs/gone.yaml", None, "stopped", None),
  ("id-bad", "Bad_VM", None, json.dumps({"memory": "lots"}), "stopped", None),
  ("id-sp", "My VM", None, json.dumps({"memory": "64M"}), "stopped", None),
]
db.executemany("INSERT INTO vm_instances VALUES (?,?,?,?,?,?,NULL,datetime('now'),datetime('now'))", rows)
db.commit()
db.close()
PYEOF
snapshot() { (cd "$PY" && find . -printf '%p %s %T@\n' | sort && sha256sum instances.db); }
before=$(snapshot)

OUTD=$T/out
run_rc rc mq import --python-db "$PY/instances.db" --config-dir "$PY/moved" -o "$OUTD"
echo "$OUT"
assert_eq "$rc" 1 "import with unconvertible vms exits 1"
assert_eq "$(snapshot)" "$before" "the python maqet's files must not change"
for n in web db old my-vm; do [ -f "$OUTD/$n.yaml" ] || fail "$n.yaml not written"; done
assert_eq "$(ls "$OUTD" | wc -l)" 4 "exactly the convertible vms are written"
assert_contains "$OUT" "4 vms imported into $OUTD, 4 failed"
assert_contains "$OUT" "cannot import vm 'Web': its maqet name 'web' is already taken by vm 'web'"
assert_contains "$OUT" "cannot import vm 'empty': it has neither config_data nor config_path"
assert_contains "$OUT" "cannot import vm 'gone': it has no config_data and its config_path '$PY/configs/gone.yaml' does not exist (nor in --config-dir)"
assert_contains "$OUT" "cannot import vm 'Bad_VM': the converted manifest does not validate: $OUTD/bad-vm.yaml:"
assert_contains "$OUT" "'memory' must be a size"
assert_contains "$OUT" "vm 'My VM' is called 'my-vm' in maqet"
# ignored keys: on stderr per vm and as comments
assert_contains "$OUT" "vm 'web': key ignored by the python maqet, kept as a comment: machine_type: pc"
assert_contains "$OUT" "vm 'web': key ignored by the python maqet, kept as a comment: log_file: /var/log/maqet/web.log"
assert_contains "$OUT" "vm 'db': key ignored by the python maqet, kept as a comment: cdrom: \"/iso/debian.iso\""
assert_contains "$OUT" "vm 'old': key ignored by the python maqet, kept as a comment: enable_kvm: true"
assert_contains "$OUT" "vm 'web' was running under the python maqet, pid 4242"
w=$(cat "$OUTD/web.yaml")
assert_contains "$w" "# Imported by 'maqet import' from the python maqet database $PY/instances.db"
assert_contains "$w" "# vm 'web' (id id-web), last status running, pid 4242"
assert_contains "$w" "name: web"
assert_contains "$w" "state: running"
assert_contains "$w" "file: \"/tmp/maqet-id-web-hdd.qcow2\""
assert_contains "$w" "file: \"$PY/configs/disks/web-data.img\""
assert_contains "$w" "#   machine_type: pc"
assert_contains "$w" "#   log_file: /var/log/maqet/web.log"
d=$(cat "$OUTD/db.yaml")
assert_contains "$d" "state: stopped"
assert_contains "$d" "file: \"/tmp/maqet-id-db-system.qcow2\""
assert_contains "$d" "#   cdrom: \"/iso/debian.iso\""
o=$(cat "$OUTD/old.yaml")
assert_contains "$o" "# config from $PY/moved/old.yaml"
pass "import writes the convertible vms and reports the others"

# the imported set plans sensibly: everything new, web to be started
run_rc rc mq validate -f "$OUTD"
assert_eq "$rc" 0 "imported manifests validate: $OUT"
run_rc rc mq plan -f "$OUTD"
assert_eq "$rc" 2 "plan of the imported set: $OUT"
assert_contains "$OUT" "+ web"
assert_contains "$OUT" "new vm, desired state stopped: record only"
assert_contains "$OUT" "4 to create"
[ -d "$STATE" ] && fail "plan must not create the state dir"
pass "plan -f OUTDIR shows a sensible plan"

# again: nothing overwritten
cp "$OUTD/web.yaml" "$T/web.before"
echo "# edited" >> "$OUTD/web.yaml"
run_rc rc mq import --python-db "$PY/instances.db" --config-dir "$PY/moved" -o "$OUTD"
assert_eq "$rc" 1 "second import"
assert_contains "$OUT" "cannot import vm 'web': $OUTD/web.yaml already exists (not overwritten"
assert_contains "$(tail -n 1 "$OUTD/web.yaml")" "# edited"
pass "existing manifests are never overwritten"

# bad input changes nothing
run_rc rc mq import --python-db "$T/nope.db" -o "$T/out2"
assert_eq "$rc" 1 "missing database"
assert_contains "$OUT" "cannot read python maqet database '$T/nope.db'"
[ -e "$T/out2" ] && fail "a failed import must not create OUTDIR"
printf 'not a database' > "$T/junk.db"
run_rc rc mq import --python-db "$T/junk.db" -o "$T/out2"
assert_eq "$rc" 1 "junk database"
[ -e "$T/out2" ] && fail "a failed import must not create OUTDIR"
assert_eq "$(cat "$T/junk.db")" "not a database" "junk database left as it was"
python3 -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('create table other (x)')" "$T/other.db"
run_rc rc mq import --python-db "$T/other.db" -o "$T/out2"
assert_eq "$rc" 1 "database without vm_instances"
assert_contains "$OUT" "no such table: vm_instances"
run_rc rc mq import -o "$T/out2"
assert_eq "$rc" 64 "no --python-db is a usage error"
run_rc rc mq import --python-db "$PY/instances.db"
assert_eq "$rc" 64 "no -o is a usage error"
run_rc rc mq import --python-db "$PY/instances.db" -o "$T/no/such/parent"
assert_eq "$rc" 1 "OUTDIR whose parent is missing"
[ -e "$T/no" ] && fail "only OUTDIR itself may be created"
assert_eq "$(snapshot)" "$before" "the python maqet's files must not change"
pass "bad input is a clear error and changes nothing"
