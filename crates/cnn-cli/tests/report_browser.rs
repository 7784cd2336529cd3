//! The HTML report renders in a real browser: headless Chromium opens the
//! `report.html` of a run and of a comparison; the page's own check script
//! must mark it `data-rendered="ok"` (every image decoded, no script
//! error), the DOM must hold the tables and images (as many as the file
//! has, counted here), and the screenshot must be a real picture. The
//! marker itself is tested: a copy with one image's bytes broken must be
//! marked `failed`.
//!
//! The interactive charts are driven the way a user would drive them:
//! `report_charts.js`, appended to a copy of each report, dispatches the
//! DOM events uPlot and the chart controls listen to (legend clicks, mouse
//! moves, a drag and a double-click, the smoothing slider's `input`, the
//! log switches' clicks), waits for each redraw, and writes what it saw as
//! JSON into the page; Chromium's `--dump-dom` with a virtual-time budget
//! returns it. This needs no DevTools client crate (chromiumoxide or
//! headless_chrome would bring an async runtime and a WebSocket stack into
//! the dev-dependencies, minutes of build on CI's two cores) and no
//! browser flag beyond the ones the screenshot uses. Network: the page's
//! Content-Security-Policy forbids every request and its check script
//! fails the page on a violation, the harness counts the browser's
//! resource-timing entries (none allowed), and the file itself is checked
//! to name no URL but the chart library's banner.
//!
//! Skips (and says why) when neither `chromium` nor `chromium-browser` is
//! on PATH; `CNN_REQUIRE_CHROMIUM=1` turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::cnn;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Run headless Chromium on `report`; returns (dumped DOM, stderr).
fn render(browser: &Path, report: &Path, screenshot: &Path, profile: &Path) -> (String, String) {
    let url = format!("file://{}", report.display());
    let common = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--hide-scrollbars".into(),
        "--enable-logging=stderr".into(),
        "--v=0".into(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,2000".into(),
    ];
    let shot = Command::new(browser)
        .args(&common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        shot.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = Command::new(browser)
        .args(&common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        dom.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let stderr =
        String::from_utf8_lossy(&shot.stderr).into_owned() + &String::from_utf8_lossy(&dom.stderr);
    (String::from_utf8_lossy(&dom.stdout).into_owned(), stderr)
}

fn check(browser: &Path, dir: &Path, tmp: &Path, name: &str, min_images: usize, min_tables: usize) {
    let report = dir.join("report.html");
    assert!(report.is_file(), "no {}", report.display());
    let shot = tmp.join(format!("{name}.png"));
    let (dom, log) = render(
        browser,
        &report,
        &shot,
        &tmp.join(format!("profile-{name}")),
    );
    let body = dom
        .split("<body")
        .nth(1)
        .unwrap_or_else(|| panic!("no <body> in the DOM: {dom:.500}"));
    let tag = &body[..body.find('>').unwrap()];
    assert!(
        tag.contains("data-rendered=\"ok\""),
        "{name}: the page did not render cleanly: <body{tag}>"
    );
    assert!(tag.contains("data-errors=\"\""), "{name}: <body{tag}>");
    let images: usize = attr(tag, "data-images");
    let tables: usize = attr(tag, "data-tables");
    assert!(
        images >= min_images && tables >= min_tables,
        "{name}: {images} images, {tables} tables"
    );
    // The marker's counts are the file's, counted here without the page.
    let html = std::fs::read_to_string(&report).unwrap();
    assert_eq!(images, html.matches("<img ").count(), "{name}: images");
    assert_eq!(tables, html.matches("<table").count(), "{name}: tables");
    assert!(dom.matches("<tr>").count() >= 3, "{name}: table rows");
    for line in log.lines() {
        assert!(
            !(line.contains("Uncaught") || line.contains(":CONSOLE(") && line.contains("rror")),
            "{name}: console error: {line}"
        );
    }
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(
        (img.width(), img.height()),
        (1280, 2000),
        "{name}: screenshot size"
    );
    let first = *img.get_pixel(0, 0);
    let differing = img.pixels().filter(|p| **p != first).count();
    assert!(
        differing > (img.width() * img.height() / 20) as usize,
        "{name}: the screenshot is nearly one colour ({differing} pixels differ)"
    );
}

/// The page's own marker can say `failed`: a copy of `dir`'s report whose
/// first image holds bytes that are no PNG renders `data-rendered="failed"`
/// naming the image, so an "ok" from it is not a constant.
fn check_a_broken_image_fails(browser: &Path, dir: &Path, tmp: &Path) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let prefix = "src=\"data:image/png;base64,";
    let start = html.find(prefix).expect("an embedded image") + prefix.len();
    let end = start + html[start..].find('"').unwrap();
    // "bm90IGEgcG5n" is base64 for "not a png".
    let broken = format!("{}bm90IGEgcG5n{}", &html[..start], &html[end..]);
    let path = tmp.join("broken.html");
    std::fs::write(&path, broken).unwrap();
    let (dom, _) = render(
        browser,
        &path,
        &tmp.join("broken.png"),
        &tmp.join("profile-broken"),
    );
    let body = dom.split("<body").nth(1).expect("a <body>");
    let tag = &body[..body.find('>').unwrap()];
    assert!(
        tag.contains("data-rendered=\"failed\""),
        "a broken image must fail the page's check: <body{tag}>"
    );
    assert!(tag.contains("1 image(s) did not decode"), "<body{tag}>");
}

fn attr(tag: &str, name: &str) -> usize {
    let start = tag
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in <body{tag}>"))
        + name.len()
        + 2;
    tag[start..start + tag[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn reports_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        cnn_testing::skip(
            "reports_render_in_headless_chromium",
            "CNN_REQUIRE_CHROMIUM",
            "chromium (or chromium-browser) is not on PATH",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "--epochs",
        "2",
        "--limit-train",
        "128",
        "--batch-size",
        "32",
        "--quiet",
    ];
    let mut args = vec!["train", "--out", "run"];
    args.extend_from_slice(&small);
    let out = cnn(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec!["compare", "--out", "cmp", "--vary", "lr=0.05,1e30"];
    args.extend_from_slice(&small);
    let out = cnn(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Curves and confusion matrix; summary and per-epoch tables.
    check(&browser, &tmp.path().join("run"), tmp.path(), "run", 2, 2);
    check_a_broken_image_fails(&browser, &tmp.path().join("run"), tmp.path());
    // Overlay and the best variant's confusion matrix; summary and variants.
    check(
        &browser,
        &tmp.path().join("cmp"),
        tmp.path(),
        "compare",
        2,
        2,
    );
}

/// The harness that drives the charts (see the top of this file).
const HARNESS: &str = include_str!("report_charts.js");

/// TensorBoard's smoothing, written out for the test: an exponential
/// moving average started at 0 and divided by `1 - w^n`; a non-finite
/// value (null in the page) passes through and does not count.
fn tensorboard_smooth(values: &[Option<f64>], w: f64) -> Vec<Option<f64>> {
    let (mut last, mut n) = (0.0f64, 0i32);
    let constant = values.windows(2).all(|p| p[0] == p[1]);
    values
        .iter()
        .map(|v| match v {
            Some(v) if v.is_finite() && !constant => {
                last = last * w + (1.0 - w) * v;
                n += 1;
                Some(last / (1.0 - w.powi(n)))
            }
            other => *other,
        })
        .collect()
}

fn numbers(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(Value::as_f64)
        .collect()
}

/// |a - b| <= 1e-12 + 1e-12 |b| for every pair (both gaps count as equal).
fn assert_series_close(a: &[Option<f64>], b: &[Option<f64>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        match (x, y) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-12 + 1e-12 * y.abs(),
                "{what}[{i}]: {x} vs {y}"
            ),
            (None, None) => {}
            _ => panic!("{what}[{i}]: {x:?} vs {y:?}"),
        }
    }
}

/// Run the harness on a copy of `dir`'s report; returns its JSON result
/// and the dumped DOM.
fn drive(browser: &Path, dir: &Path, tmp: &Path, name: &str) -> (Value, String) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let end = html.rfind("</body>").expect("a </body>");
    let copy = format!(
        "{}<script>{HARNESS}</script>\n{}",
        &html[..end],
        &html[end..]
    );
    let page = tmp.join(format!("{name}-harness.html"));
    std::fs::write(&page, copy).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            "--virtual-time-budget=60000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.join(format!("profile-h-{name}")).display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr);
    for line in log.lines() {
        assert!(
            !(line.contains("Uncaught") || line.contains(":CONSOLE(") && line.contains("rror")),
            "{name}: console error: {line}"
        );
    }
    let start = dom.rfind("<pre id=\"harness-result\">").unwrap_or_else(|| {
        panic!(
            "{name}: the harness wrote no result; DOM tail: {}",
            &dom[dom.len().saturating_sub(2000)..]
        )
    }) + "<pre id=\"harness-result\">".len();
    let text = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let result: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
    (result, dom)
}

/// The checks every chart of every page must pass; returns the result.
fn check_charts(browser: &Path, dir: &Path, tmp: &Path, name: &str, ids: &[&str]) -> Value {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // No URL in the file but the chart library's banner comment.
    for scheme in ["http://", "https://"] {
        for (at, _) in html.match_indices(scheme) {
            assert!(
                html[at..].starts_with("https://github.com/leeoniya/uPlot")
                    && html[..at].ends_with("/*! "),
                "{name}: a URL in the page: {:.80}",
                &html[at..]
            );
        }
    }
    assert!(
        html.contains("connect-src 'none'"),
        "{name}: the page policy"
    );
    let (r, _) = drive(browser, dir, tmp, name);
    assert_eq!(r["errors"], Value::Array(vec![]), "{name}: harness errors");
    assert_eq!(r["csp"], Value::Array(vec![]), "{name}: policy violations");
    assert_eq!(r["resources"], 0, "{name}: the page made requests");
    assert_eq!(r["rendered"], "ok", "{name}: {}", r["page_errors"]);
    let charts = r["charts"].as_object().unwrap();
    let mut got: Vec<&str> = charts.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = ids.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{name}: charts");
    for (id, c) in charts {
        let what = format!("{name}/{id}");
        assert!(c["series"].as_u64().unwrap() >= 1, "{what}: {c}");
        assert!(
            c["lit"].as_u64().unwrap() > 1000,
            "{what}: nothing drawn: {c}"
        );
        let finite: Vec<bool> = c["finite"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        assert!(finite.iter().any(|f| *f), "{what}: no series has a value");
        for (i, f) in finite.iter().enumerate() {
            if *f {
                assert_eq!(
                    c["hides"][i],
                    true,
                    "{what}: hiding series {} from the legend changes nothing",
                    i + 1
                );
            }
            assert_eq!(
                c["restores"][i],
                true,
                "{what}: series {} does not come back",
                i + 1
            );
        }
        assert!(
            c["hover_idx"].is_u64(),
            "{what}: hovering sets no cursor: {c}"
        );
        let shown: Vec<&str> = c["hover_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            shown
                .iter()
                .any(|v| v.parse::<f64>().is_ok_and(f64::is_finite)),
            "{what}: hovering shows no value: {shown:?}"
        );
        assert_eq!(c["zoomed"], true, "{what}: a drag does not zoom");
        assert_eq!(
            c["unzoomed"], true,
            "{what}: a double-click does not reset the zoom"
        );
        assert_eq!(
            c["log_y"], true,
            "{what}: the log switch does not switch y to log"
        );
        assert_eq!(c["linear_again"], true, "{what}: and back");
        if c["has_slider"] == true {
            assert_eq!(
                c["smoothing_redraws"], true,
                "{what}: the slider changes nothing"
            );
            let raw = numbers(&c["raw"]);
            assert_series_close(
                &numbers(&c["smoothed"]),
                &tensorboard_smooth(&raw, 0.95),
                &what,
            );
        }
    }
    r
}

#[test]
fn interactive_charts_work_in_headless_chromium() {
    let Some(browser) = chromium() else {
        cnn_testing::skip(
            "interactive_charts_work_in_headless_chromium",
            "CNN_REQUIRE_CHROMIUM",
            "chromium (or chromium-browser) is not on PATH",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "--epochs",
        "3",
        "--limit-train",
        "128",
        "--batch-size",
        "16",
        "--quiet",
    ];
    let hostile = "</script><b>x</b> & \"y\"";
    std::fs::write(
        tmp.path().join("runs.toml"),
        format!("[[run]]\nlabel = '{hostile}'\nlr = 0.05\n[[run]]\nlr = 1e30\n"),
    )
    .unwrap();
    for args in [
        vec!["train", "--out", "run"],
        vec!["compare", "--out", "cmp", "--runs", "runs.toml"],
        vec!["curve", "--out", "curve", "--repeats", "1"],
    ] {
        let mut args = args;
        args.extend_from_slice(&small);
        let out = cnn(&args, tmp.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t = tmp.path();
    let r = check_charts(
        &browser,
        &t.join("run"),
        t,
        "run",
        &["step-loss", "step-lr", "epoch-loss", "epoch-accuracy"],
    );
    // The page's smoothing is TensorBoard's, gaps included.
    let probe = [Some(1.0), Some(2.0), None, Some(4.0), Some(8.0), Some(0.5)];
    assert_series_close(
        &numbers(&r["smooth"]),
        &tensorboard_smooth(&probe, 0.6),
        "smooth()",
    );
    // The per-step chart draws steps.csv's losses.
    let csv = std::fs::read_to_string(t.join("run/steps.csv")).unwrap();
    let losses: Vec<Option<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().ok())
        .collect();
    assert_series_close(
        &numbers(&r["charts"]["step-loss"]["raw"]),
        &losses,
        "steps.csv loss",
    );
    assert_eq!(r["charts"]["step-loss"]["has_slider"], true);
    let r = check_charts(
        &browser,
        &t.join("cmp"),
        t,
        "compare",
        &["val-accuracy", "val-loss", "train-loss", "step-loss"],
    );
    assert_eq!(r["charts"]["step-loss"]["has_slider"], true);
    // A label that closes a script element stays text: the page ran (the
    // harness's result is there) and the legend shows it as written.
    let (r2, dom) = drive(&browser, &t.join("cmp"), t, "compare-labels");
    assert!(!dom.contains("<b>x</b>"), "the label became markup");
    assert!(
        r2["charts"]["val-accuracy"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == hostile),
        "legend labels: {}",
        r2["charts"]["val-accuracy"]["labels"]
    );
    let r = check_charts(&browser, &t.join("curve"), t, "curve", &["score-vs-size"]);
    assert_eq!(r["charts"]["score-vs-size"]["has_log_x"], true);
    assert_eq!(r["charts"]["score-vs-size"]["log_x"], true);
}
