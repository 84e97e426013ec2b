/*-------------------------------------------------------------------------
 *
 * clover_export_fdw.c
 *		  Foreign-data wrapper for Clover's Merchant Data Export API:
 *		  the handler and the SQL-callable functions
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
 * A table of an e-commerce /v1 list (charges, refunds, orders) is read
 * page by page with a cursor instead (ecommerce_pages.c), through the same
 * HTTP layer, limits and row path.  Under an asynchronous Append (many
 * merchants' tables at once) every scan waits in the executor's event
 * loop rather than its own (scan_async.c).
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
 * This file holds the wrapper's entry points only: the handler, whose
 * callbacks live in scan_plan.c (planning), scan_exec.c (execution),
 * scan_async.c (under an asynchronous Append), scan_explain.c (EXPLAIN) and import_schema.c (IMPORT FOREIGN SCHEMA),
 * and the functions the extension script declares (others are in
 * registry_sql.c and merchant_sql.c).
 *
 * IDENTIFICATION
 *		  src/clover_export_fdw.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "clover_export_fdw.h"
#include "foreign/fdwapi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(clover_export_fdw_handler);
PG_FUNCTION_INFO_V1(clover_export_fdw_open_handles);
PG_FUNCTION_INFO_V1(clover_export_fdw_convert_file);

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

	/* under an asynchronous Append */
	routine->IsForeignPathAsyncCapable = cloverIsForeignPathAsyncCapable;
	routine->ForeignAsyncRequest = cloverForeignAsyncRequest;
	routine->ForeignAsyncConfigureWait = cloverForeignAsyncConfigureWait;
	routine->ForeignAsyncNotify = cloverForeignAsyncNotify;

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
	origin.source = "file 1 of 1 of export \"(file)\"";
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
