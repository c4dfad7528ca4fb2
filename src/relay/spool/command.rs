//! The spool's handle: what a request asks the writer thread (append, claim, load, done) and the
//! replies the writer holds back until the batch they belong to is synced.

use std::path::Path;

use tokio::sync::{mpsc, oneshot};

use super::{Appended, SpoolError, Stored};
use crate::relay::metrics::now_ms;
use crate::relay::record::Outcome;

pub(super) enum Command {
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
    pub(super) tx: mpsc::Sender<Command>,
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

/// A reply held back until the batch is synced.
pub(super) enum Answer {
    Append(oneshot::Sender<Result<Appended, SpoolError>>, Appended),
    Claim(
        oneshot::Sender<Result<Vec<Stored>, SpoolError>>,
        Result<Vec<Stored>, SpoolError>,
    ),
    Done(oneshot::Sender<Result<(), SpoolError>>),
}

impl Answer {
    pub(super) fn send(self) {
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

    pub(super) fn fail(self, path: &Path, reason: &str) {
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
