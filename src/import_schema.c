/*-------------------------------------------------------------------------
 *
 * import_schema.c
 *		  IMPORT FOREIGN SCHEMA: the tables of Clover's exports and lists
 *
 * Clover has no schemas; IMPORT FOREIGN SCHEMA creates the wrapper's
 * standard tables, clover_orders, clover_line_items and clover_payments
 * (exports) and clover_charges, clover_refunds and clover_ecommerce_orders
 * (e-commerce /v1 lists), each column with its json_path, as LIMIT TO and
 * EXCEPT allow.
 *
 * IDENTIFICATION
 *		  src/import_schema.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "foreign/foreign.h"
#include "utils/builtins.h"

/*
 * The tables IMPORT FOREIGN SCHEMA creates: name, export type, rows_from
 * and columns (name, type, json_path)
 */
typedef struct ImportColumn
{
	const char *name;
	const char *type;
	const char *path;
} ImportColumn;

static const ImportColumn order_columns[] = {
	{"id", "text", "id"},
	{"currency", "text", "currency"},
	{"employee_id", "text", "employee.id"},
	{"total", "bigint", "total"},
	{"unpaid_balance", "bigint", "unpaidBalance"},
	{"payment_state", "text", "paymentState"},
	{"title", "text", "title"},
	{"note", "text", "note"},
	{"order_type_id", "text", "orderType.id"},
	{"state", "text", "state"},
	{"pay_type", "text", "payType"},
	{"tax_removed", "boolean", "taxRemoved"},
	{"is_vat", "boolean", "isVat"},
	{"manual_transaction", "boolean", "manualTransaction"},
	{"test_mode", "boolean", "testMode"},
	{"device_id", "text", "device.id"},
	{"created_time", "timestamptz", "createdTime"},
	{"client_created_time", "timestamptz", "clientCreatedTime"},
	{"modified_time", "timestamptz", "modifiedTime"},
	{"line_items", "jsonb", "lineItems"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

/* one row per line item; the order's createdTime carries the bounds */
static const ImportColumn line_item_columns[] = {
	{"order_id", "text", "$parent.id"},
	{"id", "text", "id"},
	{"name", "text", "name"},
	{"price", "bigint", "price"},
	{"unit_qty", "integer", "unitQty"},
	{"is_revenue", "boolean", "isRevenue"},
	{"refunded", "boolean", "refunded"},
	{"exchanged", "boolean", "exchanged"},
	{"item_id", "text", "item.id"},
	{"created_time", "timestamptz", "$parent.createdTime"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

static const ImportColumn payment_columns[] = {
	{"id", "text", "id"},
	{"order_id", "text", "order.id"},
	{"device_id", "text", "device.id"},
	{"tender_id", "text", "tender.id"},
	{"tender_label", "text", "tender.label"},
	{"amount", "bigint", "amount"},
	{"tip_amount", "bigint", "tipAmount"},
	{"tax_amount", "bigint", "taxAmount"},
	{"cashback_amount", "bigint", "cashbackAmount"},
	{"result", "text", "result"},
	{"offline", "boolean", "offline"},
	{"employee_id", "text", "employee.id"},
	{"external_payment_id", "text", "externalPaymentId"},
	{"card_type", "text", "cardTransaction.cardType"},
	{"card_last4", "text", "cardTransaction.last4"},
	{"created_time", "timestamptz", "createdTime"},
	{"client_created_time", "timestamptz", "clientCreatedTime"},
	{"modified_time", "timestamptz", "modifiedTime"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

/* the e-commerce /v1 lists (clover-api.md, section 4; FAKE.md's objects) */
static const ImportColumn charge_columns[] = {
	{"id", "text", "id"},
	{"amount", "bigint", "amount"},
	{"currency", "text", "currency"},
	{"created_time", "timestamptz", "created"},
	{"order_id", "text", "order"},
	{"paid", "boolean", "paid"},
	{"captured", "boolean", "captured"},
	{"refunded", "boolean", "refunded"},
	{"amount_refunded", "bigint", "amount_refunded"},
	{"status", "text", "status"},
	{"source", "jsonb", "source"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

static const ImportColumn refund_columns[] = {
	{"id", "text", "id"},
	{"amount", "bigint", "amount"},
	{"currency", "text", "currency"},
	{"created_time", "timestamptz", "created"},
	{"charge_id", "text", "charge"},
	{"status", "text", "status"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

static const ImportColumn ecommerce_order_columns[] = {
	{"id", "text", "id"},
	{"amount", "bigint", "amount"},
	{"currency", "text", "currency"},
	{"created_time", "timestamptz", "created"},
	{"status", "text", "status"},
	{"charge_id", "text", "charge"},
	{"items", "jsonb", "items"},
	{"raw", "jsonb", "$"},
	{NULL, NULL, NULL}
};

/* each table reads an export type or (source_option) an e-commerce list */
static const struct
{
	const char *table;
	const char *source_option;	/* export_type or ecommerce_object */
	const char *source;
	const char *rows_from;		/* NULL: the exported objects are the rows */
	const ImportColumn *columns;
}			import_tables[] = {
	{"clover_orders", "export_type", "ORDERS", NULL, order_columns},
	{"clover_line_items", "export_type", "ORDERS", "lineItems.elements",
	line_item_columns},
	{"clover_payments", "export_type", "PAYMENTS", NULL, payment_columns},
	{"clover_charges", "ecommerce_object", "charges", NULL, charge_columns},
	{"clover_refunds", "ecommerce_object", "refunds", NULL, refund_columns},
	{"clover_ecommerce_orders", "ecommerce_object", "orders", NULL,
	ecommerce_order_columns},
	{NULL, NULL, NULL, NULL, NULL}
};

/*
 * import_wanted
 *		Does LIMIT TO / EXCEPT let this table through?
 */
static bool
import_wanted(ImportForeignSchemaStmt *stmt, const char *table)
{
	ListCell   *lc;
	bool		listed = false;

	if (stmt->list_type == FDW_IMPORT_SCHEMA_ALL)
		return true;
	foreach(lc, stmt->table_list)
	{
		if (strcmp(((RangeVar *) lfirst(lc))->relname, table) == 0)
			listed = true;
	}
	return stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO ? listed : !listed;
}

/*
 * cloverImportForeignSchema
 *		CREATE FOREIGN TABLE commands for clover_orders, clover_line_items,
 *		clover_payments and the e-commerce lists' clover_charges,
 *		clover_refunds and clover_ecommerce_orders
 *
 * Clover has no schemas: any remote schema name gives the same tables.
 */
List *
cloverImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	List	   *commands = NIL;
	int			t;

	for (t = 0; import_tables[t].table; t++)
	{
		StringInfoData buf;
		const ImportColumn *col;

		if (!import_wanted(stmt, import_tables[t].table))
			continue;

		initStringInfo(&buf);
		appendStringInfo(&buf, "CREATE FOREIGN TABLE %s (\n",
						 quote_qualified_identifier(stmt->local_schema,
													import_tables[t].table));
		for (col = import_tables[t].columns; col->name; col++)
			appendStringInfo(&buf, "  %s %s OPTIONS (json_path %s)%s\n",
							 quote_identifier(col->name), col->type,
							 quote_literal_cstr(col->path),
							 (col + 1)->name ? "," : "");
		appendStringInfo(&buf, ") SERVER %s OPTIONS (%s %s",
						 quote_identifier(server->servername),
						 import_tables[t].source_option,
						 quote_literal_cstr(import_tables[t].source));
		if (import_tables[t].rows_from)
			appendStringInfo(&buf, ", rows_from %s",
							 quote_literal_cstr(import_tables[t].rows_from));
		appendStringInfoChar(&buf, ')');
		commands = lappend(commands, buf.data);
	}
	return commands;
}
