//! The spool's log file: opening and locking it, recovering the state from it after a crash
//! (cutting a torn tail), reading events back, and compacting it into a new file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use super::dedup::Dedup;
use super::{Recovered, SpoolError, SpoolOptions, Stored, io_at};
use crate::relay::metrics::{Metrics, now_ms};
use crate::relay::record::{self, FILE_MAGIC, KeyId, Record, StreamReader};
use crate::state::StateDir;

/// An undelivered event: where its key and body are, and whether a post may be out. The key and
/// body stay on disk (read back when the event is posted) so a long outage costs little memory.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) key_id: KeyId,
    pub(super) key_len: u16,
    pub(super) received_ms: u64,
    pub(super) body_at: u64,
    pub(super) body_len: u32,
    pub(super) in_flight_ms: Option<u64>,
}

/// The log file and everything the writer knows.
pub(super) struct Log {
    pub(super) options: SpoolOptions,
    _lock: File,
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) number: u64,
    pub(super) len: u64,
    pub(super) compact_at: u64,
    pub(super) next_seq: u64,
    pub(super) live: BTreeMap<u64, Live>,
    pub(super) live_keys: HashSet<KeyId>,
    pub(super) dedup: Dedup,
}

pub(super) fn log_name(number: u64) -> String {
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
    pub(super) fn recover(options: SpoolOptions) -> Result<(Self, Recovered), SpoolError> {
        let dir = options.dir.clone();
        StateDir::create_private_dir(&dir)?;
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
            dedup: Dedup::new(options.dedup_capacity, options.dedup_max_age_ms),
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
        recovered.remembered_keys = log.dedup.len();
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

    pub(super) fn publish(&self, metrics: &Metrics) {
        metrics.undelivered.store(self.live.len() as u64, Relaxed);
        let oldest = self.live.values().next().map_or(0, |l| l.received_ms);
        metrics.oldest_undelivered_ms.store(oldest, Relaxed);
    }

    /// Reads an event's key and body with one read: in an `Accepted` record the key, the body
    /// length and the body are contiguous.
    pub(super) fn read_event(&self, live: &Live) -> Result<(String, Vec<u8>), SpoolError> {
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

    pub(super) fn stored(&self, seq: u64) -> Result<Option<Stored>, SpoolError> {
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

    /// Rewrites the log with only what is still needed: the remembered keys and the undelivered
    /// events. The new file is synced before it replaces the old one, so a crash at any point
    /// leaves one complete log.
    pub(super) fn compact(&mut self) -> Result<(), SpoolError> {
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
        for (key_id, at_ms) in self.dedup.entries() {
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
