/*-------------------------------------------------------------------------
 *
 * windows.c
 *		  Translate scan quals on the time column into 30-day export windows
 *
 * Rules this file relies on:
 *
 * - Only "timecol op value" clauses are used, where op is a btree
 *	 comparison of the time column's type (=, <, <=, >, >=, so BETWEEN too),
 *	 and value is a date, timestamp or timestamptz expression with no Var of
 *	 the scanned table and no volatile function.  Stable functions (now())
 *	 and Params are allowed: their values are computed when the scan starts,
 *	 never at plan time.  Every qual is still checked by the executor, so
 *	 the windows only need to cover the answer, but they cover it exactly.
 *
 * - Bounds are turned into one half-open range [lo, hi) of microseconds in
 *	 UTC.  A timestamp (without time zone) column holds UTC wall time, so
 *	 both column types share that axis.  Values of other types are
 *	 converted exactly as the cross-type comparison operators would convert
 *	 them (date and timestamp via the session time zone).
 *
 * - No lower bound: the table's history_start, else the caller reports an
 *	 error.  No upper bound, or one in the future: the statement's start.
 *	 A NULL bound or an empty range means no export at all.
 *
 * - The range is cut into windows of at most 30 days (Clover's limit) as
 *	 counted in the epoch milliseconds sent to Clover.  Windows meet
 *	 exactly: each object belongs to the one window with
 *	 lo <= createdTime < hi, whatever Clover does with endTime.
 *
 * IDENTIFICATION
 *		  src/windows.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* microseconds between the Unix epoch and PostgreSQL's (2000-01-01) */
#define UNIX_TO_PG_EPOCH_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static bool is_time_var(Node *node, RelOptInfo *baserel, AttrNumber timeattno);
static CloverBoundKind strategy_to_kind(int strategy, bool commuted);
static bool bound_to_utc(Datum value, Oid valuetype, Oid timetype,
						 TimestampTz *result);

/*
 * is_time_var
 *		Is node the time column of the scanned relation?
 */
static bool
is_time_var(Node *node, RelOptInfo *baserel, AttrNumber timeattno)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;

	return node && IsA(node, Var) &&
		((Var *) node)->varno == (int) baserel->relid &&
		((Var *) node)->varattno == timeattno &&
		((Var *) node)->varlevelsup == 0;
}

static CloverBoundKind
strategy_to_kind(int strategy, bool commuted)
{
	switch (strategy)
	{
		case BTLessStrategyNumber:
			return commuted ? CLOVER_BOUND_GT : CLOVER_BOUND_LT;
		case BTLessEqualStrategyNumber:
			return commuted ? CLOVER_BOUND_GE : CLOVER_BOUND_LE;
		case BTGreaterEqualStrategyNumber:
			return commuted ? CLOVER_BOUND_LE : CLOVER_BOUND_GE;
		case BTGreaterStrategyNumber:
			return commuted ? CLOVER_BOUND_LT : CLOVER_BOUND_GT;
	}
	return CLOVER_BOUND_EQ;
}

/*
 * CloverIsTimeBoundClause
 *		If rinfo bounds the time column, describe the bound in *bound
 *
 * The value side may reference other relations (a join clause of a
 * parameterized path): the planner turns those Vars into Params.
 */
bool
CloverIsTimeBoundClause(RelOptInfo *baserel, AttrNumber timeattno,
						Oid timetype, RestrictInfo *rinfo,
						CloverTimeBound *bound)
{
	OpExpr	   *op;
	Node	   *left,
			   *right,
			   *value;
	bool		commuted;
	Oid			opfamily,
				valuetype;
	int			strategy;

	if (!IsA(rinfo->clause, OpExpr))
		return false;
	op = (OpExpr *) rinfo->clause;
	if (list_length(op->args) != 2)
		return false;
	left = linitial(op->args);
	right = lsecond(op->args);

	if (is_time_var(left, baserel, timeattno))
	{
		value = right;
		commuted = false;
		if (bms_is_member(baserel->relid, rinfo->right_relids))
			return false;
	}
	else if (is_time_var(right, baserel, timeattno))
	{
		value = left;
		commuted = true;
		if (bms_is_member(baserel->relid, rinfo->left_relids))
			return false;
	}
	else
		return false;

	valuetype = exprType(value);
	if (valuetype != TIMESTAMPTZOID && valuetype != TIMESTAMPOID &&
		valuetype != DATEOID)
		return false;
	if (contain_volatile_functions(value))
		return false;

	opfamily = get_opclass_family(GetDefaultOpClass(timetype, BTREE_AM_OID));
	strategy = get_op_opfamily_strategy(op->opno, opfamily);
	if (strategy == 0)
		return false;			/* <> or an operator of another family */

	bound->kind = strategy_to_kind(strategy, commuted);
	bound->value = (Expr *) value;
	bound->rinfo = rinfo;
	return true;
}

/*
 * CloverExtractTimeBounds
 *		The CloverTimeBounds among a list of RestrictInfos
 */
List *
CloverExtractTimeBounds(RelOptInfo *baserel, AttrNumber timeattno,
						Oid timetype, List *clauses)
{
	List	   *bounds = NIL;
	ListCell   *lc;

	if (timeattno == InvalidAttrNumber)
		return NIL;

	foreach(lc, clauses)
	{
		CloverTimeBound bound;

		if (CloverIsTimeBoundClause(baserel, timeattno, timetype,
									lfirst_node(RestrictInfo, lc), &bound))
		{
			CloverTimeBound *b = palloc(sizeof(CloverTimeBound));

			*b = bound;
			bounds = lappend(bounds, b);
		}
	}
	return bounds;
}

void
CloverRangeInit(CloverRange *range)
{
	memset(range, 0, sizeof(*range));
	TIMESTAMP_NOBEGIN(range->lo);
	TIMESTAMP_NOEND(range->hi);
}

/*
 * bound_to_utc
 *		Convert a bound value to the time column's UTC microsecond axis
 *
 * The conversion is the one the cross-type comparison operator applies, so
 * the resulting range is exact.  Overflow yields -infinity or +infinity.
 */
static bool
bound_to_utc(Datum value, Oid valuetype, Oid timetype, TimestampTz *result)
{
	int			overflow = 0;

	if (timetype == TIMESTAMPTZOID)
	{
		if (valuetype == DATEOID)
			*result = date2timestamptz_opt_overflow(DatumGetDateADT(value),
													&overflow);
		else if (valuetype == TIMESTAMPOID)
			*result = timestamp2timestamptz_opt_overflow(DatumGetTimestamp(value),
														 &overflow);
		else
			*result = DatumGetTimestampTz(value);
	}
	else
	{
		if (valuetype == DATEOID)
			*result = date2timestamp_opt_overflow(DatumGetDateADT(value),
												  &overflow);
		else if (valuetype == TIMESTAMPTZOID)
			*result = DatumGetTimestamp(DirectFunctionCall1(timestamptz_timestamp,
															value));
		else
			*result = DatumGetTimestamp(value);
	}

	if (overflow < 0)
		TIMESTAMP_NOBEGIN(*result);
	else if (overflow > 0)
		TIMESTAMP_NOEND(*result);
	return true;
}

/*
 * CloverRangeApplyBound
 *		Narrow the range by one evaluated bound
 */
void
CloverRangeApplyBound(CloverRange *range, CloverBoundKind kind,
					  Datum value, bool isnull, Oid valuetype, Oid timetype)
{
	TimestampTz v;
	TimestampTz lo,
				hi;

	if (isnull)
	{
		/* comparisons with NULL are never true */
		range->empty = true;
		return;
	}
	bound_to_utc(value, valuetype, timetype, &v);

	/* the bound as a half-open interval [lo, hi); infinities mean none */
	TIMESTAMP_NOBEGIN(lo);
	TIMESTAMP_NOEND(hi);
	switch (kind)
	{
		case CLOVER_BOUND_GE:
			lo = v;
			break;
		case CLOVER_BOUND_GT:
			if (TIMESTAMP_IS_NOEND(v))
				range->empty = true;
			lo = TIMESTAMP_NOT_FINITE(v) ? v : v + 1;
			break;
		case CLOVER_BOUND_LE:
			if (TIMESTAMP_IS_NOBEGIN(v))
				range->empty = true;
			hi = TIMESTAMP_NOT_FINITE(v) ? v : v + 1;
			break;
		case CLOVER_BOUND_LT:
			hi = v;
			break;
		case CLOVER_BOUND_EQ:
			if (TIMESTAMP_NOT_FINITE(v))
				range->empty = true;
			lo = v;
			hi = v + 1;
			break;
	}

	if (TIMESTAMP_IS_NOEND(lo) || TIMESTAMP_IS_NOBEGIN(hi))
		range->empty = true;
	if (!TIMESTAMP_IS_NOBEGIN(lo))
	{
		range->has_lo = true;
		if (lo > range->lo)
			range->lo = lo;
	}
	if (!TIMESTAMP_IS_NOEND(hi) && hi < range->hi)
		range->hi = hi;
}

/*
 * CloverRangeFinish
 *		Fill in defaults for missing bounds and decide emptiness
 *
 * now is the statement's start: nothing later can be exported yet, so it
 * also caps an upper bound in the future.  If there is still no lower bound
 * afterwards, range->has_lo stays false and the caller reports it.
 */
void
CloverRangeFinish(CloverRange *range, const char *history_start,
				  TimestampTz now)
{
	if (range->empty)
		return;

	if (!range->has_lo && history_start != NULL)
	{
		range->lo = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
															CStringGetDatum(history_start),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));
		range->has_lo = true;
		range->lo_from_history = true;
	}
	if (TIMESTAMP_IS_NOEND(range->hi) || range->hi > now)
	{
		range->hi = now;
		range->hi_from_now = true;
	}
	if (range->has_lo && range->lo >= range->hi)
		range->empty = true;
}

int64
CloverTimestampToUnixMs(TimestampTz ts)
{
	int64		us = ts + UNIX_TO_PG_EPOCH_USECS;

	/* floor division, for times before 1970 too */
	return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
}

TimestampTz
CloverUnixMsToTimestamp(int64 ms)
{
	return ms * 1000 - UNIX_TO_PG_EPOCH_USECS;
}

/*
 * CloverSplitRange
 *		Cut a finished, non-empty range into export windows
 *
 * Window boundaries fall on whole milliseconds, counted from the range's
 * start, so every window asks Clover for at most CLOVER_MAX_WINDOW_MS.
 * Returns a palloc'd array of *nwindows windows.
 */
CloverWindow *
CloverSplitRange(const CloverRange *range, int *nwindows)
{
	int64		lo_ms,
				hi_ms,
				n,
				i;
	CloverWindow *windows;

	Assert(range->has_lo && !range->empty);
	lo_ms = CloverTimestampToUnixMs(range->lo);
	/* ceiling of hi */
	hi_ms = CloverTimestampToUnixMs(range->hi - 1) + 1;

	n = (hi_ms - lo_ms + CLOVER_MAX_WINDOW_MS - 1) / CLOVER_MAX_WINDOW_MS;
	if (n > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("time range from %s to %s needs " INT64_FORMAT " exports",
						CloverFormatUtc(range->lo), CloverFormatUtc(range->hi), n),
				 errhint("Restrict the query's created_time range.")));

	windows = palloc(sizeof(CloverWindow) * n);
	for (i = 0; i < n; i++)
	{
		CloverWindow *w = &windows[i];

		w->start_ms = lo_ms + i * CLOVER_MAX_WINDOW_MS;
		w->end_ms = Min(w->start_ms + CLOVER_MAX_WINDOW_MS, hi_ms);
		w->lo = (i == 0) ? range->lo : CloverUnixMsToTimestamp(w->start_ms);
		w->hi = (i == n - 1) ? range->hi : CloverUnixMsToTimestamp(w->end_ms);
	}
	*nwindows = (int) n;
	return windows;
}

/*
 * CloverFormatUtc
 *		A time as "YYYY-MM-DD HH:MM:SS[.ffffff] UTC", whatever the session's
 *		TimeZone, palloc'd
 */
char *
CloverFormatUtc(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_IS_NOBEGIN(ts))
		return pstrdup("-infinity");
	if (TIMESTAMP_IS_NOEND(ts))
		return pstrdup("infinity");
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("(out of range)");
	if (fsec != 0)
		return psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d UTC",
						tm.tm_year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d UTC",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *
CloverBoundKindOperator(CloverBoundKind kind)
{
	switch (kind)
	{
		case CLOVER_BOUND_GE:
			return ">=";
		case CLOVER_BOUND_GT:
			return ">";
		case CLOVER_BOUND_LE:
			return "<=";
		case CLOVER_BOUND_LT:
			return "<";
		case CLOVER_BOUND_EQ:
			return "=";
	}
	return "?";
}
