//! Throughput of `run` (ignored by default; run with
//! `cargo test --release -p devcg-emulator --test perf -- --ignored --nocapture`).

use std::time::Instant;

use devcg_emulator::Emulator;
use devcg_engine::rules::RuleFile;
use devcg_engine::strategy;
use devcg_engine::{Access, DeviceType, Request};

fn ten_rules() -> String {
    let mut text = String::from("deny a\n");
    for i in 0..10 {
        text.push_str(&format!("allow c {}:{} rw\n", 10 + i, i));
    }
    text
}

#[test]
#[ignore]
fn throughput() {
    let rules = RuleFile::parse("bench.rules", &ten_rules()).unwrap();
    let requests: Vec<Request> = (0..1024u32)
        .map(|i| {
            let ty = if i % 3 == 0 {
                DeviceType::Block
            } else {
                DeviceType::Char
            };
            Request::new(ty, 10 + i % 12, i % 11, Access((i % 8) as u8))
        })
        .collect();
    for name in ["linear", "tree", "map"] {
        let program = strategy::by_name(name).unwrap().compile(&rules).unwrap();
        let emu = Emulator::new(&program).unwrap();
        let n = 2_000_000;
        let start = Instant::now();
        let mut allowed = 0usize;
        for i in 0..n {
            allowed += emu.run(&requests[i % requests.len()]).unwrap().is_allow() as usize;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:7} {:>4} slots: {:>10.0} checks/s ({allowed} allowed)",
            program.len(),
            n as f64 / secs
        );
        let t = Instant::now();
        for _ in 0..1000 {
            Emulator::new(&program).unwrap();
        }
        println!(
            "{name:7} Emulator::new: {:.1} us",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
