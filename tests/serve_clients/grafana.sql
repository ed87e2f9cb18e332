-- Grafana PostgreSQL data source: statements a Grafana server sends to PostgreSQL for health check and metadata.
-- All Grafana statements are sent WITHOUT bind parameters as single simple-protocol Query messages
-- (pgx: pgxpool.Conn().PgConn().Exec(ctx, sql); lib/pq: db.QueryContext(sql) with no args -> simpleQuery).
-- Placeholders filled: schema 'main', table 'billing', columns 'billing_date' (time), 'billing_value' (value), 'product' (text).
-- Connection set-up sends no SQL: only StartupMessage parameters (see NOTES.md).
-- source: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/pgx/handler_checkhealth.go -> pgxpool.Pool.Ping -> jackc/pgx pgconn/pgconn.go PgConn.Ping (pgx v5; 'Save & test' health check, Grafana 11.x/12.x PGX code path), health check / connection test. Sent as a simple-protocol Query message; the whole statement is an SQL comment, so the server must answer EmptyQueryResponse + ReadyForQuery. pgxpool also sends it before handing out a connection idle >= 1s (ShouldPing default).
-- ping
-- next
-- source: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/sqleng/handler_checkhealth.go -> database/sql DB.Ping -> lib/pq conn_go18.go conn.Ping (v1.10.9) (lib/pq code path, older Grafana / PGX feature flag off), health check / connection test, simple-protocol Query containing only ';' -> EmptyQueryResponse + ReadyForQuery
;
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts getVersion() (commit 12f912ab / eb607c51), called by configuration/useAutoDetectFeatures.ts, server version detection when a data source is created; reads column 'version' (int, e.g. 1600)
SELECT current_setting('server_version_num')::int/100 as version
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts getTimescaleDBVersion(), called by configuration/useAutoDetectFeatures.ts when version >= 906, TimescaleDB detection; reads column 'extversion' (0 rows is fine)
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts showSchemas() (newest stored version, commit 12f912ab), list schemas for the query-builder 'dataset/schema' picker; reads column 'name'
SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts showTables() (datasource.ts fetchTables(); SQL builder table dropdown + code-editor completion), list tables; tables in the search_path are returned bare, others as schema.table; reads column 'table'
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts showTables(schema) (newest stored version, commit 12f912ab), schema = 'main', list tables of one schema; reads column 'table'
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'main'
      ORDER BY 1
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts getSchema(table) via datasource.ts fetchFields(), table = 'billing' (table in search_path), list columns + types of a table; reads columns 'column' and 'type' (information_schema data_type text, mapped by sqlUtil.ts getFieldConfig)
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('billing'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('billing'))[1]
          AND quote_ident(table_name) = (parse_ident('billing'))[2]
        ELSE quote_ident(table_name) = 'billing'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END
-- next
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts getSchema(table) via datasource.ts fetchFields(), table = 'main.billing' (table outside search_path, as returned by showTables()), list columns + types of a schema-qualified table; reads 'column','type'
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('main.billing'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('main.billing'))[1]
          AND quote_ident(table_name) = (parse_ident('main.billing'))[2]
        ELSE quote_ident(table_name) = 'main.billing'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) findMetricTable(), legacy: pick a default table with a timestamp and a float8 column; reads table_name,time_column,value_column

SELECT
	quote_ident(table_name) as table_name,
	( SELECT
	    quote_ident(column_name) as column_name
	  FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name IN ('timestamptz','timestamp')
    ORDER BY ordinal_position LIMIT 1
  ) AS time_column,
  ( SELECT
      quote_ident(column_name) AS column_name
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name='float8'
    ORDER BY ordinal_position LIMIT 1
  ) AS value_column
FROM information_schema.tables t
WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND
  EXISTS
  ( SELECT 1
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name IN ('timestamptz','timestamp')
  ) AND
  EXISTS
  ( SELECT 1
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name='float8'
  )
LIMIT 1
;
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildTableQuery(), legacy: list tables in search_path; reads column 1
SELECT quote_ident(table_name) FROM information_schema.tables WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) ORDER BY table_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildColumnQuery('time'), table='billing', legacy: time-column candidates; reads column 1
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 'billing' AND data_type IN ('timestamp without time zone','timestamp with time zone','bigint','integer','double precision','real') ORDER BY column_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildColumnQuery('metric'), table='billing', legacy: metric-column candidates
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 'billing' AND data_type IN ('text','character','character varying') ORDER BY column_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildColumnQuery('value'), table='billing', timeColumn='period', legacy: value-column candidates
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 'billing' AND data_type IN ('bigint','integer','double precision','real','numeric') AND column_name <> 'period' ORDER BY column_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildColumnQuery('group'), table='main.billing', legacy: group-by candidates, schema-qualified table form
SELECT quote_ident(column_name) FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'billing' AND data_type IN ('text','character','character varying','uuid') ORDER BY column_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildColumnQuery() (no type), table='billing', legacy: all columns
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 'billing' ORDER BY column_name
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildDatatypeQuery('period'), table='billing', legacy: udt_name of the chosen time column; reads column 1
SELECT udt_name FROM information_schema.columns WHERE 
quote_ident(table_schema) IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 'billing' AND column_name = 'period'
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildAggregateQuery(), legacy: list single-argument float8 aggregates from pg_aggregate/pg_proc/pg_type
SELECT DISTINCT proname FROM pg_aggregate INNER JOIN pg_proc ON pg_aggregate.aggfnoid = pg_proc.oid INNER JOIN pg_type ON pg_type.oid=pg_proc.prorettype WHERE pronargs=1 AND typname IN ('float8') AND aggkind='n' ORDER BY 1
-- next
-- source: grafana/grafana public/app/plugins/datasource/postgres/meta_query.ts (legacy Angular query builder, Grafana 7.x-9.x; buildSchemaConstraint with quote_ident as in the 8.x/9.x bundle) buildValueQuery('units'), table='billing', timeColumn='period'; $__timeFilter expanded by the backend macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go: "%s BETWEEN '%s' AND '%s'" with RFC3339Nano UTC times), legacy: distinct values for a WHERE-clause picker (frontend text before expansion: SELECT DISTINCT quote_literal(units) FROM billing WHERE $__timeFilter(period) AND units IS NOT NULL ORDER BY 1 LIMIT 100)
SELECT DISTINCT quote_literal(product) FROM billing WHERE billing_date BETWEEN '2024-01-01T00:00:00Z' AND '2026-01-01T06:00:00Z' AND product IS NOT NULL ORDER BY 1 LIMIT 100
