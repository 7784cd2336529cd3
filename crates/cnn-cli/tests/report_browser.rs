//! The HTML report renders in a real browser: headless Chromium opens the
//! `report.html` of a run and of a comparison; the page's own check script
//! must mark it `data-rendered="ok"` (every image decoded, no script
//! error), the DOM must hold the tables and images (as many as the file
//! has, counted here), and the screenshot must be a real picture. The
//! marker itself is tested: a copy with one image's bytes broken must be
//! marked `failed`.
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
