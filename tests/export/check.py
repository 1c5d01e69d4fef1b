#!/usr/bin/env python3
"""Offline checks of `maqet export` output (tests/integration/t-export.sh).

  check.py nomad FILE...  every job: the documented Nomad API job structure
                          and only the qemu driver's nine config keys
  check.py incus FILE     every instance: keys against Incus's documented
                          instance options and disk/proxy device options
  check.py kubevirt FILE  every VirtualMachine against the vendored JSON schema

Each FILE holds one document (as written with -o DIR) or the stdout form (a JSON
array of jobs; YAML documents separated by ---).  Prints one line per problem
and exits 1 when there is any; prints "ok: N documents" otherwise.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
problems = []


def bad(doc, msg):
    problems.append(f"{doc}: {msg}")


def load(engine, path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if engine == "nomad":
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    import yaml
    return [d for d in yaml.safe_load_all(text) if d is not None]


# ---- nomad: facts from the Nomad API job documentation ----------------------
JOB_KEYS = {"ID", "Name", "Type", "Datacenters", "Meta", "TaskGroups", "Constraints", "Stop", "Region",
            "Namespace", "Priority", "Affinities", "Spreads", "Update", "Periodic", "ParentID"}
GROUP_KEYS = {"Name", "Count", "Tasks", "RestartPolicy", "ReschedulePolicy", "Networks", "Constraints",
              "Meta", "EphemeralDisk", "Update", "Services", "Volumes", "Affinities", "Spreads"}
TASK_KEYS = {"Name", "Driver", "Config", "Resources", "KillTimeout", "Env", "Meta", "Constraints",
             "Artifacts", "Templates", "Services", "User", "LogConfig", "KillSignal", "Leader"}
RESTART_KEYS = {"Attempts", "Interval", "Delay", "Mode", "RenderTemplates"}
RESCHEDULE_KEYS = {"Attempts", "Interval", "Delay", "DelayFunction", "MaxDelay", "Unlimited"}
RESOURCE_KEYS = {"CPU", "Cores", "MemoryMB", "MemoryMaxMB", "Networks", "Devices"}
NETWORK_KEYS = {"Mode", "ReservedPorts", "DynamicPorts", "DNS", "Hostname"}
DRIVE_INTERFACES = {"ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none"}


def keys_of(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def subset(doc, where, obj, allowed):
    if not isinstance(obj, dict):
        bad(doc, f"{where} is not an object")
        return False
    for k in obj:
        if k not in allowed:
            bad(doc, f"{where}: unknown key '{k}'")
    return True


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_nomad(i, d, qemu_keys):
    doc = f"job {i}"
    if not subset(doc, "top level", d, {"Job"}) or "Job" not in d:
        bad(doc, "no Job object")
        return
    j = d["Job"]
    if not subset(doc, "Job", j, JOB_KEYS):
        return
    doc = f"job '{j.get('ID')}'"
    for k in ("ID", "Name", "Type"):
        if not isinstance(j.get(k), str) or not j.get(k):
            bad(doc, f"Job.{k} must be a non-empty string")
    if j.get("Type") not in ("service", "batch", "system", "sysbatch"):
        bad(doc, f"Job.Type '{j.get('Type')}' is not a job type")
    if not isinstance(j.get("Datacenters"), list) or not all(isinstance(x, str) for x in j["Datacenters"]):
        bad(doc, "Job.Datacenters must be a list of strings")
    if "Stop" in j and not isinstance(j["Stop"], bool):
        bad(doc, "Job.Stop must be a boolean")
    for c in j.get("Constraints", []):
        subset(doc, "Constraint", c, {"LTarget", "RTarget", "Operand"})
    groups = j.get("TaskGroups")
    if not isinstance(groups, list) or len(groups) != 1:
        bad(doc, "Job.TaskGroups must hold exactly one group")
        return
    g = groups[0]
    if not subset(doc, "TaskGroup", g, GROUP_KEYS):
        return
    if not is_int(g.get("Count")) or g["Count"] != 1:
        bad(doc, "TaskGroup.Count must be 1")
    if "RestartPolicy" in g:
        subset(doc, "RestartPolicy", g["RestartPolicy"], RESTART_KEYS)
        if g["RestartPolicy"].get("Mode") not in ("fail", "delay"):
            bad(doc, "RestartPolicy.Mode must be fail or delay")
        for k in ("Attempts", "Interval", "Delay"):
            if not is_int(g["RestartPolicy"].get(k)):
                bad(doc, f"RestartPolicy.{k} must be an integer (durations in ns)")
    if "ReschedulePolicy" in g:
        subset(doc, "ReschedulePolicy", g["ReschedulePolicy"], RESCHEDULE_KEYS)
    for n in g.get("Networks", []):
        subset(doc, "Network", n, NETWORK_KEYS)
        for p in n.get("ReservedPorts", []):
            subset(doc, "ReservedPort", p, {"Label", "Value", "To", "HostNetwork"})
            if not isinstance(p.get("Label"), str) or not is_int(p.get("Value")):
                bad(doc, "ReservedPort needs a Label string and a Value integer")
    tasks = g.get("Tasks")
    if not isinstance(tasks, list) or len(tasks) != 1:
        bad(doc, "TaskGroup.Tasks must hold exactly one task")
        return
    t = tasks[0]
    if not subset(doc, "Task", t, TASK_KEYS):
        return
    if t.get("Driver") != "qemu":
        bad(doc, "Task.Driver must be qemu")
    if "KillTimeout" in t and not is_int(t["KillTimeout"]):
        bad(doc, "Task.KillTimeout must be an integer (ns)")
    r = t.get("Resources", {})
    subset(doc, "Resources", r, RESOURCE_KEYS)
    if not is_int(r.get("MemoryMB")) or r["MemoryMB"] < 128:
        bad(doc, "Resources.MemoryMB must be an integer >= 128 (the qemu driver's bound)")
    if not is_int(r.get("CPU")) or r["CPU"] <= 0:
        bad(doc, "Resources.CPU must be a positive integer (MHz)")
    c = t.get("Config")
    if not subset(doc, "Config", c, set(qemu_keys)):
        return
    if not isinstance(c.get("image_path"), str) or not c["image_path"]:
        bad(doc, "Config.image_path is required")
    for k in ("accelerator", "drive_interface", "emulator", "machine_type"):
        if k in c and not isinstance(c[k], str):
            bad(doc, f"Config.{k} must be a string")
    if "drive_interface" in c and c["drive_interface"] not in DRIVE_INTERFACES:
        bad(doc, f"Config.drive_interface '{c['drive_interface']}' is not one the driver allows")
    for k in ("graceful_shutdown", "guest_agent"):
        if k in c and not isinstance(c[k], bool):
            bad(doc, f"Config.{k} must be a boolean")
    if "args" in c and (not isinstance(c["args"], list) or not all(isinstance(a, str) for a in c["args"])):
        bad(doc, "Config.args must be a list of strings")


def check_incus(i, d, keys):
    inst = [k for (kind, k) in keys if kind == "instance"]
    dev = {"disk": {k for (kind, k) in keys if kind == "disk"}, "proxy": {k for (kind, k) in keys if kind == "proxy"}}
    doc = f"instance {i}"

    def known(k):
        return k in inst or any(p.endswith(".*") and k.startswith(p[:-1]) for p in inst)

    if not subset(doc, "top level", d, {"description", "config", "devices", "profiles", "ephemeral",
                                        "architecture", "stateful"}):
        return
    for k, v in (d.get("config") or {}).items():
        if not known(k):
            bad(doc, f"config: '{k}' is not a documented instance option")
        if not isinstance(v, str):
            bad(doc, f"config: '{k}' must be a string (Incus stores every value as a string)")
    for name, dv in (d.get("devices") or {}).items():
        t = dv.get("type") if isinstance(dv, dict) else None
        if t not in dev:
            bad(doc, f"device '{name}': type '{t}' is not disk or proxy")
            continue
        for k, v in dv.items():
            if k not in dev[t]:
                bad(doc, f"device '{name}': '{k}' is not a documented {t} device option")
            if not isinstance(v, str):
                bad(doc, f"device '{name}': '{k}' must be a string")


def check_kubevirt(i, d, validator):
    for e in sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path)
        bad(f"vm {i}", f"{where}: {e.message}")
    if d.get("apiVersion") != "kubevirt.io/v1" or d.get("kind") != "VirtualMachine":
        bad(f"vm {i}", "apiVersion/kind must be kubevirt.io/v1 VirtualMachine")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("nomad", "incus", "kubevirt"):
        print(__doc__, file=sys.stderr)
        return 64
    engine = sys.argv[1]
    docs = []
    for path in sys.argv[2:]:
        these = load(engine, path)
        if not these:
            bad(path, "no document")
        docs += these
    if engine == "nomad":
        qk = keys_of(os.path.join(HERE, "nomad-qemu-config-keys.txt"))
        assert len(qk) == 9, "the qemu driver has nine config keys"
        for i, d in enumerate(docs):
            check_nomad(i, d, qk)
    elif engine == "incus":
        keys = [tuple(line.split(None, 1)) for line in keys_of(os.path.join(HERE, "incus-keys.txt"))]
        for i, d in enumerate(docs):
            check_incus(i, d, keys)
    else:
        import jsonschema
        with open(os.path.join(HERE, "schema", "kubevirt-virtualmachine-v1.json"), encoding="utf-8") as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        v = cls(schema)
        for i, d in enumerate(docs):
            check_kubevirt(i, d, v)
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {len(docs)} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
