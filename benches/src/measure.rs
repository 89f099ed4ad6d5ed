//! Criterion-like repetition for the report: warm up, size a batch to a
//! target sample time, take several samples, keep the median per
//! iteration. Medians shrug off the odd preempted sample on a shared
//! machine; the spread is reported beside them.

use std::time::{Duration, Instant};

/// How much to sample, per pass.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    /// Time spent running before measuring (caches, branch predictors,
    /// CPU frequency).
    pub warmup: Duration,
    /// Target duration of one sample (a batch of iterations).
    pub sample_time: Duration,
    pub samples: usize,
    /// Passes over every cell, spread over the run; a cell's samples from
    /// all passes are pooled, so a spell of load from elsewhere hits only
    /// part of them.
    pub passes: usize,
}

impl Sampling {
    /// CI smoke: small samples, seconds for the whole report.
    pub fn quick() -> Sampling {
        Sampling {
            warmup: Duration::from_millis(2),
            sample_time: Duration::from_micros(200),
            samples: 11,
            passes: 1,
        }
    }

    pub fn full() -> Sampling {
        // Many short samples: on a shared machine a preempted sample is an
        // outlier the median ignores, as long as most samples run clean.
        Sampling {
            warmup: Duration::from_millis(20),
            sample_time: Duration::from_micros(300),
            samples: 35,
            passes: 3,
        }
    }
}

/// Nanoseconds per iteration over the samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub median_ns: f64,
    /// The 10th and 90th percentile of the samples.
    pub low_ns: f64,
    pub high_ns: f64,
    pub samples: usize,
    pub iters_per_sample: u64,
}

impl Estimate {
    /// From per-iteration values (at least one).
    pub fn from_values(mut values: Vec<f64>, iters_per_sample: u64) -> Estimate {
        assert!(!values.is_empty(), "an estimate needs a sample");
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Estimate {
            median_ns: median(&values),
            low_ns: at(0.1),
            high_ns: at(0.9),
            samples: values.len(),
            iters_per_sample,
        }
    }

    /// Half the 10–90% range relative to the median, in percent.
    pub fn spread_pct(&self) -> f64 {
        if self.median_ns.abs() < f64::EPSILON {
            return 0.0;
        }
        50.0 * (self.high_ns - self.low_ns) / self.median_ns.abs()
    }
}

/// The median of sorted values.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Times `run(iters)`, which must run the measured operation `iters`
/// times and return how long that took.
pub fn sample(s: &Sampling, run: impl FnMut(u64) -> Duration) -> Estimate {
    let (values, batch) = sample_values(s, run);
    Estimate::from_values(values, batch)
}

/// Like [`sample`], but the per-iteration values themselves, to pool
/// with other passes over the same operation.
pub fn sample_values(s: &Sampling, mut run: impl FnMut(u64) -> Duration) -> (Vec<f64>, u64) {
    // Warm up with doubling batches; the last one estimates the cost.
    let start = Instant::now();
    let mut iters = 1u64;
    let mut per_iter;
    loop {
        let t = run(iters);
        per_iter = t.as_secs_f64() / iters as f64;
        if start.elapsed() >= s.warmup || iters >= 1 << 40 {
            break;
        }
        iters *= 2;
    }
    let batch = ((s.sample_time.as_secs_f64() / per_iter.max(1e-12)).round() as u64).max(1);
    let values = (0..s.samples.max(1))
        .map(|_| run(batch).as_nanos() as f64 / batch as f64)
        .collect();
    (values, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let e = Estimate::from_values(vec![5.0, 1.0, 4.0, 2.0, 3.0], 10);
        assert_eq!(e.median_ns, 3.0);
        assert_eq!(e.low_ns, 1.0);
        assert_eq!(e.high_ns, 5.0);
        let e = Estimate::from_values(vec![4.0, 1.0, 3.0, 2.0], 1);
        assert_eq!(e.median_ns, 2.5);
    }

    #[test]
    fn sampling_counts_iterations() {
        let mut total = 0u64;
        let e = sample(&Sampling::quick(), |n| {
            total += n;
            Duration::from_nanos(n * 100)
        });
        assert_eq!(e.samples, 11);
        assert!((e.median_ns - 100.0).abs() < 1e-9);
        assert!(total > 0);
    }
}

/// A command's wall time and peak memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CommandRun {
    pub wall: Duration,
    /// Peak resident set size, KiB (`ru_maxrss` from wait4).
    pub max_rss_kib: u64,
}

/// Runs `cmd` (output discarded) and measures it. Exit 0 and 1 are full
/// runs (`verify --exhaustive` exits 1 on a difference); anything else is
/// an error with the command's stderr.
pub fn run_measured(cmd: &mut std::process::Command) -> Result<CommandRun, String> {
    use std::process::Stdio;
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr;
    let mut err_text = String::new();
    if let Some(s) = stderr.as_mut() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err_text);
    }
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; pid is our child,
    // reaped here (std's Child is not waited on after this).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    let wall = t.elapsed();
    if rc < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    match code {
        Some(0 | 1) => Ok(CommandRun {
            wall,
            max_rss_kib: usage.ru_maxrss as u64,
        }),
        _ => Err(format!(
            "{cmd:?} ended with status {status:#x}: {}",
            err_text.trim()
        )),
    }
}
