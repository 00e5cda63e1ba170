fn main() -> std::process::ExitCode {
    lvs_service::main()
}
