//! ELF objects and assembly text through the command line: every
//! strategy's `compile --format elf` and `--format asm` output read back by
//! `--program` and judged equivalent; the clang-built C example and its
//! divergence; bad objects refused in one line, exit 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

fn devcg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(args)
        .output()
        .expect("run devcg")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STRATEGIES: [&str; 9] = [
    "linear", "tree", "map", "runc", "crun", "youki", "lxc", "systemd", "libvirt",
];

/// What `verify --exhaustive` says of a strategy's own program must not
/// change when the program goes through an object or its text first.
#[rstest]
fn compiled_output_is_judged_as_the_strategy_is(
    #[values("elf", "asm")] format: &str,
    #[values("container.rules", "deny-list.rules")] rules: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let rules = root().join("examples").join(rules);
    let rules = rules.to_str().unwrap();
    for strategy in STRATEGIES {
        let file = dir.path().join(format!(
            "{strategy}.{}",
            if format == "elf" { "o" } else { "asm" }
        ));
        let out = devcg(&[
            "compile",
            "--strategy",
            strategy,
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
            rules,
        ]);
        if !out.status.success() {
            // A model refusing the list, as its runtime does.
            assert!(
                text(&out).1.contains("refuses"),
                "{strategy}: {:?}",
                text(&out)
            );
            continue;
        }
        let direct = devcg(&["verify", "--exhaustive", "--strategy", strategy, rules]);
        let read = devcg(&[
            "verify",
            "--exhaustive",
            "--program",
            file.to_str().unwrap(),
            rules,
        ]);
        assert_eq!(
            direct.status.code(),
            read.status.code(),
            "{strategy}: {:?}",
            text(&read)
        );
        // The same differing classes (the first line names the program).
        let body = |o: &Output| {
            text(o)
                .0
                .lines()
                .skip(1)
                .filter(|l| !l.starts_with("time:"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(body(&direct), body(&read), "{strategy}");
    }
}

fn clang() -> Option<PathBuf> {
    let found = Command::new("clang").arg("--version").output().ok()?;
    found.status.success().then(|| PathBuf::from("clang"))
}

/// Builds examples/filter.c with clang (Debian's clang and libbpf-dev), or
/// says in one line why not.
fn build_filter(dir: &Path) -> Option<PathBuf> {
    let Some(clang) = clang() else {
        eprintln!(
            "skipped: clang is not installed (scripts/test.sh installs clang and libbpf-dev)"
        );
        return None;
    };
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        eprintln!("skipped: libbpf-dev is not installed (/usr/include/bpf/bpf_helpers.h)");
        return None;
    }
    let arch = std::env::consts::ARCH;
    let object = dir.join("filter.o");
    let out = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .arg("-c")
        .arg(root().join("examples/filter.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clang: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(object)
}

/// The worked example: the C filter misses `access(F_OK)` on the devices
/// granted only mknod, and nothing else; without its map contents it also
/// denies /dev/net/tun.
#[test]
fn the_clang_filter_shows_its_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let Some(object) = build_filter(dir.path()) else {
        return;
    };
    let object = object.to_str().unwrap();
    let rules = root().join("examples/filter.rules");
    let map = format!(
        "extra={}",
        root().join("examples/filter-map.json").display()
    );
    let out = devcg(&[
        "verify",
        "--exhaustive",
        "--program",
        object,
        "--map",
        &map,
        rules.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("321 of 1690 reachable classes differ"),
        "{stdout}"
    );
    let differing: Vec<&str> = stdout.lines().filter(|l| l.contains("oracle")).collect();
    assert!(!differing.is_empty());
    for line in &differing {
        // Access 0 only, allowed by the rules and denied by the program.
        let request = line.split("oracle").next().unwrap().trim();
        assert!(request.ends_with(" -"), "{line}");
        assert!(line.contains("oracle allow  program deny"), "{line}");
    }
    // check, on the same object: F_OK on a mknod-only device differs,
    // /dev/net/tun agrees only with the map's contents.
    let check = |extra: &[&str], access: &str| {
        let mut args = vec!["check", "--program", object];
        args.extend_from_slice(extra);
        args.extend([rules.to_str().unwrap(), access]);
        devcg(&args).status.code()
    };
    assert_eq!(check(&["--map", &map], "c 4:1 -"), Some(1));
    assert_eq!(check(&["--map", &map], "c 10:200 rw"), Some(0));
    assert_eq!(check(&[], "c 10:200 rw"), Some(1));
    assert_eq!(check(&["--section", "cgroup/dev"], "c 1:3 rw"), Some(0));
    assert_eq!(check(&["--section", "filter"], "c 1:3 rw"), Some(0));
}

/// A bpftool dump of the example (the text bpftool prints for a program
/// loaded from the object, the map by id) is judged like the object.
#[test]
fn a_bpftool_text_dump_is_judged() {
    let dump = root().join("examples/filter.xlated.txt");
    let map = root().join("examples/filter-map-spec.json");
    let rules = root().join("examples/filter.rules");
    let out = devcg(&[
        "verify",
        "--exhaustive",
        "--program",
        dump.to_str().unwrap(),
        "--map",
        &format!("id:7={}", map.display()),
        rules.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("321 of 1690 reachable classes differ"),
        "{stdout}"
    );
}

fn object(strategy: &str, dir: &Path) -> Vec<u8> {
    let file = dir.join("p.o");
    let rules = root().join("examples/container.rules");
    let out = devcg(&[
        "compile",
        "--strategy",
        strategy,
        "--format",
        "elf",
        "-o",
        file.to_str().unwrap(),
        rules.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    std::fs::read(file).unwrap()
}

fn refused(bytes: &[u8], extra: &[&str], reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.o");
    std::fs::write(&file, bytes).unwrap();
    let rules = root().join("examples/container.rules");
    let mut args = vec!["check", "--program", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend([rules.to_str().unwrap(), "c 1:3 r"]);
    let out = devcg(&args);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.o: "), "{stderr}");
    assert!(stderr.contains(reason), "no {reason:?} in {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bad_objects_are_refused_naming_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = object("map", dir.path());
    // Truncated.
    refused(&good[..good.len() / 2], &[], "not a valid ELF object");
    refused(&good[..10], &[], "not a valid ELF object");
    // Wrong machine (x86-64).
    let mut x86 = good.clone();
    x86[18..20].copy_from_slice(&62u16.to_le_bytes());
    refused(&x86, &[], "not for BPF (e_machine 62)");
    // No device section: the program's section renamed.
    let mut renamed = good.clone();
    let at = find(&renamed, b"cgroup/dev\0").unwrap();
    renamed[at..at + 10].copy_from_slice(b"cgroup/skb");
    refused(&renamed, &[], "no device program (section `cgroup/dev`)");
    // Unknown relocation: the first relocation's type set to 99.
    let mut reloc = good.clone();
    let rel = rel_offset(&reloc);
    reloc[rel + 8] = 99;
    refused(&reloc, &[], "relocation type 99 is not one BPF defines");
    // A section that is not there.
    refused(
        &good,
        &["--section", "xdp"],
        "no device program matches --section xdp",
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where `.relcgroup/dev`'s first entry starts (section headers parsed by
/// hand: ELF64 little-endian, the layout is fixed).
fn rel_offset(elf: &[u8]) -> usize {
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let (shoff, shnum) = (u64_at(0x28), u16_at(0x3c));
    (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&h| u32_at(h + 4) == 9) // SHT_REL
        .map(|h| u64_at(h + 0x18))
        .unwrap()
}

/// Small C objects devcg reads or refuses with the reason: what clang
/// emits for globals, other map types, several programs, another program
/// type, and a bpf-to-bpf call (linked from .text, and run by the
/// emulator: `allow(1)` for `c 1:3`).
#[rstest]
#[case::global_data(
    "const volatile __u32 wanted = 1;\nSEC(\"cgroup/dev\") int f(struct bpf_cgroup_dev_ctx *c) { return c->major == wanted; }",
    &[], Err("refers to global data in `.rodata`")
)]
#[case::lru_map(
    "struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } m SEC(\".maps\");\nSEC(\"cgroup/dev\") int f(struct bpf_cgroup_dev_ctx *c) { __u32 k = c->major; return bpf_map_lookup_elem(&m, &k) != 0; }",
    &[], Err("map `m` is of BPF map type 9")
)]
#[case::several(
    "SEC(\"cgroup/dev\") int one(struct bpf_cgroup_dev_ctx *c) { return 1; }\nSEC(\"cgroup/dev\") int two(struct bpf_cgroup_dev_ctx *c) { return 0; }",
    &[], Err("several device programs (cgroup/dev (one), cgroup/dev (two))")
)]
#[case::several_chosen(
    "SEC(\"cgroup/dev\") int one(struct bpf_cgroup_dev_ctx *c) { return 1; }\nSEC(\"cgroup/dev\") int two(struct bpf_cgroup_dev_ctx *c) { return 0; }",
    &["--section", "one"], Ok(true)
)]
#[case::several_chosen_other(
    "SEC(\"cgroup/dev\") int one(struct bpf_cgroup_dev_ctx *c) { return 1; }\nSEC(\"cgroup/dev\") int two(struct bpf_cgroup_dev_ctx *c) { return 0; }",
    &["--section", "two"], Ok(false)
)]
#[case::other_type(
    "SEC(\"xdp\") int x(struct xdp_md *c) { return 2; }",
    &[], Err("no device program (section `cgroup/dev`) in the object; program sections: xdp")
)]
#[case::co_re(
    "struct dev_ctx { __u32 access_type; __u32 major; } __attribute__((preserve_access_index));\nSEC(\"cgroup/dev\") int f(struct dev_ctx *c) { return c->major == 1; }",
    &[], Err("relies on CO-RE relocations")
)]
#[case::call(
    "static __attribute__((noinline)) int allow(__u32 major) { return major == 1; }\nSEC(\"cgroup/dev\") int f(struct bpf_cgroup_dev_ctx *c) { return allow(c->major); }",
    &[], Ok(true)
)]
fn clang_objects_are_read_or_refused(
    #[case] source: &str,
    #[case] extra: &[&str],
    #[case] want: Result<bool, &str>,
) {
    if clang().is_none() || !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        eprintln!("skipped: clang or libbpf-dev is not installed (scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("p.c");
    std::fs::write(
        &c,
        format!("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n{source}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n"),
    )
    .unwrap();
    let object = dir.path().join("p.o");
    let out = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf"])
        .arg(format!(
            "-I/usr/include/{}-linux-gnu",
            std::env::consts::ARCH
        ))
        .arg("-c")
        .arg(&c)
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clang: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = root().join("examples/container.rules");
    let mut args = vec!["check", "--program", object.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend([rules.to_str().unwrap(), "c 1:3 r"]);
    let out = devcg(&args);
    let (stdout, stderr) = text(&out);
    match want {
        Ok(allow) => {
            assert!(out.status.code().is_some_and(|c| c < 2), "{stderr}");
            let verdict = if allow {
                "program allow"
            } else {
                "program deny"
            };
            assert!(stdout.contains(verdict), "{stdout}");
        }
        Err(reason) => {
            assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
            assert!(stderr.contains(reason), "no {reason:?} in {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    }
}

/// `bpftool-init` output is pinned by golden files (`UPDATE_GOLDEN=1`
/// rewrites them): the commands a user pipes to a shell.
#[rstest]
#[case("map")]
#[case("libvirt")]
fn golden_bpftool_init(#[case] strategy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("prog.o");
    let rules = root().join("examples/container.rules");
    let out = devcg(&[
        "compile",
        "--strategy",
        strategy,
        "--format",
        "elf",
        "-o",
        object.to_str().unwrap(),
        rules.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = devcg(&[
        "bpftool-init",
        object.to_str().unwrap(),
        "--pinmaps",
        "/sys/fs/bpf/devcg/maps",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let got = text(&out).0;
    let golden = root().join(format!(
        "tests/golden/container.rules.{strategy}.bpftool-init"
    ));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", golden.display()));
    assert_eq!(got, want, "{} changed", golden.display());
}
