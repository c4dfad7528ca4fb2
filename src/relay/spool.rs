//! The durable spool: one append-only log file under the spool directory, owned by one writer
//! thread. Requests queue commands; the writer takes everything queued, writes it in one `write`,
//! runs one `fdatasync` and only then answers them all (group commit). It also remembers recent
//! dedup keys, recovers the log after a crash (truncating a torn tail) and compacts it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::metrics::{Metrics, now_ms};
use super::record::{self, FILE_MAGIC, KeyId, Outcome, Record, StreamReader};
use crate::state::StateDir;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error(
        "spool {path}: {source}; check that the directory is on a writable local disk with free space"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "spool {path} is in use by another relay (its lock is held); stop that relay or give this one another --spool"
    )]
    Locked { path: PathBuf },
    #[error(
        "{path} is not a cityd spool file (wrong header); move it away or point --spool at another directory"
    )]
    NotASpool { path: PathBuf },
    #[error(
        "spool {path}: a write or sync failed ({reason}); the relay stops so that nothing unsaved is acknowledged"
    )]
    WriteFailed { path: PathBuf, reason: String },
    #[error("the spool writer has stopped after an earlier error; the relay is shutting down")]
    Closed,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tunables; the defaults suit a relay that sees a few alerts a minute and survives bursts.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// How many delivered keys are remembered for deduplication.
    pub dedup_capacity: usize,
    /// How long a delivered key is remembered (SonarQube keeps its delivery history 30 days).
    pub dedup_max_age_ms: u64,
    /// The log is compacted when it grows past this size (and past twice its live content).
    pub compact_min_bytes: u64,
}

impl SpoolOptions {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            dedup_capacity: 100_000,
            dedup_max_age_ms: 30 * 24 * 3600 * 1000,
            compact_min_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored and synced under this sequence number.
    Spooled { seq: u64 },
    /// The key is already in the spool or the dedup window; nothing was stored.
    Duplicate,
}

/// An event read back from the spool for delivery.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub key: String,
    pub received_ms: u64,
    /// When the last post attempt was recorded as in flight, if any.
    pub in_flight_ms: Option<u64>,
    pub body: Vec<u8>,
}

/// What recovery found in the log.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Undelivered events never attempted (or attempted with a known non-delivery), oldest first.
    pub pending: Vec<u64>,
    /// Events whose post may or may not have reached Mattermost: reconcile before reposting.
    pub in_flight: Vec<u64>,
    /// Bytes of torn tail cut off the log.
    pub truncated_bytes: u64,
    /// Keys remembered for deduplication.
    pub remembered_keys: usize,
}

enum Command {
    Append {
        key: String,
        body: axum::body::Bytes,
        received_ms: u64,
        reply: oneshot::Sender<Result<Appended, SpoolError>>,
    },
    Claim {
        seqs: Vec<u64>,
        at_ms: u64,
        reply: oneshot::Sender<Result<Vec<Stored>, SpoolError>>,
    },
    Load {
        seqs: Vec<u64>,
        reply: oneshot::Sender<Result<Vec<Stored>, SpoolError>>,
    },
    Done {
        seq: u64,
        outcome: Outcome,
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
}

/// A cheap, cloneable handle to the writer thread.
#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<Command>,
}

impl Spool {
    /// Stores an event durably (synced before this returns), unless its key is known.
    pub async fn append(
        &self,
        key: String,
        body: axum::body::Bytes,
    ) -> Result<Appended, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append {
            key,
            body,
            received_ms: now_ms(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Records that posts of `seqs` are about to be sent (synced) and returns their bodies.
    /// Events already done are left out.
    pub async fn claim(&self, seqs: Vec<u64>) -> Result<Vec<Stored>, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Claim {
            seqs,
            at_ms: now_ms(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Returns the stored events without recording anything.
    pub async fn load(&self, seqs: Vec<u64>) -> Result<Vec<Stored>, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Load { seqs, reply }).await?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Records that `seq` needs nothing more (synced).
    pub async fn done(&self, seq: u64, outcome: Outcome) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Done {
            seq,
            outcome,
            reply,
        })
        .await?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    async fn send(&self, command: Command) -> Result<(), SpoolError> {
        self.tx.send(command).await.map_err(|_| SpoolError::Closed)
    }
}

/// The running spool: the handle, what recovery found, the stream of newly stored sequence
/// numbers (for the delivery worker) and the writer thread, which returns when every handle is
/// dropped or after a write error.
pub struct Opened {
    pub spool: Spool,
    pub recovered: Recovered,
    pub new_events: mpsc::UnboundedReceiver<u64>,
    pub writer: std::thread::JoinHandle<Result<(), SpoolError>>,
}

/// Opens (creating if needed) and recovers the spool, then starts its writer thread.
/// Blocking: call it from a blocking context.
pub fn open(options: SpoolOptions, metrics: Arc<Metrics>) -> Result<Opened, SpoolError> {
    let (log, recovered) = Log::recover(options)?;
    log.publish(&metrics);
    let (tx, rx) = mpsc::channel(8192);
    let (new_tx, new_events) = mpsc::unbounded_channel();
    let writer = std::thread::Builder::new()
        .name("relay-spool".into())
        .spawn(move || log.run(rx, new_tx, &metrics))
        .map_err(io_at(Path::new("relay-spool thread")))?;
    Ok(Opened {
        spool: Spool { tx },
        recovered,
        new_events,
        writer,
    })
}

/// An undelivered event: where its key and body are, and whether a post may be out. The key and
/// body stay on disk (read back when the event is posted) so a long outage costs little memory.
#[derive(Debug)]
struct Live {
    key_id: KeyId,
    key_len: u16,
    received_ms: u64,
    body_at: u64,
    body_len: u32,
    in_flight_ms: Option<u64>,
}

/// Recently seen keys, oldest first, bounded by count and age.
struct Dedup {
    set: HashSet<KeyId>,
    order: VecDeque<(KeyId, u64)>,
    capacity: usize,
    max_age_ms: u64,
}

impl Dedup {
    fn contains(&self, id: &KeyId) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: KeyId, at_ms: u64) {
        if self.set.insert(id) {
            self.order.push_back((id, at_ms));
        }
    }

    /// Forgets the oldest keys beyond the bounds, but never the key of an undelivered event.
    fn evict(&mut self, now_ms: u64, live: &HashSet<KeyId>) {
        let mut budget = self.order.len();
        while budget > 0 {
            budget -= 1;
            let Some(&(id, at)) = self.order.front() else {
                break;
            };
            let too_many = self.order.len() > self.capacity;
            let too_old = now_ms.saturating_sub(at) > self.max_age_ms;
            if !too_many && !too_old {
                break;
            }
            self.order.pop_front();
            if live.contains(&id) {
                self.order.push_back((id, now_ms));
            } else {
                self.set.remove(&id);
            }
        }
    }
}

/// The log file and everything the writer knows.
struct Log {
    options: SpoolOptions,
    _lock: File,
    file: File,
    path: PathBuf,
    number: u64,
    len: u64,
    compact_at: u64,
    next_seq: u64,
    live: BTreeMap<u64, Live>,
    live_keys: HashSet<KeyId>,
    dedup: Dedup,
}

fn log_name(number: u64) -> String {
    format!("spool-{number:08}.log")
}

fn log_number(name: &str) -> Option<u64> {
    name.strip_prefix("spool-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

const TEMP_NAME: &str = ".spool-compacting";

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn create_log(path: &Path, dir: &Path) -> Result<File, SpoolError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))?;
    file.write_all_at(FILE_MAGIC, 0).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))?;
    sync_dir(dir)?;
    Ok(file)
}

impl Log {
    fn recover(options: SpoolOptions) -> Result<(Self, Recovered), SpoolError> {
        let dir = options.dir.clone();
        StateDir::create_private_dir(&dir).map_err(|e| SpoolError::Io {
            path: dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked { path: dir.clone() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_at(&lock_path)(e)),
        }

        // The newest complete log wins: compaction renames its output into place only after syncing
        // it, so any older log left by a crash is superseded, and a temp file is unfinished.
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == TEMP_NAME {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(n) = log_number(&name) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let number = numbers.last().copied().unwrap_or(1);
        for old in &numbers[..numbers.len().saturating_sub(1)] {
            let _ = std::fs::remove_file(dir.join(log_name(*old)));
        }
        let path = dir.join(log_name(number));
        let file = if numbers.is_empty() {
            create_log(&path, &dir)?
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_at(&path))?
        };
        let file_len = file.metadata().map_err(io_at(&path))?.len();

        let mut log = Log {
            dedup: Dedup {
                set: HashSet::new(),
                order: VecDeque::new(),
                capacity: options.dedup_capacity,
                max_age_ms: options.dedup_max_age_ms,
            },
            compact_at: options.compact_min_bytes,
            options,
            _lock: lock,
            file,
            path,
            number,
            len: 0,
            next_seq: 1,
            live: BTreeMap::new(),
            live_keys: HashSet::new(),
        };
        let valid_end = log.replay(file_len)?;
        let mut recovered = Recovered {
            truncated_bytes: file_len.saturating_sub(valid_end),
            ..Recovered::default()
        };
        if valid_end < file_len {
            tracing::warn!(
                path = %log.path.display(),
                bytes = file_len - valid_end,
                "cutting a torn tail off the spool (an append interrupted by a crash; it was never acknowledged)"
            );
            log.file.set_len(valid_end).map_err(io_at(&log.path))?;
            log.file.sync_all().map_err(io_at(&log.path))?;
        }
        log.len = valid_end;
        log.compact_at = log.options.compact_min_bytes.max(2 * valid_end);
        log.dedup.evict(now_ms(), &log.live_keys);
        for (seq, live) in &log.live {
            match live.in_flight_ms {
                Some(_) => recovered.in_flight.push(*seq),
                None => recovered.pending.push(*seq),
            }
        }
        recovered.remembered_keys = log.dedup.set.len();
        Ok((log, recovered))
    }

    /// Rebuilds the state from the log; returns the offset after the last whole record.
    fn replay(&mut self, file_len: u64) -> Result<u64, SpoolError> {
        let head_len = file_len.min(FILE_MAGIC.len() as u64) as usize;
        let mut head = vec![0u8; head_len];
        self.file
            .read_exact_at(&mut head, 0)
            .map_err(io_at(&self.path))?;
        if head_len < FILE_MAGIC.len() && FILE_MAGIC.starts_with(&head) {
            // A crash while creating the file: nothing was ever acknowledged from it.
            self.file
                .write_all_at(FILE_MAGIC, 0)
                .and_then(|_| self.file.sync_all())
                .map_err(io_at(&self.path))?;
            return Ok(FILE_MAGIC.len() as u64);
        }
        if head != FILE_MAGIC {
            return Err(SpoolError::NotASpool {
                path: self.path.clone(),
            });
        }
        let mut source = &self.file;
        std::io::Seek::seek(
            &mut source,
            std::io::SeekFrom::Start(FILE_MAGIC.len() as u64),
        )
        .map_err(io_at(&self.path))?;
        let buffered = BufReader::with_capacity(256 * 1024, source);
        let mut reader = StreamReader::new(buffered, FILE_MAGIC.len() as u64);
        while let Some(located) = reader.next_record() {
            match located.record {
                Record::Accepted {
                    seq,
                    received_ms,
                    key,
                    body,
                } => {
                    let key_id = KeyId::of(key);
                    self.dedup.insert(key_id, received_ms);
                    self.live_keys.insert(key_id);
                    self.live.insert(
                        seq,
                        Live {
                            key_id,
                            key_len: key.len() as u16,
                            received_ms,
                            body_at: located.body_at.unwrap_or(0),
                            body_len: body.len() as u32,
                            in_flight_ms: None,
                        },
                    );
                    self.next_seq = self.next_seq.max(seq + 1);
                }
                Record::InFlight { seq, at_ms } => {
                    if let Some(live) = self.live.get_mut(&seq) {
                        live.in_flight_ms = Some(at_ms);
                    }
                }
                Record::Done { seq, .. } => {
                    if let Some(live) = self.live.remove(&seq) {
                        self.live_keys.remove(&live.key_id);
                    }
                    self.next_seq = self.next_seq.max(seq + 1);
                }
                Record::Seen { key_id, at_ms } => self.dedup.insert(key_id, at_ms),
            }
        }
        Ok(reader.valid_end())
    }

    fn publish(&self, metrics: &Metrics) {
        metrics.undelivered.store(self.live.len() as u64, Relaxed);
        let oldest = self.live.values().next().map_or(0, |l| l.received_ms);
        metrics.oldest_undelivered_ms.store(oldest, Relaxed);
    }

    /// Reads an event's key and body with one read: in an `Accepted` record the key, the body
    /// length and the body are contiguous.
    fn read_event(&self, live: &Live) -> Result<(String, Vec<u8>), SpoolError> {
        let key_len = live.key_len as usize;
        let start = live.body_at - 4 - key_len as u64;
        let mut bytes = vec![0u8; key_len + 4 + live.body_len as usize];
        self.file
            .read_exact_at(&mut bytes, start)
            .map_err(io_at(&self.path))?;
        let body = bytes.split_off(key_len + 4);
        bytes.truncate(key_len);
        let key = String::from_utf8(bytes).map_err(|_| SpoolError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("a stored key is not UTF-8 (the file changed under us)"),
        })?;
        Ok((key, body))
    }

    fn stored(&self, seq: u64) -> Result<Option<Stored>, SpoolError> {
        let Some(live) = self.live.get(&seq) else {
            return Ok(None);
        };
        let (key, body) = self.read_event(live)?;
        Ok(Some(Stored {
            seq,
            key,
            received_ms: live.received_ms,
            in_flight_ms: live.in_flight_ms,
            body,
        }))
    }

    /// The writer loop: one batch of queued commands, one write, one sync, then all the answers.
    fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        new_events: mpsc::UnboundedSender<u64>,
        metrics: &Metrics,
    ) -> Result<(), SpoolError> {
        const MAX_BATCH: usize = 4096;
        let mut batch = Vec::with_capacity(256);
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        while let Some(first) = rx.blocking_recv() {
            batch.clear();
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            buf.clear();
            // A burst can grow the batch buffer to megabytes; do not keep that for good.
            buf.shrink_to(1 << 20);
            let result = self.commit(&mut batch, &mut buf, &new_events, metrics);
            if let Err(error) = result {
                // After a failed write or sync the file's state is unknown (fsync errors are not
                // retryable on Linux): stop, so nothing further is acknowledged.
                tracing::error!("{error}");
                return Err(error);
            }
            if self.len > self.compact_at
                && let Err(error) = self.compact()
            {
                tracing::error!("{error}");
                return Err(error);
            }
        }
        Ok(())
    }

    fn commit(
        &mut self,
        batch: &mut Vec<Command>,
        buf: &mut Vec<u8>,
        new_events: &mpsc::UnboundedSender<u64>,
        metrics: &Metrics,
    ) -> Result<(), SpoolError> {
        let base = self.len;
        let now = now_ms();
        // Effects applied to memory only after the sync succeeds.
        let mut appended: Vec<(u64, Live)> = Vec::new();
        let mut claimed: Vec<(u64, u64)> = Vec::new();
        let mut finished: Vec<(u64, Outcome)> = Vec::new();
        let mut batch_keys: HashSet<KeyId> = HashSet::new();
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());

        for command in batch.drain(..) {
            match command {
                Command::Append {
                    key,
                    body,
                    received_ms,
                    reply,
                } => {
                    let key = bounded_key(key);
                    let key_id = KeyId::of(&key);
                    if self.dedup.contains(&key_id) || !batch_keys.insert(key_id) {
                        answers.push(Answer::Append(reply, Appended::Duplicate));
                        continue;
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let frame_at = base + buf.len() as u64;
                    let body_rel = record::encode(
                        &Record::Accepted {
                            seq,
                            received_ms,
                            key: &key,
                            body: &body,
                        },
                        buf,
                    )
                    .unwrap_or(0);
                    appended.push((
                        seq,
                        Live {
                            key_id,
                            key_len: key.len() as u16,
                            received_ms,
                            body_at: frame_at + body_rel,
                            body_len: body.len() as u32,
                            in_flight_ms: None,
                        },
                    ));
                    answers.push(Answer::Append(reply, Appended::Spooled { seq }));
                }
                Command::Claim { seqs, at_ms, reply } => {
                    let mut out = Vec::with_capacity(seqs.len());
                    let mut failure = None;
                    for seq in seqs {
                        match self.stored(seq) {
                            Ok(Some(mut stored)) => {
                                record::encode(&Record::InFlight { seq, at_ms }, buf);
                                stored.in_flight_ms = Some(at_ms);
                                claimed.push((seq, at_ms));
                                out.push(stored);
                            }
                            Ok(None) => {}
                            Err(e) => failure = Some(e),
                        }
                    }
                    match failure {
                        Some(e) => answers.push(Answer::Claim(reply, Err(e))),
                        None => answers.push(Answer::Claim(reply, Ok(out))),
                    }
                }
                Command::Load { seqs, reply } => {
                    let loaded: Result<Vec<Stored>, SpoolError> = seqs
                        .into_iter()
                        .filter_map(|seq| self.stored(seq).transpose())
                        .collect();
                    // Nothing to sync for a read: answer now.
                    let _ = reply.send(loaded);
                }
                Command::Done {
                    seq,
                    outcome,
                    reply,
                } => {
                    if self.live.contains_key(&seq) {
                        record::encode(&Record::Done { seq, outcome }, buf);
                        finished.push((seq, outcome));
                    }
                    answers.push(Answer::Done(reply));
                }
            }
        }

        if !buf.is_empty() {
            let written = self
                .file
                .write_all_at(buf, base)
                .and_then(|_| self.file.sync_data());
            if let Err(source) = written {
                for answer in answers {
                    answer.fail(&self.path, &source.to_string());
                }
                return Err(SpoolError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
            self.len = base + buf.len() as u64;
        }

        for (seq, live) in appended {
            self.dedup.insert(live.key_id, live.received_ms);
            self.live_keys.insert(live.key_id);
            self.live.insert(seq, live);
            metrics.spooled.fetch_add(1, Relaxed);
            let _ = new_events.send(seq);
        }
        for (seq, at_ms) in claimed {
            if let Some(live) = self.live.get_mut(&seq) {
                live.in_flight_ms = Some(at_ms);
            }
        }
        for (seq, _) in finished {
            if let Some(live) = self.live.remove(&seq) {
                self.live_keys.remove(&live.key_id);
            }
        }
        self.dedup.evict(now, &self.live_keys);
        self.publish(metrics);
        for answer in answers {
            if matches!(answer, Answer::Append(_, Appended::Duplicate)) {
                metrics.duplicates.fetch_add(1, Relaxed);
            }
            answer.send();
        }
        Ok(())
    }

    /// Rewrites the log with only what is still needed: the remembered keys and the undelivered
    /// events. The new file is synced before it replaces the old one, so a crash at any point
    /// leaves one complete log.
    fn compact(&mut self) -> Result<(), SpoolError> {
        let dir = self.options.dir.clone();
        let temp = dir.join(TEMP_NAME);
        let _ = std::fs::remove_file(&temp);
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_at(&temp))?;
        let mut pos = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(FILE_MAGIC);
        let flush = |buf: &mut Vec<u8>, pos: &mut u64| -> Result<(), SpoolError> {
            out.write_all_at(buf, *pos).map_err(io_at(&temp))?;
            *pos += buf.len() as u64;
            buf.clear();
            Ok(())
        };
        for &(key_id, at_ms) in &self.dedup.order {
            record::encode(&Record::Seen { key_id, at_ms }, &mut buf);
            if buf.len() > 1 << 20 {
                flush(&mut buf, &mut pos)?;
            }
        }
        let mut moved: HashMap<u64, u64> = HashMap::with_capacity(self.live.len());
        for (&seq, live) in &self.live {
            let (key, body) = self.read_event(live)?;
            let frame_at = pos + buf.len() as u64;
            let rel = record::encode(
                &Record::Accepted {
                    seq,
                    received_ms: live.received_ms,
                    key: &key,
                    body: &body,
                },
                &mut buf,
            )
            .unwrap_or(0);
            moved.insert(seq, frame_at + rel);
            if let Some(at_ms) = live.in_flight_ms {
                record::encode(&Record::InFlight { seq, at_ms }, &mut buf);
            }
            if buf.len() > 1 << 20 {
                flush(&mut buf, &mut pos)?;
            }
        }
        flush(&mut buf, &mut pos)?;
        out.sync_all().map_err(io_at(&temp))?;
        let next = self.number + 1;
        let next_path = dir.join(log_name(next));
        std::fs::rename(&temp, &next_path).map_err(io_at(&next_path))?;
        sync_dir(&dir)?;
        let old_path = std::mem::replace(&mut self.path, next_path);
        let _ = std::fs::remove_file(&old_path);
        self.file = out;
        self.number = next;
        self.len = pos;
        for (seq, body_at) in moved {
            if let Some(live) = self.live.get_mut(&seq) {
                live.body_at = body_at;
            }
        }
        self.compact_at = self.options.compact_min_bytes.max(2 * pos);
        tracing::info!(
            path = %self.path.display(),
            bytes = pos,
            undelivered = self.live.len(),
            "compacted the spool"
        );
        Ok(())
    }
}

/// Keys are short (`task:<id>`, `body-sha256:<hex>`); a longer one is replaced by its digest so
/// it always fits the record's 16-bit length.
fn bounded_key(key: String) -> String {
    const MAX_KEY: usize = 1024;
    if key.len() <= MAX_KEY {
        key
    } else {
        use sha2::Digest;
        format!(
            "key-sha256:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    }
}

/// A reply held back until the batch is synced.
enum Answer {
    Append(oneshot::Sender<Result<Appended, SpoolError>>, Appended),
    Claim(
        oneshot::Sender<Result<Vec<Stored>, SpoolError>>,
        Result<Vec<Stored>, SpoolError>,
    ),
    Done(oneshot::Sender<Result<(), SpoolError>>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Append(reply, value) => {
                let _ = reply.send(Ok(value));
            }
            Answer::Claim(reply, value) => {
                let _ = reply.send(value);
            }
            Answer::Done(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn fail(self, path: &Path, reason: &str) {
        let copy = || SpoolError::WriteFailed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        match self {
            Answer::Append(reply, _) => {
                let _ = reply.send(Err(copy()));
            }
            Answer::Claim(reply, _) => {
                let _ = reply.send(Err(copy()));
            }
            Answer::Done(reply) => {
                let _ = reply.send(Err(copy()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_at(dir: &Path) -> Opened {
        open(
            SpoolOptions::new(dir.join("spool")),
            Arc::new(Metrics::default()),
        )
        .unwrap()
    }

    fn close(opened: Opened) {
        drop(opened.spool);
        opened.writer.join().unwrap().unwrap();
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn events_survive_a_restart_with_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        rt.block_on(async {
            for i in 0..5 {
                let r = spool
                    .append(format!("task-{i}"), format!("{{\"i\":{i}}}").into())
                    .await
                    .unwrap();
                assert_eq!(r, Appended::Spooled { seq: i + 1 });
            }
            assert_eq!(
                spool.append("task-2".into(), "x".into()).await.unwrap(),
                Appended::Duplicate
            );
            let claimed = spool.claim(vec![1, 2]).await.unwrap();
            assert_eq!(claimed[1].body, b"{\"i\":1}");
            spool.done(1, Outcome::Posted).await.unwrap();
        });
        drop(spool);
        close(opened);

        let opened = open_at(dir.path());
        assert_eq!(opened.recovered.pending, vec![3, 4, 5]);
        assert_eq!(opened.recovered.in_flight, vec![2]);
        let spool = opened.spool.clone();
        rt.block_on(async {
            // Delivered and undelivered keys both stay duplicates; numbering continues.
            assert_eq!(
                spool.append("task-0".into(), "x".into()).await.unwrap(),
                Appended::Duplicate
            );
            assert_eq!(
                spool.append("task-3".into(), "x".into()).await.unwrap(),
                Appended::Duplicate
            );
            assert_eq!(
                spool.append("task-9".into(), "x".into()).await.unwrap(),
                Appended::Spooled { seq: 6 }
            );
            let loaded = spool.load(vec![2, 1]).await.unwrap();
            assert_eq!(loaded.len(), 1);
            assert!(loaded[0].in_flight_ms.is_some());
        });
        drop(spool);
        close(opened);
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        rt.block_on(async {
            spool.append("a".into(), "1".into()).await.unwrap();
            spool.append("b".into(), "2".into()).await.unwrap();
        });
        drop(spool);
        close(opened);
        let log = dir.path().join("spool").join(log_name(1));
        let len = std::fs::metadata(&log).unwrap().len();
        // Half of the last record, as a crash mid-write leaves it.
        let file = OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        let opened = open_at(dir.path());
        assert_eq!(opened.recovered.pending, vec![1]);
        assert!(opened.recovered.truncated_bytes > 0);
        let spool = opened.spool.clone();
        rt.block_on(async {
            // "b" was never acknowledged, so it is new again.
            assert_eq!(
                spool.append("b".into(), "2".into()).await.unwrap(),
                Appended::Spooled { seq: 2 }
            );
        });
        drop(spool);
        close(opened);
        let opened = open_at(dir.path());
        assert_eq!(opened.recovered.pending, vec![1, 2]);
        assert_eq!(opened.recovered.truncated_bytes, 0);
        close(opened);
    }

    #[test]
    fn compaction_keeps_undelivered_bodies_and_remembered_keys() {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let mut options = SpoolOptions::new(dir.path().join("spool"));
        options.compact_min_bytes = 4096;
        let opened = open(options.clone(), Arc::new(Metrics::default())).unwrap();
        let spool = opened.spool.clone();
        rt.block_on(async {
            for i in 0..200u64 {
                let body = format!("{{\"event\":{i},\"pad\":\"{}\"}}", "x".repeat(50));
                spool.append(format!("k{i}"), body.into()).await.unwrap();
                if i % 3 != 0 {
                    spool.done(i + 1, Outcome::Posted).await.unwrap();
                }
            }
            let loaded = spool.load(vec![1, 4, 199]).await.unwrap();
            assert_eq!(loaded.len(), 3);
            assert!(String::from_utf8_lossy(&loaded[2].body).starts_with("{\"event\":198,"));
        });
        drop(spool);
        close(opened);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_ne!(files[0], log_name(1), "compaction ran");
        let opened = open(options, Arc::new(Metrics::default())).unwrap();
        let expected: Vec<u64> = (0..200u64).filter(|i| i % 3 == 0).map(|i| i + 1).collect();
        assert_eq!(opened.recovered.pending, expected);
        let spool = opened.spool.clone();
        rt.block_on(async {
            assert_eq!(
                spool.append("k5".into(), "x".into()).await.unwrap(),
                Appended::Duplicate
            );
            let loaded = spool.load(vec![4]).await.unwrap();
            assert!(String::from_utf8_lossy(&loaded[0].body).starts_with("{\"event\":3,"));
        });
        drop(spool);
        close(opened);
    }

    #[test]
    fn a_log_torn_inside_its_header_is_repaired_and_a_foreign_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        std::fs::create_dir_all(&spool_dir).unwrap();
        std::fs::write(spool_dir.join(log_name(1)), &FILE_MAGIC[..5]).unwrap();
        let opened = open_at(dir.path());
        assert!(opened.recovered.pending.is_empty());
        close(opened);
        assert_eq!(
            std::fs::read(spool_dir.join(log_name(1))).unwrap(),
            FILE_MAGIC
        );

        let other = tempfile::tempdir().unwrap();
        let spool_dir = other.path().join("spool");
        std::fs::create_dir_all(&spool_dir).unwrap();
        std::fs::write(
            spool_dir.join(log_name(3)),
            b"not a spool at all, just text",
        )
        .unwrap();
        let refused = open(SpoolOptions::new(spool_dir), Arc::new(Metrics::default()));
        assert!(matches!(refused, Err(SpoolError::NotASpool { .. })));
    }

    #[test]
    fn an_overlong_key_is_stored_as_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        rt().block_on(async {
            let long = "k".repeat(70_000);
            spool.append(long.clone(), "b".into()).await.unwrap();
            let stored = spool.load(vec![1]).await.unwrap();
            assert!(stored[0].key.starts_with("key-sha256:"));
            assert_eq!(stored[0].body, b"b");
            assert_eq!(
                spool.append(long, "b".into()).await.unwrap(),
                Appended::Duplicate
            );
        });
        drop(spool);
        close(opened);
    }

    #[test]
    fn a_second_relay_on_the_same_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_at(dir.path());
        let second = open(
            SpoolOptions::new(dir.path().join("spool")),
            Arc::new(Metrics::default()),
        );
        assert!(matches!(second, Err(SpoolError::Locked { .. })));
        close(first);
    }

    #[test]
    fn dedup_forgets_old_keys_but_not_undelivered_ones() {
        let mut d = Dedup {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: 2,
            max_age_ms: 1000,
        };
        let (a, b, c) = (KeyId::of("a"), KeyId::of("b"), KeyId::of("c"));
        d.insert(a, 0);
        d.insert(b, 10);
        d.insert(c, 20);
        let live: HashSet<KeyId> = [a].into_iter().collect();
        d.evict(30, &live);
        assert!(d.contains(&a) && !d.contains(&b) && d.contains(&c));
        d.evict(5000, &HashSet::new());
        assert!(d.set.is_empty());
    }
}
