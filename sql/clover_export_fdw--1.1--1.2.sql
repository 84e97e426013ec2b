/* sql/clover_export_fdw--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION clover_export_fdw UPDATE TO '1.2'" to load this file. \quit

-- Add a merchant in one statement (see README.md, "Many merchants"): its
-- server clover_<merchant id in lower case>, the current user's user
-- mapping with its token, and in into_schema a partition of each of the
-- partitioned tables clover_orders, clover_line_items, clover_payments,
-- clover_charges, clover_refunds and clover_ecommerce_orders, partitioned
-- BY LIST (merchant_id).  The first call creates the schema and the
-- partitioned tables.  The tables are those IMPORT FOREIGN SCHEMA makes,
-- imported into a scratch schema dropped at the end, so the partitions and
-- their parents always have IMPORT's columns.  server_options are pairs of
-- further server options: '{region,eu}'.  Returns the server's name.
--
-- The tokens go into the user mapping only, which
-- clover_export_fdw_create_user_mapping makes without SQL text: the text of
-- a statement run by EXECUTE is in the context of every message raised
-- while it runs, DEBUG lines of the server log included.
CREATE FUNCTION clover_export_fdw_create_user_mapping(
    server name,
    access_token text,
    ecommerce_access_token text)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C VOLATILE;

CREATE FUNCTION clover_add_merchant(
    merchant_id text,
    access_token text,
    into_schema name DEFAULT 'clover',
    server_options text[] DEFAULT '{}',
    ecommerce_access_token text DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mid text := clover_add_merchant.merchant_id;
    srv name := 'clover_' || lower(mid);
    scratch name := 'clover_import_' || lower(mid);
    srv_opts text := format('merchant_id %L', mid);
    part name;
    tab record;
    kind "char";
    i int;
BEGIN
    IF mid IS NULL OR access_token IS NULL OR into_schema IS NULL
       OR server_options IS NULL THEN
        RAISE EXCEPTION 'merchant_id, access_token, into_schema and server_options may not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_ndims(server_options) > 1
       OR coalesce(array_length(server_options, 1), 0) % 2 <> 0 THEN
        RAISE EXCEPTION 'server_options must be pairs of an option''s name and its value'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write them as one array: ''{region,eu}''.';
    END IF;
    FOR i IN 1 .. coalesce(array_length(server_options, 1), 0) BY 2 LOOP
        IF server_options[i] = 'merchant_id' THEN
            RAISE EXCEPTION 'server_options may not hold merchant_id'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The merchant is the function''s first argument.';
        END IF;
        srv_opts := srv_opts || format(', %I %L', server_options[i],
                                       server_options[i + 1]);
    END LOOP;

    IF EXISTS (SELECT FROM pg_foreign_server WHERE srvname = srv) THEN
        RAISE EXCEPTION 'merchant "%" is already added', mid
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('Server %I exists.', srv),
                  HINT = format('Remove it first with SELECT clover_remove_merchant(%L, %L), or keep it as it is.',
                                mid, into_schema);
    END IF;

    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (%s)',
                   srv, srv_opts);

    -- the tokens only as parameters, in the extension's schema
    EXECUTE format('SELECT %I.clover_export_fdw_create_user_mapping($1, $2, $3)',
                   (SELECT n.nspname FROM pg_extension e
                      JOIN pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'clover_export_fdw'))
        USING srv, access_token, ecommerce_access_token;

    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = into_schema) THEN
        EXECUTE format('CREATE SCHEMA %I', into_schema);
    END IF;
    EXECUTE format('CREATE SCHEMA %I', scratch);
    EXECUTE format('IMPORT FOREIGN SCHEMA clover FROM SERVER %I INTO %I',
                   srv, scratch);

    FOR tab IN
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = (SELECT oid FROM pg_namespace
                                  WHERE nspname = scratch)
         ORDER BY c.relname
    LOOP
        SELECT c.relkind INTO kind FROM pg_class c JOIN pg_namespace n
                ON n.oid = c.relnamespace
         WHERE n.nspname = into_schema AND c.relname = tab.relname;
        IF kind IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I) PARTITION BY LIST (merchant_id)',
                           into_schema, tab.relname, scratch, tab.relname);
        ELSIF kind <> 'p' THEN
            RAISE EXCEPTION 'table "%" exists and is not partitioned',
                            format('%I.%I', into_schema, tab.relname)
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'Give another into_schema: the first merchant added to a schema creates the partitioned tables there.';
        END IF;
        part := tab.relname || '_' || lower(mid);
        EXECUTE format('ALTER FOREIGN TABLE %I.%I RENAME TO %I',
                       scratch, tab.relname, part);
        EXECUTE format('ALTER FOREIGN TABLE %I.%I SET SCHEMA %I',
                       scratch, part, into_schema);
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES IN (%L)',
                       into_schema, tab.relname, into_schema, part, mid);
    END LOOP;
    EXECUTE format('DROP SCHEMA %I', scratch);
    RETURN srv;
END
$$;

-- Remove a merchant that clover_add_merchant added: its partitions in
-- into_schema, every user mapping of its server, and the server.  Anything
-- else that uses the server stops the removal (DROP SERVER without
-- CASCADE).  Returns the server's name.
CREATE FUNCTION clover_remove_merchant(
    merchant_id text,
    into_schema name DEFAULT 'clover')
RETURNS name
LANGUAGE plpgsql
STRICT
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mid text := clover_remove_merchant.merchant_id;
    srv name := 'clover_' || lower(mid);
    srv_oid oid;
    r record;
BEGIN
    SELECT oid INTO srv_oid FROM pg_foreign_server WHERE srvname = srv;
    IF srv_oid IS NULL THEN
        RAISE EXCEPTION 'merchant "%" is not added', mid
            USING ERRCODE = 'undefined_object',
                  DETAIL = format('There is no server %I.', srv),
                  HINT = 'Add it with SELECT clover_add_merchant(merchant_id, access_token, ...).';
    END IF;

    FOR r IN
        SELECT c.relname FROM pg_foreign_table ft
          JOIN pg_class c ON c.oid = ft.ftrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE ft.ftserver = srv_oid AND n.nspname = into_schema
           AND c.relispartition
         ORDER BY c.relname
    LOOP
        EXECUTE format('DROP FOREIGN TABLE %I.%I', into_schema, r.relname);
    END LOOP;
    FOR r IN
        SELECT CASE WHEN um.umuser = 0 THEN 'PUBLIC'
                    ELSE quote_ident(um.usename) END AS who
          FROM pg_user_mappings um WHERE um.srvid = srv_oid
    LOOP
        EXECUTE format('DROP USER MAPPING FOR %s SERVER %I', r.who, srv);
    END LOOP;
    EXECUTE format('DROP SERVER %I', srv);
    RETURN srv;
END
$$;
