//! The lake read by other tools, and the notebook executed top to bottom, with the Python
//! packages scripts/test.sh installs (notebooks/requirements.txt) into its virtualenv.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn python() -> PathBuf {
    venv_tool("python")
}

/// A lake of both report types with weights fitted by `hspq churn fit`, so that every dataset
/// has files.
async fn demo_lake(dir: &Path) {
    let sim = sim(|c| c.companies = 300).await;
    ingest_lake(&sim, dir, &[MSSP_KEY, RESELLER_KEY]).await;
    succeeded(hspq_on(dir, &["churn", "fit", "--store-anyway"]));
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

/// Every bundled query, unchanged, in the DuckDB 1.5.6 the venv has and in DuckDB 2.0.0
/// (installed by scripts/test.sh under `duckdb2/` in the venv), over `hspq views --sql`: the
/// SQL hspq ships must work where Python users run it, and give what hspq gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_queries_run_unchanged_in_duckdb_1_5_and_2_0_and_agree_with_hspq() {
    let dir = tempfile::tempdir().unwrap();
    demo_lake(dir.path()).await;
    let hspq = |args: &[&str]| succeeded(hspq_on(dir.path(), args));
    let views = dir.path().join("views.sql");
    std::fs::write(&views, hspq(&["views", "--sql"])).unwrap();
    let company: String = {
        let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
        engine
            .connection()
            .query_row(
                "select security_center_id from daily_usage order by 1 limit 1",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let mut expected = serde_json::Map::new();
    for q in hspq::query::bundled::all() {
        let params: Vec<(String, String)> = q
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| (p.name.clone(), company.clone()))
            .collect();
        let mut args = vec!["query".to_string(), q.name.clone()];
        for (k, v) in &params {
            args.extend(["--param".to_string(), format!("{k}={v}")]);
        }
        args.extend(["--format", "csv"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let csv = String::from_utf8(hspq(&args)).unwrap();
        assert!(
            csv.lines().count() > 1 || q.name == "billing_reconciliation",
            "{} has no rows on the demo lake: it proves nothing",
            q.name
        );
        expected.insert(
            q.name.clone(),
            serde_json::json!({
                "params": params.into_iter().map(|(k, v)| (k, v.into())).collect::<serde_json::Map<_, _>>(),
                "csv": csv,
            }),
        );
    }
    let file = dir.path().join("expected.json");
    std::fs::write(&file, serde_json::Value::Object(expected).to_string()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let duckdb2 = python().parent().unwrap().parent().unwrap().join("duckdb2");
    assert!(
        duckdb2.join("duckdb").is_dir(),
        "DuckDB 2.0 not found at {}: run ./scripts/test.sh, which installs it",
        duckdb2.display()
    );
    for pythonpath in [None, Some(&duckdb2)] {
        let mut cmd = Command::new(python());
        cmd.arg(root.join("tests/bundled_sql.py"))
            .arg(&views)
            .arg(root.join("sql/queries"))
            .arg(&file);
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        let out = cmd.output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let version = if pythonpath.is_some() {
            "2.0.0"
        } else {
            "1.5.6"
        };
        assert!(said.contains(&format!("DuckDB {version}:")), "{said}");
    }
}
