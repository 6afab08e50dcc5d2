//! The registry's parameters: one table of good and bad settings, accepted
//! or refused alike by every entry point ([`ParamSet::set`],
//! [`SchedulerConfig::new`], reading a serialized set), the key language
//! (`<alg>.<NAME>`, bare `NAME`, `seed`), and the serialized form.

use policy::scheduler::registry::{self, Value};
use policy::scheduler::{consistent_hash, pasch, ParamSet, SchedulerConfig, REGISTRY};
use proptest::prelude::*;

/// (key, value, accepted?). Shared names (`T`) must be valid for every
/// algorithm that has them.
pub const SETTINGS: &[(&str, &str, bool)] = &[
    ("T", "4", true),
    ("T", "1", true),
    ("T", " 7 ", true),
    ("T", "0", false),
    ("T", "-1", false),
    ("T", "4.5", false),
    ("T", "abc", false),
    ("T", "", false),
    ("T", "10001", false),
    ("ch.T", "10000", true),
    ("ch.T", "10001", false),
    ("pasch.T", "10001", true),
    ("pasch.T", "0", false),
    ("hash.T", "3", true),
    ("ch.T1", "3", false),
    ("rr.T", "1", false),
    ("nope.T", "3", false),
    ("T1", "0", false),
    ("T1", "1", true),
    ("T2", "9", true),
    ("T3", "0", false),
    ("ours.T3", "7", true),
    ("ALPHA", "0", true),
    ("ALPHA", "1", true),
    ("ALPHA", "0.25", true),
    ("ALPHA", "1.01", false),
    ("ALPHA", "-0.1", false),
    ("ALPHA", "NaN", false),
    ("BETA", "inf", false),
    ("tradeoff.BETA", "0.2", true),
    ("tradeoff.ALPHA", "x", false),
    ("EPSILON", "-0.1", false),
    ("EPSILON", "NaN", false),
    ("chbl.EPSILON", "100", true),
    ("RLU_CHAIN", "65", false),
    ("RLU_REFRESH_S", "0", false),
    ("RLU_POPULAR", "1", true),
    ("KEEP_ALIVE_S", "0", true),
    ("hermod.KEEP_ALIVE_S", "inf", false),
    ("hermod.KEEP_ALIVE_S", "-1", false),
    ("rr.EPSILON", "0.5", false),
    ("seed", "18446744073709551615", true),
    ("seed", "-1", false),
    ("t", "4", false),
    ("X", "1", false),
    ("", "1", false),
];

#[test]
fn every_entry_point_accepts_and_refuses_the_same_settings() {
    for &(key, value, accepted) in SETTINGS {
        let mut set = ParamSet::default();
        let direct = set.set(key, value);
        assert_eq!(
            direct.is_ok(),
            accepted,
            "set({key:?}, {value:?}): {direct:?}"
        );
        if let Err(e) = &direct {
            assert_eq!(e.key(), key);
            assert!(e.to_string().contains(key), "{e}");
            assert_eq!(
                set,
                ParamSet::default(),
                "a refused setting changed nothing"
            );
        }
        let config = SchedulerConfig::new("ch", [(key, value)]);
        assert_eq!(config.is_ok(), accepted, "SchedulerConfig {key}={value}");
        let json = serde_json::json!({ key: value }).to_string();
        let read = serde_json::from_str::<ParamSet>(&json);
        assert_eq!(read.is_ok(), accepted, "reading {json}: {read:?}");
        if accepted {
            assert_eq!(read.unwrap(), set);
        }
    }
}

#[test]
fn bare_names_set_every_algorithm_that_has_them() {
    let mut set = ParamSet::default();
    set.set("T", "4").unwrap();
    assert_eq!(set.value("ch", "T"), Some(Value::Count(4)));
    assert_eq!(set.value("pasch", "T"), Some(Value::Count(4)));
    set.set("ch.T", "6").unwrap();
    assert_eq!(set.value("ch", "T"), Some(Value::Count(6)));
    assert_eq!(set.value("pasch", "T"), Some(Value::Count(4)));
    let ch = set.scheduler("hash").unwrap();
    assert_eq!((ch.name(), ch.count(&consistent_hash::T)), ("ch", 6));
    let pasch = set.scheduler("pasch").unwrap();
    assert_eq!(pasch.count(&pasch::T), 4);
    // A bare name that one algorithm refuses is refused as a whole, and
    // the error names that algorithm's key.
    let err = set.set("T", "20000").unwrap_err().to_string();
    assert!(err.contains("ch.T"), "{err}");
    assert_eq!(set.value("pasch", "T"), Some(Value::Count(4)));
}

#[test]
fn the_serialized_form_is_the_key_language() {
    let defaults = serde_json::to_string(&ParamSet::default()).unwrap();
    assert_eq!(
        defaults,
        concat!(
            r#"{"T":8,"T1":8,"T2":5,"T3":3,"ALPHA":0.0,"BETA":0.5,"#,
            r#""EPSILON":0.25,"CHBL_POINTS":8,"RLU_BOUND":1.0,"RLU_CHAIN":2,"RLU_POPULAR":0.2,"RLU_NOISE":0.2,"RLU_POINTS":3,"RLU_REFRESH_S":1.0,"KEEP_ALIVE_S":600.0,"seed":0}"#
        )
    );
    let mut set = ParamSet::default();
    set.apply([("ch.T", "4"), ("BETA", "0.75"), ("seed", "42")])
        .unwrap();
    let json = serde_json::to_string(&set).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"ch.T":4,"pasch.T":8,"T1":8,"T2":5,"T3":3,"ALPHA":0.0,"BETA":0.75,"#,
            r#""EPSILON":0.25,"CHBL_POINTS":8,"RLU_BOUND":1.0,"RLU_CHAIN":2,"RLU_POPULAR":0.2,"RLU_NOISE":0.2,"RLU_POINTS":3,"RLU_REFRESH_S":1.0,"KEEP_ALIVE_S":600.0,"seed":42}"#
        )
    );
    assert_eq!(serde_json::from_str::<ParamSet>(&json).unwrap(), set);
    // Unknown keys are refused, like deny_unknown_fields.
    let err = serde_json::from_str::<ParamSet>(r#"{"T":4,"TT":1}"#).unwrap_err();
    assert!(err.to_string().contains("\"TT\""), "{err}");
    assert!(serde_json::from_str::<ParamSet>("[1]").is_err());

    let config = set.scheduler("ch").unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(json, r#"{"algorithm":"ch","params":{"T":4},"seed":42}"#);
    assert_eq!(
        serde_json::from_str::<SchedulerConfig>(&json).unwrap(),
        config
    );
    let rr = serde_json::to_string(&set.scheduler("rr").unwrap()).unwrap();
    assert_eq!(rr, r#"{"algorithm":"rr","params":{},"seed":42}"#);
    for bad in [
        r#"{"algorithm":"nope"}"#,
        r#"{"algorithm":"ch","params":{"T":0}}"#,
        r#"{"algorithm":"ch","params":{"T1":3}}"#,
        r#"{"algorithm":"ch","extra":1}"#,
    ] {
        assert!(
            serde_json::from_str::<SchedulerConfig>(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn configs_build_their_algorithm_with_their_values() {
    for a in REGISTRY {
        let config = SchedulerConfig::new(a.name, [("seed", "3")]).unwrap();
        assert_eq!(config.build().name(), a.name);
        assert_eq!(config.params().count(), a.params.len());
        for alias in a.aliases {
            let by_alias = SchedulerConfig::new(alias, [("seed", "3")]).unwrap();
            assert_eq!(by_alias, config);
        }
    }
    let err = SchedulerConfig::new("nope", [("T", "4")]).unwrap_err();
    assert!(err.to_string().contains(&registry::known_algorithms()));
    assert!(registry::params_help().contains("ch.T (default 8, 1..=10000)"));
}

proptest! {
    #[test]
    fn counts_are_accepted_exactly_in_their_range(n in any::<i64>()) {
        let ok = ParamSet::default().set("ch.T", &n.to_string()).is_ok();
        prop_assert_eq!(ok, (1..=10_000).contains(&n));
    }

    #[test]
    fn probabilities_are_accepted_exactly_in_zero_to_one(p in any::<f64>()) {
        let ok = ParamSet::default().set("ALPHA", &p.to_string()).is_ok();
        prop_assert_eq!(ok, (0.0..=1.0).contains(&p));
    }

    #[test]
    fn any_valid_set_reads_back_from_its_serialized_form(
        t in 1u32..=10_000,
        pasch_t in 1u32..,
        alpha in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let set = ParamSet::from_settings([
            ("ch.T", t.to_string()),
            ("pasch.T", pasch_t.to_string()),
            ("tradeoff.ALPHA", alpha.to_string()),
            ("seed", seed.to_string()),
        ])
        .unwrap();
        let json = serde_json::to_string(&set).unwrap();
        prop_assert_eq!(serde_json::from_str::<ParamSet>(&json).unwrap(), set);
    }
}
