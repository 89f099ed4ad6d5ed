//! `devcg-vm`: the VM regression runner on its own, with the options of
//! `devcg vm`. Exit 0: as expected; 1: a result differs from the expected
//! one; 2: the runner could not start; 3: nothing differs but some kernel
//! could not be tested (tools or kernel could not be installed).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "devcg-vm",
    about = "devcg's kernel checks on a matrix of kernels (vm/kernels.toml)"
)]
struct Cli {
    #[command(flatten)]
    opts: devcg_vm::Options,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(devcg_vm::main_with(&cli.opts));
}
