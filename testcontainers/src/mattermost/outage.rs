//! Taking the double down and bringing it back on the same TCP port and socket path with its
//! state intact: a Mattermost outage as a client sees it (connections refused, then service
//! resumes with every post still there). Added for the relay's "Mattermost down" tests.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::MattermostDouble;
use super::server;

impl MattermostDouble {
    /// Stops both listeners (open requests finish, idle connections close) and keeps the state.
    /// Afterwards connections to the TCP port and the socket are refused.
    pub async fn go_down(&mut self) {
        self.signal_stop();
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// True between [`go_down`](Self::go_down) and [`come_back`](Self::come_back).
    pub fn is_down(&self) -> bool {
        self.stop.is_none()
    }

    /// Serves again on the same TCP address and socket path, with the state from before.
    pub async fn come_back(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.is_down(), "the double is already serving");
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(addr) = self.tcp_addr {
            let (_, task) = server::serve_tcp(self.shared.clone(), addr, stop_rx.clone())
                .await
                .with_context(|| format!("bringing the double back on {addr}"))?;
            self.tasks.push(task);
        }
        if let Some(path) = self.socket_path.clone() {
            let task = server::serve_socket(self.shared.clone(), &path, stop_rx).await?;
            self.tasks.push(task);
        }
        self.stop = Some(stop_tx);
        Ok(())
    }
}
