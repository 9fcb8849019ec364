//! Tidy: tests that read `src/` and hold the code to the rules
//! ARCHITECTURE.md states, so that they stay true (in the manner of
//! rust-analyzer's `xtask/src/tidy.rs`):
//! - modules import only from lower layers (`LAYERS`; the same layer's
//!   modules do not import each other, so there is no cycle);
//! - `domain` names no actix, sled, tokio, serde, `std::fs`, `std::net` or
//!   `SystemTime`: it does no I/O and reads no clock;
//! - every file opens with a `//!` line saying what it owns;
//! - `src/app.rs` stays wiring (`APP_LINES_MAX`).
//!
//! Each rule fails with the file and line; `planted_violations_are_caught`
//! shows that it does.

use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may import only from modules of a
/// lower layer (and from itself). The longest matching prefix of a module
/// path names its unit; a module that matches none is a violation, so a
/// new module takes its place here (and in ARCHITECTURE.md's table).
const LAYERS: &[(&str, u32)] = &[
    // The pure core, and what needs nothing of the crate.
    ("domain", 0),
    ("clock", 0),
    ("data_dir", 0),
    ("threads", 0),
    // Formats and bookkeeping over the domain.
    ("layout", 1),
    ("idempotency", 1),
    ("shard", 1),
    ("auth", 1),
    ("journal", 2),
    ("mail", 3),
    ("outbox", 3),
    ("outbox_record", 4),
    ("snapshot", 4),
    // State rebuilt from snapshot and journal (the answers it remembers
    // rendered by the API, through a trait it defines).
    ("recovery", 5),
    ("api", 6),
    // What runs: actors, and snapshots of the live server or a stopped one.
    ("actors", 7),
    ("snapshot::scheduler", 7),
    ("snapshot::offline", 7),
    ("metrics", 8),
    // The CLI's flags, read only by settings and the wiring above.
    ("config", 8),
    ("http", 9),
    // Wiring and the commands on top.
    ("settings", 10),
    ("app", 11),
    ("loadgen", 10),
    ("cli", 12),
    ("lib", 13),
    ("main", 13),
];

/// What `domain` must never name (in code; its comments may).
const DOMAIN_FORBIDDEN: &[&str] = &[
    "actix",
    "sled",
    "tokio",
    "serde",
    "std::fs",
    "std::net",
    "SystemTime",
];

/// The module path of a file under `src/`: `actors/section.rs` is
/// `actors::section`, `journal/mod.rs` is `journal`.
fn module_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs").trim_end_matches("/mod");
    rel.replace('/', "::")
}

/// The unit (longest prefix in `LAYERS`) of a module path, and its layer.
fn unit_of(module: &str) -> Option<(&'static str, u32)> {
    LAYERS
        .iter()
        .filter(|(key, _)| {
            module == *key
                || module
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(key, _)| key.len())
        .copied()
}

/// Code without comments: `//` to the end of the line is dropped (string
/// literals holding `//` are rare enough here not to matter).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The crate paths a line names: `crate::a::b` (and `boxoffice::a::b` in
/// the binary, `super::b` resolved against `module`), as module paths of
/// two segments at most, which is as deep as a unit goes.
fn named_paths(module: &str, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parent = match module.rsplit_once("::") {
        Some((parent, _)) => parent.to_owned(),
        None => String::new(),
    };
    for (prefix, base) in [
        ("crate::", String::new()),
        ("boxoffice::", String::new()),
        ("super::", parent),
    ] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            // `crate::{a::X, b}`: each name of the group is a path.
            let heads: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for head in heads {
                let segments: Vec<&str> = head
                    .split("::")
                    .take(2)
                    .map(|s| {
                        s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or("")
                    })
                    .take_while(|s| {
                        !s.is_empty() && s.starts_with(|c: char| c.is_ascii_lowercase())
                    })
                    .collect();
                let path = match (base.is_empty(), segments.is_empty()) {
                    (_, true) if base.is_empty() => continue,
                    (_, true) => base.clone(),
                    (true, false) => segments.join("::"),
                    (false, false) => format!("{base}::{}", segments.join("::")),
                };
                out.push(path);
            }
        }
    }
    out
}

/// Every violation in one file: `rel` is its path under `src/`.
fn check_file(rel: &str, text: &str) -> Vec<String> {
    check_file_shown(rel, &format!("src/{rel}"), text)
}

/// The same, for a file whose module path is `rel`'s (`domain/section.rs`)
/// and which is shown as `shown` (`crates/domain/src/section.rs`).
fn check_file_shown(rel: &str, shown: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.starts_with("//!") {
        problems.push(format!(
            "{shown}:1: a file opens with a `//!` line saying what it owns"
        ));
    }
    let module = module_of(rel);
    let Some((unit, layer)) = unit_of(&module) else {
        problems.push(format!(
            "{shown}: module `{module}` has no layer: give it one in tests/tidy.rs and ARCHITECTURE.md"
        ));
        return problems;
    };
    for (n, line) in text.lines().enumerate() {
        // Test modules sit at the end of a file and may reach anywhere.
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = code(line);
        if unit == "domain" {
            for word in DOMAIN_FORBIDDEN {
                if code.contains(word) {
                    problems.push(format!(
                        "{shown}:{}: `domain` names `{word}`: it does no I/O, reads no clock and knows no framework",
                        n + 1
                    ));
                }
            }
        }
        for path in named_paths(&module, code) {
            match unit_of(&path) {
                Some((to, _)) if to == unit => {}
                Some((_, to_layer)) if to_layer < layer => {}
                Some((to, to_layer)) => problems.push(format!(
                    "{shown}:{}: `{unit}` (layer {layer}) imports `{to}` (layer {to_layer}): imports point down only",
                    n + 1
                )),
                None => problems.push(format!(
                    "{shown}:{}: `{path}` is in no layer",
                    n + 1
                )),
            }
        }
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn src_keeps_its_layers_and_its_doc_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() >= 6, "read {} files", files.len());
    let mut problems: Vec<String> = files
        .iter()
        .flat_map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy();
            check_file(&rel, &std::fs::read_to_string(path).unwrap())
        })
        .collect();
    // The crates: Cargo keeps what each may depend on; this keeps their
    // doc lines, the layers between the modules of one crate, and what a
    // manifest cannot say of the domain (no `std::fs`, `std::net`,
    // `SystemTime`). A store module's path is its path in the server, as
    // `boxoffice` re-exports it (`journal`, `snapshot::wire`).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (krate, prefix, files_min) in [
        ("domain", "domain/", 7),
        ("store", "", 11),
        ("auth", "auth/", 7),
        ("loadgen", "loadgen/", 8),
        ("runtime", "", 20),
        ("http", "http/", 20),
    ] {
        let dir = root.join("crates").join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        files.sort();
        assert!(
            files.len() >= files_min,
            "{krate}: read {} files",
            files.len()
        );
        for path in &files {
            let rel = path.strip_prefix(&dir).unwrap().to_string_lossy();
            let shown = path.strip_prefix(root).unwrap().to_string_lossy();
            // The wire types keep their own layer under the HTTP crate.
            let prefix = if rel.starts_with("api/") { "" } else { prefix };
            problems.extend(check_file_shown(
                &format!("{prefix}{rel}"),
                &shown,
                &std::fs::read_to_string(path).unwrap(),
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// `app.rs` wires; what it starts lives in the modules that own it. A
/// helper that grows there (settings parsing, a background loop) belongs
/// next to the type it builds.
const APP_LINES_MAX: usize = 350;

#[test]
fn app_is_wiring_only() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app.rs");
    let lines = std::fs::read_to_string(app).unwrap().lines().count();
    assert!(
        lines <= APP_LINES_MAX,
        "src/app.rs has {lines} lines (at most {APP_LINES_MAX}): move what is not wiring to the module it serves"
    );
}

#[test]
fn planted_violations_are_caught() {
    // An import that points up a layer, named with file and line.
    assert_eq!(
        check_file(
            "journal/record.rs",
            "//! Records.\nuse crate::domain::Change;\nuse crate::mail::MailKind;\n"
        ),
        ["src/journal/record.rs:3: `journal` (layer 2) imports `mail` (layer 3): imports point down only"]
    );
    // Recovery knows nothing of HTTP, however it names it.
    assert_eq!(
        check_file(
            "recovery.rs",
            "//! Recovery.\nfn f() { crate::http::event_body(); }\n"
        )
        .len(),
        1
    );
    // Two modules of one layer do not import each other.
    assert_eq!(
        check_file(
            "actors/registry.rs",
            "//! Registry.\nuse crate::snapshot::scheduler::Snapshotter;\n"
        )
        .len(),
        1
    );
    // `super::` resolves against the file's own module.
    assert_eq!(
        check_file(
            "snapshot/wire.rs",
            "//! Wire.\nuse super::scheduler::Snapshotter;\n"
        )
        .len(),
        1
    );
    assert!(check_file(
        "snapshot/scheduler.rs",
        "//! Scheduler.\nuse super::wire::Body;\n"
    )
    .is_empty());
    // Names in a group count one by one.
    assert_eq!(
        check_file(
            "journal/mod.rs",
            "//! Journal.\nuse crate::{domain::Change, mail::MailKind};\n"
        )
        .len(),
        1
    );
    assert_eq!(
        check_file(
            "snapshot/wire.rs",
            "//! Wire.\nuse super::{scheduler::Snapshotter, Body};\n"
        )
        .len(),
        1
    );
    // The domain names no framework and does no I/O, in code.
    let domain = check_file(
        "domain/section.rs",
        "//! Sections.\n// Knows nothing of sled.\nuse serde::Serialize;\nfn f() { std::fs::read(\"x\"); }\nfn g() { std::time::SystemTime::now(); }\n",
    );
    assert_eq!(domain.len(), 3, "{domain:?}");
    assert!(domain[0].starts_with("src/domain/section.rs:3:"));
    // Every file says what it owns.
    assert_eq!(
        check_file("clock.rs", "use std::time::Duration;\n"),
        ["src/clock.rs:1: a file opens with a `//!` line saying what it owns"]
    );
    // A new module takes a place in the table.
    assert_eq!(check_file("queue/mod.rs", "//! Queue.\n").len(), 1);
    // Test modules are not held to the layers.
    assert!(check_file(
        "journal/mod.rs",
        "//! Journal.\n#[cfg(test)]\nmod tests { use crate::app::Application; }\n"
    )
    .is_empty());
}
