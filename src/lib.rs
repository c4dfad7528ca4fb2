//! cityd: plans, converges and proves a sovereign ChatOps command center (Mattermost with Calls,
//! coturn, PostgreSQL, a local CA) from one city description.

pub mod backup;
pub mod city;
pub mod cli;
pub mod cmd;
pub mod context;
pub mod docker;
pub mod doctor;
pub mod duration;
pub mod envfile;
pub mod exit;
pub mod export;
pub mod flags;
pub mod fsx;
pub mod integrations;
pub mod lan;
pub mod mattermost;
pub mod nixhash;
pub mod onboard;
pub mod owned;
pub mod pki;
pub mod postgres;
pub mod relay;
pub mod render;
pub mod report;
pub mod secrets;
pub mod state;
pub mod status;
pub mod tls;
pub mod turn;
pub mod up;
