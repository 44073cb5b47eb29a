//! Structured logs: JSON for machines, text for a terminal.
//!
//! Services (the worker) log to stdout; the one-shot commands log to stderr,
//! so that their stdout stays clean for scripts.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub(crate) fn init(level: &str, format: LogFormat, service: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("LOG_LEVEL `{level}` is not a level or a tracing filter"))?;
    let terminal = if service {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal && !json);
    let result = match (json, service) {
        (true, true) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        (true, false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (false, true) => builder.try_init(),
        (false, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
