//! The resolved command line every verb receives: the city description (read and validated once),
//! the state layout, the LAN resolution with its reasons, the vault, and the one async runtime.
//! Each is resolved on first use and kept, so `--help`-level commands touch nothing and no verb
//! reads the same input twice.

use std::cell::OnceCell;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::city::{City, Described, Origins};
use crate::lan::LanAddress;
use crate::secrets::Vault;
use crate::state::StateDir;

/// What the global flags name, resolved at most once each.
pub struct Context {
    city_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    city: OnceCell<Described>,
    state: OnceCell<StateDir>,
    lan: OnceCell<Vec<LanAddress>>,
    runtime: OnceCell<tokio::runtime::Runtime>,
}

impl Context {
    /// The global flags as given: `--city` (None: the embedded default) and `--state-dir`.
    pub fn new(city_path: Option<PathBuf>, state_dir: Option<PathBuf>) -> Self {
        Self {
            city_path,
            state_dir,
            city: OnceCell::new(),
            state: OnceCell::new(),
            lan: OnceCell::new(),
            runtime: OnceCell::new(),
        }
    }

    /// The city description, read and validated on first use.
    pub fn city(&self) -> anyhow::Result<&City> {
        Ok(&self.described()?.city)
    }

    /// Which values of the city came from the file (the rest are the embedded default's).
    pub fn city_origins(&self) -> anyhow::Result<&Origins> {
        Ok(&self.described()?.origins)
    }

    fn described(&self) -> anyhow::Result<&Described> {
        if let Some(described) = self.city.get() {
            return Ok(described);
        }
        let described = Described::read(self.city_path.as_deref())?;
        Ok(self.city.get_or_init(|| described))
    }

    /// The state directory, resolved (never created) on first use.
    pub fn state(&self) -> anyhow::Result<&StateDir> {
        if let Some(state) = self.state.get() {
            return Ok(state);
        }
        let state = StateDir::resolve(self.state_dir.as_deref())?;
        Ok(self.state.get_or_init(|| state))
    }

    /// The city's LAN addresses, each with the reason it was chosen, resolved on first use.
    pub fn lan(&self) -> anyhow::Result<&[LanAddress]> {
        if let Some(lan) = self.lan.get() {
            return Ok(lan);
        }
        let city = self.city()?;
        let lan = crate::lan::resolve(&city.lan.addresses, city.lan.policy())?;
        Ok(self.lan.get_or_init(|| lan))
    }

    /// The LAN addresses alone, in the city's order.
    pub fn lan_addresses(&self) -> anyhow::Result<Vec<std::net::IpAddr>> {
        Ok(self.lan()?.iter().map(|l| l.address).collect())
    }

    /// The vault under the state directory.
    pub fn vault(&self) -> anyhow::Result<Vault> {
        Ok(Vault::new(self.state()?))
    }

    /// The path given with `--city`, if any.
    pub fn city_path(&self) -> Option<&Path> {
        self.city_path.as_deref()
    }

    /// Where the city description comes from, as a user would name it.
    pub fn city_origin(&self) -> String {
        self.city_path.as_deref().map_or_else(
            || "the embedded default city".to_string(),
            |p: &Path| p.display().to_string(),
        )
    }

    /// Runs a future to completion on the program's one runtime (built on first use).
    pub fn block_on<F: Future>(&self, future: F) -> anyhow::Result<F::Output> {
        Ok(self.runtime()?.block_on(future))
    }

    /// A handle on the program's one runtime, for libraries that mix blocking work (files,
    /// hashing, encryption) with async calls and spawn or block on the runtime themselves.
    pub fn runtime_handle(&self) -> anyhow::Result<tokio::runtime::Handle> {
        Ok(self.runtime()?.handle().clone())
    }

    /// The program's one async runtime: two workers, enough for the relay's intake and delivery,
    /// and for every other verb, which awaits one thing at a time.
    fn runtime(&self) -> anyhow::Result<&tokio::runtime::Runtime> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(self.runtime.get_or_init(|| runtime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_is_read_once_and_kept() {
        let ctx = Context::new(None, None);
        let first: *const City = ctx.city().unwrap();
        let second: *const City = ctx.city().unwrap();
        assert_eq!(first, second);
        assert!(ctx.city_origins().unwrap().file.is_none());
        assert_eq!(ctx.city_origin(), "the embedded default city");
    }

    #[test]
    fn a_missing_city_file_is_an_error_naming_it_and_nothing_is_kept() {
        let ctx = Context::new(Some(PathBuf::from("/nonexistent/city.toml")), None);
        let error = format!("{:#}", ctx.city().unwrap_err());
        assert!(error.contains("/nonexistent/city.toml"), "{error}");
        assert!(ctx.city.get().is_none());
    }

    #[test]
    fn the_runtime_is_built_once() {
        let ctx = Context::new(None, None);
        let first: *const tokio::runtime::Runtime = ctx.runtime().unwrap();
        assert_eq!(ctx.block_on(async { 7 }).unwrap(), 7);
        let second: *const tokio::runtime::Runtime = ctx.runtime().unwrap();
        assert_eq!(first, second);
    }
}
