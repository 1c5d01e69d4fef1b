#!/usr/bin/env bash
# Guests that power off at (nearly) the same moment are each classified from
# their own QMP events: eight guests (make_guest mode 0) get the ACPI power
# button at once through their QMP sockets, and every exit must be logged as
# "guest-poweroff", none as "crash", and under `restart: on-failure` none is
# restarted.  (A watch that classifies a VM whose exit it has not read yet,
# while it handles another VM's exit, calls it a crash.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
command -v python3 >/dev/null || fail "python3 (needed by meson) not found"

N=8
make_guest "$M/guest.img" 0
for i in $(seq 1 $N); do
	cp "$M/guest.img" "$M/h$i.img"
	printf 'name: h%s\nmemory: 32M\nstop_timeout: 10s\nstorage:\n  - {name: boot, type: raw, file: h%s.img, interface: ide}\n' \
		"$i" "$i" > "$M/h$i.yaml"
done
rm "$M/guest.img"
start_watch -f "$M" --settle 100
socks=()
for i in $(seq 1 $N); do
	wait_until 90 serial_has "h$i" "maqet-guest up" || fail "h$i did not boot: $(cat "$RT/h$i.serial.log" 2>/dev/null)"
	socks+=("$RT/h$i.qmp")
done
# The guest arms the power button a few instructions after printing "up".
sleep 0.5

# Press every power button at once (QMP system_powerdown, one thread per VM).
# A guest that was not armed yet gets the button again every 2 s until its
# QEMU exits (the connection reaches EOF).
python3 - "${socks[@]}" <<'PY' || fail "could not power off every guest through QMP"
import socket, sys, threading
errors = []
def press(path):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        buf = b""
        def until(pred):
            nonlocal buf
            while not pred(buf):
                chunk = s.recv(65536)
                if not chunk:
                    return False
                buf += chunk
            return True
        until(lambda b: b"QMP" in b)  # greeting
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        until(lambda b: b'"return"' in b)
        s.settimeout(2)
        for attempt in range(15):
            s.sendall(b'{"execute": "system_powerdown"}\n')
            try:
                if not until(lambda b: False):
                    return  # EOF: qemu exited
            except socket.timeout:
                continue
        errors.append("%s: still running after 15 presses" % path)
    except (ConnectionResetError, BrokenPipeError):
        return  # qemu exited while we wrote
    except Exception as e:
        errors.append("%s: %s" % (path, e))
threads = [threading.Thread(target=press, args=(p,)) for p in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("\n".join(errors))
PY

wait_log_n $N exit "" "" 30 || fail "only $(log_count exit) of $N exits logged"
quiet_for 2
# (a VM wrongly restarted has a fresh serial log, so look only at the others)
for i in $(seq 1 $N); do
	[ "$(starts_of "h$i")" = 1 ] || continue
	serial_has "h$i" "powering off" || fail "h$i's guest did not power off by itself"
done
crashes=$(log_select exit crash | jq -r .vm | tr '\n' ' ')
assert_eq "$(log_count exit guest-poweroff)" $N "exits classified guest-poweroff (classified crash: $crashes)"
assert_eq "$(log_count exit crash)" 0 "simultaneous guest poweroffs classified as crashes: $crashes"
for i in $(seq 1 $N); do
	assert_eq "$(starts_of "h$i")" 1 "h$i (restart: on-failure) restarted after its guest powered off"
	assert_eq "$(vm_status "h$i")" stopped-by-guest "status of h$i"
done
pass "$N simultaneous guest poweroffs are all guest-poweroff, none restarted"
stop_watch
