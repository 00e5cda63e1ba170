fn main() -> std::process::ExitCode {
    lvs_sync::main()
}
