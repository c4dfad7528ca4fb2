//! The wiring of the city's Mattermost objects: desired (from the city) → observed (GET only) →
//! plan (pure) → apply (in order, stopping at the first failure; reruns converge).

pub mod apply;
pub mod desired;
pub mod observe;
pub mod plan;

pub use apply::{Applier, ApplyError};
pub use desired::Desired;
pub use observe::{Observed, ServerConfig, observe};
pub use plan::{Change, Item, Kind, Plan, Step, plan};
