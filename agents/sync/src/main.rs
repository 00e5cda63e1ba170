fn main() -> std::process::ExitCode {
    lvs_agents::sync::main()
}
