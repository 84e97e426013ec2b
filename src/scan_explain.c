/*-------------------------------------------------------------------------
 *
 * scan_explain.c
 *		  EXPLAIN of a scan: what Clover will be (or was) asked
 *
 * EXPLAIN shows the export type and merchant (for an e-commerce list, the
 * request and its parameters), the window order of a sorted
 * scan, and the time range with the windows it is cut into, computed as
 * the executor would when the bounds are constants or stable functions
 * (without sending anything to Clover).  EXPLAIN ANALYZE adds the scan's
 * figures: exports, polls, files, rows, retries, waits and where the time
 * went.
 *
 * IDENTIFICATION
 *		  src/scan_explain.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "commands/explain.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/rel.h"

static bool contain_param(Node *node, void *context);
static void explain_scan_stats(const CloverScanStats *s, ExplainState *es);
static void explain_list_stats(const CloverScanStats *s, ExplainState *es);

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
 * explain_list_stats
 *		EXPLAIN ANALYZE's account of a scan of a list: pages, requests,
 *		waits and where the time went
 */
static void
explain_list_stats(const CloverScanStats *s, ExplainState *es)
{
	ExplainPropertyInteger("Pages Fetched", NULL, s->pages_fetched, es);
	ExplainPropertyInteger("List Requests", NULL, s->list_requests, es);
	ExplainPropertyInteger("Bytes Downloaded", "bytes", s->bytes_downloaded, es);
	ExplainPropertyInteger("Rows Returned", NULL, s->rows_returned, es);
	ExplainPropertyInteger("Repeated Objects Skipped", NULL, s->rows_repeated,
						   es);
	if (s->rows_outside_window > 0)
		ExplainPropertyInteger("Clover Rows Outside Range", NULL,
							   s->rows_outside_window, es);
	if (s->rows_replayed > 0)
		ExplainPropertyInteger("Rows Replayed On Rescans", NULL,
							   s->rows_replayed, es);
	if (s->retries)
		ExplainPropertyInteger("Retries", NULL, s->retries, es);
	if (s->rate_limited)
		ExplainPropertyText("Clover Waits",
							psprintf("rate-limited " INT64_FORMAT " (%.1f s)",
									 s->rate_limited, s->rate_limit_wait_secs),
							es);
	if (es->timing)
	{
		ExplainPropertyFloat("Waiting For Clover", "s", s->clover_wait_secs, 3, es);
		ExplainPropertyFloat("Converting", "s", s->convert_secs, 3, es);
	}
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
	if (s->exports_shared > 0)
		ExplainPropertyInteger("Exports Shared", NULL, s->exports_shared, es);
	if (s->slot_waits > 0)
	{
		ExplainPropertyInteger("Slot Waits", NULL, s->slot_waits, es);
		if (es->timing)
			ExplainPropertyFloat("Slot Wait Time", "s", s->slot_wait_secs, 3,
								 es);
	}
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
 * explain_list
 *		EXPLAIN of a scan of an e-commerce /v1 list: the request with its
 *		parameters (computed as the executor would, when it can be before
 *		execution), and with ANALYZE the pages and requests it took
 */
static void
explain_list(ForeignScanState *node, CloverFdwScanState *fsstate,
			 ExplainState *es)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	CloverRange range = fsstate->range;

	if (!fsstate->started && contain_param((Node *) fsplan->fdw_exprs, NULL))
		ExplainPropertyText("Clover List",
							psprintf("GET /v1/%s, created bounds computed at execution",
									 fsstate->opts->ecommerce_object),
							es);
	else
	{
		if (!fsstate->started)
			clover_compute_range(node, fsstate, &range);
		if (range.empty)
			ExplainPropertyText("Clover List", "none (the range is empty)",
								es);
		else
			ExplainPropertyText("Clover List",
								CloverPagesEndpoint(fsstate->opts, &range),
								es);
		ExplainPropertyText("Time Range", range.empty ? "empty" :
							range.has_lo ? CloverRangeText(&range) :
							psprintf("the whole list, up to %s",
									 CloverFormatUtc(range.hi)),
							es);
	}
	if (es->analyze)
	{
		CloverScanStats s = fsstate->stats;

		if (fsstate->pages)
			CloverScanStatsAdd(&s, CloverPagesGetStats(fsstate->pages));
		explain_list_stats(&s, es);
	}
}

/*
 * cloverExplainForeignScan
 *		What Clover will be (or was) asked, and with ANALYZE what happened
 */
void
cloverExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	CloverFdwScanState *fsstate = node->fdw_state;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

	if (fsstate->opts->ecommerce_object)
	{
		explain_list(node, fsstate, es);
		return;
	}
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

		clover_compute_range(node, fsstate, &range);
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
