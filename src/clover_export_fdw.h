/*-------------------------------------------------------------------------
 *
 * clover_export_fdw.h
 *		  The only cross-file interface of clover_export_fdw
 *
 * The wrapper is split by responsibility, and each file talks to the others
 * only through the declarations below:
 *
 *	clover_export_fdw.c  FDW callbacks, EXPLAIN, IMPORT FOREIGN SCHEMA
 *	options.c			 option validation and merged option lookup
 *	windows.c			 quals on the time column -> half-open UTC range ->
 *						 export windows of at most 30 days
 *	service_hours.c		 Clover's service hours calendar
 *	export_client.c		 every libcurl call: export jobs, polling, downloads,
 *						 retries, interruptible waits
 *	json_rows.c			 every JSON byte: Clover's API answers (json-c) and
 *						 export files to tuples
 *
 * Times inside the wrapper are PostgreSQL TimestampTz values (microseconds
 * since 2000-01-01 UTC); Clover speaks epoch milliseconds, converted only at
 * the edges (windows.c and json_rows.c).
 *
 * IDENTIFICATION
 *		  src/clover_export_fdw.h
 *-------------------------------------------------------------------------
 */
#ifndef CLOVER_EXPORT_FDW_H
#define CLOVER_EXPORT_FDW_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "nodes/pathnodes.h"
#include "utils/palloc.h"
#include "utils/relcache.h"

/* Clover's documented limits */
#define CLOVER_MAX_WINDOW_MS		((int64) 30 * 86400000)
#define CLOVER_MAX_FILE_OBJECTS		1000

/* the JSON key Clover's export windows filter on */
#define CLOVER_TIME_KEY				"createdTime"

/* json_path value meaning "the whole object" */
#define CLOVER_WHOLE_OBJECT_PATH	"$"

typedef enum CloverExportType
{
	CLOVER_EXPORT_ORDERS,
	CLOVER_EXPORT_PAYMENTS
} CloverExportType;

/* ----------------------------------------------------------------
 *		service_hours.c
 * ----------------------------------------------------------------
 */

#define CLOVER_MAX_HOUR_RANGES		64

/* One open period on one weekday, in minutes after midnight UTC */
typedef struct CloverHourRange
{
	int			weekday;		/* 0 = Sunday .. 6 = Saturday */
	int			start_min;		/* inclusive */
	int			end_min;		/* exclusive; 1440 = midnight */
} CloverHourRange;

/* A week of service hours; flat so it can be copied freely */
typedef struct CloverServiceHours
{
	char		spec[256];		/* the text it was parsed from */
	bool		always;
	int			nranges;
	CloverHourRange ranges[CLOVER_MAX_HOUR_RANGES];
} CloverServiceHours;

extern bool CloverParseServiceHours(const char *spec, CloverServiceHours *out,
									char **errmsg);
extern const char *CloverRegionDefaultHours(const char *region);
extern bool CloverServiceOpenAt(const CloverServiceHours *hours, TimestampTz t);
extern TimestampTz CloverNextOpening(const CloverServiceHours *hours,
									 TimestampTz t);
extern const char *CloverFormatServiceHours(const CloverServiceHours *hours);

/* ----------------------------------------------------------------
 *		options.c
 * ----------------------------------------------------------------
 */

/* Every option of every object, merged: table > server > defaults */
typedef struct CloverFdwOptions
{
	/* identification, for messages and for sharing export slots */
	Oid			serverid;
	char	   *server_name;
	char	   *table_name;

	/* where and what */
	char	   *region;			/* us, eu, la, sandbox */
	char	   *api_base;		/* base URL without trailing slash */
	bool		api_base_overridden;	/* base_url was given */
	char	   *merchant_id;
	CloverExportType export_type;
	char	   *history_start;	/* timestamptz text, or NULL */

	/* Clover's service rules */
	CloverServiceHours hours;
	int			wait_for_service_ms;
	int			busy_timeout_ms;
	int			max_concurrent_exports;

	/* transfers */
	int			max_parallel_downloads;
	int			connect_timeout_ms;
	int			request_timeout_ms;
	int			max_retries;
	char	   *ca_file;

	/* planning */
	double		rows_per_day;
} CloverFdwOptions;

extern CloverFdwOptions *CloverGetOptions(Oid foreigntableid);
extern char *CloverGetAccessToken(Oid serverid, Oid userid);
extern char *CloverColumnJsonPath(Oid relid, AttrNumber attnum,
								  const char *attname);
extern List *CloverColumnJsonKeys(Oid relid, AttrNumber attnum,
								  const char *attname);
extern char *CloverDefaultJsonPath(const char *colname);
extern const char *CloverExportTypeName(CloverExportType type);

/* GUCs */
extern bool clover_progress;

/* ----------------------------------------------------------------
 *		windows.c
 * ----------------------------------------------------------------
 */

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
	Expr	   *value;			/* no Vars of the scanned relation */
	RestrictInfo *rinfo;		/* the clause it came from */
} CloverTimeBound;

/* One export: [lo, hi) exactly, and the times sent to Clover */
typedef struct CloverWindow
{
	TimestampTz lo;				/* rows with lo <= createdTime < hi */
	TimestampTz hi;
	int64		start_ms;		/* startTime sent to Clover */
	int64		end_ms;			/* endTime sent to Clover */
} CloverWindow;

/* A resolved half-open range, or why there is none */
typedef struct CloverRange
{
	bool		empty;			/* provably no rows: no export at all */
	bool		has_lo;			/* false: no lower bound anywhere */
	bool		lo_from_history;	/* lower bound came from history_start */
	bool		hi_from_now;	/* upper bound is the statement start */
	TimestampTz lo;
	TimestampTz hi;
} CloverRange;

extern List *CloverExtractTimeBounds(RelOptInfo *baserel, AttrNumber timeattno,
									 Oid timetype, List *clauses);
extern bool CloverIsTimeBoundClause(RelOptInfo *baserel, AttrNumber timeattno,
									Oid timetype, RestrictInfo *rinfo,
									CloverTimeBound *bound);
extern void CloverRangeInit(CloverRange *range);
extern void CloverRangeApplyBound(CloverRange *range, CloverBoundKind kind,
								  Datum value, bool isnull, Oid valuetype,
								  Oid timetype);
extern void CloverRangeFinish(CloverRange *range, const char *history_start,
							  TimestampTz now);
extern CloverWindow *CloverSplitRange(const CloverRange *range, int *nwindows);
extern int64 CloverTimestampToUnixMs(TimestampTz ts);
extern TimestampTz CloverUnixMsToTimestamp(int64 ms);
extern char *CloverFormatUtc(TimestampTz ts);
extern const char *CloverBoundKindOperator(CloverBoundKind kind);

/* ----------------------------------------------------------------
 *		json_rows.c
 * ----------------------------------------------------------------
 */

/* What Clover said about an export (the export object) */
typedef struct CloverExportInfo
{
	char	   *id;
	char	   *status;
	int			percent;		/* -1 if absent */
	int64		available_until;	/* epoch ms, 0 if absent */
	int			nurls;
	char	  **urls;
} CloverExportInfo;

extern bool CloverParseExportObject(const char *body, size_t len,
									CloverExportInfo *info, char **errmsg);
extern char *CloverBuildExportRequest(CloverExportType type, int64 start_ms,
									  int64 end_ms);
extern char *CloverErrorBodyMessage(const char *body, size_t len);

/* How to fill the tuple's columns from an object: built once per scan */
typedef struct CloverRowPlan CloverRowPlan;

/* One downloaded file, split into validated elements */
typedef struct CloverFileRows CloverFileRows;

/* Where a row came from, for error messages */
typedef struct CloverRowOrigin
{
	const char *export_id;
	int			file_no;		/* 1-based */
	int			nfiles;
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
extern void CloverFillRow(const CloverRowPlan *plan, const CloverFileRows *rows,
						  int idx, const CloverRowOrigin *origin, int natts,
						  Datum *values, bool *nulls);

/* ----------------------------------------------------------------
 *		export_client.c
 * ----------------------------------------------------------------
 */

/* Everything the client needs to run a scan's exports */
typedef struct CloverClientConfig
{
	const CloverFdwOptions *opts;
	const char *access_token;
	const CloverWindow *windows;
	int			nwindows;
} CloverClientConfig;

/* What happened at Clover, for EXPLAIN ANALYZE and progress */
typedef struct CloverRunStats
{
	int64		exports_created;
	int64		export_recreated;
	int64		polls;
	int64		busy_waits;
	double		busy_wait_secs;
	int64		closed_waits;
	double		closed_wait_secs;
	int64		rate_limited;
	double		rate_limit_wait_secs;
	int64		retries;
	int64		files_downloaded;
	int64		bytes_downloaded;
	int64		file_redownloads;
	double		clover_wait_secs;	/* waiting with no file to convert */
	double		download_secs;	/* sum of file transfer times */
} CloverRunStats;

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
} CloverFile;

typedef struct CloverExportRun CloverExportRun;

extern void CloverClientInit(void);
extern CloverExportRun *CloverRunCreate(MemoryContext parent,
										const CloverClientConfig *config);
extern bool CloverRunNextFile(CloverExportRun *run, CloverFile *file);
extern void CloverRunRedownload(CloverExportRun *run);
extern void CloverRunPump(CloverExportRun *run);
extern const CloverRunStats *CloverRunGetStats(CloverExportRun *run);
extern void CloverRunDestroy(CloverExportRun *run);
extern void CloverOpenHandles(int *handles, int *buffers, int64 *bytes);

#endif							/* CLOVER_EXPORT_FDW_H */
