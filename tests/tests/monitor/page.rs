//! The status page: self-contained, every section shown in a headless browser.

use std::path::Path;

use sluice::ledger::Status;

use super::Setup;

/// Loads a page in headless chromium: the DOM after its scripts ran, and a screenshot.
fn chromium(page: &Path, screenshot: &Path) -> String {
    let exe = std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,2400",
    ];
    let url = format!("file://{}", page.display());
    let dom = std::process::Command::new(&exe)
        .args(common)
        .args(["--dump-dom", &url])
        .output()
        .unwrap_or_else(|e| panic!("{exe}: {e} (scripts/local-stack.sh up installs chromium)"));
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = std::process::Command::new(&exe)
        .args(common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).to_string()
}

#[tokio::test]
async fn the_status_page_shows_every_section_in_a_headless_browser() {
    let s = Setup::new(
        "orders: { mode: full, freshness: { warn_after: 1h, error_after: 2h } }\nusers: { mode: full }",
        &[("slack", "slack", "/slack")],
        &[],
    )
    .await;
    let now = chrono::Utc::now();
    let hours_ago = |h: i64| (now - chrono::Duration::hours(h)).to_rfc3339();
    s.copy_run(
        "r-1",
        "orders",
        "2026-12-02",
        &hours_ago(5),
        Status::Success,
        None,
    )
    .await;
    s.copy_run(
        "r-2",
        "users",
        "2026-12-02",
        &hours_ago(1),
        Status::Failed,
        Some("permission denied for table users"),
    )
    .await;

    let (ok, out, err) = s.monitor(&["check"]).await;
    assert!(ok, "{out}\n{err}");
    let path = s.env.lake_bucket_dir().join("status/index.html");
    assert!(
        out.contains(&format!("status page: {}", path.display())),
        "{out}"
    );
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link") && !html.contains("@import"),
        "self-contained"
    );

    let shot = s.env.scratch_dir().join("status.png");
    let dom = chromium(&path, &shot);
    for id in monitor::SECTION_IDS {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    assert!(
        dom.contains("<span class=\"muted\" id=\"alerts-count\">2</span>"),
        "two open alerts (failed users, stale orders)"
    );
    assert!(
        dom.contains("pg-copy failed: src.users for 2026-12-02"),
        "the failure is listed"
    );
    assert!(
        dom.contains(&format!(
            "<tr data-table=\"{}.orders\">",
            s.env.dataset("src")
        )),
        "orders has a freshness row"
    );
    assert!(dom.contains("<svg"), "the lineage is drawn");
    assert!(
        dom.contains("postgres:src"),
        "the lineage starts at the source"
    );
    // The search box filters the catalog (here from the address: #q=users).
    let filtered = chromium(Path::new(&format!("{}#q=users", path.display())), &shot);
    assert!(
        filtered.contains("<span id=\"catalog-count\">1</span>"),
        "the search ran"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot was taken ({} bytes)",
        png.len()
    );
}
