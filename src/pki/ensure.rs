//! `ensure`: observe `<state>/pki/`, decide what the CA and the server certificate need (keep, create,
//! adopt, re-issue, and why), then write exactly that under a lock; a dry run stops after deciding.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::{
    Ca, DEFAULT_VALIDITY_DAYS, NameScope, Passphrase, PkiError, RENEW_BELOW_DAYS, SanSet,
    check_validity_days, common_name, files, fingerprint, issue, pem, read_optional,
    read_passphrase, summarize, trust, wanted_sans,
};
use crate::city::City;
use crate::fsx;
use crate::report::Outcome;
use crate::state::StateDir;

/// An existing CA to adopt instead of creating one (the blog's lab already has one).
#[derive(Debug, Clone)]
pub struct AdoptCa {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A file whose first line is the passphrase of an encrypted PKCS#8 key.
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EnsureOptions {
    /// Validity of a newly issued leaf, 1 to 825 days.
    pub validity_days: u32,
    pub adopt: Option<AdoptCa>,
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

impl Default for EnsureOptions {
    fn default() -> Self {
        Self {
            validity_days: DEFAULT_VALIDITY_DAYS,
            adopt: None,
            dry_run: false,
        }
    }
}

/// What `ensure` did (or would do) to the CA or to the server certificate: the shared [`Outcome`]
/// and the PKI's own word for it, which the text and JSON reports print. The constructors below are
/// the one place `cityd pki` maps its words to outcomes: "kept" (unchanged), "created" (a new CA),
/// "adopted" (the CA given with --ca-cert), "recertified" (a new certificate for a surviving
/// ca.key) and "issued" (a new server certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub outcome: Outcome,
    word: &'static str,
}

impl Action {
    /// Left as it was.
    pub const KEPT: Action = Action {
        outcome: Outcome::Unchanged,
        word: "kept",
    };

    /// A new CA, generated here.
    fn created(dry_run: bool) -> Self {
        Self {
            outcome: Outcome::created(dry_run),
            word: "created",
        }
    }

    /// The given CA: new files when the state had none, else its key restored or its certificate
    /// put beside the key already there.
    fn adopted(into_empty: bool, dry_run: bool) -> Self {
        Self {
            outcome: if into_empty {
                Outcome::created(dry_run)
            } else {
                Outcome::updated(dry_run)
            },
            word: "adopted",
        }
    }

    /// A new CA certificate for the key that survived.
    fn recertified(dry_run: bool) -> Self {
        Self {
            outcome: Outcome::updated(dry_run),
            word: "recertified",
        }
    }

    /// A new server certificate: the first one, or one replacing the current.
    fn issued(first: bool, dry_run: bool) -> Self {
        Self {
            outcome: if first {
                Outcome::created(dry_run)
            } else {
                Outcome::updated(dry_run)
            },
            word: "issued",
        }
    }

    /// The PKI's word for what happened ("kept", "created", "adopted", "recertified", "issued").
    pub fn as_str(self) -> &'static str {
        self.word
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word)
    }
}

/// One file `ensure` wrote (or, in a dry run, would write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: PathBuf,
    pub outcome: Outcome,
    pub mode: String,
}

/// What `ensure` decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureReport {
    pub dir: PathBuf,
    pub dry_run: bool,
    /// True when any file was (or would be) created or changed.
    pub changed: bool,
    pub ca: Action,
    pub ca_why: String,
    pub ca_subject: String,
    pub ca_sha256: String,
    /// What the CA may vouch for (its NameConstraints); `None`: any name, public sites included.
    pub ca_scope: Option<NameScope>,
    pub server: Action,
    /// Why the leaf is (re-)issued; empty when it is kept.
    pub server_why: Vec<String>,
    /// Names of the leaf that is (or would be) on disk.
    pub sans: SanSet,
    pub server_not_after: String,
    pub server_days_left: i64,
    pub server_sha256: String,
    pub files: Vec<FileChange>,
}

/// Converges `<state>/pki/` for `city` with these LAN addresses: creates or adopts the CA if there is
/// none, and (re-)issues the server certificate when it is missing, broken, not from this CA, lacks
/// or has extra names, or has fewer than [`RENEW_BELOW_DAYS`] days left. Bad input fails before
/// anything is written.
pub fn ensure(
    state: &StateDir,
    city: &City,
    lan: &[IpAddr],
    options: &EnsureOptions,
) -> Result<EnsureReport, PkiError> {
    ensure_in(
        &state.pki_dir(),
        city,
        lan,
        options,
        OffsetDateTime::now_utc(),
    )
}

/// [`ensure`] on an explicit directory at an explicit time.
pub fn ensure_in(
    dir: &Path,
    city: &City,
    lan: &[IpAddr],
    options: &EnsureOptions,
    now: OffsetDateTime,
) -> Result<EnsureReport, PkiError> {
    let validity_days = check_validity_days(options.validity_days)?;
    let adopted = options
        .adopt
        .as_ref()
        .map(|a| AdoptedCa::load(a, now))
        .transpose()?;
    let wanted = wanted_sans(city, lan);
    // The state directory is trusted (owner, mode) before anything in it is.
    if let Some(state) = dir.parent() {
        crate::owned::check_dir(state)?;
    }
    // Only a CA made here gets this scope; an existing or adopted CA keeps what it has.
    let new_ca = NewCa {
        domain: &city.domain,
        scope: NameScope::for_city(city, lan),
    };
    let decide = || {
        Plan::decide(
            dir,
            &new_ca,
            &wanted,
            adopted.as_ref(),
            validity_days,
            now,
            options.dry_run,
        )
    };
    let plan = decide()?;
    if options.dry_run {
        return Ok(plan.report(true, None));
    }
    if !plan.changes() {
        // Temp files a killed run left may hold a private key: removed on every run, not only
        // on runs that change something (a read-only PKI directory has none to remove).
        if dir.is_dir()
            && let Ok(_lock) = lock(dir)
        {
            fsx::remove_stale_temps(dir);
        }
        return Ok(plan.report(false, None));
    }
    crate::state::StateDir::create_private_dir(dir)?;
    let _lock = lock(dir)?;
    fsx::remove_stale_temps(dir);
    // Another run may have converged while this one waited for the lock: decide again.
    let plan = decide()?;
    let outcomes = plan.apply()?;
    Ok(plan.report(false, Some(outcomes)))
}

fn lock(dir: &Path) -> Result<File, PkiError> {
    let path = dir.join(files::LOCK);
    let file =
        crate::owned::open_lock(&path, files::KEY_MODE).map_err(|refusal| match refusal {
            crate::owned::Refusal::Io { path, source } => PkiError::Lock { path, source },
            other => PkiError::Untrusted(other),
        })?;
    file.lock()
        .map_err(|source| PkiError::Lock { path, source })?;
    Ok(file)
}

/// A CA given with `--ca-cert/--ca-key`, already checked to be a usable CA.
struct AdoptedCa {
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl AdoptedCa {
    fn load(adopt: &AdoptCa, now: OffsetDateTime) -> Result<Self, PkiError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| PkiError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_der = pem::certificates(&adopt.cert, &read(&adopt.cert)?)?.swap_remove(0);
        let passphrase = adopt
            .passphrase_file
            .as_deref()
            .map(|file| read_passphrase(file).map(|bytes| (file, bytes)))
            .transpose()?;
        let key = pem::private_key(
            &adopt.key,
            &read(&adopt.key)?,
            passphrase
                .as_ref()
                .map(|(file, bytes)| Passphrase { file, bytes }),
        )?;
        let key_pkcs8 = key.serialized_der().to_vec();
        Ca::from_parts(cert_der.clone(), key, &adopt.cert, &adopt.key, now)?;
        Ok(Self {
            cert_der,
            key_pkcs8,
            cert_path: adopt.cert.clone(),
            key_path: adopt.key.clone(),
        })
    }

    fn ca(&self, now: OffsetDateTime) -> Result<Ca, PkiError> {
        let key =
            rcgen::KeyPair::try_from(self.key_pkcs8.as_slice()).map_err(|e| PkiError::BadKey {
                path: self.key_path.clone(),
                detail: e.to_string(),
            })?;
        Ca::from_parts(
            self.cert_der.clone(),
            key,
            &self.cert_path,
            &self.key_path,
            now,
        )
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        public_key_bits(&self.cert_der)
    }
}

fn public_key_bits(cert_der: &[u8]) -> Option<Vec<u8>> {
    x509_parser::parse_x509_certificate(cert_der)
        .ok()
        .map(|(_, c)| c.public_key().subject_public_key.data.to_vec())
}

/// What a CA created (or re-certified) in this run is named after and may vouch for.
struct NewCa<'a> {
    domain: &'a str,
    scope: NameScope,
}

/// A PKI file as found on disk.
struct OnDisk {
    bytes: Vec<u8>,
    mode: u32,
}

fn on_disk(path: &Path) -> Result<Option<OnDisk>, PkiError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    let mode = crate::fsx::mode_of(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(OnDisk { bytes, mode }))
}

/// One planned write.
struct Write {
    path: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
    /// Never clobber: CA files are only ever created.
    create_only: bool,
    predicted: Outcome,
}

/// Everything `ensure` decided, with the exact bytes it would write.
struct Plan {
    dir: PathBuf,
    ca: Ca,
    ca_action: Action,
    ca_why: String,
    leaf_der: Vec<u8>,
    server_action: Action,
    server_why: Vec<String>,
    writes: Vec<Write>,
    now: OffsetDateTime,
}

impl Plan {
    fn decide(
        dir: &Path,
        new_ca: &NewCa<'_>,
        wanted: &SanSet,
        adopted: Option<&AdoptedCa>,
        validity_days: u32,
        now: OffsetDateTime,
        dry_run: bool,
    ) -> Result<Self, PkiError> {
        let path = |name: &str| dir.join(name);
        let ca_pem = on_disk(&path(files::CA_PEM))?;
        let ca_key = on_disk(&path(files::CA_KEY))?;
        let ca_crt = on_disk(&path(files::CA_CRT))?;
        let server_pem = on_disk(&path(files::SERVER_PEM))?;
        let server_key = on_disk(&path(files::SERVER_KEY))?;

        let mut writes = Vec::new();
        let mut write =
            |name: &str, bytes: Vec<u8>, mode: u32, create_only: bool, now: &Option<OnDisk>| {
                let predicted = match now {
                    None => Outcome::Created,
                    Some(d) if d.bytes == bytes && d.mode == mode => Outcome::Unchanged,
                    Some(_) => Outcome::Updated,
                };
                writes.push(Write {
                    path: path(name),
                    bytes,
                    mode,
                    create_only,
                    predicted,
                });
            };

        // The CA: keep, create, adopt, or re-certify a surviving key. Never replace.
        let state_ca = match &ca_pem {
            Some(d) => Some(pem::certificates(&path(files::CA_PEM), &d.bytes)?.swap_remove(0)),
            None => None,
        };
        let state_key = match &ca_key {
            Some(d) => Some(pem::private_key(&path(files::CA_KEY), &d.bytes, None)?),
            None => None,
        };
        let conflict = |existing: String, adopted: &AdoptedCa| PkiError::CaConflict {
            dir: dir.to_path_buf(),
            existing,
            adopted_path: adopted.cert_path.clone(),
            adopted: fingerprint(&adopted.cert_der),
        };
        let (ca, ca_action, ca_why, ca_cert_is_new) = match (state_ca, state_key, adopted) {
            (Some(der), Some(key), adopted) => {
                if let Some(a) = adopted.filter(|a| a.cert_der != der) {
                    return Err(conflict(fingerprint(&der), a));
                }
                let ca = Ca::from_parts(der, key, &path(files::CA_PEM), &path(files::CA_KEY), now)?;
                let why = match adopted {
                    Some(a) => format!("{} is already the CA", a.cert_path.display()),
                    None => "ca.pem and ca.key are in place".to_string(),
                };
                (ca, Action::KEPT, why, false)
            }
            (Some(der), None, Some(a)) if a.cert_der == der => {
                let why = format!("ca.key restored from {}", a.key_path.display());
                (a.ca(now)?, Action::adopted(false, dry_run), why, false)
            }
            (Some(der), None, Some(a)) => return Err(conflict(fingerprint(&der), a)),
            (Some(_), None, None) => {
                return Err(PkiError::CaKeyMissing {
                    cert: path(files::CA_PEM),
                    key: path(files::CA_KEY),
                    dir: dir.to_path_buf(),
                });
            }
            (None, Some(key), Some(a)) => {
                if a.public_key().as_deref() != Some(key.public_key_raw()) {
                    let existing = format!("of the key in {}", path(files::CA_KEY).display());
                    return Err(conflict(existing, a));
                }
                let why = format!("{} adopted for the existing ca.key", a.cert_path.display());
                (a.ca(now)?, Action::adopted(false, dry_run), why, true)
            }
            (None, Some(key), None) => {
                let ca = Ca::self_signed(
                    key,
                    &common_name(new_ca.domain, now),
                    Some(&new_ca.scope),
                    now,
                    &path(files::CA_KEY),
                )?;
                let why = "ca.key exists without ca.pem (an interrupted run, or ca.pem was removed): a new CA certificate for the same key".to_string();
                (ca, Action::recertified(dry_run), why, true)
            }
            (None, None, Some(a)) => {
                let why = format!(
                    "adopting {} with key {}",
                    a.cert_path.display(),
                    a.key_path.display()
                );
                (a.ca(now)?, Action::adopted(true, dry_run), why, true)
            }
            (None, None, None) => {
                let why = format!("no CA in {} yet", dir.display());
                (
                    Ca::generate_scoped(
                        &common_name(new_ca.domain, now),
                        Some(&new_ca.scope),
                        now,
                    )?,
                    Action::created(dry_run),
                    why,
                    true,
                )
            }
        };
        match &ca_key {
            // Same bytes: only a wrong mode is repaired.
            Some(d) => write(
                files::CA_KEY,
                d.bytes.clone(),
                files::KEY_MODE,
                false,
                &ca_key,
            ),
            None => write(
                files::CA_KEY,
                ca.key_pem().into_bytes(),
                files::KEY_MODE,
                true,
                &ca_key,
            ),
        }
        if ca_pem.is_none() {
            write(
                files::CA_PEM,
                ca.cert_pem().into_bytes(),
                files::CERT_MODE,
                true,
                &ca_pem,
            );
        }
        write(
            files::CA_CRT,
            ca.cert_der().to_vec(),
            files::CERT_MODE,
            false,
            &ca_crt,
        );

        // The leaf: keep it unless something is wrong with it.
        let mut why = Vec::new();
        let mut kept = None;
        if ca_cert_is_new {
            why.push("the CA certificate is new".to_string());
        } else {
            match (&server_pem, &server_key) {
                (None, _) => why.push("no server certificate yet".to_string()),
                (Some(_), None) => why.push("server.key is missing".to_string()),
                (Some(pem_file), Some(key_file)) => {
                    match existing_leaf_problems(dir, &ca, wanted, pem_file, key_file, now) {
                        Ok(leaf_der) => kept = Some((leaf_der, key_file.bytes.clone())),
                        Err(problems) => why = problems,
                    }
                }
            }
        }
        let (leaf_der, key_bytes, server_action) = match kept {
            Some((leaf_der, key_bytes)) => (leaf_der, key_bytes, Action::KEPT),
            None => {
                // A constrained CA cannot vouch for a LAN that moved outside its scope: say so
                // (and how to fix it) instead of failing on the verification of the new leaf.
                if let Some(ca_scope) = NameScope::of_certificate(ca.cert_der()) {
                    let outside = ca_scope.outside(wanted);
                    if !outside.is_empty() {
                        return Err(PkiError::OutsideCaScope {
                            ca: path(files::CA_PEM),
                            names: outside.join(", "),
                            scope: ca_scope.describe(),
                        });
                    }
                }
                let leaf = issue(&ca, wanted, validity_days, now)?;
                let key = leaf.key_pem().into_bytes();
                let first = server_pem.is_none();
                (leaf.cert_der, key, Action::issued(first, dry_run))
            }
        };
        write(
            files::SERVER_KEY,
            key_bytes,
            files::KEY_MODE,
            false,
            &server_key,
        );
        let chain = pem::encode("CERTIFICATE", &leaf_der) + &ca.cert_pem();
        write(
            files::SERVER_PEM,
            chain.into_bytes(),
            files::CERT_MODE,
            false,
            &server_pem,
        );

        Ok(Self {
            dir: dir.to_path_buf(),
            ca,
            ca_action,
            ca_why,
            leaf_der,
            server_action,
            server_why: why,
            writes,
            now,
        })
    }

    fn changes(&self) -> bool {
        self.writes
            .iter()
            .any(|w| w.predicted != Outcome::Unchanged)
    }

    /// Writes in order: CA key before CA certificate, server key before server certificate, so an
    /// interrupted run leaves something the next run repairs.
    fn apply(&self) -> Result<Vec<Outcome>, PkiError> {
        let mut outcomes = Vec::new();
        for w in &self.writes {
            let outcome = if w.create_only {
                fsx::create_new(&w.path, &w.bytes, w.mode)?;
                Outcome::Created
            } else {
                fsx::write_if_changed(&w.path, &w.bytes, w.mode)?
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn report(&self, dry_run: bool, outcomes: Option<Vec<Outcome>>) -> EnsureReport {
        let outcomes =
            outcomes.unwrap_or_else(|| self.writes.iter().map(|w| w.predicted).collect());
        let files: Vec<FileChange> = self
            .writes
            .iter()
            .zip(outcomes)
            .map(|(w, outcome)| FileChange {
                path: w.path.clone(),
                outcome,
                mode: format!("{:04o}", w.mode),
            })
            .collect();
        let leaf = summarize(&self.leaf_der, self.now).expect("a leaf we verified parses");
        let ca = summarize(self.ca.cert_der(), self.now).expect("a CA we loaded parses");
        EnsureReport {
            dir: self.dir.clone(),
            dry_run,
            changed: files.iter().any(|f| f.outcome != Outcome::Unchanged),
            ca: self.ca_action,
            ca_why: self.ca_why.clone(),
            ca_subject: ca.subject,
            ca_sha256: ca.sha256,
            ca_scope: NameScope::of_certificate(self.ca.cert_der()),
            server: self.server_action,
            server_why: self.server_why.clone(),
            sans: leaf.sans,
            server_not_after: leaf.not_after,
            server_days_left: leaf.days_left,
            server_sha256: leaf.sha256,
            files,
        }
    }
}

/// The existing leaf's DER when it can stay, or every reason it must be re-issued.
fn existing_leaf_problems(
    dir: &Path,
    ca: &Ca,
    wanted: &SanSet,
    pem_file: &OnDisk,
    key_file: &OnDisk,
    now: OffsetDateTime,
) -> Result<Vec<u8>, Vec<String>> {
    let leaf_der = pem::certificates(&dir.join(files::SERVER_PEM), &pem_file.bytes)
        .map_err(|e| vec![format!("server.pem does not parse ({e})")])?
        .swap_remove(0);
    let summary = summarize(&leaf_der, now).map_err(|e| vec![format!("server.pem: {e}")])?;
    let mut problems = Vec::new();
    match pem::private_key(&dir.join(files::SERVER_KEY), &key_file.bytes, None) {
        Ok(key) if public_key_bits(&leaf_der).as_deref() == Some(key.public_key_raw()) => {}
        Ok(_) => problems.push("server.key does not belong to server.pem".to_string()),
        Err(e) => problems.push(format!("server.key does not parse ({e})")),
    }
    let gained = wanted.missing_from(&summary.sans);
    let lost = summary.sans.missing_from(wanted);
    if !gained.is_empty() || !lost.is_empty() {
        let mut change = Vec::new();
        if !gained.is_empty() {
            change.push(format!("add {}", gained.join(", ")));
        }
        if !lost.is_empty() {
            change.push(format!("drop {}", lost.join(", ")));
        }
        problems.push(format!(
            "the wanted names changed (the LAN address moved?): {}",
            change.join("; ")
        ));
    }
    if summary.days_left < 0 {
        problems.push(format!("it expired on {}", summary.not_after));
    } else if summary.days_left < RENEW_BELOW_DAYS {
        problems.push(format!(
            "{} days left (renewed below {RENEW_BELOW_DAYS})",
            summary.days_left
        ));
    } else if let Err(e) = trust::leaf_verifies(ca.cert_der(), &leaf_der, now) {
        problems.push(format!("it does not verify against ca.pem: {e}"));
    }
    if problems.is_empty() {
        Ok(leaf_der)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn lan(addrs: &[&str]) -> Vec<IpAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, i64, i64, u32)> {
        files::ALL
            .iter()
            .map(|(name, _)| {
                let p = dir.join(name);
                let m = std::fs::metadata(&p).unwrap();
                (
                    name.to_string(),
                    std::fs::read(&p).unwrap(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.mode() & 0o7777,
                )
            })
            .collect()
    }

    #[test]
    fn ensure_creates_then_keeps_then_reissues_when_the_lan_moves() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let city = City::default_city();
        let now = OffsetDateTime::now_utc();
        let ensure_on = |address: &str| {
            ensure_in(
                &pki,
                &city,
                &lan(&[address]),
                &EnsureOptions::default(),
                now,
            )
            .unwrap()
        };
        let first = ensure_on("192.0.2.10");
        assert_eq!(
            (first.ca.as_str(), first.server.as_str()),
            ("created", "issued")
        );
        assert_eq!(
            (first.ca.outcome, first.server.outcome),
            (Outcome::Created, Outcome::Created)
        );
        assert!(first.files.iter().all(|f| f.outcome == Outcome::Created));
        let before = snapshot(&pki);
        assert_eq!(before[0].4, 0o600);
        assert_eq!(before[3].4, 0o600);

        let second = ensure_on("192.0.2.10");
        assert!(!second.changed, "{second:?}");
        assert_eq!((second.ca, second.server), (Action::KEPT, Action::KEPT));
        assert_eq!(snapshot(&pki), before);

        let moved = ensure_on("192.0.2.11");
        assert_eq!(
            (moved.ca.as_str(), moved.server.as_str()),
            ("kept", "issued")
        );
        assert_eq!(moved.server.outcome, Outcome::Updated);
        assert!(
            moved.server_why[0].contains("add IP:192.0.2.11; drop IP:192.0.2.10"),
            "{:?}",
            moved.server_why
        );
        let after = snapshot(&pki);
        assert_eq!(after[..3], before[..3], "CA files must stay byte-identical");
        assert_ne!(after[4].1, before[4].1);
    }

    #[test]
    fn a_dry_run_writes_nothing_and_says_what_it_would_do() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let options = EnsureOptions {
            dry_run: true,
            ..Default::default()
        };
        let report = ensure_in(
            &pki,
            &City::default_city(),
            &[],
            &options,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(report.dry_run && report.changed);
        assert_eq!(report.ca.as_str(), "created");
        assert_eq!(report.ca.outcome, Outcome::WouldCreate);
        assert_eq!(
            serde_json::to_value(&report).unwrap()["ca"],
            "created",
            "the JSON keeps the PKI's word"
        );
        assert!(!pki.exists());
    }

    /// The default city without LAN addresses, default options, at one fixed time.
    fn ensure_default_at(now: OffsetDateTime) -> impl Fn(&Path) -> Result<EnsureReport, PkiError> {
        let city = City::default_city();
        move |pki| ensure_in(pki, &city, &[], &EnsureOptions::default(), now)
    }

    #[test]
    fn a_lone_ca_certificate_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ensure = ensure_default_at(OffsetDateTime::now_utc());
        ensure(&pki).unwrap();
        std::fs::remove_file(pki.join(files::CA_KEY)).unwrap();
        let err = ensure(&pki).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMissing { .. }), "{err}");
        assert!(!pki.join(files::CA_KEY).exists());
    }

    #[test]
    fn a_surviving_ca_key_gets_a_new_certificate_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ensure = ensure_default_at(OffsetDateTime::now_utc());
        ensure(&pki).unwrap();
        let key = std::fs::read(pki.join(files::CA_KEY)).unwrap();
        std::fs::remove_file(pki.join(files::CA_PEM)).unwrap();
        let report = ensure(&pki).unwrap();
        assert_eq!(
            (report.ca.as_str(), report.server.as_str()),
            ("recertified", "issued")
        );
        let scope = report
            .ca_scope
            .expect("a re-certified CA is constrained too");
        assert_eq!(scope.dns, ["cicd.local", "localhost", "postgres"]);
        assert_eq!(std::fs::read(pki.join(files::CA_KEY)).unwrap(), key);
    }
}
