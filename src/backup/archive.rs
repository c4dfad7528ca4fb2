//! The backup file: one age-encrypted (or, said explicitly, plain) tar stream of the parts, with
//! the manifest as the last entry. Written to a temporary name in the target directory, fsynced,
//! renamed, and the directory fsynced, so a crash leaves the previous set of backups or the new
//! complete one; age's STREAM construction also rejects a truncated file. Read back entry by
//! entry, hashing as it goes: nothing is ever held whole in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BackupError;
use super::key::{FinishWrite, Opener, Seal};
use super::manifest::{Entry, Kind, MANIFEST, Manifest, Part};

/// The database dump is cut into chunks of this size (tar needs each entry's size up front, and
/// the dump's is unknown until it ends); one chunk buffer is the writer's whole memory.
pub const CHUNK: usize = 8 << 20;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
pub const FILE_PREFIX: &str = "cityd-backup-";
pub const TEMP_PREFIX: &str = ".cityd-backup-";
pub const PARTIAL_SUFFIX: &str = ".partial";

type Sink = BufWriter<File>;

/// A backup being written.
pub struct Writer {
    tar: tar::Builder<Box<dyn FinishWrite<Sink>>>,
    temp: PathBuf,
    path: PathBuf,
    pub parts: BTreeMap<String, Part>,
    pub entries: BTreeMap<String, Entry>,
    buffer: Vec<u8>,
    pub written: u64,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `cityd-backup-20261204T040300.123Z`: sortable, unique per millisecond.
pub fn stamp(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

impl Writer {
    /// Starts `<dir>/cityd-backup-<stamp>.age` (`.tar` unencrypted) under a temporary name, mode 0600.
    pub fn create(dir: &Path, seal: &Seal, at: time::OffsetDateTime) -> Result<Self, BackupError> {
        let ext = if seal.is_encrypted() { "age" } else { "tar" };
        let mut stamp = stamp(at);
        let mut n = 0;
        let path = loop {
            let candidate = dir.join(format!("{FILE_PREFIX}{stamp}.{ext}"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
            stamp = format!("{}-{n}", self::stamp(at));
        };
        let temp = dir.join(format!("{TEMP_PREFIX}{stamp}.{ext}{PARTIAL_SUFFIX}"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("create", &temp))?;
        let out = seal
            .wrap(BufWriter::with_capacity(1 << 20, file))
            .map_err(io("write", &temp))?;
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        Ok(Self {
            tar,
            temp,
            path,
            parts: BTreeMap::new(),
            entries: BTreeMap::new(),
            buffer: Vec::new(),
            written: 0,
        })
    }

    /// The final name the backup gets when it is complete.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn header(entry: &Entry, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(entry.mode);
        h.set_uid(entry.uid);
        h.set_gid(entry.gid);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    /// Adds a regular file of `size` bytes read from `data`, hashing it on the way.
    pub fn add_file(
        &mut self,
        name: &str,
        mut entry: Entry,
        mtime: u64,
        data: &mut dyn Read,
    ) -> Result<(), BackupError> {
        let mut h = Self::header(&entry, mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(entry.size);
        let mut hashing = Hashing::new(data.take(entry.size));
        self.tar
            .append_data(&mut h, name, &mut hashing)
            .map_err(io("write", &self.temp))?;
        if hashing.count != entry.size {
            return Err(BackupError::Tool {
                what: format!("read {name}"),
                detail: format!(
                    "it shrank while being read ({} of {} bytes)",
                    hashing.count, entry.size
                ),
            });
        }
        self.written += entry.size;
        entry.kind = Kind::File;
        entry.sha256 = Some(hashing.hex());
        self.entries.insert(name.to_string(), entry);
        Ok(())
    }

    /// Adds a directory or a symbolic link.
    pub fn add_other(&mut self, name: &str, entry: Entry, mtime: u64) -> Result<(), BackupError> {
        let mut h = Self::header(&entry, mtime);
        match entry.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.tar
                    .append_data(&mut h, format!("{name}/"), std::io::empty())
                    .map_err(io("write", &self.temp))?;
            }
            Kind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = entry.link.clone().unwrap_or_default();
                self.tar
                    .append_link(&mut h, name, target)
                    .map_err(io("write", &self.temp))?;
            }
            Kind::File => unreachable!("files go through add_file"),
        }
        self.entries.insert(name.to_string(), entry);
        Ok(())
    }

    /// Streams `data` (of unknown length) as the chunked part `name`; `progress` sees the bytes.
    pub fn add_part(
        &mut self,
        name: &str,
        data: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<&Part, BackupError> {
        let mut whole = Sha256::new();
        let mut part = Part {
            size: 0,
            sha256: String::new(),
            chunks: 0,
            chunk_sha256: Vec::new(),
        };
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(CHUNK, 0);
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                let n = data
                    .read(&mut buffer[filled..])
                    .map_err(|e| BackupError::Tool {
                        what: format!("read {name}"),
                        detail: crate::exit::causes_text(&e),
                    })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            // An empty part still gets one (empty) chunk, so it exists in the archive.
            if filled == 0 && part.chunks > 0 {
                break;
            }
            let chunk = &buffer[..filled];
            whole.update(chunk);
            part.chunk_sha256.push(hex::encode(Sha256::digest(chunk)));
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(filled as u64);
            self.tar
                .append_data(&mut h, chunk_name(name, part.chunks), chunk)
                .map_err(io("write", &self.temp))?;
            part.chunks += 1;
            part.size += filled as u64;
            self.written += filled as u64;
            progress(part.size);
            if filled < CHUNK {
                break;
            }
        }
        part.sha256 = hex::encode(whole.finalize());
        buffer.clear();
        buffer.shrink_to_fit();
        self.buffer = buffer;
        self.parts.insert(name.to_string(), part);
        Ok(&self.parts[name])
    }

    /// Appends the manifest, finishes encryption, fsyncs, renames into place and fsyncs the
    /// directory. Returns the final path and its size.
    pub fn finish(mut self, manifest: &Manifest) -> Result<(PathBuf, u64), BackupError> {
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(json.len() as u64);
        h.set_mtime(manifest.created_unix.max(0) as u64);
        let temp = self.temp.clone();
        self.tar
            .append_data(&mut h, MANIFEST, json.as_slice())
            .map_err(io("write", &temp))?;
        let out = self.tar.into_inner().map_err(io("write", &temp))?;
        let sink = out.finish_box().map_err(io("write", &temp))?;
        let file = sink.into_inner().map_err(|e| BackupError::Io {
            what: "write",
            path: temp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io("sync", &temp))?;
        let size = file.metadata().map_err(io("stat", &temp))?.len();
        drop(file);
        std::fs::rename(&temp, &self.path).map_err(io("rename", &temp))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", dir))?;
        Ok((self.path.clone(), size))
    }

    /// Removes the temporary file of an abandoned backup.
    pub fn abandon(self) {
        let temp = self.temp.clone();
        drop(self);
        let _ = std::fs::remove_file(temp);
    }
}

pub fn chunk_name(part: &str, n: u32) -> String {
    format!("{part}.{n:06}")
}

/// The part a chunk entry belongs to: `db/dump.000003` -> (`db/dump`, 3).
fn chunk_of(name: &str) -> Option<(&str, u32)> {
    let (part, n) = name.rsplit_once('.')?;
    (name.starts_with("db/") && n.len() == 6)
        .then(|| n.parse().ok().map(|n| (part, n)))
        .flatten()
}

/// A reader that hashes and counts what passes through.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// One entry as the reader hands it to a visitor. The visitor may read `data` (fully or not);
/// the rest is drained and hashed anyway.
pub struct Item<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: Option<String>,
    /// For chunks of a part: the part's name.
    pub part: Option<&'a str>,
    pub data: &'a mut dyn Read,
}

/// Whether a file is an age file (by its magic) or a plain tar.
pub fn is_encrypted(path: &Path) -> Result<bool, BackupError> {
    let mut head = [0u8; AGE_MAGIC.len()];
    let mut f = File::open(path).map_err(io("open", path))?;
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..]).map_err(io("read", path))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n == head.len() && head == AGE_MAGIC)
}

/// The decrypted stream of a backup file.
fn open(path: &Path, opener: &Opener) -> Result<Box<dyn Read>, BackupError> {
    let encrypted = is_encrypted(path)?;
    let file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io("open", path))?);
    if !encrypted {
        return Ok(Box::new(file));
    }
    let corrupt = |reason: String| BackupError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let wrong = |reason: String| BackupError::WrongKey {
        path: path.to_path_buf(),
        reason,
    };
    let decryptor =
        age::Decryptor::new_buffered(file).map_err(|e| corrupt(format!("its age header: {e}")))?;
    let scrypt;
    let identities: Vec<&dyn age::Identity> = match opener {
        Opener::None => {
            return Err(BackupError::NeedKey {
                path: path.to_path_buf(),
            });
        }
        Opener::Identities(ids) => {
            if decryptor.is_scrypt() {
                return Err(wrong(
                    "it was encrypted with a passphrase; give --passphrase-file".into(),
                ));
            }
            ids.iter()
                .map(|i| i.as_ref() as &dyn age::Identity)
                .collect()
        }
        Opener::Passphrase(p) => {
            if !decryptor.is_scrypt() {
                return Err(wrong(
                    "it was encrypted to a public key; give --identity-file".into(),
                ));
            }
            scrypt = age::scrypt::Identity::new(p.clone());
            vec![&scrypt as &dyn age::Identity]
        }
    };
    match decryptor.decrypt(identities.into_iter()) {
        Ok(reader) => Ok(Box::new(reader)),
        Err(age::DecryptError::NoMatchingKeys) => {
            Err(wrong("none of the given keys is a recipient of it".into()))
        }
        Err(age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed) => {
            Err(wrong("the key or passphrase does not decrypt it".into()))
        }
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// What a full read found: the manifest and whether every hash matched it.
pub struct Scanned {
    pub manifest: Manifest,
    pub bytes: u64,
}

/// Reads the whole backup, hands each entry to `visit`, hashes everything, and checks it all
/// against the manifest (the last entry). Any difference is `Corrupt`.
pub fn scan(
    path: &Path,
    opener: &Opener,
    visit: &mut dyn FnMut(Item<'_>) -> Result<(), BackupError>,
) -> Result<Scanned, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let reader = open(path, opener)?;
    let mut archive = tar::Archive::new(reader);
    let mut seen: BTreeMap<String, Entry> = BTreeMap::new();
    let mut parts: BTreeMap<String, (Sha256, Vec<String>, u64)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut bytes = 0u64;
    let read_err = |e: std::io::Error| {
        corrupt(format!(
            "reading it failed: {}",
            crate::exit::causes_text(&e)
        ))
    };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        if manifest.is_some() {
            return Err(corrupt("an entry follows the manifest".into()));
        }
        let name = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let h = entry.header().clone();
        let size = entry.size();
        if name == MANIFEST {
            let mut json = Vec::new();
            entry.read_to_end(&mut json).map_err(read_err)?;
            manifest = Some(
                serde_json::from_slice(&json)
                    .map_err(|e| corrupt(format!("its manifest is not valid: {e}")))?,
            );
            continue;
        }
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            other => return Err(corrupt(format!("{name}: unexpected entry type {other:?}"))),
        };
        let link = entry
            .link_name()
            .map_err(read_err)?
            .map(|l| l.to_string_lossy().into_owned());
        let chunk = chunk_of(&name);
        let whole = match chunk {
            Some((part, n)) => {
                let slot = parts
                    .entry(part.to_string())
                    .or_insert_with(|| (Sha256::new(), Vec::new(), 0));
                if n as usize != slot.1.len() {
                    return Err(corrupt(format!("{name} is out of order")));
                }
                Some(&mut slot.0)
            }
            None => None,
        };
        let mut tee = Tee {
            inner: &mut entry,
            also: whole,
        };
        let mut hashing = Hashing::new(&mut tee);
        visit(Item {
            name: &name,
            kind,
            mode: h.mode().unwrap_or(0o600),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
            size,
            link: link.clone(),
            part: chunk.map(|(p, _)| p),
            data: &mut hashing,
        })?;
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(read_err)?;
        bytes += hashing.count;
        let count = hashing.count;
        let digest = hashing.hasher.clone().finalize();
        if let Some((part, _)) = chunk {
            let slot = parts.get_mut(part).expect("made above");
            slot.1.push(hex::encode(digest));
            slot.2 += count;
            continue;
        }
        seen.insert(
            name,
            Entry {
                kind,
                size: if kind == Kind::File { count } else { 0 },
                sha256: (kind == Kind::File).then(|| hex::encode(digest)),
                mode: h.mode().unwrap_or(0),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                link,
            },
        );
    }
    let manifest = manifest.ok_or_else(|| {
        corrupt("it has no manifest, so it is incomplete (a backup that did not finish)".into())
    })?;
    for (name, want) in &manifest.entries {
        let got = seen
            .remove(name)
            .ok_or_else(|| corrupt(format!("{name} is in the manifest but not in the archive")))?;
        if got.kind != want.kind
            || (want.kind == Kind::File && (got.sha256 != want.sha256 || got.size != want.size))
        {
            return Err(corrupt(format!(
                "{name} does not match its SHA-256 in the manifest"
            )));
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(corrupt(format!(
            "{extra} is in the archive but not in the manifest"
        )));
    }
    for (name, want) in &manifest.parts {
        let (whole, chunks, size) = parts
            .remove(name)
            .ok_or_else(|| corrupt(format!("part {name} is missing")))?;
        if let Some(i) = chunks
            .iter()
            .zip(&want.chunk_sha256)
            .position(|(a, b)| a != b)
        {
            return Err(corrupt(format!(
                "{} does not match its SHA-256 in the manifest",
                chunk_name(name, i as u32)
            )));
        }
        if chunks.len() != want.chunk_sha256.len() || size != want.size {
            return Err(corrupt(format!(
                "part {name} has {} chunks, the manifest {}",
                chunks.len(),
                want.chunks
            )));
        }
        if hex::encode(whole.finalize()) != want.sha256 {
            return Err(corrupt(format!(
                "part {name} does not match its SHA-256 in the manifest"
            )));
        }
    }
    if let Some(extra) = parts.keys().next() {
        return Err(corrupt(format!("part {extra} is not in the manifest")));
    }
    Ok(Scanned { manifest, bytes })
}

/// Reads through `inner`, also feeding a part's whole-content hasher when there is one.
struct Tee<'a, R> {
    inner: R,
    also: Option<&'a mut Sha256>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.also.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_round_trip() {
        assert_eq!(chunk_name("db/dump", 3), "db/dump.000003");
        assert_eq!(chunk_of("db/dump.000003"), Some(("db/dump", 3)));
        assert_eq!(chunk_of("state/secrets/x.000003"), None);
        assert_eq!(chunk_of("db/dump"), None);
    }

    fn manifest_of(w: &Writer) -> Manifest {
        Manifest {
            format: super::super::manifest::FORMAT,
            cityd_version: "test".into(),
            created: "2026-01-01T00:00:00Z".into(),
            created_unix: 1_767_225_600,
            mattermost: super::super::manifest::MattermostInfo {
                image: "mm:11.8.5".into(),
                version: Some("11.8.5".into()),
                volumes: BTreeMap::new(),
            },
            postgres: super::super::manifest::PostgresInfo {
                server_version: "17.6".into(),
                server_major: 17,
                dump_tool: "pg_dump (PostgreSQL) 17.6".into(),
                database: "mattermost".into(),
                role: "mattermost".into(),
                schema_version: None,
                row_counts: BTreeMap::new(),
            },
            ca_fingerprint: None,
            parts: w.parts.clone(),
            entries: w.entries.clone(),
        }
    }

    /// Writes a backup with a two-chunk part and a file; returns its path and the identity.
    fn sample(dir: &Path) -> (PathBuf, age::x25519::Identity) {
        let id = age::x25519::Identity::generate();
        let seal = Seal::Recipients(vec![id.to_public()]);
        let mut w = Writer::create(dir, &seal, time::OffsetDateTime::now_utc()).unwrap();
        let entry = Entry {
            kind: Kind::File,
            size: 5,
            sha256: None,
            mode: 0o600,
            uid: 0,
            gid: 0,
            link: None,
        };
        w.add_file("state/secrets/x", entry, 0, &mut &b"hello"[..])
            .unwrap();
        let big: Vec<u8> = (0..CHUNK + 1000).map(|i| (i % 251) as u8).collect();
        let part = w
            .add_part("db/dump", &mut big.as_slice(), &mut |_| {})
            .unwrap();
        assert_eq!(part.chunks, 2);
        let m = manifest_of(&w);
        let (path, _) = w.finish(&m).unwrap();
        (path, id)
    }

    fn opener(id: &age::x25519::Identity) -> Opener {
        Opener::Identities(vec![Box::new(id.clone())])
    }

    #[test]
    fn a_written_backup_scans_clean_and_a_flipped_bit_or_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, id) = sample(dir.path());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
        let mut seen = Vec::new();
        let scanned = scan(&path, &opener(&id), &mut |item| {
            seen.push(item.name.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            ["state/secrets/x", "db/dump.000000", "db/dump.000001"]
        );
        assert_eq!(
            scanned.manifest.parts["db/dump"].size,
            (CHUNK + 1000) as u64
        );

        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        let bad = dir.path().join("bad.age");
        std::fs::write(&bad, &bytes).unwrap();
        let err = scan(&bad, &opener(&id), &mut |_| Ok(())).err().unwrap();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");

        let other = age::x25519::Identity::generate();
        let err = scan(&path, &opener(&other), &mut |_| Ok(())).err().unwrap();
        assert!(matches!(err, BackupError::WrongKey { .. }), "{err}");
        let err = scan(&path, &Opener::None, &mut |_| Ok(())).err().unwrap();
        assert!(matches!(err, BackupError::NeedKey { .. }), "{err}");
    }

    #[test]
    fn stamps_sort_as_time() {
        let a = stamp(time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let b = stamp(time::OffsetDateTime::from_unix_timestamp(1_800_000_001).unwrap());
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20270115T080000.000Z".len());
    }
}
