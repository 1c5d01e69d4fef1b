/* banned.h - C library functions maqet must not call.
 *
 * Each of these either writes without a bound (strcpy, strcat, sprintf,
 * vsprintf, gets) or cannot report a bad number (atoi, atol, atoll).  Use
 * instead:
 *
 *   strcpy, strcat        xstrdup, mq_strbuf_adds, snprintf into a sized buffer
 *   sprintf, vsprintf     xasprintf, mq_strbuf_addf, snprintf
 *   atoi, atol, atoll     mq_parse_int, mq_parse_uint, mq_parse_u64 (util/parse.h)
 *   gets                  getline
 *
 * A call then fails to compile with an error naming the banned function and
 * its replacement.  The ban is active in a translation unit compiled with
 * -DMQ_BAN_UNSAFE_FUNCTIONS (meson: c_args: mq_banned_c_args, set in
 * util/meson.build): util/ and cli/ are.  It is opt-in per target because
 * tests/ still use strcat/strcpy on fixed buffers.
 *
 * The headers that declare these functions are included first, so a later
 * #include <string.h> (a no-op by then) cannot run into the macros below.
 */
#ifndef MQ_BANNED_H
#define MQ_BANNED_H

#ifdef MQ_BAN_UNSAFE_FUNCTIONS

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MQ_BANNED_(replacement) mq_banned_function__use_##replacement##_instead

#undef strcpy
#define strcpy(...) MQ_BANNED_(xstrdup_or_snprintf)
#undef strcat
#define strcat(...) MQ_BANNED_(mq_strbuf_adds)
#undef sprintf
#define sprintf(...) MQ_BANNED_(xasprintf_or_snprintf)
#undef vsprintf
#define vsprintf(...) MQ_BANNED_(xvasprintf_or_vsnprintf)
#undef atoi
#define atoi(...) MQ_BANNED_(mq_parse_int)
#undef atol
#define atol(...) MQ_BANNED_(mq_parse_int)
#undef atoll
#define atoll(...) MQ_BANNED_(mq_parse_u64)
#undef gets
#define gets(...) MQ_BANNED_(getline)

#endif
#endif
