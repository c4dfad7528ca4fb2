//! One module per verb: its clap arguments and its `run()`, which maps them to one library call and
//! prints the result. No verb imports another; shared flag groups live in `crate::flags`.

pub mod backup;
pub mod config;
pub mod connect;
pub mod db;
pub mod doctor;
pub mod down;
pub mod export;
pub mod onboard;
pub mod pki;
pub mod relay;
pub mod render;
pub mod restore;
pub mod secrets;
pub mod status;
pub mod turn;
pub mod up;
pub mod verify;
pub mod wire;
