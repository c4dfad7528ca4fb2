//! The `cityd` binary: sets up logging, parses the command line, dispatches, maps errors to exit codes.

fn main() -> std::process::ExitCode {
    cityd::cli::main()
}
