//! CPU time from `/proc` (Linux): of one process, of a database server's
//! processes, and of the whole machine.

use std::time::Duration;

use anyhow::Context;

/// The kernel reports in USER_HZ, 100 per second on Linux.
fn ticks(n: u64) -> Duration {
    Duration::from_millis(10 * n)
}

/// A process's command name, its own CPU time (user and system, every
/// thread), and that of its children it has reaped.
fn stat(pid: &str) -> anyhow::Result<(String, Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (head, tail) = stat.rsplit_once(')').context("/proc/PID/stat")?;
    let name = head.split_once('(').context("/proc/PID/stat")?.1.to_owned();
    // Fields after the command name: utime, stime, cutime and cstime are
    // fields 14 to 17 of the whole line.
    let fields: Vec<u64> = tail
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        anyhow::bail!("/proc/{pid}/stat is short");
    };
    Ok((name, ticks(utime + stime), ticks(cutime + cstime)))
}

/// One process's CPU time.
pub(crate) fn process(pid: u32) -> anyhow::Result<Duration> {
    Ok(stat(&pid.to_string())?.1)
}

/// The CPU time of every process named `name` (a database server's), with
/// that of the children they reaped, so that connections which ended
/// between two readings still count.
pub(crate) fn server(name: &str) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc")? {
        let pid = entry?.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process may end between the listing and the reading.
        if let Ok((comm, own, reaped)) = stat(pid)
            && comm == name
        {
            total += own + reaped;
        }
    }
    Ok(total)
}

/// The machine's CPU time: busy, and in all (idle included), over every core.
pub(crate) fn machine() -> anyhow::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("/proc/stat")?;
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
    let all: u64 = counts.iter().take(8).sum();
    let idle: u64 = counts.iter().skip(3).take(2).sum();
    Ok((ticks(all - idle), ticks(all)))
}
