use rstest::rstest;

use super::*;
use crate::rules::RuleFile;
use crate::strategy;

const ALLOW_LIST: &str =
    "deny a\nallow c *:* m\nallow c 1:3 rwm\nallow c 136:* rw\nallow b 8:* r\n";
const DENY_LIST: &str = "deny c 1:3 w\ndeny b *:1 rwm\ndeny c 4:* m\n";

fn program(strategy: &str, rules: &str) -> Option<Program> {
    let rules = RuleFile::parse("t.rules", rules).unwrap();
    strategy::by_name(strategy).unwrap().compile(&rules).ok()
}

/// Every strategy's program comes back from its object unchanged, maps and
/// their contents included.
#[rstest]
fn write_then_read_is_the_identity(
    #[values(
        "linear", "tree", "map", "runc", "crun", "youki", "lxc", "systemd", "libvirt"
    )]
    strategy: &str,
    #[values(ALLOW_LIST, DENY_LIST)] rules: &str,
) {
    let Some(p) = program(strategy, rules) else {
        return; // the model refuses this list, as its runtime would
    };
    let bytes = write(&p, "devcg_filter").unwrap();
    let back = read(&bytes, None).unwrap();
    assert_eq!(back.program, p);
    assert_eq!(back.section, DEVICE_SECTION);
    assert_eq!(back.name, "devcg_filter");
    assert_eq!(back.license, LICENSE);
}

#[test]
fn the_init_section_round_trips_and_refuses_corruption() {
    let p = program("map", ALLOW_LIST).unwrap();
    let bytes = encode_init(&p.maps);
    let decoded = decode_init(&bytes).unwrap();
    assert_eq!(decoded[0].0, p.maps[0].name);
    assert_eq!(decoded[0].1, p.maps[0].entries);
    for cut in [1, 4, 7, bytes.len() - 1] {
        assert!(matches!(decode_init(&bytes[..cut]), Err(ElfError::Init(_))));
    }
    // An absurd entry count is refused before anything is allocated.
    let mut huge = bytes.clone();
    let count_at = 4 + p.maps[0].name.len() + 8;
    huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_init(&huge), Err(ElfError::Init(_))));
}

#[test]
fn contents_are_checked_against_the_map() {
    let mut p = program("map", ALLOW_LIST).unwrap();
    let name = p.maps[0].name.clone();
    let bad = vec![(name.clone(), vec![(vec![0u8; 3], vec![0u8; 4])])];
    assert!(matches!(
        apply_contents(&mut p.maps, bad),
        Err(ElfError::EntrySize { what: "key", .. })
    ));
    let other = vec![("nope".to_string(), vec![])];
    assert!(matches!(
        apply_contents(&mut p.maps, other),
        Err(ElfError::UnknownMapName(_))
    ));
}

#[test]
fn what_is_not_a_bpf_object_is_refused_with_the_reason() {
    assert!(matches!(read(b"", None), Err(ElfError::Parse(_))));
    assert!(matches!(
        read(b"\x7fELF\x02\x01", None),
        Err(ElfError::Parse(_))
    ));
    let p = program("linear", ALLOW_LIST).unwrap();
    let mut bytes = write(&p, "f").unwrap();
    // e_machine: x86-64.
    bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
    let e = read(&bytes, None).unwrap_err();
    assert!(matches!(e, ElfError::WrongMachine(_, 62)), "{e}");
    assert!(e.to_string().contains("x86_64"), "{e}");
}

#[test]
fn a_section_is_chosen_by_name() {
    let p = program("linear", ALLOW_LIST).unwrap();
    let bytes = write(&p, "devcg_filter").unwrap();
    assert!(read(&bytes, Some("cgroup/dev")).is_ok());
    assert!(read(&bytes, Some("devcg_filter")).is_ok());
    let e = read(&bytes, Some("cgroup/other")).unwrap_err();
    assert!(matches!(e, ElfError::NoSuchSection { .. }), "{e}");
    assert!(e.to_string().contains("cgroup/dev (devcg_filter)"), "{e}");
}

/// Every prefix of an object is refused or read, never a panic.
#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let p = program("map", ALLOW_LIST).unwrap();
    let bytes = write(&p, "f").unwrap();
    for len in 0..bytes.len() {
        // The section headers come last: any prefix loses some.
        assert!(
            read(&bytes[..len], None).is_err(),
            "a prefix of {len} bytes was read"
        );
    }
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random byte changes: an error with a reason or a program, never
        /// a panic (aya-obj's own panics are contained, see guard.rs).
        #[test]
        fn mutated_objects_never_panic(
            strategy in prop::sample::select(vec!["linear", "map", "libvirt"]),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let p = program(strategy, ALLOW_LIST).unwrap();
            let mut bytes = write(&p, "f").unwrap();
            for (at, b) in changes {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Err(e) = read(&bytes, None) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// The same program, the same bytes: objects can be pinned and compared.
#[test]
fn writing_is_deterministic() {
    let p = program("map", ALLOW_LIST).unwrap();
    assert_eq!(write(&p, "f").unwrap(), write(&p, "f").unwrap());
}
