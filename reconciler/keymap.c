#include "reconciler/keymap.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

/* QEMU's QKeyCode values (qapi/ui.json). */
static const char *const qcodes[] = {
	"shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r", "menu", "esc",
	"1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "backspace", "tab",
	"q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right", "ret",
	"a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "grave_accent", "backslash",
	"z", "x", "c", "v", "b", "n", "m", "comma", "dot", "slash", "asterisk", "spc", "caps_lock",
	"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "num_lock", "scroll_lock",
	"kp_divide", "kp_multiply", "kp_subtract", "kp_add", "kp_enter", "kp_decimal", "sysrq",
	"kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7", "kp_8", "kp_9",
	"less", "f11", "f12", "print", "home", "pgup", "pgdn", "end", "left", "up", "down", "right",
	"insert", "delete", "stop", "again", "props", "undo", "front", "copy", "open", "paste", "find",
	"cut", "lf", "help", "meta_l", "meta_r", "compose", "pause", "ro", "hiragana", "henkan", "yen",
	"muhenkan", "katakanahiragana", "kp_comma", "kp_equals", "power", "sleep", "wake",
	"audionext", "audioprev", "audiostop", "audioplay", "audiomute", "volumeup", "volumedown",
	"mediaselect", "mail", "calculator", "computer", "ac_home", "ac_back", "ac_forward",
	"ac_refresh", "ac_bookmarks", "lang1", "lang2",
	"f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24",
};

static const struct {
	const char *alias, *qcode;
} aliases[] = {
	{ "enter", "ret" },      { "return", "ret" },     { "space", "spc" },   { "escape", "esc" },
	{ "del", "delete" },     { "control", "ctrl" },   { "ctl", "ctrl" },    { "super", "meta_l" },
	{ "win", "meta_l" },     { "meta", "meta_l" },    { "pageup", "pgup" }, { "pagedown", "pgdn" },
	{ "ins", "insert" },     { "altgr", "alt_r" },    { "bksp", "backspace" }, { "capslock", "caps_lock" },
	{ "printscreen", "print" },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *mq_key_lookup(const char *name)
{
	if (!name || !*name)
		return NULL;
	for (size_t i = 0; i < N(qcodes); i++)
		if (strcasecmp(name, qcodes[i]) == 0)
			return qcodes[i];
	for (size_t i = 0; i < N(aliases); i++)
		if (strcasecmp(name, aliases[i].alias) == 0)
			return aliases[i].qcode;
	return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 99;
	size_t d[33][33];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t c = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
			size_t x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
			d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
		}
	return d[la][lb];
}

static const char *suggest(const char *name)
{
	const char *best = NULL;
	size_t bd = 3;
	for (size_t i = 0; i < N(qcodes); i++) {
		size_t dd = edit_distance(name, qcodes[i]);
		if (dd < bd && strlen(qcodes[i]) > 1) {
			bd = dd;
			best = qcodes[i];
		}
	}
	return best;
}

int mq_key_parse_combo(const char *spec, struct mq_keycombo *out, struct mq_error **err)
{
	struct mq_keycombo c = { .n = 0 };
	if (!spec || !*spec)
		return mq_error_set(err, EINVAL, "empty key name");
	const char *p = spec;
	for (;;) {
		const char *dash = strchr(p, '-');
		size_t len = dash ? (size_t)(dash - p) : strlen(p);
		if (len == 0)
			return mq_error_set(err, EINVAL, "empty key name in '%s'", spec);
		if (c.n == MQ_KEY_MAX_COMBO)
			return mq_error_set(err, EINVAL, "too many keys in '%s' (at most %d pressed together)", spec,
					    MQ_KEY_MAX_COMBO);
		char *name = xstrndup(p, len);
		const char *q = mq_key_lookup(name);
		if (!q) {
			const char *s = suggest(name);
			int r;
			if (s)
				r = mq_error_set(err, EINVAL, "unknown key '%s' in '%s' (did you mean '%s'?)", name, spec, s);
			else
				r = mq_error_set(err, EINVAL,
						 "unknown key '%s' in '%s' (use QEMU qcode names such as ctrl, alt, ret, f2, a)",
						 name, spec);
			free(name);
			return r;
		}
		free(name);
		c.keys[c.n++] = q;
		if (!dash)
			break;
		p = dash + 1;
	}
	*out = c;
	return 0;
}

/* US layout: the key of a character and whether shift is held. */
static const char *char_key(unsigned char ch, bool *shift)
{
	static const char unshifted_sym[] = "-=[];'`\\,./";
	static const char *const unshifted_key[] = { "minus", "equal", "bracket_left", "bracket_right", "semicolon",
						     "apostrophe", "grave_accent", "backslash", "comma", "dot",
						     "slash" };
	static const char shifted_sym[] = "_+{}:\"~|<>?";
	static const char digits_shifted[] = ")!@#$%^&*(";
	static const char *const digit_key[] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
	static const char *const letters[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
					       "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z" };
	*shift = false;
	if (ch >= 'a' && ch <= 'z')
		return letters[ch - 'a'];
	if (ch >= 'A' && ch <= 'Z') {
		*shift = true;
		return letters[ch - 'A'];
	}
	if (ch >= '0' && ch <= '9')
		return digit_key[ch - '0'];
	if (ch == ' ')
		return "spc";
	if (ch == '\n')
		return "ret";
	if (ch == '\t')
		return "tab";
	if (ch == 0)
		return NULL;
	const char *p = strchr(unshifted_sym, ch);
	if (p)
		return unshifted_key[p - unshifted_sym];
	p = strchr(shifted_sym, ch);
	if (p) {
		*shift = true;
		return unshifted_key[p - shifted_sym];
	}
	p = strchr(digits_shifted, ch);
	if (p) {
		*shift = true;
		return digit_key[p - digits_shifted];
	}
	return NULL;
}

/* Decode one UTF-8 code point for the message; returns its length (>= 1). */
static size_t utf8_point(const unsigned char *s, unsigned long *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 1;
	unsigned long v = len == 2 ? (s[0] & 0x1fu) : len == 3 ? (s[0] & 0x0fu) : len == 4 ? (s[0] & 0x07u) : s[0];
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = s[0];
			return 1;
		}
		v = (v << 6) | (s[i] & 0x3fu);
	}
	*cp = v;
	return len;
}

int mq_key_text(const char *text, struct mq_keycombo **out, size_t *n, struct mq_error **err)
{
	size_t len = strlen(text);
	struct mq_keycombo *v = xcalloc(len + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch == '\\' && i + 1 < len && (text[i + 1] == 'n' || text[i + 1] == 't' || text[i + 1] == '\\')) {
			i++;
			ch = text[i] == 'n' ? '\n' : text[i] == 't' ? '\t' : '\\';
		}
		bool shift;
		const char *key = ch < 0x80 ? char_key(ch, &shift) : NULL;
		if (!key) {
			unsigned long cp;
			size_t cl = utf8_point((const unsigned char *)text + i, &cp);
			free(v);
			if (cp >= 0x20 && cp != 0x7f)
				return mq_error_set(err, EINVAL, "no key for character '%.*s' (U+%04lX) at offset %zu; nothing was typed",
						    (int)cl, text + i, cp, i);
			return mq_error_set(err, EINVAL, "no key for control character U+%04lX at offset %zu; nothing was typed", cp, i);
		}
		if (shift)
			v[k].keys[v[k].n++] = "shift";
		v[k].keys[v[k].n++] = key;
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

json_object *mq_key_send_args(const struct mq_keycombo *c, int hold_ms)
{
	json_object *a = json_object_new_object(), *keys = json_object_new_array();
	for (size_t i = 0; i < c->n; i++) {
		json_object *k = json_object_new_object();
		json_object_object_add(k, "type", json_object_new_string("qcode"));
		json_object_object_add(k, "data", json_object_new_string(c->keys[i]));
		json_object_array_add(keys, k);
	}
	json_object_object_add(a, "keys", keys);
	if (hold_ms > 0)
		json_object_object_add(a, "hold-time", json_object_new_int(hold_ms));
	return a;
}
