//! Whether the shim group makes running containers share one shim.

use libctd_core::Result;
use libctd_core::oci_spec::runtime::Spec;
use serde_json::json;

use crate::measure::shims_of;
use crate::ours::{annotate_group, remove_all, start_all};
use crate::run::Bench;

/// Whether the shim_group setting, alone and with the spec annotation, makes
/// two running containers share one shim.
pub(super) async fn group_check(b: &Bench) -> Result<()> {
    let o = &b.on;
    let ns = o.client.namespace().to_owned();
    let mut shims = Vec::new();
    for (tag, annotate) in [("option", false), ("annotated", true)] {
        let ids: Vec<String> = (0..2).map(|k| format!("group-{tag}-{k}")).collect();
        let specs: Vec<Spec> = ids
            .iter()
            .map(|_| {
                let mut spec = b.spec(&["sleep", "100000"]);
                if annotate {
                    annotate_group(&mut spec);
                }
                spec
            })
            .collect();
        let exits = start_all(o, &ids, &specs).await?;
        shims.push(shims_of(&ns).0);
        remove_all(o, ids, exits).await?;
    }
    b.report.record(
        "shim_group_check",
        json!({
            "containers": 2,
            "shims_with_option_only": shims.first(),
            "shims_with_option_and_annotation": shims.get(1),
        }),
    );
    b.report.row(
        "shims for 2 running containers, ShimGroup",
        format!(
            "option only: {}; + annotation: {}",
            shims.first().unwrap_or(&0),
            shims.get(1).unwrap_or(&0)
        ),
        "1 expected",
        None,
        "",
        None,
    );
    Ok(())
}
