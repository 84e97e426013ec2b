/*-------------------------------------------------------------------------
 *
 * export_run.h
 *		  A run of a scan's exports: its jobs and downloads
 *
 * The run's private structures, shared only by the files that run
 * exports: exports.c (jobs, scheduling, requests, the interface),
 * export_answers.c (acting on Clover's answers), export_share.c (a job's
 * part in the cluster's shared exports and slots) and export_progress.c
 * (progress NOTICEs).  This header is not part of the cross-file interface,
 * which is clover_export_fdw.h: no other file includes it.
 *
 * IDENTIFICATION
 *		  src/export_run.h
 *-------------------------------------------------------------------------
 */
#ifndef EXPORT_RUN_H
#define EXPORT_RUN_H

#include <time.h>

#include "clover_export_fdw.h"
#include "lib/ilist.h"

/*
 * A job is one window's export.  Its states, and what moves it on:
 *
 *	WAITING		no export yet: once next_creatable allows it and due_at has
 *				come, the job takes a slot in the cluster (in line, see
 *				export_share.c) and POSTs; or an export that covers its
 *				window has appeared -> SHARED
 *	SHARED		served by an export another run created, in this session or
 *				another: waits while it runs at Clover; once it is DONE
 *				-> RUNNING to GET it with this run's token; if its owner has
 *				gone -> RUNNING as its new owner; gone -> WAITING
 *	CREATING	the POST is in flight: created -> RUNNING (or DONE at once);
 *				503, 429 or not sent -> WAITING with a later due_at
 *	RUNNING		polled on the schedule: DONE -> DONE; a failed or unknown
 *				status -> WAITING, once (restart_job)
 *	DONE		files known, downloaded in order and handed out; a file
 *				gone at Clover -> WAITING, once, if nothing of the window
 *				was returned
 *	FINISHED	every file handed out
 */
typedef enum JobState
{
	JOB_WAITING,
	JOB_SHARED,
	JOB_CREATING,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FINISHED
} JobState;

/* Where one file of a DONE export is */
typedef enum DownloadState
{
	DOWNLOAD_NONE,				/* not requested yet */
	DOWNLOAD_INFLIGHT,
	DOWNLOAD_RETRY_WAIT,		/* failed; retried at retry_at */
	DOWNLOAD_READY,				/* downloaded, not handed out */
	DOWNLOAD_HANDED,			/* the caller is converting it */
	DOWNLOAD_RELEASED
} DownloadState;

/* One file of a DONE export */
typedef struct Download
{
	DownloadState state;
	CloverHttpBuffer data;		/* READY or HANDED */
	CloverHttpRequest *request; /* INFLIGHT */
	int			failures;		/* transient failures so far */
	int			redownloads;	/* re-downloads asked for by the caller */
	double		retry_at;
} Download;

typedef struct CloverJob
{
	int			index;
	const CloverWindow *window;
	JobState	state;
	CloverHttpRequest *request; /* the create or poll in flight, or NULL */
	double		due_at;			/* next create attempt or poll */
	double		sent_at;		/* when the request in flight was sent */
	double		answered_at;	/* when Clover answered the last one */
	char	   *export_id;
	char	   *status;
	int			percent;
	CloverPollHistory polls;	/* for the polling schedule */
	int			poll_failures;	/* consecutive */
	int			create_failures;	/* POSTs that sent nothing */
	double		busy_since;		/* first busy answer, or 0 */
	int			busy_answers;	/* busy answers since busy_since */
	double		created_at;		/* when Clover created the export, or 0 */
	int			closed_polls;	/* polls answered "closed" in a row */
	double		closed_since;	/* first closed answer, or 0 */
	int			recreations;	/* exports created again (expiry) */
	int			status_retries; /* exports created again (bad status) */
	int			nfiles;
	char	  **urls;
	Download   *files;
	int			next_start;		/* next file to start downloading */
	int			next_hand;		/* next file to hand out */
	bool		any_handed;

	/* the job's export in the cluster's registry (export_share.c) */
	bool		has_shared;		/* shared names its entry */
	CloverSharedRef shared;
	bool		owner;			/* this run polls it and reports to the
								 * registry */
	bool		holds_slot;		/* owner, export being created: POST when
								 * due */
	bool		borrowed;		/* another run's export, authorized by a
								 * GET with this run's token */
	bool		from_registry;	/* borrowed or adopted: Clover's answer is
								 * checked against the registry's window */
	int64		registry_start_ms;
	int64		registry_end_ms;
	bool		no_reuse;		/* create its own export: another's was
								 * refused, or its files went */
	bool		in_line;		/* waiting for a slot */
	int			line_ahead;		/* waiting before it, -1 unknown */
	bool		line_host_full; /* first, but the API host's slots are
								 * all taken */
	double		line_since;
} CloverJob;

struct CloverExportRun
{
	dlist_node	live_node;		/* in live_runs */
	MemoryContext cxt;
	const CloverFdwOptions *opts;
	const char *token;
	CloverStatementExports *statement;	/* the statement's exports */
	char	   *exports_url;	/* absolute */
	char	   *exports_path;	/* the same without scheme and host */
	int			njobs;
	CloverJob  *jobs;
	int			cur;			/* job whose files are handed out next */
	CloverHttp *http;
	uint32		cluster_run;	/* its name in the cluster's shared state */
	CloverApiKey token_key;		/* its token's and app's request limiters */
	TimestampTz stmt_start;		/* the statement's start */
	bool		api_answered;	/* the API host answered a request */
	int			files_outstanding;	/* in flight, waiting or ready */
	bool		prefetch_unlocked;
	bool		whole_windows;	/* see CloverClientConfig */
	int			rate_limit_streak;
	double		rate_limited_since;
	Download   *handed;
	CloverScanStats stats;
	/* progress NOTICEs (clover_report_progress and friends) */
	double		last_notice_at;
	double		started_at;
	const int64 *rows_returned; /* the scan's count */
	int64		rows_before;	/* *rows_returned when the run began */
	bool		summed_up;
};

/*
 * free_download
 *		Free a downloaded file's buffer, if it has one
 */
static inline void
free_download(CloverExportRun *run, Download *dl)
{
	CloverHttpFreeBuffer(run->http, &dl->data);
}

/* export_answers.c */
extern CloverExportRef clover_job_ref(CloverExportRun *run, CloverJob *job,
									  bool is_create);
extern void clover_handle_create(CloverExportRun *run, CloverJob *job,
								 CloverHttpResult *res);
extern void clover_handle_poll(CloverExportRun *run, CloverJob *job,
							   CloverHttpResult *res);
extern void clover_handle_file(CloverExportRun *run, CloverJob *job,
							   int file_no, CloverHttpResult *res);

/* export_share.c */
extern bool clover_job_acquire(CloverExportRun *run, CloverJob *job,
							   double now);
extern void clover_job_follow(CloverExportRun *run, CloverJob *job,
							  double now);
extern void clover_job_report(CloverExportRun *run, CloverJob *job,
							  const CloverExportInfo *info, bool retrying);
extern void clover_job_unshare(CloverExportRun *run, CloverJob *job,
							   bool drop_entry);
extern void clover_job_finished(CloverExportRun *run, CloverJob *job);
extern bool clover_job_export_matches(CloverExportRun *run, CloverJob *job,
									  const CloverExportInfo *info);

/* export_progress.c */
extern void clover_report_progress(CloverExportRun *run, double now);
extern void clover_report_window_done(CloverExportRun *run, CloverJob *job);
extern void clover_report_summary(CloverExportRun *run);

#endif							/* EXPORT_RUN_H */
