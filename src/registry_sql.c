/*-------------------------------------------------------------------------
 *
 * registry_sql.c
 *		  The registry of exports in SQL: clover_export_fdw_exports() and
 *		  clover_export_fdw_forget_exports()
 *
 * The registry (export_registry.c) is shared by every database of the
 * cluster, so a user sees, and may forget, only the exports of the servers
 * of this database on which they have USAGE: those whose API host and
 * merchant (the server's, or one of its tables') match.  An export that
 * two such servers reach is shown once per server.
 *
 * IDENTIFICATION
 *		  src/registry_sql.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "cluster_state.h"
#include "clover_export_fdw.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(clover_export_fdw_exports);
PG_FUNCTION_INFO_V1(clover_export_fdw_forget_exports);

#define EXPORTS_COLUMNS		10

/* A merchant key that a server the caller may use reaches */
typedef struct VisibleKey
{
	uint64		key;
	char	   *server_name;
} VisibleKey;

/*
 * is_our_wrapper
 *		Is fdwid a foreign-data wrapper whose handler is ours?
 */
static bool
is_our_wrapper(Oid fdwid)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(fdwid);
	HeapTuple	tuple;
	bool		ours = false;

	if (!OidIsValid(fdw->fdwhandler))
		return false;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fdw->fdwhandler));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tuple);

		ours = proc->prolang == ClanguageId &&
			strcmp(NameStr(proc->proname), "clover_export_fdw_handler") == 0;
		ReleaseSysCache(tuple);
	}
	return ours;
}

/*
 * visible_keys
 *		The merchant keys of this database's clover_export_fdw servers on
 *		which the current user has USAGE; *n of them
 */
static VisibleKey *
visible_keys(int *n)
{
	VisibleKey *keys = NULL;
	int			cap = 0;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;

	*n = 0;
	rel = table_open(ForeignServerRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_foreign_server srv = (Form_pg_foreign_server) GETSTRUCT(tuple);
		char	   *api_base;
		ListCell   *lc;

		if (pg_foreign_server_aclcheck(srv->oid, GetUserId(), ACL_USAGE) !=
			ACLCHECK_OK || !is_our_wrapper(srv->srvfdw))
			continue;
		foreach(lc, CloverServerMerchants(srv->oid, &api_base))
		{
			if (*n >= cap)
			{
				cap = Max(16, cap * 2);
				keys = keys ? repalloc(keys, sizeof(VisibleKey) * cap) :
					palloc(sizeof(VisibleKey) * cap);
			}
			keys[*n].key = CloverMerchantKey(api_base, strVal(lfirst(lc)));
			keys[*n].server_name = pstrdup(NameStr(srv->srvname));
			(*n)++;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return keys;
}

/*
 * status_name
 *		How clover_export_fdw_exports() shows a status: Clover's words, and
 *		CREATING while the POST is in flight
 */
static const char *
status_name(uint8 status)
{
	switch ((ExportStatus) status)
	{
		case EXPORT_CREATING:
			return "CREATING";
		case EXPORT_PENDING:
			return "PENDING";
		case EXPORT_IN_PROGRESS:
			return "IN_PROGRESS";
		case EXPORT_DONE:
			return "DONE";
		case EXPORT_FAILED:
			return "FAILED";
		case EXPORT_FREE:
			break;
	}
	return "UNKNOWN";
}

/*
 * ms_datum
 *		Epoch milliseconds as a timestamptz Datum; null when out of range
 *		or unknown (0)
 */
static Datum
ms_datum(int64 ms, bool *isnull)
{
	TimestampTz ts;

	*isnull = (ms == 0 || !CloverUnixMsToTimestamp(ms, &ts));
	return *isnull ? (Datum) 0 : TimestampTzGetDatum(ts);
}

/*
 * snapshot
 *		A copy of the registry's entries and how many scans use each
 */
static RegistryEntry *
snapshot(int **uses)
{
	ClusterState *cs = ClusterStateAttach();
	RegistryEntry *copy = palloc(sizeof(RegistryEntry) * CLUSTER_MAX_EXPORTS);
	int		   *count = palloc0(sizeof(int) * CLUSTER_MAX_EXPORTS);
	int			i;

	LWLockAcquire(&cs->lock, LW_SHARED);
	memcpy(copy, cs->exports, sizeof(RegistryEntry) * CLUSTER_MAX_EXPORTS);
	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind == CLAIM_USE &&
			c->generation == cs->exports[c->entry].generation)
			count[c->entry]++;
	}
	LWLockRelease(&cs->lock);
	*uses = count;
	return copy;
}

/*
 * put_row
 *		One row of clover_export_fdw_exports()
 */
static void
put_row(ReturnSetInfo *rsinfo, const char *server, const RegistryEntry *e,
		int uses)
{
	Datum		values[EXPORTS_COLUMNS];
	bool		nulls[EXPORTS_COLUMNS] = {0};

	values[0] = CStringGetTextDatum(server);
	values[1] = CStringGetTextDatum(e->merchant_id);
	values[2] = CStringGetTextDatum(CloverExportTypeName((CloverExportType) e->export_type));
	values[3] = ms_datum(e->start_ms, &nulls[3]);
	values[4] = ms_datum(e->end_ms, &nulls[4]);
	values[5] = CStringGetTextDatum(e->export_id);
	nulls[5] = (e->export_id[0] == '\0');
	values[6] = CStringGetTextDatum(status_name(e->status));
	values[7] = TimestampTzGetDatum(e->created);
	values[8] = ms_datum(e->available_until, &nulls[8]);
	values[9] = Int32GetDatum(uses);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * clover_export_fdw_exports
 *		The registry's exports, per server the caller may use, in window
 *		order as the registry holds them
 */
Datum
clover_export_fdw_exports(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RegistryEntry *entries;
	VisibleKey *keys;
	int		   *uses;
	int			nkeys;
	int			i,
				k;

	InitMaterializedSRF(fcinfo, 0);
	keys = visible_keys(&nkeys);
	entries = snapshot(&uses);
	for (k = 0; k < nkeys; k++)
	{
		for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
		{
			if (entries[i].merchant_key != 0 &&
				entries[i].merchant_key == keys[k].key)
				put_row(rsinfo, keys[k].server_name, &entries[i], uses[i]);
		}
	}
	return (Datum) 0;
}

/*
 * clover_export_fdw_forget_exports
 *		Forget the exports of the servers the caller may use, except those
 *		still in flight at Clover (scans wait for them); returns how many
 */
Datum
clover_export_fdw_forget_exports(PG_FUNCTION_ARGS)
{
	ClusterState *cs = ClusterStateAttach();
	VisibleKey *keys;
	uint64	   *merchant_keys;
	int			nkeys;
	int			k;
	int64		forgotten;

	keys = visible_keys(&nkeys);
	merchant_keys = palloc(sizeof(uint64) * Max(nkeys, 1));
	for (k = 0; k < nkeys; k++)
		merchant_keys[k] = keys[k].key;
	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	forgotten = RegistryForget(cs, merchant_keys, nkeys);
	ClusterStateSave(cs);
	LWLockRelease(&cs->lock);
	CloverClusterReportSaveFailure();
	PG_RETURN_INT64(forgotten);
}
