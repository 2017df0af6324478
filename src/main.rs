use std::process::ExitCode;

fn main() -> ExitCode {
    stagectl::main()
}
