//! The page of `report.html` as data, and its rendering: a [`Page`] is a
//! title, a list of [`Block`]s (headings, paragraphs, tables, figures,
//! charts, ...) and the charts' data; [`Page::finish`] renders it through
//! the minijinja template `assets/report/report.html.j2` with HTML
//! auto-escaping, so no text from a run's files reaches the page
//! unescaped. The charts' data goes in as JSON in a
//! `<script type="application/json">` element, escaped by [`script_json`]
//! so that no string in it can close the element.
//!
//! Everything the page needs is embedded: the style sheet, the check
//! script, the chart script and the vendored uPlot library
//! (`assets/uplot/`, with its licence and a README saying which version
//! it is and how to update it).

use std::path::Path;

use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;

use crate::diagnose::Finding;
use crate::error::{Result, TrainError};

use super::charts::Chart;

const TEMPLATE: &str = include_str!("../../assets/report/report.html.j2");
const STYLE: &str = include_str!("../../assets/report/report.css");
const CHECK_SCRIPT: &str = include_str!("../../assets/report/check.js");
const CHARTS_SCRIPT: &str = include_str!("../../assets/report/report.js");
const UPLOT_JS: &str = include_str!("../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../assets/uplot/LICENSE");
/// The vendored uPlot's version (`assets/uplot/README.md`).
pub const UPLOT_VERSION: &str = "1.6.32";

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One table cell (or header cell); `text_col` cells are left-aligned.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub text: String,
    pub text_col: bool,
}

/// One finding of the diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct FindingItem {
    pub kind: &'static str,
    pub message: String,
}

/// One piece of the page, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    H2 {
        text: String,
    },
    H3 {
        text: String,
    },
    P {
        text: String,
    },
    /// An embedded PNG: `src` is a `data:image/png;base64,` URI that
    /// [`Page::png`] builds from base64 text only, so the template writes
    /// it unescaped.
    Figure {
        alt: String,
        src: String,
        caption: String,
    },
    /// An interactive chart: [`Chart`] `id` in the page's data.
    Chart {
        id: String,
        caption: String,
    },
    Table {
        class: String,
        header: Vec<Cell>,
        rows: Vec<Vec<Cell>>,
    },
    Findings {
        items: Vec<FindingItem>,
    },
    List {
        class: String,
        items: Vec<String>,
    },
    Pre {
        text: String,
    },
}

/// The data the chart script reads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageData {
    pub charts: Vec<Chart>,
}

/// A page being put together.
#[derive(Debug, Clone)]
pub struct Page {
    title: String,
    subtitle: String,
    blocks: Vec<Block>,
    data: PageData,
}

impl Page {
    pub fn new(title: &str, subtitle: &str) -> Self {
        Page {
            title: title.to_string(),
            subtitle: subtitle.to_string(),
            blocks: Vec::new(),
            data: PageData::default(),
        }
    }

    pub fn h2(&mut self, text: &str) {
        self.blocks.push(Block::H2 { text: text.into() });
    }

    pub fn h3(&mut self, text: &str) {
        self.blocks.push(Block::H3 { text: text.into() });
    }

    pub fn p(&mut self, text: &str) {
        self.blocks.push(Block::P { text: text.into() });
    }

    /// Embed a PNG file; a missing file is a note, not an error.
    pub fn png(&mut self, path: &Path, alt: &str, caption: &str) -> Result<()> {
        if !path.is_file() {
            self.p(&format!("({} was not written.)", path.display()));
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        self.blocks.push(Block::Figure {
            alt: alt.into(),
            src: format!("data:image/png;base64,{}", base64(&bytes)),
            caption: caption.into(),
        });
        Ok(())
    }

    /// An interactive chart with a caption; charts without any series
    /// are left out.
    pub fn chart(&mut self, chart: Chart, caption: &str) {
        if chart.series.is_empty() || chart.x.is_empty() {
            return;
        }
        self.blocks.push(Block::Chart {
            id: chart.id.clone(),
            caption: caption.into(),
        });
        self.data.charts.push(chart);
    }

    pub fn table(
        &mut self,
        class: &str,
        header: &[&str],
        rows: &[Vec<String>],
        text_cols: &[usize],
    ) {
        let cells = |row: &mut dyn Iterator<Item = &str>| -> Vec<Cell> {
            row.enumerate()
                .map(|(i, t)| Cell {
                    text: t.to_string(),
                    text_col: text_cols.contains(&i),
                })
                .collect()
        };
        self.blocks.push(Block::Table {
            class: class.into(),
            header: cells(&mut header.iter().copied()),
            rows: rows
                .iter()
                .map(|r| cells(&mut r.iter().map(String::as_str)))
                .collect(),
        });
    }

    pub fn findings(&mut self, findings: &[Finding]) {
        self.blocks.push(Block::Findings {
            items: findings
                .iter()
                .map(|f| FindingItem {
                    kind: f.kind.name(),
                    message: f.message.clone(),
                })
                .collect(),
        });
    }

    /// A list of plain sentences, e.g. what could not be read.
    pub fn list(&mut self, class: &str, items: &[String]) {
        self.blocks.push(Block::List {
            class: class.into(),
            items: items.to_vec(),
        });
    }

    pub fn pre(&mut self, text: &str) {
        self.blocks.push(Block::Pre { text: text.into() });
    }

    /// The page's HTML.
    pub fn finish(self) -> Result<String> {
        let data_json = script_json(&self.data)?;
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        let failed =
            |e: minijinja::Error| TrainError::Report(format!("cannot render report.html: {e:#}"));
        env.add_template("report.html", TEMPLATE).map_err(failed)?;
        let mut html = env
            .get_template("report.html")
            .map_err(failed)?
            .render(context! {
                version => env!("CARGO_PKG_VERSION"),
                uplot_version => UPLOT_VERSION,
                title => self.title,
                subtitle => self.subtitle,
                blocks => Value::from_serialize(&self.blocks),
                style => STYLE,
                check_script => CHECK_SCRIPT,
                charts_script => CHARTS_SCRIPT,
                uplot_js => UPLOT_JS,
                uplot_license => UPLOT_LICENSE,
                uplot_css => UPLOT_CSS,
                data_json => data_json,
            })
            .map_err(failed)?;
        if !html.ends_with('\n') {
            html.push('\n');
        }
        Ok(html)
    }
}

/// `value` as JSON that can sit inside a `<script>` element: `<`, `>` and
/// `&` are written as `\u003c`, `\u003e` and `\u0026` (JSON's own escapes,
/// so `JSON.parse` reads the same text back), and so are U+2028 and U+2029;
/// no `</script>` or `<!--` can appear. Non-finite floats are `null`.
pub fn script_json<T: Serialize>(value: &T) -> Result<String> {
    let text = serde_json::to_string(value)
        .map_err(|e| TrainError::Report(format!("cannot encode the report's data: {e}")))?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::Series;

    const HOSTILE: &str = "</script><script>alert(1)</script><!-- & 'x' \u{2028}";

    fn chart(label: &str) -> Chart {
        Chart {
            id: "c".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            x: vec![1.0, 2.0],
            series: vec![Series {
                label: label.into(),
                values: vec![0.5, f64::NAN],
                smooth: true,
            }],
            log_y: false,
            log_x_option: false,
        }
    }

    #[test]
    fn script_json_cannot_close_the_script_element_and_reads_back() {
        let data = PageData {
            charts: vec![chart(HOSTILE)],
        };
        let text = script_json(&data).unwrap();
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!text.contains(bad), "{bad:?} in {text}");
        }
        // JSON's own escapes: the same label reads back; NaN is a gap.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["charts"][0]["series"][0]["label"], HOSTILE);
        assert_eq!(
            back["charts"][0]["series"][0]["values"][1],
            serde_json::Value::Null
        );
    }

    #[test]
    fn every_text_is_escaped_and_the_page_has_one_data_element() {
        let mut page = Page::new(HOSTILE, HOSTILE);
        page.h2(HOSTILE);
        page.p(HOSTILE);
        page.pre(HOSTILE);
        page.list("damage", &[HOSTILE.to_string()]);
        page.table("t", &[HOSTILE], &[vec![HOSTILE.to_string()]], &[0]);
        page.chart(chart(HOSTILE), HOSTILE);
        let html = page.finish().unwrap();
        assert!(!html.contains("<script>alert"), "markup from text");
        assert!(!html.contains("<!--"), "a comment opened from text");
        // The page's own scripts only: check, data, uPlot, charts.
        assert_eq!(html.matches("</script>").count(), 4);
        assert_eq!(
            html.matches("id=\"cnn-report-data\" type=\"application/json\">{")
                .count(),
            1
        );
        assert!(html.contains("&lt;&#x2f;script&gt;") || html.contains("&lt;/script&gt;"));
        assert!(html.contains("connect-src 'none'"));
        assert!(
            html.contains("Copyright (c) 2022 Leon Sorokin"),
            "uPlot's licence"
        );
        assert!(html.contains("id=\"chart-c\""));
    }

    #[test]
    fn a_chart_without_data_is_left_out() {
        let mut page = Page::new("t", "s");
        let mut empty = chart("x");
        empty.x.clear();
        page.chart(empty, "none");
        assert!(page.data.charts.is_empty() && page.blocks.is_empty());
    }
}
