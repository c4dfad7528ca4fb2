//! The durable spool: one append-only log file under the spool directory, owned by one writer
//! thread. Requests queue commands; the writer takes everything queued, writes it in one `write`,
//! runs one `fdatasync` and only then answers them all (group commit). It also remembers recent
//! dedup keys, recovers the log after a crash (truncating a torn tail) and compacts it.
//!
//! One module per part: [`command`] (the handle and what it asks the writer), `log` (the file:
//! recovery, reads, compaction), `writer` (the group-commit loop), `dedup` (recently seen keys).

mod command;
mod dedup;
mod log;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::mpsc;

use super::metrics::Metrics;
pub use command::Spool;
use log::Log;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error(
        "cannot use the spool {path}; check that the directory is on a writable local disk with free space"
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
    #[error(transparent)]
    State(#[from] crate::state::StateError),
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

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::log::log_name;
    use super::*;
    use crate::relay::record::{FILE_MAGIC, Outcome};

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

    #[tokio::test]
    async fn events_survive_a_restart_with_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        {
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
        }
        drop(spool);
        close(opened);

        let opened = open_at(dir.path());
        assert_eq!(opened.recovered.pending, vec![3, 4, 5]);
        assert_eq!(opened.recovered.in_flight, vec![2]);
        let spool = opened.spool.clone();
        {
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
        }
        drop(spool);
        close(opened);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        {
            spool.append("a".into(), "1".into()).await.unwrap();
            spool.append("b".into(), "2".into()).await.unwrap();
        }
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
        {
            // "b" was never acknowledged, so it is new again.
            assert_eq!(
                spool.append("b".into(), "2".into()).await.unwrap(),
                Appended::Spooled { seq: 2 }
            );
        }
        drop(spool);
        close(opened);
        let opened = open_at(dir.path());
        assert_eq!(opened.recovered.pending, vec![1, 2]);
        assert_eq!(opened.recovered.truncated_bytes, 0);
        close(opened);
    }

    #[tokio::test]
    async fn compaction_keeps_undelivered_bodies_and_remembered_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SpoolOptions::new(dir.path().join("spool"));
        options.compact_min_bytes = 4096;
        let opened = open(options.clone(), Arc::new(Metrics::default())).unwrap();
        let spool = opened.spool.clone();
        {
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
        }
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
        {
            assert_eq!(
                spool.append("k5".into(), "x".into()).await.unwrap(),
                Appended::Duplicate
            );
            let loaded = spool.load(vec![4]).await.unwrap();
            assert!(String::from_utf8_lossy(&loaded[0].body).starts_with("{\"event\":3,"));
        }
        drop(spool);
        close(opened);
    }

    #[tokio::test]
    async fn a_log_torn_inside_its_header_is_repaired_and_a_foreign_file_refused() {
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

    #[tokio::test]
    async fn an_overlong_key_is_stored_as_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_at(dir.path());
        let spool = opened.spool.clone();
        {
            let long = "k".repeat(70_000);
            spool.append(long.clone(), "b".into()).await.unwrap();
            let stored = spool.load(vec![1]).await.unwrap();
            assert!(stored[0].key.starts_with("key-sha256:"));
            assert_eq!(stored[0].body, b"b");
            assert_eq!(
                spool.append(long, "b".into()).await.unwrap(),
                Appended::Duplicate
            );
        }
        drop(spool);
        close(opened);
    }

    #[tokio::test]
    async fn a_second_relay_on_the_same_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_at(dir.path());
        let second = open(
            SpoolOptions::new(dir.path().join("spool")),
            Arc::new(Metrics::default()),
        );
        assert!(matches!(second, Err(SpoolError::Locked { .. })));
        close(first);
    }
}
