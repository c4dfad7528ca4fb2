//! Mattermost's volumes through the Docker API's archive endpoint: a helper container (made from
//! the city's Mattermost image, mounting the volumes, never started) that `GET /archive` reads
//! and `PUT /archive` fills. The streams are bridged to blocking readers and writers so the tar
//! entries pass through one at a time.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::runtime::Handle;

use super::BackupError;
use super::manifest::{Entry, Kind};
use crate::docker::Engine;

/// The volumes a backup holds (base name, mount point). Logs are left out: they are not data,
/// and `plugins`/`client/plugins` are kept although Mattermost rebuilds them at start.
pub fn saved() -> Vec<(&'static str, &'static str)> {
    crate::docker::spec::VOLUMES
        .iter()
        .copied()
        .filter(|(name, _)| *name != "mattermost-logs")
        .collect()
}

/// A container that mounts volumes for the archive endpoint; removed on drop.
pub struct Helper {
    handle: Handle,
    docker: bollard::Docker,
    pub name: String,
}

fn engine_err(what: &str, e: bollard::errors::Error) -> BackupError {
    BackupError::Tool {
        what: what.to_string(),
        detail: crate::exit::causes_text(&e),
    }
}

impl Helper {
    /// Creates (does not start) `name` from `image` with `mounts` = (volume, target).
    pub fn create(
        handle: &Handle,
        engine: &Engine,
        name: &str,
        image: &str,
        prefix: &str,
        mounts: &[(String, String)],
        read_only: bool,
    ) -> Result<Self, BackupError> {
        let docker = engine.docker().clone();
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(std::collections::HashMap::from([
                (
                    crate::docker::spec::LABEL_CITY.to_string(),
                    prefix.to_string(),
                ),
                ("org.cityd.role".to_string(), "backup-helper".to_string()),
            ])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(
                    mounts
                        .iter()
                        .map(|(v, t)| Mount {
                            typ: Some(MountType::VOLUME),
                            source: Some(v.clone()),
                            target: Some(t.clone()),
                            read_only: Some(read_only),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        handle
            .block_on(docker.create_container(Some(options), body))
            .map_err(|e| {
                engine_err(
                    &format!("create the helper container {name} from {image}"),
                    e,
                )
            })?;
        Ok(Self {
            handle: handle.clone(),
            docker,
            name: name.to_string(),
        })
    }

    /// The tar stream of `path` in the container.
    pub fn download(&self, path: &str) -> StreamRead {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        StreamRead {
            handle: self.handle.clone(),
            stream: Box::pin(
                self.docker
                    .download_from_container(&self.name, Some(options)),
            ),
            pending: Bytes::new(),
        }
    }

    /// Starts extracting a tar stream into `path`; write the tar to the returned writer.
    pub fn upload(&self, path: &str) -> Upload {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        let docker = self.docker.clone();
        let name = self.name.clone();
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let task = self.handle.spawn(async move {
            docker
                .upload_to_container(&name, Some(options), bollard::body_try_stream(body))
                .await
        });
        Upload {
            handle: self.handle.clone(),
            tx: Some(tx),
            task: Some(task),
            path: path.to_string(),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        let _ = self
            .handle
            .block_on(self.docker.remove_container(&self.name, Some(options)));
    }
}

/// A bollard byte stream as a blocking reader.
pub struct StreamRead {
    handle: Handle,
    stream: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, bollard::errors::Error>> + Send>>,
    pending: Bytes,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(std::io::Error::other(crate::exit::causes_text(&e))),
                Some(Ok(b)) => self.pending = b,
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending = self.pending.slice(n..);
        Ok(n)
    }
}

/// A blocking writer feeding an upload.
pub struct Upload {
    handle: Handle,
    tx: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
    task: Option<tokio::task::JoinHandle<Result<(), bollard::errors::Error>>>,
    path: String,
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let tx = self.tx.as_ref().expect("open");
        tx.blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the engine stopped reading the upload"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Upload {
    /// Ends the stream and waits for the engine to finish extracting.
    pub fn finish(mut self) -> Result<(), BackupError> {
        drop(self.tx.take());
        let task = self.task.take().expect("started");
        match self.handle.block_on(task) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(engine_err(&format!("extract into {}", self.path), e)),
            Err(e) => Err(BackupError::Tool {
                what: format!("extract into {}", self.path),
                detail: e.to_string(),
            }),
        }
    }
}

/// One entry of a volume's tar, relative to the volume root ("" is the root itself).
pub struct VolumeItem<'a> {
    pub rel: String,
    pub entry: Entry,
    pub mtime: u64,
    pub data: &'a mut dyn Read,
}

/// Walks the tar that `GET /archive` returns for a mount point (entries start with its last
/// component, which is stripped).
pub fn walk(
    tar_stream: impl Read,
    visit: &mut dyn FnMut(VolumeItem<'_>) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    let read_err = |e: std::io::Error| BackupError::Tool {
        what: "read a volume archive from the engine".into(),
        detail: crate::exit::causes_text(&e),
    };
    let mut archive = tar::Archive::new(tar_stream);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let path = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let rel = path
            .trim_end_matches('/')
            .split_once('/')
            .map_or(String::new(), |(_, rest)| rest.to_string());
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            // Sockets, fifos and hard links have no place in Mattermost's volumes.
            _ => continue,
        };
        let link = entry
            .link_name()
            .map_err(read_err)?
            .map(|l| l.to_string_lossy().into_owned());
        let e = Entry {
            kind,
            size: if kind == Kind::File { entry.size() } else { 0 },
            sha256: None,
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            link,
        };
        visit(VolumeItem {
            rel,
            entry: e,
            mtime: h.mtime().unwrap_or(0),
            data: &mut entry,
        })?;
    }
    Ok(())
}

/// SHA-256 of every file in a mounted volume, by relative path (for the proofs after a restore).
pub fn file_hashes(helper: &Helper, target: &str) -> Result<BTreeMap<String, String>, BackupError> {
    let mut out = BTreeMap::new();
    walk(helper.download(target), &mut |item| {
        if item.entry.kind == Kind::File {
            let mut h = super::archive::Hashing::new(item.data);
            std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| BackupError::Tool {
                what: format!("read {target}/{}", item.rel),
                detail: e.to_string(),
            })?;
            out.insert(item.rel, h.hex());
        }
        Ok(())
    })?;
    Ok(out)
}

/// A tar stream (for `PUT /archive`) of a volume's entries, written as the backup is read.
pub struct VolumeTar {
    pub builder: tar::Builder<std::io::BufWriter<Upload>>,
}

impl VolumeTar {
    pub fn new(upload: Upload) -> Self {
        let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(256 << 10, upload));
        builder.mode(tar::HeaderMode::Complete);
        Self { builder }
    }

    pub fn add(
        &mut self,
        rel: &str,
        entry: &Entry,
        mtime: u64,
        data: &mut dyn Read,
    ) -> Result<(), BackupError> {
        let io = |e: std::io::Error| BackupError::Tool {
            what: format!("send {rel} to the engine"),
            detail: e.to_string(),
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(entry.mode);
        h.set_uid(entry.uid);
        h.set_gid(entry.gid);
        h.set_mtime(mtime);
        let name = if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        };
        match entry.kind {
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(entry.size);
                self.builder
                    .append_data(&mut h, &name, data.take(entry.size))
                    .map_err(io)
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.builder
                    .append_data(&mut h, format!("{name}/"), std::io::empty())
                    .map_err(io)
            }
            Kind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                self.builder
                    .append_link(&mut h, &name, entry.link.clone().unwrap_or_default())
                    .map_err(io)
            }
        }
    }

    pub fn finish(self) -> Result<(), BackupError> {
        let io = |e: std::io::Error| BackupError::Tool {
            what: "finish a volume upload".into(),
            detail: e.to_string(),
        };
        let buffered = self.builder.into_inner().map_err(io)?;
        let upload = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        upload.finish()
    }
}
