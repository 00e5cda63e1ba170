#[test]
fn meta_data_matches_checked_in_copy_and_validates() {
    lvs_tests::agent::check_metadata(std::path::Path::new(env!("CARGO_BIN_EXE_lvs-sync")), "sync");
}
