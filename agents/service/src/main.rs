fn main() -> std::process::ExitCode {
    lvs_agents::service::main()
}
