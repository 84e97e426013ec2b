/*-------------------------------------------------------------------------
 *
 * scan_plan.c
 *		  Planning a scan: row estimates, paths and the ForeignScan plan
 *
 * The planner callbacks of the wrapper.  GetForeignRelSize finds the time
 * column and the quals that bound it (time_quals.c) and estimates the rows
 * from the range's length and rows_per_day; GetForeignPaths adds the plain
 * path, the sorted ones (sorted_scan.c) and paths parameterized by the
 * tables whose columns bound the time; GetForeignPlan keeps every qual
 * local and passes the bound expressions to the executor (scan_exec.c) in
 * fdw_exprs, their kinds in fdw_private.  A plan of exports without a
 * lower bound fails here, unless under LIMIT 0; an e-commerce /v1 list
 * pages from its beginning then, and is never sorted by windows.
 *
 * IDENTIFICATION
 *		  src/scan_plan.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "nodes/makefuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/*
 * Cost of one export.  It is a remote job of seconds to minutes, but the
 * local work is a few requests; cost units also decide JIT, which cannot
 * speed up waiting for Clover.  So an export costs as much as reading
 * 10 000 pages: far above any local scan of the outer side, so a plan that
 * exports per outer row loses unless that side is tiny, while a plain scan
 * of a few windows stays below jit_above_cost (default 100 000).
 */
#define CLOVER_EXPORT_STARTUP_COST	10000.0
/* Cost of one page of an e-commerce list: a request of a few 100 ms */
#define CLOVER_PAGE_COST			1000.0
/* Cost of converting one row (a JSON object of about 1 KB) */
#define CLOVER_ROW_COST				0.05
/* Range assumed for estimates when a bound is only known at execution */
#define CLOVER_DEFAULT_DAYS			30.0

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

static void find_time_column(Relation rel, CloverTimeColumn *timecol);
static double estimate_days(PlannerInfo *root, CloverFdwRelationInfo *fpinfo,
							List *bounds);

/*
 * clover_time_column_of
 *		Describe column attno as the time column, if its type (a domain's
 *		base type, for a domain) is timestamptz or timestamp
 */
void
clover_time_column_of(Relation rel, AttrNumber attno,
					  CloverTimeColumn *timecol)
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
 *		The column mapped to the exported object's createdTime (an
 *		e-commerce object's created), if it is of a timestamp type
 *
 * With rows_from, that is json_path '$parent.createdTime': every row of
 * an object is placed in a window by the object's createdTime.
 */
static void
find_time_column(Relation rel, CloverTimeColumn *timecol)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	bool		nested = (CloverTableRowsFrom(RelationGetRelid(rel)) != NULL);
	const char *time_key = CloverTableIsEcommerce(RelationGetRelid(rel)) ?
		CLOVER_ECOMMERCE_TIME_KEY : CLOVER_TIME_KEY;
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		List	   *keys;
		bool		from_parent;

		clover_time_column_of(rel, att->attnum, timecol);
		if (timecol->attno == InvalidAttrNumber)
			continue;
		keys = CloverColumnJsonKeys(RelationGetRelid(rel), att->attnum,
									NameStr(att->attname), &from_parent);
		if (from_parent == nested && list_length(keys) == 1 &&
			strcmp(linitial(keys), time_key) == 0)
			return;
	}
	timecol->attno = InvalidAttrNumber;
}

/*
 * clover_path_options
 *		The merged options of the table a path scans
 */
CloverFdwOptions *
clover_path_options(ForeignPath *path)
{
	return ((CloverFdwRelationInfo *) path->path.parent->fdw_private)->opts;
}

/*
 * has_lower_bound
 *		Do these bounds, or the table's history_start, give a lower bound?
 *		(An e-commerce list needs none: it is paged from its beginning.)
 */
static bool
has_lower_bound(CloverFdwRelationInfo *fpinfo, List *bounds)
{
	ListCell   *lc;

	if (fpinfo->opts->has_history_start || fpinfo->opts->ecommerce_object)
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
void
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
	Cost		total;

	/* a list's first page is one request; each page another */
	if (fpinfo->opts->ecommerce_object)
		startup = CLOVER_PAGE_COST;
	total = startup + tuples * CLOVER_ROW_COST + rows * cpu_tuple_cost;
	if (fpinfo->opts->ecommerce_object)
		total += CLOVER_PAGE_COST * floor(tuples / CLOVER_ECOMMERCE_PAGE_LIMIT);

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
void
cloverGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
					  Oid foreigntableid)
{
	CloverFdwRelationInfo *fpinfo = baserel->fdw_private;
	List	   *outer_sets = NIL;
	ListCell   *lc;

	add_scan_path(root, baserel, fpinfo->bounds, NIL, NULL);
	/* a list comes in no documented order: the planner sorts it */
	if (fpinfo->opts->ecommerce_object == NULL)
	{
		add_scan_path_if_sorted(root, baserel,
								CloverSortedPathkeys(root, baserel,
													 &fpinfo->timecol, false));
		add_scan_path_if_sorted(root, baserel,
								CloverSortedPathkeys(root, baserel,
													 &fpinfo->timecol, true));
	}

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
ForeignScan *
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
							lappend(list_make5(kinds, retrieved,
											   makeInteger(fpinfo->timecol.attno),
											   makeInteger(sort_dir),
											   makeBoolean(!limit_zero(root))),
									makeBoolean(root->tuple_fraction == 0.0)),
							NIL, NIL, outer_plan);
}
