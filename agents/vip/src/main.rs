fn main() -> std::process::ExitCode {
    lvs_vip::main()
}
