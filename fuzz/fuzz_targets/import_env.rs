//! Fuzz target: whatever bytes `cityd secrets import-env` reads, the file pass never panics or
//! hangs and ends in one of two ways: the entries of the seven variables, where every refused one
//! names its line, the problem and the fix, and every taken value has its secret's shape; or the
//! refusal of a file that is not UTF-8 text, naming the file.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use cityd::secrets::import_env::{ImportError, ImportStatus, examine};
use cityd::secrets::{Vault, shape_of};
use cityd::state::StateDir;
use libfuzzer_sys::fuzz_target;

fn vault() -> &'static Vault {
    // Only used for paths: the file pass reads and writes nothing.
    static VAULT: OnceLock<Vault> = OnceLock::new();
    VAULT.get_or_init(|| Vault::new(&StateDir::at("/nonexistent/cityd-fuzz".into()).unwrap()))
}

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/fuzz/cicd.env");
    match examine(vault(), file, data.to_vec()) {
        Ok((entries, candidates)) => {
            assert_eq!(entries.len(), 7, "one entry per blog variable");
            for e in &entries {
                if e.status == ImportStatus::WrongShape {
                    let line = e.line.expect("a refused variable names its line");
                    let problem = e.problem.as_deref().expect("a refused variable says why");
                    let fix = e.fix.as_deref().expect("a refused variable says the fix");
                    assert!(!problem.is_empty());
                    assert!(fix.contains(&format!("line {line}")), "{fix}");
                }
            }
            for (index, name, value) in &candidates {
                let e = &entries[*index];
                assert_eq!(e.secret, name.file_name());
                assert!(shape_of(name.file_name()).accepts(value.expose()));
                // A value is never echoed into what the report prints.
                for text in [e.problem.as_deref(), e.fix.as_deref()]
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        !text.contains(value.expose()),
                        "a value leaked into the report"
                    );
                }
            }
        }
        Err(ImportError::NotText { path }) => {
            assert_eq!(path, file);
            assert!(std::str::from_utf8(data).is_err());
        }
        Err(other) => panic!("the file pass failed otherwise: {other}"),
    }
});
