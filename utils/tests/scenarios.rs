//! The checked-in scenarios (`scenarios/*.csv`) are exactly what their
//! sidecars' recorded configuration generates: same seed, same bytes.

use std::path::Path;

use utils::generate::{generate, ScenarioMeta};

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let csv = std::fs::read_to_string(dir.join(name)).unwrap();
    let meta_text = std::fs::read_to_string(dir.join(format!("{name}.meta.json"))).unwrap();
    let meta: ScenarioMeta = serde_json::from_str(&meta_text).unwrap();
    let again = generate(&meta.config).unwrap();
    assert_eq!(again.events.len(), meta.total_events, "{name}: count");
    assert_eq!(
        protocol::scenario::to_csv(&again.events),
        csv,
        "{name}: regenerating from its sidecar gives other bytes"
    );
    // Rates go through JSON (last-digit rounding), so compare names, counts
    // and rates to 1e-12.
    assert_eq!(again.meta.counts.len(), meta.counts.len());
    for (a, b) in again.meta.counts.iter().zip(&meta.counts) {
        assert_eq!((&a.function, a.count), (&b.function, b.count), "{name}");
        assert!((a.rate_per_s - b.rate_per_s).abs() < 1e-12, "{name}");
    }
}

#[test]
fn the_original_style_scenario_regenerates() {
    check("events.csv");
}

#[test]
fn the_small_scenario_regenerates_and_fits_the_default_experiment() {
    check("small.csv");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let text = std::fs::read_to_string(dir.join("small.csv")).unwrap();
    let events = protocol::scenario::parse(&text, "small.csv").unwrap();
    assert!((100..=200).contains(&events.len()), "{}", events.len());
    assert!(events
        .iter()
        .all(|e| e.function.starts_with('W') || e.function.starts_with('T')));
    assert!(events.last().unwrap().start_ms < 30_000);
}
