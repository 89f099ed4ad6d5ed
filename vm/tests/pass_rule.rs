//! One pass rule for the three-way differential, defined by devcg-kernel
//! and read, never re-derived, by the VM matrix.

/// `devcg verify --kernel` and the VM matrix judge a run alike: the matrix
/// reads the report's own `pass`, so a model whose program the emulator
/// and the kernel disagree on fails both.
#[test]
fn verify_kernel_and_the_matrix_share_one_pass_rule() {
    use devcg_kernel::differential::KernelReport;
    use devcg_vm::guest::{Collected, StepOutput};
    let cases = [
        // (own, oracle_vs_kernel, emulator_vs_kernel, unexpected, load_refusals, pass)
        (false, 9, 0, 0, 3, true), // a model wrong against the oracle: its finding
        (false, 0, 1, 0, 0, false), // a model the emulator misjudges: devcg's failure
        (false, 0, 0, 2, 0, false), // an answer that is neither allow nor deny
        (true, 0, 0, 0, 0, true),
        (true, 1, 0, 0, 0, false),
        (true, 0, 1, 0, 0, false),
        (true, 0, 0, 0, 1, false), // ours must load
    ];
    for (own, ovk, evk, unexpected, refusals, pass) in cases {
        let mut r = KernelReport {
            strategy: "s".into(),
            own,
            oracle_vs_kernel: ovk,
            emulator_vs_kernel: evk,
            unexpected,
            load_refusals: refusals,
            ..KernelReport::default()
        };
        r.pass = r.passes();
        assert_eq!(r.pass, pass, "{r:?}");
        let collected = Collected {
            steps: vec![StepOutput {
                name: "verify".into(),
                rc: Some(if r.pass { 0 } else { 1 }),
                stdout: serde_json::to_string(&[&r]).unwrap(),
                stderr: String::new(),
            }],
            ..Default::default()
        };
        let rows = devcg_vm::report::observe(&collected);
        let row = rows.iter().find(|o| o.name == "verify-kernel/s").unwrap();
        let want = if r.pass {
            devcg_vm::CheckStatus::Pass
        } else {
            devcg_vm::CheckStatus::Fail
        };
        assert_eq!(row.status, want, "{r:?}");
    }
}
