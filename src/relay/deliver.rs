//! The delivery worker: takes spooled events in order, records each post as in flight (synced)
//! before sending it, posts it, records it done; backs off while Mattermost is down (probing with
//! one event at a time) and, when an outcome is unknown, reads the channel back before reposting.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{MessageSettings, render};
use super::metrics::{Metrics, now_ms};
use super::payload;
use super::post::{Attempt, HookUrl, Poster};
use super::readback::Readback;
use super::record::Outcome;
use super::spool::{Recovered, Spool, SpoolError, Stored};

/// Mattermost's clock and ours may differ a little: search this far before the in-flight time.
const CLOCK_SKEW_MS: u64 = 60_000;

/// Which webhook an event goes to.
#[derive(Debug, Clone)]
pub struct Routes {
    pub alerts: HookUrl,
    pub builds: Option<HookUrl>,
    pub post_passes: bool,
}

impl Routes {
    pub fn hook_for(&self, verdict: payload::Verdict) -> Option<&HookUrl> {
        if verdict.is_alert() {
            Some(&self.alerts)
        } else if self.post_passes {
            self.builds.as_ref()
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Posts in flight at once while Mattermost answers.
    pub concurrency: usize,
    /// How long after a post was sent its fate is settled: Mattermost has either created the post
    /// or never will (the post timeout plus a margin). Reconciliation waits this long.
    pub settle: Duration,
    /// First retry delay; doubles per failure.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl DeliveryOptions {
    pub fn for_post_timeout(post_timeout: Duration) -> Self {
        Self {
            concurrency: 16,
            settle: post_timeout + Duration::from_secs(2),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}

pub struct Worker {
    pub spool: Spool,
    pub poster: Poster,
    pub readback: Option<Arc<Readback>>,
    pub routes: Arc<Routes>,
    pub settings: Arc<MessageSettings>,
    pub metrics: Arc<Metrics>,
    pub options: DeliveryOptions,
}

/// An event whose post may exist: check the channel before reposting.
#[derive(Debug)]
struct Uncertain {
    key: String,
    hook: HookUrl,
    since_ms: u64,
    not_before: Instant,
}

enum TaskOutcome {
    Delivered,
    Skipped,
    Unreadable,
    /// Already done (delivered by an earlier attempt).
    Gone,
    Failed {
        key: String,
        hook: HookUrl,
        in_flight_ms: u64,
        attempt: Attempt,
    },
}

/// What an event needs: its target and body, or nothing.
enum Prepared {
    Post { hook: HookUrl, body: Vec<u8> },
    Skip,
    Unreadable(String),
}

fn prepare(stored: &Stored, routes: &Routes, settings: &MessageSettings) -> Prepared {
    let event = match payload::parse(&stored.body) {
        Ok(e) => e,
        Err(e) => return Prepared::Unreadable(e.to_string()),
    };
    let Some(hook) = routes.hook_for(event.verdict()) else {
        return Prepared::Skip;
    };
    let post = render(&event, &stored.key, settings);
    match serde_json::to_vec(&post) {
        Ok(body) => Prepared::Post {
            hook: hook.clone(),
            body,
        },
        Err(e) => Prepared::Unreadable(e.to_string()),
    }
}

/// Mattermost's state as the worker last saw it.
struct Sink {
    down: bool,
    next_try: Instant,
    backoff: Duration,
}

impl Worker {
    /// Runs until `cancel` fires (then finishes the posts in flight) or the spool fails.
    pub async fn run(
        self,
        recovered: Recovered,
        mut new_events: mpsc::UnboundedReceiver<u64>,
        cancel: CancellationToken,
    ) -> Result<(), SpoolError> {
        let this = Arc::new(self);
        let mut ready: VecDeque<u64> = recovered.pending.iter().copied().collect();
        let mut delayed: BTreeMap<(Instant, u64), ()> = BTreeMap::new();
        let mut failures: HashMap<u64, u32> = HashMap::new();
        let mut uncertain: BTreeMap<u64, Uncertain> = BTreeMap::new();
        let mut sink = Sink {
            down: false,
            next_try: Instant::now(),
            backoff: this.options.retry_base,
        };
        let mut reconcile_backoff = this.options.retry_base;
        let mut tasks: JoinSet<(u64, Result<TaskOutcome, SpoolError>)> = JoinSet::new();
        let mut warned_no_readback = false;

        this.recover_in_flight(&recovered.in_flight, &mut uncertain)
            .await?;

        let mut stopping = false;
        loop {
            if stopping {
                if tasks.is_empty() {
                    return Ok(());
                }
            } else {
                let now = Instant::now();
                while let Some((&(at, seq), _)) = delayed.first_key_value() {
                    if at > now {
                        break;
                    }
                    delayed.pop_first();
                    ready.push_back(seq);
                }
                if uncertain.values().any(|u| u.not_before <= now) {
                    let outcome = this
                        .reconcile(&mut uncertain, &mut ready, &mut warned_no_readback)
                        .await;
                    match outcome {
                        Ok(()) => reconcile_backoff = this.options.retry_base,
                        Err(Reconcile::Spool(e)) => return Err(e),
                        Err(Reconcile::Unavailable(reason)) => {
                            tracing::warn!(
                                "cannot check Mattermost for posts of uncertain outcome ({reason}); retrying in {reconcile_backoff:?}"
                            );
                            let later = Instant::now() + reconcile_backoff;
                            for u in uncertain.values_mut() {
                                u.not_before = u.not_before.max(later);
                            }
                            reconcile_backoff = (reconcile_backoff * 2).min(this.options.retry_max);
                        }
                    }
                }
                let limit = if sink.down {
                    1
                } else {
                    this.options.concurrency
                };
                let may_start = !sink.down || Instant::now() >= sink.next_try;
                while may_start && tasks.len() < limit {
                    let Some(seq) = ready.pop_front() else { break };
                    let worker = Arc::clone(&this);
                    tasks.spawn(async move { (seq, worker.attempt(seq).await) });
                }
            }

            let mut timer: Option<Instant> = delayed.first_key_value().map(|(&(at, _), _)| at);
            if let Some(u) = uncertain.values().map(|u| u.not_before).min() {
                timer = Some(timer.map_or(u, |t| t.min(u)));
            }
            if sink.down && !ready.is_empty() && tasks.is_empty() {
                timer = Some(timer.map_or(sink.next_try, |t| t.min(sink.next_try)));
            }
            let sleep_until = timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));

            tokio::select! {
                _ = cancel.cancelled(), if !stopping => {
                    stopping = true;
                }
                seq = new_events.recv(), if !stopping => match seq {
                    Some(seq) => ready.push_back(seq),
                    None => return Err(SpoolError::Closed),
                },
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let (seq, outcome) = match joined {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::error!("a delivery task ended abnormally: {e}");
                            continue;
                        }
                    };
                    match outcome? {
                        TaskOutcome::Delivered => {
                            failures.remove(&seq);
                            this.metrics.delivered.fetch_add(1, Relaxed);
                            if sink.down {
                                tracing::info!("Mattermost accepts posts again; delivering the backlog");
                            }
                            sink.down = false;
                            sink.backoff = this.options.retry_base;
                        }
                        TaskOutcome::Skipped => {
                            this.metrics.skipped.fetch_add(1, Relaxed);
                        }
                        TaskOutcome::Unreadable | TaskOutcome::Gone => {}
                        TaskOutcome::Failed { key, hook, in_flight_ms, attempt } => {
                            this.metrics.retried.fetch_add(1, Relaxed);
                            let count = failures.entry(seq).or_insert(0);
                            *count += 1;
                            match attempt {
                                Attempt::Posted => {}
                                Attempt::NotSent(reason) => {
                                    if !sink.down {
                                        tracing::warn!(
                                            "Mattermost is unreachable through the #{} webhook ({reason}); holding events and retrying with backoff",
                                            hook.channel()
                                        );
                                    }
                                    ready.push_front(seq);
                                    sink.mark_down(&this.options);
                                }
                                Attempt::Refused { status, reason } => {
                                    tracing::warn!(
                                        "Mattermost refused the post of {key} to #{} with HTTP {status}: {reason}; retrying it later",
                                        hook.channel()
                                    );
                                    let delay = backoff(&this.options, *count);
                                    delayed.insert((Instant::now() + delay, seq), ());
                                }
                                Attempt::Unknown(reason) => {
                                    tracing::warn!(
                                        "the post of {key} to #{} has an unknown outcome ({reason}); checking the channel before any repost",
                                        hook.channel()
                                    );
                                    uncertain.insert(seq, Uncertain {
                                        key,
                                        hook,
                                        since_ms: in_flight_ms,
                                        not_before: Instant::now() + this.options.settle,
                                    });
                                    sink.mark_down(&this.options);
                                }
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(sleep_until), if !stopping => {}
            }
        }
    }

    /// One attempt for one event: claim (in flight, synced), post, record done.
    async fn attempt(&self, seq: u64) -> Result<TaskOutcome, SpoolError> {
        let Some(stored) = self.spool.claim(vec![seq]).await?.pop() else {
            return Ok(TaskOutcome::Gone);
        };
        let in_flight_ms = stored.in_flight_ms.unwrap_or_else(now_ms);
        match prepare(&stored, &self.routes, &self.settings) {
            Prepared::Skip => {
                self.spool.done(seq, Outcome::Skipped).await?;
                Ok(TaskOutcome::Skipped)
            }
            Prepared::Unreadable(reason) => {
                tracing::error!(
                    "spooled event {} no longer parses ({reason}); dropping it",
                    stored.key
                );
                self.spool.done(seq, Outcome::Unreadable).await?;
                Ok(TaskOutcome::Unreadable)
            }
            Prepared::Post { hook, body } => match self.poster.post(&hook, body).await {
                Attempt::Posted => {
                    self.spool.done(seq, Outcome::Posted).await?;
                    Ok(TaskOutcome::Delivered)
                }
                attempt => Ok(TaskOutcome::Failed {
                    key: stored.key,
                    hook,
                    in_flight_ms,
                    attempt,
                }),
            },
        }
    }

    /// Events that were in flight when the last process died: their posts may exist.
    async fn recover_in_flight(
        &self,
        in_flight: &[u64],
        uncertain: &mut BTreeMap<u64, Uncertain>,
    ) -> Result<(), SpoolError> {
        for chunk in in_flight.chunks(512) {
            for stored in self.spool.load(chunk.to_vec()).await? {
                let since_ms = stored.in_flight_ms.unwrap_or(stored.received_ms);
                match prepare(&stored, &self.routes, &self.settings) {
                    Prepared::Post { hook, .. } => {
                        let elapsed = Duration::from_millis(now_ms().saturating_sub(since_ms));
                        uncertain.insert(
                            stored.seq,
                            Uncertain {
                                key: stored.key,
                                hook,
                                since_ms,
                                not_before: Instant::now()
                                    + self.options.settle.saturating_sub(elapsed),
                            },
                        );
                    }
                    Prepared::Skip => {
                        self.spool.done(stored.seq, Outcome::Skipped).await?;
                        self.metrics.skipped.fetch_add(1, Relaxed);
                    }
                    Prepared::Unreadable(_) => {
                        self.spool.done(stored.seq, Outcome::Unreadable).await?;
                    }
                }
            }
        }
        if !uncertain.is_empty() {
            tracing::info!(
                count = uncertain.len(),
                "events were in flight when the relay stopped; checking the channels for them before reposting"
            );
        }
        Ok(())
    }

    /// Settles every due uncertain event: found in its channel → done; absent → ready again.
    async fn reconcile(
        &self,
        uncertain: &mut BTreeMap<u64, Uncertain>,
        ready: &mut VecDeque<u64>,
        warned_no_readback: &mut bool,
    ) -> Result<(), Reconcile> {
        let now = Instant::now();
        let due: Vec<u64> = uncertain
            .iter()
            .filter(|(_, u)| u.not_before <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let Some(readback) = &self.readback else {
            if !*warned_no_readback {
                tracing::warn!(
                    "no Mattermost API to read channels back (--mattermost-socket or --mattermost-url): reposting events whose earlier post may exist; duplicates are possible"
                );
                *warned_no_readback = true;
            }
            for seq in due.iter().rev() {
                uncertain.remove(seq);
                ready.push_front(*seq);
            }
            return Ok(());
        };
        // One search per channel covers all of its due events.
        let mut by_channel: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for seq in &due {
            if let Some(u) = uncertain.get(seq) {
                by_channel
                    .entry(u.hook.channel().to_string())
                    .or_default()
                    .push(*seq);
            }
        }
        for seqs in by_channel.values() {
            let hook = uncertain[&seqs[0]].hook.clone();
            let keys: HashSet<String> = seqs.iter().map(|s| uncertain[s].key.clone()).collect();
            let since = seqs
                .iter()
                .map(|s| uncertain[s].since_ms)
                .min()
                .unwrap_or(0)
                .saturating_sub(CLOCK_SKEW_MS);
            let found = readback
                .find_posted(&hook, &keys, since)
                .await
                .map_err(|e| Reconcile::Unavailable(e.to_string()))?;
            let mut back_to_ready = Vec::new();
            for seq in seqs {
                let Some(u) = uncertain.remove(seq) else {
                    continue;
                };
                if found.contains(&u.key) {
                    self.spool
                        .done(*seq, Outcome::FoundInChannel)
                        .await
                        .map_err(Reconcile::Spool)?;
                    self.metrics.delivered.fetch_add(1, Relaxed);
                    self.metrics.found_in_channel.fetch_add(1, Relaxed);
                } else {
                    back_to_ready.push(*seq);
                }
            }
            if found.len() < keys.len() || !found.is_empty() {
                tracing::info!(
                    channel = hook.channel(),
                    found = found.len(),
                    missing = back_to_ready.len(),
                    "reconciled posts of uncertain outcome"
                );
            }
            for seq in back_to_ready.into_iter().rev() {
                ready.push_front(seq);
            }
        }
        Ok(())
    }
}

enum Reconcile {
    Spool(SpoolError),
    Unavailable(String),
}

impl Sink {
    fn mark_down(&mut self, options: &DeliveryOptions) {
        if self.down {
            self.backoff = (self.backoff * 2).min(options.retry_max);
        } else {
            self.down = true;
            self.backoff = options.retry_base;
        }
        self.next_try = Instant::now() + jitter(self.backoff);
    }
}

/// Delay before the `failures`-th retry of one event.
fn backoff(options: &DeliveryOptions, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    jitter((options.retry_base * factor).min(options.retry_max))
}

/// ±20 % so that many retries do not land on the same instant.
fn jitter(d: Duration) -> Duration {
    let spread = rand::random_range(0.8..1.2);
    d.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = DeliveryOptions::for_post_timeout(Duration::from_secs(1));
        let first = backoff(&o, 1);
        assert!(first >= Duration::from_millis(320) && first <= Duration::from_millis(480));
        assert!(backoff(&o, 30) <= Duration::from_secs(36));
        let mut sink = Sink {
            down: false,
            next_try: Instant::now(),
            backoff: o.retry_base,
        };
        sink.mark_down(&o);
        sink.mark_down(&o);
        assert_eq!(sink.backoff, o.retry_base * 2);
    }
}
