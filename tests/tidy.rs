//! Tidy: tests that read the sources and hold them to the rules the
//! compiler cannot check (in the manner of rust-analyzer's
//! `xtask/src/tidy.rs`). Which crate may use which is Cargo's to keep:
//! each layer is a crate, and a dependency its manifest does not declare
//! cannot be imported. What is left here:
//! - every file opens with a `//!` line saying what it owns;
//! - the domain names no `std::fs`, `std::net` or `SystemTime` (its
//!   manifest keeps actix, sled, tokio and serde out, but not the
//!   standard library's I/O);
//! - a function is at most `FN_LINES_MAX` lines, but for the few listed in
//!   `LONG_FNS`, each held to its length today;
//! - the request path (the HTTP crate) has no `.unwrap()` or `.expect(`:
//!   a request whose answer cannot be made gets an error, not a panic on a
//!   worker's thread;
//! - `src/app.rs` stays wiring (`APP_LINES_MAX`).
//!
//! Each rule fails with the file and line; `planted_violations_are_caught`
//! shows that it does.

use std::path::{Path, PathBuf};

/// What the domain must never name (in code; its comments may).
const DOMAIN_FORBIDDEN: &[&str] = &["std::fs", "std::net", "SystemTime"];

/// Longest function, signature to closing brace.
const FN_LINES_MAX: usize = 120;

/// The functions longer than that today, each held to its length: most
/// are tables (routes, metrics, error codes) or one pass over a record
/// kind. Shorten one, lower its figure; none is added.
const LONG_FNS: &[(&str, &str, usize)] = &[
    ("crates/runtime/src/metrics.rs", "new", 232),
    ("src/app.rs", "build", 178),
    ("crates/store/src/layout.rs", "build", 178),
    ("crates/loadgen/src/lib.rs", "execute", 170),
    ("crates/http/src/lib.rs", "configure", 156),
    ("crates/http/src/error.rs", "from_section", 139),
    ("crates/store/src/recovery.rs", "apply", 134),
];

/// `app.rs` wires; what it starts lives in the modules that own it. A
/// helper that grows there (settings parsing, a background loop) belongs
/// next to the type it builds.
const APP_LINES_MAX: usize = 350;

/// Code without comments: `//` to the end of the line is dropped (string
/// literals holding `//` are rare enough here not to matter).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The lines before the file's test module (which sits at its end).
fn non_test_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| !line.starts_with("#[cfg(test)]"))
        .map(|(n, line)| (n + 1, line))
}

/// The name of the function a line declares, if it does.
fn declared_fn(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "fn" => {
                let name = words.next()?;
                return name
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next();
            }
            w if w.starts_with("pub") => {}
            "const" | "async" | "unsafe" | "extern" | "\"C\"" => {}
            _ => return None,
        }
    }
    None
}

/// Every problem of one file, shown as `shown` (its path from the root).
fn check_file(shown: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.starts_with("//!") {
        problems.push(format!(
            "{shown}:1: a file opens with a `//!` line saying what it owns"
        ));
    }
    let domain = shown.starts_with("crates/domain/");
    let request_path = shown.starts_with("crates/http/");
    for (n, line) in non_test_lines(text) {
        let code = code(line);
        if domain {
            for word in DOMAIN_FORBIDDEN {
                if code.contains(word) {
                    problems.push(format!(
                        "{shown}:{n}: the domain names `{word}`: it does no I/O and reads no clock"
                    ));
                }
            }
        }
        if request_path && (code.contains(".unwrap()") || code.contains(".expect(")) {
            problems.push(format!(
                "{shown}:{n}: no `.unwrap()` or `.expect(` on the request path: answer an error"
            ));
        }
    }
    problems.extend(long_functions(shown, text));
    problems
}

/// Every function with a body: its line, name and length, from the `fn`
/// line to the brace that closes it at the same indent.
fn functions(text: &str) -> Vec<(usize, &str, usize)> {
    let lines: Vec<(usize, &str)> = non_test_lines(text).collect();
    let mut out = Vec::new();
    for (i, &(n, line)) in lines.iter().enumerate() {
        let Some(name) = declared_fn(line) else {
            continue;
        };
        // A declaration without a body (a trait's) ends at `;`.
        let Some(open) = lines[i..].iter().position(|(_, l)| {
            let l = code(l).trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if code(lines[i + open].1).trim_end().ends_with(';') {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|(_, l)| *l == close) {
            out.push((n, name, end + 1));
        }
    }
    out
}

/// Functions longer than they may be.
fn long_functions(shown: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, name, len) in functions(text) {
        let max = LONG_FNS
            .iter()
            .find(|(file, f, _)| *file == shown && *f == name)
            .map_or(FN_LINES_MAX, |&(_, _, max)| max);
        if len > max {
            problems.push(format!(
                "{shown}:{n}: `{name}` has {len} lines (at most {max}): split it"
            ));
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
fn sources_keep_their_doc_lines_and_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        dirs.push(krate.unwrap().path().join("src"));
    }
    let mut files = Vec::new();
    for dir in &dirs {
        rust_files(dir, &mut files);
    }
    files.sort();
    assert!(files.len() > 80, "read {} files", files.len());
    let problems: Vec<String> = files
        .iter()
        .flat_map(|path| {
            let shown = path.strip_prefix(root).unwrap().to_string_lossy();
            check_file(&shown, &std::fs::read_to_string(path).unwrap())
        })
        .collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // A listed long function that got shorter lowers its figure, so it
    // cannot grow back unseen.
    for (file, name, max) in LONG_FNS {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let longest = functions(&text)
            .into_iter()
            .filter(|(_, f, _)| f == name)
            .map(|(_, _, len)| len)
            .max();
        assert_eq!(
            longest,
            Some(*max),
            "{file}: `{name}` is no longer {max} lines: set its figure in LONG_FNS (or drop it at {FN_LINES_MAX} or fewer)"
        );
    }
}

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
    // Every file says what it owns.
    assert_eq!(
        check_file("crates/store/src/clock.rs", "use std::time::Duration;\n"),
        ["crates/store/src/clock.rs:1: a file opens with a `//!` line saying what it owns"]
    );
    // The domain does no I/O and reads no clock, in code (comments may
    // name them); nor does a test module count.
    let domain = check_file(
        "crates/domain/src/section.rs",
        "//! Sections.\n// Knows nothing of std::fs.\nfn f() { std::fs::read(\"x\"); }\nfn g() { std::time::SystemTime::now(); }\n#[cfg(test)]\nmod tests { fn h() { std::fs::read(\"x\"); } }\n",
    );
    assert_eq!(domain.len(), 2, "{domain:?}");
    assert!(domain[0].starts_with("crates/domain/src/section.rs:3:"));
    // Elsewhere the standard library's I/O is fine.
    assert!(check_file("crates/store/src/x.rs", "//! X.\nuse std::fs;\n").is_empty());
    // No panic on the request path; tests and other crates may.
    assert_eq!(
        check_file(
            "crates/http/src/handlers.rs",
            "//! Handlers.\nfn f(x: Option<u8>) -> u8 { x.unwrap() }\nfn g(x: Option<u8>) -> u8 { x.expect(\"some\") }\n"
        ),
        [
            "crates/http/src/handlers.rs:2: no `.unwrap()` or `.expect(` on the request path: answer an error",
            "crates/http/src/handlers.rs:3: no `.unwrap()` or `.expect(` on the request path: answer an error",
        ]
    );
    assert!(check_file(
        "crates/runtime/src/actors/section.rs",
        "//! Sections.\nfn f(x: Option<u8>) -> u8 { x.unwrap() }\n"
    )
    .is_empty());
    // A function past its bound, and a listed one past its own figure.
    let body = |name: &str, lines: usize| {
        format!(
            "//! F.\npub fn {name}() {{\n{}}}\n",
            "    let _ = 1;\n".repeat(lines - 2)
        )
    };
    assert!(check_file("crates/store/src/x.rs", &body("fine", FN_LINES_MAX)).is_empty());
    assert_eq!(
        check_file("crates/store/src/x.rs", &body("long", FN_LINES_MAX + 1)),
        [format!(
            "crates/store/src/x.rs:2: `long` has {} lines (at most {FN_LINES_MAX}): split it",
            FN_LINES_MAX + 1
        )]
    );
    assert!(check_file("src/app.rs", &body("build", 178)).is_empty());
    assert_eq!(check_file("src/app.rs", &body("build", 181)).len(), 1);
    // A trait's declaration has no body to count.
    assert!(check_file(
        "crates/store/src/x.rs",
        "//! X.\ntrait T {\n    fn f(&self);\n}\n"
    )
    .is_empty());
}
