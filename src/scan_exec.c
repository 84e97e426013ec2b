/*-------------------------------------------------------------------------
 *
 * scan_exec.c
 *		  Executing a scan: windows, the export run, rows, rescans
 *
 * The executor callbacks of the wrapper.  At the first row the bound
 * expressions are evaluated into a range (time_range.c), cut into windows,
 * and exports.c runs their exports; each file it hands over is split and
 * converted (row_path.h), and only the rows of the file's own window are
 * returned, so that no object comes twice where windows meet.  A table of
 * an e-commerce /v1 list reads pages instead (ecommerce_pages.c), which
 * come as files too; objects an earlier page returned are skipped.  A sorted
 * scan sorts each window (sorted_scan.c).  A rescan with unchanged
 * parameters reads the rows kept in a tuplestore; otherwise it starts a new
 * run over the new bounds.
 *
 * IDENTIFICATION
 *		  src/scan_exec.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "clover_export_fdw.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Let downloads advance every this many rows */
#define PUMP_EVERY_ROWS				64

static void start_scan(ForeignScanState *node, CloverFdwScanState *fsstate);
static void start_pages(CloverFdwScanState *fsstate);
static void pump(CloverFdwScanState *fsstate);
static CloverFetch next_file(CloverFdwScanState *fsstate, bool wait);
static void stop_run(CloverFdwScanState *fsstate);
static double elapsed_since(const struct timespec *start);
static bool uses_exec_param(Node *node, void *context);

/*
 * has_lower_kind
 *		Does a plan's list of bound kinds hold a lower bound?
 */
static bool
has_lower_kind(List *kinds)
{
	ListCell   *lc;

	foreach(lc, kinds)
	{
		CloverBoundKind kind = (CloverBoundKind) (lfirst_int(lc) &
												  ~PLAN_BOUND_ON_DATE);

		if (kind == CLOVER_BOUND_GE || kind == CLOVER_BOUND_GT ||
			kind == CLOVER_BOUND_EQ)
			return true;
	}
	return false;
}

/*
 * cloverBeginForeignScan
 *		Prepare the scan, and start its first export
 */
void
cloverBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	CloverFdwScanState *fsstate;
	RangeTblEntry *rte;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	AttrNumber	timeattno;
	int			sort_dir;

	fsstate = palloc0(sizeof(CloverFdwScanState));
	node->fdw_state = fsstate;
	fsstate->rel = node->ss.ss_currentRelation;
	fsstate->opts = CloverGetOptions(RelationGetRelid(fsstate->rel));
	rte = exec_rt_fetch(fsplan->scan.scanrelid, estate);
	fsstate->userid = OidIsValid(rte->checkAsUser) ?
		rte->checkAsUser : GetUserId();
	fsstate->bound_kinds = (List *) list_nth(fsplan->fdw_private,
											 FdwScanPrivateBoundKinds);
	timeattno = (AttrNumber) intVal(list_nth(fsplan->fdw_private,
											 FdwScanPrivateTimeAttno));
	if (timeattno > 0)
		clover_time_column_of(fsstate->rel, timeattno, &fsstate->timecol);
	fsstate->bound_states = ExecInitExprList(fsplan->fdw_exprs,
											 (PlanState *) node);
	fsstate->by_days = uses_exec_param((Node *) fsplan->fdw_exprs, NULL);
	fsstate->wants_all = boolVal(list_nth(fsplan->fdw_private,
										  FdwScanPrivateWantsAll));
	foreach(lc, fsplan->fdw_exprs)
		fsstate->bound_types = lappend_oid(fsstate->bound_types,
										   exprType((Node *) lfirst(lc)));

	foreach(lc, (List *) list_nth(fsplan->fdw_private,
								  FdwScanPrivateRetrievedAttrs))
		attrs = bms_add_member(attrs,
							   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	fsstate->row_plan = CloverMakeRowPlan(fsstate->rel, attrs, false);

	fsstate->scan_cxt = AllocSetContextCreate(estate->es_query_cxt,
											  "clover_export_fdw scan",
											  ALLOCSET_DEFAULT_SIZES);
	fsstate->file_cxt = AllocSetContextCreate(estate->es_query_cxt,
											  "clover_export_fdw file",
											  ALLOCSET_DEFAULT_SIZES);
	fsstate->row_cxt = AllocSetContextCreate(estate->es_query_cxt,
											 "clover_export_fdw row",
											 ALLOCSET_SMALL_SIZES);

	sort_dir = intVal(list_nth(fsplan->fdw_private, FdwScanPrivateSortDir));
	if (sort_dir != 0)
	{
		TupleTableSlot *sort_slot;

		sort_slot = ExecInitExtraTupleSlot(estate,
										   RelationGetDescr(fsstate->rel),
										   &TTSOpsMinimalTuple);
		fsstate->descending = (sort_dir < 0);
		fsstate->sort = CloverWindowSortCreate(estate->es_query_cxt,
											   sort_slot, &fsstate->timecol,
											   fsstate->descending);
	}

	if ((eflags & EXEC_FLAG_REWIND) && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		fsstate->cache = tuplestore_begin_heap(false, false, work_mem);
		fsstate->cache_slot = ExecInitExtraTupleSlot(estate,
													 RelationGetDescr(fsstate->rel),
													 &TTSOpsMinimalTuple);
	}

	/*
	 * Every scan of the statement starts its first export now, so that the
	 * tables of a join or a UNION export at once.  Not for EXPLAIN, nor
	 * under LIMIT 0, nor when the bounds come from outer rows.
	 */
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY) && !fsstate->by_days &&
		boolVal(list_nth(fsplan->fdw_private, FdwScanPrivateStartEarly)))
	{
		start_scan(node, fsstate);
		pump(fsstate);
	}
}

/*
 * pump
 *		Let the scan's transfers advance without waiting (between rows)
 */
static void
pump(CloverFdwScanState *fsstate)
{
	if (fsstate->run)
		CloverRunPump(fsstate->run);
	else if (fsstate->pages)
		CloverPagesPump(fsstate->pages);
}

/*
 * clover_compute_range
 *		Evaluate the bound expressions now (Params and now() included)
 */
void
clover_compute_range(ForeignScanState *node, CloverFdwScanState *fsstate,
					 CloverRange *range)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ListCell   *lk,
			   *ls,
			   *lt;

	CloverRangeInit(range);
	forthree(lk, fsstate->bound_kinds, ls, fsstate->bound_states,
			 lt, fsstate->bound_types)
	{
		bool		isnull;
		Datum		value;
		int			kind = lfirst_int(lk);

		value = ExecEvalExpr((ExprState *) lfirst(ls), econtext, &isnull);
		if (kind & PLAN_BOUND_ON_DATE)
			CloverRangeApplyDateBound(range,
									  (CloverBoundKind) (kind & ~PLAN_BOUND_ON_DATE),
									  value, isnull, &fsstate->timecol);
		else
			CloverRangeApplyBound(range, (CloverBoundKind) kind, value,
								  isnull, lfirst_oid(lt), &fsstate->timecol);
	}
	CloverRangeFinish(range, history_start_of(fsstate->opts),
					  GetCurrentStatementStartTimestamp());
}

/*
 * start_scan
 *		Decide the windows and start the exports
 */
static void
start_scan(ForeignScanState *node, CloverFdwScanState *fsstate)
{
	CloverClientConfig config;
	MemoryContext old;

	clover_compute_range(node, fsstate, &fsstate->range);
	fsstate->started = true;

	if (fsstate->range.empty)
	{
		fsstate->nwindows = 0;
		return;
	}
	if (fsstate->opts->ecommerce_object)
	{
		start_pages(fsstate);
		return;
	}
	/*
	 * Planning has made sure of a lower bound (cloverGetForeignPlan) unless
	 * under LIMIT 0: here it was -infinity.
	 */
	if (!fsstate->range.has_lo)
	{
		const char *col = fsstate->timecol.attno == InvalidAttrNumber ?
			"created_time" :
			NameStr(TupleDescAttr(RelationGetDescr(fsstate->rel),
								  fsstate->timecol.attno - 1)->attname);

		ereport(ERROR,
				(errcode(ERRCODE_FDW_DYNAMIC_PARAMETER_VALUE_NEEDED),
				 errmsg("foreign table \"%s\" needs a lower bound on %s",
						fsstate->opts->table_name, col),
				 has_lower_kind(fsstate->bound_kinds) ?
				 errdetail("The query's lower bound is -infinity, and the table has no option history_start.") :
				 errdetail("Every Clover export needs a start time, and the table has no option history_start."),
				 errhint("Add a condition such as \"WHERE %s >= now() - interval '30 days'\", or set a default with ALTER FOREIGN TABLE %s OPTIONS (ADD history_start '2023-01-01 00:00+00').",
						 quote_identifier(col),
						 quote_identifier(fsstate->opts->table_name))));
	}

	old = MemoryContextSwitchTo(fsstate->scan_cxt);
	fsstate->windows = CloverPlanWindows(fsstate->opts, &fsstate->range,
										 fsstate->by_days,
										 GetCurrentStatementStartTimestamp(),
										 &fsstate->nwindows);
	if (fsstate->descending)
		CloverReverseWindows(fsstate->windows, fsstate->nwindows);
	if (fsstate->token == NULL)
		fsstate->token = CloverGetAccessToken(fsstate->opts->serverid,
											  fsstate->userid, false);
	MemoryContextSwitchTo(old);

	config.opts = fsstate->opts;
	config.access_token = fsstate->token;
	config.windows = fsstate->windows;
	config.nwindows = fsstate->nwindows;
	config.rows_returned = &fsstate->stats.rows_returned;
	config.whole_windows = (fsstate->sort != NULL);
	config.wants_all = fsstate->wants_all;
	config.statement = CloverStatementExportsFor(node->ss.ps.state);
	fsstate->run = CloverRunCreate(fsstate->scan_cxt, &config);
}

/*
 * start_pages
 *		Start reading the pages of an e-commerce table's range (which may
 *		have no lower bound: the whole list is paged then)
 */
static void
start_pages(CloverFdwScanState *fsstate)
{
	CloverPagesConfig config;

	if (fsstate->token == NULL)
		fsstate->token = MemoryContextStrdup(fsstate->scan_cxt,
											 CloverGetAccessToken(fsstate->opts->serverid,
																  fsstate->userid,
																  true));
	config.opts = fsstate->opts;
	config.access_token = fsstate->token;
	config.range = &fsstate->range;
	config.rows_returned = &fsstate->stats.rows_returned;
	config.wants_all = fsstate->wants_all;
	fsstate->pages = CloverPagesCreate(fsstate->scan_cxt, &config);
}

/*
 * next_file
 *		Get and split the next file (or page): READY, DONE when there is
 *		none, PENDING when it has not come and the caller would not wait
 *
 * A file that is not a valid export file is downloaded once more; a second
 * bad copy is an error naming the export, the file and the offset.  A
 * page was checked by the run already: a page the row path refuses is an
 * error at once.
 */
static CloverFetch
next_file(CloverFdwScanState *fsstate, bool wait)
{
	for (;;)
	{
		char	   *problem;
		MemoryContext old;
		struct timespec t0;
		CloverFetch fetched;

		MemoryContextReset(fsstate->file_cxt);
		fsstate->rows = NULL;
		fsstate->nrows = fsstate->next_row = 0;

		fetched = fsstate->pages ?
			CloverPagesNext(fsstate->pages, &fsstate->file, wait) :
			CloverRunNextFile(fsstate->run, &fsstate->file, wait);
		if (fetched != CLOVER_FETCH_READY)
			return fetched;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		old = MemoryContextSwitchTo(fsstate->file_cxt);
		fsstate->rows = CloverSplitFile(fsstate->row_plan, fsstate->file.data,
										fsstate->file.len, &problem);
		fsstate->origin.source = fsstate->file.list_path ?
			psprintf("page %d of %s", fsstate->file.file_no + 1,
					 fsstate->file.list_path) :
			psprintf("file %d of %d of export \"%s\"",
					 fsstate->file.file_no + 1, fsstate->file.nfiles,
					 fsstate->file.export_id);
		MemoryContextSwitchTo(old);
		fsstate->stats.convert_secs += elapsed_since(&t0);

		if (fsstate->rows)
		{
			fsstate->nrows = CloverFileRowCount(fsstate->rows);
			return CLOVER_FETCH_READY;
		}
		if (fsstate->file.list_path)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
					 errmsg("page %d of Clover's list %s is not valid",
							fsstate->file.file_no + 1, fsstate->file.list_path),
					 errdetail("%s (in a page of %zu bytes).", problem,
							   fsstate->file.len),
					 errhint("Clover sent a broken page; run the query again later.")));
		if (fsstate->file.attempt == 1)
		{
			ereport(NOTICE,
					(errmsg("file %d of %d of Clover export \"%s\" is not a valid export file; downloading it again",
							fsstate->file.file_no + 1, fsstate->file.nfiles,
							fsstate->file.export_id),
					 errdetail("%s.", problem)));
			CloverRunRedownload(fsstate->run);
			continue;
		}
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("file %d of %d of Clover export \"%s\" is not a valid export file",
						fsstate->file.file_no + 1, fsstate->file.nfiles,
						fsstate->file.export_id),
				 errdetail("%s (in both of two downloads of %zu bytes).",
						   problem, fsstate->file.len),
				 errhint("Clover sent a broken file; run the query again later.")));
	}
}

static double
elapsed_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/*
 * row_in_window
 *		Does an object created then belong to the current file's window
 *		(an export file), or to the scan's range (a page)?
 */
static bool
row_in_window(CloverFdwScanState *fsstate, TimestampTz created)
{
	const CloverWindow *window;

	if (fsstate->file.list_path)
		return (!fsstate->range.has_lo || created >= fsstate->range.lo) &&
			created < fsstate->range.hi;
	window = &fsstate->windows[fsstate->file.window_no];
	return created >= window->lo && created < window->hi;
}

/*
 * next_row_in_file
 *		The next row of the current file whose createdTime lies in the
 *		file's own window, stored in slot (its values in row_cxt); false
 *		when the file has no more
 */
static bool
next_row_in_file(ForeignScanState *node, CloverFdwScanState *fsstate,
				 TupleTableSlot *slot)
{
	while (fsstate->next_row < fsstate->nrows)
	{
		TimestampTz created;
		MemoryContext old;
		struct timespec t0;
		int			idx;

		idx = fsstate->next_row++;
		if (++fsstate->rows_since_pump >= PUMP_EVERY_ROWS)
		{
			fsstate->rows_since_pump = 0;
			pump(fsstate);
		}

		/* an object an earlier page returned (a list's cursor object) */
		if (fsstate->file.repeated &&
			fsstate->file.repeated[CloverRowObjectNo(fsstate->rows, idx) - 1])
			continue;
		if (!CloverRowCreatedTime(fsstate->rows, idx, &created))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("Clover object \"%s\" has no valid %s",
							CloverRowId(fsstate->rows, idx),
							clover_time_key(fsstate->opts)),
					 errdetail("Element %d of %s has no %s in whole epoch milliseconds, so it cannot be placed in a window.",
							   CloverRowObjectNo(fsstate->rows, idx),
							   fsstate->origin.source,
							   clover_time_key(fsstate->opts))));
		if (!row_in_window(fsstate, created))
		{
			/* the neighbouring window returns it, or the query excludes it */
			fsstate->stats.rows_outside_window++;
			continue;
		}

		if (node->ss.ps.instrument)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		old = MemoryContextSwitchTo(fsstate->row_cxt);
		CloverFillRow(fsstate->row_plan, fsstate->rows, idx, &fsstate->origin,
					  slot->tts_tupleDescriptor->natts,
					  slot->tts_values, slot->tts_isnull);
		MemoryContextSwitchTo(old);
		if (node->ss.ps.instrument)
			fsstate->stats.convert_secs += elapsed_since(&t0);

		ExecStoreVirtualTuple(slot);
		return true;
	}
	return false;
}

/*
 * next_sorted_row
 *		The next row of a sorted scan; false when there is none
 *
 * When the sorted window is used up, every file of the next window (in
 * the scan's direction) goes into the sort before a row comes out.
 */
static bool
next_sorted_row(ForeignScanState *node, CloverFdwScanState *fsstate,
				TupleTableSlot *slot)
{
	while (!CloverWindowSortNext(fsstate->sort, slot, fsstate->run))
	{
		do
		{
			if (next_file(fsstate, true) != CLOVER_FETCH_READY)
				return false;
			while (next_row_in_file(node, fsstate, slot))
			{
				/* a window may hold many rows: stay cancellable */
				CHECK_FOR_INTERRUPTS();
				CloverWindowSortPut(fsstate->sort, slot);
				ExecClearTuple(slot);
				MemoryContextReset(fsstate->row_cxt);
			}
		} while (fsstate->file.file_no + 1 < fsstate->file.nfiles);
		CloverWindowSortPerform(fsstate->sort, &fsstate->stats);
	}
	/* the next window's export and files advance while rows go out */
	if (++fsstate->rows_since_pump >= PUMP_EVERY_ROWS)
	{
		fsstate->rows_since_pump = 0;
		CloverRunPump(fsstate->run);
	}
	return true;
}

/*
 * clover_next_row
 *		The scan's next row, whose createdTime lies in its own file's window
 *		(in the files' order, or for a sorted scan by the time column), in
 *		the scan slot: READY; DONE with the slot empty; or, when wait is
 *		false and Clover has not answered yet, PENDING (an asynchronous
 *		scan then waits in the executor's event loop, scan_async.c)
 */
CloverFetch
clover_next_row(ForeignScanState *node, bool wait)
{
	CloverFdwScanState *fsstate = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	CloverFetch fetched = CLOVER_FETCH_READY;
	bool		found;

	ExecClearTuple(slot);
	MemoryContextReset(fsstate->row_cxt);

	if (fsstate->replaying)
	{
		if (tuplestore_gettupleslot(fsstate->cache, true, false,
									fsstate->cache_slot))
		{
			fsstate->stats.rows_replayed++;
			ExecCopySlot(slot, fsstate->cache_slot);
			return CLOVER_FETCH_READY;
		}
		/* the cache is read; go on where the run stopped, if it did */
		fsstate->replaying = false;
	}
	if (!fsstate->started)
		start_scan(node, fsstate);
	if ((fsstate->run == NULL && fsstate->pages == NULL) ||
		fsstate->run_finished)
		return CLOVER_FETCH_DONE;

	if (fsstate->sort)
		found = next_sorted_row(node, fsstate, slot);	/* never async */
	else
	{
		while (!(found = next_row_in_file(node, fsstate, slot)))
		{
			if ((fetched = next_file(fsstate, wait)) != CLOVER_FETCH_READY)
				break;
		}
	}
	if (fetched == CLOVER_FETCH_PENDING)
		return CLOVER_FETCH_PENDING;
	if (!found)
	{
		fsstate->run_finished = true;
		return CLOVER_FETCH_DONE;
	}

	fsstate->stats.rows_returned++;
	if (fsstate->cache)
		tuplestore_puttupleslot(fsstate->cache, slot);
	return CLOVER_FETCH_READY;
}

/*
 * cloverIterateForeignScan
 *		The next row, waiting for Clover as long as it takes; under an
 *		asynchronous Append an empty slot when it has not come yet
 */
TupleTableSlot *
cloverIterateForeignScan(ForeignScanState *node)
{
	CloverFdwScanState *fsstate = node->fdw_state;

	fsstate->last_fetch = clover_next_row(node, !fsstate->async_nowait);
	return node->ss.ss_ScanTupleSlot;
}

/*
 * stop_run
 *		Abandon the current run, keeping its figures for EXPLAIN ANALYZE
 */
static void
stop_run(CloverFdwScanState *fsstate)
{
	if (fsstate->run)
	{
		CloverScanStatsAdd(&fsstate->stats, CloverRunGetStats(fsstate->run));
		CloverRunDestroy(fsstate->run);
		fsstate->run = NULL;
	}
	if (fsstate->pages)
	{
		CloverScanStatsAdd(&fsstate->stats,
						   CloverPagesGetStats(fsstate->pages));
		CloverPagesDestroy(fsstate->pages);
		fsstate->pages = NULL;
	}
	MemoryContextReset(fsstate->file_cxt);
	fsstate->rows = NULL;
	fsstate->nrows = fsstate->next_row = 0;
	if (fsstate->sort)
		CloverWindowSortReset(fsstate->sort);
}

/*
 * cloverReScanForeignScan
 *		Start over: from the cache if the parameters did not change, else
 *		with new windows (the bounds are evaluated again)
 */
void
cloverReScanForeignScan(ForeignScanState *node)
{
	CloverFdwScanState *fsstate = node->fdw_state;

	if (fsstate->cache && fsstate->started && node->ss.ps.chgParam == NULL)
	{
		tuplestore_rescan(fsstate->cache);
		fsstate->replaying = true;
		return;
	}
	stop_run(fsstate);
	if (fsstate->cache)
		tuplestore_clear(fsstate->cache);
	fsstate->started = false;
	fsstate->run_finished = false;
	fsstate->replaying = false;
}

/*
 * cloverEndForeignScan
 *		Free the run: in-flight requests are abandoned
 */
void
cloverEndForeignScan(ForeignScanState *node)
{
	CloverFdwScanState *fsstate = node->fdw_state;

	if (fsstate == NULL)
		return;
	stop_run(fsstate);
	if (fsstate->cache)
		tuplestore_end(fsstate->cache);
}

/*
 * uses_exec_param
 *		Does the expression use a Param set per outer row (PARAM_EXEC)?
 */
static bool
uses_exec_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXEC)
		return true;
	return expression_tree_walker(node, uses_exec_param, context);
}
