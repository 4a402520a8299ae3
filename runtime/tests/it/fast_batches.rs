//! The sink's fast batches against a real nats-server: every message stored once however
//! often it is published; a full stream (`discard: new`) refuses a message as transient and
//! the server drops the rest of its batch (transient too); a message too large for the
//! stream is a data failure; a stream without `allow_batched` is published one message at a
//! time.

use anyhow::Result;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use weir_connectors::{FailureKind, JetStreamSink, Outbound};
use weir_testkit::nats::NatsServer;

use crate::support::*;

fn outbound(subject: &str, id: &str, payload: Bytes) -> Outbound {
    Outbound {
        subject: subject.into(),
        headers: HeaderMap::new(),
        payload,
        msg_id: id.into(),
    }
}

/// A stream called `name` capturing `subjects`.
fn named(name: &str, subjects: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    }
}

async fn batched_stream(js: &jetstream::Context, config: stream::Config) -> Result<()> {
    js.create_stream(stream::Config {
        allow_batch_publish: true,
        ..config
    })
    .await?;
    Ok(())
}

/// A server, a connection to it, and a stream of `config` that takes fast batches.
async fn batched_server(
    config: stream::Config,
) -> Result<(NatsServer, async_nats::Client, jetstream::Context)> {
    let server = NatsServer::start()?;
    let (client, js) = connect(&server).await?;
    batched_stream(&js, config).await?;
    Ok((server, client, js))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_store_every_message_once() -> Result<()> {
    let (_server, _client, js) = batched_server(named("OUT", "out.>")).await?;
    // A window smaller than the messages: several batches, some waiting for room.
    let sink = JetStreamSink::new(js.clone(), 64);
    let messages: Vec<Outbound> = (0..300)
        .map(|i| {
            outbound(
                &format!("out.{}", i % 3),
                &format!("m{i}"),
                Bytes::from(format!("{i}")),
            )
        })
        .collect();
    for round in 0..2 {
        let results = sink.publish_all(&messages).await;
        assert!(
            results.iter().all(Result::is_ok),
            "round {round}: {:?}",
            results.iter().find(|r| r.is_err())
        );
    }
    let stored = read_all(&js, "OUT").await?;
    assert_eq!(stored.len(), 300, "the second round was deduplicated");
    for (i, message) in stored.iter().enumerate() {
        assert_eq!(
            message.headers["Nats-Msg-Id"],
            format!("m{i}"),
            "order kept"
        );
        assert_eq!(message.payload, Bytes::from(format!("{i}")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_the_rest_of_a_batch_as_transient() -> Result<()> {
    let (_server, _client, js) = batched_server(stream::Config {
        max_messages: 10,
        discard: stream::DiscardPolicy::New,
        ..named("SMALL", "small.>")
    })
    .await?;
    let sink = JetStreamSink::new(js.clone(), 1024);
    let messages: Vec<Outbound> = (0..15)
        .map(|i| outbound("small.x", &format!("s{i}"), Bytes::from_static(b"{}")))
        .collect();
    let results = sink.publish_all(&messages).await;
    assert_eq!(count(&js, "SMALL").await, 10);
    assert!(results[..10].iter().all(Result::is_ok), "{results:?}");
    // The 11th is refused and the server ends the batch there; the rest, never judged, are
    // published one by one and refused the same way.
    for result in &results[10..] {
        let failure = result.as_ref().expect_err("over the limit");
        assert_eq!(failure.kind, FailureKind::Transient, "{failure:?}");
        assert!(failure.reason.contains("maximum messages"), "{failure:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_stream_is_a_data_failure() -> Result<()> {
    let (_server, _client, js) = batched_server(stream::Config {
        max_message_size: 100,
        ..named("TIGHT", "tight.>")
    })
    .await?;
    let sink = JetStreamSink::new(js.clone(), 1024);
    // Refused in the middle, first, last, and alone: the refused message fails as data and
    // no other message fails with it, without waiting for a PubAck that never comes.
    let small = |id: &str| outbound("tight.a", id, Bytes::from_static(b"small"));
    let large = |id: &str| outbound("tight.a", id, Bytes::from(vec![b'x'; 500]));
    let cases = [
        vec![small("m0"), large("m1"), small("m2")],
        vec![large("f0"), small("f1"), small("f2")],
        vec![small("l0"), small("l1"), large("l2")],
        vec![large("a0")],
    ];
    let mut stored = 0;
    for messages in cases {
        let started = std::time::Instant::now();
        let results = sink.publish_all(&messages).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "answered without waiting for a timeout"
        );
        for (message, result) in messages.iter().zip(&results) {
            if message.payload.len() > 100 {
                let failure = result.as_ref().expect_err("too large");
                assert_eq!(failure.kind, FailureKind::Publish, "{failure:?}");
            } else {
                assert!(result.is_ok(), "{}: {results:?}", message.msg_id);
                stored += 1;
            }
        }
    }
    assert_eq!(count(&js, "TIGHT").await, stored);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_batches_gets_one_message_at_a_time() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    js.create_stream(named("PLAIN", "plain.>")).await?;
    let sink = JetStreamSink::new(js.clone(), 1024);
    let messages: Vec<Outbound> = (0..20)
        .map(|i| outbound("plain.x", &format!("p{i}"), Bytes::from_static(b"{}")))
        .collect();
    let results = sink.publish_all(&messages).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(count(&js, "PLAIN").await, 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_at_once_are_all_stored() -> Result<()> {
    let (_server, _client, js) = batched_server(named("WIDE", "wide.>")).await?;
    // Many batches in flight at once over the sink's one inbox: each gets its own PubAck
    // (were the server to decline some, their messages would go one at a time).
    let sink = JetStreamSink::new(js.clone(), 100_000);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..200 {
        let sink = sink.clone();
        tasks.spawn(async move {
            let messages: Vec<Outbound> = (0..50)
                .map(|i| outbound("wide.x", &format!("w{t}-{i}"), Bytes::from_static(b"{}")))
                .collect();
            sink.publish_all(&messages).await
        });
    }
    while let Some(results) = tasks.join_next().await {
        let results = results?;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    assert_eq!(count(&js, "WIDE").await, 10_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_taking_batches_gets_one_message_at_a_time() -> Result<()> {
    let config = named("TURN", "turn.>");
    let (_server, _client, js) = batched_server(config.clone()).await?;
    let sink = JetStreamSink::new(js.clone(), 1024);
    let first: Vec<Outbound> = (0..10)
        .map(|i| outbound("turn.x", &format!("a{i}"), Bytes::from_static(b"{}")))
        .collect();
    assert!(sink.publish_all(&first).await.iter().all(Result::is_ok));
    // The sink still believes the stream takes batches; the server declines the next one.
    js.update_stream(stream::Config {
        allow_batch_publish: false,
        ..config
    })
    .await?;
    let second: Vec<Outbound> = (0..10)
        .map(|i| outbound("turn.x", &format!("b{i}"), Bytes::from_static(b"{}")))
        .collect();
    let results = sink.publish_all(&second).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(count(&js, "TURN").await, 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_payload_fails_alone_as_data() -> Result<()> {
    let (_server, client, js) = batched_server(named("BIG", "big.>")).await?;
    let sink = JetStreamSink::new(js.clone(), 1024);
    let too_big = client.server_info().max_payload + 1;
    let messages = vec![
        outbound("big.a", "b0", Bytes::from_static(b"{}")),
        outbound("big.a", "b1", Bytes::from(vec![b'x'; too_big])),
        outbound("big.a", "b2", Bytes::from_static(b"{}")),
    ];
    let results = sink.publish_all(&messages).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let failure = results[1].as_ref().expect_err("over max_payload");
    assert_eq!(failure.kind, FailureKind::Publish, "{failure:?}");
    assert_eq!(count(&js, "BIG").await, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_an_existing_stream_lets_it_take_batches() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    // A stream made before Weir declared it (or by an older Weir).
    js.create_stream(named("OLD", "old.>")).await?;
    let resources = weir_pipelines::load_str(
        "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: OLD }\nspec: { subjects: [\"old.>\"] }\n",
        "old.yaml",
    )
    .map_err(|d| anyhow::anyhow!("{d}"))?;
    let weir_pipelines::Resource::Stream(resource) = &resources[0] else {
        anyhow::bail!("expected a Stream");
    };
    let info = weir_connectors::ensure_stream(&js, resource).await?;
    assert!(info.config.allow_batch_publish, "{:?}", info.config);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leave_to_hear_replies_batches_pause_and_messages_go_one_by_one() -> Result<()> {
    // A user that may subscribe to inboxes only: the batches' reply subjects are denied.
    let server = NatsServer::start_with(weir_testkit::nats::NatsConfig {
        extra_config: r#"authorization { users = [ { user: "w", password: "p", permissions: { publish: ">", subscribe: "_INBOX.>" } } ] }"#.into(),
        ..Default::default()
    })?;
    let client = async_nats::ConnectOptions::with_user_and_password("w".into(), "p".into())
        .connect(server.url())
        .await?;
    let js = jetstream::new(client);
    batched_stream(&js, named("DENIED", "denied.>")).await?;
    // A window of 4: one message per batch, four batches at a time.
    let sink = JetStreamSink::new(js.clone(), 4);
    let messages: Vec<Outbound> = (0..10)
        .map(|i| outbound("denied.x", &format!("d{i}"), Bytes::from_static(b"{}")))
        .collect();
    // The first batches time out without a word; after three of them batches pause, and
    // the rest of the call already goes one by one.
    let first = sink.publish_all(&messages).await;
    let silent = first
        .iter()
        .filter_map(|r| r.as_ref().err())
        .inspect(|failure| {
            assert_eq!(failure.kind, FailureKind::Transient, "{failure:?}");
            assert!(failure.reason.contains("no PubAck"), "{failure:?}");
        })
        .count();
    assert!(silent >= 3, "{first:?}");
    // Batches stay paused: the same messages go one by one, each with its PubAck, and the
    // ones the silent batches stored are recognised as duplicates.
    let second = sink.publish_all(&messages).await;
    assert!(second.iter().all(Result::is_ok), "{second:?}");
    assert_eq!(count(&js, "DENIED").await, 10);
    Ok(())
}
