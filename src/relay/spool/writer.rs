//! The writer thread's loop: take every queued command, write them in one `write`, run one
//! `fdatasync`, apply the effects to memory and only then answer them all (group commit).

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::mpsc;

use super::command::{Answer, Command};
use super::log::{Live, Log};
use super::{Appended, SpoolError, Stored};
use crate::relay::metrics::{Metrics, now_ms};
use crate::relay::record::{self, KeyId, Outcome, Record};

impl Log {
    /// The writer loop: one batch of queued commands, one write, one sync, then all the answers.
    pub(super) fn run(
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
                log_stop(&error);
                return Err(error);
            }
            if self.len > self.compact_at
                && let Err(error) = self.compact()
            {
                log_stop(&error);
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

/// Logs why the writer stops, as an error value so the log shows its causes (the OS error) too.
fn log_stop(error: &SpoolError) {
    tracing::error!(
        error = error as &(dyn std::error::Error + 'static),
        "the spool writer stops"
    );
}
