//! The `cityd` binary: hands over to `cli::main`, which parses, resolves, dispatches and maps errors to exit codes.

fn main() -> std::process::ExitCode {
    cityd::cli::main()
}
