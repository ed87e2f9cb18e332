//! The extended query protocol: Parse keeps one statement's SQL, Describe asks DuckDB for its
//! columns and parameter types, Bind decodes the parameters by those types, Execute streams the
//! rows as the client reads (a row limit suspends the portal).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::PgWireBackendMessage;
use tracing::debug;

use super::classify::{kind, Kind};
use super::{cursor, guard, params};
use super::{fields, text_schema, user_error, Queries, AS_OF_SETTING};

/// Statements are kept as their SQL; DuckDB prepares them when they run.
pub(super) struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = String;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<String>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // As in PostgreSQL: a prepared statement is one statement.
        if guard::split(sql).len() > 1 {
            return Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        Ok(Some(sql.to_string()))
    }

    fn get_parameter_types(&self, _stmt: &String) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        _stmt: &String,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

/// The type the client declared for parameter `i`, or unknown (DuckDB then infers it).
fn declared_type(statement: &StoredStatement<String>, i: usize) -> Type {
    statement
        .parameter_types
        .get(i)
        .cloned()
        .flatten()
        .unwrap_or(Type::UNKNOWN)
}

/// The database a client asked for at startup (`current_database()` answers it).
pub(super) fn database(client: &impl ClientInfo) -> &str {
    client
        .metadata()
        .get(pgwire::api::METADATA_DATABASE)
        .map_or("hspq", String::as_str)
}

/// Whether parameter `i` came in binary: one code for all, or one per parameter (a client that
/// sent fewer codes than parameters gets text for the rest rather than a dropped connection).
fn binary_parameter(portal: &Portal<String>, i: usize) -> bool {
    match &portal.parameter_format {
        Format::Individual(codes) => codes.get(i) == Some(&1),
        unified => unified.is_binary(i),
    }
}

/// A portal's parameters as text for DuckDB to cast, whatever format the client sent; each
/// decoded by the type the client declared, else the one the server described (`inferred`).
pub(super) fn parameters(
    portal: &Portal<String>,
    inferred: &[Type],
) -> PgWireResult<Vec<Option<String>>> {
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            let t = match declared_type(&portal.statement, i) {
                Type::UNKNOWN => inferred.get(i).cloned().unwrap_or(Type::TEXT),
                declared => declared,
            };
            params::value(bytes, binary_parameter(portal, i), &t)
                .map(Some)
                .map_err(|e| user_error("22P03", format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = String;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement;
        // Binary values are decoded by their type: the one described, for a client that sent
        // no type of its own.
        let undeclared_binary = (0..portal.parameter_len()).any(|i| {
            binary_parameter(portal, i) && declared_type(&portal.statement, i) == Type::UNKNOWN
        });
        let inferred = if undeclared_binary {
            self.parameter_types(sql, database(client)).await?
        } else {
            Vec::new()
        };
        let status = client.transaction_status();
        let response = self
            .answer(
                sql,
                parameters(portal, &inferred)?,
                database(client),
                &portal.result_column_format,
                status,
            )
            .await;
        if status == TransactionStatus::Idle {
            // Outside a block a statement is its own transaction (see the simple handler).
            self.cursors.end_block(response.is_ok());
        }
        let response = response?;
        self.publish_cursor(client.portal_store().as_any());
        match (response, max_rows) {
            // pgwire gathers an Execute's rows before sending them; with no row limit, that is
            // the whole result: send them here as they come.
            (Response::Query(mut result), 0) => {
                let mut sent = 0;
                while let Some(row) = result.data_rows.next().await {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                    sent += 1;
                }
                Ok(Response::Execution(
                    Tag::new(result.command_tag()).with_rows(sent),
                ))
            }
            (response, _) => Ok(response),
        }
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<String>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The formats are not known before Bind: text.
        let (columns, inferred) = self
            .describe(&target.statement, database(client), &Format::UnifiedText)
            .await?;
        let types = inferred
            .into_iter()
            .enumerate()
            .map(|(i, inferred)| match declared_type(target, i) {
                Type::UNKNOWN => inferred,
                declared => declared,
            })
            .collect();
        Ok(DescribeStatementResponse::new(types, columns))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (columns, _) = self
            .describe(
                &portal.statement.statement,
                database(client),
                &portal.result_column_format,
            )
            .await?;
        Ok(DescribePortalResponse::new(columns))
    }
}

impl Queries {
    /// The fields a statement returns and its parameters' types as DuckDB infers them.
    pub(super) async fn describe(
        &self,
        sql: &str,
        database: &str,
        formats: &Format,
    ) -> PgWireResult<(Vec<FieldInfo>, Vec<Type>)> {
        debug!("describe: {sql}");
        match self.with_as_of(kind(sql)) {
            Kind::Query => {
                let (schema, params) = self
                    .session
                    .get(database)
                    .await?
                    .describe(sql.to_string())
                    .await
                    .map_err(|f| user_error(f.code, f.message))?;
                let types: Vec<Type> = params.iter().map(params::pg_type).collect();
                if let Ok(mut inferred) = self.inferred.lock() {
                    inferred.insert(sql.to_string(), types.clone());
                }
                Ok((fields(&schema, formats), types))
            }
            Kind::Setting(name, _) => {
                Ok((fields(&text_schema(&[name.as_str()]), formats), Vec::new()))
            }
            Kind::Cursor(cursor::Command::Fetch {
                name,
                moving: false,
                ..
            }) => {
                let cursor = self
                    .cursors
                    .get(&name)
                    .map_err(|(code, why)| user_error(code, why))?;
                let formats = match cursor.binary {
                    true => &Format::UnifiedBinary,
                    false => formats,
                };
                Ok((fields(&cursor.schema, formats), Vec::new()))
            }
            Kind::Refused(why) => Err(user_error("25006", why)),
            Kind::Invalid(why) => Err(user_error("42601", why)),
            Kind::Failed(code, why) => Err(user_error(code, why)),
            Kind::Noop(_)
            | Kind::Transaction(_)
            | Kind::Copy(_)
            | Kind::AsOf(..)
            | Kind::Reset(_)
            | Kind::Cursor(_) => Ok((Vec::new(), Vec::new())),
        }
    }

    /// `SHOW hspq.as_of` as the setting's value on this connection.
    pub(super) fn with_as_of(&self, kind: Kind) -> Kind {
        match kind {
            Kind::Setting(name, _) if name == AS_OF_SETTING => Kind::Setting(
                name,
                self.as_of
                    .lock()
                    .ok()
                    .and_then(|held| held.clone())
                    .unwrap_or_else(|| "newest".into()),
            ),
            other => other,
        }
    }

    /// The parameter types the server describes for `sql` (asked of DuckDB if it was not
    /// described on this connection yet).
    async fn parameter_types(&self, sql: &str, database: &str) -> PgWireResult<Vec<Type>> {
        let known = self
            .inferred
            .lock()
            .ok()
            .and_then(|inferred| inferred.get(sql).cloned());
        match known {
            Some(types) => Ok(types),
            None => Ok(self.describe(sql, database, &Format::UnifiedText).await?.1),
        }
    }
}
