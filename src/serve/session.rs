//! One client's DuckDB: an [`Engine`] over the lake on a thread of its own, so a slow client
//! or a long query holds up nobody else, sandboxed so that SQL reads the lake's files and
//! nothing else.

use std::sync::mpsc;
use std::thread;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use super::catalog::{Catalog, Identity};
use crate::lake::LakeLocation;
use crate::query::{sql_message, Engine, Interrupter, QueryError};

/// What a statement gave.
pub enum Answer {
    /// A result: its columns and rows.
    Rows(SchemaRef, Vec<RecordBatch>),
}

/// What a client asks its session for.
enum Job {
    /// Run `sql` with `params` bound to `$1`, `$2`, ... (NULL for `None`).
    Run(
        String,
        Vec<Option<String>>,
        oneshot::Sender<Result<Answer, String>>,
    ),
    /// The columns `sql` would give and how many parameters it takes, without running it.
    Describe(String, oneshot::Sender<Result<(SchemaRef, usize), String>>),
}

/// A client's engine, on its own thread; dropping it ends the thread.
pub struct Session {
    jobs: mpsc::Sender<Job>,
    interrupter: Interrupter,
}

impl Session {
    /// Opens the lake for one client, with the PostgreSQL catalog it is shown.
    pub async fn start(lake: LakeLocation, who: Identity) -> Result<Session, String> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, opened) = oneshot::channel();
        thread::Builder::new()
            .name("hspq-serve-session".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let engine = match runtime
                    .block_on(Engine::open(&lake))
                    .map_err(|e| e.to_string())
                {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                drop(runtime);
                let catalog = match engine
                    .statement(|conn| Ok(Catalog::install(conn, &who)?))
                    .map_err(|e| format!("cannot make the PostgreSQL catalog: {e}"))
                    .and_then(|catalog| sandbox(&engine).map(|_| catalog))
                {
                    Ok(catalog) => catalog,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                if ready.send(Ok(engine.interrupter())).is_err() {
                    return;
                }
                for job in inbox {
                    match job {
                        Job::Run(sql, params, reply) => {
                            let _ = reply.send(run(&engine, &catalog.respell(&sql), &params));
                        }
                        Job::Describe(sql, reply) => {
                            let _ = reply.send(describe(&engine, &catalog.respell(&sql)));
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start a session thread: {e}"))?;
        let interrupter = opened
            .await
            .map_err(|_| "the session thread ended".to_string())??;
        Ok(Session { jobs, interrupter })
    }

    /// Runs one statement.
    pub async fn run(&self, sql: String, params: Vec<Option<String>>) -> Result<Answer, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Run(sql, params, reply))
            .map_err(|_| "the session ended".to_string())?;
        answer.await.map_err(|_| "the session ended".to_string())?
    }

    /// The columns and parameter count of one statement, without running it.
    pub async fn describe(&self, sql: String) -> Result<(SchemaRef, usize), String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Describe(sql, reply))
            .map_err(|_| "the session ended".to_string())?;
        answer.await.map_err(|_| "the session ended".to_string())?
    }

    /// Cancels the statement running now (a client's cancel request, or the time limit).
    pub fn interrupt(&self) {
        self.interrupter.interrupt();
    }
}

/// Lets SQL read the lake's folder and nothing else, and change no setting: no `COPY ... TO`,
/// `ATTACH`, `INSTALL`, `read_csv('/etc/passwd')` or turning that back on.
fn sandbox(engine: &Engine) -> Result<(), String> {
    let root = engine.root.display().to_string().replace('\'', "''");
    engine
        .connection()
        .execute_batch(&format!(
            "SET allowed_directories = ['{root}/']; \
             SET enable_external_access = false; \
             SET autoinstall_known_extensions = false; \
             SET autoload_known_extensions = false; \
             SET lock_configuration = true;"
        ))
        .map_err(|e| format!("cannot sandbox the session: {}", sql_message(&e)))
}

fn run(engine: &Engine, sql: &str, params: &[Option<String>]) -> Result<Answer, String> {
    engine
        .statement(|conn| {
            let mut stmt = conn.prepare(sql)?;
            let batches: Vec<RecordBatch> = stmt
                .query_arrow(duckdb::params_from_iter(params.iter()))?
                .collect();
            Ok(Answer::Rows(stmt.schema(), batches))
        })
        .map_err(message)
}

fn describe(engine: &Engine, sql: &str) -> Result<(SchemaRef, usize), String> {
    engine
        .statement(|conn| {
            let params = conn.prepare(sql)?.parameter_count();
            // A query's columns without running it: none of its rows, its parameters NULL.
            let nulls = vec![None::<String>; params];
            let limited = format!(
                "SELECT * FROM ({}) LIMIT 0",
                sql.trim().trim_end_matches(';')
            );
            // Not a query (SHOW, DESCRIBE, ...): run it to see.
            let mut stmt = conn.prepare(&limited).or_else(|_| conn.prepare(sql))?;
            let _ = stmt.query_arrow(duckdb::params_from_iter(nulls.iter()))?;
            Ok((stmt.schema(), params))
        })
        .map_err(message)
}

fn message(e: QueryError) -> String {
    match e {
        QueryError::Interrupted => "canceling statement due to user request".into(),
        other => other.to_string(),
    }
}
