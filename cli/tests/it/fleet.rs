//! The fleet, end to end: `weir worker` processes on a real nats-server pick up deployment
//! records put into `weir_deployments` (as the control plane does), run them, upgrade,
//! pause and resume them, survive the loss of a worker, enforce tenant quotas, and report
//! heartbeats with counters that add up.

use std::time::Duration;

use anyhow::Result;
use weir_pipelines::fleet::{DataPlaneQuota, DesiredState};

use crate::fleet_support::{Fleet, TENANT, assert_exactly_once, block_on, read_all, spec};

#[test]
fn two_workers_share_a_deployment_and_report_heartbeats() -> Result<()> {
    block_on(async {
        let fleet = Fleet::start().await?;
        let mut a = fleet.spawn_worker("wa")?;
        let mut b = fleet.spawn_worker("wb")?;
        fleet
            .deploy(
                "copy",
                1,
                DesiredState::Running,
                spec("copy", None),
                DataPlaneQuota::default(),
            )
            .await?;
        // A spec that does not compile is reported, not fatal.
        fleet
            .deploy(
                "broken",
                1,
                DesiredState::Running,
                serde_json::json!({"kind": "Pipeline"}),
                DataPlaneQuota::default(),
            )
            .await?;
        fleet
            .wait_heartbeats(
                &[&a, &b],
                Duration::from_secs(20),
                "copy running on both",
                |beats| {
                    beats.iter().all(|beat| {
                        beat.pipelines
                            .iter()
                            .any(|p| p.pipeline == "copy" && p.state == "running" && p.version == 1)
                    })
                },
            )
            .await?;
        let seqs = fleet.publish(0..5_000, 0, 64).await?;
        fleet.wait_settled("copy", Duration::from_secs(40)).await?;
        let out = read_all(&fleet.js, "OUT").await?;
        assert_exactly_once("copy", &seqs, &out);

        let beats = fleet
            .wait_heartbeats(
                &[&a, &b],
                Duration::from_secs(10),
                "counters adding up to 5000",
                |beats| {
                    let sum: u64 = beats
                        .iter()
                        .flat_map(|b| &b.pipelines)
                        .filter(|p| p.pipeline == "copy")
                        .map(|p| p.counters.messages_out)
                        .sum();
                    sum == 5_000
                },
            )
            .await?;
        for beat in &beats {
            let copy = beat
                .pipelines
                .iter()
                .find(|p| p.pipeline == "copy")
                .unwrap();
            assert_eq!(copy.tenant, TENANT);
            assert!(
                copy.counters.messages_in > 0,
                "worker {} got no share: {copy:?}",
                beat.worker_id
            );
            assert_eq!(
                copy.counters.messages_in, copy.counters.messages_out,
                "{copy:?}"
            );
            let broken = beat
                .pipelines
                .iter()
                .find(|p| p.pipeline == "broken")
                .unwrap();
            assert_eq!(broken.state, "failed");
            let (error, at) = broken.last_error.clone().expect("failure reported");
            assert!(
                error.contains("acme.broken v1") && error.contains("invalid spec"),
                "{error}"
            );
            assert!(at > 0);
        }

        // SIGTERM: both exit 0 and take their heartbeats with them.
        for w in [&mut a, &mut b] {
            let status = w.sigterm(Duration::from_secs(15))?;
            assert!(
                status.success(),
                "worker {} exit status {status}; log:\n{}",
                w.id,
                w.log_text()
            );
            assert!(
                fleet.heartbeat(&w.id).await?.is_none(),
                "heartbeat of {} deleted",
                w.id
            );
        }
        Ok(())
    })
}

#[test]
fn upgrade_under_traffic_loses_and_duplicates_nothing() -> Result<()> {
    block_on(async {
        let fleet = Fleet::start().await?;
        let w = fleet.spawn_worker("wu")?;
        fleet.deploy_running("up", &[&w]).await?;
        let publisher = fleet.publish(0..6_000, 1_500, 64);
        let upgrade = async {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            fleet
                .deploy(
                    "up",
                    2,
                    DesiredState::Running,
                    spec("up", Some(("X-Version", "v2"))),
                    DataPlaneQuota::default(),
                )
                .await
        };
        let (seqs, upgraded) = tokio::join!(publisher, upgrade);
        let seqs = seqs?;
        upgraded?;
        fleet.wait_settled("up", Duration::from_secs(40)).await?;
        let out = read_all(&fleet.js, "OUT").await?;
        assert_exactly_once("up", &seqs, &out);
        // One worker: v1 finished and acked everything it took before v2 started, so the
        // output stream switches from v1 to v2 exactly once.
        let first_v2 = out
            .iter()
            .position(|s| s.headers.get("X-Version").map(String::as_str) == Some("v2"))
            .expect("v2 produced outputs");
        assert!(first_v2 > 0, "v1 produced outputs before the upgrade");
        let v1_after = out[first_v2..]
            .iter()
            .filter(|s| !s.headers.contains_key("X-Version"))
            .count();
        assert_eq!(
            v1_after, 0,
            "outputs after the switch all carry v2's header"
        );
        assert!(
            out.len() - first_v2 > 1_000,
            "the upgrade happened under traffic"
        );
        fleet
            .wait_heartbeats(&[&w], Duration::from_secs(10), "v2 running", |beats| {
                beats[0]
                    .pipelines
                    .iter()
                    .any(|p| p.state == "running" && p.version == 2)
            })
            .await?;
        Ok(())
    })
}

#[test]
fn sigkill_of_one_worker_loses_nothing() -> Result<()> {
    block_on(async {
        let fleet = Fleet::start().await?;
        let mut a = fleet.spawn_worker("ka")?;
        let b = fleet.spawn_worker("kb")?;
        fleet.deploy_running("kill", &[&a, &b]).await?;
        let publisher = fleet.publish(0..8_000, 2_000, 64);
        let killer = async {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            a.sigkill()
        };
        let (seqs, killed) = tokio::join!(publisher, killer);
        let seqs = seqs?;
        killed?;
        // What the killed worker had un-acked is redelivered to the other after ack_wait.
        fleet.wait_settled("kill", Duration::from_secs(40)).await?;
        let out = read_all(&fleet.js, "OUT").await?;
        assert_exactly_once("kill", &seqs, &out);
        let beat = fleet.heartbeat("kb").await?.expect("survivor's heartbeat");
        assert!(beat.pipelines[0].counters.messages_out > 0);
        Ok(())
    })
}

#[test]
fn pause_lets_lag_grow_and_resume_drains_it() -> Result<()> {
    block_on(async {
        let fleet = Fleet::start().await?;
        let w = fleet.spawn_worker("wp")?;
        fleet.deploy_running("pz", &[&w]).await?;
        let mut seqs = fleet.publish(0..1_000, 0, 64).await?;
        fleet.wait_settled("pz", Duration::from_secs(20)).await?;

        fleet
            .deploy(
                "pz",
                1,
                DesiredState::Paused,
                spec("pz", None),
                DataPlaneQuota::default(),
            )
            .await?;
        fleet
            .wait_heartbeats(&[&w], Duration::from_secs(20), "paused", |beats| {
                beats[0].pipelines.iter().any(|p| p.state == "paused")
            })
            .await?;
        seqs.extend(fleet.publish(1_000..3_000, 0, 64).await?);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let info = fleet.consumer_info("pz").await?;
        assert_eq!(info.num_pending, 2_000, "paused: the lag grows");
        assert_eq!(read_all(&fleet.js, "OUT").await?.len(), 1_000);

        fleet
            .deploy(
                "pz",
                1,
                DesiredState::Running,
                spec("pz", None),
                DataPlaneQuota::default(),
            )
            .await?;
        fleet.wait_settled("pz", Duration::from_secs(30)).await?;
        let out = read_all(&fleet.js, "OUT").await?;
        assert_exactly_once("pz", &seqs, &out);
        Ok(())
    })
}

#[test]
fn tenant_quotas_pace_ingest_and_refuse_oversized_messages() -> Result<()> {
    block_on(async {
        let fleet = Fleet::start().await?;
        let w = fleet.spawn_worker("wq")?;
        // Inputs first, so that the pipeline could go as fast as it likes.
        let seqs = fleet.publish(0..2_500, 0, 64).await?;
        let big = fleet.publish(2_500..2_505, 0, 400).await?;
        let quota = DataPlaneQuota {
            max_message_bytes: Some(200),
            max_ingest_rate: Some(500),
        };
        fleet
            .deploy("rate", 1, DesiredState::Running, spec("rate", None), quota)
            .await?;
        fleet.wait_settled("rate", Duration::from_secs(40)).await?;
        let out = read_all(&fleet.js, "OUT").await?;
        assert_exactly_once("rate", &seqs, &out);
        let span_s = (out.last().unwrap().stored_at_ns - out[0].stored_at_ns) as f64 / 1e9;
        let rate = (out.len() - 1) as f64 / span_s;
        eprintln!("measured ingest rate {rate:.0} msg/s over {span_s:.2} s");
        assert!(
            (rate - 500.0).abs() <= 50.0,
            "rate {rate:.0} msg/s is not within 10 % of 500"
        );

        let dead = read_all(&fleet.js, "DLQ").await?;
        assert_eq!(dead.len(), big.len(), "every oversized input dead-lettered");
        for letter in &dead {
            assert_eq!(letter.headers["Weir-Error-Kind"], "quota");
            let error = &letter.headers["Weir-Error"];
            assert!(
                error.contains("tenant acme's quota max_message_bytes of 200 bytes"),
                "{error}"
            );
        }
        fleet
            .wait_heartbeats(
                &[&w],
                Duration::from_secs(10),
                "5 dead letters, 2500 outputs",
                |beats| {
                    let counters = &beats[0].pipelines[0].counters;
                    counters.dead_lettered == 5 && counters.messages_out == 2_500
                },
            )
            .await?;
        Ok(())
    })
}
