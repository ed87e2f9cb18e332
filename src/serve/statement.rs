//! Answering a statement in its session and transaction block, and the simple query protocol
//! (a message of several statements, each answered in turn).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::PgWireBackendMessage;
use tracing::{debug, warn};

use super::classify::{kind, Block, Kind, Scope, BLOCK_FAILED, BLOCK_OK, BLOCK_RECOVERED};
use super::extended::database;
use super::stream::OPEN_RESULTS;
use super::{cursor, guard, session, stream};
use super::{
    fields, rows, text_schema, user_error, BlockAsOf, Queries, Savepoint, COPY_ROWS_AHEAD,
};
use crate::lake::log::AsOf;

impl Queries {
    /// Runs one statement with its parameters, within the time limit.
    pub(super) async fn answer(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        use std::sync::atomic::Ordering::SeqCst;
        // COMMIT of a failed block rolls it back.
        let rollback = status == TransactionStatus::Error
            || matches!(kind(sql), Kind::Transaction(Block::Rollback));
        let answer = self
            .answer_in_block(sql, params, database, formats, status)
            .await;
        match &answer {
            Err(_) if status != TransactionStatus::Idle => self.block.store(BLOCK_FAILED, SeqCst),
            Ok(Response::TransactionStart(_)) => self.block.store(BLOCK_OK, SeqCst),
            Ok(Response::TransactionEnd(_)) => {
                self.block.store(BLOCK_OK, SeqCst);
                self.cursors.end_block(!rollback);
            }
            _ => {}
        }
        answer
    }

    /// Starts a read whose rows come as the client reads them, within the time limit (a
    /// session has at most [`OPEN_RESULTS`] open).
    pub(super) async fn open(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
    ) -> PgWireResult<stream::Batches> {
        let session = self.session.get(database).await?;
        if session.open_results() >= OPEN_RESULTS {
            return Err(user_error(
                "53000",
                format!(
                    "this connection has {OPEN_RESULTS} results open (portals or cursors not \
                     read to their end): close some (CLOSE, or the driver's close) first"
                ),
            ));
        }
        let starting = session.open(sql.to_string(), params, self.timeout);
        match tokio::time::timeout(self.timeout, starting).await {
            Ok(started) => started.map_err(|f| user_error(f.code, f.message)),
            Err(_) => {
                session.interrupt();
                Err(self.timed_out())
            }
        }
    }

    /// A cursor statement (see [`cursor`]).
    pub(super) async fn cursor(
        &self,
        command: cursor::Command,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        let refused = |(code, why): cursor::Refusal| user_error(code, why);
        match command {
            cursor::Command::Declare {
                hold: false, name, ..
            } if status == TransactionStatus::Idle => Err(user_error(
                "25P01",
                format!(
                    "DECLARE CURSOR can only be used in transaction blocks: BEGIN first, or \
                     declare \"{name}\" WITH HOLD"
                ),
            )),
            cursor::Command::Declare {
                name,
                query,
                hold,
                binary,
            } => {
                let batches = self.open(&query, params, database).await?;
                let schema = batches.schema.clone();
                let formats = match binary {
                    true => Format::UnifiedBinary,
                    false => Format::UnifiedText,
                };
                let rows = stream::Rows::new(Arc::new(fields(&schema, &formats)), batches);
                let id = self
                    .cursors
                    .declare(&name, schema, rows, binary, hold)
                    .map_err(refused)?;
                if let Ok(mut declared) = self.declared.lock() {
                    *declared = Some(name.clone());
                }
                if hold {
                    // Left unread for --query-timeout, it closes.
                    let (cursors, idle) = (Arc::downgrade(&self.cursors), self.timeout);
                    let every = idle.clamp(Duration::from_millis(100), Duration::from_secs(10));
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(every).await;
                            match cursors.upgrade() {
                                Some(cursors) if !cursors.expire(idle, id) => {}
                                _ => break,
                            }
                        }
                    });
                }
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            cursor::Command::Fetch {
                name,
                count,
                moving,
            } => {
                let cursor = self.cursors.get(&name).map_err(refused)?;
                // Held by a portal left suspended in the middle of a FETCH of it.
                let mut rows = cursor.rows.clone().try_lock_owned().map_err(|_| {
                    user_error(
                        "55006",
                        format!(
                            "cursor \"{name}\" is in use by a FETCH not read to its end \
                             (a suspended portal): read or close that first"
                        ),
                    )
                })?;
                let wanted = match count {
                    cursor::Count::Rows(n) => n,
                    cursor::Count::All => u64::MAX,
                };
                if moving {
                    let skipped = rows.skip(wanted).await?;
                    return Ok(Response::Execution(
                        Tag::new("MOVE").with_rows(skipped as usize),
                    ));
                }
                let formats = match cursor.binary {
                    true => &Format::UnifiedBinary,
                    false => formats,
                };
                let fields = Arc::new(fields(&cursor.schema, formats));
                rows.set_fields(fields.clone());
                // The rows go as the client reads them, the cursor held until the last.
                let sent =
                    futures_util::stream::unfold((rows, wanted), |(mut rows, left)| async move {
                        if left == 0 {
                            return None;
                        }
                        let row = rows.next().await?;
                        Some((row, (rows, left - 1)))
                    });
                let mut response = QueryResponse::new(fields, sent);
                response.set_command_tag("FETCH");
                Ok(Response::Query(response))
            }
            cursor::Command::Close(name) => {
                self.cursors.close(name.as_deref()).map_err(refused)?;
                Ok(Response::Execution(Tag::new(match name {
                    Some(_) => "CLOSE CURSOR",
                    None => "CLOSE CURSOR ALL",
                })))
            }
        }
    }

    /// Makes the cursor just declared a portal of the protocol as well, as in PostgreSQL:
    /// psycopg 3 describes a cursor it declared as a portal of its name. The portal reads the
    /// cursor (`FETCH ALL FROM` it); once the cursor is closed, it says so.
    pub(super) fn publish_cursor(&self, store: &dyn std::any::Any) {
        let Some(name) = self.declared.lock().ok().and_then(|mut d| d.take()) else {
            return;
        };
        let Some(store) = store.downcast_ref::<pgwire::api::store::MemPortalStore<String>>() else {
            return;
        };
        let mut portal = Portal::default();
        portal.statement = Arc::new(StoredStatement::new(
            name.clone(),
            format!("FETCH ALL FROM \"{}\"", name.replace('"', "\"\"")),
            Vec::new(),
        ));
        portal.name = name;
        store.put_portal(Arc::new(portal));
    }

    /// Makes the connection read the version `text` names (`None`: the newest), in the open
    /// block if one is (see [`Self::block_as_of`]).
    async fn set_as_of(
        &self,
        text: Option<String>,
        database: &str,
        status: TransactionStatus,
    ) -> PgWireResult<()> {
        let held = self.as_of.lock().ok().and_then(|held| held.clone());
        if held == text {
            return Ok(());
        }
        let as_of = match text.as_deref().map(str::parse::<AsOf>) {
            None => None,
            Some(Ok(as_of)) => Some(as_of),
            Some(Err(why)) => return Err(user_error("22023", why.to_string())),
        };
        if as_of.is_some() && !self.session.past_versions {
            return Err(user_error(
                "0A000",
                "hspq serve reads past versions of a lake on local disk only: serve a copy of \
                 the S3 lake (aws s3 sync) to read them",
            ));
        }
        let session = self.session.get(database).await?;
        session
            .as_of(as_of)
            .await
            .map_err(|f| user_error(f.code, f.message))?;
        // The value before the block, for its end, once a block changes it.
        self.block_as_of(status, |_| {});
        if let Ok(mut held) = self.as_of.lock() {
            *held = text;
        }
        Ok(())
    }

    /// In an open block, what `hspq.as_of` goes back to at its end (the value before it, or
    /// after its last session-wide SET at a commit), changed by `change`; outside one, nothing.
    fn block_as_of(&self, status: TransactionStatus, change: impl FnOnce(&mut BlockAsOf)) {
        if status == TransactionStatus::Idle {
            return;
        }
        let held = self.as_of.lock().ok().and_then(|held| held.clone());
        if let Ok(mut kept) = self.as_of_block.lock() {
            change(kept.get_or_insert_with(|| BlockAsOf {
                before: held.clone(),
                at_commit: held,
                savepoints: Vec::new(),
            }));
        }
    }

    /// A block ends: `hspq.as_of` becomes what its last session-wide SET made it (`committed`)
    /// or what it was before the block (a rollback), as in PostgreSQL.
    async fn end_block_as_of(&self, committed: bool, database: &str) {
        let Some(kept) = self
            .as_of_block
            .lock()
            .ok()
            .and_then(|mut kept| kept.take())
        else {
            return;
        };
        let target = if committed {
            kept.at_commit
        } else {
            kept.before
        };
        if let Err(e) = self
            .set_as_of(target.clone(), database, TransactionStatus::Idle)
            .await
        {
            // The version it goes back to is no longer kept (a sync's clean-up came between).
            warn!("cannot read {target:?} again after a block: the newest is read ({e})");
            let _ = self
                .set_as_of(None, database, TransactionStatus::Idle)
                .await;
        }
    }

    /// `ROLLBACK TO SAVEPOINT name`: `hspq.as_of` as it was when the savepoint was made (and
    /// what a commit would keep), as PostgreSQL undoes the settings made after it. The
    /// savepoint stays; those after it go.
    async fn to_savepoint(&self, name: String, database: &str) -> PgWireResult<()> {
        let saved = self.as_of_block.lock().ok().and_then(|mut kept| {
            let savepoints = &mut kept.as_mut()?.savepoints;
            let at = savepoints.iter().rposition(|s| s.name == name)?;
            savepoints.truncate(at + 1);
            let savepoint = &savepoints[at];
            Some((savepoint.held.clone(), savepoint.at_commit.clone()))
        });
        let Some((held, at_commit)) = saved else {
            return Ok(());
        };
        self.set_as_of(held, database, TransactionStatus::Transaction)
            .await?;
        self.block_as_of(TransactionStatus::Transaction, |kept| {
            kept.at_commit = at_commit
        });
        Ok(())
    }

    /// A statement stopped at --query-timeout.
    pub(super) fn timed_out(&self) -> PgWireError {
        let failure = session::Failure::timed_out(self.timeout);
        user_error(failure.code, failure.message)
    }

    /// [`Self::answer`], given whether a transaction block is open or failed.
    async fn answer_in_block(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        database: &str,
        formats: &Format,
        status: TransactionStatus,
    ) -> PgWireResult<Response> {
        debug!("statement: {sql}");
        let kind = self.with_as_of(kind(sql));
        let block = self.block.load(std::sync::atomic::Ordering::SeqCst);
        let aborted = status != TransactionStatus::Idle
            && (block == BLOCK_FAILED
                || (status == TransactionStatus::Error && block != BLOCK_RECOVERED));
        if aborted
            && !matches!(
                kind,
                Kind::Transaction(Block::Commit | Block::Rollback | Block::RollbackToSavepoint)
            )
        {
            // As PostgreSQL: a failed block takes nothing but its end.
            return Err(user_error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        match kind {
            Kind::Transaction(Block::Begin) => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            // COMMIT of a failed block rolls it back, and says so.
            Kind::Transaction(Block::Commit) if status == TransactionStatus::Error => {
                self.end_block_as_of(false, database).await;
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Transaction(Block::Commit) => {
                self.end_block_as_of(true, database).await;
                Ok(Response::TransactionEnd(Tag::new("COMMIT")))
            }
            Kind::Transaction(Block::Rollback) => {
                self.end_block_as_of(false, database).await;
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Transaction(Block::RollbackToSavepoint) if status == TransactionStatus::Idle => {
                Err(user_error(
                    "25P01",
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                ))
            }
            Kind::Transaction(Block::RollbackToSavepoint) => {
                self.block
                    .store(BLOCK_RECOVERED, std::sync::atomic::Ordering::SeqCst);
                self.to_savepoint(savepoint_name(sql), database).await?;
                Ok(Response::Execution(Tag::new("ROLLBACK")))
            }
            Kind::Noop("SAVEPOINT") if status != TransactionStatus::Idle => {
                let (name, held) = (
                    savepoint_name(sql),
                    self.as_of.lock().ok().and_then(|h| h.clone()),
                );
                self.block_as_of(status, |kept| {
                    let at_commit = kept.at_commit.clone();
                    kept.savepoints.push(Savepoint {
                        name,
                        held,
                        at_commit,
                    });
                });
                Ok(Response::Execution(Tag::new("SAVEPOINT")))
            }
            Kind::Noop("RELEASE") => {
                let name = savepoint_name(sql);
                self.block_as_of(status, |kept| {
                    if let Some(at) = kept.savepoints.iter().rposition(|s| s.name == name) {
                        kept.savepoints.truncate(at);
                    }
                });
                Ok(Response::Execution(Tag::new("RELEASE")))
            }
            Kind::Noop("EMPTY") => Ok(Response::EmptyQuery),
            Kind::Noop(tag) => Ok(Response::Execution(Tag::new(tag))),
            Kind::Refused(why) => Err(user_error("25006", why)),
            Kind::Invalid(why) => Err(user_error("42601", why)),
            Kind::Failed(code, why) => Err(user_error(code, why)),
            Kind::Cursor(command) => {
                self.cursor(command, params, database, formats, status)
                    .await
            }
            Kind::AsOf(text, scope) => {
                // `SHOW hspq.as_of` says "newest" when none is set: that value is taken too.
                let text = text.filter(|t| !t.eq_ignore_ascii_case("newest"));
                if status == TransactionStatus::Idle && scope == Scope::Local {
                    // As PostgreSQL (which warns): outside a block, SET LOCAL has no effect.
                    return Ok(Response::Execution(Tag::new("SET")));
                }
                self.set_as_of(text.clone(), database, status).await?;
                if scope == Scope::Session {
                    self.block_as_of(status, |kept| kept.at_commit = text);
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Reset(tag) => {
                if tag == "DISCARD ALL" {
                    self.cursor(
                        cursor::Command::Close(None),
                        Vec::new(),
                        database,
                        formats,
                        status,
                    )
                    .await?;
                }
                self.set_as_of(None, database, status).await?;
                self.block_as_of(status, |kept| kept.at_commit = None);
                Ok(Response::Execution(Tag::new(tag)))
            }
            Kind::Copy(copy) => {
                let session = self.session.get(database).await?;
                let (rows, stream) = tokio::sync::mpsc::channel(COPY_ROWS_AHEAD);
                let format = copy.format_code();
                let ready = session.copy(copy, rows, self.timeout);
                let columns = match tokio::time::timeout(self.timeout, ready).await {
                    Err(_) => {
                        session.interrupt();
                        return Err(self.timed_out());
                    }
                    Ok(Err(_)) => return Err(user_error("58000", "the session ended")),
                    Ok(Ok(Err(f))) => return Err(user_error(f.code, f.message)),
                    Ok(Ok(Ok(columns))) => columns,
                };
                let stream = futures_util::stream::unfold(stream, |mut rows| async move {
                    rows.recv().await.map(|row| (row, rows))
                });
                Ok(Response::CopyOut(CopyResponse::new(
                    format, columns, stream,
                )))
            }
            Kind::Setting(name, value) => {
                let schema = text_schema(&[name.as_str()]);
                let batch = arrow::record_batch::RecordBatch::try_new(
                    Arc::new(schema.clone()),
                    vec![Arc::new(arrow::array::StringArray::from(vec![value]))],
                )
                .map_err(|e| user_error("XX000", e.to_string()))?;
                rows(Arc::new(fields(&schema, formats)), &[batch])
            }
            Kind::Query => {
                let batches = self.open(sql, params, database).await?;
                let fields = Arc::new(fields(&batches.schema, formats));
                let rows = stream::Rows::new(fields.clone(), batches);
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    rows.into_stream(),
                )))
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = guard::split(query);
        if statements.is_empty() {
            // `-- ping` (Grafana's health check through pgx), `;` (lib/pq's).
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::new();
        let mut status = client.transaction_status();
        let last = statements.len() - 1;
        for (i, statement) in statements.into_iter().enumerate() {
            let text = Format::UnifiedText;
            match self
                .answer(statement, Vec::new(), database(client), &text, status)
                .await
            {
                // pgwire sends the responses once all are made, and a FETCH holds its cursor
                // until its rows are sent: one before the last is read here (`FETCH 10 c;
                // FETCH 10 c` would wait for itself).
                Ok(Response::Query(mut fetch)) if i < last && fetch.command_tag() == "FETCH" => {
                    let mut rows = Vec::new();
                    while let Some(row) = fetch.data_rows.next().await {
                        rows.push(row);
                    }
                    let mut read =
                        QueryResponse::new(fetch.row_schema(), futures_util::stream::iter(rows));
                    read.set_command_tag("FETCH");
                    responses.push(Response::Query(read));
                }
                Ok(r) => {
                    status = match &r {
                        Response::TransactionStart(_) => status.to_in_transaction_state(),
                        Response::TransactionEnd(_) => status.to_idle_state(),
                        _ => status,
                    };
                    responses.push(r)
                }
                Err(PgWireError::UserError(e)) => {
                    responses.push(Response::Error(e));
                    break;
                }
                Err(e) => return Err(e),
            }
            self.publish_cursor(client.portal_store().as_any());
        }
        // Outside a block the message was its own transaction: what it declared stays only if
        // all of it went through.
        if status == TransactionStatus::Idle {
            let failed = responses.iter().any(|r| matches!(r, Response::Error(_)));
            self.cursors.end_block(!failed);
        }
        Ok(responses)
    }
}

/// The savepoint a `SAVEPOINT`, `RELEASE [SAVEPOINT]` or `ROLLBACK [WORK] TO [SAVEPOINT]`
/// names: its last word, as PostgreSQL folds it (lower case unless quoted).
fn savepoint_name(sql: &str) -> String {
    let word = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .last()
        .unwrap_or_default();
    match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => word.to_lowercase(),
    }
}
