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

#[cfg(test)]
mod tests {
    use super::super::{DoubleOptions, MattermostDouble};

    #[tokio::test]
    async fn down_refuses_connections_and_back_serves_the_same_state_on_the_same_port() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("mm.sock");
        let mut double = MattermostDouble::start(DoubleOptions {
            socket_path: Some(socket.clone()),
            tcp: true,
            config: serde_json::Value::Null,
        })
        .await
        .unwrap();
        let addr = double.tcp_addr.unwrap();
        let before = double.snapshot();
        double.go_down().await;
        assert!(double.is_down());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        assert!(tokio::net::UnixStream::connect(&socket).await.is_err());
        double.come_back().await.unwrap();
        assert!(!double.is_down());
        tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::net::UnixStream::connect(&socket).await.unwrap();
        assert_eq!(double.base_url(), Some(format!("http://{addr}")));
        assert_eq!(double.snapshot(), before);
        assert!(double.come_back().await.is_err(), "already serving");
        double.stop().await;
    }
}
