/*-------------------------------------------------------------------------
 *
 * options.c
 *		  Module load, GUCs, Clover's regions, option validation and merged
 *		  option lookup for clover_export_fdw
 *
 * Each option lives on exactly the objects listed in clover_options[]:
 * the access token only in a user mapping (so pg_user_mappings hides it from
 * other users), connection settings on the server, what to export on the
 * table, json_path on columns.  The validator sees one object at a time, so
 * it checks names, places, privileges, value syntax and the options an
 * object must have (a table's export_type); rules that span objects (a
 * merchant is needed somewhere) are checked when a scan is planned, after
 * CloverGetOptions() has merged table over server over defaults.
 *
 * Options that decide where the token is sent (base_url, ca_file) may only
 * be set by a superuser: whoever sets base_url receives every user's token.
 *
 * A value means the same to every session: the validator and the scans
 * parse it with one function each, times and intervals under fixed
 * DateStyle, IntervalStyle and TimeZone settings (a time without a zone is
 * UTC), integers in decimal only.
 *
 * IDENTIFICATION
 *		  src/options.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "clover_export_fdw.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "common/int.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(clover_export_fdw_validator);

void		_PG_init(void);

/* option names, used in more than one place */
#define OPT_REGION					"region"
#define OPT_BASE_URL				"base_url"
#define OPT_MERCHANT_ID				"merchant_id"
#define OPT_HISTORY_START			"history_start"
#define OPT_SERVICE_HOURS			"service_hours"
#define OPT_WAIT_FOR_SERVICE		"wait_for_service"
#define OPT_BUSY_TIMEOUT			"busy_timeout"
#define OPT_EXPORT_TIMEOUT			"export_timeout"
#define OPT_MAX_CONCURRENT_EXPORTS	"max_concurrent_exports"
#define OPT_MAX_EXPORTS_PER_STATEMENT	"max_exports_per_statement"
#define OPT_REUSE_EXPORTS			"reuse_exports"
#define OPT_MAX_PARALLEL_DOWNLOADS	"max_parallel_downloads"
#define OPT_CONNECT_TIMEOUT			"connect_timeout"
#define OPT_REQUEST_TIMEOUT			"request_timeout"
#define OPT_MAX_RETRIES				"max_retries"
#define OPT_CA_FILE					"ca_file"
#define OPT_EXPORT_TYPE				"export_type"
#define OPT_ROWS_PER_DAY			"rows_per_day"
#define OPT_ROWS_FROM				"rows_from"
#define OPT_JSON_PATH				"json_path"
#define OPT_ACCESS_TOKEN			"access_token"
#define OPT_ASYNC_CAPABLE			"async_capable"
#define OPT_ECOMMERCE_OBJECT		"ecommerce_object"
#define OPT_ECOMMERCE_BASE_URL		"ecommerce_base_url"
#define OPT_ECOMMERCE_ACCESS_TOKEN	"ecommerce_access_token"
#define OPT_APP_REQUESTS_PER_SECOND	"app_requests_per_second"
#define OPT_APP_MAX_CONCURRENT_REQUESTS	"app_max_concurrent_requests"
#define OPT_MAX_EXPORTS_PER_HOST	"max_exports_per_host"
#define OPT_NODE_SHARE				"node_share"

/* json_path's first key for the exported object of a rows_from row */
#define PARENT_KEY					"$parent"

/* defaults */
#define DEFAULT_REGION				"us"
#define DEFAULT_BUSY_TIMEOUT_MS		(5 * 60 * 1000)
#define DEFAULT_EXPORT_TIMEOUT_MS	(30 * 60 * 1000)
#define DEFAULT_CONNECT_TIMEOUT_MS	(10 * 1000)
#define DEFAULT_REQUEST_TIMEOUT_MS	(60 * 1000)
#define DEFAULT_MAX_RETRIES			5
#define DEFAULT_MAX_CONCURRENT		1
#define DEFAULT_MAX_EXPORTS_PER_STMT	50
#define DEFAULT_REUSE_EXPORTS_MS	(10 * 60 * 1000)
#define DEFAULT_PARALLEL_DOWNLOADS	4
#define DEFAULT_ROWS_PER_DAY		200.0
#define DEFAULT_APP_REQUESTS_PER_SEC	50	/* Clover's per app */
#define DEFAULT_APP_CONCURRENT		10	/* Clover's per app */
#define DEFAULT_EXPORTS_PER_HOST	10

/* limits */
#define MAX_CONCURRENCY				16
#define MAX_RETRIES					100
#define MAX_EXPORTS_PER_STMT		1000000
#define MAX_APP_LIMIT				100000

/* a Clover id: this many upper-case letters and digits */
#define CLOVER_ID_LEN				13

typedef void (*CloverOptionCheck) (const char *name, const char *value);

/* One valid option: where it may appear and how its value is checked */
typedef struct CloverOptionDef
{
	const char *name;
	Oid			catalog;		/* where it belongs */
	Oid			also_catalog;	/* a second place (table overrides server) */
	bool		superuser_only;
	CloverOptionCheck check;
	bool		also_wrapper;	/* also on the wrapper: a default for all
								 * servers of the database */
} CloverOptionDef;

static void check_region(const char *name, const char *value);
static void check_base_url(const char *name, const char *value);
static void check_merchant_id(const char *name, const char *value);
static void check_history_start(const char *name, const char *value);
static void check_service_hours(const char *name, const char *value);
static void check_interval(const char *name, const char *value);
static void check_positive_interval(const char *name, const char *value);
static void check_concurrency(const char *name, const char *value);
static void check_retries(const char *name, const char *value);
static void check_exports_per_statement(const char *name, const char *value);
static void check_ca_file(const char *name, const char *value);
static void check_export_type(const char *name, const char *value);
static void check_rows_per_day(const char *name, const char *value);
static void check_rows_from(const char *name, const char *value);
static void check_json_path(const char *name, const char *value);
static void check_access_token(const char *name, const char *value);
static void check_ecommerce_object(const char *name, const char *value);
static void check_app_limit(const char *name, const char *value);
static void check_node_share(const char *name, const char *value);
static void check_bool(const char *name, const char *value);

static const CloverOptionDef clover_options[] = {
	{OPT_REGION, ForeignServerRelationId, InvalidOid, false, check_region, false},
	{OPT_BASE_URL, ForeignServerRelationId, InvalidOid, true, check_base_url, false},
	{OPT_MERCHANT_ID, ForeignServerRelationId, ForeignTableRelationId, false,
	check_merchant_id, false},
	{OPT_HISTORY_START, ForeignServerRelationId, ForeignTableRelationId, false,
	check_history_start, false},
	{OPT_SERVICE_HOURS, ForeignServerRelationId, InvalidOid, false,
	check_service_hours, false},
	{OPT_WAIT_FOR_SERVICE, ForeignServerRelationId, InvalidOid, false,
	check_interval, false},
	{OPT_BUSY_TIMEOUT, ForeignServerRelationId, InvalidOid, false,
	check_interval, false},
	{OPT_EXPORT_TIMEOUT, ForeignServerRelationId, InvalidOid, false,
	check_positive_interval, false},
	{OPT_MAX_CONCURRENT_EXPORTS, ForeignServerRelationId, InvalidOid, false,
	check_concurrency, false},
	{OPT_MAX_EXPORTS_PER_STATEMENT, ForeignServerRelationId, InvalidOid, false,
	check_exports_per_statement, false},
	{OPT_REUSE_EXPORTS, ForeignServerRelationId, ForeignTableRelationId, false,
	check_interval, true},
	{OPT_MAX_PARALLEL_DOWNLOADS, ForeignServerRelationId, InvalidOid, false,
	check_concurrency, false},
	{OPT_CONNECT_TIMEOUT, ForeignServerRelationId, InvalidOid, false,
	check_positive_interval, false},
	{OPT_REQUEST_TIMEOUT, ForeignServerRelationId, InvalidOid, false,
	check_positive_interval, false},
	{OPT_MAX_RETRIES, ForeignServerRelationId, InvalidOid, false,
	check_retries, false},
	{OPT_CA_FILE, ForeignServerRelationId, InvalidOid, true, check_ca_file, false},
	{OPT_EXPORT_TYPE, ForeignTableRelationId, InvalidOid, false,
	check_export_type, false},
	{OPT_ROWS_PER_DAY, ForeignTableRelationId, InvalidOid, false,
	check_rows_per_day, false},
	{OPT_ROWS_FROM, ForeignTableRelationId, InvalidOid, false,
	check_rows_from, false},
	{OPT_JSON_PATH, AttributeRelationId, InvalidOid, false, check_json_path, false},
	{OPT_ACCESS_TOKEN, UserMappingRelationId, InvalidOid, false,
	check_access_token, false},
	{OPT_ASYNC_CAPABLE, ForeignServerRelationId, ForeignTableRelationId, false,
	check_bool, false},
	{OPT_ECOMMERCE_OBJECT, ForeignTableRelationId, InvalidOid, false,
	check_ecommerce_object, false},
	{OPT_ECOMMERCE_BASE_URL, ForeignServerRelationId, InvalidOid, true,
	check_base_url, false},
	{OPT_ECOMMERCE_ACCESS_TOKEN, UserMappingRelationId, InvalidOid, false,
	check_access_token, false},
	{OPT_APP_REQUESTS_PER_SECOND, ForeignDataWrapperRelationId, InvalidOid,
	false, check_app_limit, false},
	{OPT_APP_MAX_CONCURRENT_REQUESTS, ForeignDataWrapperRelationId, InvalidOid,
	false, check_app_limit, false},
	{OPT_MAX_EXPORTS_PER_HOST, ForeignDataWrapperRelationId, InvalidOid,
	false, check_app_limit, false},
	{OPT_NODE_SHARE, ForeignDataWrapperRelationId, InvalidOid, false,
	check_node_share, false},
	{NULL, InvalidOid, InvalidOid, false, NULL, false}
};

/*
 * Clover's regions (clover-api.md, sections 1 and 4): the API host, the
 * export service's hours and the e-commerce host of the /v1 lists.  Latin
 * America's hours are not documented; we assume the US hours, and the
 * README says so.  Only the sandbox's e-commerce host is documented; for
 * the others ecommerce_base_url must be set.
 */
typedef struct CloverRegion
{
	const char *name;
	const char *api_host;
	const char *service_hours;
	const char *ecommerce_host; /* NULL: not documented */
} CloverRegion;

static const CloverRegion clover_regions[] = {
	{"us", "https://api.clover.com", "MON-SUN 10:00-15:00", NULL},
	{"eu", "https://api.eu.clover.com",
	"MON-FRI 01:00-05:00, SAT 02:00-05:00, SUN 02:00-06:00", NULL},
	{"la", "https://api.la.clover.com", "MON-SUN 10:00-15:00", NULL},
	{"sandbox", "https://apisandbox.dev.clover.com", "always",
	"https://scl-sandbox.dev.clover.com"},
	{NULL, NULL, NULL, NULL}
};

/* GUC variables */
bool		clover_progress = false;

/*
 * _PG_init
 *		Module load: GUCs and libcurl
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("clover_export_fdw.progress",
							 "Report the progress of Clover exports as NOTICEs.",
							 "Each export window says when it is done, a waiting scan says every few seconds where it is, and a last NOTICE sums the scan up; each gives the rows returned so far.",
							 &clover_progress,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("clover_export_fdw");
	CloverHttpInit();
	CloverClusterInit();
}

static const CloverOptionDef *find_option(const char *name);
static bool valid_on(const CloverOptionDef *opt, Oid catalog);
static void require_one_source(List *options_list);
static const char *catalog_description(Oid catalog);
static char *valid_option_list(Oid catalog);
static Datum parse_session_independent(PGFunction input, const char *value);
static int	interval_to_ms(const char *name, const char *value);
static int	int_option(const char *name, const char *value, int min, int max);
static TimestampTz history_start_value(const char *name, const char *value);
static double rows_per_day_value(const char *name, const char *value);
static const CloverRegion *find_region(const char *name);
static bool path_is_parent(const char *path);
static void invalid_value(const char *name, const char *value,
						  const char *hint) pg_attribute_noreturn();

/*
 * option_error_callback
 *		Name the option whose value PostgreSQL's input functions reject
 */
static void
option_error_callback(void *arg)
{
	const char *name = (const char *) arg;

	if (name)
		errcontext("validating option \"%s\"", name);
}

/*
 * clover_export_fdw_validator
 *		Check the options of one CREATE/ALTER of a wrapper object
 */
Datum
clover_export_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options_list = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ErrorContextCallback errcallback;
	ListCell   *cell;

	errcallback.callback = option_error_callback;
	errcallback.arg = NULL;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	foreach(cell, options_list)
	{
		DefElem    *def = (DefElem *) lfirst(cell);
		const CloverOptionDef *opt = find_option(def->defname);
		char	   *value;

		if (opt == NULL)
		{
			char	   *valid = valid_option_list(catalog);

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 valid[0] != '\0' ?
					 errhint("Valid options for %s are: %s.",
							 catalog_description(catalog), valid) :
					 errhint("clover_export_fdw accepts no options on %s.",
							 catalog_description(catalog))));
		}

		if (!valid_on(opt, catalog))
		{
			if (opt->also_wrapper)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"%s\" is not valid for %s",
								def->defname, catalog_description(catalog)),
						 errhint("Set \"%s\" on %s, on %s or on %s.",
								 def->defname,
								 catalog_description(ForeignDataWrapperRelationId),
								 catalog_description(opt->catalog),
								 catalog_description(opt->also_catalog))));
			if (OidIsValid(opt->also_catalog))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"%s\" is not valid for %s",
								def->defname, catalog_description(catalog)),
						 errhint("Set \"%s\" on %s or on %s.", def->defname,
								 catalog_description(opt->catalog),
								 catalog_description(opt->also_catalog))));
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"%s\" is not valid for %s",
							def->defname, catalog_description(catalog)),
					 errhint("Set \"%s\" on %s.", def->defname,
							 catalog_description(opt->catalog))));
		}

		if (opt->superuser_only && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("option \"%s\" can only be set by a superuser",
							def->defname),
					 errdetail("Whoever sets \"%s\" decides which hosts receive every user's Clover access token.",
							   def->defname)));

		value = defGetString(def);
		errcallback.arg = def->defname;
		opt->check(def->defname, value);
		errcallback.arg = NULL;
	}

	error_context_stack = errcallback.previous;
	if (catalog == ForeignTableRelationId)
		require_one_source(options_list);
	PG_RETURN_VOID();
}

/*
 * require_one_source
 *		A foreign table reads exactly one thing: an export type or an
 *		e-commerce list.  The validator sees the whole list the CREATE or
 *		ALTER leaves, so this also refuses OPTIONS (DROP export_type).
 */
static void
require_one_source(List *options_list)
{
	bool		has_export = false;
	bool		has_ecommerce = false;
	ListCell   *cell;

	foreach(cell, options_list)
	{
		const char *name = ((DefElem *) lfirst(cell))->defname;

		has_export |= (strcmp(name, OPT_EXPORT_TYPE) == 0);
		has_ecommerce |= (strcmp(name, OPT_ECOMMERCE_OBJECT) == 0);
	}
	if (has_export && has_ecommerce)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("options \"%s\" and \"%s\" cannot both be set",
						OPT_EXPORT_TYPE, OPT_ECOMMERCE_OBJECT),
				 errdetail("A foreign table reads either an export type of the export API or a list of the e-commerce API."),
				 errhint("Drop one of them, or create a second foreign table.")));
	if (!has_export && !has_ecommerce)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a foreign table of clover_export_fdw needs option \"%s\" or \"%s\"",
						OPT_EXPORT_TYPE, OPT_ECOMMERCE_OBJECT),
				 errhint("Give OPTIONS (export_type 'ORDERS') or 'PAYMENTS' for an export, or OPTIONS (ecommerce_object 'charges') or 'refunds' or 'orders' for an e-commerce list; it may be changed with SET but not dropped.")));
}

/*
 * valid_on
 *		May option opt be set on an object of catalog?
 */
static bool
valid_on(const CloverOptionDef *opt, Oid catalog)
{
	return opt->catalog == catalog || opt->also_catalog == catalog ||
		(opt->also_wrapper && catalog == ForeignDataWrapperRelationId);
}

/*
 * find_option
 *		The option definition of that name, or NULL
 */
static const CloverOptionDef *
find_option(const char *name)
{
	const CloverOptionDef *opt;

	for (opt = clover_options; opt->name; opt++)
	{
		if (strcmp(opt->name, name) == 0)
			return opt;
	}
	return NULL;
}

static const char *
catalog_description(Oid catalog)
{
	switch (catalog)
	{
		case ForeignDataWrapperRelationId:
			return "the foreign-data wrapper";
		case ForeignServerRelationId:
			return "a foreign server";
		case ForeignTableRelationId:
			return "a foreign table";
		case AttributeRelationId:
			return "a foreign table column";
		case UserMappingRelationId:
			return "a user mapping";
	}
	return "this object";
}

/*
 * valid_option_list
 *		Comma-separated names of the options valid on that catalog, palloc'd
 */
static char *
valid_option_list(Oid catalog)
{
	StringInfoData buf;
	const CloverOptionDef *opt;

	initStringInfo(&buf);
	for (opt = clover_options; opt->name; opt++)
	{
		if (!valid_on(opt, catalog))
			continue;
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, opt->name);
	}
	return buf.data;
}

/*
 * invalid_value
 *		Report a bad option value with a hint saying what is expected
 */
static void
invalid_value(const char *name, const char *value, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
			 errhint("%s", hint)));
}

/*
 * find_region
 *		The region of that name (any case), or NULL
 */
static const CloverRegion *
find_region(const char *name)
{
	const CloverRegion *r;

	for (r = clover_regions; r->name; r++)
	{
		if (pg_strcasecmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

static void
check_region(const char *name, const char *value)
{
	if (find_region(value) == NULL)
		invalid_value(name, value,
					  "Valid regions are: us, eu, la, sandbox.");
}

/*
 * check_base_url
 *		An http(s) URL with a host and nothing that could carry a secret
 */
static void
check_base_url(const char *name, const char *value)
{
	const char *rest;

	if (pg_strncasecmp(value, "https://", 8) == 0)
		rest = value + 8;
	else if (pg_strncasecmp(value, "http://", 7) == 0)
		rest = value + 7;
	else
		invalid_value(name, value,
					  "The base URL must start with \"https://\" (or \"http://\" for a local test server).");

	if (*rest == '\0' || *rest == '/')
		invalid_value(name, value, "The base URL must name a host.");
	if (strpbrk(value, "?#@ \t\r\n") != NULL)
		invalid_value(name, value,
					  "The base URL may not contain a query, a fragment, credentials or white space.");
}

/*
 * check_merchant_id
 *		A Clover id: exactly CLOVER_ID_LEN upper-case letters and digits
 *		(clover-api.md, section 3).  Anything else would only fail at query
 *		time with a 404, or could change the request path.
 */
static void
check_merchant_id(const char *name, const char *value)
{
	const char *hint = "A Clover merchant id has 13 upper-case letters and digits, such as \"6E72X1BW38A7T\".";
	bool		lower = false;
	const char *p;
	int			len = strlen(value);

	for (p = value; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c >= 'a' && c <= 'z')
			lower = true;
		else if (!(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"%s\": \"%s\"",
							name, value),
					 (c > ' ' && c < 127) ?
					 errdetail("\"%c\" is not a letter or a digit.", c) :
					 errdetail("It contains white space, a control character or a non-ASCII character."),
					 errhint("%s", hint)));
	}
	if (len != CLOVER_ID_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail_plural("It has %d character.",
								  "It has %d characters.", len, len),
				 errhint("%s", hint)));
	if (lower)
	{
		char	   *upper = pstrdup(value);
		char	   *u;

		for (u = upper; *u; u++)
			*u = pg_ascii_toupper((unsigned char) *u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("It contains lower-case letters."),
				 errhint("Clover writes merchant ids in upper case: \"%s\".",
						 upper)));
	}
}

/*
 * parse_session_independent
 *		Call a date/time input function on value as every session would see
 *		it: DateStyle ISO with year-month-day order, IntervalStyle postgres,
 *		TimeZone UTC
 */
static Datum
parse_session_independent(PGFunction input, const char *value)
{
	int			nestlevel = NewGUCNestLevel();
	Datum		result;

	(void) set_config_option("DateStyle", "ISO, YMD", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("TimeZone", "UTC", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	result = DirectFunctionCall3(input, CStringGetDatum(value),
								 ObjectIdGetDatum(InvalidOid),
								 Int32GetDatum(-1));
	AtEOXact_GUC(true, nestlevel);
	return result;
}

/*
 * history_start_value
 *		The instant a history_start option names
 *
 * Only ISO 8601 dates are accepted ("2023-01-01", "2023-01-01 00:00+01"):
 * "03/11/2024" reads as March or November depending on DateStyle.  A time
 * without a zone is UTC, not the session's zone.
 */
static TimestampTz
history_start_value(const char *name, const char *value)
{
	const char *hint = "Give a time as YYYY-MM-DD[ HH:MM[:SS]][+HH], such as \"2023-01-01 00:00+00\"; without a zone it is UTC.";
	TimestampTz ts;
	int			i;

	for (i = 0; i < 10; i++)
	{
		bool		dash = (i == 4 || i == 7);

		if (dash ? value[i] != '-' : !isdigit((unsigned char) value[i]))
			invalid_value(name, value, hint);
	}
	ts = DatumGetTimestampTz(parse_session_independent(timestamptz_in,
														value));
	if (TIMESTAMP_NOT_FINITE(ts))
		invalid_value(name, value, hint);
	return ts;
}

static void
check_history_start(const char *name, const char *value)
{
	(void) history_start_value(name, value);
}

static void
check_service_hours(const char *name, const char *value)
{
	CloverServiceHours hours;
	char	   *problem;

	if (!CloverParseServiceHours(value, &hours, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("%s", problem),
				 errhint("Use \"always\" or a list such as \"MON-FRI 10:00-15:00, SAT 10:00-13:00\" (UTC).")));
}

/*
 * interval_to_ms
 *		Parse an interval option ("90s", "5 min", "1 hour") into milliseconds
 *
 * A month counts as 30 days, as in PostgreSQL's interval arithmetic.
 */
static int
interval_to_ms(const char *name, const char *value)
{
	Interval   *iv;
	int64		usecs,
				day_usecs,
				month_usecs;

	iv = DatumGetIntervalP(parse_session_independent(interval_in, value));
	if (pg_mul_s64_overflow(iv->day, USECS_PER_DAY, &day_usecs) ||
		pg_mul_s64_overflow(iv->month, DAYS_PER_MONTH * USECS_PER_DAY,
							&month_usecs) ||
		pg_add_s64_overflow(iv->time, day_usecs, &usecs) ||
		pg_add_s64_overflow(usecs, month_usecs, &usecs) ||
		usecs / 1000 > INT_MAX)
		invalid_value(name, value, "The interval may not exceed 24 days.");
	if (usecs < 0)
		invalid_value(name, value, "The interval may not be negative.");
	return (int) (usecs / 1000);
}

static void
check_interval(const char *name, const char *value)
{
	(void) interval_to_ms(name, value);
}

/*
 * positive_interval_to_ms
 *		An interval option that must be at least a millisecond
 */
static int
positive_interval_to_ms(const char *name, const char *value)
{
	int			ms = interval_to_ms(name, value);

	if (ms < 1)
		invalid_value(name, value,
					  "The interval must be at least one millisecond, such as \"30s\".");
	return ms;
}

static void
check_positive_interval(const char *name, const char *value)
{
	(void) positive_interval_to_ms(name, value);
}

/*
 * int_option
 *		An integer option between min and max, written in decimal digits
 *
 * Stricter than parse_int(), which also reads "0x10", "1.5" and units.
 */
static int
int_option(const char *name, const char *value, int min, int max)
{
	int64		n = 0;
	const char *p;

	for (p = value; *p; p++)
	{
		if (!isdigit((unsigned char) *p))
			break;
		n = n * 10 + (*p - '0');
		if (n > max)
			break;
	}
	if (p == value || *p != '\0' || n < min)
		invalid_value(name, value,
					  psprintf("Give an integer between %d and %d.", min, max));
	return (int) n;
}

static void
check_concurrency(const char *name, const char *value)
{
	(void) int_option(name, value, 1, MAX_CONCURRENCY);
}

static void
check_retries(const char *name, const char *value)
{
	(void) int_option(name, value, 0, MAX_RETRIES);
}

static void
check_exports_per_statement(const char *name, const char *value)
{
	(void) int_option(name, value, 1, MAX_EXPORTS_PER_STMT);
}

static void
check_app_limit(const char *name, const char *value)
{
	(void) int_option(name, value, 1, MAX_APP_LIMIT);
}

/*
 * node_share_value
 *		A fraction in (0, 1]: this cluster's share of the app's limits
 */
static double
node_share_value(const char *name, const char *value)
{
	double		d;

	if (!parse_real(value, &d, 0, NULL) || !(d > 0 && d <= 1))
		invalid_value(name, value,
					  "Give a fraction greater than 0 and at most 1, such as 0.5 for one of two clusters that serve one app.");
	return d;
}

static void
check_node_share(const char *name, const char *value)
{
	(void) node_share_value(name, value);
}

static void
check_ca_file(const char *name, const char *value)
{
	if (!is_absolute_path(value))
		invalid_value(name, value,
					  "Give the absolute path of a PEM file of CA certificates.");
}

/*
 * bool_option
 *		A boolean option, as PostgreSQL reads booleans ('true', 'off', ...)
 */
static bool
bool_option(const char *name, const char *value)
{
	bool		result;

	if (!parse_bool(value, &result))
		invalid_value(name, value, "Give true or false.");
	return result;
}

static void
check_bool(const char *name, const char *value)
{
	(void) bool_option(name, value);
}

/*
 * check_ecommerce_object
 *		One of the e-commerce API's lists (clover-api.md, section 4)
 */
static void
check_ecommerce_object(const char *name, const char *value)
{
	if (pg_strcasecmp(value, "charges") != 0 &&
		pg_strcasecmp(value, "refunds") != 0 &&
		pg_strcasecmp(value, "orders") != 0)
		invalid_value(name, value,
					  "Valid e-commerce objects are charges, refunds and orders.");
}

static void
check_export_type(const char *name, const char *value)
{
	if (pg_strcasecmp(value, "orders") != 0 &&
		pg_strcasecmp(value, "payments") != 0)
		invalid_value(name, value, "Valid export types are ORDERS and PAYMENTS.");
}

/*
 * rows_per_day_value
 *		A positive number of rows, at most a billion
 */
static double
rows_per_day_value(const char *name, const char *value)
{
	double		d;

	if (!parse_real(value, &d, 0, NULL) || !(d > 0 && d <= 1e9))
		invalid_value(name, value, "Give a positive number, such as 500.");
	return d;
}

static void
check_rows_per_day(const char *name, const char *value)
{
	(void) rows_per_day_value(name, value);
}

/*
 * dotted_keys_valid
 *		Is the path, after an optional "$.", a dotted list of non-empty keys?
 */
static bool
dotted_keys_valid(const char *path)
{
	const char *p = path;
	bool		empty_key = true;

	if (strncmp(p, "$.", 2) == 0)
		p += 2;
	for (; *p; p++)
	{
		if (*p == '.')
		{
			if (empty_key)
				return false;
			empty_key = true;
		}
		else
			empty_key = false;
	}
	return !empty_key;
}

/*
 * check_json_path
 *		"$" or a dotted path of non-empty keys, optionally after "$."
 *
 * A first key "$parent" is checked when the table is scanned: only a
 * table with rows_from has a parent (the validator sees one column).
 */
static void
check_json_path(const char *name, const char *value)
{
	if (strcmp(value, CLOVER_WHOLE_OBJECT_PATH) == 0)
		return;
	if (!dotted_keys_valid(value))
		invalid_value(name, value,
					  "Give \"$\" for the whole object or a dotted path of keys, such as \"employee.id\".");
}

/*
 * check_rows_from
 *		A dotted path of non-empty keys to a list inside the exported object
 */
static void
check_rows_from(const char *name, const char *value)
{
	if (strcmp(value, CLOVER_WHOLE_OBJECT_PATH) == 0)
		invalid_value(name, value,
					  "\"$\" is the exported object itself, not a list in it; give the path of a list, such as \"lineItems.elements\".");
	if (path_is_parent(value))
		invalid_value(name, value,
					  "The path starts at the exported object, which has no parent; give the path of a list in it, such as \"lineItems.elements\".");
	if (!dotted_keys_valid(value))
		invalid_value(name, value,
					  "Give a dotted path of keys to a list in each exported object, such as \"lineItems.elements\".");
}

/*
 * check_access_token
 *		A token goes into an HTTP header: refuse anything that could break
 *		out of it
 */
static void
check_access_token(const char *name, const char *value)
{
	const char *p;

	if (*value == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" may not be empty", name)));
	for (p = value; *p; p++)
	{
		if ((unsigned char) *p <= ' ' || (unsigned char) *p == 127)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" contains white space or control characters",
							name),
					 errhint("Paste the Clover API token exactly as issued.")));
	}
}

/*
 * url_without_slash
 *		A base URL without its trailing slashes, palloc'd
 */
static char *
url_without_slash(const char *value)
{
	int			len = strlen(value);

	while (len > 0 && value[len - 1] == '/')
		len--;
	return pnstrdup(value, len);
}

/*
 * apply_option
 *		Store one validated option into the merged options
 */
static void
apply_option(CloverFdwOptions *o, DefElem *def, const char **hours_spec)
{
	const char *name = def->defname;
	char	   *value = defGetString(def);

	if (strcmp(name, OPT_REGION) == 0)
		o->region = pstrdup(value);
	else if (strcmp(name, OPT_BASE_URL) == 0)
	{
		o->api_base = url_without_slash(value);
		o->api_base_overridden = true;
	}
	else if (strcmp(name, OPT_MERCHANT_ID) == 0)
		o->merchant_id = pstrdup(value);
	else if (strcmp(name, OPT_HISTORY_START) == 0)
	{
		o->history_start = history_start_value(name, value);
		o->has_history_start = true;
	}
	else if (strcmp(name, OPT_SERVICE_HOURS) == 0)
		*hours_spec = value;
	else if (strcmp(name, OPT_WAIT_FOR_SERVICE) == 0)
		o->wait_for_service_ms = interval_to_ms(name, value);
	else if (strcmp(name, OPT_BUSY_TIMEOUT) == 0)
		o->busy_timeout_ms = interval_to_ms(name, value);
	else if (strcmp(name, OPT_EXPORT_TIMEOUT) == 0)
		o->export_timeout_ms = positive_interval_to_ms(name, value);
	else if (strcmp(name, OPT_MAX_CONCURRENT_EXPORTS) == 0)
		o->max_concurrent_exports = int_option(name, value, 1, MAX_CONCURRENCY);
	else if (strcmp(name, OPT_MAX_EXPORTS_PER_STATEMENT) == 0)
		o->max_exports_per_statement = int_option(name, value, 1,
												  MAX_EXPORTS_PER_STMT);
	else if (strcmp(name, OPT_REUSE_EXPORTS) == 0)
		o->reuse_exports_ms = interval_to_ms(name, value);
	else if (strcmp(name, OPT_MAX_PARALLEL_DOWNLOADS) == 0)
		o->max_parallel_downloads = int_option(name, value, 1, MAX_CONCURRENCY);
	else if (strcmp(name, OPT_CONNECT_TIMEOUT) == 0)
		o->connect_timeout_ms = positive_interval_to_ms(name, value);
	else if (strcmp(name, OPT_REQUEST_TIMEOUT) == 0)
		o->request_timeout_ms = positive_interval_to_ms(name, value);
	else if (strcmp(name, OPT_MAX_RETRIES) == 0)
		o->max_retries = int_option(name, value, 0, MAX_RETRIES);
	else if (strcmp(name, OPT_CA_FILE) == 0)
		o->ca_file = pstrdup(value);
	else if (strcmp(name, OPT_EXPORT_TYPE) == 0)
		o->export_type = pg_strcasecmp(value, "payments") == 0 ?
			CLOVER_EXPORT_PAYMENTS : CLOVER_EXPORT_ORDERS;
	else if (strcmp(name, OPT_ROWS_PER_DAY) == 0)
		o->rows_per_day = rows_per_day_value(name, value);
	else if (strcmp(name, OPT_ASYNC_CAPABLE) == 0)
		o->async_capable = bool_option(name, value);
	else if (strcmp(name, OPT_ECOMMERCE_OBJECT) == 0)
		o->ecommerce_object = asc_tolower(value, strlen(value));
	else if (strcmp(name, OPT_ECOMMERCE_BASE_URL) == 0)
		o->ecommerce_base = url_without_slash(value);
	else if (strcmp(name, OPT_APP_REQUESTS_PER_SECOND) == 0)
		o->app_requests_per_second = int_option(name, value, 1, MAX_APP_LIMIT);
	else if (strcmp(name, OPT_APP_MAX_CONCURRENT_REQUESTS) == 0)
		o->app_max_concurrent_requests = int_option(name, value, 1,
													MAX_APP_LIMIT);
	else if (strcmp(name, OPT_MAX_EXPORTS_PER_HOST) == 0)
		o->max_exports_per_host = int_option(name, value, 1, MAX_APP_LIMIT);
	else if (strcmp(name, OPT_NODE_SHARE) == 0)
		o->node_share = node_share_value(name, value);
}

/*
 * CloverGetOptions
 *		Merged options of a foreign table: table over server over wrapper
 *		over defaults
 *
 * Rules that span objects are enforced here, where all of them are known.
 * The result is palloc'd in the current memory context.
 */
CloverFdwOptions *
CloverGetOptions(Oid foreigntableid)
{
	ForeignTable *table = GetForeignTable(foreigntableid);
	ForeignServer *server = GetForeignServer(table->serverid);
	CloverFdwOptions *o = palloc0(sizeof(CloverFdwOptions));
	const char *hours_spec = NULL;
	bool		has_export_type = false;
	char	   *problem;
	ListCell   *lc;

	o->serverid = server->serverid;
	o->server_name = pstrdup(server->servername);
	o->table_name = get_rel_name(foreigntableid);
	o->region = DEFAULT_REGION;
	o->busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;
	o->export_timeout_ms = DEFAULT_EXPORT_TIMEOUT_MS;
	o->max_concurrent_exports = DEFAULT_MAX_CONCURRENT;
	o->max_exports_per_statement = DEFAULT_MAX_EXPORTS_PER_STMT;
	o->reuse_exports_ms = DEFAULT_REUSE_EXPORTS_MS;
	o->max_parallel_downloads = DEFAULT_PARALLEL_DOWNLOADS;
	o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	o->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
	o->max_retries = DEFAULT_MAX_RETRIES;
	o->rows_per_day = DEFAULT_ROWS_PER_DAY;
	o->app_requests_per_second = DEFAULT_APP_REQUESTS_PER_SEC;
	o->app_max_concurrent_requests = DEFAULT_APP_CONCURRENT;
	o->max_exports_per_host = DEFAULT_EXPORTS_PER_HOST;
	o->node_share = 1.0;
	o->async_capable = true;

	foreach(lc, GetForeignDataWrapper(server->fdwid)->options)
		apply_option(o, (DefElem *) lfirst(lc), &hours_spec);
	foreach(lc, server->options)
		apply_option(o, (DefElem *) lfirst(lc), &hours_spec);
	foreach(lc, table->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, OPT_EXPORT_TYPE) == 0)
			has_export_type = true;
		apply_option(o, def, &hours_spec);
	}

	/* the app's limits: this cluster's share of them */
	o->app_requests_per_second = CloverShareOf(o->app_requests_per_second,
											   o->node_share);
	o->app_max_concurrent_requests =
		CloverShareOf(o->app_max_concurrent_requests, o->node_share);
	o->max_exports_per_host = CloverShareOf(o->max_exports_per_host,
											o->node_share);

	if (!o->api_base_overridden)
		o->api_base = pstrdup(find_region(o->region)->api_host);
	if (o->ecommerce_base == NULL && find_region(o->region)->ecommerce_host)
		o->ecommerce_base = pstrdup(find_region(o->region)->ecommerce_host);
	if (hours_spec == NULL)
		hours_spec = find_region(o->region)->service_hours;
	if (!CloverParseServiceHours(hours_spec, &o->hours, &problem))
		elog(ERROR, "invalid service hours \"%s\": %s", hours_spec, problem);

	if (!has_export_type && o->ecommerce_object == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no option \"%s\" or \"%s\"",
						o->table_name, OPT_EXPORT_TYPE, OPT_ECOMMERCE_OBJECT),
				 errhint("Add one with ALTER FOREIGN TABLE %s OPTIONS (ADD export_type 'ORDERS') (or 'PAYMENTS'), or OPTIONS (ADD ecommerce_object 'charges').",
						 quote_identifier(o->table_name))));
	if (o->ecommerce_object && o->ecommerce_base == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" has no e-commerce host for region \"%s\"",
						o->server_name, o->region),
				 errdetail("Foreign table \"%s\" reads Clover's e-commerce list /v1/%s, and Clover's documents give the e-commerce host of the sandbox only.",
						   o->table_name, o->ecommerce_object),
				 errhint("Set it with ALTER SERVER %s OPTIONS (ADD ecommerce_base_url 'https://...').",
						 quote_identifier(o->server_name))));
	if (o->merchant_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no Clover merchant is set for foreign table \"%s\"",
						o->table_name),
				 errhint("Set option \"%s\" on server \"%s\" or on the table.",
						 OPT_MERCHANT_ID, o->server_name)));
	return o;
}

/*
 * CloverServerMerchants
 *		The API base URL a server's exports go to, and the merchants that
 *		its options and its foreign tables' options name (a List of String):
 *		the registry's exports a user of the server may see (registry_sql.c)
 */
List *
CloverServerMerchants(Oid serverid, char **api_base)
{
	ForeignServer *server = GetForeignServer(serverid);
	CloverFdwOptions o = {0};
	const char *hours_spec = NULL;
	List	   *merchants = NIL;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	ListCell   *lc;

	o.region = DEFAULT_REGION;
	foreach(lc, server->options)
		apply_option(&o, (DefElem *) lfirst(lc), &hours_spec);
	*api_base = o.api_base_overridden ? o.api_base :
		pstrdup(find_region(o.region)->api_host);
	if (o.merchant_id)
		merchants = lappend(merchants, makeString(o.merchant_id));

	rel = table_open(ForeignTableRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_foreign_table ft = (Form_pg_foreign_table) GETSTRUCT(tuple);
		bool		isnull;
		Datum		datum;

		if (ft->ftserver != serverid)
			continue;
		datum = heap_getattr(tuple, Anum_pg_foreign_table_ftoptions,
							 RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		foreach(lc, untransformRelOptions(datum))
		{
			DefElem    *def = (DefElem *) lfirst(lc);

			if (strcmp(def->defname, OPT_MERCHANT_ID) == 0)
				merchants = list_append_unique(merchants,
											   makeString(defGetString(def)));
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return merchants;
}

/*
 * has_user_mapping
 *		Is there a user mapping for (userid, serverid)?  (userid InvalidOid:
 *		the one for PUBLIC)
 */
static bool
has_user_mapping(Oid serverid, Oid userid)
{
	HeapTuple	tp = SearchSysCache2(USERMAPPINGUSERSERVER,
									 ObjectIdGetDatum(userid),
									 ObjectIdGetDatum(serverid));

	if (!HeapTupleIsValid(tp))
		return false;
	ReleaseSysCache(tp);
	return true;
}

/*
 * require_user_mapping
 *		Fail as GetUserMapping() would (same SQLSTATE) when userid has no
 *		user mapping for the server, own or PUBLIC, but naming the server and
 *		saying which statement creates it
 */
static void
require_user_mapping(Oid serverid, Oid userid)
{
	const char *server;

	if (has_user_mapping(serverid, userid) ||
		has_user_mapping(serverid, InvalidOid))
		return;
	server = GetForeignServer(serverid)->servername;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("user mapping not found for user \"%s\", server \"%s\"",
					GetUserNameFromId(userid, false), server),
			 errhint("Create one with the merchant's Clover API token: CREATE USER MAPPING FOR %s SERVER %s OPTIONS (access_token '...').",
					 userid == GetUserId() ? "CURRENT_USER" :
					 quote_identifier(GetUserNameFromId(userid, false)),
					 quote_identifier(server))));
}

/*
 * CloverGetAccessToken
 *		The access token of the user mapping for (userid, serverid), palloc'd:
 *		for an e-commerce list its ecommerce_access_token if it has one
 *
 * The token is never logged: callers pass it straight to the runs.
 */
char *
CloverGetAccessToken(Oid serverid, Oid userid, bool ecommerce)
{
	UserMapping *um;
	char	   *token = NULL;
	ListCell   *lc;

	require_user_mapping(serverid, userid);
	um = GetUserMapping(userid, serverid);

	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, OPT_ECOMMERCE_ACCESS_TOKEN) == 0 && ecommerce)
			return pstrdup(defGetString(def));
		if (strcmp(def->defname, OPT_ACCESS_TOKEN) == 0)
			token = pstrdup(defGetString(def));
	}
	if (token)
		return token;

	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("user mapping for server \"%s\" has no option \"%s\"",
					GetForeignServer(serverid)->servername,
					ecommerce ? OPT_ECOMMERCE_ACCESS_TOKEN : OPT_ACCESS_TOKEN),
			 ecommerce ?
			 errhint("Add the merchant's Clover e-commerce API token with ALTER USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (ADD ecommerce_access_token '...'), or an access_token that serves both APIs.",
					 quote_identifier(GetForeignServer(serverid)->servername)) :
			 errhint("Add the merchant's Clover API token with ALTER USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (ADD access_token '...').",
					 quote_identifier(GetForeignServer(serverid)->servername))));
	return NULL;				/* keep compiler quiet */
}

/*
 * CloverDefaultJsonPath
 *		The JSON key a column maps to without json_path: its name in
 *		camelCase ("created_time" -> "createdTime"), palloc'd
 */
char *
CloverDefaultJsonPath(const char *colname)
{
	char	   *out = palloc(strlen(colname) + 1);
	char	   *o = out;
	bool		upper_next = false;

	for (; *colname; colname++)
	{
		if (*colname == '_')
		{
			upper_next = (o != out);
			continue;
		}
		*o++ = upper_next ? pg_toupper((unsigned char) *colname) : *colname;
		upper_next = false;
	}
	*o = '\0';
	return out;
}

/*
 * json_path_option
 *		A column's json_path option as given, or NULL if it has none
 */
static char *
json_path_option(Oid relid, AttrNumber attnum)
{
	List	   *options = GetForeignColumnOptions(relid, attnum);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, OPT_JSON_PATH) == 0)
			return defGetString(def);
	}
	return NULL;
}

/*
 * path_is_parent
 *		Does a json_path start with the key "$parent" (the exported object
 *		of a row of a rows_from table)?
 */
static bool
path_is_parent(const char *path)
{
	size_t		n = strlen(PARENT_KEY);

	return strncmp(path, PARENT_KEY, n) == 0 &&
		(path[n] == '\0' || path[n] == '.');
}

/*
 * split_keys
 *		The keys of a dotted path: a List of palloc'd strings
 *
 * The one place where a path is split.  Every '.' separates two keys, so
 * a default path may hold empty keys (column "_" is the key "", "a..b" the
 * keys a, "", b); json_path '$.$' is the key "$".
 */
static List *
split_keys(const char *path)
{
	List	   *keys = NIL;
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL)
	{
		keys = lappend(keys, pnstrdup(path, dot - path));
		path = dot + 1;
	}
	return lappend(keys, pstrdup(path));
}

/*
 * table_option
 *		A table option as given, or NULL if the table has none
 */
static char *
table_option(Oid relid, const char *name)
{
	ListCell   *lc;

	foreach(lc, GetForeignTable(relid)->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

/*
 * CloverTableRowsFrom
 *		The table's rows_from option as given, or NULL if it has none
 */
char *
CloverTableRowsFrom(Oid relid)
{
	return table_option(relid, OPT_ROWS_FROM);
}

/*
 * CloverTableIsEcommerce
 *		Does the table read an e-commerce /v1 list rather than exports?
 */
bool
CloverTableIsEcommerce(Oid relid)
{
	return table_option(relid, OPT_ECOMMERCE_OBJECT) != NULL;
}

/*
 * CloverTableRowsFromKeys
 *		The keys of the table's rows_from path, in the database encoding,
 *		or NIL if it has none
 */
List *
CloverTableRowsFromKeys(Oid relid)
{
	char	   *path = CloverTableRowsFrom(relid);

	if (path == NULL)
		return NIL;
	if (strncmp(path, "$.", 2) == 0)
		path += 2;
	return split_keys(path);
}

/*
 * CloverColumnJsonKeys
 *		The keys of a column's JSON path, in the database encoding: a List
 *		of palloc'd strings, or NIL for the whole object (json_path '$')
 *
 * *from_parent tells whether the path starts with "$parent", so that the
 * keys after it are read in the exported object rather than in the
 * element of rows_from that is the row; only a table with rows_from has
 * one ('$.$parent' is the key "$parent").
 */
List *
CloverColumnJsonKeys(Oid relid, AttrNumber attnum, const char *attname,
					 bool *from_parent)
{
	char	   *path = json_path_option(relid, attnum);

	*from_parent = false;
	if (path == NULL && CloverTableIsEcommerce(relid))
		return split_keys(attname);		/* the /v1 keys are snake_case */
	if (path == NULL)
		return split_keys(CloverDefaultJsonPath(attname));
	if (strcmp(path, CLOVER_WHOLE_OBJECT_PATH) == 0)
		return NIL;
	if (strncmp(path, "$.", 2) == 0)
		return split_keys(path + 2);
	if (!path_is_parent(path))
		return split_keys(path);

	if (CloverTableRowsFrom(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("column \"%s\" of foreign table \"%s\" reads \"%s\", but the table has no option \"%s\"",
						attname, get_rel_name(relid), PARENT_KEY,
						OPT_ROWS_FROM),
				 errdetail("Only the rows of a table with rows_from, the elements of a list, have a parent: the exported object holding the list."),
				 errhint("Give the path without \"%s.\", or write \"$.%s\" for a key of that name.",
						 PARENT_KEY, PARENT_KEY)));
	*from_parent = true;
	path += strlen(PARENT_KEY);
	if (*path == '\0')
		return NIL;
	return split_keys(path + 1);
}

/*
 * CloverColumnIsMerchant
 *		Is the column the table's merchant (a column named merchant_id
 *		without json_path) rather than a key of Clover's objects?
 */
bool
CloverColumnIsMerchant(Oid relid, AttrNumber attnum, const char *attname)
{
	return strcmp(attname, CLOVER_MERCHANT_COLUMN) == 0 &&
		json_path_option(relid, attnum) == NULL;
}

const char *
CloverExportTypeName(CloverExportType type)
{
	return type == CLOVER_EXPORT_PAYMENTS ? "PAYMENTS" : "ORDERS";
}
