//! DuckDB over the lake: the views, SQL execution with results streamed batch by batch, the
//! bundled queries, and a local cache that lets an S3 lake be queried offline.
//!
//! An in-memory DuckDB gets one view per dataset over exactly the files the lake's manifest
//! lists (see [`views`]), so hspq never reads a file a sync has not committed.

pub mod bundled;
pub mod output;
pub mod views;

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::warn;

use crate::lake::layout::MANIFEST;
use crate::lake::{Dataset, Lake, LakeError, Manifest};
use output::{OutputError, ResultWriter};
use views::Source;

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// DuckDB refused the SQL or failed running it.
    #[error("{0}")]
    Sql(String),
    /// The lake cannot be read.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// There is no lake there.
    #[error("no lake at {0}: run `hspq ingest --data {0}` first (or pass --data)")]
    NoLake(String),
    /// Writing the result failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A bundled query or its parameters are wrong.
    #[error("{0}")]
    Usage(String),
}

impl From<duckdb::Error> for QueryError {
    fn from(e: duckdb::Error) -> Self {
        QueryError::Sql(sql_message(&e))
    }
}

/// DuckDB's own message, without the Rust wrapper's decoration.
pub fn sql_message(e: &duckdb::Error) -> String {
    match e {
        duckdb::Error::DuckDBFailure(_, Some(msg)) => msg.clone(),
        other => other.to_string(),
    }
}

/// A DuckDB connection with the lake's views.
pub struct Engine {
    conn: duckdb::Connection,
    /// Where the lake's files are read from (the local cache for an S3 lake).
    pub root: PathBuf,
    /// Something the user should know about the data (e.g. an offline cache's age).
    pub notice: Option<String>,
}

impl Engine {
    /// Opens the lake at `data` (a folder or `s3://...`), registering every view.
    pub async fn open(data: &str) -> Result<Engine, QueryError> {
        let (root, notice) = if data.starts_with("s3://") {
            sync_cache(data).await?
        } else {
            let root = PathBuf::from(data);
            if !root.is_dir() {
                return Err(QueryError::NoLake(data.to_string()));
            }
            (root, None)
        };
        let conn = duckdb::Connection::open_in_memory()?;
        let engine = Engine { conn, root, notice };
        engine.register_views().await?;
        Ok(engine)
    }

    /// The DuckDB connection holding the views.
    pub fn connection(&self) -> &duckdb::Connection {
        &self.conn
    }

    async fn register_views(&self) -> Result<(), QueryError> {
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        let root_text = root.display().to_string();
        let lake = Lake::open(&root_text)?;
        let has_manifest = root.join(MANIFEST).is_file();
        let manifest = Manifest::load(&lake).await?;
        let mut sql = String::new();
        for d in Dataset::ALL {
            let source = if has_manifest {
                let prefix = format!("{}/", d.name());
                let live: Vec<_> = manifest
                    .files
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix))
                    .collect();
                let paths = live
                    .iter()
                    .map(|(p, _)| format!("{root_text}/{p}"))
                    .collect();
                if live.iter().all(|(_, f)| f.unique_keys) {
                    Source::UniqueFiles(paths)
                } else {
                    Source::Files(paths)
                }
            } else if root.join(d.name()).is_dir() {
                // A lake copied without its bookkeeping: read what is there.
                Source::Glob(&root_text)
            } else {
                Source::Files(Vec::new())
            };
            sql.push_str(&views::view_sql(d, &source));
            sql.push('\n');
        }
        self.conn.execute_batch(&sql)?;
        Ok(())
    }

    /// Runs one SQL text (one or more statements); streams the last statement's result into
    /// `out`. Returns the rows written and the result's schema.
    pub fn run(
        &self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        let statements = split_statements(sql);
        let Some((last, before)) = statements.split_last() else {
            return Err(QueryError::Usage("no SQL statement given".into()));
        };
        for s in before {
            self.conn.execute_batch(s)?;
        }
        let mut stmt = self.conn.prepare(last)?;
        self.stream(&mut stmt, &[], out)
    }

    /// Executes a prepared statement with `params` and streams its result into `out`.
    pub fn stream(
        &self,
        stmt: &mut duckdb::Statement<'_>,
        params: &[duckdb::types::Value],
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<SchemaRef>), QueryError> {
        let arrow = stmt.stream_arrow(duckdb::params_from_iter(params.iter()))?;
        let schema = arrow.get_schema();
        drop(arrow);
        let mut rows = 0;
        // `step` returns DuckDB's errors (an interrupt, say) where the iterator would panic.
        while let Some(chunk) = stmt.step()? {
            let batch = RecordBatch::from(&chunk);
            rows += batch.num_rows();
            out.write(&batch)?;
        }
        Ok((rows, Some(schema)))
    }
}

/// Brings an S3 lake's live files into the local cache (fetching only what changed) and
/// returns the cache folder. Without network, the cache answers and says how old it is.
async fn sync_cache(data: &str) -> Result<(PathBuf, Option<String>), QueryError> {
    let base = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("hspq")
        .join("lakes");
    let name: String = data
        .trim_start_matches("s3://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cache = base.join(name);
    let cached_manifest = cache.join(MANIFEST);
    let remote = Lake::open_quick(data)?;
    let fetched = remote.get(MANIFEST).await;
    let bytes = match fetched {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(QueryError::NoLake(data.to_string())),
        Err(e) => {
            if cached_manifest.is_file() {
                let age = cached_manifest
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .map(|d| {
                        crate::ingest::human_duration(std::time::Duration::from_secs(d.as_secs()))
                    })
                    .unwrap_or_else(|| "unknown".into());
                let notice = format!(
                    "{data} is unreachable ({e}); answering from the local copy synced {age} ago"
                );
                return Ok((cache, Some(notice)));
            }
            return Err(e.into());
        }
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| LakeError::Corrupt {
        path: format!("{data}/{MANIFEST}"),
        detail: e.to_string(),
    })?;
    let local = Lake::open(&cache.display().to_string())?;
    let previous = Manifest::load(&local).await.unwrap_or_default();
    // Only new or changed files, eight at a time.
    let changed: Vec<&String> = manifest
        .files
        .iter()
        .filter(|(path, entry)| {
            previous.files.get(*path) != Some(*entry) || !cache.join(path).is_file()
        })
        .map(|(path, _)| path)
        .collect();
    let fetches = changed.into_iter().map(|path| {
        let (remote, local) = (remote.clone(), local.clone());
        async move {
            let body = remote.get(path).await?.ok_or_else(|| LakeError::Corrupt {
                path: format!("{data}/{path}"),
                detail: "listed in the manifest but missing".into(),
            })?;
            local.put(path, body).await
        }
    });
    let results: Vec<Result<(), LakeError>> = futures_util::stream::iter(fetches)
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    // The manifest last, so a cut-short sync leaves the previous copy consistent.
    local.put(MANIFEST, Bytes::from(bytes.to_vec())).await?;
    for (path, _) in local.list("").await? {
        if !path.starts_with("_hspq/") && !manifest.files.contains_key(&path) {
            if let Err(e) = local.delete(&path).await {
                warn!("could not remove {path} from the cache: {e}");
            }
        }
    }
    Ok((cache, None))
}

/// Splits SQL text into statements at semicolons outside quotes and comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        current.push(c);
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        current.push(c);
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    let mut prev = ' ';
                    for c in chars.by_ref() {
                        current.push(c);
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                }
                ';' => {
                    current.pop();
                    out.push(std::mem::take(&mut current));
                }
                _ => {}
            },
        }
    }
    out.push(current);
    out.into_iter()
        .filter(|s| !is_blank(s))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Whether SQL text holds only whitespace and comments.
fn is_blank(s: &str) -> bool {
    let mut rest = s.trim();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after).trim();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after).trim();
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "select 'a;b' as x; -- c;d\n select \"e;f\" /* g;h */ ;\n\n -- only a comment;\n";
        assert_eq!(
            split_statements(sql),
            vec!["select 'a;b' as x", "-- c;d\n select \"e;f\" /* g;h */"]
        );
        assert_eq!(split_statements("select 1"), vec!["select 1"]);
        assert!(split_statements(" ; -- nothing\n").is_empty());
    }
}
