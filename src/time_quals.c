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
 * - "timecol::date op date" (or date(timecol)) is used too: the column's
 *	 date is a range of the column, exactly (time_range.c).
 * - A scan that ends up with no lower bound fails at plan time, with an
 *	 error that names the conditions on the column that could not bound it,
 *	 and why (CloverReportNoLowerBound).
 *
 * IDENTIFICATION
 *		  src/time_quals.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"

/* A condition on the time column that gives no lower bound, and why */
typedef struct UnusableQual
{
	char	   *text;			/* the condition, deparsed */
	char	   *reason;			/* why it gives no lower bound */
	char	   *rewrite;		/* a sentence for the hint, or NULL */
} UnusableQual;

/* How to show conditions: ruleutils' context, and whether to name tables */
typedef struct Deparser
{
	List	   *context;
	bool		prefix;
} Deparser;

static bool is_time_var(Node *node, RelOptInfo *baserel, AttrNumber timeattno);
static bool is_time_date(Node *node, RelOptInfo *baserel,
						 const CloverTimeColumn *timecol);
static CloverBoundKind strategy_to_kind(int strategy, bool commuted);
static bool find_volatile_func(Oid funcid, void *context);
static bool volatile_func_walker(Node *node, Oid *funcid);
static Node *time_var_parent(Node *node, RelOptInfo *baserel,
							 AttrNumber timeattno);
static void classify_unusable(Expr *clause, RelOptInfo *baserel,
							  const CloverTimeColumn *timecol,
							  const char *colname, const Deparser *dp,
							  UnusableQual *uq);
static int	list_join_equalities(PlannerInfo *root, RelOptInfo *baserel,
								 const CloverTimeColumn *timecol,
								 const char *colname, const Deparser *dp,
								 StringInfo detail, int nconds);
static int	list_unusable(PlannerInfo *root, RelOptInfo *baserel,
						  const CloverTimeColumn *timecol,
						  const char *colname, StringInfo detail,
						  StringInfo hint, bool *upper_only);

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

/*
 * is_time_date
 *		Is node the date of the time column (timecol::date, date(timecol)),
 *		the cast PostgreSQL makes in the session time zone?
 */
static bool
is_time_date(Node *node, RelOptInfo *baserel, const CloverTimeColumn *timecol)
{
	FuncExpr   *func;

	if (node == NULL || !IsA(node, FuncExpr))
		return false;
	func = (FuncExpr *) node;
	if (list_length(func->args) != 1 ||
		!is_time_var(linitial(func->args), baserel, timecol->attno))
		return false;
	return (func->funcid == F_DATE_TIMESTAMPTZ &&
			timecol->basetype == TIMESTAMPTZOID) ||
		(func->funcid == F_DATE_TIMESTAMP &&
		 timecol->basetype == TIMESTAMPOID);
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
 * parameterized path): the planner turns those Vars into Params.  A clause
 * on the column's date sets bound->on_date, and its value is a date.
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
	bool		on_date = false;
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
	else if (is_time_date(left, baserel, timecol) ||
			 is_time_date(right, baserel, timecol))
	{
		commuted = !is_time_date(left, baserel, timecol);
		value = commuted ? left : right;
		on_date = true;
		if (bms_is_member(baserel->relid, commuted ? rinfo->left_relids :
						  rinfo->right_relids))
			return false;
	}
	else
		return false;

	valuetype = exprType(value);
	if (on_date ? valuetype != DATEOID :
		(valuetype != TIMESTAMPTZOID && valuetype != TIMESTAMPOID &&
		 valuetype != DATEOID))
		return false;
	if (contain_volatile_functions(value))
		return false;

	opfamily = get_opclass_family(GetDefaultOpClass(on_date ? DATEOID :
													timecol->basetype,
													BTREE_AM_OID));
	strategy = get_op_opfamily_strategy(op->opno, opfamily);
	if (strategy == 0)
		return false;			/* <> or an operator of another family */

	bound->kind = strategy_to_kind(strategy, commuted);
	bound->on_date = on_date;
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

/*
 * find_volatile_func, volatile_func_walker
 *		The first volatile function an expression calls, in *funcid
 */
static bool
find_volatile_func(Oid funcid, void *context)
{
	if (func_volatile(funcid) != PROVOLATILE_VOLATILE)
		return false;
	*(Oid *) context = funcid;
	return true;
}

static bool
volatile_func_walker(Node *node, Oid *funcid)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, find_volatile_func, funcid))
		return true;
	return expression_tree_walker(node, volatile_func_walker, funcid);
}

/*
 * time_var_parent
 *		The innermost node whose own argument is the time column (below
 *		RelabelTypes), or NULL
 */
static Node *
time_var_parent(Node *node, RelOptInfo *baserel, AttrNumber timeattno)
{
	List	   *args;
	ListCell   *lc;

	if (node == NULL)
		return NULL;
	if (IsA(node, FuncExpr))
		args = ((FuncExpr *) node)->args;
	else if (IsA(node, OpExpr))
		args = ((OpExpr *) node)->args;
	else if (IsA(node, CoerceViaIO))
		args = list_make1(((CoerceViaIO *) node)->arg);
	else if (IsA(node, BoolExpr))
		args = ((BoolExpr *) node)->args;
	else
		return NULL;
	foreach(lc, args)
	{
		Node	   *found;

		if (is_time_var(lfirst(lc), baserel, timeattno))
			return node;
		found = time_var_parent(lfirst(lc), baserel, timeattno);
		if (found)
			return found;
	}
	return NULL;
}

/*
 * deparse_clause
 *		A condition as SQL, without the parentheses around the whole
 */
static char *
deparse_clause(Node *clause, const Deparser *dp)
{
	char	   *text = deparse_expression(clause, dp->context, dp->prefix,
										  false);
	size_t		len = strlen(text);
	int			depth = 0;
	size_t		i;

	if (len < 2 || text[0] != '(' || text[len - 1] != ')')
		return text;
	/* the first parenthesis must close at the very end */
	for (i = 0; i < len - 1; i++)
	{
		if (text[i] == '\'')
		{
			while (++i < len - 1 && text[i] != '\'')
				;
			continue;
		}
		if (text[i] == '(')
			depth++;
		else if (text[i] == ')' && --depth == 0)
			return text;
	}
	return pnstrdup(text + 1, len - 2);
}

/*
 * date_trunc_rewrite
 *		For "date_trunc('unit', col) op value": a sentence saying how to
 *		write it on the column itself (exactly, for =; for >= and > the
 *		bound it implies), or NULL
 */
static char *
date_trunc_rewrite(OpExpr *op, FuncExpr *func, const char *colname,
				   const Deparser *dp)
{
	Node	   *unit = linitial(func->args);
	Node	   *value;
	char	   *unitname;
	char	   *v;
	Oid			opfamily;
	int			strategy;
	bool		commuted;

	if ((func->funcid != F_DATE_TRUNC_TEXT_TIMESTAMPTZ &&
		 func->funcid != F_DATE_TRUNC_TEXT_TIMESTAMP) ||
		!IsA(unit, Const) || ((Const *) unit)->constisnull ||
		list_length(op->args) != 2)
		return NULL;
	commuted = (lsecond(op->args) == (void *) func);
	value = commuted ? linitial(op->args) : lsecond(op->args);
	opfamily = get_opclass_family(GetDefaultOpClass(func->funcresulttype,
													BTREE_AM_OID));
	strategy = get_op_opfamily_strategy(op->opno, opfamily);
	if (strategy == 0 || contain_volatile_functions(value))
		return NULL;
	unitname = TextDatumGetCString(((Const *) unit)->constvalue);
	v = deparse_clause(value, dp);
	switch (strategy_to_kind(strategy, commuted))
	{
		case CLOVER_BOUND_EQ:
			return psprintf("Write %s as %s >= %s AND %s < %s + interval '%s'.",
							deparse_clause((Node *) op, dp),
							colname, v, colname, v,
							pg_strcasecmp(unitname, "quarter") == 0 ?
							"3 months" : psprintf("1 %s", unitname));
		case CLOVER_BOUND_GE:
		case CLOVER_BOUND_GT:
			return psprintf("Add %s >= %s, which %s implies.", colname, v,
							deparse_clause((Node *) op, dp));
		default:
			return NULL;
	}
}

/*
 * classify_unusable
 *		Why a condition on the time column gives no lower bound, and how to
 *		write it so that it does
 */
static void
classify_unusable(Expr *clause, RelOptInfo *baserel,
				  const CloverTimeColumn *timecol, const char *colname,
				  const Deparser *dp, UnusableQual *uq)
{
	Node	   *parent;
	Oid			funcid = InvalidOid;

	uq->text = deparse_clause((Node *) clause, dp);
	uq->rewrite = NULL;
	if (is_orclause(clause))
	{
		uq->reason = "an OR, whose branches would each need a range of their own";
		uq->rewrite = psprintf("Add a lower bound that holds for every branch of the OR, outside it (AND %s >= ...).",
							   colname);
		return;
	}
	if (volatile_func_walker((Node *) clause, &funcid))
	{
		uq->reason = psprintf("%s() is volatile: its value changes while the scan runs",
							  get_func_name(funcid));
		uq->rewrite = psprintf("Compare %s with now() or statement_timestamp() instead of %s(): they are fixed for the statement.",
							   colname, get_func_name(funcid));
		return;
	}
	parent = time_var_parent((Node *) clause, baserel, timecol->attno);
	if (parent && parent != (Node *) clause &&
		(IsA(parent, CoerceViaIO) ||
		 (IsA(parent, FuncExpr) &&
		  ((FuncExpr *) parent)->funcformat != COERCE_EXPLICIT_CALL)))
	{
		uq->reason = psprintf("a cast of %s to %s", colname,
							  format_type_be(exprType(parent)));
		return;
	}
	if (parent && parent != (Node *) clause && IsA(parent, FuncExpr))
	{
		uq->reason = psprintf("a function of %s, %s()", colname,
							  get_func_name(((FuncExpr *) parent)->funcid));
		if (IsA(clause, OpExpr) &&
			list_member_ptr(((OpExpr *) clause)->args, parent))
			uq->rewrite = date_trunc_rewrite((OpExpr *) clause,
											 (FuncExpr *) parent, colname,
											 dp);
		return;
	}
	if (parent && parent != (Node *) clause && IsA(parent, OpExpr))
	{
		uq->reason = psprintf("an expression of %s (operator %s)", colname,
							  get_opname(((OpExpr *) parent)->opno));
		return;
	}
	uq->reason = psprintf("not a comparison (=, <, <=, >, >=) of %s with a value",
						  colname);
}

/*
 * list_unusable
 *		Append to detail each condition on the time column that gives no
 *		lower bound, with why, and to hint their rewrites; returns how many,
 *		and in *upper_only whether usable conditions gave upper bounds only
 *
 * The conditions are those of the relation and its join clauses; a lower
 * bound from another table is listed too when the chosen plan could not
 * use it.
 */
static int
list_unusable(PlannerInfo *root, RelOptInfo *baserel,
			  const CloverTimeColumn *timecol, const char *colname,
			  StringInfo detail, StringInfo hint, bool *upper_only)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);
	Bitmapset  *all_rels;
	Deparser	dp;
	ListCell   *lc;
	int			nconds = 0;

	/* ruleutils names the query's tables as EXPLAIN does */
	pstmt->rtable = root->parse->rtable;
	all_rels = bms_add_range(NULL, 1, list_length(pstmt->rtable));
	dp.context = deparse_context_for_plan_tree(pstmt,
											   select_rtable_names_for_explain(pstmt->rtable,
																			   all_rels));
	dp.prefix = list_length(pstmt->rtable) > 1;

	*upper_only = false;
	foreach(lc, list_concat_copy(baserel->baserestrictinfo,
								 baserel->joininfo))
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		Bitmapset  *attnos = NULL;
		CloverTimeBound bound;
		UnusableQual uq;

		pull_varattnos((Node *) rinfo->clause, baserel->relid, &attnos);
		if (!bms_is_member(timecol->attno - FirstLowInvalidHeapAttributeNumber,
						   attnos))
			continue;
		if (CloverIsTimeBoundClause(baserel, timecol, rinfo, &bound))
		{
			if (bound.kind == CLOVER_BOUND_LT || bound.kind == CLOVER_BOUND_LE)
			{
				*upper_only = true;
				continue;
			}
			uq.text = deparse_clause((Node *) rinfo->clause, &dp);
			uq.reason = "a comparison with another table, which the chosen plan does not scan first";
			uq.rewrite = NULL;
		}
		else
			classify_unusable(rinfo->clause, baserel, timecol, colname,
							  &dp, &uq);
		if (nconds++ == 0)
			appendStringInfo(detail, "\nThese conditions on %s cannot give one:",
							 colname);
		appendStringInfo(detail, "\n%s: %s.", uq.text, uq.reason);
		if (uq.rewrite)
			appendStringInfo(hint, "%s ", uq.rewrite);
	}
	nconds += list_join_equalities(root, baserel, timecol, colname, &dp,
								   detail, nconds);
	return nconds;
}

/*
 * list_join_equalities
 *		Append to detail the equalities that join the time column to another
 *		table (the planner keeps them apart, as equivalence classes); returns
 *		how many, nconds being the number listed before them
 */
static int
list_join_equalities(PlannerInfo *root, RelOptInfo *baserel,
					 const CloverTimeColumn *timecol, const char *colname,
					 const Deparser *dp, StringInfo detail, int nconds)
{
	int			n = 0;
	ListCell   *lc;

	foreach(lc, root->eq_classes)
	{
		EquivalenceClass *ec = (EquivalenceClass *) lfirst(lc);
		EquivalenceMember *ours = NULL,
				   *other = NULL;
		ListCell   *lm;

		if (ec->ec_has_const || !bms_is_member(baserel->relid, ec->ec_relids))
			continue;
		foreach(lm, ec->ec_members)
		{
			EquivalenceMember *em = (EquivalenceMember *) lfirst(lm);
			Bitmapset  *attnos = NULL;

			if (em->em_is_child)
				continue;
			pull_varattnos((Node *) em->em_expr, baserel->relid, &attnos);
			if (bms_equal(em->em_relids, baserel->relids) &&
				bms_is_member(timecol->attno - FirstLowInvalidHeapAttributeNumber,
							  attnos))
				ours = em;
			else if (!bms_is_member(baserel->relid, em->em_relids))
				other = em;
		}
		if (ours == NULL || other == NULL)
			continue;
		if (nconds + n++ == 0)
			appendStringInfo(detail, "\nThese conditions on %s cannot give one:",
							 colname);
		appendStringInfo(detail, "\n%s = %s: an equality with another table, from which the scan does not take its range.",
						 deparse_clause((Node *) ours->em_expr, dp),
						 deparse_clause((Node *) other->em_expr, dp));
	}
	return n;
}

/*
 * CloverReportNoLowerBound
 *		Fail the planning of a scan that has no lower bound on the time
 *		column, naming each condition on the column that could not give one
 */
void
CloverReportNoLowerBound(PlannerInfo *root, RelOptInfo *baserel,
						 const CloverTimeColumn *timecol,
						 const char *table_name, const char *colname)
{
	StringInfoData detail,
				hint;
	bool		upper_only;

	initStringInfo(&detail);
	initStringInfo(&hint);
	if (timecol->attno == InvalidAttrNumber)
		appendStringInfo(&detail, "Every Clover export needs a start time; the table has no timestamp column for createdTime to give one, and no option history_start.");
	else
	{
		appendStringInfo(&detail, "Every Clover export needs a start time, and the table has no option history_start.");
		if (list_unusable(root, baserel, timecol, colname, &detail, &hint,
						  &upper_only) == 0)
			appendStringInfo(&detail, upper_only ?
							 " The query's conditions on %s give only an upper bound." :
							 " The query has no condition on %s.",
							 colname);
		if (hint.len == 0)
			appendStringInfo(&hint, "Add a condition such as \"WHERE %s >= now() - interval '30 days'\", or ",
							 colname);
		else
			appendStringInfoString(&hint, "Or ");
	}
	appendStringInfo(&hint, "%s a default with ALTER FOREIGN TABLE %s OPTIONS (ADD history_start '2023-01-01 00:00+00').",
					 hint.len ? "set" : "Set", quote_identifier(table_name));

	ereport(ERROR,
			(errcode(ERRCODE_FDW_DYNAMIC_PARAMETER_VALUE_NEEDED),
			 errmsg("foreign table \"%s\" needs a lower bound on %s",
					table_name, colname),
			 errdetail_internal("%s", detail.data),
			 errhint("%s", hint.data)));
}
