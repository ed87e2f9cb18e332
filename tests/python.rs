//! The lake read by other tools, and the notebook executed top to bottom, with the Python
//! packages scripts/test.sh installs (notebooks/requirements.txt) into its virtualenv.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn python() -> PathBuf {
    venv_tool("python")
}

async fn demo_lake(dir: &Path) {
    let sim = sim(|c| c.companies = 25).await;
    ingest_lake(&sim, dir, &[MSSP_KEY, RESELLER_KEY]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_pyarrow_and_polars_read_the_lake_as_the_views_do() {
    let dir = tempfile::tempdir().unwrap();
    demo_lake(dir.path()).await;
    let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
    let conn = engine.connection();
    let sums = [
        ("billing", "billing_value"),
        ("daily_usage", "usage_value"),
        ("billing_totals", "billing_total"),
        ("engagement", "api_calls"),
        ("churn", "usage_value"),
        ("periods", "eligible_company_count"),
    ];
    let mut expected = serde_json::Map::new();
    for d in hspq::lake::Dataset::ALL {
        let name = d.name();
        let rows: i64 = conn
            .query_row(&format!("select count(*) from {name}"), [], |r| r.get(0))
            .unwrap();
        let columns: Vec<String> = d
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut s = serde_json::Map::new();
        for (ds, col) in sums.iter().filter(|(ds, _)| *ds == name) {
            let total: i64 = conn
                .query_row(
                    &format!("select cast(sum({col}) as bigint) from {ds}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            s.insert(col.to_string(), total.into());
        }
        expected.insert(
            name.into(),
            serde_json::json!({"rows": rows, "columns": columns, "sums": s}),
        );
    }
    let file = dir.path().join("expected.json");
    std::fs::write(&file, serde_json::Value::Object(expected).to_string()).unwrap();
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop.py"))
        .arg(dir.path())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notebook_runs_top_to_bottom_on_a_demo_lake() {
    let dir = tempfile::tempdir().unwrap();
    demo_lake(dir.path()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = r#"
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", len(nb.cells), "cells")
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(root.join("notebooks/churn_analysis.ipynb"))
        .arg(root.join("notebooks"))
        .env("HSPQ_DATA", dir.path())
        .env("HSPQ_SQL_DIR", root.join("sql/queries"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("executed"));
}
