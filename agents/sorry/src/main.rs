fn main() -> std::process::ExitCode {
    lvs_agents::sorry::main()
}
