//! The client's connection to a TURN server over UDP or TCP: sending bytes and receiving whole
//! frames (one datagram, or one STUN/ChannelData frame cut from the TCP stream).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::channel::{FrameError, StreamDeframer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Error)]
pub enum LinkError {
    /// ICMP port unreachable (UDP) or a reset (TCP): nothing listens there.
    #[error("{0}")]
    Refused(io::Error),
    #[error("the server closed the TCP connection")]
    Closed,
    #[error("the TCP stream from the server is out of step: {0}")]
    Desync(FrameError),
    #[error("{0}")]
    Io(io::Error),
}

impl LinkError {
    /// No route to the server: as good as no answer, from the user's point of view.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, LinkError::Io(e) if matches!(
            e.kind(),
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable
        ))
    }
}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                LinkError::Refused(e)
            }
            _ => LinkError::Io(e),
        }
    }
}

pub enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        deframer: StreamDeframer,
    },
}

impl Link {
    /// Opens the socket toward `server`. For TCP this is the connection itself; the caller
    /// bounds it with a timeout.
    pub async fn open(server: SocketAddr, transport: Transport) -> Result<Self, LinkError> {
        match transport {
            Transport::Udp => {
                let any = match server.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
                socket.connect(server).await?;
                Ok(Link::Udp(socket))
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(server).await?;
                stream.set_nodelay(true)?;
                Ok(Link::Tcp {
                    stream,
                    deframer: StreamDeframer::new(),
                })
            }
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Link::Udp(_) => Transport::Udp,
            Link::Tcp { .. } => Transport::Tcp,
        }
    }

    /// The local end: the address the server's replies go to, and the interface toward it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Link::Udp(s) => s.local_addr(),
            Link::Tcp { stream, .. } => stream.local_addr(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        match self {
            Link::Udp(s) => {
                s.send(bytes).await?;
            }
            Link::Tcp { stream, .. } => stream.write_all(bytes).await?,
        }
        Ok(())
    }

    /// The next datagram or frame. Cancel-safe: a cancelled call loses no bytes.
    pub async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        match self {
            Link::Udp(s) => {
                let mut buf = vec![0u8; 65_536];
                let n = s.recv(&mut buf).await?;
                buf.truncate(n);
                Ok(buf)
            }
            Link::Tcp { stream, deframer } => loop {
                if let Some(frame) = deframer.next_frame().map_err(LinkError::Desync)? {
                    return Ok(frame);
                }
                let mut buf = [0u8; 16_384];
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(LinkError::Closed);
                }
                deframer.push(&buf[..n]);
            },
        }
    }
}
