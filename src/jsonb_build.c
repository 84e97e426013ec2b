/*-------------------------------------------------------------------------
 *
 * jsonb_build.c
 *		  jsonb straight from validated JSON bytes, as jsonb_in builds it
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
 * instead (the caller's part), so that its errors stay exactly
 * PostgreSQL's.
 *
 * This file re-creates jsonb_in's result, key order included, from
 * PostgreSQL's jsonb.h; a PostgreSQL upgrade that changes jsonb is most
 * likely to break it, and test/fuzz.sh compares the two.
 *
 * IDENTIFICATION
 *		  src/jsonb_build.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "json_lex.h"
#include "miscadmin.h"
#include "row_path.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

typedef struct JsonbBuild
{
	const unsigned char *buf;
	size_t		pos;
	size_t		end;
} JsonbBuild;

/*
 * build_skip_ws
 *		Move past white space
 */
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

static bool build_value(JsonbBuild *b, JsonbValue *v);

/*
 * build_container
 *		The object or array at b->pos into *v; false to let jsonb_in do the
 *		whole value
 */
static bool
build_container(JsonbBuild *b, JsonbValue *v)
{
	bool		object = (b->buf[b->pos] == '{');
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
				b->pos++;		/* ':' */
				if (!build_value(b, &pairs[n].value))
					return false;
			}
			else if (!build_value(b, &elems[n]))
				return false;
			n++;
			build_skip_ws(b);
			if (b->buf[b->pos++] != ',')
				break;			/* the closing bracket */
		}
	}
	if (n > (int) JB_CMASK)
		return false;			/* let jsonb_in report the size */
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

/*
 * build_number
 *		The number at b->pos into *v: integers without numeric_in
 */
static void
build_number(JsonbBuild *b, JsonbValue *v)
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
	if (jlex_int64((const char *) &b->buf[start], (int) (b->pos - start),
				   &i, &overflow))
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
		return build_container(b, v);
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
		build_number(b, v);
	return true;
}

/*
 * CloverBuildJsonb
 *		The object or array in data[start, end) as jsonb, as jsonb_in would
 *		make it; false if only jsonb_in may decide (the caller then calls it)
 *
 * data[start, end) must be an object or array the splitter has validated,
 * in UTF-8, and the database encoding must be UTF-8 too: strings are taken
 * over as they are.  The result is palloc'd in the current memory context.
 */
bool
CloverBuildJsonb(const char *data, size_t start, size_t end, Datum *result)
{
	JsonbBuild	b;
	JsonbValue	v;

	Assert(data[start] == '{' || data[start] == '[');
	b.buf = (const unsigned char *) data;
	b.pos = start;
	b.end = end;
	if (!build_value(&b, &v))
		return false;
	*result = JsonbPGetDatum(JsonbValueToJsonb(&v));
	return true;
}
