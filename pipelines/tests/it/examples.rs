//! Every example pipeline file loads without a diagnostic and means what it says.

use weir_pipelines::{Next, NodeKind, Resource, load_file};

use crate::crate_path;

fn example_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(crate_path("examples"))
        .expect("pipelines/examples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let files = example_files();
    assert!(
        files.len() >= 2,
        "expected the example files, found {files:?}"
    );
    for file in files {
        if let Err(diags) = load_file(&file) {
            panic!("{} does not validate:\n{diags}", file.display());
        }
    }
}

#[test]
fn order_processing_reads_as_written() {
    let resources = load_file(&crate_path("examples/order-processing.yaml")).unwrap();
    let kinds: Vec<&str> = resources.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["Stream", "Stream", "Pipeline"]);
    let Resource::Stream(orders) = &resources[0] else {
        panic!("not a stream")
    };
    assert_eq!(orders.metadata.name, "ORDERS");
    assert_eq!(orders.spec.subjects, ["orders.>"]);
    let Resource::Pipeline(p) = &resources[2] else {
        panic!("not a pipeline")
    };
    assert_eq!(p.metadata.name, "order-processing");
    let ids: Vec<&str> = p.spec.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pending",
            "priority",
            "enrich-priority",
            "enrich-standard",
            "publish-priority",
            "publish-processed"
        ]
    );
    assert_eq!(p.spec.nodes[0].kind(), Some(NodeKind::Filter));
    assert_eq!(
        p.spec.nodes[1].default,
        Some(Next::One("enrich-standard".into()))
    );
    let publish = p.spec.nodes[4].publish.as_ref().unwrap();
    assert_eq!(publish.subject, "orders.priority.{data.region}");
    assert_eq!(publish.headers["X-Priority"], "high");
    assert_eq!(p.spec.errors.retry.max_attempts, 3);
    assert_eq!(p.spec.errors.retry.backoff.initial, "1s");
    // Outputs never match the source filter: the pipeline cannot read its own output.
    for n in &p.spec.nodes {
        if let Some(pb) = &n.publish {
            assert!(!pb.subject.starts_with("orders.created."), "{}", pb.subject);
        }
    }
}

#[test]
fn order_routing_fans_out() {
    let resources = load_file(&crate_path("examples/order-routing.yaml")).unwrap();
    let p = resources
        .iter()
        .find_map(|r| match r {
            Resource::Pipeline(p) => Some(p),
            _ => None,
        })
        .expect("a pipeline");
    assert_eq!(
        p.spec.nodes[0].next,
        Some(Next::Many(vec![
            "high-value".into(),
            "regional".into(),
            "audit".into()
        ]))
    );
    let regional = p.spec.nodes.iter().find(|n| n.id == "regional").unwrap();
    assert_eq!(regional.route.as_ref().unwrap().len(), 3);
    assert_eq!(regional.default, Some(Next::One("publish-global".into())));
    let audit = p.spec.nodes.iter().find(|n| n.id == "audit").unwrap();
    assert_eq!(
        audit.publish.as_ref().unwrap().headers["X-Payload-Hash"],
        "{encode(sha256(data.order_id), 'hex')}"
    );
}

#[test]
fn json_and_yaml_read_the_same() {
    let yaml = std::fs::read_to_string(crate_path("examples/order-processing.yaml")).unwrap();
    let from_yaml = weir_pipelines::load_str(&yaml, "order-processing.yaml").unwrap();
    let json = serde_json::to_string_pretty(&from_yaml).unwrap();
    let from_json = weir_pipelines::load_str(&json, "order-processing.json").unwrap();
    assert_eq!(from_yaml, from_json);
}
