/*-------------------------------------------------------------------------
 *
 * clover_export_fdw.c
 *		  Foreign-data wrapper for Clover's Merchant Data Export API:
 *		  handler, FDW callbacks, EXPLAIN and IMPORT FOREIGN SCHEMA
 *
 * A scan of clover_orders or clover_payments becomes a series of Clover
 * exports, one per window of at most 30 days covering the query's range of
 * created_time.  The planner's part is to find the bounds (time_quals.c)
 * and cost the remote jobs; the executor evaluates the bounds into a range
 * (time_range.c), lets exports.c run the exports and download their files,
 * and turns each file into rows (row_path.h), keeping only the rows of each
 * file's own window so that no object is returned twice where windows
 * meet.  All quals stay in the plan's qpqual: the windows only decide what
 * to fetch.  When the query wants the rows by created_time, a path runs
 * the windows in that direction and sorts each one (sorted_scan.c).
 *
 * A scan whose bounds come from an outer row (a parameterized path, a
 * correlated subquery) exports whole UTC days, and the statement's
 * completed exports (statement_exports.c) serve every rescan they cover:
 * a nested loop over a week of outer rows makes a handful of exports, not
 * one per row, and max_exports_per_statement bounds the rest.
 *
 * Nothing is fetched at plan time, and EXPLAIN without ANALYZE sends no
 * request to Clover.
 *
 * IDENTIFICATION
 *		  src/clover_export_fdw.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

/*
 * Cost of one export.  It is a remote job of seconds to minutes, but the
 * local work is a few requests; cost units also decide JIT, which cannot
 * speed up waiting for Clover.  So an export costs as much as reading
 * 10 000 pages: far above any local scan of the outer side, so a plan that
 * exports per outer row loses unless that side is tiny, while a plain scan
 * of a few windows stays below jit_above_cost (default 100 000).
 */
#define CLOVER_EXPORT_STARTUP_COST	10000.0
/* Cost of converting one row (a JSON object of about 1 KB) */
#define CLOVER_ROW_COST				0.05
/* Range assumed for estimates when a bound is only known at execution */
#define CLOVER_DEFAULT_DAYS			30.0

/* Let downloads advance every this many rows */
#define PUMP_EVERY_ROWS				64

/* In a plan's list of bound kinds: the bound is on the column's date */
#define PLAN_BOUND_ON_DATE			0x100

/*
 * Planner information about a foreign table, in baserel->fdw_private
 */
typedef struct CloverFdwRelationInfo
{
	CloverFdwOptions *opts;
	CloverTimeColumn timecol;	/* the column mapped to createdTime */
	List	   *bounds;			/* CloverTimeBounds from baserestrictinfo */
	double		days;			/* estimated length of the range */
	double		other_sel;		/* selectivity of the other quals */
} CloverFdwRelationInfo;

/*
 * ForeignScan's fdw_private; fdw_exprs holds the bound values, in the
 * order of FdwScanPrivateBoundKinds
 */
enum FdwScanPrivateIndex
{
	FdwScanPrivateBoundKinds,	/* IntList of CloverBoundKind */
	FdwScanPrivateRetrievedAttrs,	/* IntList of attnums to fill */
	FdwScanPrivateTimeAttno,	/* Integer: the time column, or 0 */
	FdwScanPrivateSortDir		/* Integer: rows by the time column, 1
								 * ascending, -1 descending; 0 unsorted */
};

/*
 * Execution state of a scan, in node->fdw_state
 */
typedef struct CloverFdwScanState
{
	Relation	rel;
	CloverFdwOptions *opts;
	Oid			userid;
	CloverTimeColumn timecol;
	List	   *bound_kinds;
	List	   *bound_states;	/* ExprStates of the bound values */
	List	   *bound_types;	/* their types */
	CloverRowPlan *row_plan;

	MemoryContext scan_cxt;		/* the run and the windows */
	MemoryContext file_cxt;		/* reset per file */
	MemoryContext row_cxt;		/* reset per row */

	/* set when the scan starts */
	bool		started;
	bool		by_days;		/* bounds change per rescan: whole days */
	CloverRange range;
	CloverWindow *windows;
	int			nwindows;
	char	   *token;
	CloverExportRun *run;

	/* the file being converted */
	CloverFile	file;
	CloverFileRows *rows;
	int			nrows;
	int			next_row;
	int			rows_since_pump;

	/* a sorted scan: its windows' sort (sorted_scan.c), else NULL */
	CloverWindowSort *sort;
	bool		descending;

	/*
	 * Rows kept for rescans with unchanged parameters (the inner side of a
	 * nested loop, a subplan): with EXEC_FLAG_REWIND the rows go into a
	 * tuplestore (which spills to disk past work_mem), and a rescan reads
	 * them again instead of creating new exports.
	 */
	Tuplestorestate *cache;
	TupleTableSlot *cache_slot;
	bool		replaying;		/* reading the cache, not the run */
	bool		run_finished;	/* the run has returned its last row */

	/* for EXPLAIN ANALYZE: this scan's rows, and runs already destroyed */
	CloverScanStats stats;
} CloverFdwScanState;

PG_FUNCTION_INFO_V1(clover_export_fdw_handler);
PG_FUNCTION_INFO_V1(clover_export_fdw_open_handles);
PG_FUNCTION_INFO_V1(clover_export_fdw_convert_file);

/* FDW callback routines */
static void cloverGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
									Oid foreigntableid);
static void cloverGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
								  Oid foreigntableid);
static ForeignScan *cloverGetForeignPlan(PlannerInfo *root,
										 RelOptInfo *baserel,
										 Oid foreigntableid,
										 ForeignPath *best_path,
										 List *tlist, List *scan_clauses,
										 Plan *outer_plan);
static void cloverBeginForeignScan(ForeignScanState *node, int eflags);
static TupleTableSlot *cloverIterateForeignScan(ForeignScanState *node);
static void cloverReScanForeignScan(ForeignScanState *node);
static void cloverEndForeignScan(ForeignScanState *node);
static void cloverExplainForeignScan(ForeignScanState *node,
									 ExplainState *es);
static List *cloverImportForeignSchema(ImportForeignSchemaStmt *stmt,
									   Oid serverOid);

/* Helper functions */
static void find_time_column(Relation rel, CloverTimeColumn *timecol);
static void time_column_of(Relation rel, AttrNumber attno,
						   CloverTimeColumn *timecol);
static const TimestampTz *history_start_of(const CloverFdwOptions *opts);
static double estimate_days(PlannerInfo *root, CloverFdwRelationInfo *fpinfo,
							List *bounds);
static void compute_range(ForeignScanState *node, CloverFdwScanState *fsstate,
						  CloverRange *range);
static void start_scan(ForeignScanState *node, CloverFdwScanState *fsstate);
static bool next_file(CloverFdwScanState *fsstate);
static void stop_run(CloverFdwScanState *fsstate);
static double elapsed_since(const struct timespec *start);
static bool contain_param(Node *node, void *context);
static bool uses_exec_param(Node *node, void *context);
static void explain_scan_stats(const CloverScanStats *s, ExplainState *es);

/*
 * clover_export_fdw_handler
 *		The FdwRoutine of the wrapper
 */
Datum
clover_export_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	/* planning */
	routine->GetForeignRelSize = cloverGetForeignRelSize;
	routine->GetForeignPaths = cloverGetForeignPaths;
	routine->GetForeignPlan = cloverGetForeignPlan;

	/* execution */
	routine->BeginForeignScan = cloverBeginForeignScan;
	routine->IterateForeignScan = cloverIterateForeignScan;
	routine->ReScanForeignScan = cloverReScanForeignScan;
	routine->EndForeignScan = cloverEndForeignScan;

	/* EXPLAIN */
	routine->ExplainForeignScan = cloverExplainForeignScan;

	/* IMPORT FOREIGN SCHEMA */
	routine->ImportForeignSchema = cloverImportForeignSchema;

	PG_RETURN_POINTER(routine);
}

/*
 * clover_export_fdw_open_handles
 *		External resources this backend holds (see the extension script)
 */
Datum
clover_export_fdw_open_handles(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			handles,
				buffers;
	int64		bytes;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	CloverOpenHandles(&handles, &buffers, &bytes);
	values[0] = Int32GetDatum(handles);
	values[1] = Int32GetDatum(buffers);
	values[2] = Int64GetDatum(bytes);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * clover_export_fdw_convert_file
 *		Convert an export file into rows of a foreign table and count them
 *
 * The very path a scan uses after a download (split, then every column of
 * every element), without Clover: for checking a file kept from an export,
 * and for the fuzz test.  Errors are those a scan would raise.  The caller
 * needs SELECT on the table, as for a scan of it.
 */
Datum
clover_export_fdw_convert_file(PG_FUNCTION_ARGS)
{
	bytea	   *file = PG_GETARG_BYTEA_PP(0);
	Oid			relid = PG_GETARG_OID(1);
	Relation	rel;
	AclResult	aclresult;
	CloverRowPlan *plan;
	CloverFileRows *rows;
	CloverRowOrigin origin;
	MemoryContext row_cxt,
				old;
	Datum	   *values;
	bool	   *nulls;
	char	   *problem;
	int			natts,
				i;

	rel = table_open(relid, AccessShareLock);
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	if (rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE ||
		GetFdwRoutineForRelation(rel, false)->IterateForeignScan !=
		cloverIterateForeignScan)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table of clover_export_fdw",
						RelationGetRelationName(rel))));

	plan = CloverMakeRowPlan(rel, NULL, true);
	rows = CloverSplitFile(plan, VARDATA_ANY(file), VARSIZE_ANY_EXHDR(file),
						   &problem);
	if (rows == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("not a valid Clover export file"),
				 errdetail("%s.", problem)));

	natts = RelationGetDescr(rel)->natts;
	values = palloc(sizeof(Datum) * natts);
	nulls = palloc(sizeof(bool) * natts);
	origin.export_id = "(file)";
	origin.file_no = 1;
	origin.nfiles = 1;
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "convert_file row",
									ALLOCSET_SMALL_SIZES);
	for (i = 0; i < CloverFileRowCount(rows); i++)
	{
		TimestampTz created;

		if (!CloverRowCreatedTime(rows, i, &created))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("Clover object \"%s\" has no valid createdTime",
							CloverRowId(rows, i))));
		old = MemoryContextSwitchTo(row_cxt);
		CloverFillRow(plan, rows, i, &origin, natts, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
	}
	table_close(rel, AccessShareLock);
	PG_RETURN_INT64(CloverFileRowCount(rows));
}

/*
 * time_column_of
 *		Describe column attno as the time column, if its type (a domain's
 *		base type, for a domain) is timestamptz or timestamp
 */
static void
time_column_of(Relation rel, AttrNumber attno, CloverTimeColumn *timecol)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
	int32		typmod = att->atttypmod;
	Oid			basetype = getBaseTypeAndTypmod(att->atttypid, &typmod);

	timecol->attno = InvalidAttrNumber;
	timecol->basetype = InvalidOid;
	timecol->typmod = -1;
	if (att->attisdropped ||
		(basetype != TIMESTAMPTZOID && basetype != TIMESTAMPOID))
		return;
	timecol->attno = attno;
	timecol->basetype = basetype;
	timecol->typmod = typmod;
}

/*
 * find_time_column
 *		The column mapped to the exported object's createdTime, if it is of
 *		a timestamp type
 *
 * With rows_from, that is json_path '$parent.createdTime': every row of
 * an object is placed in a window by the object's createdTime.
 */
static void
find_time_column(Relation rel, CloverTimeColumn *timecol)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	bool		nested = (CloverTableRowsFrom(RelationGetRelid(rel)) != NULL);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		List	   *keys;
		bool		from_parent;

		time_column_of(rel, att->attnum, timecol);
		if (timecol->attno == InvalidAttrNumber)
			continue;
		keys = CloverColumnJsonKeys(RelationGetRelid(rel), att->attnum,
									NameStr(att->attname), &from_parent);
		if (from_parent == nested && list_length(keys) == 1 &&
			strcmp(linitial(keys), CLOVER_TIME_KEY) == 0)
			return;
	}
	timecol->attno = InvalidAttrNumber;
}

/*
 * history_start_of
 *		The table's history_start, or NULL if it has none
 */
static const TimestampTz *
history_start_of(const CloverFdwOptions *opts)
{
	return opts->has_history_start ? &opts->history_start : NULL;
}

/*
 * has_lower_bound
 *		Do these bounds, or the table's history_start, give a lower bound?
 */
static bool
has_lower_bound(CloverFdwRelationInfo *fpinfo, List *bounds)
{
	ListCell   *lc;

	if (fpinfo->opts->has_history_start)
		return true;
	foreach(lc, bounds)
	{
		CloverBoundKind kind = ((CloverTimeBound *) lfirst(lc))->kind;

		if (kind == CLOVER_BOUND_GE || kind == CLOVER_BOUND_GT ||
			kind == CLOVER_BOUND_EQ)
			return true;
	}
	return false;
}

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
 * estimate_days
 *		Length of the range the bounds describe, for row estimates
 *
 * Stable expressions are folded for the estimate only.  A bound known only
 * at execution (a Param, or a column of a joined table) counts as one day
 * when both ends are such, else as CLOVER_DEFAULT_DAYS.
 */
static double
estimate_days(PlannerInfo *root, CloverFdwRelationInfo *fpinfo, List *bounds)
{
	CloverRange range;
	bool		unknown_lo = false,
				unknown_hi = false;
	ListCell   *lc;
	double		days;

	CloverRangeInit(&range);
	foreach(lc, bounds)
	{
		CloverTimeBound *b = (CloverTimeBound *) lfirst(lc);
		Node	   *v = estimate_expression_value(root, (Node *) b->value);

		if (IsA(v, Const) && b->on_date)
			CloverRangeApplyDateBound(&range, b->kind,
									  ((Const *) v)->constvalue,
									  ((Const *) v)->constisnull,
									  &fpinfo->timecol);
		else if (IsA(v, Const))
			CloverRangeApplyBound(&range, b->kind, ((Const *) v)->constvalue,
								  ((Const *) v)->constisnull,
								  ((Const *) v)->consttype, &fpinfo->timecol);
		else
		{
			if (b->kind != CLOVER_BOUND_LT && b->kind != CLOVER_BOUND_LE)
				unknown_lo = true;
			if (b->kind != CLOVER_BOUND_GT && b->kind != CLOVER_BOUND_GE)
				unknown_hi = true;
		}
	}
	if (unknown_lo && unknown_hi)
		return 1.0;
	CloverRangeFinish(&range, history_start_of(fpinfo->opts),
					  GetCurrentTransactionStartTimestamp());
	if (range.empty)
		return 0;
	if (!range.has_lo || unknown_lo)
		return CLOVER_DEFAULT_DAYS;
	days = (double) (range.hi - range.lo) / USECS_PER_DAY;
	return Max(days, 1.0 / 86400.0);
}

/*
 * cloverGetForeignRelSize
 *		Estimate the rows: days in the range times rows_per_day
 */
static void
cloverGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
						Oid foreigntableid)
{
	CloverFdwRelationInfo *fpinfo = palloc0(sizeof(CloverFdwRelationInfo));
	Relation	rel;
	List	   *other_quals = NIL;
	ListCell   *lc;

	baserel->fdw_private = fpinfo;
	fpinfo->opts = CloverGetOptions(foreigntableid);

	rel = table_open(foreigntableid, NoLock);
	find_time_column(rel, &fpinfo->timecol);
	table_close(rel, NoLock);

	fpinfo->bounds = CloverExtractTimeBounds(baserel, &fpinfo->timecol,
											 baserel->baserestrictinfo);
	fpinfo->days = estimate_days(root, fpinfo, fpinfo->bounds);

	/* the time bounds are accounted for by days; the rest by selectivity */
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		CloverTimeBound b;

		if (!CloverIsTimeBoundClause(baserel, &fpinfo->timecol, rinfo,
									 &b))
			other_quals = lappend(other_quals, rinfo);
	}
	fpinfo->other_sel = clauselist_selectivity(root, other_quals,
											   baserel->relid, JOIN_INNER,
											   NULL);
	baserel->tuples = fpinfo->days * fpinfo->opts->rows_per_day;
	baserel->rows = clamp_row_est(baserel->tuples * fpinfo->other_sel);
}

/*
 * add_scan_path
 *		Add a path scanning the range that bounds describe
 *
 * pathkeys: NIL, or the order of a sorted scan (sorted_scan.c).
 *
 * Each export is a remote job of seconds, which the startup cost says, so
 * a plan that would run exports once per outer row is chosen only when the
 * outer side is small.  A scan without a lower bound would fail at
 * execution, so it costs as much as a disabled plan.
 */
static void
add_scan_path(PlannerInfo *root, RelOptInfo *baserel, List *bounds,
			  List *pathkeys, Relids required_outer)
{
	CloverFdwRelationInfo *fpinfo = baserel->fdw_private;
	double		days = estimate_days(root, fpinfo, bounds);
	double		windows = Max(1.0, ceil(days / CLOVER_MAX_WINDOW_DAYS));
	double		tuples = days * fpinfo->opts->rows_per_day;
	double		rows = clamp_row_est(tuples * fpinfo->other_sel);
	Cost		startup = CLOVER_EXPORT_STARTUP_COST * windows;
	Cost		total = startup + tuples * CLOVER_ROW_COST + rows * cpu_tuple_cost;

	if (pathkeys != NIL)
		CloverSortedScanCosts(windows, tuples, CLOVER_ROW_COST, &startup,
							  &total);
	if (days == 0)
		startup = total = 0;
	if (!has_lower_bound(fpinfo, bounds))
	{
		startup += disable_cost;
		total += disable_cost;
	}
	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, rows, startup, total,
									 pathkeys, required_outer, NULL, NIL));
}

/*
 * add_scan_path_if_sorted
 *		Add the unparameterized path with these pathkeys, unless there are
 *		none
 */
static void
add_scan_path_if_sorted(PlannerInfo *root, RelOptInfo *baserel,
						List *pathkeys)
{
	CloverFdwRelationInfo *fpinfo = baserel->fdw_private;

	if (pathkeys != NIL)
		add_scan_path(root, baserel, fpinfo->bounds, pathkeys, NULL);
}

static bool
relids_listed(List *list, Relids relids)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		if (bms_equal((Relids) lfirst(lc), relids))
			return true;
	}
	return false;
}

/*
 * cloverGetForeignPaths
 *		A path over the query's own range, the same sorted by the time
 *		column in each direction the query can use, and, for time bounds
 *		that come from other tables (o.created_time >= d.lo), paths
 *		parameterized by those tables
 */
static void
cloverGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
					  Oid foreigntableid)
{
	CloverFdwRelationInfo *fpinfo = baserel->fdw_private;
	List	   *outer_sets = NIL;
	ListCell   *lc;

	add_scan_path(root, baserel, fpinfo->bounds, NIL, NULL);
	add_scan_path_if_sorted(root, baserel,
							CloverSortedPathkeys(root, baserel,
												 &fpinfo->timecol, false));
	add_scan_path_if_sorted(root, baserel,
							CloverSortedPathkeys(root, baserel,
												 &fpinfo->timecol, true));

	/* the sets of outer relations that join clauses on the time need */
	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		CloverTimeBound b;
		Relids		required_outer;

		if (!join_clause_is_movable_to(rinfo, baserel) ||
			!CloverIsTimeBoundClause(baserel, &fpinfo->timecol, rinfo,
									 &b))
			continue;
		required_outer = bms_union(rinfo->clause_relids,
								   baserel->lateral_relids);
		required_outer = bms_del_member(required_outer, baserel->relid);
		if (!bms_is_empty(required_outer) &&
			!relids_listed(outer_sets, required_outer))
			outer_sets = lappend(outer_sets, required_outer);
	}

	foreach(lc, outer_sets)
	{
		Relids		required_outer = (Relids) lfirst(lc);
		ParamPathInfo *ppi = get_baserel_parampathinfo(root, baserel,
													   required_outer);

		add_scan_path(root, baserel,
					  list_concat(CloverExtractTimeBounds(baserel,
														  &fpinfo->timecol,
														  ppi->ppi_clauses),
								  fpinfo->bounds),
					  NIL, required_outer);
	}
}

/*
 * limit_zero
 *		Does the query end in LIMIT 0?  Then no scan under it runs (tools
 *		ask for a query's columns so), and a scan without a lower bound is
 *		left to fail only if it ever starts.
 */
static bool
limit_zero(PlannerInfo *root)
{
	Node	   *count = root->parse->limitCount;

	return count != NULL && IsA(count, Const) &&
		!((Const *) count)->constisnull &&
		DatumGetInt64(((Const *) count)->constvalue) == 0;
}

/*
 * path_tlist
 *		In *tlist, the target list of the columns a path must return, as the
 *		planner builds it when it needs an exact one; false if the path
 *		returns more than plain columns of the table
 */
static bool
path_tlist(Path *path, List **tlist)
{
	ListCell   *lc;
	int			i = 0;

	*tlist = NIL;
	foreach(lc, path->pathtarget->exprs)
	{
		Var		   *var = (Var *) lfirst(lc);
		TargetEntry *tle;

		if (!IsA(var, Var) || var->varno != (int) path->parent->relid ||
			var->varattno <= 0 || var->varlevelsup != 0)
			return false;
		tle = makeTargetEntry((Expr *) var, list_length(*tlist) + 1, NULL,
							  false);

		if (path->pathtarget->sortgrouprefs)
			tle->ressortgroupref = path->pathtarget->sortgrouprefs[i];
		*tlist = lappend(*tlist, tle);
		i++;
	}
	return true;
}

/*
 * cloverGetForeignPlan
 *		Keep every qual local; pass the bound values to the executor
 *
 * A path without a lower bound is chosen only when there is no other (see
 * add_scan_path): the query fails here, before any scan of it starts.  The
 * scan's target list is the columns the query uses, not the physical one
 * the planner offers, so that EXPLAIN VERBOSE shows what is converted.
 */
static ForeignScan *
cloverGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
					 Oid foreigntableid, ForeignPath *best_path,
					 List *tlist, List *scan_clauses, Plan *outer_plan)
{
	CloverFdwRelationInfo *fpinfo = baserel->fdw_private;
	List	   *bounds;
	List	   *fdw_exprs = NIL;
	List	   *kinds = NIL;
	List	   *retrieved = NIL;
	List	   *exact_tlist;
	Bitmapset  *attrs_used = NULL;
	ListCell   *lc;
	int			i;
	int			sort_dir = 0;

	/* scan_clauses also holds the join clauses of a parameterized path */
	bounds = CloverExtractTimeBounds(baserel, &fpinfo->timecol,
									 scan_clauses);
	if (!has_lower_bound(fpinfo, bounds) && !limit_zero(root))
		CloverReportNoLowerBound(root, baserel, &fpinfo->timecol,
								 fpinfo->opts->table_name,
								 fpinfo->timecol.attno == InvalidAttrNumber ?
								 "created_time" :
								 get_attname(foreigntableid,
											 fpinfo->timecol.attno, false));
	foreach(lc, bounds)
	{
		CloverTimeBound *b = (CloverTimeBound *) lfirst(lc);

		fdw_exprs = lappend(fdw_exprs, b->value);
		kinds = lappend_int(kinds,
							b->kind | (b->on_date ? PLAN_BOUND_ON_DATE : 0));
	}

	/* the columns the plan reads: target list and quals */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid,
				   &attrs_used);
	foreach(lc, scan_clauses)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause,
					   baserel->relid, &attrs_used);
	/* a sorted scan sorts by the time column */
	if (best_path->path.pathkeys != NIL)
	{
		sort_dir = CloverPathkeysDescending(best_path->path.pathkeys) ? -1 : 1;
		attrs_used = bms_add_member(attrs_used, fpinfo->timecol.attno -
									FirstLowInvalidHeapAttributeNumber);
	}
	if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs_used))
	{
		Relation	rel = table_open(foreigntableid, NoLock);

		for (i = 1; i <= RelationGetNumberOfAttributes(rel); i++)
			retrieved = lappend_int(retrieved, i);
		table_close(rel, NoLock);
	}
	else
	{
		i = -1;
		while ((i = bms_next_member(attrs_used, i)) >= 0)
		{
			AttrNumber	attno = i + FirstLowInvalidHeapAttributeNumber;

			if (attno > 0)
				retrieved = lappend_int(retrieved, attno);
		}
	}

	scan_clauses = extract_actual_clauses(scan_clauses, false);
	if (path_tlist(&best_path->path, &exact_tlist))
		tlist = exact_tlist;

	return make_foreignscan(tlist, scan_clauses, baserel->relid, fdw_exprs,
							list_make4(kinds, retrieved,
									   makeInteger(fpinfo->timecol.attno),
									   makeInteger(sort_dir)),
							NIL, NIL, outer_plan);
}

/*
 * cloverBeginForeignScan
 *		Prepare the scan; nothing is sent to Clover before the first row is
 *		asked for
 */
static void
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
		time_column_of(fsstate->rel, timeattno, &fsstate->timecol);
	fsstate->bound_states = ExecInitExprList(fsplan->fdw_exprs,
											 (PlanState *) node);
	fsstate->by_days = uses_exec_param((Node *) fsplan->fdw_exprs, NULL);
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
}

/*
 * compute_range
 *		Evaluate the bound expressions now (Params and now() included)
 */
static void
compute_range(ForeignScanState *node, CloverFdwScanState *fsstate,
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

	compute_range(node, fsstate, &fsstate->range);
	fsstate->started = true;

	if (fsstate->range.empty)
	{
		fsstate->nwindows = 0;
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
	if (fsstate->by_days)
		fsstate->windows = CloverSplitRangeByDays(&fsstate->range,
												  GetCurrentStatementStartTimestamp(),
												  &fsstate->nwindows);
	else
		fsstate->windows = CloverSplitRange(&fsstate->range,
											&fsstate->nwindows);
	if (fsstate->descending)
		CloverReverseWindows(fsstate->windows, fsstate->nwindows);
	if (fsstate->token == NULL)
		fsstate->token = CloverGetAccessToken(GetForeignTable(RelationGetRelid(fsstate->rel))->serverid,
											  fsstate->userid);
	MemoryContextSwitchTo(old);

	config.opts = fsstate->opts;
	config.access_token = fsstate->token;
	config.windows = fsstate->windows;
	config.nwindows = fsstate->nwindows;
	config.rows_returned = &fsstate->stats.rows_returned;
	config.whole_windows = (fsstate->sort != NULL);
	config.statement = CloverStatementExportsFor(node->ss.ps.state);
	fsstate->run = CloverRunCreate(fsstate->scan_cxt, &config);
}

/*
 * next_file
 *		Get and split the next file; false when there is none
 *
 * A file that is not a valid export file is downloaded once more; a second
 * bad copy is an error naming the export, the file and the offset.
 */
static bool
next_file(CloverFdwScanState *fsstate)
{
	for (;;)
	{
		char	   *problem;
		MemoryContext old;
		struct timespec t0;

		MemoryContextReset(fsstate->file_cxt);
		fsstate->rows = NULL;
		fsstate->nrows = fsstate->next_row = 0;

		if (!CloverRunNextFile(fsstate->run, &fsstate->file))
			return false;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		old = MemoryContextSwitchTo(fsstate->file_cxt);
		fsstate->rows = CloverSplitFile(fsstate->row_plan, fsstate->file.data,
										fsstate->file.len, &problem);
		MemoryContextSwitchTo(old);
		fsstate->stats.convert_secs += elapsed_since(&t0);

		if (fsstate->rows)
		{
			fsstate->nrows = CloverFileRowCount(fsstate->rows);
			return true;
		}
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
		const CloverWindow *window;
		TimestampTz created;
		CloverRowOrigin origin;
		MemoryContext old;
		struct timespec t0;
		int			idx;

		idx = fsstate->next_row++;
		if (++fsstate->rows_since_pump >= PUMP_EVERY_ROWS)
		{
			fsstate->rows_since_pump = 0;
			CloverRunPump(fsstate->run);
		}

		window = &fsstate->windows[fsstate->file.window_no];
		if (!CloverRowCreatedTime(fsstate->rows, idx, &created))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("Clover object \"%s\" has no valid createdTime",
							CloverRowId(fsstate->rows, idx)),
					 errdetail("Element %d of file %d of %d of export \"%s\" has no createdTime in whole epoch milliseconds, so it cannot be placed in a window.",
							   CloverRowObjectNo(fsstate->rows, idx),
							   fsstate->file.file_no + 1,
							   fsstate->file.nfiles, fsstate->file.export_id)));
		if (created < window->lo || created >= window->hi)
		{
			/* the neighbouring window returns it, or the query excludes it */
			fsstate->stats.rows_outside_window++;
			continue;
		}

		origin.export_id = fsstate->file.export_id;
		origin.file_no = fsstate->file.file_no + 1;
		origin.nfiles = fsstate->file.nfiles;
		if (node->ss.ps.instrument)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		old = MemoryContextSwitchTo(fsstate->row_cxt);
		CloverFillRow(fsstate->row_plan, fsstate->rows, idx, &origin,
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
			if (!next_file(fsstate))
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
 * cloverIterateForeignScan
 *		The next row whose createdTime lies in its own file's window: in
 *		the files' order, or for a sorted scan by the time column
 */
static TupleTableSlot *
cloverIterateForeignScan(ForeignScanState *node)
{
	CloverFdwScanState *fsstate = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	bool		found;

	ExecClearTuple(slot);
	MemoryContextReset(fsstate->row_cxt);

	if (fsstate->replaying)
	{
		if (tuplestore_gettupleslot(fsstate->cache, true, false,
									fsstate->cache_slot))
		{
			fsstate->stats.rows_replayed++;
			return ExecCopySlot(slot, fsstate->cache_slot);
		}
		/* the cache is read; go on where the run stopped, if it did */
		fsstate->replaying = false;
	}
	if (!fsstate->started)
		start_scan(node, fsstate);
	if (fsstate->run == NULL || fsstate->run_finished)
		return slot;

	if (fsstate->sort)
		found = next_sorted_row(node, fsstate, slot);
	else
	{
		while (!(found = next_row_in_file(node, fsstate, slot)))
		{
			if (!next_file(fsstate))
				break;
		}
	}
	if (!found)
	{
		fsstate->run_finished = true;
		return slot;
	}

	fsstate->stats.rows_returned++;
	if (fsstate->cache)
		tuplestore_puttupleslot(fsstate->cache, slot);
	return slot;
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
static void
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
static void
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
 * explain_windows
 *		Add the range and the windows it is cut into to EXPLAIN
 *
 * The range is shown once, with the end the query gave; VERBOSE adds where
 * the windows meet (where Clover's rows outside a window are skipped).
 */
static void
explain_windows(const CloverRange *range, const CloverWindow *w, int n,
				ExplainState *es)
{
	if (range->empty)
	{
		ExplainPropertyText("Time Range", "empty (no export)", es);
		ExplainPropertyInteger("Export Windows", NULL, 0, es);
		return;
	}
	if (!range->has_lo)
	{
		ExplainPropertyText("Time Range", "no lower bound (the scan will fail)",
							es);
		return;
	}
	ExplainPropertyText("Time Range", CloverRangeText(range), es);
	ExplainPropertyInteger("Export Windows", NULL, n, es);
	if (es->verbose && n > 1)
	{
		TimestampTz first = w[0].lo;
		List	   *edges = NIL;
		int			i;

		/* every window's start but the earliest, in the order they ran */
		for (i = 1; i < n; i++)
			first = Min(first, w[i].lo);
		for (i = 0; i < n; i++)
			if (w[i].lo != first)
				edges = lappend(edges, CloverFormatUtc(w[i].lo));
		ExplainPropertyList("Window Edges", edges, es);
	}
}

/*
 * contain_param
 *		Does the expression use a Param (known only at execution)?
 */
static bool
contain_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return true;
	return expression_tree_walker(node, contain_param, context);
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

/*
 * explain_scan_stats
 *		EXPLAIN ANALYZE's account of a scan: what Clover was asked and where
 *		the time went
 */
static void
explain_scan_stats(const CloverScanStats *s, ExplainState *es)
{
	ExplainPropertyInteger("Exports Created", NULL, s->exports_created, es);
	if (s->exports_reused > 0)
		ExplainPropertyInteger("Exports Reused", NULL, s->exports_reused, es);
	ExplainPropertyInteger("Status Polls", NULL, s->polls, es);
	ExplainPropertyInteger("Files Downloaded", NULL, s->files_downloaded, es);
	ExplainPropertyInteger("Bytes Downloaded", "bytes", s->bytes_downloaded, es);
	ExplainPropertyInteger("Rows Returned", NULL, s->rows_returned, es);
	ExplainPropertyInteger("Clover Rows Outside Windows", NULL,
						   s->rows_outside_window, es);
	if (s->rows_replayed > 0)
		ExplainPropertyInteger("Rows Replayed On Rescans", NULL,
							   s->rows_replayed, es);
	if (s->windows_sorted > 0)
	{
		ExplainPropertyInteger("Windows Sorted", NULL, s->windows_sorted, es);
		ExplainPropertyInteger("Windows Sorted On Disk", NULL,
							   s->windows_sorted_on_disk, es);
	}
	if (s->export_recreated || s->retries || s->file_redownloads)
		ExplainPropertyText("Retries",
							psprintf("requests " INT64_FORMAT ", exports recreated " INT64_FORMAT ", files downloaded again " INT64_FORMAT,
									 s->retries, s->export_recreated,
									 s->file_redownloads),
							es);
	if (s->busy_waits || s->closed_waits || s->rate_limited)
		ExplainPropertyText("Clover Waits",
							psprintf("busy " INT64_FORMAT " (%.1f s), closed " INT64_FORMAT " (%.1f s), rate-limited " INT64_FORMAT " (%.1f s)",
									 s->busy_waits, s->busy_wait_secs,
									 s->closed_waits, s->closed_wait_secs,
									 s->rate_limited, s->rate_limit_wait_secs),
							es);
	if (es->timing)
	{
		ExplainPropertyFloat("Waiting For Clover", "s", s->clover_wait_secs, 3, es);
		ExplainPropertyFloat("Downloading", "s", s->download_secs, 3, es);
		ExplainPropertyFloat("Converting", "s", s->convert_secs, 3, es);
	}
}

/*
 * cloverExplainForeignScan
 *		What Clover will be (or was) asked, and with ANALYZE what happened
 */
static void
cloverExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	CloverFdwScanState *fsstate = node->fdw_state;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

	ExplainPropertyText("Clover Export",
						psprintf("%s of merchant %s",
								 CloverExportTypeName(fsstate->opts->export_type),
								 fsstate->opts->merchant_id),
						es);
	if (fsstate->sort)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(fsstate->rel),
											  fsstate->timecol.attno - 1);

		ExplainPropertyText("Window Order",
							psprintf("%s, each window sorted by %s",
									 fsstate->descending ? "newest first" :
									 "oldest first",
									 quote_identifier(NameStr(att->attname))),
							es);
	}

	/* once started, the windows that ran (whole days, newest first, ...) */
	if (fsstate->started)
		explain_windows(&fsstate->range, fsstate->windows, fsstate->nwindows,
						es);
	else if (contain_param((Node *) fsplan->fdw_exprs, NULL))
		ExplainPropertyText("Time Range", "computed at execution", es);
	else
	{
		/* constants and stable functions: shown before execution */
		CloverRange range;

		CloverWindow *w = NULL;
		int			n = 0;

		compute_range(node, fsstate, &range);
		if (range.has_lo && !range.empty)
			w = CloverSplitRange(&range, &n);
		explain_windows(&range, w, n, es);
	}

	if (es->analyze)
	{
		CloverScanStats s = fsstate->stats;

		if (fsstate->run)
			CloverScanStatsAdd(&s, CloverRunGetStats(fsstate->run));
		explain_scan_stats(&s, es);
	}
}

/*
 * The tables IMPORT FOREIGN SCHEMA creates: name, export type, rows_from
 * and columns (name, type, json_path)
 */
typedef struct ImportColumn
{
	const char *name;
	const char *type;
	const char *path;
} ImportColumn;

static const ImportColumn order_columns[] = {
	{"id", "text", "id"},
	{"currency", "text", "currency"},
	{"employee_id", "text", "employee.id"},
	{"total", "bigint", "total"},
	{"unpaid_balance", "bigint", "unpaidBalance"},
	{"payment_state", "text", "paymentState"},
	{"title", "text", "title"},
	{"note", "text", "note"},
	{"order_type_id", "text", "orderType.id"},
	{"state", "text", "state"},
	{"pay_type", "text", "payType"},
	{"tax_removed", "boolean", "taxRemoved"},
	{"is_vat", "boolean", "isVat"},
	{"manual_transaction", "boolean", "manualTransaction"},
	{"test_mode", "boolean", "testMode"},
	{"device_id", "text", "device.id"},
	{"created_time", "timestamptz", "createdTime"},
	{"client_created_time", "timestamptz", "clientCreatedTime"},
	{"modified_time", "timestamptz", "modifiedTime"},
	{"line_items", "jsonb", "lineItems"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

/* one row per line item; the order's createdTime carries the bounds */
static const ImportColumn line_item_columns[] = {
	{"order_id", "text", "$parent.id"},
	{"id", "text", "id"},
	{"name", "text", "name"},
	{"price", "bigint", "price"},
	{"unit_qty", "integer", "unitQty"},
	{"is_revenue", "boolean", "isRevenue"},
	{"refunded", "boolean", "refunded"},
	{"exchanged", "boolean", "exchanged"},
	{"item_id", "text", "item.id"},
	{"created_time", "timestamptz", "$parent.createdTime"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

static const ImportColumn payment_columns[] = {
	{"id", "text", "id"},
	{"order_id", "text", "order.id"},
	{"device_id", "text", "device.id"},
	{"tender_id", "text", "tender.id"},
	{"tender_label", "text", "tender.label"},
	{"amount", "bigint", "amount"},
	{"tip_amount", "bigint", "tipAmount"},
	{"tax_amount", "bigint", "taxAmount"},
	{"cashback_amount", "bigint", "cashbackAmount"},
	{"result", "text", "result"},
	{"offline", "boolean", "offline"},
	{"employee_id", "text", "employee.id"},
	{"external_payment_id", "text", "externalPaymentId"},
	{"card_type", "text", "cardTransaction.cardType"},
	{"card_last4", "text", "cardTransaction.last4"},
	{"created_time", "timestamptz", "createdTime"},
	{"client_created_time", "timestamptz", "clientCreatedTime"},
	{"modified_time", "timestamptz", "modifiedTime"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

static const struct
{
	const char *table;
	const char *export_type;
	const char *rows_from;		/* NULL: the exported objects are the rows */
	const ImportColumn *columns;
}			import_tables[] = {
	{"clover_orders", "ORDERS", NULL, order_columns},
	{"clover_line_items", "ORDERS", "lineItems.elements", line_item_columns},
	{"clover_payments", "PAYMENTS", NULL, payment_columns},
	{NULL, NULL, NULL, NULL}
};

/*
 * import_wanted
 *		Does LIMIT TO / EXCEPT let this table through?
 */
static bool
import_wanted(ImportForeignSchemaStmt *stmt, const char *table)
{
	ListCell   *lc;
	bool		listed = false;

	if (stmt->list_type == FDW_IMPORT_SCHEMA_ALL)
		return true;
	foreach(lc, stmt->table_list)
	{
		if (strcmp(((RangeVar *) lfirst(lc))->relname, table) == 0)
			listed = true;
	}
	return stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO ? listed : !listed;
}

/*
 * cloverImportForeignSchema
 *		CREATE FOREIGN TABLE commands for clover_orders, clover_line_items
 *		and clover_payments
 *
 * Clover has no schemas: any remote schema name gives the same tables.
 */
static List *
cloverImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	List	   *commands = NIL;
	int			t;

	for (t = 0; import_tables[t].table; t++)
	{
		StringInfoData buf;
		const ImportColumn *col;

		if (!import_wanted(stmt, import_tables[t].table))
			continue;

		initStringInfo(&buf);
		appendStringInfo(&buf, "CREATE FOREIGN TABLE %s (\n",
						 quote_qualified_identifier(stmt->local_schema,
													import_tables[t].table));
		for (col = import_tables[t].columns; col->name; col++)
			appendStringInfo(&buf, "  %s %s OPTIONS (json_path %s)%s\n",
							 quote_identifier(col->name), col->type,
							 quote_literal_cstr(col->path),
							 (col + 1)->name ? "," : "");
		appendStringInfo(&buf, ") SERVER %s OPTIONS (export_type %s",
						 quote_identifier(server->servername),
						 quote_literal_cstr(import_tables[t].export_type));
		if (import_tables[t].rows_from)
			appendStringInfo(&buf, ", rows_from %s",
							 quote_literal_cstr(import_tables[t].rows_from));
		appendStringInfoChar(&buf, ')');
		commands = lappend(commands, buf.data);
	}
	return commands;
}
