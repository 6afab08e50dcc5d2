//! The `ch` ring, checked against MD5 values computed by hand (Python's
//! `hashlib.md5`, independently of this crate), so that decisions match the
//! original HotFunctions ring one for one.
//!
//! hash(key) = first 4 bytes of MD5(key), big-endian, mod 1,234,567.

use policy::scheduler::consistent_hash::{ChParams, ConsistentHashBoundedLoad};
use policy::scheduler::md5_ring::{ring_hash, RingPoint};
use policy::scheduler::{Completion, Membership, NodeInfo, Scheduler, Time, Tracked};

/// (key, first 4 MD5 bytes as hex, ring hash).
const HAND_CHECKED: &[(&str, u32, u32)] = &[
    ("0-0", 0xc776_3203, 735_465),
    ("0-1", 0xc2eb_2821, 1_057_721),
    ("0-2", 0xdfbf_fab0, 817_040),
    ("1-0", 0xeca2_6941, 933_848),
    ("1-1", 0xea66_c06c, 506_581),
    ("1-2", 0x98c6_f2c2, 214_014),
    ("2-0", 0x8303_abbb, 526_607),
    ("2-1", 0x8fbd_bf55, 467_822),
    ("2-2", 0x3c46_a040, 151_131),
    ("A", 0x7fc5_6270, 433_912),
    ("W1", 0x1e99_44df, 1_015_814),
    ("T3", 0x54b0_2ae9, 1_079_415),
    ("D8", 0xb152_2194, 877_877),
];

fn three_nodes_t3() -> Tracked<ConsistentHashBoundedLoad> {
    let mut s = Tracked::new(ConsistentHashBoundedLoad::new(ChParams { t: 3 }));
    for id in 0..3 {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    s
}

#[test]
fn ring_hash_matches_hand_checked_md5() {
    for &(key, prefix, hash) in HAND_CHECKED {
        assert_eq!(prefix % 1_234_567, hash, "table entry {key}");
        assert_eq!(ring_hash(key.as_bytes()), hash, "ring_hash({key:?})");
    }
}

#[test]
fn ring_of_three_nodes_with_t3_is_sorted_by_hash() {
    let s = three_nodes_t3();
    let expected = [
        (151_131, 2),
        (214_014, 1),
        (467_822, 2),
        (506_581, 1),
        (526_607, 2),
        (735_465, 0),
        (817_040, 0),
        (933_848, 1),
        (1_057_721, 0),
    ]
    .map(|(hash, node)| RingPoint { hash, node });
    assert_eq!(s.policy().ring().points(), &expected[..]);
}

#[test]
fn owners_and_spills_follow_the_ring() {
    let mut s = three_nodes_t3();
    // A (433,912) -> point 467,822 (node 2); W1 (1,015,814) -> 1,057,721
    // (node 0); T3 (1,079,415) is past the last point: wraps to node 2;
    // D8 (877,877) -> 933,848 (node 1).
    assert_eq!(s.select("A", Time::ZERO), Ok(2));
    assert_eq!(s.select("W1", Time::ZERO), Ok(0));
    assert_eq!(s.select("T3", Time::ZERO), Ok(2));
    assert_eq!(s.select("D8", Time::ZERO), Ok(1));
    // Node 2 reaches T = 3 with one more A; the next A walks on to the
    // point 506,581 (node 1), and T3 from the first point (node 2, full)
    // to 214,014 (node 1).
    assert_eq!(s.select("A", Time::ZERO), Ok(2));
    assert_eq!(s.load(2), Some(3));
    assert_eq!(s.select("A", Time::ZERO), Ok(1));
    assert_eq!(s.select("T3", Time::ZERO), Ok(1));
    // Node 1 is now full too (D8, A, T3): D8 walks 933,848 (1, full) ->
    // 1,057,721 (node 0).
    assert_eq!(s.load(1), Some(3));
    assert_eq!(s.select("D8", Time::ZERO), Ok(0));
    let done = Completion {
        node: 2,
        function: "A",
        duration: std::time::Duration::from_secs(1),
        cold: false,
        ok: true,
        internal: std::time::Duration::ZERO,
    };
    s.finished(&done, Time::ZERO);
    assert_eq!(
        s.select("A", Time::ZERO),
        Ok(2),
        "home again once it has room"
    );
}

#[test]
fn removing_a_node_hands_its_keys_to_the_next_point() {
    let mut s = three_nodes_t3();
    s.membership(Membership::Remove(2), Time::ZERO);
    // A's point (467,822, node 2) is gone: next is 506,581 (node 1). T3
    // wraps to the first remaining point, 214,014 (node 1).
    assert_eq!(s.select("A", Time::ZERO), Ok(1));
    assert_eq!(s.select("T3", Time::ZERO), Ok(1));
    s.membership(Membership::Insert(NodeInfo::new(2)), Time::ZERO);
    assert_eq!(s.select("A", Time::ZERO), Ok(2));
}
