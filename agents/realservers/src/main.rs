fn main() -> std::process::ExitCode {
    lvs_agents::realservers::main()
}
