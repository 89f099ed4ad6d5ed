//! `devcg vm` is wired as a subcommand holding [`devcg_vm::Options`]: the
//! options parse there as they do in `devcg-vm`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kernel checks on the kernels of vm/kernels.toml.
    Vm(devcg_vm::Options),
}

#[test]
fn the_options_parse_as_a_subcommand() {
    let cli = Cli::try_parse_from([
        "devcg",
        "vm",
        "--kernel",
        "host",
        "--kernel",
        "debian-6.1",
        "--json",
        "--cases",
        "7",
    ])
    .unwrap();
    let Command::Vm(o) = cli.command;
    assert_eq!(o.kernels, ["host", "debian-6.1"]);
    assert!(o.json && !o.no_install && !o.record);
    assert_eq!(o.cases, Some(7));
    // The guest runs only devcg: no guest-side checks of this crate.
    assert!(Cli::try_parse_from(["devcg", "vm", "--guest-check"]).is_err());
    assert!(Cli::try_parse_from(["devcg", "vm", "--helper", "x"]).is_err());
}

#[test]
fn kernels_by_path_parse_and_exclude_the_matrix() {
    let cli = Cli::try_parse_from([
        "devcg",
        "vm",
        "--image",
        "a",
        "--modules",
        "m",
        "--image",
        "b",
        "--check",
        "x",
        "--expected",
        "e.json",
        "--junit",
        "j.xml",
    ])
    .unwrap();
    let Command::Vm(o) = cli.command;
    assert_eq!(o.images.len(), 2);
    assert_eq!(o.modules.len(), 1);
    assert_eq!(o.check.as_deref(), Some("x"));
    assert!(o.expected.is_some() && o.junit.is_some());
    // --image replaces the matrix's columns; --modules belongs to an image.
    assert!(Cli::try_parse_from(["devcg", "vm", "--image", "a", "--kernel", "host"]).is_err());
    assert!(Cli::try_parse_from(["devcg", "vm", "--modules", "m"]).is_err());
    assert!(Cli::try_parse_from(["devcg", "vm", "--expected", "e.json"]).is_err());
}
