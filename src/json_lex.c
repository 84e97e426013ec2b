/*-------------------------------------------------------------------------
 *
 * json_lex.c
 *		  Decoding JSON strings and showing remote text in messages
 *
 * The out-of-line half of json_lex.h: what is called once per escaped
 * string or once per message, not once per byte.
 *
 * IDENTIFICATION
 *		  src/json_lex.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "json_lex.h"
#include "mb/pg_wchar.h"

/*
 * hex_value
 *		Value of four hex digits
 */
static int
hex_value(const char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else
			v |= c - 'A' + 10;
	}
	return v;
}

/*
 * jlex_unescape
 *		Decode a validated JSON string's contents into UTF-8
 *
 * Fails (with *err) for what PostgreSQL text cannot hold: \u0000 and
 * unpaired surrogates.
 */
bool
jlex_unescape(const char *p, int len, StringInfo out, const char **err)
{
	const char *end = p + len;

	while (p < end)
	{
		const char *bs = memchr(p, '\\', end - p);
		int			cp;
		unsigned char utf8[4];

		if (bs == NULL)
		{
			appendBinaryStringInfo(out, p, end - p);
			break;
		}
		appendBinaryStringInfo(out, p, bs - p);
		p = bs + 1;
		switch (*p)
		{
			case 'b':
				appendStringInfoChar(out, '\b');
				p++;
				continue;
			case 'f':
				appendStringInfoChar(out, '\f');
				p++;
				continue;
			case 'n':
				appendStringInfoChar(out, '\n');
				p++;
				continue;
			case 'r':
				appendStringInfoChar(out, '\r');
				p++;
				continue;
			case 't':
				appendStringInfoChar(out, '\t');
				p++;
				continue;
			case 'u':
				break;
			default:			/* '"', '\\', '/' */
				appendStringInfoChar(out, *p);
				p++;
				continue;
		}

		cp = hex_value(p + 1);
		p += 5;
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			int			lo;

			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				(lo = hex_value(p + 2)) < 0xDC00 || lo > 0xDFFF)
			{
				*err = "A \\u escape is an unpaired Unicode surrogate.";
				return false;
			}
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			p += 6;
		}
		else if (cp >= 0xDC00 && cp <= 0xDFFF)
		{
			*err = "A \\u escape is an unpaired Unicode surrogate.";
			return false;
		}
		if (cp == 0)
		{
			*err = "\\u0000 cannot be stored in a PostgreSQL text value.";
			return false;
		}
		unicode_to_utf8((pg_wchar) cp, utf8);
		appendBinaryStringInfo(out, (const char *) utf8, pg_utf_mblen(utf8));
	}
	return true;
}

/*
 * jlex_printable
 *		Printable ASCII copy of remote text, at most maxlen bytes, palloc'd
 *
 * Remote text goes into messages, whose encoding we do not control.
 */
char *
jlex_printable(const char *s, size_t len, size_t maxlen)
{
	StringInfoData buf;
	size_t		i;

	initStringInfo(&buf);
	for (i = 0; i < len && (size_t) buf.len < maxlen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\n' || c == '\r' || c == '\t')
			appendStringInfoChar(&buf, ' ');
		else if (c >= 0x20 && c < 0x7f)
			appendStringInfoChar(&buf, (char) c);
		else
			appendStringInfoChar(&buf, '?');
	}
	if (i < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}
