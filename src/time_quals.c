/*-------------------------------------------------------------------------
 *
 * time_quals.c
 *		  Find the quals of a scan that bound the time column
 *
 * The planner side of the time bounds: which clauses a scan can turn into
 * export windows, and the expressions that give their values.
 *
 * - Only "timecol op value" clauses are used, where op is a btree
 *	 comparison of the time column's type (=, <, <=, >, >=, so BETWEEN too),
 *	 and value is a date, timestamp or timestamptz expression with no Var of
 *	 the scanned table and no volatile function.  Stable functions (now())
 *	 and Params are allowed: their values are computed when the scan starts
 *	 (time_range.c), never at plan time.  Every qual is still checked by the
 *	 executor.
 *
 * IDENTIFICATION
 *		  src/time_quals.c
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
#include "utils/lsyscache.h"

static bool is_time_var(Node *node, RelOptInfo *baserel, AttrNumber timeattno);
static CloverBoundKind strategy_to_kind(int strategy, bool commuted);

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
CloverIsTimeBoundClause(RelOptInfo *baserel, const CloverTimeColumn *timecol,
						RestrictInfo *rinfo, CloverTimeBound *bound)
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

	if (is_time_var(left, baserel, timecol->attno))
	{
		value = right;
		commuted = false;
		if (bms_is_member(baserel->relid, rinfo->right_relids))
			return false;
	}
	else if (is_time_var(right, baserel, timecol->attno))
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

	opfamily = get_opclass_family(GetDefaultOpClass(timecol->basetype,
													BTREE_AM_OID));
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
CloverExtractTimeBounds(RelOptInfo *baserel, const CloverTimeColumn *timecol,
						List *clauses)
{
	List	   *bounds = NIL;
	ListCell   *lc;

	if (timecol->attno == InvalidAttrNumber)
		return NIL;

	foreach(lc, clauses)
	{
		CloverTimeBound bound;

		if (CloverIsTimeBoundClause(baserel, timecol,
									lfirst_node(RestrictInfo, lc), &bound))
		{
			CloverTimeBound *b = palloc(sizeof(CloverTimeBound));

			*b = bound;
			bounds = lappend(bounds, b);
		}
	}
	return bounds;
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
