/*-------------------------------------------------------------------------
 *
 * row_plan.c
 *		  Decide once per scan which JSON paths to find and how to convert
 *		  each needed column
 *
 * The plan holds a trie of the paths the query needs (createdTime and id
 * always), numbered so that every subtree's slots are one contiguous
 * range, which lets the splitter forget a repeated key's subtree with one
 * memset; and, per column, its conversion (see row_convert.c).
 *
 * With rows_from, that trie also holds the list's path, and a second trie,
 * numbered after the first, the paths in an element of the list: columns
 * go into the second unless their json_path starts with "$parent".
 *
 * IDENTIFICATION
 *		  src/row_plan.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "row_path.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

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
		PathNode   *child = path_child(node, keys[k], keylen);

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
 * utf8_keys
 *		A path's keys, given in the database encoding, in UTF-8 (the file's
 *		encoding, the trie's)
 */
static char **
utf8_keys(List *keys)
{
	char	  **utf8 = palloc(sizeof(char *) * Max(list_length(keys), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, keys)
	{
		char	   *key = lfirst(lc);

		utf8[n++] = pg_server_to_any(key, strlen(key), PG_UTF8);
	}
	return utf8;
}

/*
 * trie_insert_list
 *		trie_insert of a path given as a List of keys in the database
 *		encoding
 */
static PathNode *
trie_insert_list(PathNode *root, List *keys)
{
	bool		created;

	return trie_insert(root, utf8_keys(keys), list_length(keys), &created);
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

/*
 * conv_kind_for_type
 *		The conversion for a (base) type: a shortcut, or its input function
 */
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
											col->attname, &col->from_parent);
	ListCell   *lc;

	/* "$parent" alone is the exported object: the object trie's root */
	col->whole_object = (keys == NIL && !col->from_parent);
	if (col->whole_object)
		return NULL;
	col->keys = palloc(sizeof(char *) * Max(list_length(keys), 1));
	foreach(lc, keys)
		col->keys[col->nkeys++] = lfirst(lc);
	if (plan->elem_root && !col->from_parent)
		return trie_insert_list(plan->elem_root, keys);
	return trie_insert_list(plan->root, keys);
}

/*
 * plan_rows_from
 *		Add the rows_from list to the object trie and start the trie of the
 *		element, whose own value (the element itself) always has a slot;
 *		returns the list's node
 */
static PathNode *
plan_rows_from(CloverRowPlan *plan, Relation rel)
{
	List	   *keys = CloverTableRowsFromKeys(RelationGetRelid(rel));
	char	  **utf8;
	PathNode   *node = plan->root;
	PathNode   *list;
	bool		created;
	int			k;

	if (keys == NIL)
		return NULL;
	plan->rows_from = CloverTableRowsFrom(RelationGetRelid(rel));
	utf8 = utf8_keys(keys);
	list = trie_insert(plan->root, utf8, list_length(keys), &created);
	list->is_list = true;
	for (k = 0; k < list_length(keys); k++)
	{
		node = path_child(node, utf8[k], strlen(utf8[k]));
		node->holds_list = true;
	}
	plan->elem_root = palloc0(sizeof(PathNode));
	plan->elem_root->slot = -1;
	(void) trie_insert(plan->elem_root, NULL, 0, &created);
	return list;
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
			   *id_node,
			   *list_node;
	PathNode  **col_nodes;
	int			i;

	plan->root = palloc0(sizeof(PathNode));
	plan->root->slot = -1;
	plan->raw_jsonb_col = -1;
	plan->db_utf8 = (GetDatabaseEncoding() == PG_UTF8);
	plan->columns = palloc0(sizeof(ColumnPlan) * tupdesc->natts);
	col_nodes = palloc0(sizeof(PathNode *) * tupdesc->natts);

	if (CloverTableIsEcommerce(RelationGetRelid(rel)))
	{
		plan->list_key = "data";
		plan->time_key = CLOVER_ECOMMERCE_TIME_KEY;
	}
	else
	{
		plan->list_key = "elements";
		plan->time_key = CLOVER_TIME_KEY;
	}
	created_node = trie_insert_key(plan->root, plan->time_key);
	id_node = trie_insert_key(plan->root, "id");
	list_node = plan_rows_from(plan, rel);

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

	plan->nslots = plan->object_slots = trie_number(plan->root, 0);
	if (plan->elem_root)
	{
		plan->nslots = trie_number(plan->elem_root, plan->object_slots);
		plan->list_slot = list_node->slot;
		plan->elem_slot = plan->elem_root->slot;
	}
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
