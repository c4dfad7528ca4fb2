//! The probe's own peer: a UDP socket that echoes every datagram back to its sender, so data sent
//! through the relay comes back as a Data indication or ChannelData. It records who it heard from,
//! which lets the diagnosis tell "the relay never reached the peer" from "the answer got lost".

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub struct EchoPeer {
    pub addr: SocketAddr,
    heard: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl EchoPeer {
    /// Binds on `ip` (the local address used toward the server, so the relay can reach it).
    pub async fn start(ip: std::net::IpAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&heard);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if let Ok(mut seen) = log.lock()
                    && !seen.contains(&from)
                {
                    seen.push(from);
                }
                // A lost echo shows up as "no data back"; nothing else to do about it here.
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        Ok(Self { addr, heard, task })
    }

    /// Distinct sources the peer received datagrams from.
    pub fn heard_from(&self) -> Vec<SocketAddr> {
        self.heard.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
