//! One module per verb: its clap arguments and its `run()`.

pub mod config;
pub mod connect;
pub mod db;
pub mod doctor;
pub mod down;
pub mod pki;
pub mod relay;
pub mod render;
pub mod secrets;
pub mod turn;
pub mod up;
pub mod verify;
pub mod wire;

/// Prints a value as pretty JSON on stdout (the `--json` output of every command).
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
