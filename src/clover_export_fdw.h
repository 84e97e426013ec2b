/*-------------------------------------------------------------------------
 *
 * clover_export_fdw.h
 *		  The only cross-file interface of clover_export_fdw
 *
 * The wrapper is split by responsibility, and each file talks to the others
 * only through the declarations below:
 *
 *	clover_export_fdw.c  the handler and the SQL-callable functions
 *	scan_plan.c			 planner callbacks: estimates, paths, the plan
 *	scan_exec.c			 executor callbacks: windows, the run, rows,
 *						 rescans
 *	scan_async.c		 a scan under an asynchronous Append: one
 *						 descriptor to wait on, rows without waiting
 *	scan_explain.c		 EXPLAIN and EXPLAIN ANALYZE of a scan
 *	import_schema.c		 IMPORT FOREIGN SCHEMA
 *	options.c			 _PG_init, GUCs, regions, option validation and
 *						 merged option lookup
 *	time_quals.c		 which quals bound the time column (planner)
 *	time_range.c		 evaluated bounds -> half-open range of createdTime
 *	exports.c			 runs a scan's exports: jobs, scheduling, requests,
 *						 files handed out; lists Clover's rules
 *	export_answers.c	 acts on Clover's answers: waits, retries, polls,
 *						 exports created again
 *	export_share.c		 a job's part in the cluster's exports: a slot in
 *						 line, another scan's export, reports to the
 *						 registry
 *	export_progress.c	 progress NOTICEs of a run
 *						 (these four share export_run.h, private to them)
 *	cluster_state.c		 the state all sessions of the cluster share:
 *						 shared memory, its lock, its file, cleanup after
 *						 a backend
 *	export_registry.c	 the exports the cluster knows: reuse, sharing
 *	export_slots.c		 Clover's limits cluster-wide: slots in line, each
 *						 token's request rate
 *	registry_sql.c		 clover_export_fdw_exports(), _forget_exports()
 *						 (these four share cluster_state.h)
 *	ecommerce_pages.c	 the pages of an e-commerce /v1 list: cursor
 *						 paging, repeats, Clover's limits
 *	sorted_scan.c		 scans ordered by the time column: pathkeys, costs,
 *						 windows in either direction, each sorted locally
 *	statement_exports.c	 per statement: completed exports served again to
 *						 rescans, and max_exports_per_statement
 *	clover_errors.c		 Clover's answers -> messages: every ereport about
 *						 one, redaction of secrets
 *	http.c				 every libcurl call: concurrent requests,
 *						 interruptible waits, open-handle counts
 *	api_json.c			 every json-c call: Clover's API answers
 *	row_plan.c			 export files to tuples, the row path (row_path.h):
 *						 per scan, which paths to find and how to convert
 *	json_split.c		 per file, validate it and find each row's values
 *	row_convert.c		 per row, those values into Datums
 *	jsonb_build.c		 jsonb from validated bytes, as jsonb_in builds it
 *	json_lex.c			 the JSON lexing the files above share (json_lex.h)
 *
 * and the parts that need neither a backend nor curl, in clover_core.h
 * (windows.c, service_hours.c, pacing.c).
 *
 * Times inside the wrapper are PostgreSQL TimestampTz values (microseconds
 * since 2000-01-01 UTC); Clover speaks epoch milliseconds, converted only by
 * the functions of clover_core.h.
 *
 * IDENTIFICATION
 *		  src/clover_export_fdw.h
 *-------------------------------------------------------------------------
 */
#ifndef CLOVER_EXPORT_FDW_H
#define CLOVER_EXPORT_FDW_H

#include "access/tupdesc.h"
#include "clover_core.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "foreign/fdwapi.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "nodes/pathnodes.h"
#include "utils/palloc.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

/* the JSON key Clover's export windows filter on */
#define CLOVER_TIME_KEY				"createdTime"

/* the JSON key of the e-commerce /v1 lists' created.gt and created.lt */
#define CLOVER_ECOMMERCE_TIME_KEY	"created"

/* the largest page of a /v1 list (its "hard limit") */
#define CLOVER_ECOMMERCE_PAGE_LIMIT 100

/*
 * An export is not used again this close to its files' expiry
 * (availableUntil): the downloads must finish before Clover deletes them
 */
#define CLOVER_EXPIRY_MARGIN_MS		(10 * 60 * 1000)

/* json_path value meaning "the whole object" */
#define CLOVER_WHOLE_OBJECT_PATH	"$"

/*
 * A column of this name without json_path holds the table's merchant (its
 * merged option merchant_id), not a key of the objects
 */
#define CLOVER_MERCHANT_COLUMN		"merchant_id"

typedef enum CloverExportType
{
	CLOVER_EXPORT_ORDERS,
	CLOVER_EXPORT_PAYMENTS
} CloverExportType;

/* ----------------------------------------------------------------
 *		options.c
 * ----------------------------------------------------------------
 */

/* Every option of every object, merged: table > server > defaults */
typedef struct CloverFdwOptions
{
	/* identification, for messages and for max_concurrent_exports */
	Oid			serverid;
	char	   *server_name;
	char	   *table_name;

	/* where and what */
	char	   *region;			/* us, eu, la, sandbox */
	char	   *api_base;		/* base URL without trailing slash */
	bool		api_base_overridden;	/* base_url was given */
	char	   *merchant_id;
	CloverExportType export_type;
	char	   *ecommerce_object;	/* charges, refunds or orders: the table
									 * reads /v1/<it>, not exports; else NULL */
	char	   *ecommerce_base;	/* e-commerce base URL, no trailing slash;
								 * NULL if the region has none */
	bool		has_history_start;
	TimestampTz history_start;	/* an absolute instant */

	/* Clover's service rules */
	CloverServiceHours hours;
	int			wait_for_service_ms;
	int			busy_timeout_ms;
	int			export_timeout_ms;	/* PENDING/IN_PROGRESS at most this */
	int			max_concurrent_exports;
	int			max_exports_per_statement;	/* created by one statement */
	int			reuse_exports_ms;	/* use exports at most this old; 0 never */

	/*
	 * Clover's limits of a whole app, all sessions of the cluster together
	 * (wrapper options): this cluster's share of them (node_share applied)
	 */
	int			app_requests_per_second;
	int			app_max_concurrent_requests;
	int			max_exports_per_host;	/* exports in flight at the API host */
	double		node_share;

	/* transfers */
	int			max_parallel_downloads;
	bool		async_capable;	/* may run under an asynchronous Append */
	int			connect_timeout_ms;
	int			request_timeout_ms;
	int			max_retries;
	char	   *ca_file;

	/* planning */
	double		rows_per_day;
} CloverFdwOptions;

/*
 * clover_time_key
 *		The JSON key of the table's time: createdTime, or an e-commerce
 *		list's created
 */
static inline const char *
clover_time_key(const CloverFdwOptions *opts)
{
	return opts->ecommerce_object ? CLOVER_ECOMMERCE_TIME_KEY : CLOVER_TIME_KEY;
}

extern CloverFdwOptions *CloverGetOptions(Oid foreigntableid);
extern char *CloverGetAccessToken(Oid serverid, Oid userid, bool ecommerce);
extern List *CloverServerMerchants(Oid serverid, char **api_base);
extern List *CloverColumnJsonKeys(Oid relid, AttrNumber attnum,
								  const char *attname, bool *from_parent);
extern bool CloverColumnIsMerchant(Oid relid, AttrNumber attnum,
								   const char *attname);
extern char *CloverTableRowsFrom(Oid relid);
extern bool CloverTableIsEcommerce(Oid relid);
extern List *CloverTableRowsFromKeys(Oid relid);
extern char *CloverDefaultJsonPath(const char *colname);
extern const char *CloverExportTypeName(CloverExportType type);

/* GUCs */
extern bool clover_progress;

/* ----------------------------------------------------------------
 *		time_quals.c and time_range.c
 * ----------------------------------------------------------------
 */

/*
 * The column that carries the time bounds: the one mapped to createdTime.
 * Its type, after resolving domains, is timestamptz or timestamp; a
 * timestamp column holds UTC wall time.  typmod is its precision: values
 * are rounded to it, so bounds on the column are not bounds on createdTime.
 */
typedef struct CloverTimeColumn
{
	AttrNumber	attno;			/* 0 if the table has none */
	Oid			basetype;		/* TIMESTAMPTZOID or TIMESTAMPOID */
	int32		typmod;			/* -1 if none */
} CloverTimeColumn;

/* How a bound expression limits the time column */
typedef enum CloverBoundKind
{
	CLOVER_BOUND_GE,			/* col >= value */
	CLOVER_BOUND_GT,			/* col > value */
	CLOVER_BOUND_LE,			/* col <= value */
	CLOVER_BOUND_LT,			/* col < value */
	CLOVER_BOUND_EQ				/* col = value */
} CloverBoundKind;

/* A bound found in the quals: kind plus the expression giving its value */
typedef struct CloverTimeBound
{
	CloverBoundKind kind;
	bool		on_date;		/* on the column's date: col::date kind value */
	Expr	   *value;			/* no Vars of the scanned relation */
	RestrictInfo *rinfo;		/* the clause it came from */
} CloverTimeBound;

/* A resolved half-open range, or why there is none */
typedef struct CloverRange
{
	bool		empty;			/* provably no rows: no export at all */
	bool		has_lo;			/* false: no lower bound anywhere */
	bool		lo_from_history;	/* lower bound came from history_start */
	TimestampTz lo;
	TimestampTz hi;
	/* for EXPLAIN: the end the query gave, before the statement start */
	TimestampTz query_hi;		/* infinity if none */
	bool		query_hi_closed;	/* it was "<= query_hi - 1" */
} CloverRange;

extern List *CloverExtractTimeBounds(RelOptInfo *baserel,
									 const CloverTimeColumn *timecol,
									 List *clauses);
extern bool CloverIsTimeBoundClause(RelOptInfo *baserel,
									const CloverTimeColumn *timecol,
									RestrictInfo *rinfo,
									CloverTimeBound *bound);
extern void CloverReportNoLowerBound(PlannerInfo *root, RelOptInfo *baserel,
									 const CloverTimeColumn *timecol,
									 const char *table_name,
									 const char *colname) pg_attribute_noreturn();
extern void CloverRangeInit(CloverRange *range);
extern void CloverRangeApplyBound(CloverRange *range, CloverBoundKind kind,
								  Datum value, bool isnull, Oid valuetype,
								  const CloverTimeColumn *timecol);
extern void CloverRangeApplyDateBound(CloverRange *range,
									  CloverBoundKind kind, Datum value,
									  bool isnull,
									  const CloverTimeColumn *timecol);
extern void CloverRangeFinish(CloverRange *range,
							  const TimestampTz *history_start,
							  TimestampTz now);
extern CloverWindow *CloverSplitRange(const CloverRange *range, int *nwindows);
extern CloverWindow *CloverSplitRangeByDays(const CloverRange *range,
											TimestampTz limit, int *nwindows);
extern CloverWindow *CloverSplitRangeAround(const CloverRange *range,
											bool by_days, TimestampTz limit,
											const CloverWindow *spans,
											int nspans, int *nwindows);
extern char *CloverFormatUtc(TimestampTz ts);
extern char *CloverRangeText(const CloverRange *range);

/* ----------------------------------------------------------------
 *		api_json.c
 * ----------------------------------------------------------------
 */

/* What Clover said about an export (the export object) */
typedef struct CloverExportInfo
{
	char	   *id;
	char	   *status;
	int			percent;		/* -1 if absent */
	int64		available_until;	/* epoch ms, 0 if absent */
	char	   *type;			/* NULL if absent */
	bool		has_window;		/* startTime and endTime were given */
	int64		start_ms;
	int64		end_ms;
	int			nurls;
	char	  **urls;
} CloverExportInfo;

extern bool CloverParseExportObject(const char *body, size_t len,
									CloverExportInfo *info, char **errmsg);
/* What a page of an e-commerce /v1 list holds (the rows aside) */
typedef struct CloverListPage
{
	bool		has_more;
	int			ndata;			/* elements of "data" */
	char	  **ids;			/* each element's "id" */
} CloverListPage;

extern bool CloverParseListPage(const char *body, size_t len,
								CloverListPage *page, char **errmsg);
extern char *CloverBuildExportRequest(CloverExportType type, int64 start_ms,
									  int64 end_ms);
extern char *CloverErrorBodyMessage(const char *body, size_t len,
									size_t maxlen);

/* ----------------------------------------------------------------
 *		The row path: row_plan.c, json_split.c, row_convert.c
 * ----------------------------------------------------------------
 */

/* How to fill the tuple's columns from an object: built once per scan */
typedef struct CloverRowPlan CloverRowPlan;

/* One downloaded file, split into validated elements */
typedef struct CloverFileRows CloverFileRows;

/*
 * Where a row came from, for error messages: "file 2 of 5 of export
 * \"<id>\"", or "page 3 of /v1/charges"
 */
typedef struct CloverRowOrigin
{
	const char *source;
} CloverRowOrigin;

extern CloverRowPlan *CloverMakeRowPlan(Relation rel, Bitmapset *attrs_used,
										bool need_all);
extern CloverFileRows *CloverSplitFile(const CloverRowPlan *plan,
									   const char *data, size_t len,
									   char **errmsg);
extern int	CloverFileRowCount(const CloverFileRows *rows);
extern bool CloverRowCreatedTime(const CloverFileRows *rows, int idx,
								 TimestampTz *created);
extern char *CloverRowId(const CloverFileRows *rows, int idx);
extern int	CloverRowObjectNo(const CloverFileRows *rows, int idx);
extern void CloverFillRow(const CloverRowPlan *plan, const CloverFileRows *rows,
						  int idx, const CloverRowOrigin *origin, int natts,
						  Datum *values, bool *nulls);

/* ----------------------------------------------------------------
 *		http.c
 * ----------------------------------------------------------------
 */

/* A set of HTTP requests run together, and one request of it */
typedef struct CloverHttp CloverHttp;
typedef struct CloverHttpRequest CloverHttpRequest;

/* What to send */
typedef struct CloverHttpRequestSpec
{
	const char *url;			/* http or https only */
	const char *bearer_token;	/* NULL: none, and redirects are followed */
	const char *post_body;		/* JSON to POST; NULL: GET */
	size_t		max_body;		/* a longer answer fails the request */
	bool		large_body;		/* read in large chunks */
	int			connect_timeout_ms;
	int			stall_timeout_ms;	/* under 1 byte/s this long fails */
	const char *ca_file;		/* NULL: the system's CAs */
	void	   *owner;			/* the caller's, returned with the result */
	int			tag;
} CloverHttpRequestSpec;

/* How a request ended */
typedef enum CloverHttpOutcome
{
	CLOVER_HTTP_ANSWERED,		/* an answer, of any status */
	CLOVER_HTTP_NOT_SENT,		/* a failure that may pass; nothing reached
								 * the server, so even a POST can be repeated */
	CLOVER_HTTP_TRANSIENT,		/* a failure that may pass, after sending */
	CLOVER_HTTP_FATAL			/* a failure that will not pass */
} CloverHttpOutcome;

/* A response body: palloc'd in the set's context, NUL-terminated */
typedef struct CloverHttpBuffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} CloverHttpBuffer;

/* A finished request */
typedef struct CloverHttpResult
{
	CloverHttpOutcome outcome;
	bool		unreachable;	/* NOT_SENT because no connection could be
								 * made: refused, or the host is unknown */
	long		status;			/* HTTP status, 0 if none */
	CloverHttpBuffer body;		/* the caller's; data set when ANSWERED */
	long		retry_after_secs;	/* -1 if absent */
	double		total_secs;		/* transfer time */
	char	   *redirect_url;	/* Location of a 3xx, or NULL */
	char	   *error;			/* why it failed, unredacted; NULL if
								 * answered */
	void	   *owner;
	int			tag;
} CloverHttpResult;

typedef enum CloverUrlPartKind
{
	CLOVER_URL_SCHEME,
	CLOVER_URL_HOST,
	CLOVER_URL_PORT,
	CLOVER_URL_PATH,
	CLOVER_URL_QUERY
} CloverUrlPartKind;

extern void CloverHttpInit(void);
extern CloverHttp *CloverHttpCreate(MemoryContext cxt);
extern CloverHttpRequest *CloverHttpStart(CloverHttp *http,
										  const CloverHttpRequestSpec *spec);
extern void CloverHttpAbandon(CloverHttp *http, CloverHttpRequest *req);
extern bool CloverHttpBusy(CloverHttp *http);
extern int	CloverHttpWaitFd(CloverHttp *http, long timeout_ms);
extern void CloverHttpPerform(CloverHttp *http);
extern bool CloverHttpNextResult(CloverHttp *http, CloverHttpResult *result);
extern void CloverHttpWait(CloverHttp *http, long timeout_ms);
extern void CloverHttpFreeBuffer(CloverHttp *http, CloverHttpBuffer *buf);
extern void CloverHttpFreeResult(CloverHttp *http, CloverHttpResult *res);
extern void CloverOpenHandles(int *handles, int *buffers, int64 *bytes);
extern char *CloverUrlPart(const char *url, CloverUrlPartKind part,
						   bool decode);

/* ----------------------------------------------------------------
 *		clover_errors.c
 * ----------------------------------------------------------------
 */

/* The facts a message about one export names (the token only to hide it) */
typedef struct CloverExportRef
{
	const CloverFdwOptions *opts;
	const char *token;			/* never shown: redacted out of every text */
	const char *exports_path;	/* /v3/merchants/{mId}/exports, or the
								 * path of a /v1 list */
	const CloverWindow *window;
	const char *export_id;		/* NULL until Clover named it */
	bool		is_create;		/* the request was the POST */
	bool		host_answered;	/* the API host has answered this scan */
} CloverExportRef;

extern char *CloverFormatDuration(double secs);
extern char *CloverWindowText(const CloverWindow *window);
extern char *CloverAnswerText(const CloverExportRef *ref,
							  const CloverHttpResult *res);
extern void CloverCheckFileUrl(const CloverExportRef *ref, const char *url,
							   int file_no, int nfiles);
extern void CloverReadExportObject(const CloverExportRef *ref,
								   const CloverHttpResult *res,
								   CloverExportInfo *info);
extern void CloverReportApiFailure(const CloverExportRef *ref,
								   const CloverHttpResult *res,
								   int attempts) pg_attribute_noreturn();
extern void CloverReportRateLimited(const CloverExportRef *ref,
									const CloverHttpResult *res,
									const char *what, int answers,
									double secs) pg_attribute_noreturn();
extern void CloverNoticeWaitingForService(const CloverExportRef *ref,
										  const char *message,
										  TimestampTz opening,
										  double until_open);
extern void CloverReportClosed(const CloverExportRef *ref, const char *message,
							   TimestampTz opening, double until_open,
							   double waited,
							   bool calendar_open) pg_attribute_noreturn();
extern void CloverReportBusy(const CloverExportRef *ref, const char *message,
							 int answers, double secs) pg_attribute_noreturn();
extern void CloverReportNoSlot(const CloverExportRef *ref, int ahead,
							   bool host_full, double secs) pg_attribute_noreturn();
extern void CloverReportTimedOut(const CloverExportRef *ref,
								 const char *status, int percent,
								 int closed_polls) pg_attribute_noreturn();
extern void CloverReportBadStatus(const CloverExportRef *ref,
								  const char *status, bool retrying);
extern void CloverReportFileGone(const CloverExportRef *ref,
								 const CloverHttpResult *res,
								 const char *url, int file_no, int nfiles,
								 bool retrying, bool any_returned);
extern void CloverReportListFailure(const CloverExportRef *ref,
									const CloverHttpResult *res, int page_no,
									int attempts) pg_attribute_noreturn();
extern void CloverReportBadPage(const CloverExportRef *ref, int page_no,
								const char *problem) pg_attribute_noreturn();
extern void CloverReportStuckList(const CloverExportRef *ref, int page_no,
								  const char *cursor,
								  int nobjects) pg_attribute_noreturn();
extern void CloverReportDownloadFailed(const CloverExportRef *ref,
									   const CloverHttpResult *res,
									   const char *url, int file_no,
									   int nfiles,
									   int attempts) pg_attribute_noreturn();

/* ----------------------------------------------------------------
 *		statement_exports.c
 * ----------------------------------------------------------------
 */

/* What one statement has exported (opaque) */
typedef struct CloverStatementExports CloverStatementExports;

/* A DONE export the statement may serve again */
typedef struct CloverStatementExport
{
	int64		start_ms;		/* the window Clover exported */
	int64		end_ms;
	char	   *export_id;
	int			nurls;
	char	  **urls;
	int64		available_until;	/* epoch ms */
} CloverStatementExport;

struct EState;

extern CloverStatementExports *CloverStatementExportsFor(struct EState *estate);
extern const CloverStatementExport *CloverStatementFindExport(CloverStatementExports *st,
															  const CloverFdwOptions *opts,
															  const char *token,
															  const CloverWindow *window);
extern void CloverStatementRememberExport(CloverStatementExports *st,
										  const CloverFdwOptions *opts,
										  const char *token,
										  const CloverWindow *window,
										  const char *export_id, char **urls,
										  int nurls, int64 available_until);
extern void CloverStatementForgetExport(CloverStatementExports *st,
										const char *export_id);
extern void CloverStatementCountExport(CloverStatementExports *st,
									   const CloverFdwOptions *opts,
									   const CloverWindow *window);
extern void CloverStatementUncountExport(CloverStatementExports *st,
										 const CloverFdwOptions *opts);

/* ----------------------------------------------------------------
 *		cluster_state.c, export_registry.c, export_slots.c: what all
 *		sessions of the cluster share
 * ----------------------------------------------------------------
 */

/* Names an export of the registry (it may have gone since) */
typedef struct CloverSharedRef
{
	int			index;
	uint32		generation;
} CloverSharedRef;

/* What the registry knows of an export */
typedef struct CloverSharedExport
{
	bool		in_flight;		/* at Clover, holding a slot */
	bool		orphaned;		/* nobody polls it */
	bool		mine;			/* this backend polls it */
	bool		done;
	bool		failed;			/* for good: the retry failed too */
	bool		retried;
	int			percent;		/* -1 unknown */
	int64		start_ms;		/* its window */
	int64		end_ms;
	char		export_id[32];	/* "" while being created */
} CloverSharedExport;

typedef enum CloverSlotResult
{
	CLOVER_SLOT_WAIT,			/* in line */
	CLOVER_SLOT_TAKEN,			/* create the export now */
	CLOVER_SLOT_COVERED			/* another export covers the window */
} CloverSlotResult;

extern void CloverClusterInit(void);
extern uint32 CloverClusterNewRun(void);
extern void CloverClusterReleaseRun(uint32 run);
extern void CloverClusterReportSaveFailure(void);

extern uint64 CloverMerchantKey(const char *api_base, const char *merchant_id);
extern CloverWindow *CloverPlanWindows(const CloverFdwOptions *opts,
									   const CloverRange *range, bool by_days,
									   TimestampTz now, int *nwindows);
extern bool CloverRegistryFind(const CloverFdwOptions *opts,
							   const CloverWindow *window, TimestampTz now,
							   CloverSharedRef *ref);
extern bool CloverRegistryRead(CloverSharedRef ref, CloverSharedExport *out);
extern void CloverRegistryUse(CloverSharedRef ref, uint32 run);
extern void CloverRegistryUnuse(CloverSharedRef ref, uint32 run);
extern bool CloverRegistryAdopt(CloverSharedRef ref, uint32 run);
extern void CloverRegistryReport(CloverSharedRef ref, uint32 run,
								 const char *export_id, const char *status,
								 int percent, int64 available_until,
								 bool retrying);
extern void CloverRegistryDrop(CloverSharedRef ref);

/*
 * Whose limits an API request counts against: its token's, and its app's
 * (all tokens of its API host) with the wrapper's numbers
 */
typedef struct CloverApiKey
{
	uint64		token;			/* API host and token, hashed */
	uint64		host;			/* API host, hashed */
	int			app_requests_per_second;	/* this cluster's share */
	int			app_max_concurrent_requests;
} CloverApiKey;

extern CloverApiKey CloverTokenKey(const CloverFdwOptions *opts,
								   const char *token);
extern CloverSlotResult CloverSlotTake(const CloverFdwOptions *opts,
									   uint32 run, const CloverWindow *window,
									   bool to_now, bool may_cover,
									   TimestampTz stmt_start,
									   CloverSharedRef *ref, int *ahead,
									   bool *host_full);
extern void CloverSlotLeaveLine(const CloverFdwOptions *opts, uint32 run);
extern bool CloverApiTake(CloverApiKey key, uint32 run, double now);
extern void CloverApiDone(CloverApiKey key, uint32 run);
extern void CloverApiPause(CloverApiKey key, double until);
extern double CloverApiReadyAt(CloverApiKey key, double now);

/* ----------------------------------------------------------------
 *		exports.c
 * ----------------------------------------------------------------
 */

/* Everything a run needs to run a scan's exports */
typedef struct CloverClientConfig
{
	const CloverFdwOptions *opts;
	const char *access_token;
	const int64 *rows_returned; /* the scan's count, for progress NOTICEs */
	const CloverWindow *windows;
	int			nwindows;
	bool		wants_all;		/* the query wants every row: the next
								 * windows export from the start */
	bool		whole_windows;	/* the consumer reads each window whole
								 * before it returns a row (sorted scans):
								 * only CloverRunAllowPrefetch, or the end
								 * of a window, lets the run prefetch */
	CloverStatementExports *statement;	/* exports served again, limit */
} CloverClientConfig;

/*
 * What a scan asked of Clover and where its time went, for EXPLAIN ANALYZE.
 * The struct and CloverScanStatsAdd are built from this one list, so a new
 * figure is added here, where it is counted, and (if EXPLAIN shows it) in
 * explain_scan_stats.
 */
#define CLOVER_SCAN_STATS(X) \
	X(int64, exports_created) \
	X(int64, exports_reused)	/* served by an export already DONE */ \
	X(int64, exports_shared)	/* by another scan's export, still running */ \
	X(int64, slot_waits)		/* windows that waited in line for a slot */ \
	X(double, slot_wait_secs) \
	X(int64, export_recreated) \
	X(int64, polls) \
	X(int64, busy_waits) \
	X(double, busy_wait_secs) \
	X(int64, closed_waits) \
	X(double, closed_wait_secs) \
	X(int64, rate_limited) \
	X(double, rate_limit_wait_secs) \
	X(int64, retries) \
	X(int64, files_downloaded) \
	X(int64, bytes_downloaded) \
	X(int64, file_redownloads) \
	X(double, clover_wait_secs) /* waiting with no file to convert */ \
	X(double, download_secs)	/* sum of file transfer times */ \
	X(int64, rows_returned) \
	X(int64, rows_replayed)		/* from the rescan cache */ \
	X(int64, rows_outside_window)	/* Clover's, outside their window */ \
	X(double, convert_secs) \
	X(int64, list_requests)		/* /v1 list pages asked for */ \
	X(int64, pages_fetched)		/* /v1 list pages received */ \
	X(int64, rows_repeated)		/* /v1 objects seen on an earlier page */ \
	X(int64, windows_sorted)	/* by a sorted scan */ \
	X(int64, windows_sorted_on_disk)	/* of those, spilled past work_mem */

typedef struct CloverScanStats
{
#define CLOVER_SCAN_STATS_FIELD(type, name) type name;
	CLOVER_SCAN_STATS(CLOVER_SCAN_STATS_FIELD)
#undef CLOVER_SCAN_STATS_FIELD
} CloverScanStats;

/* A downloaded file handed to the caller, valid until the next call */
typedef struct CloverFile
{
	const char *data;
	size_t		len;
	int			window_no;		/* 0-based */
	int			file_no;		/* 0-based within its export */
	int			nfiles;
	const char *export_id;
	int			attempt;		/* 1 = first download */
	/* a page of a /v1 list (ecommerce_pages.c), else NULL */
	const char *list_path;		/* /v1/charges; file_no is the page's */
	const bool *repeated;		/* per element: returned before, skip it */
} CloverFile;

typedef struct CloverExportRun CloverExportRun;

/* What asking a run for its next file (or page) gave */
typedef enum CloverFetch
{
	CLOVER_FETCH_READY,			/* here it is */
	CLOVER_FETCH_PENDING,		/* not yet, and the caller would not wait */
	CLOVER_FETCH_DONE			/* there is no more */
} CloverFetch;

extern CloverExportRun *CloverRunCreate(MemoryContext parent,
										const CloverClientConfig *config);
extern CloverFetch CloverRunNextFile(CloverExportRun *run, CloverFile *file,
									 bool wait);
extern int	CloverRunWaitFd(CloverExportRun *run, long max_wait_ms);
extern void CloverRunRedownload(CloverExportRun *run);
extern void CloverRunPump(CloverExportRun *run);
extern void CloverRunAllowPrefetch(CloverExportRun *run);
extern const CloverScanStats *CloverRunGetStats(CloverExportRun *run);
extern void CloverRunDestroy(CloverExportRun *run);
extern void CloverScanStatsAdd(CloverScanStats *total,
							   const CloverScanStats *s);

/* ----------------------------------------------------------------
 *		ecommerce_pages.c
 * ----------------------------------------------------------------
 */

/* Everything a run of list pages needs */
typedef struct CloverPagesConfig
{
	const CloverFdwOptions *opts;	/* ecommerce_object is set */
	const char *access_token;
	const CloverRange *range;	/* not empty */
	const int64 *rows_returned; /* the scan's count, for progress NOTICEs */
	bool		wants_all;		/* the query wants every row: fetch ahead
								 * from the start */
} CloverPagesConfig;

typedef struct CloverPageRun CloverPageRun;

extern char *CloverPagesEndpoint(const CloverFdwOptions *opts,
								 const CloverRange *range);
extern CloverPageRun *CloverPagesCreate(MemoryContext parent,
										const CloverPagesConfig *config);
extern CloverFetch CloverPagesNext(CloverPageRun *run, CloverFile *file,
								   bool wait);
extern int	CloverPagesWaitFd(CloverPageRun *run, long max_wait_ms);
extern void CloverPagesPump(CloverPageRun *run);
extern const CloverScanStats *CloverPagesGetStats(CloverPageRun *run);
extern void CloverPagesDestroy(CloverPageRun *run);

/* ----------------------------------------------------------------
 *		sorted_scan.c
 * ----------------------------------------------------------------
 */

/* The local sort of a sorted scan's windows, one window at a time */
typedef struct CloverWindowSort CloverWindowSort;

extern List *CloverSortedPathkeys(PlannerInfo *root, RelOptInfo *baserel,
								  const CloverTimeColumn *timecol,
								  bool descending);
extern bool CloverPathkeysDescending(List *pathkeys);
extern void CloverSortedScanCosts(double windows, double tuples,
								  Cost row_cost, Cost *startup, Cost *total);
extern void CloverReverseWindows(CloverWindow *windows, int nwindows);
extern CloverWindowSort *CloverWindowSortCreate(MemoryContext cxt,
												TupleTableSlot *slot,
												const CloverTimeColumn *timecol,
												bool descending);
extern void CloverWindowSortPut(CloverWindowSort *ws, TupleTableSlot *slot);
extern void CloverWindowSortPerform(CloverWindowSort *ws,
									CloverScanStats *stats);
extern bool CloverWindowSortNext(CloverWindowSort *ws, TupleTableSlot *slot,
								 CloverExportRun *run);
extern void CloverWindowSortReset(CloverWindowSort *ws);

/* ----------------------------------------------------------------
 *		The scan: scan_plan.c, scan_exec.c, scan_explain.c and
 *		import_schema.c, the callbacks of clover_export_fdw.c's handler,
 *		and what they share
 * ----------------------------------------------------------------
 */

/* In a plan's list of bound kinds: the bound is on the column's date */
#define PLAN_BOUND_ON_DATE			0x100

/*
 * ForeignScan's fdw_private; fdw_exprs holds the bound values, in the
 * order of FdwScanPrivateBoundKinds
 */
enum FdwScanPrivateIndex
{
	FdwScanPrivateBoundKinds,	/* IntList of CloverBoundKind */
	FdwScanPrivateRetrievedAttrs,	/* IntList of attnums to fill */
	FdwScanPrivateTimeAttno,	/* Integer: the time column, or 0 */
	FdwScanPrivateSortDir,		/* Integer: rows by the time column, 1
								 * ascending, -1 descending; 0 unsorted */
	FdwScanPrivateStartEarly,	/* Boolean: start the exports when the
								 * executor starts (not under LIMIT 0) */
	FdwScanPrivateWantsAll		/* Boolean: the query wants every row (no
								 * LIMIT, cursor or EXISTS): prefetch from
								 * the start */
};

/*
 * Execution state of a scan, in node->fdw_state
 */
typedef struct CloverFdwScanState
{
	Relation	rel;
	CloverFdwOptions *opts;
	Oid			userid;
	CloverTimeColumn timecol;
	List	   *bound_kinds;
	List	   *bound_states;	/* ExprStates of the bound values */
	List	   *bound_types;	/* their types */
	CloverRowPlan *row_plan;

	MemoryContext scan_cxt;		/* the run and the windows */
	MemoryContext file_cxt;		/* reset per file */
	MemoryContext row_cxt;		/* reset per row */

	/* set when the scan starts */
	bool		started;
	bool		by_days;		/* bounds change per rescan: whole days */
	bool		wants_all;		/* the query wants every row (the plan) */
	CloverRange range;
	CloverWindow *windows;
	int			nwindows;
	char	   *token;
	CloverExportRun *run;		/* an export table's run, or NULL */
	CloverPageRun *pages;		/* an e-commerce table's run, or NULL */

	/* the file (or page) being converted */
	CloverFile	file;
	CloverRowOrigin origin;		/* where it came from, for messages */
	CloverFileRows *rows;
	int			nrows;
	int			next_row;
	int			rows_since_pump;

	/* a sorted scan: its windows' sort (sorted_scan.c), else NULL */
	CloverWindowSort *sort;
	bool		descending;

	/*
	 * Rows kept for rescans with unchanged parameters (the inner side of a
	 * nested loop, a subplan): with EXEC_FLAG_REWIND the rows go into a
	 * tuplestore (which spills to disk past work_mem), and a rescan reads
	 * them again instead of creating new exports.
	 */
	Tuplestorestate *cache;
	TupleTableSlot *cache_slot;
	bool		replaying;		/* reading the cache, not the run */
	bool		run_finished;	/* the run has returned its last row */

	/* under an asynchronous Append (scan_async.c) */
	bool		async_nowait;	/* do not wait for Clover */
	CloverFetch last_fetch;		/* PENDING: the empty slot means "not yet" */

	/* for EXPLAIN ANALYZE: this scan's rows, and runs already destroyed */
	CloverScanStats stats;
} CloverFdwScanState;

struct ExplainState;

/* scan_plan.c */
extern void cloverGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
									Oid foreigntableid);
extern void cloverGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
								  Oid foreigntableid);
extern ForeignScan *cloverGetForeignPlan(PlannerInfo *root,
										 RelOptInfo *baserel,
										 Oid foreigntableid,
										 ForeignPath *best_path,
										 List *tlist, List *scan_clauses,
										 Plan *outer_plan);
extern void clover_time_column_of(Relation rel, AttrNumber attno,
								  CloverTimeColumn *timecol);
extern CloverFdwOptions *clover_path_options(ForeignPath *path);

/*
 * history_start_of
 *		The table's history_start, or NULL if it has none
 */
static inline const TimestampTz *
history_start_of(const CloverFdwOptions *opts)
{
	return opts->has_history_start ? &opts->history_start : NULL;
}

/* scan_exec.c */
extern void cloverBeginForeignScan(ForeignScanState *node, int eflags);
extern TupleTableSlot *cloverIterateForeignScan(ForeignScanState *node);
extern void cloverReScanForeignScan(ForeignScanState *node);
extern void cloverEndForeignScan(ForeignScanState *node);
extern CloverFetch clover_next_row(ForeignScanState *node, bool wait);
extern void clover_compute_range(ForeignScanState *node,
								 CloverFdwScanState *fsstate,
								 CloverRange *range);

/* scan_async.c */
extern bool cloverIsForeignPathAsyncCapable(ForeignPath *path);
extern void cloverForeignAsyncRequest(AsyncRequest *areq);
extern void cloverForeignAsyncConfigureWait(AsyncRequest *areq);
extern void cloverForeignAsyncNotify(AsyncRequest *areq);

/* scan_explain.c */
extern void cloverExplainForeignScan(ForeignScanState *node,
									 struct ExplainState *es);

/* import_schema.c */
extern List *cloverImportForeignSchema(ImportForeignSchemaStmt *stmt,
									   Oid serverOid);

#endif							/* CLOVER_EXPORT_FDW_H */
