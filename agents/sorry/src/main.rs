fn main() -> std::process::ExitCode {
    lvs_sorry::main()
}
