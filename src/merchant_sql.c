/*-------------------------------------------------------------------------
 *
 * merchant_sql.c
 *		  The C side of clover_add_merchant(): the user mapping made without
 *		  SQL text
 *
 * clover_add_merchant() (sql/clover_export_fdw--1.1--1.2.sql) builds its
 * statements as text and runs them with EXECUTE, whose text PostgreSQL
 * adds to the context of every message raised while it runs, DEBUG lines
 * in the server log included.  A token must never be in such a text, so
 * the user mapping is made here instead: CREATE USER MAPPING FOR
 * CURRENT_USER as a parse tree holding the tokens, run through
 * ProcessUtility() as any statement of a function (privilege checks, the
 * validator, event triggers) with a query text that holds no token.
 *
 * IDENTIFICATION
 *		  src/merchant_sql.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/builtins.h"

/* the query text ProcessUtility() gets: never the tokens */
#define USER_MAPPING_TEXT \
	"CREATE USER MAPPING FOR CURRENT_USER SERVER ... OPTIONS (access_token ...)"

PG_FUNCTION_INFO_V1(clover_export_fdw_create_user_mapping);

/*
 * clover_export_fdw_create_user_mapping
 *		CREATE USER MAPPING FOR CURRENT_USER SERVER server OPTIONS
 *		(access_token ..., ecommerce_access_token ...), the second one only
 *		if not NULL; the arguments never become SQL text
 */
Datum
clover_export_fdw_create_user_mapping(PG_FUNCTION_ARGS)
{
	CreateUserMappingStmt *stmt;
	PlannedStmt *pstmt;
	RoleSpec   *user;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the server and access_token may not be null")));

	user = makeNode(RoleSpec);
	user->roletype = ROLESPEC_CURRENT_USER;
	user->location = -1;

	stmt = makeNode(CreateUserMappingStmt);
	stmt->user = user;
	stmt->servername = NameStr(*PG_GETARG_NAME(0));
	stmt->if_not_exists = false;
	stmt->options = list_make1(makeDefElem("access_token",
										   (Node *) makeString(text_to_cstring(PG_GETARG_TEXT_PP(1))),
										   -1));
	if (!PG_ARGISNULL(2))
		stmt->options = lappend(stmt->options,
								makeDefElem("ecommerce_access_token",
											(Node *) makeString(text_to_cstring(PG_GETARG_TEXT_PP(2))),
											-1));

	pstmt = makeNode(PlannedStmt);
	pstmt->commandType = CMD_UTILITY;
	pstmt->canSetTag = false;
	pstmt->utilityStmt = (Node *) stmt;
	pstmt->stmt_location = -1;
	pstmt->stmt_len = 0;
	ProcessUtility(pstmt, USER_MAPPING_TEXT, false, PROCESS_UTILITY_QUERY,
				   NULL, NULL, None_Receiver, NULL);
	PG_RETURN_VOID();
}
