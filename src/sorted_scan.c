/*-------------------------------------------------------------------------
 *
 * sorted_scan.c
 *		  Scans that return their rows ordered by the time column
 *
 * A query that wants its rows by created_time (ORDER BY created_time
 * [DESC], often with a LIMIT, or a merge join on it) gets them from the
 * scan itself: the windows run in the requested direction (oldest or
 * newest first), and each window's rows are sorted locally before any of
 * them is returned.  So "the latest orders" need the newest window only.
 *
 * Why the order holds:
 *
 * - Windows partition createdTime, and the value of the time column is a
 *	 non-decreasing function of createdTime: a timestamptz column (or a
 *	 domain over one) is createdTime rounded to the column's precision, and
 *	 a timestamp column is its UTC wall time, rounded likewise (never the
 *	 session's local time, which a DST change would run backwards).  So
 *	 every row of an earlier window sorts before or equal to every row of a
 *	 later one, and sorting within each window orders the whole scan.
 * - Nothing is assumed about the order of Clover's files or of the objects
 *	 in them: each window is sorted by PostgreSQL's tuplesort, with the
 *	 column's own ordering operator, in work_mem (spilling to disk past it).
 * - The time column is never NULL: an object without a valid createdTime
 *	 fails the scan (clover_export_fdw.c).  So ASC NULLS LAST and DESC
 *	 NULLS FIRST, the pathkeys declared here, hold trivially.
 * - Rows with equal times come in no particular order.
 *
 * A window is read whole before its first row is returned, which must not
 * count as "the consumer wants more than a peek" (exports.c would then
 * create the next window's export): the run is told to prefetch only once
 * the consumer has taken SORTED_PREFETCH_ROWS rows of a sorted window, or
 * has used up a window and asks for the next.
 *
 * IDENTIFICATION
 *		  src/sorted_scan.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/stratnum.h"
#include "clover_export_fdw.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/paths.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/tuplesort.h"
#include "utils/typcache.h"

/*
 * Rows of a sorted window the consumer takes before the run may prefetch:
 * as many as one export file holds at most.  An unsorted scan prefetches
 * once the consumer has finished a file; this is the same amount of
 * interest, counted in returned rows instead of files read (a LIMIT 5 never
 * gets there, so it creates one export).
 */
#define SORTED_PREFETCH_ROWS	CLOVER_MAX_FILE_OBJECTS

/* The sort of one window at a time, for a sorted scan's executor */
struct CloverWindowSort
{
	MemoryContext cxt;			/* where the tuplesorts are made */
	TupleDesc	tupdesc;
	AttrNumber	attno;			/* the time column */
	Oid			sortop;
	bool		nulls_first;
	Tuplesortstate *sort;		/* the window being returned, or NULL */
	bool		sorted;			/* performed: rows can be taken */
	TupleTableSlot *slot;		/* minimal tuples out of the sort */
	int64		taken;			/* rows taken of this window */
};

/*
 * time_column_var
 *		A Var of baserel's time column, as the query's own expressions have
 *		it (its declared type, a domain for a domain column)
 */
static Var *
time_column_var(PlannerInfo *root, RelOptInfo *baserel,
				const CloverTimeColumn *timecol)
{
	RangeTblEntry *rte = planner_rt_fetch(baserel->relid, root);
	Oid			typid;
	int32		typmod;
	Oid			collid;

	get_atttypetypmodcoll(rte->relid, timecol->attno, &typid, &typmod,
						  &collid);
	return makeVar(baserel->relid, timecol->attno, typid, typmod, collid, 0);
}

/*
 * CloverSortedPathkeys
 *		Pathkeys of a scan ordered by the time column (descending or not),
 *		if the query can use that order; else NIL
 *
 * The pathkey is found among the query's equivalence classes, so it is
 * declared only where an ORDER BY or a merge join wants it, with the same
 * operator family; truncate_useless_pathkeys, as for an index, drops it
 * when neither does.  The NULLS order is PostgreSQL's default for the
 * direction.
 */
List *
CloverSortedPathkeys(PlannerInfo *root, RelOptInfo *baserel,
					 const CloverTimeColumn *timecol, bool descending)
{
	Var		   *var;
	TypeCacheEntry *tce;
	Oid			opno;
	List	   *pathkeys;

	if (timecol->attno == InvalidAttrNumber)
		return NIL;
	var = time_column_var(root, baserel, timecol);
	tce = lookup_type_cache(var->vartype, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
	opno = descending ? tce->gt_opr : tce->lt_opr;
	if (!OidIsValid(opno))
		return NIL;
	pathkeys = build_expression_pathkey(root, (Expr *) var, NULL, opno,
										baserel->relids, false);
	return truncate_useless_pathkeys(root, baserel, pathkeys);
}

/*
 * CloverPathkeysDescending
 *		Is the order of a sorted scan's pathkeys (from CloverSortedPathkeys)
 *		descending?
 */
bool
CloverPathkeysDescending(List *pathkeys)
{
	PathKey    *pk = linitial_node(PathKey, pathkeys);

	return pk->pk_strategy == BTGreaterStrategyNumber;
}

/*
 * CloverSortedScanCosts
 *		Turn the costs of an unsorted scan of windows windows and tuples
 *		objects into those of the same scan sorted
 *
 * The sorts add, per window, the comparisons cost_sort charges for its
 * rows: a little more than the unsorted scan, and less than a Sort above
 * it, which sorts all the rows at once (unless the other quals drop most
 * rows before that Sort, while the windows are sorted before any qual
 * runs).  The first row comes once the
 * first window is exported, converted and sorted: its share of the
 * startup, plus those, is the startup cost, so that ORDER BY ... LIMIT,
 * which needs one window, prefers this path.
 */
void
CloverSortedScanCosts(double windows, double tuples, Cost row_cost,
					  Cost *startup, Cost *total)
{
	double		per_window = tuples / windows;
	Cost		sort_one;

	sort_one = 2.0 * cpu_operator_cost * per_window *
		log2(Max(per_window, 2.0));
	*total += windows * sort_one;
	*startup = *startup / windows + per_window * row_cost + sort_one;
}

/*
 * CloverReverseWindows
 *		Put windows in the opposite order (newest first), in place
 */
void
CloverReverseWindows(CloverWindow *windows, int nwindows)
{
	int			i;

	for (i = 0; i < nwindows / 2; i++)
	{
		CloverWindow w = windows[i];

		windows[i] = windows[nwindows - 1 - i];
		windows[nwindows - 1 - i] = w;
	}
}

/*
 * CloverWindowSortCreate
 *		Prepare to sort windows of rows of slot's descriptor by the time
 *		column, in cxt (which must live as long as the scan); slot, a
 *		minimal tuple slot, carries the rows out of the sorts
 */
CloverWindowSort *
CloverWindowSortCreate(MemoryContext cxt, TupleTableSlot *slot,
					   const CloverTimeColumn *timecol, bool descending)
{
	CloverWindowSort *ws = MemoryContextAllocZero(cxt,
												  sizeof(CloverWindowSort));
	TypeCacheEntry *tce;

	tce = lookup_type_cache(timecol->basetype,
							TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
	ws->cxt = cxt;
	ws->tupdesc = slot->tts_tupleDescriptor;
	ws->attno = timecol->attno;
	ws->sortop = descending ? tce->gt_opr : tce->lt_opr;
	ws->nulls_first = descending;
	ws->slot = slot;
	return ws;
}

/*
 * CloverWindowSortPut
 *		Add a row of the window being read
 */
void
CloverWindowSortPut(CloverWindowSort *ws, TupleTableSlot *slot)
{
	Assert(!ws->sorted);
	if (ws->sort == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(ws->cxt);
		Oid			collation = InvalidOid;

		ws->sort = tuplesort_begin_heap(ws->tupdesc, 1, &ws->attno,
										&ws->sortop, &collation,
										&ws->nulls_first, work_mem, NULL,
										TUPLESORT_NONE);
		MemoryContextSwitchTo(old);
	}
	tuplesort_puttupleslot(ws->sort, slot);
}

/*
 * CloverWindowSortPerform
 *		The window is read: sort it, and count the sort for EXPLAIN ANALYZE
 */
void
CloverWindowSortPerform(CloverWindowSort *ws, CloverScanStats *stats)
{
	TuplesortInstrumentation inst;

	ws->sorted = true;
	ws->taken = 0;
	if (ws->sort == NULL)
		return;					/* no row in the window */
	tuplesort_performsort(ws->sort);
	tuplesort_get_stats(ws->sort, &inst);
	stats->windows_sorted++;
	if (inst.spaceType == SORT_SPACE_TYPE_DISK)
		stats->windows_sorted_on_disk++;
}

/*
 * CloverWindowSortNext
 *		The next row of the sorted window into slot; false when the window
 *		is used up (or none was sorted yet), and the next must be read
 *
 * Past SORTED_PREFETCH_ROWS rows of one window, run may prefetch.
 */
bool
CloverWindowSortNext(CloverWindowSort *ws, TupleTableSlot *slot,
					 CloverExportRun *run)
{
	if (!ws->sorted || ws->sort == NULL ||
		!tuplesort_gettupleslot(ws->sort, true, false, ws->slot, NULL))
	{
		CloverWindowSortReset(ws);
		return false;
	}
	ExecCopySlot(slot, ws->slot);
	if (++ws->taken == SORTED_PREFETCH_ROWS)
		CloverRunAllowPrefetch(run);
	return true;
}

/*
 * CloverWindowSortReset
 *		Forget the window being sorted or returned, and its temporary files
 */
void
CloverWindowSortReset(CloverWindowSort *ws)
{
	ExecClearTuple(ws->slot);
	if (ws->sort)
		tuplesort_end(ws->sort);
	ws->sort = NULL;
	ws->sorted = false;
	ws->taken = 0;
}
