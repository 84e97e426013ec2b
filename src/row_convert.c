/*-------------------------------------------------------------------------
 *
 * row_convert.c
 *		  One element of a split file into the Datums of a row
 *
 * CloverFillRow converts only the slots the plan asks for: numbers and
 * strings directly; jsonb objects and arrays through jsonb_build.c; other
 * types through PostgreSQL's own input functions, on the text raw->>'key'
 * would give; then a domain's constraints.  Errors name the column, the
 * object and the export (fill_error_callback), and with rows_from the
 * element of the object's list that is the row.
 *
 * IDENTIFICATION
 *		  src/row_convert.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "json_lex.h"
#include "mb/pg_wchar.h"
#include "row_path.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/* Largest id echoed in a message */
#define MAX_ID_ECHO			64

/* Error context of CloverFillRow */
typedef struct FillContext
{
	const CloverFileRows *rows;
	int			idx;
	const CloverRowOrigin *origin;
	const ColumnPlan *col;
} FillContext;

static Datum convert_slot(const ColumnPlan *col, const CloverFileRows *rows,
						  const JsonSlot *slot, Datum raw, bool have_raw,
						  bool *isnull);
static void fill_error_callback(void *arg);

/*
 * slot_epoch_ms
 *		Epoch milliseconds from a number or an unescaped string of digits;
 *		false if the value is neither
 */
static inline bool
slot_epoch_ms(const CloverFileRows *rows, const JsonSlot *slot, int64 *ms)
{
	bool		overflow;

	return (slot->type == SLOT_NUMBER || slot->type == SLOT_STRING) &&
		!slot->escaped &&
		jlex_int64(rows->data + slot->start, slot->len, ms, &overflow);
}

/*
 * CloverRowCreatedTime
 *		The element's createdTime; false if absent or not whole milliseconds
 */
bool
CloverRowCreatedTime(const CloverFileRows *rows, int idx, TimestampTz *created)
{
	int64		ms;

	if (!slot_epoch_ms(rows, row_slot(rows, idx, rows->plan->created_slot),
					   &ms))
		return false;
	return CloverUnixMsToTimestamp(ms, created);
}

/*
 * CloverRowObjectNo
 *		The 1-based number, in the file's "elements", of the object a row
 *		comes from, for messages
 */
int
CloverRowObjectNo(const CloverFileRows *rows, int idx)
{
	return rows->row_object ? rows->row_object[idx] + 1 : idx + 1;
}

/*
 * CloverRowId
 *		The object's "id" for messages: printable, truncated, palloc'd
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

	if (!slot_epoch_ms(rows, slot, &ms))
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
 * timestamp_datum
 *		A timestamptz or timestamp column's value from epoch milliseconds,
 *		rounded to the column's precision
 *
 * A timestamp column holds UTC wall time, the same microseconds.
 */
static Datum
timestamp_datum(const ColumnPlan *col, const CloverFileRows *rows,
				const JsonSlot *slot)
{
	Datum		result;

	result = TimestampTzGetDatum(ms_to_timestamp(col, ms_value(col, rows, slot)));
	if (col->basetypmod >= 0)
		result = DirectFunctionCall2(col->kind == CONV_TIMESTAMPTZ ?
									 timestamptz_scale : timestamp_scale,
									 result,
									 Int32GetDatum(col->basetypmod));
	return result;
}

/*
 * date_datum
 *		A date column's value from epoch milliseconds: the UTC day
 */
static Datum
date_datum(const ColumnPlan *col, const CloverFileRows *rows,
		   const JsonSlot *slot)
{
	int64		ms = ms_value(col, rows, slot);
	int64		d = CloverUnixMsToDays(ms);

	if (!IS_VALID_DATE(d))
		conversion_error(col,
						 psprintf("Epoch milliseconds " INT64_FORMAT " are out of range for type date.",
								  ms));
	return DateADTGetDatum((DateADT) d);
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
 *		built from the file's bytes (jsonb_build.c), else jsonb_in's
 *
 * jsonb_in gets scalars, and whatever the builder leaves to it: strings
 * PostgreSQL cannot hold, databases that are not UTF-8.
 */
static Datum
slot_jsonb(const ColumnPlan *col, const CloverFileRows *rows,
		   const JsonSlot *slot, Datum raw, bool have_raw, bool *isnull)
{
	Datum		result;

	*isnull = false;
	if (have_raw)
		return jsonb_from_raw(col, raw, isnull);
	if ((slot->type == SLOT_OBJECT || slot->type == SLOT_ARRAY) &&
		rows->plan->db_utf8 &&
		CloverBuildJsonb(rows->data, slot->start, slot->start + slot->len,
						 &result))
		return result;
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
			*result = timestamp_datum(col, rows, slot);
			return true;
		case CONV_DATE:
			*result = date_datum(col, rows, slot);
			return true;
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
	if (ctx->rows->row_item)
		errcontext("column \"%s\" of element %d of \"%s\" in Clover object \"%s\" (element %d of %s)",
				   ctx->col->attname, ctx->rows->row_item[ctx->idx] + 1,
				   ctx->rows->plan->rows_from, CloverRowId(ctx->rows, ctx->idx),
				   CloverRowObjectNo(ctx->rows, ctx->idx), ctx->origin->source);
	else
		errcontext("column \"%s\" of Clover object \"%s\" (element %d of %s)",
				   ctx->col->attname, CloverRowId(ctx->rows, ctx->idx),
				   ctx->idx + 1, ctx->origin->source);
}

/*
 * report_not_a_list
 *		Report an object whose rows_from value is there but not a list
 */
static void
report_not_a_list(const CloverRowPlan *plan, const CloverFileRows *rows,
				  int idx, const CloverRowOrigin *origin)
{
	static const char *const names[] = {
		[SLOT_STRING] = "a string",
		[SLOT_NUMBER] = "a number",
		[SLOT_TRUE] = "a boolean",
		[SLOT_FALSE] = "a boolean",
		[SLOT_OBJECT] = "an object",
	};
	const JsonSlot *list = row_slot(rows, idx, plan->list_slot);

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("\"%s\" of Clover object \"%s\" is not a list",
					plan->rows_from, CloverRowId(rows, idx)),
			 errdetail("It is %s, in element %d of %s; the rows of a table with rows_from are the elements of a JSON array.",
					   names[list->type], CloverRowObjectNo(rows, idx),
					   origin->source),
			 errhint("Check the table's option rows_from: Clover wraps a nested list in an object, as in \"lineItems.elements\".")));
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
	if (plan->elem_root && rows->row_item[idx] < 0)
		report_not_a_list(plan, rows, idx, origin);
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

	/*
	 * The whole object (with rows_from, the element, of any type) as jsonb
	 * first: other jsonb columns of the same object reuse it
	 */
	if (plan->elem_root)
		whole = *row_slot(rows, idx, plan->elem_slot);
	else
	{
		whole.type = SLOT_OBJECT;
		whole.escaped = false;
		whole.start = rows->elem_start[idx];
		whole.len = rows->elem_end[idx] - rows->elem_start[idx];
	}
	if (plan->raw_jsonb_col >= 0)
	{
		const ColumnPlan *col = &plan->columns[plan->raw_jsonb_col];

		ctx.col = col;
		fill_column(col, rows, &whole, (Datum) 0, false, values, nulls);
		raw = values[col->attidx];
		have_raw = !nulls[col->attidx];
	}

	for (i = 0; i < plan->ncolumns; i++)
	{
		const ColumnPlan *col = &plan->columns[i];

		if (i == plan->raw_jsonb_col)
			continue;
		ctx.col = col;
		fill_column(col, rows,
					col->whole_object ? &whole : row_slot(rows, idx, col->slot),
					raw, have_raw && !col->from_parent, values, nulls);
	}

	error_context_stack = errcallback.previous;
}
