//! The committed `include/jitrt.h` is what the sources generate, and it
//! compiles on its own as C and as C++.

#[path = "support/cc.rs"]
mod cc;

use std::process::Command;

#[test]
fn committed_header_is_current() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/jitrt.h"));
    let committed = std::fs::read_to_string(cc::repo().join("include/jitrt.h"))
        .expect("include/jitrt.h exists");
    assert!(
        generated == committed,
        "include/jitrt.h is stale: build outside CI (cargo build) to regenerate it and commit it"
    );
}

#[test]
fn header_compiles_alone_as_c_and_cpp() {
    let dir = cc::scratch("header");
    for (compiler, ext, std) in [
        ("gcc", "c", "-std=c99"),
        ("gcc", "c", "-std=c11"),
        ("g++", "cpp", "-std=c++11"),
        ("g++", "cpp", "-std=c++17"),
    ] {
        let src = dir.join(format!("only_header{std}.{ext}"));
        std::fs::write(
            &src,
            "#include \"jitrt.h\"\nint main(void) { return jitrt_version() == 0; }\n",
        )
        .unwrap();
        cc::run_ok(
            Command::new(compiler)
                .args([
                    std,
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                    "-I",
                ])
                .arg(cc::repo().join("include"))
                .arg(&src),
        );
    }
}

#[test]
fn every_api_md_function_is_declared() {
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/API.md");
    let Ok(api) = std::fs::read_to_string(&api) else {
        eprintln!("../shared/API.md not found; skipping the contract check");
        return;
    };
    let header = std::fs::read_to_string(cc::repo().join("include/jitrt.h")).unwrap();
    let mut missing = Vec::new();
    for word in api.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("jitrt_") && !header.contains(word) && !missing.contains(&word) {
            missing.push(word);
        }
    }
    assert!(
        missing.is_empty(),
        "names of API.md missing from jitrt.h: {missing:?}"
    );
}

/// Every name the header declares (macros, types, enum values, functions)
/// is libjitrt's: `jitrt_`/`JITRT_`. An internal constant or type of the
/// core or the linker must not leak into the C API.
#[test]
fn header_declares_only_jitrt_names() {
    let header = std::fs::read_to_string(cc::repo().join("include/jitrt.h")).unwrap();
    let foreign: Vec<String> = declared_names(&header)
        .into_iter()
        .filter(|n| !n.starts_with("jitrt_") && !n.starts_with("JITRT_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "include/jitrt.h declares names that are not jitrt_/JITRT_: {foreign:?}"
    );
}

/// The check above catches what it must: the constants the linker once
/// leaked, a stray type, function or enum value.
#[test]
fn declared_names_finds_every_kind_of_declaration() {
    let header = "#ifndef JITRT_H\n#define JITRT_H\n#define STUB_SIZE 8\n\
        // a comment naming foo(bar)\n\
        typedef enum { JITRT_A = 1, Leaked = 2 } jitrt_e_t;\n\
        typedef struct Private Private;\n\
        typedef struct { int field; void (*cb)(void *ctx); } jitrt_s_t;\n\
        typedef void (*helper_fn)(void *ctx, int n);\n\
        #ifdef __cplusplus\nextern \"C\" {\n#endif\n\
        const char *jitrt_f(const Private *p, size_t n);\n\
        uint32_t internal_fn(void);\n\
        extern const int GLOBAL;\n\
        #ifdef __cplusplus\n}  // extern \"C\"\n#endif\n#endif\n";
    let mut names = declared_names(header);
    names.sort();
    assert_eq!(
        names,
        [
            "GLOBAL",
            "JITRT_A",
            "JITRT_H",
            "Leaked",
            "Private",
            "STUB_SIZE",
            "helper_fn",
            "internal_fn",
            "jitrt_e_t",
            "jitrt_f",
            "jitrt_s_t",
        ]
    );
}

/// The names a cbindgen-style C header declares at file scope: macros,
/// typedef names, struct/enum tags, enum values, functions and variables.
/// Struct fields and parameters are not declarations of the API's names.
fn declared_names(header: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut code = String::new();
    let mut cplusplus_depth = 0;
    for line in header.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if let Some(directive) = line.strip_prefix('#') {
            let directive = directive.trim_start();
            if directive.starts_with("if") {
                if cplusplus_depth > 0 || directive.contains("__cplusplus") {
                    cplusplus_depth += 1;
                }
            } else if directive.starts_with("endif") && cplusplus_depth > 0 {
                cplusplus_depth -= 1;
            } else if let Some(rest) = directive.strip_prefix("define") {
                if let Some(name) = rest.split(|c: char| !is_ident(c)).find(|w| !w.is_empty()) {
                    names.push(name.to_string());
                }
            }
            continue;
        }
        if cplusplus_depth == 0 {
            code.push_str(line);
            code.push('\n');
        }
    }
    let code = strip_block_comments(&code);
    // One top-level declaration at a time, up to its `;`.
    let mut decl = Vec::new();
    let mut depth = 0;
    for token in tokens(&code) {
        match token.as_str() {
            "{" | "(" => depth += 1,
            "}" | ")" => depth -= 1,
            _ => {}
        }
        let end = token == ";" && depth == 0;
        decl.push(token);
        if end {
            names.extend(names_of_declaration(&decl));
            decl.clear();
        }
    }
    names
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn strip_block_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    out + rest
}

/// Identifiers, string literals and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if is_ident(c) {
            let mut t = c.to_string();
            while let Some(&n) = chars.peek().filter(|n| is_ident(**n)) {
                t.push(n);
                chars.next();
            }
            out.push(t);
        } else if c == '"' {
            for n in chars.by_ref() {
                if n == '"' {
                    break;
                }
            }
            out.push("\"\"".to_string());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

/// The names one top-level declaration (tokens up to its `;`) declares.
fn names_of_declaration(decl: &[String]) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "typedef", "struct", "enum", "union", "const", "volatile", "extern", "static", "inline",
        "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "bool",
    ];
    let word = |t: &String| {
        t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut in_enum_body = false;
    for (i, t) in decl.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| decl[p].as_str());
        match t.as_str() {
            "{" => {
                in_enum_body = depth == 0 && decl[..i].iter().any(|w| w == "enum");
                depth += 1;
            }
            "(" => {
                // `name(` at file scope: a function; `(*name)` at file
                // scope: a function pointer type or variable.
                if depth == 0 {
                    if let Some(p) = prev.filter(|p| word(&p.to_string())) {
                        if !KEYWORDS.contains(&p) {
                            names.push(p.to_string());
                        }
                    }
                    if decl.get(i + 1).is_some_and(|n| n == "*")
                        && decl.get(i + 3).is_some_and(|n| n == ")")
                    {
                        names.push(decl[i + 2].clone());
                    }
                }
                depth += 1;
            }
            "}" | ")" => depth -= 1,
            _ if word(t) && !KEYWORDS.contains(&t.as_str()) => {
                let next = decl.get(i + 1).map(String::as_str);
                let enum_value =
                    in_enum_body && depth == 1 && matches!(prev, Some("{") | Some(","));
                let tag =
                    depth == 0 && matches!(prev, Some("struct") | Some("enum") | Some("union"));
                // The last word before `;` at file scope names a typedef or
                // a variable (unless a `(...)` declaration already did).
                let last = depth == 0 && next == Some(";") && prev != Some(")");
                if enum_value || tag || last {
                    names.push(t.clone());
                }
            }
            _ => {}
        }
    }
    names.dedup();
    names
}
