//! `bench-broker`: the broker-side half of `bench/pipeline.py`.
//!
//! Everything here talks AMQP with the pipeline's own client code (`pipeline::broker`,
//! `participant::Client`), so the figures it produces are comparable with the producer's and the
//! worker's:
//! - `capture`: take N submissions off the work queue (after `producer enroll` filled it) and keep
//!   their bodies, one JSON document per line;
//! - `fill`: publish submissions into the work queue from such a file, every message with a fresh
//!   submission id, all replying to one sink queue (so that "every result arrived" is one counter);
//! - `wait`: poll a queue until it holds N messages (the worker drained the work queue);
//! - `ceiling`: the broker's own rate for a message size with the pipeline's settings and no
//!   computation: publish with confirms in windows, relay (consume, publish with confirms, then
//!   ack, in worker-sized batches) and consume with manual acks, on quorum queues;
//! - `delete`: delete queues and exchanges by name (clean-up of a benchmark prefix).
//!
//! The topology prefix comes from the usual configuration (`PIPELINE__TOPOLOGY__PREFIX`).

use std::io::{BufRead as _, BufWriter, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures_lite::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Consumer};
use participant::Client;
use pipeline::Settings;
use pipeline::amqp_name::{AmqpName, NameKind};
use pipeline::broker::Outgoing;
use pipeline::config::LoadOptions;
use pipeline::messages::{MessageType, Properties, SubmissionWire};

/// Command line of `bench-broker`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file overriding config/default.toml (the topology prefix may also come from
    /// PIPELINE__TOPOLOGY__PREFIX).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take COUNT submissions off the work queue and write their bodies to OUT, one per line.
    Capture {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish COUNT submissions (cycling through the bodies of FILE, each with a fresh
    /// submission id) into the work queue, replying to the queue SINK (declared and bound here).
    Fill {
        #[arg(long)]
        bodies: PathBuf,
        #[arg(long)]
        count: u64,
        /// Reply queue of every submission (a plain name; the prefix is prepended).
        #[arg(long)]
        sink: String,
        /// Keep at most this many results in the sink (older ones dropped): for long fills whose
        /// results nobody reads.
        #[arg(long)]
        sink_max_length: Option<i64>,
        /// Distinguishes the ids of several fills from one file.
        #[arg(long, default_value = "fill")]
        tag: String,
        #[arg(long, default_value_t = 128)]
        window: usize,
    },
    /// Wait until the queue NAME (prefix prepended) holds COUNT ready messages; print the seconds.
    Wait {
        #[arg(long)]
        queue: String,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// The broker's own rates for BYTES-sized persistent messages on quorum queues: publish with
    /// confirms in WINDOW-sized pipelined windows, relay in BATCH-sized batches (consume, publish
    /// with confirms, ack), consume with manual acks; prints one JSON object.
    Ceiling {
        #[arg(long)]
        bytes: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 128)]
        window: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 64)]
        prefetch: u16,
    },
    /// Delete queues and exchanges (full names, prefix included); missing ones are fine.
    Delete {
        #[arg(long = "queue")]
        queues: Vec<String>,
        #[arg(long = "exchange")]
        exchanges: Vec<String>,
        /// File of further names, one per line: `queue NAME` or `exchange NAME`.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

/// `name` checked as a name of `kind`, as lapin takes it.
fn short(kind: NameKind, name: &str) -> anyhow::Result<ShortString> {
    Ok(AmqpName::new(kind, name)?.into())
}

async fn consumer(ch: &Channel, queue: &str, prefetch: u16) -> anyhow::Result<Consumer> {
    ch.basic_qos(prefetch, BasicQosOptions { global: false })
        .await?;
    Ok(ch
        .basic_consume(
            short(NameKind::Queue, queue)?,
            short(
                NameKind::ConsumerTag,
                &format!("bench-{}", std::process::id()),
            )?,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// Quorum queue with the work queue's settings that matter for speed (persistent, replicated
/// log, reject-publish overflow, delivery limit); no dead-lettering (nothing is refused).
async fn quorum_queue(ch: &Channel, name: &str) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(5));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1_000_000));
    ch.queue_declare(
        short(NameKind::Queue, name)?,
        QueueDeclareOptions::durable(),
        args,
    )
    .await?;
    Ok(())
}

fn message(exchange: &str, key: &str, id: String, body: Vec<u8>) -> anyhow::Result<Outgoing> {
    Ok(Outgoing {
        exchange: exchange.to_owned(),
        routing_key: key.to_owned(),
        body,
        properties: Properties {
            kind: MessageType::Submission,
            message_id: id.clone(),
            correlation_id: id,
            reply_to: None,
            app_id: "bench-broker".to_owned(),
        }
        .to_amqp()?,
    })
}

async fn capture(client: &Client, count: u64, out: PathBuf) -> anyhow::Result<()> {
    let ch = client.connection().create_channel().await?;
    let mut deliveries = consumer(&ch, &client.topology().work_queue, 256).await?;
    let mut file = BufWriter::new(
        std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?,
    );
    let mut taken = 0;
    while taken < count {
        let next = tokio::time::timeout(Duration::from_secs(30), deliveries.next()).await;
        let delivery = match next {
            Ok(Some(d)) => d?,
            _ => bail!("only {taken} of {count} submissions arrived in the work queue"),
        };
        file.write_all(&delivery.data)?;
        file.write_all(b"\n")?;
        delivery.ack(BasicAckOptions::default()).await?;
        taken += 1;
    }
    file.flush()?;
    let _ = ch.close(200, "done".into()).await;
    println!("captured {taken} submissions into {}", out.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn fill(
    client: &Client,
    bodies: PathBuf,
    count: u64,
    sink: &str,
    sink_max_length: Option<i64>,
    tag: &str,
    window: usize,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(&bodies).with_context(|| format!("{}", bodies.display()))?;
    let mut templates = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            templates.push(serde_json::from_str::<SubmissionWire>(&line)?);
        }
    }
    if templates.is_empty() {
        bail!("no submissions in {}", bodies.display());
    }
    let topology = client.topology();
    let sink = format!("{}{sink}", prefix_of(topology));
    let ch = client.connection().create_channel().await?;
    let mut args = FieldTable::default();
    if let Some(max) = sink_max_length {
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max));
    }
    ch.queue_declare(
        short(NameKind::Queue, &sink)?,
        QueueDeclareOptions::durable(),
        args,
    )
    .await?;
    ch.queue_bind(
        short(NameKind::Queue, &sink)?,
        short(NameKind::Exchange, &topology.results_exchange)?,
        short(NameKind::RoutingKey, &sink)?,
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(window as u64);
        let messages: Vec<Outgoing> = (sent..sent + n)
            .map(|i| {
                let mut s = templates[(i % templates.len() as u64) as usize].clone();
                s.submission_id = format!("{tag}-{}-{i}", std::process::id());
                client.submission_message(&s, &sink)
            })
            .collect::<Result<_, _>>()?;
        client.publish_all(&messages).await?;
        sent += n;
        if sent % 10_000 < n {
            eprintln!("  fill: {sent}/{count}");
        }
    }
    let _ = ch.close(200, "done".into()).await;
    println!(
        "filled {sent} submissions ({} distinct bodies) in {:.1} s",
        templates.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The prefix the topology was built with (the work queue is "<prefix>readings.work").
fn prefix_of(t: &pipeline::Topology) -> String {
    t.reply_queue_prefix
        .strip_suffix("results.")
        .unwrap_or("")
        .to_owned()
}

async fn wait(client: &Client, queue: &str, count: u32, timeout: u64) -> anyhow::Result<()> {
    let name = format!("{}{queue}", prefix_of(client.topology()));
    let ch = client.connection().create_channel().await?;
    let started = Instant::now();
    loop {
        let q = ch
            .queue_declare(
                short(NameKind::Queue, &name)?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        if q.message_count() >= count {
            println!("{:.3}", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!(
                "{name} holds {} of {count} messages after {timeout} s",
                q.message_count()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ceiling(
    client: &Client,
    bytes: usize,
    count: usize,
    window: usize,
    batch: usize,
    prefetch: u16,
) -> anyhow::Result<()> {
    let prefix = prefix_of(client.topology());
    let (a, b) = (
        format!("{prefix}bench.ceiling.in"),
        format!("{prefix}bench.ceiling.out"),
    );
    let ch = client.connection().create_channel().await?;
    for q in [&a, &b] {
        quorum_queue(&ch, q).await?;
    }
    // JSON-like filler of the right size (the broker does not look at it).
    let body = vec![b'7'; bytes];

    // 1. Publish with confirms, pipelined in windows (the producer's pattern).
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let n = (count - sent).min(window);
        let msgs: Vec<Outgoing> = (sent..sent + n)
            .map(|i| message("", &a, format!("c-{i}"), body.clone()))
            .collect::<anyhow::Result<_>>()?;
        client.publish_all(&msgs).await?;
        sent += n;
    }
    let publish = started.elapsed().as_secs_f64();

    // 2. Relay: consume with prefetch, batch, publish the batch with confirms, then ack it
    //    (the worker's broker traffic with the computation taken out).
    let in_ch = client.connection().create_channel().await?;
    let mut deliveries = consumer(&in_ch, &a, prefetch).await?;
    let started = Instant::now();
    let mut relayed = 0;
    while relayed < count {
        let mut held = Vec::with_capacity(batch);
        while held.len() < batch && relayed + held.len() < count {
            let wait = if held.is_empty() { 30_000 } else { 20 };
            match tokio::time::timeout(Duration::from_millis(wait), deliveries.next()).await {
                Ok(Some(d)) => held.push(d?),
                Ok(None) => bail!("consumer ended"),
                Err(_) if held.is_empty() => bail!("relay stalled at {relayed}"),
                Err(_) => break,
            }
        }
        let msgs: Vec<Outgoing> = held
            .iter()
            .enumerate()
            .map(|(j, d)| message("", &b, format!("r-{}", relayed + j), d.data.clone()))
            .collect::<anyhow::Result<_>>()?;
        client.publish_all(&msgs).await?;
        for d in &held {
            d.ack(BasicAckOptions::default()).await?;
        }
        relayed += held.len();
    }
    let relay = started.elapsed().as_secs_f64();
    let _ = in_ch.close(200, "done".into()).await;

    // 3. Consume with manual acks (the collecting consumer's pattern).
    let out_ch = client.connection().create_channel().await?;
    let mut deliveries = consumer(&out_ch, &b, prefetch).await?;
    let started = Instant::now();
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(30), deliveries.next()).await {
            Ok(Some(d)) => {
                d?.ack(BasicAckOptions::default()).await?;
            }
            _ => bail!("consume stalled"),
        }
    }
    let consume = started.elapsed().as_secs_f64();
    let _ = out_ch.close(200, "done".into()).await;
    for q in [&a, &b] {
        ch.queue_delete(short(NameKind::Queue, q)?, QueueDeleteOptions::default())
            .await?;
    }
    let rate = |secs: f64| count as f64 / secs.max(1e-9);
    println!(
        "{}",
        serde_json::json!({
            "bytes": bytes, "count": count, "window": window, "batch": batch, "prefetch": prefetch,
            "publish_per_s": rate(publish), "relay_per_s": rate(relay), "consume_per_s": rate(consume),
        })
    );
    Ok(())
}

async fn delete(client: &Client, queues: &[String], exchanges: &[String]) -> anyhow::Result<()> {
    for q in queues {
        // A fresh channel per deletion: a failed one closes its channel.
        let ch = client.connection().create_channel().await?;
        if let Err(e) = ch
            .queue_delete(short(NameKind::Queue, q)?, QueueDeleteOptions::default())
            .await
        {
            eprintln!("deleting queue {q}: {e}");
        }
    }
    for e in exchanges {
        let ch = client.connection().create_channel().await?;
        if let Err(err) = ch
            .exchange_delete(
                short(NameKind::Exchange, e)?,
                ExchangeDeleteOptions::default(),
            )
            .await
        {
            eprintln!("deleting exchange {e}: {err}");
        }
    }
    println!(
        "deleted {} queue(s), {} exchange(s)",
        queues.len(),
        exchanges.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(&LoadOptions {
        file: cli.config.clone(),
        ..LoadOptions::default()
    })?;
    let client = Client::connect(&settings, "bench-broker").await?;
    let outcome = match cli.command {
        Command::Capture { count, out } => capture(&client, count, out).await,
        Command::Fill {
            bodies,
            count,
            sink,
            sink_max_length,
            tag,
            window,
        } => fill(&client, bodies, count, &sink, sink_max_length, &tag, window).await,
        Command::Wait {
            queue,
            count,
            timeout_secs,
        } => wait(&client, &queue, count, timeout_secs).await,
        Command::Ceiling {
            bytes,
            count,
            window,
            batch,
            prefetch,
        } => ceiling(&client, bytes, count, window, batch, prefetch).await,
        Command::Delete {
            mut queues,
            mut exchanges,
            from,
        } => {
            if let Some(from) = from {
                let text = std::fs::read_to_string(&from)
                    .with_context(|| format!("reading {}", from.display()))?;
                for line in text.lines() {
                    match line.split_once(' ') {
                        Some(("queue", name)) => queues.push(name.to_owned()),
                        Some(("exchange", name)) => exchanges.push(name.to_owned()),
                        _ if line.trim().is_empty() => {}
                        _ => bail!(
                            "{}: not `queue NAME` or `exchange NAME`: {line}",
                            from.display()
                        ),
                    }
                }
            }
            delete(&client, &queues, &exchanges).await
        }
    };
    client.close().await;
    outcome
}
