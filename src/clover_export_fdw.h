/*-------------------------------------------------------------------------
 *
 * clover_export_fdw.h
 *		  The only cross-file interface of clover_export_fdw
 *
 * The wrapper is split by responsibility, and each file talks to the others
 * only through the declarations below:
 *
 *	clover_export_fdw.c  FDW callbacks, EXPLAIN, IMPORT FOREIGN SCHEMA
 *	options.c			 _PG_init, GUCs, regions, option validation and
 *						 merged option lookup
 *	time_quals.c		 which quals bound the time column (planner)
 *	time_range.c		 evaluated bounds -> half-open range of createdTime
 *	export_client.c		 every libcurl call: export jobs, polling, downloads,
 *						 retries, interruptible waits
 *	api_json.c			 every json-c call: Clover's API answers
 *	row_plan.c			 export files to tuples, the row path (row_path.h):
 *						 per scan, which paths to find and how to convert
 *	json_split.c		 per file, validate it and find each row's values
 *	row_convert.c		 per row, those values into Datums
 *	jsonb_build.c		 jsonb from validated bytes, as jsonb_in builds it
 *	json_lex.c			 the JSON lexing the files above share (json_lex.h)
 *
 * and the parts that need neither a backend nor curl, in clover_core.h
 * (windows.c, service_hours.c).
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
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "nodes/pathnodes.h"
#include "utils/palloc.h"
#include "utils/relcache.h"

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
	bool		has_history_start;
	TimestampTz history_start;	/* an absolute instant */

	/* Clover's service rules */
	CloverServiceHours hours;
	int			wait_for_service_ms;
	int			busy_timeout_ms;
	int			export_timeout_ms;	/* PENDING/IN_PROGRESS at most this */
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
	Expr	   *value;			/* no Vars of the scanned relation */
	RestrictInfo *rinfo;		/* the clause it came from */
} CloverTimeBound;

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

extern List *CloverExtractTimeBounds(RelOptInfo *baserel,
									 const CloverTimeColumn *timecol,
									 List *clauses);
extern bool CloverIsTimeBoundClause(RelOptInfo *baserel,
									const CloverTimeColumn *timecol,
									RestrictInfo *rinfo,
									CloverTimeBound *bound);
extern void CloverRangeInit(CloverRange *range);
extern void CloverRangeApplyBound(CloverRange *range, CloverBoundKind kind,
								  Datum value, bool isnull, Oid valuetype,
								  const CloverTimeColumn *timecol);
extern void CloverRangeFinish(CloverRange *range,
							  const TimestampTz *history_start,
							  TimestampTz now);
extern CloverWindow *CloverSplitRange(const CloverRange *range, int *nwindows);
extern char *CloverFormatUtc(TimestampTz ts);
extern const char *CloverBoundKindOperator(CloverBoundKind kind);

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
	int			nurls;
	char	  **urls;
} CloverExportInfo;

extern bool CloverParseExportObject(const char *body, size_t len,
									CloverExportInfo *info, char **errmsg);
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
