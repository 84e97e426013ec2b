/*-------------------------------------------------------------------------
 *
 * scan_async.c
 *		  Asynchronous execution of a scan under an Append
 *
 * An Append over many merchants' tables (the partitions of a table
 * partitioned by merchant_id, a UNION ALL) runs its async-capable children
 * at once, in one backend: it asks each child for a row without waiting
 * (ForeignAsyncRequest); a child whose Clover has not answered yet says so
 * and gives one descriptor to wait on (ForeignAsyncConfigureWait); the
 * Append waits on all children's descriptors together and calls back the
 * child whose descriptor fired (ForeignAsyncNotify), which advances its run
 * and answers with a row or waits again.  So the exports of a hundred
 * merchants run at Clover together, each under its merchant's slots and
 * the cluster's limits, while rows of those already done stream out.
 *
 * A child adds exactly one event (the Append makes room for one per
 * child): the run's descriptor from http.c, an epoll that watches the
 * run's sockets and a timer armed for its next timer (a poll, a backoff,
 * the rate limiter, a place in line).  The timer never sleeps longer than
 * ASYNC_MAX_SLEEP_MS, so a cancel is seen within that even where the
 * Append's wait does not include the latch.
 *
 * A row is made by the node's own ExecScan (quals and projection), with
 * the scan told not to wait (clover_next_row); an empty slot then means
 * either the end or "not yet", which the scan remembers.
 *
 * Sorted scans read whole windows before their first row and are never
 * async-capable; neither are tables whose option async_capable is false.
 *
 * IDENTIFICATION
 *		  src/scan_async.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "executor/execAsync.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/latch.h"

/* the longest an asynchronous scan sleeps without looking at interrupts */
#define ASYNC_MAX_SLEEP_MS		100

/*
 * produce_row
 *		Answer the Append's request: a row, the end, or "pending" when
 *		Clover has not answered yet
 */
static void
produce_row(AsyncRequest *areq)
{
	ForeignScanState *node = (ForeignScanState *) areq->requestee;
	CloverFdwScanState *fsstate = node->fdw_state;
	TupleTableSlot *result;

	fsstate->async_nowait = true;
	fsstate->last_fetch = CLOVER_FETCH_DONE;
	result = node->ss.ps.ExecProcNodeReal(&node->ss.ps);
	fsstate->async_nowait = false;

	if (!TupIsNull(result))
		ExecAsyncRequestDone(areq, result);
	else if (fsstate->last_fetch == CLOVER_FETCH_PENDING)
		ExecAsyncRequestPending(areq);
	else
		ExecAsyncRequestDone(areq, NULL);
}

/*
 * cloverIsForeignPathAsyncCapable
 *		May this path run under an asynchronous Append?
 */
bool
cloverIsForeignPathAsyncCapable(ForeignPath *path)
{
	CloverFdwOptions *opts = clover_path_options(path);

	return opts->async_capable && path->path.pathkeys == NIL;
}

/*
 * cloverForeignAsyncRequest
 *		The Append wants a row: give one now, or say when to ask again
 */
void
cloverForeignAsyncRequest(AsyncRequest *areq)
{
	produce_row(areq);
}

/*
 * cloverForeignAsyncConfigureWait
 *		Add the one descriptor that fires when the scan can advance
 */
void
cloverForeignAsyncConfigureWait(AsyncRequest *areq)
{
	ForeignScanState *node = (ForeignScanState *) areq->requestee;
	CloverFdwScanState *fsstate = node->fdw_state;
	AppendState *append = (AppendState *) areq->requestor;
	int			fd;

	Assert(areq->callback_pending);
	if (fsstate->pages)
		fd = CloverPagesWaitFd(fsstate->pages, ASYNC_MAX_SLEEP_MS);
	else
	{
		Assert(fsstate->run != NULL);
		fd = CloverRunWaitFd(fsstate->run, ASYNC_MAX_SLEEP_MS);
	}
	AddWaitEventToSet(append->as_eventset, WL_SOCKET_READABLE, fd, NULL,
					  areq);
}

/*
 * cloverForeignAsyncNotify
 *		The scan's descriptor fired: advance the run, answer the request
 */
void
cloverForeignAsyncNotify(AsyncRequest *areq)
{
	CHECK_FOR_INTERRUPTS();
	produce_row(areq);
}
