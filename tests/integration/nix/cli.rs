//! Every `cityd` command line the NixOS module, the VM tests and docs/nixos.md write, checked
//! against the real CLI: the units' `ExecStart` argument lists and the VM scripts' `cityd(...)`
//! calls must parse (run with `--help` appended, clap rejects an unknown verb, flag or value
//! before it prints help), and every `cityd <verb> ... --flag` written as text names a flag that
//! command's `--help` lists. Environment variables the module sets must be ones cityd reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{eval, module_city_json, nix_files, repo, strings, vm_test_scripts};
use crate::common::{Scratch, require_tool};

/// What `cityd <path> --help` offers.
struct Help {
    subcommands: BTreeSet<String>,
    /// The command runs by itself too: its usage has a line without `<COMMAND>`
    /// (`Usage: cityd backup [OPTIONS]` / `cityd backup <COMMAND>`).
    subcommand_optional: bool,
    /// Long flags, and whether each takes a value (`--city <FILE>`).
    flags: BTreeMap<String, bool>,
}

fn help(path: &[String]) -> Option<Help> {
    let out = Command::new(env!("CARGO_BIN_EXE_cityd"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let usage: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .take_while(|l| !l.is_empty())
        .collect();
    let subcommand_optional = usage.len() > 1 && usage.iter().any(|l| !l.contains("COMMAND"));
    let mut subcommands = BTreeSet::new();
    let mut flags = BTreeMap::new();
    let mut in_commands = false;
    for line in text.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            // A command line is indented by two; wrapped descriptions are indented further.
            match line.strip_prefix("  ") {
                Some(entry) if !entry.starts_with(' ') => {
                    let name = entry.split_whitespace().next().unwrap_or("");
                    if name != "help" {
                        subcommands.insert(name.to_string());
                    }
                }
                Some(_) => {}
                None => in_commands = false,
            }
        }
        // Option lines: "  -v, --verbose..." or "      --city <FILE>  ...".
        let option = line.trim_start();
        let long = if option.starts_with("--") {
            Some(option)
        } else if option.len() > 4 && option.starts_with('-') && &option[2..4] == ", " {
            Some(&option[4..])
        } else {
            None
        };
        if let Some(long) = long.filter(|l| l.starts_with("--")) {
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let takes_value = long[name.len()..].trim_start().starts_with('<');
            flags.insert(name, takes_value);
        }
    }
    Some(Help {
        subcommands,
        subcommand_optional,
        flags,
    })
}

/// Runs `cityd <args> --help`: success means every verb, flag and value in `args` parses.
fn assert_parses(args: &[String], origin: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_cityd"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Usage: cityd "),
        "{origin}: `cityd {}` does not parse with the real CLI:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_unit_command_line_parses_with_the_real_cli() {
    let units = eval(
        "let l = import ./nixos/lib.nix; in map (u: { inherit (u) name; cmd = l.commandLine \"/nix/store/x-city.json\" u; }) (builtins.filter (u: u.args != null) (l.units { relay = true; }))",
    );
    let units = units.as_array().unwrap();
    assert_eq!(
        units.len(),
        6,
        "five oneshot cityd units and the relay: {units:?}"
    );
    for unit in units {
        assert_parses(&strings(&unit["cmd"]), unit["name"].as_str().unwrap());
    }
}

/// Collects the third argument of every `cityd(city, state, args)` call in a VM test script,
/// evaluated with the script's module-level constants and each `for` loop's items bound, and
/// lists any command string starting with `cityd ` outside the helper (it would escape this
/// check). An argument that cannot be evaluated this way fails loudly.
const EXTRACT_CITYD_CALLS: &str = r#"
import ast, json, sys

tree = ast.parse(sys.stdin.read())
scope = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        try:
            scope[node.targets[0].id] = eval(compile(ast.Expression(node.value), "<const>", "eval"), {}, dict(scope))
        except Exception:
            pass

def value(expr, names):
    return eval(compile(ast.Expression(expr), "<expr>", "eval"), {}, dict(names))

calls, stray = [], []

def visit(node, names):
    if isinstance(node, ast.FunctionDef) and node.name == "cityd":
        return
    if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
        try:
            items = list(value(node.iter, names))
        except NameError:
            items = None  # a loop over a function's argument: no cityd call depends on it
        if items is not None:
            for item in items:
                for child in node.body:
                    visit(child, {**names, node.target.id: item})
            return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cityd":
        calls.append(value(node.args[2], names))
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lstrip().startswith("cityd "):
        stray.append(node.value)
    for child in ast.iter_child_nodes(node):
        visit(child, names)

visit(tree, scope)
print(json.dumps({"calls": calls, "stray": stray}))
"#;

#[test]
fn every_cityd_call_in_the_vm_test_scripts_parses_with_the_real_cli() {
    let python = require_tool("python3", "python3");
    let s = Scratch::new();
    let city = module_city_json(&s, "{ }");
    let mut checked = BTreeSet::new();
    for (name, script) in vm_test_scripts() {
        let mut child = Command::new(&python)
            .args(["-c", EXTRACT_CITYD_CALLS])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            script.as_str().unwrap().as_bytes(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cannot read the cityd calls of the {name} script:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            found["stray"],
            serde_json::json!([]),
            "{name}: run cityd through the cityd() helper so its command line is checked"
        );
        for args in found["calls"].as_array().unwrap() {
            let args = args.as_str().unwrap();
            assert!(
                !args.contains(['\'', '"']),
                "{name}: quoted arguments are not split here: {args}"
            );
            let mut cmd = vec![
                "--city".to_string(),
                city.display().to_string(),
                "--state-dir".to_string(),
                s.state().display().to_string(),
            ];
            cmd.extend(args.split_whitespace().map(str::to_string));
            assert_parses(&cmd, &format!("VM test {name}"));
            checked.insert(args.to_string());
        }
    }
    for expected in [
        "turn probe",
        "turn probe --server 192.168.1.2:3478 --transport tcp --peer 192.168.1.2:40000",
        "turn probe --server 192.168.1.3:3478 --peer 192.168.1.3:40000 --json",
        "verify tls --connect 192.168.1.2:9443",
        "verify tls --connect 192.168.1.2:8065",
        "verify webhook --channel alerts --base-url http://192.168.1.2:8065",
        "verify webhook --channel alerts",
        "wire",
        "turn creds --user witness --json",
    ] {
        assert!(
            checked.contains(expected),
            "no VM test runs `cityd {expected}`; checked: {checked:#?}"
        );
    }
}

/// A `cityd <verb> [<subcommand>] ... --flag ...` written as text, with its line.
#[derive(Debug)]
struct Written {
    origin: String,
    path: Vec<String>,
    flags: Vec<String>,
}

/// The text files that write cityd command lines: every .nix file, the VM tests' Python helpers,
/// and the module's documentation.
fn texts() -> Vec<PathBuf> {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    for dir in ["vm-tests", "vm-tests/lib"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "py") {
                files.push(path);
            }
        }
    }
    files.push(repo().join("docs/nixos.md"));
    files
}

/// Finds `cityd ` followed by global options and a verb of the real CLI; prose where no verb
/// follows ("cityd's", "`cityd --city <file> <verb>`") is not an invocation.
fn written_invocations(
    file: &Path,
    top: &Help,
    subcommands: &dyn Fn(&str) -> BTreeSet<String>,
) -> Vec<Written> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.strip_prefix(repo()).unwrap().display().to_string();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("cityd ") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "cityd ".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                continue;
            }
            // Tokens up to the end of the code span or string the command sits in.
            let mut tokens = Vec::new();
            for raw in after.split_whitespace() {
                let ends = raw.contains(['`', '"', '\'', ')', '(', ';', '|']);
                let token: String = raw
                    .split(['`', '"', '\'', ')', '(', ';', '|'])
                    .next()
                    .unwrap_or("")
                    .trim_end_matches([',', '.', ':'])
                    .to_string();
                if !token.is_empty() {
                    tokens.push(token);
                }
                if ends {
                    break;
                }
            }
            let mut tokens = tokens.into_iter().peekable();
            while let Some(t) = tokens.next_if(|t| t.starts_with('-')) {
                if top.flags.get(t.trim_end_matches('.')).copied() == Some(true) {
                    tokens.next();
                }
            }
            let Some(verb) = tokens.next_if(|t| top.subcommands.contains(t)) else {
                continue;
            };
            let mut path = vec![verb.clone()];
            if let Some(sub) = tokens.next_if(|t| subcommands(&verb).contains(t)) {
                path.push(sub);
            }
            let flags = tokens
                .filter(|t| t.starts_with("--"))
                .map(|t| {
                    t.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect()
                })
                .collect();
            found.push(Written {
                origin: format!("{name}:{}", n + 1),
                path,
                flags,
            });
        }
    }
    found
}

#[test]
fn every_cityd_flag_written_in_nix_files_and_docs_exists() {
    let top = help(&[]).expect("cityd --help");
    assert!(top.subcommands.contains("db"), "{:?}", top.subcommands);
    let mut helps: BTreeMap<Vec<String>, Option<Help>> = BTreeMap::new();
    let subcommands = |verb: &str| {
        help(&[verb.to_string()])
            .map(|h| h.subcommands)
            .unwrap_or_default()
    };
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for file in texts() {
        for written in written_invocations(&file, &top, &subcommands) {
            let command = helps
                .entry(written.path.clone())
                .or_insert_with(|| help(&written.path));
            let Some(command) = command else {
                problems.push(format!(
                    "{}: no command `cityd {}`",
                    written.origin,
                    written.path.join(" ")
                ));
                continue;
            };
            if !command.subcommands.is_empty() && !command.subcommand_optional {
                problems.push(format!(
                    "{}: `cityd {}` needs a subcommand ({})",
                    written.origin,
                    written.path.join(" "),
                    command
                        .subcommands
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for flag in &written.flags {
                if !command.flags.contains_key(flag) {
                    problems.push(format!(
                        "{}: `cityd {}` has no flag {flag} (its --help lists {})",
                        written.origin,
                        written.path.join(" "),
                        command.flags.keys().cloned().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
            seen.insert(format!(
                "{} {}",
                written.path.join(" "),
                written.flags.join(" ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The scan must see the build-time check and the documented probes, or it checks nothing.
    for expected in [
        "config check ",
        "turn probe --server --peer",
        "db ensure --admin-url --admin-password-file",
    ] {
        assert!(
            seen.contains(expected),
            "the scan found no `cityd {expected}`: {seen:#?}"
        );
    }
}

/// Environment variables cityd reads appear in its source as string literals (`env = "…"` of a
/// flag, `std::env::var("…")`, the log filter's name).
fn variables_cityd_reads() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for quoted in text.split('"').skip(1).step_by(2) {
                    if quoted.len() > 2
                        && quoted
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    {
                        out.insert(quoted.to_string());
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(&repo().join("src"), &mut names);
    names
}

#[test]
fn environment_the_module_gives_cityd_is_read_by_cityd() {
    let read = variables_cityd_reads();
    assert!(read.contains("CITYD_DB_ADMIN_URL") && read.contains("CITYD_LOG"));
    let unit_env = eval("builtins.attrNames (import ./nixos/lib.nix).unitEnvironment");
    for name in unit_env.as_array().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            read.contains(name),
            "the cityd units set {name}, which cityd never reads"
        );
    }
    // Any CITYD_* name written in the module, the VM tests or the docs.
    for file in texts() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("CITYD_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.ends_with('_') {
                continue; // `CITYD_*`: the family, not a variable
            }
            assert!(
                read.contains(&name),
                "{} names {name}, which cityd never reads",
                file.display()
            );
        }
    }
}
