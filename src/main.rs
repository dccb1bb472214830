fn main() -> std::process::ExitCode {
    pubdeck::cli::main()
}
