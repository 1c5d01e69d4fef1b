#!/usr/bin/env bash
# `state: stopped` stops a VM through the ACPI path: the guest (a boot sector
# that arms the ACPI power button) powers itself off on system_powerdown, so
# the stop ends at the powerdown step without quit or signals.
source "$(dirname "$0")/lib.sh"
make_guest "$M/guest.img" 0
man() {
	cat <<YAML
name: g
memory: 32M
stop_timeout: 60s
storage:
  - {name: boot, type: raw, file: guest.img, interface: ide}
$1
YAML
}
man "" > "$M/g.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
pg=$(vm_pid g)
# the serial console is captured to the per-VM log; wait for the guest to arm
wait_until 60 serial_has g "maqet-guest up" || fail "guest did not boot: $(cat "$RT/g.serial.log" 2>/dev/null)"
man "state: stopped" > "$M/g.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply stop: $OUT"
wait_until 10 proc_dead "$pg" || fail "guest still running"
assert_eq "$(count_events g stop.powerdown exited)" 1 "stopped by ACPI powerdown"
assert_eq "$(count_events g stop.quit sent)" 0 "quit must not be needed"
assert_eq "$(count_events g stop.sigterm sent)" 0 "SIGTERM must not be needed"
serial_has g "powering off" || fail "guest did not see the power button"
assert_eq "$(vm_status g)" stopped
pass "ACPI stop path with a real guest"
