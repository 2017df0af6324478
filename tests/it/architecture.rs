//! The layering holds where the compiler cannot hold it: the core crate (crates/core) has no
//! kube, tokio or HTTP stack among its dependencies, however deep, and reads neither the clock
//! nor the environment nor files; only `cluster` talks to Kubernetes; and no two modules depend
//! on each other, directly or around a cycle. Read from Cargo's dependency graph and the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::repo_path;

/// Every source file as a module path (`cluster`, and the core crate's as `core::stage`, as the
/// binary's crate names it), with its text; the core crate's own `crate::` paths are written as
/// `crate::core::` so that one graph holds both crates.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = prefix.to_vec();
                if !matches!(name.as_str(), "mod" | "lib" | "main") {
                    module.push(name.clone());
                }
                if name != "main" {
                    out.insert(module.join("::"), std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo_path("src"), &[], &mut out);
    let mut core = BTreeMap::new();
    walk(
        &repo_path("crates/core/src"),
        &["core".to_string()],
        &mut core,
    );
    for (module, text) in core {
        out.insert(module, text.replace("crate::", "crate::core::"));
    }
    without_tests(out)
}

/// The modules as the release build compiles them: a module declared under `#[cfg(test)]` (a
/// mock, shared fixtures) is left out, and so is each file's `#[cfg(test)] mod tests { … }`.
/// What tests import is no layer's dependency.
fn without_tests(modules: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut test_only = BTreeSet::new();
    for (module, text) in &modules {
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let declared = lines.next().unwrap_or_default();
            let declared = declared.strip_prefix("pub(crate) ").unwrap_or(declared);
            if let Some(name) = declared
                .strip_prefix("mod ")
                .and_then(|d| d.strip_suffix(';'))
            {
                let child = if module.is_empty() {
                    name.to_string()
                } else {
                    format!("{module}::{name}")
                };
                test_only.insert(child);
            }
        }
    }
    modules
        .into_iter()
        .filter(|(module, _)| !test_only.contains(module))
        .map(|(module, text)| {
            let end = text.find("#[cfg(test)]\nmod tests {").unwrap_or(text.len());
            (module, text[..end].to_string())
        })
        .collect()
}

/// The paths a use tree at the start of `text` names: `a::{b, c::d}` gives `a::b`, `a::c::d`.
fn use_tree(text: &str) -> Vec<String> {
    fn tree(chars: &[char], at: &mut usize) -> Vec<String> {
        let mut segments = Vec::new();
        loop {
            let start = *at;
            while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                *at += 1;
            }
            if *at == start {
                break;
            }
            segments.push(chars[start..*at].iter().collect::<String>());
            if chars[*at..].starts_with(&[':', ':']) {
                *at += 2;
            } else {
                return vec![segments.join("::")];
            }
        }
        if *at < chars.len() && chars[*at] == '{' {
            *at += 1;
            let mut paths = Vec::new();
            while *at < chars.len() && chars[*at] != '}' {
                while *at < chars.len() && (chars[*at].is_whitespace() || chars[*at] == ',') {
                    *at += 1;
                }
                if *at < chars.len() && chars[*at] == '}' {
                    break;
                }
                for inner in tree(chars, at) {
                    paths.push(if segments.is_empty() {
                        inner
                    } else {
                        format!("{}::{inner}", segments.join("::"))
                    });
                }
                // Skip `as alias`, `self`, and anything else up to the next item.
                while *at < chars.len() && !matches!(chars[*at], ',' | '}') {
                    *at += 1;
                }
            }
            *at += 1;
            return paths;
        }
        vec![segments.join("::")]
    }
    let chars: Vec<char> = text.chars().collect();
    tree(&chars, &mut 0)
}

/// Which modules each module refers to (`crate::…` and `super::…` paths), a module's own
/// submodules left out: declaring and re-exporting them is structure, not a dependency.
fn dependencies(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let resolve = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| modules.contains_key(candidate))
            .unwrap_or_default()
    };
    let mut graph = BTreeMap::new();
    for (module, text) in modules {
        let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
        let mut edges = BTreeSet::new();
        for (keyword, base) in [("crate::", ""), ("super::", parent)] {
            for (index, _) in text.match_indices(keyword) {
                if text[..index].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                for path in use_tree(&text[index + keyword.len()..]) {
                    let full = if base.is_empty() {
                        path
                    } else {
                        format!("{base}::{path}")
                    };
                    let target = resolve(&full);
                    let own_child = target.starts_with(&format!("{module}::")) || module.is_empty();
                    if !target.is_empty() && target != *module && !own_child {
                        edges.insert(target);
                    }
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

#[test]
fn no_import_cycle_among_the_modules_of_src() {
    let graph = dependencies(&modules());
    assert!(graph["commands::set"].contains("core::change"), "{graph:?}");
    assert!(graph["core::change"].contains("core::stage"), "{graph:?}");
    // Commands share operations, not each other's functions.
    for (module, edges) in &graph {
        if module.starts_with("commands::") {
            let others: Vec<_> = edges
                .iter()
                .filter(|e| e.starts_with("commands::"))
                .collect();
            assert!(others.is_empty(), "{module} depends on {others:?}");
        }
    }
    assert!(
        graph["commands::reconcile"].contains("operations::deliver"),
        "{graph:?}"
    );
    // GitHub's client and the Kubernetes one share budgets, not each other.
    assert!(graph["github"].contains("budget"), "{graph:?}");
    assert!(!graph["github"].contains("cluster"), "{graph:?}");
    // Depth-first search; a module met again while on the path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {} → {node}", path[at..].join(" → "));
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for next in &graph[node] {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

/// The packages the core crate builds with, however deep (Cargo's own graph, normal
/// dependencies: what the compiler links into it).
fn core_dependencies() -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "--package",
            "stagectl-core",
        ])
        .args(["--edges", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(repo_path("."))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_core_crate_builds_without_kube_tokio_or_an_http_stack() {
    let packages = core_dependencies();
    assert!(packages.contains("stagectl-core"), "{packages:?}");
    assert!(packages.contains("json-patch"), "{packages:?}");
    for package in &packages {
        for forbidden in [
            "kube", "tokio", "hyper", "http", "tower", "rustls", "futures", "mio",
        ] {
            assert!(
                !package.starts_with(forbidden),
                "stagectl-core depends on {package}: decisions take data in and give plans out"
            );
        }
    }
}

/// What the compiler cannot see: a decision that reads the clock, the environment or a file
/// itself cannot be tested as data.
#[test]
fn core_decides_without_the_clock_the_environment_or_files() {
    let modules = modules();
    let core: Vec<_> = modules
        .iter()
        .filter(|(module, _)| module.as_str() == "core" || module.starts_with("core::"))
        .collect();
    assert!(core.len() > 5, "{:?}", modules.keys());
    for (module, text) in core {
        for forbidden in [
            "std::fs",
            "std::env",
            "std::io",
            "std::net",
            "std::process",
            "Timestamp::now",
            "SystemTime",
            "Instant::now",
            "println!",
        ] {
            assert!(
                !text.contains(forbidden),
                "core module {module} uses {forbidden}"
            );
        }
    }
}

/// All Kubernetes I/O goes through `cluster`: the commands read and write through its calls,
/// and one rule per failure holds for every one of them.
#[test]
fn only_cluster_talks_to_kubernetes() {
    let modules = modules();
    assert!(modules["cluster"].contains("kube::"));
    for (module, text) in &modules {
        if module == "cluster" || module.starts_with("cluster::") {
            continue;
        }
        for client in ["kube::", "kube_core", "kube_runtime", "kube_client"] {
            assert!(!text.contains(client), "{module} uses {client}");
        }
    }
}

#[test]
fn use_trees_are_read_as_rust_reads_them() {
    assert_eq!(
        use_tree("core::{labels, patch};"),
        ["core::labels", "core::patch"]
    );
    assert_eq!(
        use_tree("core::latch::{self, Delivery, LatchSlot};"),
        [
            "core::latch::self",
            "core::latch::Delivery",
            "core::latch::LatchSlot"
        ]
    );
    assert_eq!(
        use_tree("{Subject, apply_change};"),
        ["Subject", "apply_change"]
    );
    assert_eq!(use_tree("core::stage::Stage)"), ["core::stage::Stage"]);
}
