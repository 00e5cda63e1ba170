fn main() -> std::process::ExitCode {
    lvs_realservers::main()
}
