//! `kdind dump`, `dump64`, `split-dump`, `split-dump64`, `export logs` and `export kubeconfig`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use kdind::cluster::lifecycle;
use kdind::dump::collect;
use kdind::dump::format::{self, DumpFile};
use kdind::provider::Docker;

use super::cluster::Which;
use crate::status::Status;

/// Where `split-dump` and `split-dump64` write.
const SPLIT_DIR: &str = "cluster-dump";

#[derive(Debug, Args)]
pub struct Dump {
    #[command(flatten)]
    which: Which,
}

async fn gather(which: &Which, status: &Status) -> anyhow::Result<Vec<DumpFile>> {
    let name = which.name()?;
    let docker = Docker::connect().await?;
    let title = format!("Collecting the state of cluster {}", name.context());
    kdind::progress::step(status, &title, collect::collect(&docker, &name))
        .await
        .with_context(|| format!("failed to dump cluster {}", name.context()))
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(data: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(data).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("failed to write to standard output")?),
    }
}

impl Dump {
    pub async fn run(self, status: &Status, encoded: bool) -> anyhow::Result<()> {
        let files = gather(&self.which, status).await?;
        let mut text = Vec::new();
        format::write_dump(&files, &mut text)?;
        if encoded {
            emit(format::encode64(&text).as_bytes())
        } else {
            emit(&text)
        }
    }
}

/// Splits a dump read from standard input into `cluster-dump/`.
pub fn split(encoded: bool) -> anyhow::Result<()> {
    let mut input = Vec::new();
    io::stdin()
        .read_to_end(&mut input)
        .context("failed to read standard input")?;
    let text = if encoded {
        format::decode64(&input)?
    } else {
        input
    };
    let files = format::parse_dump(&text)?;
    let written = format::split_into(&files, Path::new(SPLIT_DIR))?;
    eprintln!("{} files written to {SPLIT_DIR}/", written.len());
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum Export {
    /// Write the files of a dump into a directory.
    Logs(ExportLogs),
    /// Write the cluster's context into the kubeconfig file again (or into the one given with
    /// --kubeconfig) and make it the current context.
    Kubeconfig(Which),
}

#[derive(Debug, Args)]
pub struct ExportLogs {
    /// Directory to write into [default: ./<context>-logs].
    dir: Option<PathBuf>,

    #[command(flatten)]
    which: Which,
}

impl Export {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let args = match self {
            Export::Logs(args) => args,
            Export::Kubeconfig(which) => return export_kubeconfig(&which).await,
        };
        let context = args.which.name()?.context();
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{context}-logs")));
        let files = gather(&args.which, status).await?;
        let written = format::split_into(&files, &dir)?;
        println!("{} files written to {}", written.len(), dir.display());
        Ok(())
    }
}

async fn export_kubeconfig(which: &Which) -> anyhow::Result<()> {
    let name = which.name()?;
    let docker = Docker::connect().await?;
    let path = lifecycle::write_kubeconfig(&docker, &name, which.kubeconfig()?)
        .await
        .with_context(|| format!("failed to export the kubeconfig of {}", name.context()))?;
    println!("Context {} written to {}", name.context(), path.display());
    Ok(())
}
