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
