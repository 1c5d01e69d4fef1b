#!/usr/bin/env bash
# Shell completion and the man page: both come from maqet's own command
# table and help text; `meson install` installs them.
source "$(dirname "$0")/lib.sh"
COMP="$MQ_SRC/cli/completion/maqet.bash"
[ -f "$COMP" ] || fail "no completion script at $COMP"

cmds=$(mq __complete commands)
for c in apply stop console logs inspect doctor help; do
	grep -qx "$c" <<<"$cmds" || fail "command $c not offered: $cmds"
done
grep -qx "__complete" <<<"$cmds" && fail "the hidden command is offered"
mq help | grep -q __complete && fail "help lists the hidden command"
opts=$(mq __complete options logs)
for o in -f -n --qemu --follow --lines --state-dir; do
	grep -qx -- "$o" <<<"$opts" || fail "logs option $o not offered: $opts"
done
grep -qx -- "-n" <<<"$(mq __complete argopts logs)" || fail "-n takes a value"
grep -qx -- "--qemu" <<<"$(mq __complete argopts logs)" && fail "--qemu takes no value"
grep -qx -- "-j" <<<"$(mq __complete argopts apply)" || fail "-j takes a value like --jobs"
assert_eq "$(mq __complete values inspect -o | tr '\n' ' ')" "yaml json " "inspect -o values"
assert_eq "$(mq __complete vms stop)" "" "no state dir yet: no names (and none created)"
[ ! -e "$STATE" ] || fail "completion created the state dir"
pass "__complete answers"

# VM names from the state dir
vm_yaml alpha "state: stopped" > "$M/alpha.yaml"
vm_yaml beta "state: stopped" > "$M/beta.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
assert_eq "$(mq __complete vms stop | tr '\n' ' ')" "alpha beta " "names for stop"
assert_eq "$(mq __complete vms apply)" "" "apply takes no name"
# a second state dir, named on the command line
S2=$T/state2
mkdir -p "$T/m2"; vm_yaml gamma "state: stopped" > "$T/m2/gamma.yaml"
MAQET_STATE_DIR=$S2 "$MAQET" apply -f "$T/m2" >/dev/null

complete_line() { # words... (the last is the word being completed)
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_maqet
	((${#COMPREPLY[@]})) || return 0
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
PATH="$(dirname "$MAQET"):$PATH"
# shellcheck disable=SC1090
source "$COMP"
unset -f _init_completion 2>/dev/null || true
assert_eq "$(complete_line maqet con)" "console " "command name"
assert_eq "$(complete_line maqet stop "")" "alpha beta " "vm names"
assert_eq "$(complete_line maqet logs -n 5 b)" "beta " "vm name after an option with a value"
assert_eq "$(complete_line maqet logs alpha "")" "" "only one vm name"
assert_eq "$(complete_line maqet --state-dir "$S2" stop "")" "gamma " "vm names of --state-dir"
assert_eq "$(complete_line maqet inspect --fo)" "" "no such option"
assert_eq "$(complete_line maqet logs --f)" "--follow " "option"
assert_eq "$(complete_line maqet doctor -o "")" "json table " "option values"
assert_eq "$(complete_line maqet help ins)" "inspect " "help takes a command"
pass "bash completion"

# the man page: roff made from the help text, every command in it
MAN=$(mq help --man)
for c in apply stop console logs inspect doctor; do
	assert_contains "$MAN" ".SS $c" "man page section for $c"
done
assert_contains "$MAN" "Ctrl\\-]" "console help text in the man page"
assert_not_contains "$MAN" "__complete"
if command -v groff >/dev/null; then
	warn=$(mq help --man | groff -man -Tutf8 -ww -z 2>&1)
	assert_eq "$warn" "" "groff warnings"
	mq help --man | groff -man -Tutf8 2>/dev/null | grep -q "maqet inspect NAME" || fail "man page does not render"
fi
pass "man page"

# meson install puts both in place
if [ -n "${MQ_BUILD:-}" ] && command -v meson >/dev/null; then
	meson install -C "$MQ_BUILD" --no-rebuild --destdir "$T/inst" >/dev/null 2>&1 || fail "meson install failed"
	man1=$(find "$T/inst" -path '*/man1/maqet.1' | head -n 1)
	[ -n "$man1" ] || fail "maqet.1 not installed"
	cmp -s "$man1" <(mq help --man) || fail "installed man page differs from 'maqet help --man'"
	comp=$(find "$T/inst" -path '*/bash-completion/completions/maqet' | head -n 1)
	[ -n "$comp" ] || fail "completion not installed"
	cmp -s "$comp" "$COMP" || fail "installed completion differs"
	pass "meson install"
fi
