/*-------------------------------------------------------------------------
 *
 * json_rows.c
 *		  Export files turned into tuples
 *
 * Export files are the hot path: up to 1000 objects of about 1 KB each,
 *	  millions per scan.  A json-c tree costs ~14 MB per file and ~15 us per
 *	  object, so files are instead read by one validating pass
 *	  (CloverSplitFile) that checks the whole file against the JSON grammar
 *	  and UTF-8, finds each element of the "elements" array, and records,
 *	  per element, the byte span of every JSON path the query needs (a small
 *	  trie built by CloverMakeRowPlan).  A file is rejected as a whole before
 *	  any of its rows is returned, so a broken download can be fetched again
 *	  without returning half a file.  CloverFillRow then converts only those
 *	  spans: numbers and strings directly; jsonb objects and arrays by
 *	  building the JsonbValue tree from the already validated bytes
 *	  (build_jsonb: the same jsonb as jsonb_in, about twice as fast); other
 *	  types through PostgreSQL's own input functions.  A whole-object jsonb
 *	  column is built once per row and other jsonb columns are cut out of
 *	  it rather than parsed again.  count(*) converts nothing but
 *	  createdTime, which every row needs to be assigned to exactly one
 *	  export window.
 *
 * Duplicate keys behave as in jsonb: the last one wins.  JSON null and
 * absent keys both give SQL NULL.  Otherwise a column holds what
 * PostgreSQL's own (raw->>'key')::type gives (raw->'key' for jsonb): the
 * type's input function on that text, unless a shortcut is known to give
 * the same; then a domain's constraints.  Timestamps and dates alone read
 * epoch milliseconds.  A value that does not fit its column is an error
 * naming the column, the object id and the export, never a silently
 * different value.  Paths are matched in UTF-8, the file's encoding;
 * text reaches the database in its own encoding.
 *
 * IDENTIFICATION
 *		  src/json_rows.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "common/int.h"
#include "json_lex.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "utils/builtins.h"

/* Deepest nesting accepted in an export file */
#define MAX_JSON_DEPTH		1000

/* Largest id echoed in a message */
#define MAX_ID_ECHO			64

/* ----------------------------------------------------------------
 *		Data structures of the row path
 * ----------------------------------------------------------------
 */

/* What a slot holds after a file is split */
typedef enum SlotType
{
	SLOT_ABSENT = 0,			/* must be zero: slots start memset to 0 */
	SLOT_NULL,
	SLOT_STRING,
	SLOT_NUMBER,
	SLOT_TRUE,
	SLOT_FALSE,
	SLOT_OBJECT,
	SLOT_ARRAY
} SlotType;

/* Where one path's value is, within one element */
typedef struct JsonSlot
{
	uint32		start;			/* strings: first byte after the quote */
	uint32		len;			/* strings: bytes before the closing quote */
	uint8		type;			/* SlotType */
	bool		escaped;		/* string contains backslash escapes */
} JsonSlot;

/* A node of the trie of requested JSON paths */
typedef struct PathNode
{
	const char *key;
	int			keylen;
	int			slot;			/* slot of this path, or -1 */
	int			first_slot;		/* slots of the whole subtree: */
	int			end_slot;		/* [first_slot, end_slot) */
	int			nchildren;
	struct PathNode **children;
} PathNode;

/* How a column's value is made */
typedef enum ConvKind
{
	CONV_TEXT,
	CONV_INT2,
	CONV_INT4,
	CONV_INT8,
	CONV_NUMERIC,
	CONV_BOOL,
	CONV_TIMESTAMPTZ,
	CONV_TIMESTAMP,
	CONV_DATE,
	CONV_JSON,
	CONV_JSONB,
	CONV_INPUT					/* any other type: its input function */
} ConvKind;

typedef struct ColumnPlan
{
	int			attidx;			/* 0-based attribute index */
	char	   *attname;
	Oid			typid;			/* the column's type, for messages */
	int32		typmod;
	Oid			basetypid;		/* typid, or a domain's base type */
	int32		basetypmod;
	bool		is_domain;		/* check typid's constraints after */
	void	  **domain_extra;	/* domain_check's cache, and the */
	MemoryContext domain_cxt;	/* context it lives in */
	ConvKind	kind;			/* from basetypid */
	bool		whole_object;	/* json_path '$': nkeys is 0 */
	int			slot;			/* slot of the path, unless whole_object */
	int			nkeys;			/* the path's keys, in the database */
	char	  **keys;			/* encoding, for lookups in raw */
	FmgrInfo	input;			/* CONV_INPUT only */
	Oid			ioparam;
} ColumnPlan;

struct CloverRowPlan
{
	PathNode   *root;
	int			nslots;
	int			created_slot;	/* createdTime, always extracted */
	int			id_slot;		/* id, always extracted (messages) */
	int			ncolumns;
	ColumnPlan *columns;
	int			raw_jsonb_col;	/* index into columns, or -1 */
	bool		db_utf8;
};

struct CloverFileRows
{
	const CloverRowPlan *plan;
	const char *data;
	size_t		len;
	int			nelems;
	int			maxelems;
	uint32	   *elem_start;		/* byte span of each element */
	uint32	   *elem_end;
	JsonSlot   *slots;			/* nelems * plan->nslots */
};

/* State of one CloverSplitFile pass */
typedef struct SplitState
{
	const unsigned char *buf;
	size_t		len;
	size_t		pos;
	int			depth;
	CloverFileRows *rows;
	JsonSlot   *cur;			/* slots of the element being read */
	bool		seen_elements;
	char	   *errmsg;
} SplitState;

/* Error context of CloverFillRow */
typedef struct FillContext
{
	const CloverFileRows *rows;
	int			idx;
	const CloverRowOrigin *origin;
	const ColumnPlan *col;
} FillContext;

/* character classes inside strings */
#define SC_PLAIN	0
#define SC_QUOTE	1
#define SC_ESCAPE	2
#define SC_CONTROL	3
#define SC_HIGH		4

static unsigned char string_class[256];
static bool string_class_ready = false;

static void init_string_class(void);
static PathNode *trie_insert(PathNode *root, char **keys, int nkeys,
							 bool *created);
static int	trie_number(PathNode *node, int next);
static bool split_error(SplitState *s, const char *fmt,...) pg_attribute_printf(2, 3);
static bool scan_value(SplitState *s, const PathNode *node, JsonSlot *target);
static bool scan_object(SplitState *s, const PathNode *node, bool top);
static bool scan_array(SplitState *s);
static bool scan_string(SplitState *s, uint32 *start, uint32 *len,
						bool *escaped);
static bool scan_number(SplitState *s);
static bool scan_elements(SplitState *s);
static Datum convert_slot(const ColumnPlan *col, const CloverFileRows *rows,
						  const JsonSlot *slot, Datum raw, bool have_raw,
						  bool *isnull);
static void fill_error_callback(void *arg);

/* ----------------------------------------------------------------
 *		Row plan: which paths to find, how to convert them
 * ----------------------------------------------------------------
 */

/*
 * trie_insert
 *		Find or add the node of a path given as its keys (UTF-8, as in the
 *		file; any may be empty); *created tells which
 */
static PathNode *
trie_insert(PathNode *root, char **keys, int nkeys, bool *created)
{
	PathNode   *node = root;
	int			k;

	*created = false;
	for (k = 0; k < nkeys; k++)
	{
		int			keylen = strlen(keys[k]);
		PathNode   *child = NULL;
		int			i;

		for (i = 0; i < node->nchildren; i++)
		{
			if (node->children[i]->keylen == keylen &&
				memcmp(node->children[i]->key, keys[k], keylen) == 0)
			{
				child = node->children[i];
				break;
			}
		}
		if (child == NULL)
		{
			child = palloc0(sizeof(PathNode));
			child->key = pstrdup(keys[k]);
			child->keylen = keylen;
			child->slot = -1;
			if (node->nchildren == 0)
				node->children = palloc(sizeof(PathNode *));
			else
				node->children = repalloc(node->children,
										  sizeof(PathNode *) * (node->nchildren + 1));
			node->children[node->nchildren++] = child;
		}
		node = child;
	}
	if (node->slot < 0)
	{
		node->slot = 0;			/* numbered later by trie_number */
		*created = true;
	}
	return node;
}

/*
 * trie_insert_key
 *		trie_insert of a one-key path
 */
static PathNode *
trie_insert_key(PathNode *root, const char *key)
{
	char	   *keys[1];
	bool		created;

	keys[0] = unconstify(char *, key);
	return trie_insert(root, keys, 1, &created);
}

/*
 * trie_number
 *		Number the target nodes depth-first, so that every subtree's slots
 *		are one contiguous range; returns the next free slot number
 */
static int
trie_number(PathNode *node, int next)
{
	int			i;

	node->first_slot = next;
	if (node->slot >= 0)
		node->slot = next++;
	for (i = 0; i < node->nchildren; i++)
		next = trie_number(node->children[i], next);
	node->end_slot = next;
	return next;
}

static ConvKind
conv_kind_for_type(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
			return CONV_TEXT;
		case INT2OID:
			return CONV_INT2;
		case INT4OID:
			return CONV_INT4;
		case INT8OID:
			return CONV_INT8;
		case NUMERICOID:
			return CONV_NUMERIC;
		case BOOLOID:
			return CONV_BOOL;
		case TIMESTAMPTZOID:
			return CONV_TIMESTAMPTZ;
		case TIMESTAMPOID:
			return CONV_TIMESTAMP;
		case DATEOID:
			return CONV_DATE;
		case JSONOID:
			return CONV_JSON;
		case JSONBOID:
			return CONV_JSONB;
	}
	return CONV_INPUT;
}

/*
 * plan_column_type
 *		How col is converted: its base type's conversion, its domain, and
 *		for other types the input function
 */
static void
plan_column_type(ColumnPlan *col, Form_pg_attribute att)
{
	col->typid = att->atttypid;
	col->typmod = att->atttypmod;
	col->basetypmod = att->atttypmod;
	col->basetypid = getBaseTypeAndTypmod(att->atttypid, &col->basetypmod);
	col->is_domain = (col->basetypid != col->typid);
	if (col->is_domain)
	{
		col->domain_extra = palloc0(sizeof(void *));
		col->domain_cxt = CurrentMemoryContext;
	}
	col->kind = conv_kind_for_type(col->basetypid);
	if (col->kind == CONV_INPUT)
	{
		Oid			infunc;

		getTypeInputInfo(col->basetypid, &infunc, &col->ioparam);
		fmgr_info(infunc, &col->input);
	}
}

/*
 * plan_column_path
 *		Find col's path (NIL keys: the whole object) and add it to the trie
 *
 * Keys are kept in the database encoding for lookups in a jsonb value and
 * go into the trie in UTF-8, the file's encoding.
 */
static PathNode *
plan_column_path(CloverRowPlan *plan, ColumnPlan *col, Relation rel,
				 Form_pg_attribute att)
{
	List	   *keys = CloverColumnJsonKeys(RelationGetRelid(rel), att->attnum,
											col->attname);
	char	  **utf8;
	ListCell   *lc;
	bool		created;

	col->whole_object = (keys == NIL);
	if (col->whole_object)
		return NULL;
	col->keys = palloc(sizeof(char *) * list_length(keys));
	utf8 = palloc(sizeof(char *) * list_length(keys));
	foreach(lc, keys)
	{
		char	   *key = lfirst(lc);

		col->keys[col->nkeys] = key;
		utf8[col->nkeys++] = pg_server_to_any(key, strlen(key), PG_UTF8);
	}
	return trie_insert(plan->root, utf8, col->nkeys, &created);
}

/*
 * CloverMakeRowPlan
 *		Decide, once per scan, how each needed column is filled
 *
 * attrs_used holds attribute numbers offset by
 * FirstLowInvalidHeapAttributeNumber (as pull_varattnos makes them);
 * need_all asks for every column (a whole-row reference).  Columns not
 * needed stay NULL.  The plan is palloc'd in the current memory context.
 */
CloverRowPlan *
CloverMakeRowPlan(Relation rel, Bitmapset *attrs_used, bool need_all)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	CloverRowPlan *plan = palloc0(sizeof(CloverRowPlan));
	PathNode   *created_node,
			   *id_node;
	PathNode  **col_nodes;
	int			i;

	plan->root = palloc0(sizeof(PathNode));
	plan->root->slot = -1;
	plan->raw_jsonb_col = -1;
	plan->db_utf8 = (GetDatabaseEncoding() == PG_UTF8);
	plan->columns = palloc0(sizeof(ColumnPlan) * tupdesc->natts);
	col_nodes = palloc0(sizeof(PathNode *) * tupdesc->natts);

	created_node = trie_insert_key(plan->root, CLOVER_TIME_KEY);
	id_node = trie_insert_key(plan->root, "id");

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		ColumnPlan *col;

		if (att->attisdropped)
			continue;
		if (!need_all &&
			!bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber,
						   attrs_used))
			continue;

		col = &plan->columns[plan->ncolumns];
		col->attidx = i;
		col->attname = pstrdup(NameStr(att->attname));
		plan_column_type(col, att);
		col_nodes[plan->ncolumns] = plan_column_path(plan, col, rel, att);
		if (col->whole_object && col->kind == CONV_JSONB &&
			plan->raw_jsonb_col < 0)
			plan->raw_jsonb_col = plan->ncolumns;
		plan->ncolumns++;
	}

	plan->nslots = trie_number(plan->root, 0);
	plan->created_slot = created_node->slot;
	plan->id_slot = id_node->slot;
	for (i = 0; i < plan->ncolumns; i++)
	{
		if (!plan->columns[i].whole_object)
			plan->columns[i].slot = col_nodes[i]->slot;
	}
	pfree(col_nodes);
	return plan;
}

/* ----------------------------------------------------------------
 *		Splitting a file: one validating pass
 * ----------------------------------------------------------------
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
		if (p >= end || !isdigit(buf[p]))
		{
			s->pos = p;
			return split_error(s, "Invalid number");
		}
		while (p < end && isdigit(buf[p]))
			p++;
	}
	if (p < end && (buf[p] == 'e' || buf[p] == 'E'))
	{
		p++;
		if (p < end && (buf[p] == '+' || buf[p] == '-'))
			p++;
		if (p >= end || !isdigit(buf[p]))
		{
			s->pos = p;
			return split_error(s, "Invalid number");
		}
		while (p < end && isdigit(buf[p]))
			p++;
	}
	s->pos = p;
	return true;
}

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
			if (!scan_array(s))
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
	int			i;

	if (escaped)
	{
		StringInfoData buf;
		const char *err;
		const PathNode *found = NULL;

		initStringInfo(&buf);
		if (jlex_unescape(key, keylen, &buf, &err))
			found = find_child(node, buf.data, buf.len, false);
		pfree(buf.data);
		return found;
	}
	for (i = 0; i < node->nchildren; i++)
	{
		const PathNode *child = node->children[i];

		if (child->keylen == keylen && memcmp(child->key, key, keylen) == 0)
			return child;
	}
	return NULL;
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
 * scan_object
 *		Check an object; node (may be NULL) says which keys to record.  The
 *		file's top-level object (top) has the "elements" array instead.
 */
static bool
scan_object(SplitState *s, const PathNode *node, bool top)
{
	int			more;

	if (++s->depth > MAX_JSON_DEPTH)
		return split_error(s, "JSON nested deeper than %d levels",
						   MAX_JSON_DEPTH);
	s->pos++;					/* '{' */
	skip_ws(s);
	if (s->pos < s->len && s->buf[s->pos] == '}')
	{
		s->pos++;
		s->depth--;
		return true;
	}
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

		if (top && key_is(s->buf + kstart, klen, kescaped, "elements"))
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
	int			more;

	if (++s->depth > MAX_JSON_DEPTH)
		return split_error(s, "JSON nested deeper than %d levels",
						   MAX_JSON_DEPTH);
	s->pos++;					/* '[' */
	skip_ws(s);
	if (s->pos < s->len && s->buf[s->pos] == ']')
	{
		s->pos++;
		s->depth--;
		return true;
	}
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
		rows->maxelems = newmax;
	}
	slots = &rows->slots[rows->nelems * nslots];
	memset(slots, 0, sizeof(JsonSlot) * nslots);
	return slots;
}

/*
 * scan_elements
 *		Check the "elements" array, recording each element and its paths
 */
static bool
scan_elements(SplitState *s)
{
	CloverFileRows *rows = s->rows;
	int			more;

	if (s->seen_elements)
		return split_error(s, "More than one \"elements\" array");
	s->seen_elements = true;
	skip_ws(s);
	if (s->pos >= s->len || s->buf[s->pos] != '[')
		return split_error(s, "\"elements\" is not an array");
	s->depth++;
	s->pos++;
	skip_ws(s);
	if (s->pos < s->len && s->buf[s->pos] == ']')
	{
		s->pos++;
		s->depth--;
		return true;
	}
	do
	{
		skip_ws(s);
		if (s->pos >= s->len)
			return split_error(s, "Unexpected end of data in \"elements\"");
		if (s->buf[s->pos] != '{')
			return split_error(s, "Element %d of \"elements\" is not an object",
							   rows->nelems + 1);
		s->cur = add_element(rows);
		rows->elem_start[rows->nelems] = (uint32) s->pos;
		if (!scan_object(s, rows->plan->root, false))
			return false;
		rows->elem_end[rows->nelems] = (uint32) s->pos;
		rows->nelems++;
		s->cur = NULL;
		CHECK_FOR_INTERRUPTS();
	} while ((more = scan_separator(s, ']', "\"elements\"")) > 0);
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

	memset(&s, 0, sizeof(s));
	s.buf = (const unsigned char *) data;
	s.len = len;
	s.rows = rows;

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
		*errmsg = pstrdup("The file has no \"elements\" array");
		return NULL;
	}
	return rows;

fail:
	*errmsg = s.errmsg;
	return NULL;
}

int
CloverFileRowCount(const CloverFileRows *rows)
{
	return rows->nelems;
}

static inline const JsonSlot *
row_slot(const CloverFileRows *rows, int idx, int slot)
{
	return &rows->slots[idx * rows->plan->nslots + slot];
}

/* ----------------------------------------------------------------
 *		Converting values
 * ----------------------------------------------------------------
 */

/*
 * CloverRowCreatedTime
 *		The element's createdTime; false if absent or not whole milliseconds
 */
bool
CloverRowCreatedTime(const CloverFileRows *rows, int idx, TimestampTz *created)
{
	const JsonSlot *slot = row_slot(rows, idx, rows->plan->created_slot);
	int64		ms;
	bool		overflow;

	if ((slot->type != SLOT_NUMBER && slot->type != SLOT_STRING) ||
		slot->escaped ||
		!jlex_int64(rows->data + slot->start, slot->len, &ms,
							&overflow))
		return false;
	return CloverUnixMsToTimestamp(ms, created);
}

/*
 * CloverRowId
 *		The element's "id" for messages: printable, truncated, palloc'd
 */
char *
CloverRowId(const CloverFileRows *rows, int idx)
{
	const JsonSlot *slot = row_slot(rows, idx, rows->plan->id_slot);

	if (slot->type != SLOT_STRING)
		return pstrdup("(no id)");
	return jlex_printable(rows->data + slot->start, slot->len, MAX_ID_ECHO);
}

/*
 * conversion_error
 *		Report a value that does not fit its column
 *
 * The error context (fill_error_callback) adds the object, file and export.
 */
static void
conversion_error(const ColumnPlan *col, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("cannot store Clover value in column \"%s\" of type %s",
					col->attname, format_type_with_typemod(col->typid, col->typmod)),
			 errdetail("%s", detail)));
}

/*
 * server_string
 *		A string of the file (UTF-8) in the database encoding, palloc'd and
 *		NUL-terminated
 */
static char *
server_string(const CloverRowPlan *plan, const char *s, int len)
{
	char	   *copy = pnstrdup(s, len);

	if (plan->db_utf8)
		return copy;
	return pg_any_to_server(copy, len, PG_UTF8);
}

/* ----------------------------------------------------------------
 *		jsonb straight from the file's bytes
 *
 * jsonb_in would lex the object again (character by character, copying
 * every string) and push each value through pushJsonbValue, which sorts
 * every object's keys with qsort.  The splitter has already checked the
 * object's grammar, escapes and UTF-8, so this walks the same bytes once
 * and builds the JsonbValue tree that pushJsonbValue would have built:
 * plain strings point into the file buffer (JsonbValueToJsonb copies them),
 * integers become numerics without numeric_in, and each object's pairs are
 * put in jsonb's key order (shorter keys first, then bytewise; of duplicate
 * keys the last one wins) by sorting compact integer keys, not the pairs.
 * The result is the jsonb that jsonb_in builds; anything unusual (a string
 * PostgreSQL cannot hold, a database that is not UTF-8) goes to jsonb_in
 * instead, so that its errors stay exactly PostgreSQL's.
 * ----------------------------------------------------------------
 */

typedef struct JsonbBuild
{
	const unsigned char *buf;
	size_t		pos;
	size_t		end;
} JsonbBuild;

static inline void
build_skip_ws(JsonbBuild *b)
{
	b->pos = jlex_ws_end(b->buf, b->pos, b->end);
}

/*
 * build_string
 *		The string at the opening quote as a jbvString; false if only
 *		jsonb_in may decide about it
 */
static bool
build_string(JsonbBuild *b, JsonbValue *v)
{
	const unsigned char *start = &b->buf[b->pos + 1];
	const unsigned char *p = start;
	bool		escaped = false;

	/* validated: the first unescaped quote ends the string */
	while (*p != '"')
	{
		if (*p == '\\')
		{
			escaped = true;
			p++;
		}
		p++;
	}
	b->pos = (p - b->buf) + 1;
	v->type = jbvString;
	if (!escaped)
	{
		v->val.string.val = (char *) start;
		v->val.string.len = p - start;
	}
	else
	{
		StringInfoData out;
		const char *err = NULL;

		initStringInfo(&out);
		if (!jlex_unescape((const char *) start, p - start, &out, &err))
			return false;
		v->val.string.val = out.data;
		v->val.string.len = out.len;
	}
	return v->val.string.len <= JENTRY_OFFLENMASK;
}

/*
 * pair_cmp
 *		jsonb's key order: length, then bytes; equal keys by input order,
 *		later first (so that the later one is kept)
 */
static inline int
pair_cmp(const JsonbPair *a, const JsonbPair *b)
{
	int			la = a->key.val.string.len;
	int			lb = b->key.val.string.len;
	int			r;

	if (la != lb)
		return la < lb ? -1 : 1;
	r = memcmp(a->key.val.string.val, b->key.val.string.val, la);
	if (r != 0)
		return r;
	return a->order > b->order ? -1 : (a->order < b->order ? 1 : 0);
}

/*
 * A sort key for one pair of an object: the key's length in the top 16
 * bits and its first 6 bytes below, so that most comparisons are one
 * integer comparison.  Keys of 0xFFFF bytes or more keep only the length
 * bits, leaving their order to pair_cmp.
 */
typedef struct PairKey
{
	uint64		prefix;
	int			idx;			/* the pair it stands for */
} PairKey;

static inline uint64
pair_prefix(const JsonbValue *key)
{
	int			len = key->val.string.len;
	uint64		prefix;
	int			i;

	if (len >= 0xFFFF)
		return UINT64CONST(0xFFFF) << 48;
	prefix = (uint64) len << 48;
	for (i = 0; i < len && i < 6; i++)
		prefix |= (uint64) (unsigned char) key->val.string.val[i] << (40 - 8 * i);
	return prefix;
}

static inline int
pair_key_cmp(const PairKey *a, const PairKey *b, JsonbPair *pairs)
{
	if (a->prefix != b->prefix)
		return a->prefix < b->prefix ? -1 : 1;
	return pair_cmp(&pairs[a->idx], &pairs[b->idx]);
}

/* sort_pair_keys(): PostgreSQL's quicksort with pair_key_cmp inlined */
#define ST_SORT sort_pair_keys
#define ST_ELEMENT_TYPE PairKey
#define ST_COMPARE_ARG_TYPE JsonbPair
#define ST_COMPARE(a, b, pairs) pair_key_cmp(a, b, pairs)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * sort_pairs
 *		An object's pairs in jsonb order, all but the last of duplicate
 *		keys dropped; sets *n to the number kept
 *
 * Sorts small index entries rather than the pairs themselves, then copies
 * each kept pair once into a new array.
 */
static JsonbPair *
sort_pairs(JsonbPair *pairs, int *n)
{
	PairKey		local[32];
	PairKey    *keys;
	JsonbPair  *out;
	int			kept = 0;
	int			i;

	if (*n < 2)
		return pairs;
	keys = (*n <= (int) lengthof(local)) ? local : palloc(sizeof(PairKey) * *n);
	for (i = 0; i < *n; i++)
	{
		keys[i].prefix = pair_prefix(&pairs[i].key);
		keys[i].idx = i;
	}
	sort_pair_keys(keys, *n, pairs);

	/* equal keys sort later-first: keep the first of each run */
	out = palloc(sizeof(JsonbPair) * *n);
	for (i = 0; i < *n; i++)
	{
		const JsonbPair *p = &pairs[keys[i].idx];

		if (kept > 0 &&
			p->key.val.string.len == out[kept - 1].key.val.string.len &&
			memcmp(p->key.val.string.val, out[kept - 1].key.val.string.val,
				   p->key.val.string.len) == 0)
			continue;
		out[kept++] = *p;
	}
	*n = kept;
	return out;
}

/*
 * build_value
 *		The value at b->pos into *v; false to let jsonb_in do the whole
 *		object
 */
static bool
build_value(JsonbBuild *b, JsonbValue *v)
{
	unsigned char c;

	check_stack_depth();
	build_skip_ws(b);
	c = b->buf[b->pos];
	if (c == '{' || c == '[')
	{
		bool		object = (c == '{');
		char		close = object ? '}' : ']';
		int			n = 0;
		int			cap = 8;
		JsonbPair  *pairs = NULL;
		JsonbValue *elems = NULL;

		if (object)
			pairs = palloc(sizeof(JsonbPair) * cap);
		else
			elems = palloc(sizeof(JsonbValue) * cap);
		b->pos++;
		build_skip_ws(b);
		if (b->buf[b->pos] == close)
			b->pos++;
		else
		{
			for (;;)
			{
				if (n == cap)
				{
					cap *= 2;
					if (object)
						pairs = repalloc(pairs, sizeof(JsonbPair) * cap);
					else
						elems = repalloc(elems, sizeof(JsonbValue) * cap);
				}
				if (object)
				{
					build_skip_ws(b);
					if (!build_string(b, &pairs[n].key))
						return false;
					pairs[n].order = n;
					build_skip_ws(b);
					b->pos++;	/* ':' */
					if (!build_value(b, &pairs[n].value))
						return false;
				}
				else if (!build_value(b, &elems[n]))
					return false;
				n++;
				build_skip_ws(b);
				if (b->buf[b->pos++] != ',')
					break;		/* the closing bracket */
			}
		}
		if (n > (int) JB_CMASK)
			return false;		/* let jsonb_in report the size */
		if (object)
		{
			v->type = jbvObject;
			v->val.object.pairs = sort_pairs(pairs, &n);
			v->val.object.nPairs = n;
		}
		else
		{
			v->type = jbvArray;
			v->val.array.nElems = n;
			v->val.array.elems = elems;
			v->val.array.rawScalar = false;
		}
		return true;
	}

	if (c == '"')
		return build_string(b, v);
	if (c == 't' || c == 'f')
	{
		v->type = jbvBool;
		v->val.boolean = (c == 't');
		b->pos += (c == 't') ? 4 : 5;
	}
	else if (c == 'n')
	{
		v->type = jbvNull;
		b->pos += 4;
	}
	else
	{
		size_t		start = b->pos;
		int64		i;
		bool		overflow;

		while (b->pos < b->end &&
			   (isdigit(b->buf[b->pos]) || b->buf[b->pos] == '-' ||
				b->buf[b->pos] == '+' || b->buf[b->pos] == '.' ||
				b->buf[b->pos] == 'e' || b->buf[b->pos] == 'E'))
			b->pos++;
		v->type = jbvNumeric;
		if (jlex_int64((const char *) &b->buf[start],
							   (int) (b->pos - start), &i, &overflow))
			v->val.numeric = int64_to_numeric(i);
		else
		{
			char	   *text = pnstrdup((const char *) &b->buf[start],
										b->pos - start);

			v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																 CStringGetDatum(text),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)));
		}
	}
	return true;
}

/*
 * build_jsonb
 *		The object or array in data[start, end) as jsonb, like jsonb_in
 */
static Datum
build_jsonb(const CloverRowPlan *plan, const char *data, size_t start,
			size_t end)
{
	if (plan->db_utf8 && (data[start] == '{' || data[start] == '['))
	{
		JsonbBuild	b;
		JsonbValue	v;

		b.buf = (const unsigned char *) data;
		b.pos = start;
		b.end = end;
		if (build_value(&b, &v))
			return JsonbPGetDatum(JsonbValueToJsonb(&v));
	}
	return DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(server_string(plan, data + start,
															 end - start)));
}

/*
 * slot_text
 *		The text form of a value: a string's decoded contents, or any other
 *		value's JSON text; palloc'd, NUL-terminated, in the database encoding
 */
static char *
slot_text(const ColumnPlan *col, const CloverFileRows *rows,
		  const JsonSlot *slot)
{
	const char *src = rows->data + slot->start;
	StringInfoData buf;
	const char *err;

	if (slot->type != SLOT_STRING || !slot->escaped)
		return server_string(rows->plan, src, slot->len);

	initStringInfo(&buf);
	if (!jlex_unescape(src, slot->len, &buf, &err))
		conversion_error(col, err);
	if (rows->plan->db_utf8)
		return buf.data;
	return pg_any_to_server(buf.data, buf.len, PG_UTF8);
}

/*
 * slot_json_text
 *		A value's JSON text (strings with their quotes), as for json/jsonb
 */
static char *
slot_json_text(const CloverFileRows *rows, const JsonSlot *slot)
{
	if (slot->type == SLOT_STRING)
		return server_string(rows->plan, rows->data + slot->start - 1,
							 slot->len + 2);
	return server_string(rows->plan, rows->data + slot->start, slot->len);
}

/*
 * value_for_message
 *		A value as it appears in the file (strings with their quotes),
 *		printable and truncated, for an errdetail
 */
static char *
value_for_message(const CloverFileRows *rows, const JsonSlot *slot)
{
	if (slot->type == SLOT_STRING)
		return jlex_printable(rows->data + slot->start - 1, slot->len + 2, 60);
	return jlex_printable(rows->data + slot->start, slot->len, 60);
}

/*
 * ms_value
 *		Epoch milliseconds from a number or a string of digits
 */
static int64
ms_value(const ColumnPlan *col, const CloverFileRows *rows,
		 const JsonSlot *slot)
{
	int64		ms;
	bool		overflow;

	if ((slot->type != SLOT_NUMBER && slot->type != SLOT_STRING) ||
		slot->escaped ||
		!jlex_int64(rows->data + slot->start, slot->len, &ms,
							&overflow))
		conversion_error(col,
						 psprintf("Value %s is not a whole number of epoch milliseconds.",
								  value_for_message(rows, slot)));
	return ms;
}

/*
 * ms_to_timestamp
 *		Epoch milliseconds to a finite TimestampTz, or an error
 */
static TimestampTz
ms_to_timestamp(const ColumnPlan *col, int64 ms)
{
	TimestampTz ts;

	if (!CloverUnixMsToTimestamp(ms, &ts))
		conversion_error(col,
						 psprintf("Epoch milliseconds " INT64_FORMAT " are out of range for type %s.",
								  ms, format_type_be(col->typid)));
	return ts;
}

/*
 * number_text
 *		A JSON number's text as jsonb gives it back (raw->>'key'), palloc'd
 *
 * jsonb keeps a number as a numeric: an integer's digits stay as written
 * (JSON allows no leading zeros), but "-0" becomes "0", "1e2" becomes
 * "100" and "3.0E-2" becomes "0.030".
 */
static char *
number_text(const CloverFileRows *rows, const JsonSlot *slot)
{
	const char *src = rows->data + slot->start;
	char	   *copy = pnstrdup(src, slot->len);
	Datum		num;

	if (strpbrk(copy, ".eE") == NULL && strcmp(copy, "-0") != 0)
		return copy;
	num = DirectFunctionCall3(numeric_in, CStringGetDatum(copy),
							  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	return DatumGetCString(DirectFunctionCall1(numeric_out, num));
}

/*
 * integer_value
 *		An integer column's value from a JSON number, range-checked
 *
 * A number with a fraction or an exponent is an integer if jsonb's text
 * of it is (1e2, 5.0e1), as for (raw->>'key')::bigint.
 */
static int64
integer_value(const ColumnPlan *col, const CloverFileRows *rows,
			  const JsonSlot *slot, int64 min, int64 max)
{
	int64		v;
	bool		overflow;
	bool		ok;

	ok = jlex_int64(rows->data + slot->start, slot->len, &v,
							&overflow);
	if (!ok && !overflow)
	{
		char	   *text = number_text(rows, slot);

		ok = jlex_int64(text, strlen(text), &v, &overflow);
	}
	if (!ok)
		conversion_error(col,
						 psprintf(overflow ?
								  "Value %s is out of range for type %s." :
								  "Value %s is not an integer.",
								  value_for_message(rows, slot),
								  format_type_be(col->basetypid)));
	if (v < min || v > max)
		conversion_error(col,
						 psprintf("Value %s is out of range for type %s.",
								  value_for_message(rows, slot),
								  format_type_be(col->basetypid)));
	return v;
}

/*
 * jsonb_from_raw
 *		Cut a jsonb column's value out of the row's whole-object jsonb
 *
 * A column without keys (the whole object) is raw itself.
 */
static Datum
jsonb_from_raw(const ColumnPlan *col, Datum raw, bool *isnull)
{
	JsonbContainer *container = &DatumGetJsonbP(raw)->root;
	JsonbValue	v;
	int			i;

	*isnull = false;
	if (col->nkeys == 0)
		return raw;
	for (i = 0; i < col->nkeys; i++)
	{
		if (!JsonContainerIsObject(container) ||
			getKeyJsonValueFromContainer(container, col->keys[i],
										 strlen(col->keys[i]), &v) == NULL)
		{
			*isnull = true;
			return (Datum) 0;
		}
		if (i < col->nkeys - 1)
		{
			if (v.type != jbvBinary)
			{
				*isnull = true;
				return (Datum) 0;
			}
			container = v.val.binary.data;
		}
	}
	if (v.type == jbvNull)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return JsonbPGetDatum(JsonbValueToJsonb(&v));
}

/*
 * slot_jsonb
 *		A value (not null) as jsonb: cut from raw if the row has it, else
 *		built from the file's bytes
 */
static Datum
slot_jsonb(const ColumnPlan *col, const CloverFileRows *rows,
		   const JsonSlot *slot, Datum raw, bool have_raw, bool *isnull)
{
	*isnull = false;
	if (have_raw)
		return jsonb_from_raw(col, raw, isnull);
	if (slot->type == SLOT_OBJECT || slot->type == SLOT_ARRAY)
		return build_jsonb(rows->plan, rows->data, slot->start,
						   slot->start + slot->len);
	return DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(slot_json_text(rows, slot)));
}

/*
 * value_text
 *		A value (not null) as text, exactly as raw->>'key' gives it: a
 *		string's contents, a number as jsonb keeps it, true or false, an
 *		object or array as jsonb's text; palloc'd, in the database encoding
 */
static char *
value_text(const ColumnPlan *col, const CloverFileRows *rows,
		   const JsonSlot *slot, Datum raw, bool have_raw)
{
	Jsonb	   *jb;
	bool		isnull;

	switch ((SlotType) slot->type)
	{
		case SLOT_STRING:
			return slot_text(col, rows, slot);
		case SLOT_NUMBER:
			return number_text(rows, slot);
		case SLOT_TRUE:
			return pstrdup("true");
		case SLOT_FALSE:
			return pstrdup("false");
		default:
			break;
	}
	jb = DatumGetJsonbP(slot_jsonb(col, rows, slot, raw, have_raw, &isnull));
	Assert(!isnull);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/*
 * convert_fast
 *		A column's Datum where a shortcut gives what the type's input
 *		function would give: true if it did
 *
 * Timestamps and dates read epoch milliseconds, which no input function
 * does; json keeps the value's own text; jsonb is built or cut from raw.
 */
static bool
convert_fast(const ColumnPlan *col, const CloverFileRows *rows,
			 const JsonSlot *slot, Datum raw, bool have_raw, Datum *result,
			 bool *isnull)
{
	switch (col->kind)
	{
		case CONV_TEXT:
			if (slot->type != SLOT_STRING || slot->escaped ||
				!rows->plan->db_utf8)
				return false;
			*result = PointerGetDatum(cstring_to_text_with_len(rows->data + slot->start,
															   slot->len));
			return true;
		case CONV_JSON:
			*result = CStringGetTextDatum(slot_json_text(rows, slot));
			return true;
		case CONV_JSONB:
			*result = slot_jsonb(col, rows, slot, raw, have_raw, isnull);
			return true;
		case CONV_TIMESTAMPTZ:
		case CONV_TIMESTAMP:
			{
				TimestampTz ts = ms_to_timestamp(col, ms_value(col, rows, slot));

				*result = TimestampTzGetDatum(ts);
				if (col->basetypmod >= 0)
					*result = DirectFunctionCall2(col->kind == CONV_TIMESTAMPTZ ?
												  timestamptz_scale : timestamp_scale,
												  *result,
												  Int32GetDatum(col->basetypmod));
				return true;
			}
		case CONV_DATE:
			{
				int64		ms = ms_value(col, rows, slot);
				int64		days = ms / 86400000 - (ms % 86400000 < 0 ? 1 : 0);
				int64		d = days - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE);

				if (!IS_VALID_DATE(d))
					conversion_error(col,
									 psprintf("Epoch milliseconds " INT64_FORMAT " are out of range for type date.",
											  ms));
				*result = DateADTGetDatum((DateADT) d);
				return true;
			}
		case CONV_BOOL:
			if (slot->type != SLOT_TRUE && slot->type != SLOT_FALSE)
				return false;
			*result = BoolGetDatum(slot->type == SLOT_TRUE);
			return true;
		default:
			break;
	}

	if (slot->type != SLOT_NUMBER)
		return false;
	switch (col->kind)
	{
		case CONV_INT2:
			*result = Int16GetDatum((int16) integer_value(col, rows, slot,
														  PG_INT16_MIN, PG_INT16_MAX));
			return true;
		case CONV_INT4:
			*result = Int32GetDatum((int32) integer_value(col, rows, slot,
														  PG_INT32_MIN, PG_INT32_MAX));
			return true;
		case CONV_INT8:
			*result = Int64GetDatum(integer_value(col, rows, slot,
												  PG_INT64_MIN, PG_INT64_MAX));
			return true;
		case CONV_NUMERIC:
			*result = DirectFunctionCall3(numeric_in,
										  CStringGetDatum(pnstrdup(rows->data + slot->start,
																   slot->len)),
										  ObjectIdGetDatum(InvalidOid),
										  Int32GetDatum(col->basetypmod));
			return true;
		default:
			return false;
	}
}

/*
 * convert_slot
 *		One column's Datum from its slot, before any domain check
 *
 * raw is the row's whole-object jsonb, if have_raw.  Whatever has no
 * shortcut goes through the type's input function with the text
 * raw->>'key' gives, so a value is what (raw->>'key')::type makes of it.
 */
static Datum
convert_slot(const ColumnPlan *col, const CloverFileRows *rows,
			 const JsonSlot *slot, Datum raw, bool have_raw, bool *isnull)
{
	Datum		result;
	char	   *text;

	*isnull = false;
	if (slot->type == SLOT_ABSENT || slot->type == SLOT_NULL)
	{
		*isnull = true;
		return (Datum) 0;
	}
	if (convert_fast(col, rows, slot, raw, have_raw, &result, isnull))
		return result;

	text = value_text(col, rows, slot, raw, have_raw);
	switch (col->kind)
	{
		case CONV_TEXT:
			return CStringGetTextDatum(text);
		case CONV_INT2:
			return DirectFunctionCall1(int2in, CStringGetDatum(text));
		case CONV_INT4:
			return DirectFunctionCall1(int4in, CStringGetDatum(text));
		case CONV_INT8:
			return DirectFunctionCall1(int8in, CStringGetDatum(text));
		case CONV_NUMERIC:
			return DirectFunctionCall3(numeric_in, CStringGetDatum(text),
									   ObjectIdGetDatum(InvalidOid),
									   Int32GetDatum(col->basetypmod));
		case CONV_BOOL:
			return DirectFunctionCall1(boolin, CStringGetDatum(text));
		default:
			return InputFunctionCall(unconstify(FmgrInfo *, &col->input), text,
									 col->ioparam, col->basetypmod);
	}
}

/*
 * fill_column
 *		Convert one column of a row into values/nulls, then apply its
 *		domain's constraints (NOT NULL too, as a cast to the domain would)
 */
static void
fill_column(const ColumnPlan *col, const CloverFileRows *rows,
			const JsonSlot *slot, Datum raw, bool have_raw,
			Datum *values, bool *nulls)
{
	int			a = col->attidx;

	values[a] = convert_slot(col, rows, slot, raw, have_raw, &nulls[a]);
	if (col->is_domain)
		domain_check(values[a], nulls[a], col->typid,
					 col->domain_extra, col->domain_cxt);
}

/*
 * fill_error_callback
 *		Error context: which column of which object of which export
 */
static void
fill_error_callback(void *arg)
{
	FillContext *ctx = (FillContext *) arg;

	if (ctx->col == NULL)
		return;
	errcontext("column \"%s\" of Clover object \"%s\" (element %d of file %d of %d of export \"%s\")",
			   ctx->col->attname, CloverRowId(ctx->rows, ctx->idx),
			   ctx->idx + 1, ctx->origin->file_no, ctx->origin->nfiles,
			   ctx->origin->export_id);
}

/*
 * CloverFillRow
 *		Fill values/nulls (one per attribute of the relation) for element idx
 *
 * Columns the plan does not need are set to NULL.  Datums are allocated in
 * the current memory context.
 */
void
CloverFillRow(const CloverRowPlan *plan, const CloverFileRows *rows, int idx,
			  const CloverRowOrigin *origin, int natts,
			  Datum *values, bool *nulls)
{
	ErrorContextCallback errcallback;
	FillContext ctx;
	JsonSlot	whole;
	Datum		raw = (Datum) 0;
	bool		have_raw = false;
	int			i;

	memset(nulls, true, sizeof(bool) * natts);
	if (plan->ncolumns == 0)
		return;

	ctx.rows = rows;
	ctx.idx = idx;
	ctx.origin = origin;
	ctx.col = NULL;
	errcallback.callback = fill_error_callback;
	errcallback.arg = &ctx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	/* the whole object as jsonb first: other jsonb columns reuse it */
	whole.type = SLOT_OBJECT;
	whole.escaped = false;
	whole.start = rows->elem_start[idx];
	whole.len = rows->elem_end[idx] - rows->elem_start[idx];
	if (plan->raw_jsonb_col >= 0)
	{
		const ColumnPlan *col = &plan->columns[plan->raw_jsonb_col];

		ctx.col = col;
		fill_column(col, rows, &whole, (Datum) 0, false, values, nulls);
		raw = values[col->attidx];
		have_raw = true;
	}

	for (i = 0; i < plan->ncolumns; i++)
	{
		const ColumnPlan *col = &plan->columns[i];

		if (i == plan->raw_jsonb_col)
			continue;
		ctx.col = col;
		fill_column(col, rows,
					col->whole_object ? &whole : row_slot(rows, idx, col->slot),
					raw, have_raw, values, nulls);
	}

	error_context_stack = errcallback.previous;
}
