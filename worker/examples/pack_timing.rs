//! Worker CPU per submission with packed results (format 2) against one ciphertext per output
//! (format 1), for the default study, measured in the same run, interleaved.
//!
//! ```sh
//! cargo run --release -p worker --example pack_timing -- [ROUNDS] [KEY_BITS]
//! ```
//!
//! Each round processes the same submission (glucose 5.4 and 6.1, cholesterol 4.2, python-paillier
//! encodings) once packed and once unpacked with [`Processor::process`], exactly what a worker
//! thread runs per delivery: parse, validate the key and ciphertexts, evaluate the study,
//! pack, re-randomise, serialise. It also times the participant's decryption of both results.
//! CPU time is the calling thread's (`/proc/thread-self/schedstat`, so other processes on a
//! shared machine do not count), or wall time where that file is missing. Medians are printed
//! with the ratio packed / unpacked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use paillier::PrivateKey;
use pipeline::ParticipantId;
use pipeline::Settings;
use pipeline::messages::{ResultMessage, SubmissionWire};
use worker::process::{Outcome, Processor, Request};

/// CPU time of this thread so far, if the kernel says.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Runs `f` and returns its result with the CPU (or wall) time it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let value = f();
    let elapsed = match (cpu, thread_cpu()) {
        (Some(before), Some(after)) => after - before,
        _ => wall.elapsed(),
    };
    (value, elapsed)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(15, |a| a.parse().expect("ROUNDS"));
    let bits: u64 = args.next().map_or(2048, |a| a.parse().expect("KEY_BITS"));
    let source = if thread_cpu().is_some() {
        "thread CPU time"
    } else {
        "wall time"
    };

    let key = PrivateKey::generate(bits).expect("key generation");
    let participant = ParticipantId::new("p-timing").expect("valid id");
    let readings = BTreeMap::from([
        ("glucose".to_owned(), vec![5.4, 6.1]),
        ("cholesterol".to_owned(), vec![4.2]),
    ]);
    let wire = SubmissionWire::encrypt(
        &pipeline::Settings::defaults().study,
        "s-timing",
        &participant,
        &key,
        &readings,
    )
    .expect("encrypt");
    let request = Request {
        body: serde_json::to_vec(&wire).expect("serialise"),
        reply_to: Some("results.p-timing".into()),
        correlation_id: None,
        message_id: None,
        // The participant's own broker user, as the broker would have validated it.
        user_id: Some("p-timing".into()),
    };
    let processor = |pack: bool| {
        let mut settings = Settings::defaults();
        settings.worker.pack_results = pack;
        Processor::new(&settings)
    };
    let (packed, unpacked) = (processor(true), processor(false));
    let run = |p: &Processor| -> ResultMessage {
        match p.process(&request) {
            Outcome::Done(reply) => serde_json::from_slice(&reply.body).expect("a result"),
            other => panic!("not computed: {other:?}"),
        }
    };
    // Warm-up (first-use allocations, Montgomery contexts).
    run(&packed);
    run(&unpacked);

    let mut worker = [Vec::new(), Vec::new()];
    let mut participant_side = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Alternate which goes first, so drift on a shared machine hits both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let p = if which == 0 { &packed } else { &unpacked };
            let (result, cpu) = timed(|| run(p));
            worker[which].push(cpu);
            let (values, cpu) = timed(|| result.decrypt(&key).expect("decrypts"));
            assert_eq!(values.len(), 6);
            participant_side[which].push(cpu);
        }
    }
    let [wp, wu] = worker.map(median);
    let [dp, du] = participant_side.map(median);
    println!("default study (6 outputs), {bits}-bit key, {rounds} rounds, medians of {source}");
    println!(
        "worker per submission:     packed {wp:>10.2?}  unpacked {wu:>10.2?}  ratio {:.3}",
        wp.as_secs_f64() / wu.as_secs_f64()
    );
    println!(
        "participant decryption:    packed {dp:>10.2?}  unpacked {du:>10.2?}  ratio {:.3}",
        dp.as_secs_f64() / du.as_secs_f64()
    );
}
