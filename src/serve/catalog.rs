//! The PostgreSQL catalog clients read before their first query: psql's `\dt` and `\d view`,
//! SQLAlchemy's reflection, JDBC's DatabaseMetaData (Metabase), Grafana's query editor.
//!
//! DuckDB has a `pg_catalog` of its own, but its type oids are not PostgreSQL's and it lacks
//! most functions clients call (`pg_get_userbyid`, `has_table_privilege`, `::regclass`). So
//! every session gets the schema `hspq_catalog` (sql/serve/pg_catalog.sql), filled here with
//! the lake's views and their columns typed exactly as [`encode::pg_type`] sends them, and a
//! client's catalog query is re-spelled to read it: `pg_catalog.pg_class` and
//! `information_schema.columns` become `hspq_catalog.pg_class` and `hspq_catalog.columns`,
//! `pg_catalog.format_type(...)` becomes `hspq_catalog.format_type(...)`, and PostgreSQL's
//! regular-expression operators, collations and `reg*` casts are spelled as DuckDB knows them.

use std::collections::HashSet;
use std::ops::ControlFlow;

use pgwire::api::Type;
use sqlparser::ast::{
    ArrayElemTypeDef, BinaryOperator, CastKind, DataType, Expr, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, SelectItem, Statement, TableAliasColumnDef, TableFactor, Value,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::encode;

/// The schema the catalog lives in.
const SCHEMA: &str = "hspq_catalog";

const CATALOG_SQL: &str = include_str!("../../sql/serve/pg_catalog.sql");

/// The types the catalog knows: every type [`encode::pg_type`] sends, and those clients name
/// in catalog queries.
const TYPES: [Type; 35] = [
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::NUMERIC,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::VARCHAR,
    Type::TEXT,
    Type::BPCHAR,
    Type::NAME,
    Type::CHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::BYTEA,
    Type::JSON,
    Type::OID,
    Type::REGCLASS,
    Type::REGTYPE,
    Type::REGPROC,
    Type::UNKNOWN,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::TEXT_ARRAY,
    Type::DATE_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::OID_ARRAY,
];

/// PostgreSQL's functions DuckDB has under another name (of any number of arguments, which a
/// macro cannot take).
const RENAMED: [(&str, &str); 2] = [
    ("json_build_object", "json_object"),
    ("jsonb_build_object", "json_object"),
];

/// PostgreSQL's functions called without parentheses.
const KEYWORD_FUNCTIONS: [&str; 6] = [
    "current_catalog",
    "current_user",
    "session_user",
    "current_role",
    "current_schema",
    "user",
];

/// Functions that return rows, which PostgreSQL lets a query name after their alias.
const SET_RETURNING: [&str; 4] = ["generate_series", "unnest", "generate_subscripts", "range"];

/// Functions that return one value, which PostgreSQL takes in FROM as a one-row table.
const SCALAR_IN_FROM: [&str; 4] = [
    "string_to_array",
    "regexp_split_to_array",
    "current_schemas",
    "parse_ident",
];

/// The catalog a session installed: the names its queries are re-spelled by.
pub struct Catalog {
    /// `pg_class`, `columns`, ...: what `pg_catalog.X` or `information_schema.X` may mean.
    tables: HashSet<String>,
    /// `format_type`, `pg_get_userbyid`, ...
    functions: HashSet<String>,
}

/// Who the client is, as the catalog answers `current_user` and `current_database()`.
pub struct Identity {
    pub user: String,
    pub database: String,
    /// `version()`'s answer.
    pub version: String,
    /// The settings `current_setting()` and `pg_settings` answer.
    pub settings: Vec<(&'static str, &'static str)>,
}

impl Identity {
    /// Every setting, with those the catalog adds.
    fn settings(&self) -> Vec<(&str, &str)> {
        let mut all = self.settings.clone();
        all.extend([
            ("session_user", self.user.as_str()),
            ("hspq_database", self.database.as_str()),
            ("hspq_version", self.version.as_str()),
        ]);
        all
    }
}

/// The schema and the lookups that answer from constants, as SQL.
fn lookups(who: &Identity, views: &[String]) -> String {
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let case = |key: &str, arms: Vec<(String, String)>| -> String {
        if arms.is_empty() {
            return "NULL".into();
        }
        let arms: String = arms
            .iter()
            .map(|(when, then)| format!(" WHEN {when} THEN {then}"))
            .collect();
        format!("CASE {key}{arms} END")
    };
    let oid_key = "TRY_CAST(o AS BIGINT)";
    let name_key = "hspq_catalog.parse_ident_last(n::VARCHAR)";
    let type_names = || {
        TYPES
            .iter()
            .map(|t| (t.oid().to_string(), text(&spelling(t).0)))
            .collect::<Vec<_>>()
    };
    let type_oids: Vec<(String, String)> = TYPES
        .iter()
        .flat_map(|t| {
            let mut names = vec![t.name().to_string(), spelling(t).0];
            names.dedup();
            names.into_iter().map(|n| (text(&n), t.oid().to_string()))
        })
        .collect();
    let settings = who
        .settings()
        .into_iter()
        .map(|(n, v)| (text(n), text(v)))
        .collect();
    let relation_oids = views
        .iter()
        .map(|v| (text(v), relation_oid(v).to_string()))
        .collect();
    let relation_names = views
        .iter()
        .map(|v| (relation_oid(v).to_string(), text(v)))
        .collect();
    format!(
        "CREATE SCHEMA {SCHEMA};
         -- The last part of a possibly qualified, possibly quoted name: pg_catalog.\"int4\".
         CREATE MACRO {SCHEMA}.parse_ident_last(n) AS
             replace(regexp_extract(n, '(\"[^\"]*\"|[^.]*)$'), '\"', '');
         CREATE MACRO {SCHEMA}.setting_of(n) AS {};
         CREATE MACRO {SCHEMA}.format_type(o, typmod) AS {};
         CREATE MACRO {SCHEMA}.regtype_name(o) AS {};
         CREATE MACRO {SCHEMA}.regtype_oid(n) AS {};
         CREATE MACRO {SCHEMA}.regclass_oid(n) AS {};
         CREATE MACRO {SCHEMA}.regclass_name(o) AS {};",
        case("lower(n)", settings),
        case(oid_key, type_names()),
        case(oid_key, type_names()),
        case(name_key, type_oids),
        case(name_key, relation_oids),
        case(oid_key, relation_names),
    )
}

/// A view's name as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The element type of an array type.
fn element(t: &Type) -> Option<&Type> {
    match t.kind() {
        postgres_types::Kind::Array(e) => Some(e),
        _ => None,
    }
}

impl Catalog {
    /// Creates the catalog in `conn`, describing the views it has now.
    pub fn install(conn: &duckdb::Connection, who: &Identity) -> Result<Catalog, duckdb::Error> {
        let views: Vec<String> = conn
            .prepare(
                // The session's own catalog: other sessions' are in the same database.
                "SELECT view_name FROM duckdb_views() WHERE NOT internal \
                 AND database_name = current_database() AND schema_name = 'main' \
                 ORDER BY view_name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut columns = Vec::new();
        for view in &views {
            let mut select = conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quoted(view)))?;
            drop(select.query_arrow([])?);
            for (i, field) in select.schema().fields().iter().enumerate() {
                let t = encode::pg_type(field.data_type());
                columns.push((
                    relation_oid(view),
                    field.name().clone(),
                    i as i16 + 1,
                    t.oid(),
                ));
            }
        }
        conn.execute_batch(&lookups(who, &views))?;
        conn.execute_batch(CATALOG_SQL)?;
        let mut types =
            conn.prepare("INSERT INTO hspq_catalog.types VALUES (?, ?, ?, ?, ?, ?, ?, ?)")?;
        for t in &TYPES {
            let (formatted, data_type) = spelling(t);
            types.execute(duckdb::params![
                t.oid(),
                t.name(),
                formatted,
                data_type,
                element(t).map_or(0, |e| e.oid()),
                TYPES
                    .iter()
                    .find(|a| element(a) == Some(t))
                    .map_or(0, |a| a.oid()),
                length(t),
                category(t)
            ])?;
        }
        let mut relation = conn.prepare("INSERT INTO hspq_catalog.relations VALUES (?, ?)")?;
        for view in &views {
            relation.execute(duckdb::params![relation_oid(view), view])?;
        }
        let mut attribute =
            conn.prepare("INSERT INTO hspq_catalog.attributes VALUES (?, ?, ?, ?)")?;
        for (oid, name, number, type_oid) in &columns {
            attribute.execute(duckdb::params![oid, name, number, type_oid])?;
        }
        let mut setting = conn.prepare("INSERT INTO hspq_catalog.settings VALUES (?, ?)")?;
        for (name, value) in who.settings() {
            setting.execute([name, value])?;
        }
        let names = |sql: &str| -> Result<HashSet<String>, duckdb::Error> {
            conn.prepare(sql)?
                .query_map([SCHEMA], |r| r.get(0))?
                .collect()
        };
        Ok(Catalog {
            tables: names(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? \
                   AND database_name = current_database() \
                 UNION SELECT view_name FROM duckdb_views() WHERE schema_name = $1 \
                   AND database_name = current_database()",
            )?,
            functions: names(
                "SELECT DISTINCT function_name FROM duckdb_functions() WHERE schema_name = ? \
                   AND database_name = current_database()",
            )?,
        })
    }

    /// `sql` as DuckDB runs it against the catalog, when it reads the catalog or calls one of
    /// PostgreSQL's functions; `sql` itself otherwise (also when it does not parse as
    /// PostgreSQL's SQL: then it is DuckDB's, and DuckDB says what is wrong with it).
    pub fn respell<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        let lower = sql.to_ascii_lowercase();
        let words: HashSet<&str> = lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let worth_it = lower.contains('~')
            || lower.contains("::reg")
            || words.iter().any(|w| {
                matches!(*w, "pg_catalog" | "information_schema" | "collate")
                    || KEYWORD_FUNCTIONS.contains(w)
                    || self.tables.contains(*w)
                    || self.functions.contains(*w)
            });
        if !worth_it {
            return sql.into();
        }
        let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
            return sql.into();
        };
        let mut respeller = Respeller { catalog: self };
        let _ = statements.visit(&mut respeller);
        statements
            .iter()
            .map(Statement::to_string)
            .collect::<Vec<_>>()
            .join(";\n")
            .into()
    }
}

/// A relation's oid: the same for a view's name in every session and every run, so a client
/// may look a view up by the oid it was told before.
fn relation_oid(name: &str) -> i64 {
    // FNV-1a, folded above the oids PostgreSQL reserves for its own objects (< 16384).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    16_384 + (hash % 1_000_000_000) as i64
}

/// How `format_type()` and `information_schema.columns.data_type` spell a type.
fn spelling(t: &Type) -> (String, String) {
    let base = |t: &Type| -> &'static str {
        match *t {
            Type::BOOL => "boolean",
            Type::INT2 => "smallint",
            Type::INT4 => "integer",
            Type::INT8 => "bigint",
            Type::FLOAT4 => "real",
            Type::FLOAT8 => "double precision",
            Type::VARCHAR => "character varying",
            Type::BPCHAR => "character",
            Type::CHAR => "\"char\"",
            Type::TIME => "time without time zone",
            Type::TIMESTAMP => "timestamp without time zone",
            Type::TIMESTAMPTZ => "timestamp with time zone",
            _ => "",
        }
    };
    let name = |t: &Type| match base(t) {
        "" => t.name().to_string(),
        spelled => spelled.to_string(),
    };
    match t.kind() {
        postgres_types::Kind::Array(e) => (format!("{}[]", name(e)), "ARRAY".into()),
        _ => (name(t), name(t)),
    }
}

/// `typlen`: bytes of a fixed-length type, -1 for a variable one.
fn length(t: &Type) -> i16 {
    match *t {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4
        | Type::FLOAT4
        | Type::DATE
        | Type::OID
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGPROC => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL => 16,
        Type::NAME => 64,
        _ => -1,
    }
}

/// `typcategory`, which drivers read to tell numbers, strings, dates and arrays apart.
fn category(t: &Type) -> &'static str {
    match *t {
        _ if matches!(t.kind(), postgres_types::Kind::Array(_)) => "A",
        Type::BOOL => "B",
        Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::NUMERIC
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::OID
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGPROC => "N",
        Type::VARCHAR | Type::TEXT | Type::BPCHAR | Type::NAME | Type::CHAR => "S",
        Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
        Type::INTERVAL => "T",
        Type::UNKNOWN => "X",
        _ => "U",
    }
}

/// Re-spells one parsed statement for DuckDB and the catalog.
struct Respeller<'c> {
    catalog: &'c Catalog,
}

fn ident_is(part: &ObjectNamePart, name: &str) -> bool {
    matches!(part, ObjectNamePart::Identifier(i) if i.value.eq_ignore_ascii_case(name))
}

fn last_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.value.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn in_catalog(name: &str) -> ObjectName {
    ObjectName(vec![
        ObjectNamePart::Identifier(Ident::new(SCHEMA)),
        ObjectNamePart::Identifier(Ident::new(name)),
    ])
}

/// An expression from SQL text; `None` if it does not parse.
fn expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The `reg*` type a cast is to, if it is one: `regclass`, `pg_catalog.regtype`, ...
fn reg_cast(data_type: &DataType) -> Option<String> {
    match data_type {
        DataType::Custom(name, _) => {
            let last = last_name(name);
            last.starts_with("reg").then_some(last)
        }
        DataType::Regclass => Some("regclass".into()),
        _ => None,
    }
}

/// PostgreSQL's types DuckDB lacks, as the DuckDB type that holds them.
fn duckdb_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Custom(name, _) => match last_name(name).as_str() {
            // oid is PostgreSQL's unsigned 32 bits, as UINTEGER: a parameter cast to it is
            // described as oid again (see `super::params`), a type every driver knows (asyncpg
            // introspects a type it lacks with a query whose own parameter is `$1::oid[]`: as
            // int8[] it asked again forever).
            "oid" => Some(DataType::Custom(
                ObjectName(vec![ObjectNamePart::Identifier(Ident::new("UINTEGER"))]),
                Vec::new(),
            )),
            "xid" | "cid" | "regnamespace" | "regrole" | "regprocedure" | "regoper" => {
                Some(DataType::BigInt(None))
            }
            "name" | "char" | "bpchar" | "int2vector" | "oidvector" | "pg_node_tree" | "text" => {
                Some(DataType::Varchar(None))
            }
            // pg_catalog.int4 and the like: DuckDB knows the type, not the schema.
            last if name.0.len() > 1 => Some(DataType::Custom(
                ObjectName(vec![ObjectNamePart::Identifier(Ident::new(last))]),
                Vec::new(),
            )),
            _ => None,
        },
        // `$1::oid[]` (asyncpg's type introspection): the array of the element's type.
        DataType::Array(ArrayElemTypeDef::SquareBracket(element, size)) => duckdb_type(element)
            .map(|e| DataType::Array(ArrayElemTypeDef::SquareBracket(Box::new(e), *size))),
        _ => None,
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Text | DataType::Varchar(_) | DataType::CharacterVarying(_)
    ) || matches!(data_type, DataType::Custom(n, _) if last_name(n) == "text")
}

/// `oid::regclass` or `oid::regtype` cast to text: the relation's or type's name.
fn reg_name(e: &Expr) -> Option<Expr> {
    let Expr::Cast {
        expr: oid,
        data_type,
        ..
    } = e
    else {
        return None;
    };
    match reg_cast(data_type).as_deref() {
        Some("regclass") => expr(&format!("{SCHEMA}.regclass_name({oid})")),
        Some("regtype") => expr(&format!("{SCHEMA}.regtype_name({oid})")),
        _ => None,
    }
}

impl VisitorMut for Respeller<'_> {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut sqlparser::ast::Select) -> ControlFlow<()> {
        // A column is named after the function it calls, as PostgreSQL names it: `version`,
        // not `hspq_catalog."version"()`.
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                let name = last_name(&f.name);
                if self.catalog.functions.contains(&name) {
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Function(f.clone()),
                        alias: Ident::new(name),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // A function in FROM: PostgreSQL names its one column after the table's alias
        // (`generate_series(1, 3) AS i`, then `s[i]`), and takes a scalar one, as one row.
        let TableFactor::Table {
            name,
            alias: Some(alias),
            args: Some(args),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if !alias.columns.is_empty() {
            return ControlFlow::Continue(());
        }
        let function = last_name(name);
        if SET_RETURNING.contains(&function.as_str()) {
            alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
        } else if SCALAR_IN_FROM.contains(&function.as_str()) {
            let args: Vec<String> = args.args.iter().map(ToString::to_string).collect();
            let select = format!("SELECT {function}({}) AS {}", args.join(", "), alias.name);
            if let Ok(subquery) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&select)
                .and_then(|mut p| p.parse_query())
            {
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery,
                    alias: Some(alias.clone()),
                    sample: None,
                };
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let name = last_name(relation);
        let parts = &relation.0;
        let qualified_by = |schema: &str| parts.len() == 2 && ident_is(&parts[0], schema);
        let known = self.catalog.tables.contains(&name);
        if known
            && (qualified_by("pg_catalog")
                || qualified_by("information_schema")
                || (parts.len() == 1 && name.starts_with("pg_")))
        {
            *relation = in_catalog(&name);
        } else if qualified_by("pg_catalog") {
            // pg_catalog.unnest(...), pg_catalog.generate_series(...): DuckDB's own.
            relation.0.remove(0);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // What replaces an expression is re-spelled in turn (a cast dropped leaves the function
        // it cast); its children are visited after.
        while let Some(replacement) = self.respelled(e) {
            *e = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// pg_type's columns that name functions (PostgreSQL's regproc).
const REGPROC_COLUMNS: [&str; 7] = [
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
];

impl Respeller<'_> {
    /// What replaces `e`, if anything; renames in place what keeps its shape.
    fn respelled(&self, e: &mut Expr) -> Option<Expr> {
        match e {
            Expr::Collate { expr, .. } => Some((**expr).clone()),
            Expr::BinaryOp { left, op, right } => {
                let op_name = match op {
                    BinaryOperator::PGCustomBinaryOperator(parts) => {
                        parts.last().cloned().unwrap_or_default()
                    }
                    BinaryOperator::PGRegexMatch => "~".into(),
                    BinaryOperator::PGRegexIMatch => "~*".into(),
                    BinaryOperator::PGRegexNotMatch => "!~".into(),
                    BinaryOperator::PGRegexNotIMatch => "!~*".into(),
                    _ => String::new(),
                };
                // PostgreSQL's `~` finds the pattern anywhere; DuckDB's must match it all.
                let regex = |not: &str, flags: &str| {
                    expr(&format!("{not}regexp_matches({left}, {right}{flags})"))
                };
                // pg_type's function columns are regproc: `typreceive != 0` asks whether there
                // is one (ADBC's type discovery). Here they are names, '-' for none.
                let function_column = |e: &Expr| {
                    let name = match e {
                        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                        Expr::CompoundIdentifier(parts) => parts
                            .last()
                            .map(|i| i.value.to_ascii_lowercase())
                            .unwrap_or_default(),
                        _ => return false,
                    };
                    REGPROC_COLUMNS.contains(&name.as_str())
                };
                if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq)
                    && function_column(left)
                    && right.to_string() == "0"
                {
                    return expr(&format!("{left} {op} '-'"));
                }
                match op_name.as_str() {
                    "~" => regex("", ""),
                    "~*" => regex("", ", 'i'"),
                    "!~" => regex("NOT ", ""),
                    "!~*" => regex("NOT ", ", 'i'"),
                    // OPERATOR(pg_catalog.=) and the like: the operator itself.
                    other if matches!(op, BinaryOperator::PGCustomBinaryOperator(_)) => {
                        expr(&format!("({left}) {other} ({right})"))
                    }
                    _ => None,
                }
            }
            Expr::Cast {
                kind: CastKind::DoubleColon | CastKind::Cast,
                expr: inner,
                data_type,
                ..
            } => {
                if let Some(reg) = reg_cast(data_type) {
                    let literal = matches!(
                        &**inner,
                        Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))
                    );
                    match (reg.as_str(), literal) {
                        ("regclass", true) => expr(&format!("{SCHEMA}.regclass_oid({inner})")),
                        ("regtype", true) => expr(&format!("{SCHEMA}.regtype_oid({inner})")),
                        // typinput = 'pg_catalog.array_in'::regproc: the catalog holds names.
                        (_, true) => expr(&inner.to_string().replace("pg_catalog.", "")),
                        _ => Some((**inner).clone()),
                    }
                } else if let Some(name) = is_text(data_type).then(|| reg_name(inner)).flatten() {
                    Some(name)
                } else if let Some(t) = duckdb_type(data_type) {
                    let mut cast = e.clone();
                    if let Expr::Cast { data_type, .. } = &mut cast {
                        *data_type = t;
                    }
                    Some(cast)
                } else {
                    None
                }
            }
            Expr::Function(f) => {
                let name = last_name(&f.name);
                let qualified_by_pg = f.name.0.len() == 2
                    && (ident_is(&f.name.0[0], "pg_catalog")
                        || ident_is(&f.name.0[0], "information_schema"));
                if self.catalog.functions.contains(&name)
                    && (f.name.0.len() == 1 || qualified_by_pg)
                {
                    f.name = in_catalog(&name);
                    // `current_user` and `session_user` are called without parentheses.
                    if matches!(f.args, FunctionArguments::None) {
                        f.args = FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: Vec::new(),
                            clauses: Vec::new(),
                        });
                    }
                } else if qualified_by_pg {
                    f.name.0.remove(0);
                }
                if let Some((_, duckdb)) = RENAMED.iter().find(|(pg, _)| *pg == name) {
                    f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(*duckdb))]);
                }
                None
            }
            // current_catalog, current_user, user: functions PostgreSQL calls without parentheses.
            Expr::Identifier(word)
                if word.quote_style.is_none()
                    && KEYWORD_FUNCTIONS.contains(&word.value.to_ascii_lowercase().as_str()) =>
            {
                expr(&format!("{SCHEMA}.{}()", word.value.to_ascii_lowercase()))
            }
            Expr::CompoundIdentifier(parts) if parts.len() == 3 => {
                // pg_catalog.pg_class.relname, as SQLAlchemy spells a column.
                let table = parts[1].value.to_ascii_lowercase();
                if (parts[0].value.eq_ignore_ascii_case("pg_catalog")
                    || parts[0].value.eq_ignore_ascii_case("information_schema"))
                    && self.catalog.tables.contains(&table)
                {
                    parts[0] = Ident::new(SCHEMA);
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() -> (duckdb::Connection, Catalog) {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIEW lake_files AS SELECT 'billing' AS dataset, 10::BIGINT AS rows, \
             2048::BIGINT AS bytes; \
             CREATE VIEW billing AS SELECT 2026::BIGINT AS year, 'PAT' AS product, \
             DATE '2026-01-31' AS billing_date, ['a'] AS tags;",
        )
        .unwrap();
        let who = Identity {
            user: "ana".into(),
            database: "lake".into(),
            version: "PostgreSQL 14.0 (test)".into(),
            settings: vec![("server_version_num", "140000")],
        };
        let catalog = Catalog::install(&conn, &who).unwrap();
        (conn, catalog)
    }

    fn answer(conn: &duckdb::Connection, catalog: &Catalog, sql: &str) -> Vec<String> {
        let sql = catalog.respell(sql);
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .map(|v| v.unwrap().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_query_of_the_lake_is_left_as_it_is() {
        let (_, catalog) = installed();
        let sql = "select product, sum(year) from billing where product like 'P%' group by 1";
        assert!(matches!(
            catalog.respell(sql),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn catalog_queries_answer_as_postgresql_would() {
        let (conn, catalog) = installed();
        let q = |sql| answer(&conn, &catalog, sql);
        // PostgreSQL's ~ finds the pattern anywhere; DuckDB's would need it all.
        assert_eq!(q("select ('abc' ~ 'b')::text"), ["true"]);
        assert_eq!(
            q(
                "select c.relname from pg_catalog.pg_class c where c.relname \
               OPERATOR(pg_catalog.~) '^(bill.*)$' COLLATE pg_catalog.default"
            ),
            ["billing"]
        );
        // Columns typed as the server sends them, spelled as PostgreSQL spells them.
        assert_eq!(
            q(
                "select a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) \
               from pg_catalog.pg_attribute a where a.attrelid = 'billing'::regclass \
               order by a.attnum"
            ),
            [
                "year bigint",
                "product character varying",
                "billing_date date",
                "tags text[]"
            ]
        );
        // A caller's unqualified `oid` is its own table's, not the lookup's.
        assert_eq!(
            q("select oid::regtype::text from pg_type where typname = 'int8'"),
            ["bigint"]
        );
        assert_eq!(
            q("select current_user || ' ' || current_database() || ' ' || version()"),
            ["ana lake PostgreSQL 14.0 (test)"]
        );
        assert_eq!(
            q("select (pg_catalog.pg_total_relation_size('billing'::regclass))::text"),
            ["2048"]
        );
        assert_eq!(
            q("select data_type from information_schema.columns \
               where table_name = 'billing' and column_name = 'billing_date'"),
            ["date"]
        );
        // ADBC's type discovery compares regproc columns with 0.
        assert_eq!(
            q(
                "select count(*)::text from pg_catalog.pg_type where (typreceive != 0 or \
               typsend != 0) and typtype != 'r' and typreceive::text != 'array_recv' \
               and typname = 'int8'"
            ),
            ["1"]
        );
        // pgAdmin's and DBeaver's.
        assert_eq!(
            q("select pg_catalog.set_config('bytea_output', 'hex', false)"),
            ["hex"]
        );
        assert_eq!(
            q("select coalesce(pg_catalog.pg_get_partkeydef('billing'::regclass), 'none')"),
            ["none"]
        );
        // The version a connection reads is changed by SET only, never ignored in silence.
        let sql = catalog.respell("select set_config('HSPQ.AS_OF', 'v1', false)");
        let refused = conn.prepare(&sql).and_then(|mut s| s.query([]).map(|_| ()));
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("use SET hspq.as_of")),
            "{refused:?}"
        );
    }
}
