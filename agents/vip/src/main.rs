fn main() -> std::process::ExitCode {
    lvs_agents::vip::main()
}
