//! The status page as HTML: a pure function of `PageData`, one function per section, in the
//! order of `SECTION_IDS` (each a `<section id=...>`, each linked from the navigation).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use sluice::config::Severity;

use super::data::PageData;
use crate::alerts::Incident;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn sev_class(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Error) => "error",
        Some(Severity::Warn) => "warn",
        None => "ok",
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c5cad3}\
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde1e7;padding:8px 24px;z-index:1}nav a{margin-right:14px;color:#2557d6;text-decoration:none}\
main{padding:0 24px 40px}section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:16px 0;padding:12px 16px}h2{font-size:16px;margin:0 0 8px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}th{font-weight:600;color:#545c6b}\
.error{color:#b3261e;font-weight:600}.warn{color:#a15c00;font-weight:600}.ok{color:#1e7b34}.muted{color:#7a8291}\
.hm td{width:22px;height:18px;padding:0;text-align:center;font-size:10px;border:1px solid #fff}.hm td.l{width:auto;text-align:left;padding:0 6px;font-size:12px}\
code{background:#eef0f3;padding:0 3px;border-radius:3px}input[type=search]{width:320px;padding:5px 8px;margin-bottom:8px;border:1px solid #c5cad3;border-radius:4px}\
svg text{font:11px system-ui,sans-serif}";

/// The page's sections, in order (each a `<section id=...>`, each linked from the navigation).
pub const SECTION_IDS: [&str; 8] = [
    "where",
    "alerts",
    "freshness",
    "heatmap",
    "dq",
    "dead-letters",
    "lineage",
    "catalog",
];

/// The catalog's search box; `index.html#q=orders` opens the page filtered (links can share a
/// search).
const SCRIPT: &str = "function sluiceFilter(q){q=q.toLowerCase();var n=0;document.querySelectorAll('#catalog tbody tr').forEach(function(r){var show=r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=show?'':'none';if(show)n++;});document.getElementById('catalog-count').textContent=n;}\
var box=document.getElementById('catalog-search');box.addEventListener('input',function(e){sluiceFilter(e.target.value);});\
var m=location.hash.match(/^#q=(.*)$/);if(m){box.value=decodeURIComponent(m[1]);sluiceFilter(box.value);}";

/// The page, as HTML.
pub fn render(d: &PageData) -> String {
    let mut h = String::new();
    head(&mut h, d);
    where_things_live(&mut h, d);
    open_alerts(&mut h, d);
    freshness(&mut h, d);
    heatmap(&mut h, d);
    data_quality(&mut h, d);
    dead_letters(&mut h, d);
    lineage(&mut h, d);
    catalog(&mut h, d);
    h
}

/// The document head, the header and the navigation.
fn head(h: &mut String, d: &PageData) {
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>sluice status: {p} ({t})</title><style>{STYLE}</style></head><body>\
         <header><h1>sluice status: {p} <span class=\"muted\">({t})</span></h1><p>Generated {g} UTC by monitor check</p></header>\
         <nav><a href=\"#where\">Where things live</a><a href=\"#alerts\">Open alerts</a><a href=\"#freshness\">Freshness</a><a href=\"#heatmap\">Run heatmap</a>\
         <a href=\"#dq\">Data quality</a><a href=\"#dead-letters\">Dead letters</a><a href=\"#lineage\">Lineage</a><a href=\"#catalog\">Catalog</a></nav><main>",
        p = esc(&d.pipeline),
        t = esc(&d.target),
        g = d.generated_at.format("%Y-%m-%d %H:%M"),
    );
}

/// Where everything lives: the project, the lake, the ops dataset, each dataset.
fn where_things_live(h: &mut String, d: &PageData) {
    let console = |ds: &str| {
        format!(
            "https://console.cloud.google.com/bigquery?project={}&ws=!1m4!1m3!3m2!1s{}!2s{}",
            esc(&d.project),
            esc(&d.project),
            esc(ds)
        )
    };
    let _ = write!(h, "<section id=\"where\"><h2>Where things live</h2><table><tbody>\
        <tr><th>BigQuery project</th><td><code>{}</code> ({})</td></tr>\
        <tr><th>Lake</th><td><code>{}</code></td></tr>\
        <tr><th>Run ledger, alerts, views</th><td><a href=\"{}\"><code>{}</code></a>: runs, dq_results, dead_letter, alerts, and the views catalog_tables, catalog_columns, freshness, run_heatmap, dq_daily, dead_letter_daily, table_usage_daily, cost_daily, storage_cost</td></tr>",
        esc(&d.project), esc(&d.location), esc(&d.lake), console(&d.ops_dataset), esc(&d.ops_dataset));
    for (name, ds) in &d.datasets {
        let n = d.tables.iter().filter(|t| &t.dataset == name).count();
        let producers: BTreeSet<&str> = d
            .tables
            .iter()
            .filter(|t| &t.dataset == name)
            .map(|t| t.worker.as_str())
            .collect();
        let _ = write!(
            h,
            "<tr><th>Dataset</th><td><a href=\"{}\"><code>{}</code></a> · {n} tables · {}</td></tr>",
            console(ds),
            esc(ds),
            esc(&producers.into_iter().collect::<Vec<_>>().join(", "))
        );
    }
    h.push_str("</tbody></table></section>");
}

/// The open alerts, with how their delivery went.
fn open_alerts(h: &mut String, d: &PageData) {
    let open: Vec<&Incident> = d.alerts.iter().filter(|a| a.status != "resolved").collect();
    let _ = write!(h, "<section id=\"alerts\"><h2>Open alerts <span class=\"muted\" id=\"alerts-count\">{}</span></h2>", open.len());
    if open.is_empty() {
        h.push_str("<p class=\"ok\">No open alerts.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Severity</th><th>Alert</th><th>Owner</th><th>Since</th><th>Delivery</th></tr></thead><tbody>");
        for a in &open {
            let delivery = if a.delivery_failures > 0 {
                format!(
                    "<span class=\"error\">{} failed sends</span>",
                    a.delivery_failures
                )
            } else if a.last_sent_at.is_some() {
                "sent".into()
            } else {
                "<span class=\"warn\">not sent yet</span>".into()
            };
            let _ = write!(
                h,
                "<tr><td class=\"{c}\">{s}</td><td>{t}</td><td>{o}</td><td>{f} UTC</td><td>{delivery}</td></tr>",
                c = sev_class(Some(a.severity)),
                s = a.severity.as_str(),
                t = esc(&a.title),
                o = esc(a.owner.as_deref().unwrap_or("")),
                f = a.first_seen.format("%Y-%m-%d %H:%M"),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

/// Freshness against each SLA.
fn freshness(h: &mut String, d: &PageData) {
    h.push_str("<section id=\"freshness\"><h2>Freshness</h2><table><thead><tr><th>Table</th><th>Owner</th><th>Last loaded</th><th>SLA (warn / error)</th><th>Status</th></tr></thead><tbody>");
    let hours = |x: Option<std::time::Duration>| {
        x.map(|x| format!("{} h", x.as_secs_f64() / 3600.0))
            .unwrap_or_else(|| "–".into())
    };
    for f in &d.freshness {
        let status = match (f.status, f.warn_after.or(f.error_after)) {
            (Some(s), _) => s.as_str(),
            (None, Some(_)) if f.last_success.is_none() => "not loaded yet",
            (None, Some(_)) => "fresh",
            (None, None) => "no SLA",
        };
        let _ = write!(
            h,
            "<tr data-table=\"{n}\"><td><code>{n}</code></td><td>{o}</td><td>{l}</td><td>{w} / {e}</td><td class=\"{c}\">{status}</td></tr>",
            n = esc(&format!("{}.{}", d.datasets.get(&f.dataset).unwrap_or(&f.dataset), f.table)),
            o = esc(f.owner.as_deref().unwrap_or("")),
            l = f.last_success.map(|l| l.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into()),
            w = hours(f.warn_after),
            e = hours(f.error_after),
            c = if f.warn_after.or(f.error_after).is_some() { sev_class(f.status) } else { "muted" },
        );
    }
    h.push_str("</tbody></table></section>");
}

/// Runs per worker and unit by UTC hour, last 7 days.
fn heatmap(h: &mut String, d: &PageData) {
    h.push_str("<section id=\"heatmap\"><h2>Run heatmap <span class=\"muted\">runs per UTC hour, last 7 days</span></h2><table class=\"hm\"><thead><tr><th class=\"l\">worker · unit</th>");
    for hour in 0..24 {
        let _ = write!(h, "<th>{hour:02}</th>");
    }
    h.push_str("</tr></thead><tbody>");
    let max = d
        .heatmap
        .values()
        .flat_map(|r| r.iter().map(|c| c.0))
        .max()
        .unwrap_or(1)
        .max(1);
    for ((worker, unit), cells) in &d.heatmap {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{} · {}</td>",
            esc(worker),
            esc(unit)
        );
        for (runs, failed) in cells {
            let (bg, label) = if *runs == 0 {
                ("#f6f7f9".to_string(), String::new())
            } else if *failed > 0 {
                ("#f4b4ae".to_string(), runs.to_string())
            } else {
                let a = 0.25 + 0.75 * (*runs as f64 / max as f64);
                (format!("rgba(37,87,214,{a:.2})"), runs.to_string())
            };
            let _ = write!(
                h,
                "<td style=\"background:{bg}\" title=\"{runs} runs, {failed} failed\">{label}</td>"
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></section>");
}

/// DQ results over time: checks passed / failed per mart and logical date.
fn data_quality(h: &mut String, d: &PageData) {
    let days: BTreeSet<&String> = d.dq.values().flat_map(|m| m.keys()).collect();
    h.push_str("<section id=\"dq\"><h2>Data quality <span class=\"muted\">checks passed / failed per logical date</span></h2>");
    if d.dq.is_empty() {
        h.push_str("<p class=\"muted\">No checks recorded in the last 14 days.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Mart</th>");
        for day in &days {
            let _ = write!(h, "<th>{}</th>", esc(day.get(5..).unwrap_or(day)));
        }
        h.push_str("</tr></thead><tbody>");
        for (mart, by_day) in &d.dq {
            let _ = write!(h, "<tr><td><code>{}</code></td>", esc(mart));
            for day in &days {
                match by_day.get(*day) {
                    Some((p, 0)) => {
                        let _ = write!(h, "<td class=\"ok\">{p}/0</td>");
                    }
                    Some((p, f)) => {
                        let _ = write!(h, "<td class=\"error\">{p}/{f}</td>");
                    }
                    None => h.push_str("<td class=\"muted\">–</td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

/// Dead letters by day, event type and reason.
fn dead_letters(h: &mut String, d: &PageData) {
    let total: u64 = d.dead_letters.iter().map(|r| r.3).sum();
    let _ = write!(h, "<section id=\"dead-letters\"><h2>Dead letters <span class=\"muted\">last 7 days: <span id=\"dead-letter-total\">{total}</span></span></h2>");
    if d.dead_letters.is_empty() {
        h.push_str("<p class=\"ok\">No dead letters.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Day</th><th>Event type</th><th>Reason</th><th>Messages</th></tr></thead><tbody>");
        for (day, et, reason, n) in &d.dead_letters {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{n}</td></tr>",
                esc(day),
                esc(et),
                esc(reason)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

/// The lineage, as an inline SVG.
fn lineage(h: &mut String, d: &PageData) {
    let _ = write!(
        h,
        "<section id=\"lineage\"><h2>Lineage</h2>{}</section>",
        lineage_svg(&d.edges)
    );
}

/// The catalog with its search box, and the script that filters it; the end of the page.
fn catalog(h: &mut String, d: &PageData) {
    let _ = write!(h, "<section id=\"catalog\"><h2>Catalog <span class=\"muted\"><span id=\"catalog-count\">{}</span> tables</span></h2>\
        <input type=\"search\" id=\"catalog-search\" placeholder=\"Search tables, columns, owners\" aria-label=\"Search the catalog\">\
        <table><thead><tr><th>Table</th><th>Producer</th><th>Owner</th><th>Schedule</th><th>Description</th><th>Columns</th></tr></thead><tbody>", d.tables.len());
    for t in &d.tables {
        let name = format!(
            "{}.{}",
            d.datasets.get(&t.dataset).unwrap_or(&t.dataset),
            t.table
        );
        let cols = d
            .columns
            .get(&name)
            .map(|c| {
                c.iter()
                    .map(|(n, ty)| format!("{} <span class=\"muted\">{}</span>", esc(n), esc(ty)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "<span class=\"muted\">not in BigQuery yet</span>".into());
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{cols}</td></tr>",
            esc(&name),
            t.worker,
            esc(t.owner.as_deref().unwrap_or("")),
            esc(t.cron.as_deref().unwrap_or("continuous")),
            esc(t.description.as_deref().unwrap_or("")),
        );
    }
    let _ = writeln!(
        h,
        "</tbody></table></section></main><script>{SCRIPT}</script></body></html>"
    );
}

/// The lineage as an inline SVG: a column per step from sources to marts, a curve per edge.
pub fn lineage_svg(edges: &[(String, String)]) -> String {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for (a, b) in edges {
        depth.entry(a).or_insert(0);
        depth.entry(b).or_insert(0);
    }
    // Longest path from a root: repeat relaxing (the graph is a DAG, small).
    for _ in 0..depth.len() {
        let mut changed = false;
        for (a, b) in edges {
            let d = depth[a.as_str()] + 1;
            if depth[b.as_str()] < d {
                depth.insert(b, d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut columns: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (n, d) in &depth {
        columns.entry(*d).or_default().push(n);
    }
    let (w, gap, row) = (200.0, 60.0, 26.0);
    let rows = columns.values().map(Vec::len).max().unwrap_or(0);
    let width = columns.len() as f64 * (w + gap);
    let height = rows as f64 * row + 10.0;
    let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (c, names) in &columns {
        for (i, n) in names.iter().enumerate() {
            pos.insert(n, (*c as f64 * (w + gap) + 5.0, i as f64 * row + 5.0));
        }
    }
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Lineage from sources to marts\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">");
    for (a, b) in edges {
        let ((x1, y1), (x2, y2)) = (pos[a.as_str()], pos[b.as_str()]);
        let (x1, y1, x2, y2) = (x1 + w, y1 + 10.0, x2, y2 + 10.0);
        let m = (x1 + x2) / 2.0;
        let _ = write!(s, "<path d=\"M{x1:.0},{y1:.0} C{m:.0},{y1:.0} {m:.0},{y2:.0} {x2:.0},{y2:.0}\" fill=\"none\" stroke=\"#9aa3b2\"/>");
    }
    for (n, (x, y)) in &pos {
        let fill = if n.starts_with("postgres:") || n.starts_with("pubsub:") {
            "#e8efff"
        } else {
            "#ffffff"
        };
        let label: String = n.chars().take(30).collect();
        let _ = write!(s, "<g class=\"node\"><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w:.0}\" height=\"20\" rx=\"4\" fill=\"{fill}\" stroke=\"#2557d6\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text></g>", x + 6.0, y + 14.0, esc(&label));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let mut d = PageData {
            pipeline: "shop".into(),
            target: "prod".into(),
            project: "acme".into(),
            edges: vec![
                ("postgres:shop".into(), "shop_raw.orders".into()),
                ("shop_raw.orders".into(), "finance.daily".into()),
            ],
            ..PageData::default()
        };
        d.dead_letters
            .push(("2026-12-02".into(), "<script>".into(), "not_json".into(), 3));
        let html = render(&d);
        for id in SECTION_IDS {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(!html.contains("<script>\"") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("src=") && !html.contains("<link") && !html.contains("@import"));
        assert_eq!(html.matches("<script>").count(), 1);
        let svg = lineage_svg(&d.edges);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("<path").count(), 2);
    }
}
