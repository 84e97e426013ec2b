/*-------------------------------------------------------------------------
 *
 * json_lex.h
 *		  JSON text at the byte level, shared by the files that read it
 *
 * The row path (json_split.c, row_convert.c, jsonb_build.c) and Clover's
 * API answers (api_json.c) all read JSON bytes themselves in places: white
 * space, integers, the contents of strings.  This header keeps one copy of
 * each.  The helpers called for every byte or every value are static inline
 * here, so that moving them out of the file that calls them costs no speed.
 *
 * Input is UTF-8 (Clover's encoding).  Nothing here validates a document;
 * the functions that decode strings expect text the splitter has checked.
 *
 * IDENTIFICATION
 *		  src/json_lex.h
 *-------------------------------------------------------------------------
 */
#ifndef JSON_LEX_H
#define JSON_LEX_H

#include "lib/stringinfo.h"

/*
 * jlex_ws_end
 *		The position of the first non-white-space byte of buf[pos, end)
 *		(JSON's white space: space, tab, CR, LF), or end
 */
static inline size_t
jlex_ws_end(const unsigned char *buf, size_t pos, size_t end)
{
	while (pos < end &&
		   (buf[pos] == ' ' || buf[pos] == '\n' ||
			buf[pos] == '\r' || buf[pos] == '\t'))
		pos++;
	return pos;
}

/*
 * jlex_int64
 *		Parse JSON integer syntax (-?digits) of p[0, len) into *out
 *
 * Returns false if the text is not an integer; *overflow tells whether it
 * was an integer too large for int64.
 */
static inline bool
jlex_int64(const char *p, int len, int64 *out, bool *overflow)
{
	const char *end = p + len;
	bool		neg = false;
	uint64		acc = 0;

	*overflow = false;
	if (p < end && *p == '-')
	{
		neg = true;
		p++;
	}
	if (p >= end)
		return false;
	for (; p < end; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		if (acc > (PG_UINT64_MAX - 9) / 10)
			*overflow = true;
		acc = acc * 10 + (*p - '0');
	}
	if (*overflow || acc > (uint64) PG_INT64_MAX + (neg ? 1 : 0))
	{
		*overflow = true;
		return false;
	}
	*out = neg ? (int64) (0 - acc) : (int64) acc;
	return true;
}

extern bool jlex_unescape(const char *p, int len, StringInfo out,
						  const char **err);
extern char *jlex_printable(const char *s, size_t len, size_t maxlen);

#endif							/* JSON_LEX_H */
