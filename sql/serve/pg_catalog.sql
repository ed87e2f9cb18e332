-- The PostgreSQL catalog `hspq serve` shows its clients: what psql's \dt and \d, SQLAlchemy's
-- reflection, JDBC's DatabaseMetaData (Metabase) and Grafana's query editor read to list the
-- lake's views and their columns. The lake's views are shown as tables (relkind 'r', BASE
-- TABLE): to a client they are read-only tables, and psql's \dt lists tables only.
--
-- Clients' catalog queries are re-spelled to read this schema (src/serve/catalog.rs), so
-- `pg_catalog.pg_class` and `information_schema.columns` mean `hspq_catalog.pg_class` and
-- `hspq_catalog.columns`. DuckDB's own pg_catalog is not used: its type oids are not
-- PostgreSQL's (an INTEGER column is oid 13 there, 23 here, as the server sends it).
--
-- src/serve/catalog.rs creates the schema and, before this file runs, the lookups that answer
-- from constants (a macro with a subquery would bind a caller's `oid` to its own table's):
-- parse_ident_last(name), setting_of(name), format_type(oid, typmod), regclass_oid(name), regclass_name(oid),
-- regtype_oid(name), regtype_name(oid). After it, it fills `relations`, `attributes` (the
-- lake's views and their columns, typed as the server sends them), `types` and `settings`.

CREATE TABLE hspq_catalog.relations (oid BIGINT, relname VARCHAR);
CREATE TABLE hspq_catalog.attributes (
    attrelid BIGINT, attname VARCHAR, attnum SMALLINT, atttypid UINTEGER
);
-- typname, how format_type() and information_schema spell the type, and its array's oid.
CREATE TABLE hspq_catalog.types (
    oid BIGINT, typname VARCHAR, formatted VARCHAR, data_type VARCHAR, typelem BIGINT,
    typarray BIGINT, typlen SMALLINT, typcategory VARCHAR
);
CREATE TABLE hspq_catalog.settings (name VARCHAR, setting VARCHAR);

-- The functions clients call, as PostgreSQL answers them for a lake of read-only tables with
-- no indexes, constraints, comments or defaults. Calls are re-spelled to these by name.
CREATE MACRO hspq_catalog.current_setting(n) AS hspq_catalog.setting_of(n),
    (n, missing_ok) AS hspq_catalog.setting_of(n);
CREATE MACRO hspq_catalog.current_database() AS hspq_catalog.setting_of('hspq_database');
CREATE MACRO hspq_catalog.user() AS hspq_catalog.setting_of('session_user');
CREATE MACRO hspq_catalog.current_role() AS hspq_catalog.setting_of('session_user');
CREATE MACRO hspq_catalog.current_user() AS hspq_catalog.setting_of('session_user');
CREATE MACRO hspq_catalog.session_user() AS hspq_catalog.setting_of('session_user');
CREATE MACRO hspq_catalog.current_schema() AS 'main';
CREATE MACRO hspq_catalog.current_schemas(implicit) AS
    CASE WHEN implicit THEN ['pg_catalog', 'main'] ELSE ['main'] END;
CREATE MACRO hspq_catalog.version() AS hspq_catalog.setting_of('hspq_version');
CREATE MACRO hspq_catalog.pg_get_userbyid(o) AS hspq_catalog.setting_of('session_user');
CREATE MACRO hspq_catalog.pg_table_is_visible(o) AS true;
CREATE MACRO hspq_catalog.pg_type_is_visible(o) AS true;
CREATE MACRO hspq_catalog.pg_function_is_visible(o) AS true;
CREATE MACRO hspq_catalog.pg_get_expr(e, rel) AS NULL::VARCHAR,
    (e, rel, pretty) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.obj_description(o) AS NULL::VARCHAR,
    (o, catalog) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.col_description(o, n) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.shobj_description(o, catalog) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_encoding_to_char(e) AS 'UTF8';
CREATE MACRO hspq_catalog.has_table_privilege(t, p) AS true,
    (u, t, p) AS true;
CREATE MACRO hspq_catalog.has_schema_privilege(s, p) AS true,
    (u, s, p) AS true;
CREATE MACRO hspq_catalog.has_database_privilege(d, p) AS true,
    (u, d, p) AS true;
CREATE MACRO hspq_catalog.has_column_privilege(t, c, p) AS true,
    (u, t, c, p) AS true;
CREATE MACRO hspq_catalog.has_any_column_privilege(t, p) AS true,
    (u, t, p) AS true;
CREATE MACRO hspq_catalog.pg_has_role(r, p) AS true,
    (u, r, p) AS true;
CREATE MACRO hspq_catalog.pg_get_indexdef(o) AS NULL::VARCHAR,
    (o, n, pretty) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_constraintdef(o) AS NULL::VARCHAR,
    (o, pretty) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_viewdef(o) AS NULL::VARCHAR,
    (o, pretty) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_triggerdef(o) AS NULL::VARCHAR,
    (o, pretty) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_functiondef(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_relation_is_publishable(o) AS false;
-- pgAdmin and DBeaver: settings they set are accepted without effect (as SET is).
-- hspq.as_of is not among them: a query cannot change the version it reads, so it is refused
-- rather than silently ignored.
CREATE MACRO hspq_catalog.set_config(name, value, is_local) AS
    CASE WHEN lower(trim(name::VARCHAR)) = 'hspq.as_of'
         THEN error('set_config cannot change hspq.as_of: use SET hspq.as_of = ''v42'' (or a time or date)')
         ELSE value::VARCHAR END;
CREATE MACRO hspq_catalog.pg_get_function_result(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_function_arguments(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_function_identity_arguments(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_partkeydef(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_serial_sequence(t, c) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.pg_get_statisticsobjdef_columns(o) AS NULL::VARCHAR;
CREATE MACRO hspq_catalog.to_regclass(n) AS hspq_catalog.regclass_oid(n);
CREATE MACRO hspq_catalog.to_regtype(n) AS hspq_catalog.regtype_oid(n);
-- A dataset's size and rows are its files' (lake_files); a derived view has none of its own.
CREATE MACRO hspq_catalog.lake_bytes(o) AS (SELECT coalesce(sum(lf.bytes), 0)::BIGINT
    FROM main.lake_files lf WHERE lf.dataset = hspq_catalog.regclass_name(o));
CREATE MACRO hspq_catalog.lake_rows(o) AS (SELECT coalesce(sum(lf.rows), 0)::BIGINT
    FROM main.lake_files lf WHERE lf.dataset = hspq_catalog.regclass_name(o));
CREATE MACRO hspq_catalog.pg_relation_size(o) AS hspq_catalog.lake_bytes(o),
    (o, fork) AS hspq_catalog.lake_bytes(o);
CREATE MACRO hspq_catalog.pg_total_relation_size(o) AS hspq_catalog.lake_bytes(o);
CREATE MACRO hspq_catalog.pg_table_size(o) AS hspq_catalog.lake_bytes(o);
CREATE MACRO hspq_catalog.pg_indexes_size(o) AS 0::BIGINT;
CREATE MACRO hspq_catalog.pg_size_pretty(n) AS format_bytes(n::BIGINT);
CREATE MACRO hspq_catalog.pg_is_in_recovery() AS false;
CREATE MACRO hspq_catalog.pg_backend_pid() AS 0;
-- asyncpg's pool sends it before handing a connection on; no lock is ever held here.
CREATE MACRO hspq_catalog.pg_advisory_unlock_all() AS NULL;
CREATE MACRO hspq_catalog.pg_postmaster_start_time() AS get_current_timestamp();
CREATE MACRO hspq_catalog.txid_current() AS 0::BIGINT;
CREATE MACRO hspq_catalog.quote_ident(s) AS
    CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_$]*') THEN s
        ELSE '"' || replace(s, '"', '""') || '"' END;
-- A qualified name's parts (a dot inside quotes is not told apart).
CREATE MACRO hspq_catalog.parse_ident(s) AS
    list_transform(string_split(s, '.'), x -> replace(x, '"', '')),
    (s, strict) AS list_transform(string_split(s, '.'), x -> replace(x, '"', ''));
-- format(): PostgreSQL's %s, %I (an identifier) and %L (a literal) as printf's %s; the
-- lake's names need no quoting.
CREATE MACRO hspq_catalog.format(f) AS f,
    (f, a) AS printf(regexp_replace(f, '%[IL]', '%s', 'g'), a),
    (f, a, b) AS printf(regexp_replace(f, '%[IL]', '%s', 'g'), a, b),
    (f, a, b, c) AS printf(regexp_replace(f, '%[IL]', '%s', 'g'), a, b, c),
    (f, a, b, c, d) AS printf(regexp_replace(f, '%[IL]', '%s', 'g'), a, b, c, d);
CREATE MACRO hspq_catalog.current_catalog() AS hspq_catalog.current_database();
CREATE MACRO hspq_catalog.quote_literal(s) AS '''' || replace(s::VARCHAR, '''', '''''') || '''';
-- information_schema._pg_expandarray: an array's elements (x) and their positions (n), a row each.
CREATE MACRO hspq_catalog._pg_expandarray(a) AS
    unnest(list_transform(a, (v, i) -> {'x': v, 'n': i}));
CREATE MACRO hspq_catalog.array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END;
CREATE MACRO hspq_catalog.array_upper(a, d) AS CASE WHEN len(a) > 0 THEN len(a) END;

-- Oids as PostgreSQL's: pg_catalog 11, public's 2200 for the one schema (DuckDB's `main`),
-- information_schema 13000, the bootstrap superuser 10, the database 16384.

CREATE VIEW hspq_catalog.pg_namespace AS
SELECT * FROM (VALUES
    (11::BIGINT, 'pg_catalog', 10::BIGINT, NULL::VARCHAR[]),
    (2200, 'main', 10, NULL),
    (13000, 'information_schema', 10, NULL)
) t(oid, nspname, nspowner, nspacl);

CREATE VIEW hspq_catalog.pg_class AS
SELECT oid, relname, 2200::BIGINT AS relnamespace, 0::BIGINT AS reltype,
    0::BIGINT AS reloftype, 10::BIGINT AS relowner, 2::BIGINT AS relam,
    0::BIGINT AS relfilenode, 0::BIGINT AS reltablespace, 0 AS relpages,
    hspq_catalog.lake_rows(oid)::FLOAT AS reltuples, 0 AS relallvisible, 0::BIGINT AS reltoastrelid,
    false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind,
    (SELECT count(*) FROM hspq_catalog.attributes a WHERE a.attrelid = r.oid)::SMALLINT
        AS relnatts,
    0::SMALLINT AS relchecks, false AS relhasrules, false AS relhastriggers,
    false AS relhassubclass, false AS relrowsecurity, false AS relforcerowsecurity,
    true AS relispopulated, 'd' AS relreplident, false AS relispartition,
    0::BIGINT AS relrewrite, 0::BIGINT AS relfrozenxid, 0::BIGINT AS relminmxid,
    NULL::VARCHAR[] AS relacl, NULL::VARCHAR[] AS reloptions, NULL::VARCHAR AS relpartbound
FROM hspq_catalog.relations r;

CREATE VIEW hspq_catalog.pg_attribute AS
SELECT a.attrelid, a.attname, a.atttypid, -1 AS attstattarget, t.typlen AS attlen, a.attnum,
    (t.typcategory = 'A')::INTEGER AS attndims, -1 AS attcacheoff, -1 AS atttypmod,
    false AS attbyval, 'i' AS attalign,
    CASE WHEN t.typlen > 0 THEN 'p' ELSE 'x' END AS attstorage, '' AS attcompression,
    false AS attnotnull, false AS atthasdef, false AS atthasmissing, '' AS attidentity,
    '' AS attgenerated, false AS attisdropped, true AS attislocal, 0 AS attinhcount,
    CASE WHEN t.typcategory = 'S' THEN 100 ELSE 0 END::BIGINT AS attcollation,
    NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions,
    NULL::VARCHAR[] AS attfdwoptions, NULL::VARCHAR AS attmissingval
FROM hspq_catalog.attributes a JOIN hspq_catalog.types t ON t.oid = a.atttypid;

CREATE VIEW hspq_catalog.pg_type AS
SELECT oid, typname, 11::BIGINT AS typnamespace, 10::BIGINT AS typowner, typlen,
    typlen > 0 AS typbyval, 'b' AS typtype, typcategory, false AS typispreferred,
    true AS typisdefined, ',' AS typdelim, 0::BIGINT AS typrelid, '' AS typsubscript,
    typelem, typarray,
    CASE WHEN typcategory = 'A' THEN 'array_in' ELSE typname || 'in' END AS typinput,
    CASE WHEN typcategory = 'A' THEN 'array_out' ELSE typname || 'out' END AS typoutput,
    CASE WHEN typcategory = 'A' THEN 'array_recv' ELSE typname || 'recv' END AS typreceive,
    CASE WHEN typcategory = 'A' THEN 'array_send' ELSE typname || 'send' END AS typsend,
    '-' AS typmodin, '-' AS typmodout, '-' AS typanalyze, 'i' AS typalign,
    'x' AS typstorage, false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod,
    0 AS typndims, CASE WHEN typcategory = 'S' THEN 100 ELSE 0 END::BIGINT AS typcollation,
    NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault, NULL::VARCHAR[] AS typacl
FROM hspq_catalog.types;

CREATE VIEW hspq_catalog.pg_database AS
SELECT 16384::BIGINT AS oid, hspq_catalog.current_database() AS datname,
    10::BIGINT AS datdba, 6 AS encoding, 'C' AS datcollate, 'C' AS datctype,
    false AS datistemplate, true AS datallowconn, -1 AS datconnlimit,
    0::BIGINT AS datlastsysoid, 0::BIGINT AS datfrozenxid, 0::BIGINT AS datminmxid,
    1663::BIGINT AS dattablespace, NULL::VARCHAR[] AS datacl;

CREATE VIEW hspq_catalog.pg_roles AS
SELECT user_name AS rolname, false AS rolsuper, true AS rolinherit,
    false AS rolcreaterole, false AS rolcreatedb, true AS rolcanlogin,
    false AS rolreplication, -1 AS rolconnlimit, '********' AS rolpassword,
    NULL::TIMESTAMPTZ AS rolvaliduntil, false AS rolbypassrls, NULL::VARCHAR[] AS rolconfig,
    10::BIGINT AS oid
FROM (SELECT hspq_catalog.current_user() AS user_name);

CREATE VIEW hspq_catalog.pg_user AS
SELECT rolname AS usename, oid AS usesysid, false AS usecreatedb, false AS usesuper,
    false AS userepl, false AS usebypassrls, '********' AS passwd,
    NULL::TIMESTAMPTZ AS valuntil, NULL::VARCHAR[] AS useconfig
FROM hspq_catalog.pg_roles;

CREATE VIEW hspq_catalog.pg_am AS
SELECT * FROM (VALUES (2::BIGINT, 'heap', 'heap_tableam_handler', 't'),
    (403, 'btree', 'bthandler', 'i')) t(oid, amname, amhandler, amtype);

CREATE VIEW hspq_catalog.pg_tables AS
SELECT 'main' AS schemaname, relname AS tablename, hspq_catalog.pg_get_userbyid(10) AS tableowner,
    NULL::VARCHAR AS tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers,
    false AS rowsecurity
FROM hspq_catalog.relations;

CREATE VIEW hspq_catalog.pg_stat_user_tables AS
SELECT oid AS relid, 'main' AS schemaname, relname, 0::BIGINT AS seq_scan,
    0::BIGINT AS seq_tup_read, NULL::BIGINT AS idx_scan, NULL::BIGINT AS idx_tup_fetch,
    0::BIGINT AS n_tup_ins, 0::BIGINT AS n_tup_upd, 0::BIGINT AS n_tup_del,
    0::BIGINT AS n_tup_hot_upd, hspq_catalog.lake_rows(oid) AS n_live_tup,
    0::BIGINT AS n_dead_tup, 0::BIGINT AS n_mod_since_analyze,
    NULL::TIMESTAMPTZ AS last_vacuum, NULL::TIMESTAMPTZ AS last_autovacuum,
    NULL::TIMESTAMPTZ AS last_analyze, NULL::TIMESTAMPTZ AS last_autoanalyze,
    0::BIGINT AS vacuum_count, 0::BIGINT AS autovacuum_count, 0::BIGINT AS analyze_count,
    0::BIGINT AS autoanalyze_count
FROM hspq_catalog.relations;
CREATE VIEW hspq_catalog.pg_stat_all_tables AS SELECT * FROM hspq_catalog.pg_stat_user_tables;

CREATE VIEW hspq_catalog.pg_settings AS
SELECT name, setting, NULL::VARCHAR AS unit, 'hspq' AS category, '' AS short_desc,
    NULL::VARCHAR AS extra_desc, 'user' AS context, 'string' AS vartype,
    'default' AS source, NULL::VARCHAR AS min_val, NULL::VARCHAR AS max_val,
    NULL::VARCHAR[] AS enumvals, setting AS boot_val, setting AS reset_val,
    NULL::VARCHAR AS sourcefile, NULL::INTEGER AS sourceline, false AS pending_restart
FROM hspq_catalog.settings;

-- What the lake has none of: indexes, constraints, defaults, inheritance, rules, triggers,
-- policies, functions, extensions. Empty, with the columns clients select.
CREATE TABLE hspq_catalog.pg_index (
    indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indnkeyatts SMALLINT,
    indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN,
    indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN,
    indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN, indisreplident BOOLEAN,
    indkey SMALLINT[], indcollation BIGINT[], indclass BIGINT[], indoption SMALLINT[],
    indexprs VARCHAR, indpred VARCHAR
);
CREATE TABLE hspq_catalog.pg_constraint (
    oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR,
    condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid BIGINT,
    contypid BIGINT, conindid BIGINT, conparentid BIGINT, confrelid BIGINT,
    confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN,
    coninhcount INTEGER, connoinherit BOOLEAN, conkey SMALLINT[], confkey SMALLINT[],
    conpfeqop BIGINT[], conppeqop BIGINT[], conffeqop BIGINT[], confdelsetcols SMALLINT[],
    conexclop BIGINT[], conbin VARCHAR
);
CREATE TABLE hspq_catalog.pg_attrdef (oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR);
CREATE TABLE hspq_catalog.pg_description (
    objoid BIGINT, classoid BIGINT, objsubid INTEGER, description VARCHAR
);
CREATE TABLE hspq_catalog.pg_shdescription (objoid BIGINT, classoid BIGINT, description VARCHAR);
CREATE TABLE hspq_catalog.pg_inherits (
    inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN
);
CREATE TABLE hspq_catalog.pg_opclass (
    oid BIGINT, opcmethod BIGINT, opcname VARCHAR, opcnamespace BIGINT, opcowner BIGINT,
    opcfamily BIGINT, opcintype BIGINT, opcdefault BOOLEAN, opckeytype BIGINT
);
CREATE TABLE hspq_catalog.pg_collation (
    oid BIGINT, collname VARCHAR, collnamespace BIGINT, collowner BIGINT,
    collprovider VARCHAR, collisdeterministic BOOLEAN, collencoding INTEGER,
    collcollate VARCHAR, collctype VARCHAR, colliculocale VARCHAR, collversion VARCHAR
);
CREATE TABLE hspq_catalog.pg_enum (
    oid BIGINT, enumtypid BIGINT, enumsortorder FLOAT, enumlabel VARCHAR
);
CREATE TABLE hspq_catalog.pg_range (
    rngtypid BIGINT, rngsubtype BIGINT, rngmultitypid BIGINT, rngcollation BIGINT,
    rngsubopc BIGINT, rngcanonical VARCHAR, rngsubdiff VARCHAR
);
CREATE TABLE hspq_catalog.pg_proc (
    oid BIGINT, proname VARCHAR, pronamespace BIGINT, proowner BIGINT, prolang BIGINT,
    procost FLOAT, prorows FLOAT, provariadic BIGINT, prosupport VARCHAR, prokind VARCHAR,
    prosecdef BOOLEAN, proleakproof BOOLEAN, proisstrict BOOLEAN, proretset BOOLEAN,
    provolatile VARCHAR, proparallel VARCHAR, pronargs SMALLINT, pronargdefaults SMALLINT,
    prorettype BIGINT, proargtypes BIGINT[], proallargtypes BIGINT[], proargmodes VARCHAR[],
    proargnames VARCHAR[], proargdefaults VARCHAR, protrftypes BIGINT[], prosrc VARCHAR,
    probin VARCHAR, prosqlbody VARCHAR, proconfig VARCHAR[], proacl VARCHAR[]
);
-- The aggregates of one double precision argument DuckDB has, which Grafana's query builder
-- offers (it lists them from pg_aggregate); PostgreSQL's oids.
INSERT INTO hspq_catalog.pg_proc (oid, proname, pronamespace, proowner, prokind, pronargs,
    prorettype, proargtypes)
SELECT * FROM (VALUES (2105::BIGINT, 'avg'), (2120, 'max'), (2136, 'min'), (2111, 'sum'),
    (2159, 'stddev'), (2723, 'stddev_pop'), (2713, 'stddev_samp'), (2151, 'variance'),
    (2733, 'var_pop'), (2743, 'var_samp')) a(oid, proname),
    (SELECT 11::BIGINT, 10::BIGINT, 'a', 1::SMALLINT, 701::BIGINT, [701::BIGINT]);
CREATE VIEW hspq_catalog.pg_aggregate AS
SELECT oid AS aggfnoid, 'n' AS aggkind, 0::SMALLINT AS aggnumdirectargs,
    NULL::VARCHAR AS aggtransfn, NULL::VARCHAR AS aggfinalfn, 701::BIGINT AS aggtranstype,
    NULL::VARCHAR AS agginitval
FROM hspq_catalog.pg_proc WHERE prokind = 'a';
CREATE TABLE hspq_catalog.pg_trigger (
    oid BIGINT, tgrelid BIGINT, tgparentid BIGINT, tgname VARCHAR, tgfoid BIGINT,
    tgtype SMALLINT, tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstrrelid BIGINT,
    tgconstrindid BIGINT, tgconstraint BIGINT, tgdeferrable BOOLEAN, tginitdeferred BOOLEAN,
    tgnargs SMALLINT, tgattr SMALLINT[], tgargs VARCHAR, tgqual VARCHAR,
    tgoldtable VARCHAR, tgnewtable VARCHAR
);
CREATE TABLE hspq_catalog.pg_rewrite (
    oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR, ev_enabled VARCHAR,
    is_instead BOOLEAN, ev_qual VARCHAR, ev_action VARCHAR
);
CREATE TABLE hspq_catalog.pg_policy (
    oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN,
    polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR
);
CREATE TABLE hspq_catalog.pg_statistic_ext (
    oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxowner BIGINT,
    stxstattarget INTEGER, stxkeys SMALLINT[], stxkind VARCHAR[], stxexprs VARCHAR
);
CREATE TABLE hspq_catalog.pg_publication (
    oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN, pubinsert BOOLEAN,
    pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN
);
CREATE TABLE hspq_catalog.pg_publication_rel (
    oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[]
);
CREATE TABLE hspq_catalog.pg_publication_namespace (
    oid BIGINT, pnpubid BIGINT, pnnspid BIGINT
);
CREATE TABLE hspq_catalog.pg_partitioned_table (
    partrelid BIGINT, partstrat VARCHAR, partnatts SMALLINT, partdefid BIGINT,
    partattrs SMALLINT[], partclass BIGINT[], partcollation BIGINT[], partexprs VARCHAR
);
CREATE TABLE hspq_catalog.pg_foreign_table (
    ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]
);
CREATE TABLE hspq_catalog.pg_sequence (
    seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, seqmax BIGINT,
    seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN
);
CREATE TABLE hspq_catalog.pg_extension (
    oid BIGINT, extname VARCHAR, extowner BIGINT, extnamespace BIGINT,
    extrelocatable BOOLEAN, extversion VARCHAR, extconfig BIGINT[], extcondition VARCHAR[]
);
CREATE TABLE hspq_catalog.pg_event_trigger (
    oid BIGINT, evtname VARCHAR, evtevent VARCHAR, evtowner BIGINT, evtfoid BIGINT,
    evtenabled VARCHAR, evttags VARCHAR[]
);
CREATE TABLE hspq_catalog.pg_tablespace (
    oid BIGINT, spcname VARCHAR, spcowner BIGINT, spcacl VARCHAR[], spcoptions VARCHAR[]
);
CREATE TABLE hspq_catalog.pg_views (
    schemaname VARCHAR, viewname VARCHAR, viewowner VARCHAR, definition VARCHAR
);
CREATE TABLE hspq_catalog.pg_matviews (
    schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, tablespace VARCHAR,
    hasindexes BOOLEAN, ispopulated BOOLEAN, definition VARCHAR
);
CREATE TABLE hspq_catalog.pg_indexes (
    schemaname VARCHAR, tablename VARCHAR, indexname VARCHAR, tablespace VARCHAR,
    indexdef VARCHAR
);

-- information_schema, as PostgreSQL spells it (data_type 'bigint', not DuckDB's 'BIGINT').
CREATE VIEW hspq_catalog.schemata AS
SELECT hspq_catalog.current_database() AS catalog_name, nspname AS schema_name,
    hspq_catalog.pg_get_userbyid(10) AS schema_owner,
    NULL::VARCHAR AS default_character_set_catalog,
    NULL::VARCHAR AS default_character_set_schema,
    NULL::VARCHAR AS default_character_set_name, NULL::VARCHAR AS sql_path
FROM hspq_catalog.pg_namespace;

CREATE VIEW hspq_catalog.tables AS
SELECT hspq_catalog.current_database() AS table_catalog, 'main' AS table_schema,
    relname AS table_name, 'BASE TABLE' AS table_type,
    NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation,
    NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema,
    NULL::VARCHAR AS user_defined_type_name, 'NO' AS is_insertable_into, 'NO' AS is_typed,
    NULL::VARCHAR AS commit_action
FROM hspq_catalog.relations;

CREATE VIEW hspq_catalog.columns AS
SELECT hspq_catalog.current_database() AS table_catalog, 'main' AS table_schema,
    r.relname AS table_name, a.attname AS column_name, a.attnum::INTEGER AS ordinal_position,
    NULL::VARCHAR AS column_default, 'YES' AS is_nullable, t.data_type,
    NULL::INTEGER AS character_maximum_length, NULL::INTEGER AS character_octet_length,
    CASE t.typname WHEN 'int2' THEN 16 WHEN 'int4' THEN 32 WHEN 'int8' THEN 64
        WHEN 'float4' THEN 24 WHEN 'float8' THEN 53 END AS numeric_precision,
    CASE WHEN t.typname IN ('int2', 'int4', 'int8', 'float4', 'float8') THEN 2 END
        AS numeric_precision_radix,
    CASE WHEN t.typname IN ('int2', 'int4', 'int8') THEN 0 END AS numeric_scale,
    CASE WHEN t.typname IN ('date', 'timestamp', 'timestamptz', 'time') THEN 6 END
        AS datetime_precision,
    NULL::VARCHAR AS interval_type, NULL::INTEGER AS interval_precision,
    NULL::VARCHAR AS character_set_catalog, NULL::VARCHAR AS character_set_schema,
    NULL::VARCHAR AS character_set_name, NULL::VARCHAR AS collation_catalog,
    NULL::VARCHAR AS collation_schema, NULL::VARCHAR AS collation_name,
    NULL::VARCHAR AS domain_catalog, NULL::VARCHAR AS domain_schema,
    NULL::VARCHAR AS domain_name, hspq_catalog.current_database() AS udt_catalog,
    'pg_catalog' AS udt_schema, t.typname AS udt_name, NULL::VARCHAR AS scope_catalog,
    NULL::VARCHAR AS scope_schema, NULL::VARCHAR AS scope_name,
    NULL::INTEGER AS maximum_cardinality, a.attnum::VARCHAR AS dtd_identifier,
    'NO' AS is_self_referencing, 'NO' AS is_identity, NULL::VARCHAR AS identity_generation,
    NULL::VARCHAR AS identity_start, NULL::VARCHAR AS identity_increment,
    NULL::VARCHAR AS identity_maximum, NULL::VARCHAR AS identity_minimum,
    NULL::VARCHAR AS identity_cycle, 'NEVER' AS is_generated,
    NULL::VARCHAR AS generation_expression, 'NO' AS is_updatable
FROM hspq_catalog.attributes a
JOIN hspq_catalog.relations r ON r.oid = a.attrelid
JOIN hspq_catalog.types t ON t.oid = a.atttypid;

CREATE VIEW hspq_catalog.views AS
SELECT NULL::VARCHAR AS table_catalog, NULL::VARCHAR AS table_schema,
    NULL::VARCHAR AS table_name, NULL::VARCHAR AS view_definition,
    NULL::VARCHAR AS check_option, NULL::VARCHAR AS is_updatable,
    NULL::VARCHAR AS is_insertable_into, NULL::VARCHAR AS is_trigger_updatable,
    NULL::VARCHAR AS is_trigger_deletable, NULL::VARCHAR AS is_trigger_insertable_into
WHERE false;

CREATE VIEW hspq_catalog.table_constraints AS
SELECT NULL::VARCHAR AS constraint_catalog, NULL::VARCHAR AS constraint_schema,
    NULL::VARCHAR AS constraint_name, NULL::VARCHAR AS table_catalog,
    NULL::VARCHAR AS table_schema, NULL::VARCHAR AS table_name,
    NULL::VARCHAR AS constraint_type, NULL::VARCHAR AS is_deferrable,
    NULL::VARCHAR AS initially_deferred, NULL::VARCHAR AS enforced,
    NULL::VARCHAR AS nulls_distinct
WHERE false;

CREATE VIEW hspq_catalog.key_column_usage AS
SELECT NULL::VARCHAR AS constraint_catalog, NULL::VARCHAR AS constraint_schema,
    NULL::VARCHAR AS constraint_name, NULL::VARCHAR AS table_catalog,
    NULL::VARCHAR AS table_schema, NULL::VARCHAR AS table_name,
    NULL::VARCHAR AS column_name, NULL::INTEGER AS ordinal_position,
    NULL::INTEGER AS position_in_unique_constraint
WHERE false;

CREATE VIEW hspq_catalog.routines AS
SELECT NULL::VARCHAR AS specific_catalog, NULL::VARCHAR AS specific_schema,
    NULL::VARCHAR AS specific_name, NULL::VARCHAR AS routine_catalog,
    NULL::VARCHAR AS routine_schema, NULL::VARCHAR AS routine_name,
    NULL::VARCHAR AS routine_type, NULL::VARCHAR AS data_type
WHERE false;
