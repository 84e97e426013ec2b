/*-------------------------------------------------------------------------
 *
 * json_split.c
 *		  One validating pass over an export file: its elements and the
 *		  byte spans of the paths the query needs
 *
 * CloverSplitFile checks the whole file against the JSON grammar and
 * UTF-8 (JSON text in a file is UTF-8), finds each element of the top
 * object's "elements" array and fills, per element, the slots of the row
 * plan's trie: a value's type and span, a string's contents without its
 * quotes.  Nothing is converted or copied here; the file is rejected as a
 * whole, with the byte offset of the first problem, if any byte is wrong.
 *
 * With rows_from, the rows are the elements of a list in each element
 * (object) of the file: each gets its element's slots, and, once the
 * object is read, a copy of the object's.  An object whose list is absent
 * or null has no rows; one whose list is there but not an array gets one
 * row that says so (row_item -1), reported only if the scan returns it.
 *
 * This loop runs over every byte Clover sends, so its helpers stay static
 * in this file (or static inline in json_lex.h and row_path.h).
 *
 * IDENTIFICATION
 *		  src/json_split.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "json_lex.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "row_path.h"

/* Deepest nesting accepted in an export file */
#define MAX_JSON_DEPTH		1000

/* State of one CloverSplitFile pass */
typedef struct SplitState
{
	const unsigned char *buf;
	size_t		len;
	size_t		pos;
	int			depth;
	CloverFileRows *rows;
	JsonSlot   *cur;			/* slots of the element being read */
	int			nobjects;		/* elements of "elements" read */
	JsonSlot   *objslots;		/* rows_from: the object's slots */
	int			obj_first_row;	/* rows_from: the object's first row */
	bool		seen_elements;
	char	   *errmsg;
} SplitState;

/* character classes inside strings */
#define SC_PLAIN	0
#define SC_QUOTE	1
#define SC_ESCAPE	2
#define SC_CONTROL	3
#define SC_HIGH		4

static unsigned char string_class[256];
static bool string_class_ready = false;

static void init_string_class(void);
static bool split_error(SplitState *s, const char *fmt,...) pg_attribute_printf(2, 3);
static bool scan_value(SplitState *s, const PathNode *node, JsonSlot *target);
static bool scan_object(SplitState *s, const PathNode *node, bool top);
static bool scan_array(SplitState *s);
static bool scan_list(SplitState *s);
static bool scan_string(SplitState *s, uint32 *start, uint32 *len,
						bool *escaped);
static bool scan_number(SplitState *s);
static bool scan_elements(SplitState *s);

/*
 * init_string_class
 *		Fill string_class, the table scan_string's inner loop looks up
 */
static void
init_string_class(void)
{
	int			c;

	for (c = 0; c < 256; c++)
	{
		if (c < 0x20)
			string_class[c] = SC_CONTROL;
		else if (c >= 0x80)
			string_class[c] = SC_HIGH;
		else
			string_class[c] = SC_PLAIN;
	}
	string_class['"'] = SC_QUOTE;
	string_class['\\'] = SC_ESCAPE;
	string_class_ready = true;
}

/*
 * split_error
 *		Record why the file is rejected, with the byte offset; returns false
 */
static bool
split_error(SplitState *s, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;

	if (s->errmsg)
		return false;			/* keep the first, innermost reason */
	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	appendStringInfo(&buf, " at byte offset %zu", s->pos);
	s->errmsg = buf.data;
	return false;
}

/*
 * skip_ws
 *		Move past white space
 */
static inline void
skip_ws(SplitState *s)
{
	s->pos = jlex_ws_end(s->buf, s->pos, s->len);
}

/*
 * scan_string
 *		Check a string starting at the opening quote; report its contents'
 *		span and whether it contains escapes
 */
static bool
scan_string(SplitState *s, uint32 *start, uint32 *len, bool *escaped)
{
	const unsigned char *buf = s->buf;
	size_t		p = s->pos + 1;
	size_t		end = s->len;

	*start = (uint32) p;
	*escaped = false;
	for (;;)
	{
		while (p < end && string_class[buf[p]] == SC_PLAIN)
			p++;
		if (p >= end)
		{
			s->pos = p;
			return split_error(s, "Unterminated string");
		}
		switch (string_class[buf[p]])
		{
			case SC_QUOTE:
				*len = (uint32) (p - *start);
				s->pos = p + 1;
				return true;
			case SC_ESCAPE:
				*escaped = true;
				if (p + 1 >= end)
				{
					s->pos = p;
					return split_error(s, "Unterminated string");
				}
				switch (buf[p + 1])
				{
					case '"':
					case '\\':
					case '/':
					case 'b':
					case 'f':
					case 'n':
					case 'r':
					case 't':
						p += 2;
						break;
					case 'u':
						{
							int			i;

							for (i = 2; i < 6; i++)
							{
								if (p + i >= end || !isxdigit(buf[p + i]))
								{
									s->pos = p;
									return split_error(s, "Invalid \\u escape");
								}
							}
							p += 6;
							break;
						}
					default:
						s->pos = p;
						return split_error(s, "Invalid escape sequence");
				}
				break;
			case SC_CONTROL:
				s->pos = p;
				return split_error(s, "Unescaped control character in string");
			case SC_HIGH:
				{
					int			n = pg_utf_mblen(&buf[p]);

					if (n < 2 || p + n > end || !pg_utf8_islegal(&buf[p], n))
					{
						s->pos = p;
						return split_error(s, "Invalid UTF-8 in string");
					}
					p += n;
					break;
				}
		}
	}
}

/*
 * scan_digits
 *		Move *p past the digits of a fraction or an exponent; false (error
 *		set) if there is not at least one
 */
static inline bool
scan_digits(SplitState *s, size_t *p)
{
	size_t		q = *p;

	if (q >= s->len || !isdigit(s->buf[q]))
	{
		s->pos = q;
		return split_error(s, "Invalid number");
	}
	while (q < s->len && isdigit(s->buf[q]))
		q++;
	*p = q;
	return true;
}

/*
 * scan_number
 *		Check a number against the JSON grammar
 */
static bool
scan_number(SplitState *s)
{
	const unsigned char *buf = s->buf;
	size_t		p = s->pos;
	size_t		end = s->len;

	if (p < end && buf[p] == '-')
		p++;
	if (p < end && buf[p] == '0')
		p++;
	else if (p < end && buf[p] >= '1' && buf[p] <= '9')
	{
		while (p < end && isdigit(buf[p]))
			p++;
	}
	else
		return split_error(s, "Invalid number");
	if (p < end && buf[p] == '.')
	{
		p++;
		if (!scan_digits(s, &p))
			return false;
	}
	if (p < end && (buf[p] == 'e' || buf[p] == 'E'))
	{
		p++;
		if (p < end && (buf[p] == '+' || buf[p] == '-'))
			p++;
		if (!scan_digits(s, &p))
			return false;
	}
	s->pos = p;
	return true;
}

/*
 * scan_literal
 *		Check that true, false or null (word) is spelled out in full
 */
static bool
scan_literal(SplitState *s, const char *word)
{
	size_t		n = strlen(word);

	if (s->len - s->pos < n || memcmp(s->buf + s->pos, word, n) != 0)
		return split_error(s, "Invalid literal");
	s->pos += n;
	return true;
}

/*
 * scan_value
 *		Check one value; record its span in target (if any); if it is an
 *		object and node has children, record the paths below it too
 */
static bool
scan_value(SplitState *s, const PathNode *node, JsonSlot *target)
{
	size_t		start;
	uint8		type;
	uint32		sstart = 0,
				slen = 0;
	bool		escaped = false;

	skip_ws(s);
	if (s->pos >= s->len)
		return split_error(s, "Unexpected end of data");
	start = s->pos;

	switch (s->buf[s->pos])
	{
		case '{':
			if (!scan_object(s, node, false))
				return false;
			type = SLOT_OBJECT;
			break;
		case '[':
			if (!(node && node->is_list ? scan_list(s) : scan_array(s)))
				return false;
			type = SLOT_ARRAY;
			break;
		case '"':
			if (!scan_string(s, &sstart, &slen, &escaped))
				return false;
			type = SLOT_STRING;
			break;
		case 't':
			if (!scan_literal(s, "true"))
				return false;
			type = SLOT_TRUE;
			break;
		case 'f':
			if (!scan_literal(s, "false"))
				return false;
			type = SLOT_FALSE;
			break;
		case 'n':
			if (!scan_literal(s, "null"))
				return false;
			type = SLOT_NULL;
			break;
		default:
			if (s->buf[s->pos] != '-' && !isdigit(s->buf[s->pos]))
				return split_error(s, "Unexpected character");
			if (!scan_number(s))
				return false;
			type = SLOT_NUMBER;
			break;
	}

	if (target)
	{
		target->type = type;
		target->escaped = escaped;
		if (type == SLOT_STRING)
		{
			target->start = sstart;
			target->len = slen;
		}
		else
		{
			target->start = (uint32) start;
			target->len = (uint32) (s->pos - start);
		}
	}
	return true;
}

/*
 * key_is
 *		Does a key (raw bytes, possibly escaped) equal name?
 */
static bool
key_is(const unsigned char *key, uint32 keylen, bool escaped, const char *name)
{
	StringInfoData buf;
	const char *err;
	bool		result;

	if (!escaped)
		return keylen == strlen(name) && memcmp(key, name, keylen) == 0;
	initStringInfo(&buf);
	result = jlex_unescape((const char *) key, keylen, &buf, &err) &&
		strcmp(buf.data, name) == 0 && (size_t) buf.len == strlen(name);
	pfree(buf.data);
	return result;
}

/*
 * find_child
 *		The trie child for a key (raw bytes, possibly escaped), or NULL
 */
static const PathNode *
find_child(const PathNode *node, const char *key, int keylen, bool escaped)
{
	StringInfoData buf;
	const char *err;
	const PathNode *found = NULL;

	if (!escaped)
		return path_child(node, key, keylen);
	initStringInfo(&buf);
	if (jlex_unescape(key, keylen, &buf, &err))
		found = path_child(node, buf.data, buf.len);
	pfree(buf.data);
	return found;
}

/*
 * scan_separator
 *		After a member of a container: 1 if a ',' says another follows, 0 if
 *		the closing character ends the container, -1 (error set) otherwise
 */
static int
scan_separator(SplitState *s, char close, const char *container)
{
	skip_ws(s);
	if (s->pos >= s->len)
	{
		split_error(s, "Unexpected end of data in %s", container);
		return -1;
	}
	if (s->buf[s->pos] == ',')
	{
		s->pos++;
		return 1;
	}
	if (s->buf[s->pos] == close)
	{
		s->pos++;
		return 0;
	}
	split_error(s, "Expected ',' or '%c' in %s", close, container);
	return -1;
}

/*
 * open_container
 *		Enter the object or array whose opening bracket is at s->pos: 1 if
 *		members follow, 0 if it is empty (and already left), -1 (error set)
 *		if it is nested too deep
 */
static inline int
open_container(SplitState *s, char close)
{
	if (++s->depth > MAX_JSON_DEPTH)
	{
		split_error(s, "JSON nested deeper than %d levels", MAX_JSON_DEPTH);
		return -1;
	}
	s->pos++;
	skip_ws(s);
	if (s->pos < s->len && s->buf[s->pos] == close)
	{
		s->pos++;
		s->depth--;
		return 0;
	}
	return 1;
}

/*
 * scan_object
 *		Check an object; node (may be NULL) says which keys to record.  The
 *		file's top-level object (top) has the "elements" array instead.
 */
static bool
scan_object(SplitState *s, const PathNode *node, bool top)
{
	int			more = open_container(s, '}');

	if (more <= 0)
		return more == 0;
	do
	{
		uint32		kstart,
					klen;
		bool		kescaped;
		const PathNode *child = NULL;
		JsonSlot   *target = NULL;

		skip_ws(s);
		if (s->pos >= s->len || s->buf[s->pos] != '"')
			return split_error(s, "Expected a string key");
		if (!scan_string(s, &kstart, &klen, &kescaped))
			return false;
		skip_ws(s);
		if (s->pos >= s->len || s->buf[s->pos] != ':')
			return split_error(s, "Expected ':'");
		s->pos++;

		if (top && key_is(s->buf + kstart, klen, kescaped,
						  s->rows->plan->list_key))
		{
			if (!scan_elements(s))
				return false;
		}
		else
		{
			if (node && node->nchildren > 0 && s->cur)
				child = find_child(node, (const char *) s->buf + kstart, klen,
								   kescaped);
			if (child)
			{
				/* a repeated key replaces everything recorded below it */
				if (child->end_slot > child->first_slot)
					memset(&s->cur[child->first_slot], 0,
						   sizeof(JsonSlot) * (child->end_slot - child->first_slot));
				if (child->holds_list)
					s->rows->nelems = s->obj_first_row;
				if (child->slot >= 0)
					target = &s->cur[child->slot];
			}
			if (!scan_value(s, child, target))
				return false;
		}
	} while ((more = scan_separator(s, '}', "object")) > 0);
	s->depth--;
	return more == 0;
}

/*
 * scan_array
 *		Check an array whose values are not recorded
 */
static bool
scan_array(SplitState *s)
{
	int			more = open_container(s, ']');

	if (more <= 0)
		return more == 0;
	do
	{
		if (!scan_value(s, NULL, NULL))
			return false;
	} while ((more = scan_separator(s, ']', "array")) > 0);
	s->depth--;
	return more == 0;
}

/*
 * add_element
 *		Make room for one more element and return its (zeroed) slots
 */
static JsonSlot *
add_element(CloverFileRows *rows)
{
	int			nslots = rows->plan->nslots;
	JsonSlot   *slots;

	if (rows->nelems == rows->maxelems)
	{
		int			newmax = rows->maxelems * 2;

		rows->elem_start = repalloc(rows->elem_start, sizeof(uint32) * newmax);
		rows->elem_end = repalloc(rows->elem_end, sizeof(uint32) * newmax);
		rows->slots = repalloc(rows->slots, sizeof(JsonSlot) * nslots * newmax);
		if (rows->row_object)
		{
			rows->row_object = repalloc(rows->row_object, sizeof(int) * newmax);
			rows->row_item = repalloc(rows->row_item, sizeof(int) * newmax);
		}
		rows->maxelems = newmax;
	}
	slots = &rows->slots[rows->nelems * nslots];
	memset(slots, 0, sizeof(JsonSlot) * nslots);
	return slots;
}

/*
 * scan_list
 *		Check the list of rows_from, making a row of each of its values
 *
 * Called while the object's slots are being filled (s->cur); each value
 * is read into its own row's slots, with the element itself in elem_slot.
 */
static bool
scan_list(SplitState *s)
{
	CloverFileRows *rows = s->rows;
	const CloverRowPlan *plan = rows->plan;
	JsonSlot   *objslots = s->cur;
	int			item = 0;
	int			more = open_container(s, ']');

	if (more <= 0)
		return more == 0;
	do
	{
		int			r = rows->nelems;

		skip_ws(s);
		s->cur = add_element(rows);
		rows->elem_start[r] = (uint32) s->pos;
		rows->row_object[r] = s->nobjects;
		rows->row_item[r] = item++;
		if (!scan_value(s, plan->elem_root, &s->cur[plan->elem_slot]))
			return false;
		rows->elem_end[r] = (uint32) s->pos;
		rows->nelems++;
		s->cur = objslots;
		/* one object's list may be as long as the file */
		CHECK_FOR_INTERRUPTS();
	} while ((more = scan_separator(s, ']', "array")) > 0);
	s->depth--;
	return more == 0;
}

/*
 * scan_nested_object
 *		Check one element of "elements" of a file read with rows_from: its
 *		list's rows, each with a copy of the object's slots
 */
static bool
scan_nested_object(SplitState *s)
{
	CloverFileRows *rows = s->rows;
	const CloverRowPlan *plan = rows->plan;
	size_t		start = s->pos;
	SlotType	list_type;
	int			r;

	memset(s->objslots, 0, sizeof(JsonSlot) * plan->object_slots);
	s->cur = s->objslots;
	s->obj_first_row = rows->nelems;
	if (!scan_object(s, plan->root, false))
		return false;
	if (plan->root->slot >= 0)
	{
		/* json_path '$parent': the object itself */
		JsonSlot   *whole = &s->objslots[plan->root->slot];

		whole->type = SLOT_OBJECT;
		whole->start = (uint32) start;
		whole->len = (uint32) (s->pos - start);
	}

	list_type = (SlotType) s->objslots[plan->list_slot].type;
	if (list_type != SLOT_ARRAY && list_type != SLOT_ABSENT &&
		list_type != SLOT_NULL)
	{
		r = rows->nelems;
		(void) add_element(rows);
		rows->elem_start[r] = rows->elem_end[r] = (uint32) start;
		rows->row_object[r] = s->nobjects;
		rows->row_item[r] = -1;
		rows->nelems++;
	}
	for (r = s->obj_first_row; r < rows->nelems; r++)
		memcpy(&rows->slots[r * plan->nslots], s->objslots,
			   sizeof(JsonSlot) * plan->object_slots);
	s->cur = NULL;
	return true;
}

/*
 * scan_elements
 *		Check the "elements" array (a /v1 page's "data"), recording each
 *		element and its paths
 */
static bool
scan_elements(SplitState *s)
{
	CloverFileRows *rows = s->rows;
	const char *list_key = rows->plan->list_key;
	char	   *quoted_key = psprintf("\"%s\"", list_key);
	int			more;

	if (s->seen_elements)
		return split_error(s, "More than one \"%s\" array", list_key);
	s->seen_elements = true;
	skip_ws(s);
	if (s->pos >= s->len || s->buf[s->pos] != '[')
		return split_error(s, "\"%s\" is not an array", list_key);
	if ((more = open_container(s, ']')) <= 0)
		return more == 0;
	do
	{
		skip_ws(s);
		if (s->pos >= s->len)
			return split_error(s, "Unexpected end of data in \"%s\"",
							   list_key);
		if (s->buf[s->pos] != '{')
			return split_error(s, "Element %d of \"%s\" is not an object",
							   s->nobjects + 1, list_key);
		if (rows->plan->elem_root)
		{
			if (!scan_nested_object(s))
				return false;
		}
		else
		{
			s->cur = add_element(rows);
			rows->elem_start[rows->nelems] = (uint32) s->pos;
			if (!scan_object(s, rows->plan->root, false))
				return false;
			rows->elem_end[rows->nelems] = (uint32) s->pos;
			rows->nelems++;
			s->cur = NULL;
		}
		s->nobjects++;
		CHECK_FOR_INTERRUPTS();
	} while ((more = scan_separator(s, ']', quoted_key)) > 0);
	s->depth--;
	return more == 0;
}

/*
 * CloverSplitFile
 *		Validate a whole export file and find its elements and their paths
 *
 * Returns NULL with a palloc'd reason in *errmsg (naming the byte offset or
 * the element) if the file is not valid JSON, is not an object with an
 * "elements" array, or has an element that is not an object.  The result
 * points into data, which must outlive it; everything is palloc'd in the
 * current memory context.
 */
CloverFileRows *
CloverSplitFile(const CloverRowPlan *plan, const char *data, size_t len,
				char **errmsg)
{
	SplitState	s;
	CloverFileRows *rows;

	if (!string_class_ready)
		init_string_class();
	if (len >= UINT32_MAX)
	{
		*errmsg = psprintf("The file of %zu bytes is too large", len);
		return NULL;
	}

	rows = palloc0(sizeof(CloverFileRows));
	rows->plan = plan;
	rows->data = data;
	rows->len = len;
	rows->maxelems = 64;
	rows->elem_start = palloc(sizeof(uint32) * rows->maxelems);
	rows->elem_end = palloc(sizeof(uint32) * rows->maxelems);
	rows->slots = palloc(sizeof(JsonSlot) * Max(plan->nslots, 1) * rows->maxelems);
	if (plan->elem_root)
	{
		rows->row_object = palloc(sizeof(int) * rows->maxelems);
		rows->row_item = palloc(sizeof(int) * rows->maxelems);
	}

	memset(&s, 0, sizeof(s));
	s.buf = (const unsigned char *) data;
	s.len = len;
	s.rows = rows;
	if (plan->elem_root)
		s.objslots = palloc(sizeof(JsonSlot) * plan->object_slots);

	skip_ws(&s);
	if (s.pos >= s.len)
	{
		*errmsg = pstrdup("The file is empty");
		return NULL;
	}
	if (s.buf[s.pos] != '{')
	{
		split_error(&s, "The file is not a JSON object");
		goto fail;
	}
	if (!scan_object(&s, NULL, true))
		goto fail;
	skip_ws(&s);
	if (s.pos != s.len)
	{
		split_error(&s, "Unexpected data after the end of the JSON object");
		goto fail;
	}
	if (!s.seen_elements)
	{
		*errmsg = psprintf("The file has no \"%s\" array", plan->list_key);
		return NULL;
	}
	return rows;

fail:
	*errmsg = s.errmsg;
	return NULL;
}

/*
 * CloverFileRowCount
 *		The number of elements of a split file
 */
int
CloverFileRowCount(const CloverFileRows *rows)
{
	return rows->nelems;
}
