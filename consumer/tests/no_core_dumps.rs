//! A running consumer holds a private key: it must have turned core dumps off (limit 0, not
//! dumpable) by the time it talks to the broker.

use pipeline::ParticipantId;
use test_support::hardening;

#[test]
fn a_running_consumer_cannot_dump_core() {
    let participant = ParticipantId::new("p-core").unwrap();
    let uid = match hardening::effective_uid() {
        0 => 65534,
        me => me,
    };
    let keys = hardening::key_store_for(uid, &participant, test_support::shared_key());
    hardening::assert_no_core_dumps(
        env!("CARGO_BIN_EXE_consumer"),
        &["--participant", "p-core", "--timeout", "30s"],
        &keys,
    );
    std::fs::remove_dir_all(keys.parent().unwrap()).unwrap();
}
