//! The HTML report renders in a real browser: headless Chromium opens the
//! `report.html` of a run and of a comparison; the page's own check script
//! must mark it `data-rendered="ok"` (every image decoded, no script
//! error), the DOM must hold the tables and images, and the screenshot must
//! be a real picture.
//!
//! Skips (and says why) when neither `chromium` nor `chromium-browser` is
//! on PATH; `CNN_REQUIRE_CHROMIUM=1` turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

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
