//! The wiring of the city's Mattermost objects: desired (from the city) → observed (GET only) →
//! plan (pure) → apply (in order, stopping at the first failure; reruns converge), and `converge`,
//! the whole run (plugins included) as one call returning a `WireReport`.

pub mod apply;
pub mod converge;
pub mod desired;
pub mod observe;
pub mod plan;
pub mod report;

pub use apply::{Applier, ApplyError};
pub use converge::{Options, Progress, WireError, WireFailure, converge, converge_shown};
pub use desired::Desired;
pub use observe::{Observed, ServerConfig, observe};
pub use plan::{Item, Kind, Op, Plan, plan};
pub use report::{WireReport, change_word, item_line};
