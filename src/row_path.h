/*-------------------------------------------------------------------------
 *
 * row_path.h
 *		  The structures shared by the files that turn export files into rows
 *
 * Export files are the hot path: up to 1000 objects of about 1 KB each,
 * millions per scan.  A json-c tree costs ~14 MB per file and ~15 us per
 * object, so files take another road, in three steps with a file each:
 *
 *	row_plan.c		once per scan, which JSON paths the query needs (a small
 *					trie of keys) and how each column is converted
 *	json_split.c	one validating pass per file (CloverSplitFile): checks
 *					the whole file against the JSON grammar and UTF-8, finds
 *					each element of the "elements" array and records, per
 *					element, the byte span of every path in the trie (a slot)
 *	row_convert.c	per row (CloverFillRow), only those spans into Datums
 *
 * with jsonb_build.c building jsonb objects and arrays straight from the
 * validated bytes (the same jsonb as jsonb_in, about twice as fast), and
 * json_lex.h the byte-level helpers they share.
 *
 * A file is rejected as a whole before any of its rows is returned, so a
 * broken download can be fetched again without returning half a file.  A
 * whole-object jsonb column is built once per row and other jsonb columns
 * are cut out of it rather than parsed again.  count(*) converts nothing
 * but createdTime, which every row needs to be assigned to exactly one
 * export window.
 *
 * A table with rows_from makes a row of each element of a list inside
 * each exported object (an order's lineItems.elements): the plan then has
 * a second trie, of paths in the element, and each row's slots are its
 * object's slots, copied, followed by its element's.  The object's
 * createdTime places every row in a window, as for the object itself.
 *
 * Duplicate keys behave as in jsonb: the last one wins.  JSON null and
 * absent keys both give SQL NULL.  Otherwise a column holds what
 * PostgreSQL's own (raw->>'key')::type gives (raw->'key' for jsonb): the
 * type's input function on that text, unless a shortcut is known to give
 * the same; then a domain's constraints.  Timestamps and dates alone read
 * epoch milliseconds.  A value that does not fit its column is an error
 * naming the column, the object id and the export, never a silently
 * different value.  Paths are matched in UTF-8, the file's encoding;
 * text reaches the database in its own encoding.
 *
 * The public side of all this is in clover_export_fdw.h; this header is
 * for the row path's own files only.
 *
 * IDENTIFICATION
 *		  src/row_path.h
 *-------------------------------------------------------------------------
 */
#ifndef ROW_PATH_H
#define ROW_PATH_H

#include "clover_export_fdw.h"
#include "fmgr.h"

/* What a slot holds after a file is split */
typedef enum SlotType
{
	SLOT_ABSENT = 0,			/* must be zero: slots start memset to 0 */
	SLOT_NULL,
	SLOT_STRING,
	SLOT_NUMBER,
	SLOT_TRUE,
	SLOT_FALSE,
	SLOT_OBJECT,
	SLOT_ARRAY
} SlotType;

/* Where one path's value is, within one element */
typedef struct JsonSlot
{
	uint32		start;			/* strings: first byte after the quote */
	uint32		len;			/* strings: bytes before the closing quote */
	uint8		type;			/* SlotType */
	bool		escaped;		/* string contains backslash escapes */
} JsonSlot;

/* A node of the trie of requested JSON paths */
typedef struct PathNode
{
	const char *key;
	int			keylen;
	int			slot;			/* slot of this path, or -1 */
	int			first_slot;		/* slots of the whole subtree: */
	int			end_slot;		/* [first_slot, end_slot) */
	bool		is_list;		/* the list of rows_from */
	bool		holds_list;		/* is_list, or above it */
	int			nchildren;
	struct PathNode **children;
} PathNode;

/* How a column's value is made */
typedef enum ConvKind
{
	CONV_TEXT,
	CONV_INT2,
	CONV_INT4,
	CONV_INT8,
	CONV_NUMERIC,
	CONV_BOOL,
	CONV_TIMESTAMPTZ,
	CONV_TIMESTAMP,
	CONV_DATE,
	CONV_JSON,
	CONV_JSONB,
	CONV_INPUT					/* any other type: its input function */
} ConvKind;

typedef struct ColumnPlan
{
	int			attidx;			/* 0-based attribute index */
	char	   *attname;
	Oid			typid;			/* the column's type, for messages */
	int32		typmod;
	Oid			basetypid;		/* typid, or a domain's base type */
	int32		basetypmod;
	bool		is_domain;		/* check typid's constraints after */
	void	  **domain_extra;	/* domain_check's cache, and the */
	MemoryContext domain_cxt;	/* context it lives in */
	ConvKind	kind;			/* from basetypid */
	bool		whole_object;	/* json_path '$': nkeys is 0 */
	bool		from_parent;	/* "$parent": a path in the exported
								 * object, not in the row's element */
	int			slot;			/* slot of the path, unless whole_object */
	int			nkeys;			/* the path's keys, in the database */
	char	  **keys;			/* encoding, for lookups in raw */
	FmgrInfo	input;			/* CONV_INPUT only */
	Oid			ioparam;
} ColumnPlan;

struct CloverRowPlan
{
	const char *list_key;		/* the file's array of objects: "elements"
								 * (exports) or "data" (a /v1 page) */
	const char *time_key;		/* createdTime, or created for /v1 */
	PathNode   *root;			/* paths in the exported object */
	int			nslots;
	int			created_slot;	/* time_key, always extracted */
	int			id_slot;		/* id, always extracted (messages) */

	/* rows_from: rows are the elements of a list in each object */
	PathNode   *elem_root;		/* paths in an element; NULL: no rows_from */
	const char *rows_from;		/* the option, for messages */
	int			object_slots;	/* slots [0, object_slots) are the object's */
	int			list_slot;		/* the list itself */
	int			elem_slot;		/* the element itself */

	int			ncolumns;
	ColumnPlan *columns;
	int			raw_jsonb_col;	/* index into columns, or -1 */
	bool		db_utf8;
};

struct CloverFileRows
{
	const CloverRowPlan *plan;
	const char *data;
	size_t		len;
	int			nelems;
	int			maxelems;
	uint32	   *elem_start;		/* byte span of each element */
	uint32	   *elem_end;
	JsonSlot   *slots;			/* nelems * plan->nslots */

	/* rows_from: where each row's element is (0-based), else NULL */
	int		   *row_object;		/* the object in the file's elements */
	int		   *row_item;		/* the element in its list; -1: the
								 * object's rows_from is not a list */
};

/*
 * row_slot
 *		The slot of one path in one element of a split file
 */
static inline const JsonSlot *
row_slot(const CloverFileRows *rows, int idx, int slot)
{
	return &rows->slots[idx * rows->plan->nslots + slot];
}

/*
 * path_child
 *		The trie child of node for a key (bytes, unescaped), or NULL
 *
 * Called for every key of every element the splitter reads.
 */
static inline PathNode *
path_child(const PathNode *node, const char *key, int keylen)
{
	int			i;

	for (i = 0; i < node->nchildren; i++)
	{
		PathNode   *child = node->children[i];

		if (child->keylen == keylen && memcmp(child->key, key, keylen) == 0)
			return child;
	}
	return NULL;
}

/* in jsonb_build.c */
extern bool CloverBuildJsonb(const char *data, size_t start, size_t end,
							 Datum *result);

#endif							/* ROW_PATH_H */
