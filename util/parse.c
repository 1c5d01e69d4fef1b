#include "util/parse.h"

#include "util/banned.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	uint64_t v = 0;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		s++;
	}
	*sp = s;
	*out = v;
	return 0;
}

int mq_parse_u64(const char *s, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	uint64_t v;
	int r = parse_digits(&s, &v);
	if (r < 0)
		return r;
	if (*s)
		return -EINVAL;
	*out = v;
	return 0;
}

int mq_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	int r = mq_parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v < min || v > max)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

int mq_parse_int(const char *s, int min, int max, int *out)
{
	if (!s)
		return -EINVAL;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	uint64_t v;
	int r = mq_parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v > (uint64_t)INT32_MAX + (uint64_t)neg)
		return -ERANGE;
	long long x = neg ? -(long long)v : (long long)v;
	if (x < min || x > max)
		return -ERANGE;
	*out = (int)x;
	return 0;
}

int mq_parse_size(const char *s, uint64_t bare_unit, uint64_t *bytes)
{
	if (!s)
		return -EINVAL;
	uint64_t v;
	int r = parse_digits(&s, &v);
	if (r < 0)
		return r;
	uint64_t mult;
	switch (*s) {
	case '\0': mult = bare_unit; break;
	case 'b': case 'B': mult = 1; break;
	case 'k': case 'K': mult = 1ULL << 10; break;
	case 'm': case 'M': mult = 1ULL << 20; break;
	case 'g': case 'G': mult = 1ULL << 30; break;
	case 't': case 'T': mult = 1ULL << 40; break;
	default: return -EINVAL;
	}
	if (*s) {
		char unit = *s++;
		if (unit != 'b' && unit != 'B') {
			if (strcmp(s, "iB") == 0 || strcmp(s, "B") == 0 || strcmp(s, "b") == 0)
				s += strlen(s);
		}
		if (*s)
			return -EINVAL;
	}
	if (mult && v > UINT64_MAX / mult)
		return -ERANGE;
	*bytes = v * mult;
	return 0;
}

int mq_parse_duration(const char *s, uint64_t *ms)
{
	if (!s || !*s)
		return -EINVAL;
	uint64_t total = 0;
	int parts = 0;
	while (*s) {
		uint64_t v;
		int r = parse_digits(&s, &v);
		if (r < 0)
			return r;
		uint64_t mult;
		if (strncmp(s, "ms", 2) == 0) {
			mult = 1;
			s += 2;
		} else if (*s == 's') {
			mult = 1000;
			s++;
		} else if (*s == 'm') {
			mult = 60000;
			s++;
		} else if (*s == 'h') {
			mult = 3600000;
			s++;
		} else if (*s == '\0' && parts == 0) {
			mult = 1000;
		} else {
			return -EINVAL;
		}
		if (v > UINT64_MAX / mult || total > UINT64_MAX - v * mult)
			return -ERANGE;
		total += v * mult;
		parts++;
	}
	*ms = total;
	return 0;
}

void mq_format_size(uint64_t bytes, char *buf, unsigned long buflen)
{
	static const char units[] = "KMGT";
	int u = -1;
	uint64_t v = bytes;
	while (v && v % 1024 == 0 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, buflen, "%llu", (unsigned long long)bytes);
	else
		snprintf(buf, buflen, "%llu%c", (unsigned long long)v, units[u]);
}
