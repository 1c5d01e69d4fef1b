/* keymap.h - key names and text for QMP send-key (`maqet send-keys`,
 * `maqet type`).
 *
 * A key spec is one or more key names joined with '-', pressed together and
 * released in reverse order: "ctrl-alt-delete", "ctrl-alt-f2", "shift-a",
 * "ret".  A key name is a QEMU qcode ("ctrl", "alt_r", "kp_enter", "f2",
 * "a", "1", ...) or a friendly alias ("enter"/"return" -> ret, "space" ->
 * spc, "escape" -> esc, "del" -> delete, "control" -> ctrl, "super"/"win" ->
 * meta_l, "pageup" -> pgup, "pagedown" -> pgdn, "ins" -> insert, "altgr" ->
 * alt_r).  Names are case-insensitive.
 *
 * Text is typed on a US keyboard layout: letters, digits, the punctuation of
 * that layout, space, tab and newline (Return); capitals and shifted symbols
 * are sent with shift held.  The two-character escapes "\n", "\t" and "\\"
 * stand for Return, Tab and a backslash.  Any other character has no key and
 * is an error for the whole text, so nothing is typed half-way.
 */
#ifndef MQ_KEYMAP_H
#define MQ_KEYMAP_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

#define MQ_KEY_MAX_COMBO 8

struct mq_keycombo {
	const char *keys[MQ_KEY_MAX_COMBO]; /* qcode names (static strings) */
	size_t n;
};

/* The qcode for a key name or alias (static string), NULL when unknown. */
const char *mq_key_lookup(const char *name);
/* Parse one key spec.  -EINVAL: "unknown key 'x' in 'ctrl-x'" (with a
 * did-you-mean when a qcode is close), "empty key name in 'a--b'", or too
 * many keys. */
int mq_key_parse_combo(const char *spec, struct mq_keycombo *out, struct mq_error **err);
/* Turn text into one combo per character (escapes above).  *out is a
 * malloc'd array of *n combos.  -EINVAL "no key for character 'X' (U+00E9)
 * at offset N" on the first character without a key (nothing in *out). */
int mq_key_text(const char *text, struct mq_keycombo **out, size_t *n, struct mq_error **err);
/* The arguments of send-key for one combo: {"keys": [{"type": "qcode",
 * "data": K}, ...]} plus "hold-time" when hold_ms > 0.  New reference. */
json_object *mq_key_send_args(const struct mq_keycombo *c, int hold_ms);

#endif
