//! Tidy checks: the invariants ARCHITECTURE.md states, checked on the source
//! tree itself (as rust-analyzer's `tidy.rs` does), so that a change that
//! breaks one fails `cargo test` instead of waiting for a reader to notice.
//!
//! - no import circle between the source files of a crate (text-level
//!   `crate::` paths, the rule of `shared/tools/rust_file_cycles.py`);
//! - cnn-core depends on no backend library and no other crate of the
//!   workspace; cnn-optim and cnn-testing depend on no backend; cnn-cuda
//!   uses cnn-cpu only as a dev-dependency;
//! - every Backend op has a CPU and a CUDA twin and a test that checks the
//!   CUDA one (the shared conformance suite or the CUDA-vs-CPU comparison),
//!   and every `.cu` file has a cnn-cpu module of the same name;
//! - no source file over 1,000 lines;
//! - every crate and module opens with a `//!` doc;
//! - ARCHITECTURE.md's codemap names every module.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, skipping build output and hidden folders.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `src` folders of the workspace's crates (crates/*, xtask, benches).
fn source_dirs() -> Vec<(String, PathBuf)> {
    let root = root();
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(root.join("crates"))
        .expect("crates/ exists")
        .flatten()
        .filter(|e| e.path().join("src").is_dir())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("src"),
            )
        })
        .collect();
    for extra in ["xtask", "benches"] {
        if root.join(extra).join("src").is_dir() {
            dirs.push((extra.to_string(), root.join(extra).join("src")));
        }
    }
    dirs.sort();
    dirs
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

// ---- import circles ---------------------------------------------------------

/// A source file's module path inside its crate (`conv/direct/avx2.rs` ->
/// `["conv", "direct", "avx2"]`; `mod.rs`, `lib.rs`, `main.rs` name their
/// folder).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut segs: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segs.first().is_some_and(|s| s == "bin") {
        return Vec::new(); // src/bin/*: binaries, crate roots of their own
    }
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

/// Text with every `//` comment removed (doc links do not make an import).
fn strip_line_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths named after `prefix` at `s`: `a::b` gives `[a::b]`,
/// `a::{b, c::d}` gives `[a::b, a::c::d]`, `{x, y}` gives `[x, y]`.
fn paths_at(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0usize;
        let mut start = 0usize;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths_at(&inner[start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths_at(&inner[start..i], prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    if end == 0 {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let mut path = prefix;
    path.push(s[..end].to_string());
    let rest = &s[end..];
    match rest.strip_prefix("::") {
        Some(after) => paths_at(after, path, out),
        None => out.push(path),
    }
}

/// The `crate::` paths a file names.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let text = strip_line_comments(text);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("crate::") {
        let at = from + i;
        let preceded_by_ident = text[..at].chars().next_back().is_some_and(is_ident);
        if !preceded_by_ident {
            paths_at(&text[at + "crate::".len()..], Vec::new(), &mut out);
        }
        from = at + "crate::".len();
    }
    out
}

/// The file-level import graph of one crate: file -> files it names.
fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = rust_files(src);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_path(src, f), f.clone()))
        .filter(|(m, _)| !m.is_empty())
        .collect();
    let mut graph = BTreeMap::new();
    for file in modules.values() {
        let mut deps = BTreeSet::new();
        for path in crate_paths(&read(file)) {
            for k in (1..=path.len()).rev() {
                if let Some(target) = modules.get(&path[..k]) {
                    if target != file {
                        deps.insert(target.clone());
                    }
                    break;
                }
            }
        }
        graph.insert(file.clone(), deps);
    }
    graph
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().expect("on stack");
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn the_cycle_finder_finds_a_planted_circle() {
    // Guards the check below: a finder that never reports would pass it.
    let dir = std::env::temp_dir().join(format!("tidy-cycle-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod c;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::b::{inner::X, Y};\n").unwrap();
    fs::write(src.join("b/mod.rs"), "pub mod inner;\npub struct Y;\n").unwrap();
    fs::write(
        src.join("b/inner.rs"),
        "// crate::c in a comment is no import\npub fn f() { crate::a::g() }\n",
    )
    .unwrap();
    fs::write(src.join("c.rs"), "pub fn h() { crate::b::inner::f() }\n").unwrap();
    let found = cycles(&import_graph(&src));
    fs::remove_dir_all(&dir).ok();
    let names: Vec<Vec<String>> = found
        .iter()
        .map(|c| c.iter().map(|p| rel_to(p, &src)).collect())
        .collect();
    assert_eq!(
        names,
        vec![vec!["a.rs".to_string(), "b/inner.rs".to_string()]]
    );
}

fn rel_to(p: &Path, base: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

#[test]
fn no_import_circle_between_the_files_of_a_crate() {
    let mut found = Vec::new();
    for (name, src) in source_dirs() {
        for comp in cycles(&import_graph(&src)) {
            let files: Vec<String> = comp.iter().map(|p| rel(p)).collect();
            found.push(format!("{name}: {}", files.join(" -> ")));
        }
    }
    assert!(
        found.is_empty(),
        "source files that import each other in a circle:\n{}",
        found.join("\n")
    );
}

// ---- dependencies -----------------------------------------------------------

/// The package names in one dependency table of a crate's Cargo.toml.
fn dependencies(krate: &str, table: &str) -> BTreeSet<String> {
    let path = root().join("crates").join(krate).join("Cargo.toml");
    let manifest: toml::Table = read(&path)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    manifest
        .get(table)
        .and_then(|t| t.as_table())
        .map(|t| {
            t.iter()
                .map(|(k, v)| {
                    v.get("package")
                        .and_then(|p| p.as_str())
                        .unwrap_or(k)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

const BACKEND_LIBRARIES: [&str; 5] = ["rayon", "matrixmultiply", "cudarc", "cnn-cpu", "cnn-cuda"];

#[test]
fn the_core_and_the_optimizers_depend_on_no_backend() {
    let core = dependencies("cnn-core", "dependencies");
    let workspace_crates: Vec<&String> = core.iter().filter(|d| d.starts_with("cnn")).collect();
    assert!(
        workspace_crates.is_empty(),
        "cnn-core depends on {workspace_crates:?}: it must depend on no other crate of the workspace"
    );
    for krate in ["cnn-core", "cnn-optim", "cnn-testing"] {
        let deps = dependencies(krate, "dependencies");
        let backends: Vec<&str> = BACKEND_LIBRARIES
            .into_iter()
            .filter(|b| deps.contains(*b))
            .collect();
        assert!(
            backends.is_empty(),
            "{krate} depends on the backend libraries {backends:?}"
        );
    }
    assert!(
        !dependencies("cnn-cuda", "dependencies").contains("cnn-cpu"),
        "cnn-cuda may use cnn-cpu only as a dev-dependency (the reference in its tests)"
    );
}

// ---- backend twins ----------------------------------------------------------

/// The Backend trait's ops that a backend must implement: trait methods
/// declared in `cnn-core/src/backend/` without a default body.
fn required_backend_ops() -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for file in rust_files(&root().join("crates/cnn-core/src/backend")) {
        let text = strip_line_comments(&read(&file));
        let mut from = 0;
        while let Some(i) = text[from..].find("\n    fn ") {
            let start = from + i + "\n    fn ".len();
            let name_end = start
                + text[start..]
                    .find(|c: char| !is_ident(c))
                    .unwrap_or(text.len() - start);
            let name = &text[start..name_end];
            // The signature ends at the first `;` (required) or `{` (default).
            let end = text[name_end..]
                .find([';', '{'])
                .map(|j| &text[name_end + j..name_end + j + 1]);
            if end == Some(";") {
                ops.insert(name.to_string());
            }
            from = name_end;
        }
    }
    ops
}

fn all_text(dir: &Path) -> String {
    rust_files(dir)
        .iter()
        .map(|f| read(f))
        .collect::<Vec<_>>()
        .join("\n")
}

fn names_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn every_backend_op_has_a_cpu_and_a_cuda_twin_and_a_test_of_the_cuda_one() {
    let root = root();
    let ops = required_backend_ops();
    assert!(
        ops.len() > 40,
        "found only {} Backend ops: the trait parser is broken",
        ops.len()
    );
    let cpu = all_text(&root.join("crates/cnn-cpu/src"));
    let cuda = all_text(&root.join("crates/cnn-cuda/src"));
    let tests = all_text(&root.join("crates/cnn-testing/src/conformance"))
        + &read(&root.join("crates/cnn-cuda/tests/vs_cpu.rs"));
    let mut missing = Vec::new();
    for op in &ops {
        let def = format!("fn {op}");
        if !names_word(&cpu, &def) {
            missing.push(format!("{op}: no CPU implementation in cnn-cpu"));
        }
        if !names_word(&cuda, &def) {
            missing.push(format!("{op}: no CUDA implementation in cnn-cuda"));
        }
        if !names_word(&tests, op) {
            missing.push(format!(
                "{op}: neither the conformance suite nor cnn-cuda/tests/vs_cpu.rs calls it"
            ));
        }
    }
    // Each `.cu` kernel file has its CPU twin module.
    for entry in fs::read_dir(root.join("crates/cnn-cuda/src"))
        .unwrap()
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "cu") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let cpu_src = root.join("crates/cnn-cpu/src");
            if !cpu_src.join(format!("{stem}.rs")).is_file()
                && !cpu_src.join(&stem).join("mod.rs").is_file()
            {
                missing.push(format!("{}: no cnn-cpu module `{stem}` beside it", rel(&p)));
            }
        }
    }
    // Both backends run the whole conformance suite.
    let checks = |file: &str| -> BTreeSet<String> {
        let text = read(&root.join(file));
        text.match_indices("conformance::check_")
            .map(|(i, m)| {
                let s = &text[i + m.len()..];
                let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
                s[..end].to_string()
            })
            .collect()
    };
    let on_cpu = checks("crates/cnn-cpu/tests/conformance.rs");
    let on_cuda = checks("crates/cnn-cuda/tests/conformance.rs");
    if on_cpu != on_cuda || on_cpu.is_empty() {
        missing.push(format!(
            "the CPU and CUDA conformance tests run different families: {on_cpu:?} vs {on_cuda:?}"
        ));
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

// ---- files ------------------------------------------------------------------

#[test]
fn no_source_file_is_over_1000_lines() {
    let root = root();
    let mut long = Vec::new();
    for dir in ["crates", "xtask", "benches", "fuzz"] {
        for f in rust_files(&root.join(dir)) {
            let lines = read(&f).lines().count();
            if lines > 1000 {
                long.push(format!("{} has {lines} lines", rel(&f)));
            }
        }
    }
    assert!(long.is_empty(), "split these by job:\n{}", long.join("\n"));
}

#[test]
fn every_crate_and_module_opens_with_a_doc() {
    let mut undocumented = Vec::new();
    for (_, src) in source_dirs() {
        for f in rust_files(&src) {
            let text = read(&f);
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                undocumented.push(rel(&f));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "open these with a `//!` doc saying their one job:\n{}",
        undocumented.join("\n")
    );
}

/// The identifier-like words inside backticks of `text`.
fn backticked_words(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| {
            span.split(|c: char| !is_ident(c))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_codemap_names_every_module() {
    let root = root();
    let arch = read(&root.join("ARCHITECTURE.md"));
    let start = arch
        .find("## Codemap")
        .expect("ARCHITECTURE.md has a Codemap");
    let codemap = &arch[start..];
    let codemap = &codemap[..codemap[3..].find("\n## ").map_or(codemap.len(), |i| i + 3)];
    // The codemap's bullets, each about the crate whose folder it names.
    let bullets: Vec<&str> = codemap.split("\n- ").skip(1).collect();
    let mut unnamed = Vec::new();
    for (krate, src) in source_dirs() {
        let folder = if krate == "xtask" || krate == "benches" {
            format!("{krate}/")
        } else {
            format!("crates/{krate}/")
        };
        let words: BTreeSet<String> = bullets
            .iter()
            .filter(|b| b.contains(&folder))
            .flat_map(|b| backticked_words(b))
            .collect();
        for f in rust_files(&src) {
            let module = module_path(&src, &f);
            let Some(name) = module.last() else {
                continue; // lib.rs / main.rs: the crate itself
            };
            if name == "tests" {
                continue; // unit tests of the module beside them
            }
            if !words.contains(name) {
                unnamed.push(format!("{} (`{name}`)", rel(&f)));
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md's codemap names none of these modules (in backticks, in a bullet naming their crate's folder):\n{}",
        unnamed.join("\n")
    );
}
